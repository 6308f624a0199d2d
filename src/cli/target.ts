import { readFileSync } from "node:fs";
import { connect, type ZgridClient } from "../client/client.js";
import { parseServerUrl, withPort } from "../client/url.js";
import { UsageError } from "./usage.js";

/** Options every client command takes to find the server. */
export const TARGET_OPTIONS = {
  url: { type: "string", short: "u" },
  "connection-info": { type: "string" },
} as const;

export const TARGET_HELP = `  -u, --url URL                  server URL, tcp://HOST:PORT?token=TOKEN [ZGRID_URL]
      --connection-info FILE     the server's connection-info file [ZGRID_SERVER_CONNECTION_INFO]`;

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
  const probe = await connect(url, { timeoutMs: 5000 });
  try {
    const config = await probe.getConfig();
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
  const client = await connect(await daemonUrl(values, kind), { timeoutMs });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}
