import { readFileSync, statSync } from "node:fs";
import { connect, type ZgridClient } from "../client/client.js";
import { CurveRequiredError, type ConnectOptions } from "../client/connection.js";
import { SERVER_KEY_FILE, readServerKeys } from "../daemons/curve.js";
import { parseServerUrl, withPort } from "../client/url.js";
import { ErrorCode, ZgridError } from "../protocol/errors.js";
import { curveKeysFromEnv } from "./keygen-cmd.js";
import { intFlag, UsageError } from "./usage.js";

/** Options every client command takes to find the server. */
export const TARGET_OPTIONS = {
  url: { type: "string", short: "u" },
  "connection-info": { type: "string" },
  timeout: { type: "string" },
} as const;

export const TARGET_HELP = `  -u, --url URL                  server URL, tcp://HOST:PORT?token=TOKEN [ZGRID_URL]; without a
                                 token, the one ~/.zgrid/tokens.txt holds for HOST:PORT
      --connection-info FILE     the server's connection-info file [ZGRID_SERVER_CONNECTION_INFO]
                                 (a server with --curve: the URL carries serverKey=, or give it
                                 as ZGRID_CURVE_SERVER_KEY; this client's key pair is
                                 ZGRID_CURVE_PUBLIC_KEY/_SECRET_KEY, else a new one)
      --timeout MS               give up when the server has not answered the first request within
                                 MS ms (default 2000) [ZGRID_TIMEOUT_MS]`;

/** How long a command waits for a server it has not heard from yet before it says none answers. */
const FIRST_CONTACT_MS = 2000;

/** No reply to the first request: nothing (or nothing zgrid) listens at that address. */
export class NoServerError extends ZgridError {
  constructor(
    readonly endpoint: string,
    timeoutMs: number,
  ) {
    super(
      ErrorCode.UNAVAILABLE,
      `no zgrid server answers at ${endpoint.replace(/^tcp:\/\//, "")} within ${timeoutMs} ms: is it running, ` +
        `and is this its client port? (--timeout MS waits longer)`,
    );
  }
}

/** The first-contact limit: --timeout, else ZGRID_TIMEOUT_MS, else 2000 ms. */
export function firstContactMs(values: Record<string, unknown>): number {
  if (values.timeout !== undefined) return intFlag(values.timeout, "--timeout", 1, 2_147_483_647)!;
  const env = process.env.ZGRID_TIMEOUT_MS;
  if (env) return intFlag(env, "ZGRID_TIMEOUT_MS", 1, 2_147_483_647)!;
  return FIRST_CONTACT_MS;
}

/**
 * Connects and asks `getconfig` (every daemon answers it, even a STATUS daemon whose scheduler is stuck)
 * within `firstMs`: a client that never heard from the server gives up after that, while the requests
 * that follow get `timeoutMs` each (a long wait goes on in rounds). Resolves with the client and the
 * daemon's config. With `dataDir` (a probe beside the server), a server that answers that it requires
 * CurveZMQ is asked again with the key pair of `dataDir/curve-server.key`, which it always lets in.
 */
export async function connectChecked(
  url: string,
  firstMs: number,
  timeoutMs: number,
  dataDir?: string,
): Promise<{ client: ZgridClient; config: Record<string, unknown> }> {
  const curveKeyPair = curveKeysFromEnv();
  const serverKey = process.env.ZGRID_CURVE_SERVER_KEY || undefined;
  try {
    return await askConfig(url, firstMs, {
      timeoutMs,
      ...(curveKeyPair ? { curveKeyPair } : {}),
      ...(serverKey ? { serverKey } : {}),
    });
  } catch (err) {
    if (!(err instanceof CurveRequiredError) || dataDir === undefined) throw err;
    const keys = readServerKeys(dataDir);
    if (keys === null)
      throw new ZgridError(
        ErrorCode.UNAUTHENTICATED,
        `${err.message}; --data-dir ${dataDir} holds no ${SERVER_KEY_FILE} to take the key from: is it that server's data dir?`,
      );
    return askConfig(url, firstMs, { timeoutMs, serverKey: keys.publicKey, curveKeyPair: keys });
  }
}

async function askConfig(
  url: string,
  firstMs: number,
  options: ConnectOptions,
): Promise<{ client: ZgridClient; config: Record<string, unknown> }> {
  const client = await connect(url, options);
  try {
    const config = await client.call<Record<string, unknown>>("getconfig", undefined, undefined, {
      timeoutMs: firstMs,
    });
    return { client, config };
  } catch (err) {
    await client.close();
    if (err instanceof ZgridError && err.code === ErrorCode.TIMEOUT)
      throw new NoServerError(client.address.endpoint, firstMs);
    throw err;
  }
}

/**
 * `--data-dir DIR` of a command that runs beside the server (`zgrid ruok` in a container's health
 * check), checked to be a directory; undefined when not given.
 */
export function dataDirFlag(values: Record<string, unknown>): string | undefined {
  const dir = values["data-dir"] as string | undefined;
  if (dir === undefined) return undefined;
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    // reported below
  }
  if (!isDir) throw new UsageError(`--data-dir ${dir} is not a directory: give the server's data dir`);
  return dir;
}

export type DaemonKind = "default" | "metrics" | "status";

interface InfoFile {
  url: string;
  metricsUrl?: string | null;
  statusUrl?: string | null;
}

function readInfo(file: string): InfoFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new UsageError(`cannot read the connection-info file ${file}: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || typeof (parsed as InfoFile).url !== "string") {
    throw new UsageError(`${file} is not a zgrid connection-info file (no "url")`);
  }
  return parsed as InfoFile;
}

/**
 * The URL of the wanted daemon: --url, else ZGRID_URL, else --connection-info (or its env). A DEFAULT URL
 * reaches the METRICS and STATUS daemons through the ports `getconfig` reports.
 */
export async function daemonUrl(values: Record<string, unknown>, kind: DaemonKind): Promise<string> {
  const url = (values.url as string | undefined) ?? process.env.ZGRID_URL;
  const infoFile =
    (values["connection-info"] as string | undefined) ?? process.env.ZGRID_SERVER_CONNECTION_INFO;
  if (!url && infoFile) {
    const info = readInfo(infoFile);
    const wanted = kind === "metrics" ? info.metricsUrl : kind === "status" ? info.statusUrl : info.url;
    if (!wanted) throw new UsageError(`the server in ${infoFile} runs no ${kind.toUpperCase()} daemon`);
    return wanted;
  }
  if (!url)
    throw new UsageError(
      "where is the server? pass --url tcp://HOST:PORT?token=..., set ZGRID_URL, or pass --connection-info FILE",
    );
  if (kind === "default") return url;
  // The URL may already point at the wanted daemon: ask it which ports the server has.
  const { client: probe, config } = await connectChecked(
    url,
    firstContactMs(values),
    5000,
    dataDirFlag(values),
  );
  try {
    if (String(config.daemon).toLowerCase() === kind) return url;
    const port = kind === "metrics" ? config.metricsPort : config.statusPort;
    if (typeof port !== "number")
      throw new UsageError(
        `the server at ${parseServerUrl(url).endpoint} runs no ${kind.toUpperCase()} daemon`,
      );
    return withPort(parseServerUrl(url), port);
  } finally {
    await probe.close();
  }
}

/** Connects to the wanted daemon, runs `fn`, closes. */
export async function withClient<T>(
  values: Record<string, unknown>,
  kind: DaemonKind,
  fn: (c: ZgridClient) => Promise<T>,
  timeoutMs = 30_000,
): Promise<T> {
  const { client } = await connectChecked(
    await daemonUrl(values, kind),
    firstContactMs(values),
    timeoutMs,
    dataDirFlag(values),
  );
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}
