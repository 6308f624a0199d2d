import { hostname } from "node:os";
import { version as zmqVersion } from "zeromq";
import type { ServerContext } from "../daemons/context.js";
import type { CommandHandler, CommandMap, CommandRegistrar } from "../protocol/command-map.js";

export const MODULE = "BuiltIns";

function memUsed(): number {
  return process.memoryUsage().rss;
}

export function memStatus(): Record<string, number> {
  const m = process.memoryUsage();
  const total = process.constrainedMemory?.() || 0;
  return {
    rss: m.rss,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
    constrainedMemory: total,
  };
}

/** What the built-ins read of the server: plain data and two calls, so a daemon on a thread can serve them. */
export type BuiltinsContext = Pick<
  ServerContext,
  "config" | "version" | "instance" | "authEnabled" | "endpoints" | "security" | "requestShutdown"
>;

/** Built-ins a daemon answers its own way (the STATUS daemon's `ruok` checks the scheduler's loop is alive). */
export interface BuiltinsOverrides {
  ruok?: CommandHandler;
  getmemstatus?: CommandHandler;
}

export function serverConfigSummary(server: BuiltinsContext, daemon: string): Record<string, unknown> {
  const ep = server.endpoints();
  return {
    version: server.version,
    instance: server.instance,
    hostname: hostname(),
    daemon,
    daemons: server.config.daemons,
    host: ep.host,
    port: ep.port,
    workerPort: ep.workerPort,
    metricsPort: ep.metricsPort,
    statusPort: ep.statusPort,
    store: server.config.store,
    dataDir: server.config.dataDir,
    authEnabled: server.authEnabled,
    ...server.security(),
    maxFrameBytes: server.config.maxFrameBytes,
    maxBatch: server.config.maxBatch,
    chunkBytes: Math.min(8 * 1024 * 1024, server.config.maxFrameBytes),
    heartbeatMs: server.config.heartbeatMs,
    nodeVersion: process.versions.node,
    zmqVersion,
  };
}

/** The built-ins every daemon answers (design §3.4). */
export function registerBuiltins(
  map: CommandRegistrar,
  server: BuiltinsContext,
  daemon: string,
  commands: CommandMap,
  overrides: BuiltinsOverrides = {},
): void {
  map.register("getCmdMap", () => ({ msg: commands.toRecord() }));
  map.register("connect", (req) => ({
    msg: `connected to zgrid ${server.version} on ${hostname()}:${server.endpoints().port} (${daemon} daemon) as user ${req.user}`,
  }));
  map.register("disconnect", (req) => ({ msg: `disconnected user ${req.user} from zgrid on ${hostname()}` }));
  map.register("ruok", overrides.ruok ?? (() => ({ msg: "imok" })));
  map.register("noop", () => ({ msg: "noop" }));
  map.register("getconfig", () => ({ msg: serverConfigSummary(server, daemon) }));
  map.register("getmemused", () => ({ msg: memUsed() }));
  map.register("getmemstatus", overrides.getmemstatus ?? (() => ({ msg: memStatus() })));
  map.register("shutdown", (req) => {
    server.requestShutdown(req.user);
    return { msg: "shutting down" };
  });
}
