import { hostname } from "node:os";
import { version as zmqVersion } from "zeromq";
import type { ServerContext } from "../daemons/context.js";
import type { CommandMap, CommandRegistrar } from "../protocol/command-map.js";

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

export function serverConfigSummary(server: ServerContext, daemon: string): Record<string, unknown> {
  const ep = server.endpoints();
  return {
    version: server.version,
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
  server: ServerContext,
  daemon: string,
  commands: CommandMap,
): void {
  map.register("getCmdMap", () => ({ msg: commands.toRecord() }));
  map.register("connect", (req) => ({
    msg: `connected to zgrid ${server.version} on ${hostname()}:${server.endpoints().port} (${daemon} daemon) as user ${req.user}`,
  }));
  map.register("disconnect", (req) => ({ msg: `disconnected user ${req.user} from zgrid on ${hostname()}` }));
  map.register("ruok", () => ({ msg: "imok" }));
  map.register("noop", () => ({ msg: "noop" }));
  map.register("getconfig", () => ({ msg: serverConfigSummary(server, daemon) }));
  map.register("getmemused", () => ({ msg: memUsed() }));
  map.register("getmemstatus", () => ({ msg: memStatus() }));
  map.register("shutdown", (req) => {
    server.requestShutdown(req.user);
    return { msg: "shutting down" };
  });
}
