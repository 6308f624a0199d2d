import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** Arkouda's metric categories (design §9). */
export const METRIC_CATEGORIES = [
  "ALL",
  "NUM_REQUESTS",
  "AVG_RESPONSE_TIME",
  "TOTAL_RESPONSE_TIME",
  "TOTAL_MEMORY_USED",
  "SYSTEM",
  "SERVER",
  "SERVER_INFO",
  "NUM_ERRORS",
  "TASKS",
] as const;
export type MetricCategory = (typeof METRIC_CATEGORIES)[number];

export type MetricScope = "GLOBAL" | "REQUEST" | "USER";

/** One metric as the `metrics` command returns it (Arkouda's shape). */
export interface Metric {
  name: string;
  category: MetricCategory;
  scope: MetricScope;
  timestamp: string;
  value: number;
  user?: string;
}

interface Tally {
  count: number;
  seconds: number;
  errors: number;
}

function tally(map: Map<string, Tally>, key: string): Tally {
  let t = map.get(key);
  if (!t) {
    t = { count: 0, seconds: 0, errors: 0 };
    map.set(key, t);
  }
  return t;
}

/**
 * Request counters of one server, kept twice: as plain tallies for Arkouda-style `metrics` replies and
 * as prom-client series for Prometheus. One registry per server, so several servers can share a process.
 */
export class RequestMetrics {
  readonly registry = new Registry();
  private readonly byCommand = new Map<string, Tally>();
  private readonly byUser = new Map<string, Map<string, Tally>>();
  private readonly total: Tally = { count: 0, seconds: 0, errors: 0 };
  private readonly requests: Counter<"daemon" | "command" | "user">;
  private readonly errors: Counter<"daemon" | "command" | "user" | "code">;
  private readonly duration: Histogram<"daemon" | "command">;
  private readonly droppedReplies: Counter<"daemon">;
  private readonly denied: Counter<"daemon" | "user">;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "zgrid_" });
    // prom-client names these gauges `_total`, which Prometheus reserves for counters (promtool rejects
    // them); the same counts remain, by type, in zgrid_nodejs_active_{handles,requests,resources}.
    for (const name of ["handles", "requests", "resources"])
      this.registry.removeSingleMetric(`zgrid_nodejs_active_${name}_total`);
    this.requests = new Counter({
      name: "zgrid_requests_total",
      help: "Requests answered, by daemon, command and user.",
      labelNames: ["daemon", "command", "user"],
      registers: [this.registry],
    });
    this.errors = new Counter({
      name: "zgrid_request_errors_total",
      help: "Requests answered with an ERROR reply, by daemon, command, user and error code.",
      labelNames: ["daemon", "command", "user", "code"],
      registers: [this.registry],
    });
    // Users are those of the users file (or the names admins claim): the labels stay few.
    this.denied = new Counter({
      name: "zgrid_requests_denied_total",
      help: "Requests refused with PERMISSION_DENIED (the role does not grant the command, or the session is another user's), by daemon and user.",
      labelNames: ["daemon", "user"],
      registers: [this.registry],
    });
    this.droppedReplies = new Counter({
      name: "zgrid_replies_dropped_total",
      help: "Replies and events dropped because their peer did not read them (its queue was full), by daemon.",
      labelNames: ["daemon"],
      registers: [this.registry],
    });
    this.duration = new Histogram({
      name: "zgrid_request_duration_seconds",
      help: "Time from a request's arrival to its reply, by daemon and command.",
      labelNames: ["daemon", "command"],
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [this.registry],
    });
  }

  dropped(daemon: string, count: number): void {
    this.droppedReplies.inc({ daemon }, count);
  }

  /** Records one answered request. `command` is "<invalid>" when the header could not be read. */
  record(daemon: string, command: string, user: string, seconds: number, errorCode?: string): void {
    const perCommand = tally(this.byCommand, command);
    let users = this.byUser.get(user);
    if (!users) {
      users = new Map();
      this.byUser.set(user, users);
    }
    const perUser = tally(users, command);
    for (const t of [perCommand, perUser, this.total]) {
      t.count++;
      t.seconds += seconds;
      if (errorCode) t.errors++;
    }
    this.requests.inc({ daemon, command, user });
    this.duration.observe({ daemon, command }, seconds);
    if (errorCode) this.errors.inc({ daemon, command, user, code: errorCode });
    if (errorCode === "PERMISSION_DENIED") this.denied.inc({ daemon, user });
  }

  get totalRequests(): number {
    return this.total.count;
  }

  /** Request metrics of one category, GLOBAL/REQUEST scoped then USER scoped, as Arkouda lists them. */
  requestMetrics(
    category: "NUM_REQUESTS" | "AVG_RESPONSE_TIME" | "TOTAL_RESPONSE_TIME" | "NUM_ERRORS",
  ): Metric[] {
    const timestamp = new Date().toISOString();
    const value = (t: Tally): number => {
      switch (category) {
        case "NUM_REQUESTS":
          return t.count;
        case "NUM_ERRORS":
          return t.errors;
        case "TOTAL_RESPONSE_TIME":
          return t.seconds;
        case "AVG_RESPONSE_TIME":
          return t.count ? t.seconds / t.count : 0;
      }
    };
    const out: Metric[] = [{ name: "total", category, scope: "GLOBAL", timestamp, value: value(this.total) }];
    for (const [name, t] of this.byCommand)
      out.push({ name, category, scope: "REQUEST", timestamp, value: value(t) });
    for (const [user, commands] of this.byUser) {
      const userTotal: Tally = { count: 0, seconds: 0, errors: 0 };
      for (const [name, t] of commands) {
        out.push({ name, category, scope: "USER", timestamp, value: value(t), user });
        userTotal.count += t.count;
        userTotal.seconds += t.seconds;
        userTotal.errors += t.errors;
      }
      out.push({ name: "total", category, scope: "USER", timestamp, value: value(userTotal), user });
    }
    return out;
  }
}
