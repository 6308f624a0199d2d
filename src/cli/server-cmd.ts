import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { redact, waitForFreeDatabase } from "../store/pg-store.js";
import {
  ConfigError,
  flagsToKeys,
  optionsHelp,
  parseArgsOptions,
  readConfigFile,
  resolveOptions,
} from "../config/options.js";
import { SERVER_OPTIONS, toServerConfig, type ServerConfig } from "../daemons/config.js";
import { Server, type ConnectionInfo } from "../daemons/server.js";
import { defaultTokensFile, recordTokens } from "../daemons/tokens-file.js";
import { Dashboard, dashboardBanner } from "../dashboard/index.js";
import { parse } from "./usage.js";

export const SERVER_HELP = `zgrid server [options]

Starts the zgrid server: the DEFAULT daemon (clients), the worker endpoint, and the METRICS and STATUS
daemons, each on its own port. Every option is also an environment variable and a key of the --config
JSON file; the flag wins over the environment, which wins over the file.

${optionsHelp(SERVER_OPTIONS)}`;

/** In the data dir while `--standby` waits for the database (its pid and why it waits). */
export const STANDBY_FILE = "standby";

/** Reads flags, environment and config file into a ServerConfig. */
export function serverConfigFrom(argv: string[], env: NodeJS.ProcessEnv = process.env): ServerConfig | null {
  const { values } = parse(argv, parseArgsOptions(SERVER_OPTIONS));
  if (values.help) return null;
  const flags = flagsToKeys(SERVER_OPTIONS, values);
  const configPath = (flags.config as string | undefined) ?? env.ZGRID_CONFIG;
  const file = configPath ? { path: configPath, values: readConfigFile(configPath) } : undefined;
  return toServerConfig(resolveOptions(SERVER_OPTIONS, flags, env, file));
}

/** `zgrid server`: runs until `shutdown`, SIGTERM or SIGINT, then exits 0. */
export async function runServer(argv: string[]): Promise<number> {
  let config: ServerConfig | null;
  try {
    config = serverConfigFrom(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`zgrid server: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (!config) {
    process.stdout.write(SERVER_HELP + "\n");
    return 0;
  }
  let server: Server;
  let info;
  // A standby's marker left by a process that died while it waited: this one is not waiting (yet). A
  // data dir that is not there or not a directory is the store's to explain.
  if (config.standby) {
    try {
      rmSync(join(config.dataDir, STANDBY_FILE), { force: true });
    } catch {
      /* see above */
    }
  }
  for (;;) {
    if (config.standby && !(await standBy(config))) return 0;
    try {
      server = new Server(config);
      break;
    } catch (err) {
      // Another standby took the database first: this one waits again.
      if (config.standby && /another zgrid server owns/.test((err as Error).message)) continue;
      process.stderr.write(`zgrid server: cannot start: ${(err as Error).message}\n`);
      return 1;
    }
  }
  // Handlers first: a signal that arrives while the server starts (its connection-info file may
  // already be there) must still end in a clean shutdown, not kill the process.
  let started = false;
  let stopSignal: string | null = null;
  const stop = (signal: string): void => {
    stopSignal = signal;
    if (!started) return;
    server.log.info({ signal }, "signal received, shutting down");
    void server.shutdown();
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  // SIGHUP reads the users file and the Curve allow-lists again (a bad one is logged and the one before
  // is kept); without either, it keeps its default (a hangup ends the server).
  if (config.usersFile !== undefined || config.curve) {
    process.on("SIGHUP", () => {
      if (!started) return;
      if (config.usersFile !== undefined) server.reloadUsers();
      if (config.curve) server.reloadCurveAllowLists();
    });
  }
  // A promise nobody awaited that failed is a bug of ours, not a reason to drop every client: log it
  // loudly and keep serving.
  process.on("unhandledRejection", (err) => server.log.error({ err }, "unhandled rejection (serving on)"));
  let tokensFile: string | null = null;
  try {
    // The token is in ~/.zgrid/tokens.txt before the connection-info file says the server is ready.
    info = await server.start((i) => {
      if (!config.noTokensFile) tokensFile = saveToken(i, server);
    });
  } catch (err) {
    process.stderr.write(`zgrid server: cannot start: ${(err as Error).message}\n`);
    server.log.flush?.();
    return 1;
  }
  started = true;
  if (stopSignal) stop(stopSignal);
  let dashboard: Dashboard | null = null;
  if (config.dashboardPort !== undefined) {
    try {
      dashboard = await Dashboard.start({
        url: info.url,
        token: server.token,
        statusUrl: info.statusUrl,
        curveKeyPair: server.internalCurveKeys ?? undefined,
        port: config.dashboardPort,
        host: config.dashboardHost,
        log: (message) => server.log.warn(message),
      });
    } catch (err) {
      process.stderr.write(`zgrid server: ${(err as Error).message}\n`);
      await server.shutdown();
      return 1;
    }
  }
  process.stdout.write(
    [
      `zgrid ${info.version} server is ready`,
      `  connect URL:  ${info.url}`,
      `  workers:      ${info.workerUrl}`,
      // The client token is printed once, in the connect URL: the other daemons take the same one.
      info.metricsUrl ? `  metrics:      ${withoutToken(info.metricsUrl)} (the connect URL's token)` : "",
      info.statusUrl ? `  status:       ${withoutToken(info.statusUrl)} (the connect URL's token)` : "",
      server.curveKeys
        ? `  CurveZMQ:     on, server public key ${server.curveKeys.publicKey} (clients: ${config.curveClients ?? "any key"}, workers: ${config.curveWorkers ?? "any key"})`
        : "",
      dashboard ? `  dashboard:    ${dashboardBanner(dashboard.url, dashboard.authEnabled)}` : "",
      `  data:         ${info.store === "memory" ? "in memory only (--store memory): nothing survives a restart" : info.store}`,
      config.connectionInfo ? `  connection info written to ${resolve(config.connectionInfo)}` : "",
      tokensFile ? `  token saved in ${tokensFile} (clients here need only tcp://HOST:PORT)` : "",
    ]
      .filter(Boolean)
      .join("\n") + "\n",
  );
  await server.closed;
  await dashboard?.close();
  if (server.fenced !== null) {
    process.stderr.write(`zgrid server: stopped: ${server.fenced}\n`);
    return 1;
  }
  return 0;
}

/**
 * Records the client token (and with --curve the server's public key) for the client, METRICS and
 * STATUS ports in ~/.zgrid/tokens.txt, so that a client on this machine needs no token (design §2). A failure is a warning: the server serves on.
 * Returns the file's path, or null when nothing was written.
 */
function saveToken(info: ConnectionInfo, server: Server): string | null {
  const token = /[?&]token=([^&]+)/.exec(info.url)?.[1];
  if (!token) return null; // --no-auth: nothing to record
  const ports = [info.url, info.metricsUrl, info.statusUrl].flatMap((u) => {
    const port = u ? /:(\d+)(?:[/?]|$)/.exec(u)?.[1] : undefined;
    return port ? [`${info.host}:${port}`] : [];
  });
  const file = defaultTokensFile();
  try {
    recordTokens(ports, decodeURIComponent(token), file, server.curveKeys?.publicKey);
    return file;
  } catch (err) {
    server.log.warn({ err }, `cannot record the token in ${file}; clients must give it in their URL`);
    return null;
  }
}

/** A URL with its token left out, for the lines of the banner after the one that shows it. */
function withoutToken(url: string): string {
  const at = url.indexOf("?");
  if (at < 0) return url;
  const q = new URLSearchParams(url.slice(at + 1));
  q.delete("token");
  const rest = q.toString();
  return url.slice(0, at) + (rest ? `?${rest}` : "");
}

/**
 * `--standby`: waits, no port bound, until no server owns the database; false if SIGTERM or SIGINT
 * came first (the standby exits 0). While it waits, DATA_DIR/standby says so (a liveness probe cannot
 * ask a server that binds no port: Kubernetes' PostgreSQL variant reads this file instead).
 */
async function standBy(config: ServerConfig): Promise<boolean> {
  const stop = new AbortController();
  const abort = (): void => stop.abort();
  process.once("SIGTERM", abort);
  process.once("SIGINT", abort);
  const marker = join(config.dataDir, STANDBY_FILE);
  try {
    return await waitForFreeDatabase(config.pgUrl!, stop.signal, (why) => {
      mkdirSync(config.dataDir, { recursive: true });
      writeFileSync(marker, `${process.pid} ${why}\n`);
      process.stdout.write(
        `zgrid server: standby: ${why} (${redact(config.pgUrl!)}); taking over when it stops\n`,
      );
    });
  } finally {
    rmSync(marker, { force: true });
    process.off("SIGTERM", abort);
    process.off("SIGINT", abort);
  }
}
