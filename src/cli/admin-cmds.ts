import { ErrorCode, ZgridError } from "../protocol/errors.js";
import { parseServerUrl } from "../client/url.js";
import {
  NoServerError,
  TARGET_HELP,
  TARGET_OPTIONS,
  dataDirFlag,
  firstContactMs,
  withClient,
} from "./target.js";
import { parse } from "./usage.js";

function print(value: unknown, json: boolean): void {
  process.stdout.write((json || typeof value !== "string" ? JSON.stringify(value, null, 2) : value) + "\n");
}

export const RUOK_HELP = `zgrid ruok [--url URL | --connection-info FILE] [--timeout MS] [--data-dir DIR]

Asks the STATUS daemon (or the DEFAULT one when the STATUS daemon cannot be reached) whether the server
is alive; prints "imok" and exits 0, else exits 1, also when the STATUS daemon answers that the
scheduler's loop has been stuck for --liveness-ms. Made for liveness probes: with --timeout MS (default
2000) it gives up after about MS milliseconds.

${TARGET_HELP}
      --data-dir DIR             the server's data dir, for a probe beside the server: when the
                                 server requires CurveZMQ and the URL has no serverKey=, the key
                                 pair in DIR/curve-server.key is used (the server always lets it in)`;

export async function runRuok(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...TARGET_OPTIONS, "data-dir": { type: "string" } });
  if (values.help) return (print(RUOK_HELP, false), 0);
  dataDirFlag(values);
  const timeout = firstContactMs(values);
  const deadline = Date.now() + timeout;
  const answer = await withClient(values, "status", (c) => c.ruok(), timeout).catch((err: unknown) => {
    // The STATUS daemon answered that the scheduler is stuck, or nothing answers at the URL given:
    // that is the verdict. Only a STATUS daemon that cannot be reached sends the question to the
    // DEFAULT one, within what is left of the time.
    if (err instanceof ZgridError && err.code === ErrorCode.UNAVAILABLE && !(err instanceof NoServerError))
      throw err;
    if (err instanceof NoServerError && err.endpoint === givenEndpoint(values)) throw err;
    const left = String(Math.max(200, deadline - Date.now()));
    return withClient({ ...values, timeout: left }, "default", (c) => c.ruok(), Number(left));
  });
  print(answer, false);
  return answer === "imok" ? 0 : 1;
}

/** The endpoint of --url (or ZGRID_URL), if one was given. */
function givenEndpoint(values: Record<string, unknown>): string | undefined {
  const url = (values.url as string | undefined) ?? process.env.ZGRID_URL;
  return url ? parseServerUrl(url).endpoint : undefined;
}

export const STATUS_HELP = `zgrid status [--url URL | --connection-info FILE] [--json]

Shows the server's status from its STATUS daemon: uptime, daemons, requests, tasks, workers.

${TARGET_HELP}
      --json                     print the raw status as JSON`;

function formatDuration(seconds: number): string {
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0
    ? `${h}h${String(m).padStart(2, "0")}m`
    : m > 0
      ? `${m}m${String(s % 60).padStart(2, "0")}s`
      : `${s}s`;
}

export async function runStatus(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...TARGET_OPTIONS, json: { type: "boolean" } });
  if (values.help) return (print(STATUS_HELP, false), 0);
  const status = await withClient(values, "status", (c) => c.getStatus());
  if (values.json) return (print(status, true), 0);
  const s = status as {
    version: string;
    uptimeSeconds: number;
    statusAgeMs?: number;
    daemons: string[];
    endpoints: Record<string, unknown>;
    requests: { total: number; byDaemon: Record<string, number> };
    memory: { rss: number };
    scheduler: {
      sessions: number;
      tasks: number;
      workers: number;
      slots: number;
      busySlots: number;
      store: {
        name: string;
        location: string;
        sizeBytes: number;
        pendingWrites: number;
        durability?: string;
      };
      tasksByStatus: Record<string, number>;
      queued: Record<string, number>;
    };
  };
  const tasks = Object.entries(s.scheduler.tasksByStatus)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
  const queued = Object.entries(s.scheduler.queued)
    .map(([p, n]) => `${p} ${n}`)
    .join(", ");
  print(
    [
      `zgrid ${s.version}, up ${formatDuration(s.uptimeSeconds)}, memory ${(s.memory.rss / 2 ** 20).toFixed(0)} MB`,
      `daemons:  ${s.daemons.join(", ")}`,
      `requests: ${s.requests.total} (${Object.entries(s.requests.byDaemon)
        .map(([d, n]) => `${d} ${n}`)
        .join(", ")})`,
      `sessions: ${s.scheduler.sessions}`,
      `tasks:    ${s.scheduler.tasks}${tasks ? ` (${tasks})` : ""}`,
      `queued:   ${queued || "none"}`,
      `workers:  ${s.scheduler.workers}, slots ${s.scheduler.busySlots}/${s.scheduler.slots} busy`,
      `store:    ${s.scheduler.store.name} ${s.scheduler.store.location}, ${(s.scheduler.store.sizeBytes / 2 ** 20).toFixed(1)} MB, ${s.scheduler.store.pendingWrites} pending writes${s.scheduler.store.durability === "fsync" ? ", fsynced before each reply" : ", not durable (memory)"}`,
      ...((s.statusAgeMs ?? 0) >= 250
        ? [`(figures ${(s.statusAgeMs! / 1000).toFixed(1)} s old: the scheduler is busy)`]
        : []),
    ].join("\n"),
    false,
  );
  return 0;
}

export const METRICS_HELP = `zgrid metrics [--category C] [--prometheus] [--url URL | --connection-info FILE]

Reads the METRICS daemon: Arkouda-style metrics of one category (ALL, NUM_REQUESTS, AVG_RESPONSE_TIME,
TOTAL_RESPONSE_TIME, TOTAL_MEMORY_USED, SYSTEM, SERVER, SERVER_INFO, NUM_ERRORS, TASKS) as JSON, or the
Prometheus text exposition.

${TARGET_HELP}
      --category C               metric category (default ALL)
      --prometheus               print the Prometheus exposition instead`;

export async function runMetrics(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    ...TARGET_OPTIONS,
    category: { type: "string" },
    prometheus: { type: "boolean" },
  });
  if (values.help) return (print(METRICS_HELP, false), 0);
  if (values.prometheus) {
    process.stdout.write(await withClient(values, "metrics", (c) => c.prometheus()));
    return 0;
  }
  print(
    await withClient(values, "metrics", (c) => c.metrics((values.category as string | undefined) ?? "ALL")),
    true,
  );
  return 0;
}

export const SHUTDOWN_HELP = `zgrid shutdown [--url URL | --connection-info FILE]

Asks the server to shut down gracefully: it stops accepting, answers what is in flight, closes its
sockets, removes its connection-info file and exits 0.

${TARGET_HELP}`;

export async function runShutdown(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...TARGET_OPTIONS });
  if (values.help) return (print(SHUTDOWN_HELP, false), 0);
  print(await withClient(values, "default", (c) => c.shutdown()), false);
  return 0;
}

export const WHOAMI_HELP = `zgrid whoami [--url URL | --connection-info FILE] [--json]

Shows who the server takes you for (auth.currentUser): your user, role, and the commands the role
grants. With a users file on the server (--users-file), the token names the user; without one, the
server token is an admin's.

${TARGET_HELP}
      --json                     print the answer as JSON`;

export async function runWhoami(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...TARGET_OPTIONS, json: { type: "boolean" } });
  if (values.help) return (print(WHOAMI_HELP, false), 0);
  const me = await withClient(values, "default", (c) => c.currentUser());
  if (values.json) return (print(me, true), 0);
  const permissions = me.permissions.includes("*") ? "every command" : me.permissions.join(", ");
  const source = me.fromUsersFile ? "from the users file" : "the server token's admin";
  print(`${me.user} (role ${me.role}, ${source})\npermissions: ${permissions}`, false);
  return 0;
}
