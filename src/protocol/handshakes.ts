/**
 * Cut CurveZMQ handshakes in a row, after one succeeded, that fail a client's or a worker's connection
 * for good. ZeroMQ reconnects about every 100 ms, so a server that came back with another key (or
 * without Curve) is reported within a second, while a single cut one (a server caught as it stops or
 * starts) is not.
 */
export const CUT_HANDSHAKES_AFTER_SUCCESS = 3;
