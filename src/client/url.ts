import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { ZgridError, ErrorCode } from "../protocol/errors.js";
import { isZ85Key } from "../protocol/z85.js";

/**
 * A parsed connect URL: `tcp://HOST:PORT?token=TOKEN[&serverKey=KEY]`, or with several servers
 * `tcp://HOST:PORT,HOST2:PORT2?token=…` (a server and its standbys: the client talks to the one that
 * serves).
 */
export interface ServerAddress {
  /** `tcp://HOST:PORT`, what ZeroMQ connects to (the first server's). */
  endpoint: string;
  /** Every server's `tcp://HOST:PORT`, the first one's first. */
  endpoints: string[];
  host: string;
  port: number;
  token?: string;
  serverKey?: string;
}

/** A connect URL that cannot be one: the CLI treats it as a usage error (exit 2). */
export class UrlError extends ZgridError {
  constructor(message: string) {
    super(ErrorCode.INVALID_ARGUMENT, message);
  }
}

/**
 * Parses a connect URL. Without a token in it, the token comes from `~/.zgrid/tokens.txt`
 * (`host:port,token` a line, as Arkouda's), if that file has the address; and so does the server's
 * CurveZMQ key when that line carries one (`host:port,token,serverKey`, written by a `--curve`
 * server) and the URL has none. A URL with a token of its own takes nothing from the file.
 */
export function parseServerUrl(
  url: string,
  tokensFile = join(homedir(), ".zgrid", "tokens.txt"),
): ServerAddress {
  const whole = /^tcp:\/\/([^/?]+)\/?(?:\?(.*))?$/.exec(url.trim());
  const servers = (whole?.[1] ?? "").split(",").map((hostPort) => {
    const m = /^([^:/?,]+|\[[^\]]+\]):(\d{1,5})$/.exec(hostPort);
    if (!m) throw new UrlError(`"${url}" is not a zgrid URL: expected tcp://HOST:PORT?token=TOKEN`);
    const port = Number(m[2]);
    if (port < 1 || port > 65535) throw new UrlError(`port ${port} in "${url}" is out of range (1 to 65535)`);
    return { host: m[1], port };
  });
  const [{ host, port }] = servers;
  const params = new URLSearchParams(whole![2] ?? "");
  const address: ServerAddress = {
    endpoint: `tcp://${host}:${port}`,
    endpoints: servers.map((s) => `tcp://${s.host}:${s.port}`),
    host,
    port,
  };
  const saved = params.has("token") ? undefined : savedEntry(tokensFile, `${host}:${port}`);
  const token = params.get("token") ?? saved?.token;
  if (token) address.token = token;
  // Z85 has "+", which a query turns into a space when the key was pasted unencoded: it means "+".
  const serverKey = params.get("serverKey")?.replaceAll(" ", "+");
  if (serverKey) {
    if (!isZ85Key(serverKey))
      throw new UrlError(
        `serverKey in "${url}" is not a CurveZMQ public key: expected 40 Z85 characters, percent-encoded in a URL (the server prints its URLs so)`,
      );
    address.serverKey = serverKey;
  } else if (saved?.serverKey) {
    address.serverKey = saved.serverKey;
  }
  return address;
}

/**
 * The last line of the tokens file for `hostPort`: `host:port,token` or `host:port,token,serverKey`.
 * Z85 has no comma, and a reader that splits off two fields (an older zgrid) still gets the token.
 */
function savedEntry(file: string, hostPort: string): { token: string; serverKey?: string } | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  let found: { token: string; serverKey?: string } | undefined;
  for (const line of text.split("\n")) {
    const [addr, token, serverKey] = line
      .trim()
      .split(",", 3)
      .map((f) => f.trim());
    if (addr !== hostPort || !token) continue;
    found = isZ85Key(serverKey) ? { token, serverKey } : { token };
  }
  return found;
}

/** Same server, another port: how the CLI reaches the METRICS and STATUS daemons from a DEFAULT URL. */
export function withPort(address: ServerAddress, port: number): string {
  const q = new URLSearchParams();
  if (address.token) q.set("token", address.token);
  if (address.serverKey) q.set("serverKey", address.serverKey);
  const qs = q.toString();
  return `tcp://${address.host}:${port}${qs ? "?" + qs : ""}`;
}
