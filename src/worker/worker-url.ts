import { isZ85Key } from "../protocol/z85.js";

/**
 * Where and how a worker host connects: the parts of `tcp://HOST:PORT?token=T`, or of
 * `tcp://HOST:PORT,HOST2:PORT2?token=T` (a server and its standbys: the worker follows the one serving).
 */
export interface WorkerEndpoint {
  /** The ZeroMQ endpoint, `tcp://HOST:PORT` (the first server's). */
  endpoint: string;
  /** Every server's endpoint. */
  endpoints: string[];
  token: string | undefined;
  /** The server's CurveZMQ public key (`&serverKey=`), when it runs with `--curve`. */
  serverKey?: string;
}

/** Splits a worker URL into the ZeroMQ endpoint and the token; throws a clear Error when it is not one. */
export function parseWorkerUrl(url: string): WorkerEndpoint {
  const several = /^tcp:\/\/([^/?]+,[^/?]+)(\/?(?:\?.*)?)$/.exec(url.trim());
  if (!several) return parseOne(url);
  const all = several[1].split(",").map((hostPort) => parseOne(`tcp://${hostPort}${several[2]}`));
  return { ...all[0], endpoints: all.map((a) => a.endpoint) };
}

function parseOne(url: string): WorkerEndpoint {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`invalid worker URL "${url}": expected tcp://HOST:PORT?token=TOKEN`);
  }
  if (parsed.protocol !== "tcp:" || !parsed.hostname || !parsed.port) {
    throw new Error(`invalid worker URL "${url}": expected tcp://HOST:PORT?token=TOKEN`);
  }
  const port = Number(parsed.port);
  if (!(port >= 1 && port <= 65535))
    throw new Error(
      `invalid worker URL "${url}": port ${parsed.port} is not one a server listens on (1 to 65535)`,
    );
  const token = parsed.searchParams.get("token") ?? undefined;
  // Z85 has "+", which a query turns into a space when the key was pasted unencoded: it means "+".
  const serverKey = parsed.searchParams.get("serverKey")?.replaceAll(" ", "+") || undefined;
  if (serverKey !== undefined && !isZ85Key(serverKey))
    throw new Error(
      `invalid worker URL "${url}": serverKey is not a CurveZMQ public key (40 Z85 characters, percent-encoded)`,
    );
  const at: WorkerEndpoint = {
    endpoint: `tcp://${parsed.host}`,
    endpoints: [`tcp://${parsed.host}`],
    token: token || undefined,
  };
  if (serverKey !== undefined) at.serverKey = serverKey;
  return at;
}
