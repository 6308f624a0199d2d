import type { Logger } from "../log.js";
import type { RequestMetrics } from "../metrics/request-metrics.js";
import type { Scheduler } from "../scheduler/scheduler.js";
import type { ServerConfig } from "./config.js";

export const VERSION = "0.1.0";

/** Bound endpoints of a running server, as the connection-info file and `getconfig` give them. */
export interface Endpoints {
  host: string;
  port: number;
  workerPort: number;
  metricsPort: number | null;
  statusPort: number | null;
}

/** What command modules see of the server: passed as the second argument of `register(map, server)`. */
export interface ServerContext {
  readonly config: ServerConfig;
  readonly metrics: RequestMetrics;
  readonly log: Logger;
  readonly scheduler: Scheduler;
  readonly startedAt: Date;
  readonly version: string;
  /** Random per start of the server: a client sees a restart as a change of it (getconfig, subscribe). */
  readonly instance: string;
  readonly authEnabled: boolean;
  endpoints(): Endpoints;
  /** Daemon name → requests it has authenticated so far. */
  daemonRequests(): Record<string, number>;
  /** Graceful shutdown, started after the current reply is sent. */
  requestShutdown(user: string): void;
}
