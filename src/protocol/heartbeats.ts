/**
 * ZMTP heartbeats (PING/PONG, answered by libzmq itself) for clients and workers given several servers:
 * a server whose host went silent (a network cut, no TCP reset) is dropped after `heartbeatTimeout`
 * without a PONG, so that with `immediate` nothing more is queued for it and requests go to the server
 * that answers. Without them the dead connection would take its share of requests for as long as TCP
 * takes to give up (many minutes).
 */
export const SILENT_PEER_HEARTBEATS = {
  heartbeatInterval: 1_000,
  heartbeatTimeout: 3_000,
  // Tells the server to drop this connection when it hears nothing from it for as long.
  heartbeatTimeToLive: 6_000,
} as const;
