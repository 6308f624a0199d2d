import type { ServerContext } from "../daemons/context.js";
import type { CommandRegistrar } from "../protocol/command-map.js";
import { memStatus } from "./builtins.js";

export const MODULE = "StatusMsg";

export function serverStatus(server: ServerContext): Record<string, unknown> {
  const ep = server.endpoints();
  return {
    status: "RUNNING",
    version: server.version,
    startedAt: server.startedAt.toISOString(),
    uptimeSeconds: (Date.now() - server.startedAt.getTime()) / 1000,
    daemons: server.config.daemons,
    endpoints: ep,
    requests: { total: server.metrics.totalRequests, byDaemon: server.daemonRequests() },
    memory: memStatus(),
    scheduler: server.scheduler.summary(),
  };
}

/** The STATUS daemon's own command; `getCmdMap` shows it under StatusMsg. */
export function registerStatus(map: CommandRegistrar, server: ServerContext): void {
  map.register("getstatus", () => ({ msg: serverStatus(server) }));
}
