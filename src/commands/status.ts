import type { ServerContext } from "../daemons/context.js";
import type { CommandRegistrar } from "../protocol/command-map.js";
import { memStatus } from "./builtins.js";

export const MODULE = "StatusMsg";

/** The server's status as `getstatus` answers it, computed on the scheduler's thread. */
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
    scheduler: server.scheduler.views.summary(),
  };
}

/** Where the STATUS daemon gets the status it reports. */
export interface StatusSource {
  /** `serverStatus`, fresh when the scheduler's loop answers soon enough, else the last one it gave. */
  status(): Promise<Record<string, unknown>>;
}

/** The STATUS daemon's own command; `getCmdMap` shows it under StatusMsg. */
export function registerStatus(map: CommandRegistrar, source: StatusSource): void {
  map.register("getstatus", async () => ({ msg: await source.status() }));
}
