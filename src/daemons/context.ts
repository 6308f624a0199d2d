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

/**
 * What `getconfig` tells of the server's security: whether each part is on and how many keys or users
 * it holds, never a key or a token.
 */
export interface SecuritySummary {
  /** Started with `--curve`: every socket is CurveZMQ. */
  curve: boolean;
  /** The public keys `--curve-clients` lists; null: any key may connect (or no `--curve`). */
  curveClientKeys: number | null;
  /** The public keys `--curve-workers` lists; null: any key may connect (or no `--curve`). */
  curveWorkerKeys: number | null;
  /** A `--users-file` is in force (without one, the server token is an admin's). */
  usersFile: boolean;
  /** The users it names; null without a users file. */
  users: number | null;
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
  /** Curve and users as in force now (a SIGHUP may change them). */
  security(): SecuritySummary;
  /** Daemon name → requests it has authenticated so far. */
  daemonRequests(): Record<string, number>;
  /** Graceful shutdown, started after the current reply is sent. */
  requestShutdown(user: string): void;
}
