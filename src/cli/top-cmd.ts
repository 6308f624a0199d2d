import type { ZgridClient } from "../client/client.js";
import type { SessionInfo, WorkerInfo } from "../client/types.js";
import { TARGET_HELP, TARGET_OPTIONS, connectChecked, daemonUrl, firstContactMs } from "./target.js";
import { fitTable, wrap } from "./fit.js";
import { parse, UsageError } from "./usage.js";

export const TOP_HELP = `zgrid top [--url URL | --connection-info FILE] [--interval MS] [--once]

A live view of the grid, refreshed from the STATUS daemon (uptime, requests, tasks by status, queues,
slots, store) and the DEFAULT daemon (workers, recent sessions): tasks by status, queue per partition,
workers with their busy slots and last heartbeat, throughput (completed tasks per second between two
refreshes). On a terminal it redraws in place, fitted to its width (and at once when it is resized),
until q or Ctrl+C; with --once, or when the output is not a terminal, it prints one snapshot and exits.

${TARGET_HELP}
      --interval MS              time between refreshes (default 1000)
      --once                     print one snapshot and exit`;

/** What `getstatus` returns, as far as `top` reads it. */
interface StatusReply {
  version?: string;
  uptimeSeconds?: number;
  daemons?: string[];
  requests?: { total?: number };
  memory?: { rss?: number };
  scheduler?: {
    sessions?: number;
    tasks?: number;
    workers?: number;
    slots?: number;
    busySlots?: number;
    store?: { name?: string; location?: string; sizeBytes?: number; pendingWrites?: number };
    tasksByStatus?: Record<string, number>;
    queued?: Record<string, number>;
  };
}

/** One refresh's worth of data. */
export interface TopSnapshot {
  at: number;
  status: StatusReply;
  workers: WorkerInfo[];
  workersTotal: number;
  sessions: (SessionInfo & { counts?: Record<string, number> })[];
  sessionsTotal: number;
}

const RECENT_SESSIONS = 5;
const MAX_WORKER_ROWS = 20;

function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0
    ? `${h}h${String(m).padStart(2, "0")}m`
    : m > 0
      ? `${m}m${String(s % 60).padStart(2, "0")}s`
      : `${s}s`;
}

function age(ms: number): string {
  const a = Math.max(0, ms);
  return a < 10_000 ? `${(a / 1000).toFixed(1)}s` : duration(a / 1000);
}

/** Reads one snapshot: `getstatus` from STATUS, `workers.list` and `sessions.list` from DEFAULT. */
export async function takeSnapshot(statusClient: ZgridClient, client: ZgridClient): Promise<TopSnapshot> {
  const [status, workers, sessions] = await Promise.all([
    statusClient.getStatus() as Promise<StatusReply>,
    client.listWorkers(),
    client.listSessions({ sort: { field: "createdAt", direction: "desc" }, pageSize: RECENT_SESSIONS }),
  ]);
  const recent = sessions.items.slice(0, RECENT_SESSIONS);
  const counts = await Promise.all(
    recent.map((s) => client.countTasks({ sessionId: s.sessionId }).catch(() => undefined)),
  );
  return {
    at: Date.now(),
    status,
    workers: workers.items,
    workersTotal: workers.total,
    sessions: recent.map((s, i) => ({ ...s, counts: counts[i] as Record<string, number> | undefined })),
    sessionsTotal: sessions.total,
  };
}

/**
 * The text of one frame, no line longer than `columns` (a word is never cut: figures wrap, tables lose
 * columns); `previous` (the snapshot before) gives the throughput.
 */
export function renderTop(snap: TopSnapshot, previous?: TopSnapshot, source = "", columns = 1000): string {
  const st = snap.status;
  const sch = st.scheduler ?? {};
  const byStatus = sch.tasksByStatus ?? {};
  const lines: string[] = [];
  const time = new Date(snap.at).toISOString().slice(11, 19);
  const prose = (text: string, sep = ", "): void => void lines.push(...wrap(text, columns, sep));
  prose(
    `zgrid ${st.version ?? "?"}${source ? ` at ${source}` : ""}, up ${duration(st.uptimeSeconds ?? 0)}, ` +
      `${st.requests?.total ?? 0} requests, memory ${((st.memory?.rss ?? 0) / 2 ** 20).toFixed(0)} MB, ${time} UTC`,
  );
  prose(
    `sessions ${sch.sessions ?? 0}, tasks ${sch.tasks ?? 0}, workers ${sch.workers ?? 0}, ` +
      `slots ${sch.busySlots ?? 0}/${sch.slots ?? 0} busy` +
      (sch.store
        ? `, store ${sch.store.name ?? "?"} ${((sch.store.sizeBytes ?? 0) / 2 ** 20).toFixed(1)} MB, ${sch.store.pendingWrites ?? 0} pending writes`
        : ""),
  );

  lines.push("", "TASKS");
  const statuses = Object.entries(byStatus).filter(([, n]) => n > 0);
  prose(statuses.length ? "  " + statuses.map(([k, n]) => `${k} ${n}`).join("  ") : "  none", "  ");

  const completed = byStatus.COMPLETED ?? 0;
  let rate: string;
  if (previous && snap.at > previous.at) {
    const done = completed - (previous.status.scheduler?.tasksByStatus?.COMPLETED ?? 0);
    const seconds = (snap.at - previous.at) / 1000;
    rate = `${(Math.max(0, done) / seconds).toFixed(1)} tasks/s over the last ${seconds.toFixed(1)}s`;
  } else {
    rate = "- tasks/s (needs two refreshes)";
  }
  const uptime = st.uptimeSeconds ?? 0;
  const average = uptime > 0 ? `${(completed / uptime).toFixed(1)} tasks/s` : "-";
  lines.push("", "THROUGHPUT");
  prose(`  completed ${rate}; average since start ${average}`, "; ");

  lines.push("", "QUEUE");
  const queued = Object.entries(sch.queued ?? {}).sort(([a], [b]) => a.localeCompare(b));
  if (queued.length === 0) lines.push("  none");
  else lines.push(...fitTable([["PARTITION", "QUEUED"], ...queued.map(([p, n]) => [p, String(n)])], columns));

  lines.push("", `WORKERS (${snap.workersTotal})`);
  if (snap.workers.length === 0) lines.push("  none connected");
  else {
    const rows = [...snap.workers]
      .sort((a, b) => a.workerId.localeCompare(b.workerId))
      .slice(0, MAX_WORKER_ROWS)
      .map((w) => [
        w.workerId,
        w.partitions.join(","),
        `${w.busy}/${w.slots}`,
        age(snap.at - w.lastHeartbeat),
        w.host ? `${w.host}:${w.pid}` : String(w.pid),
      ]);
    // Narrow: the host goes first, then the partitions; the id and busy slots stay longest.
    lines.push(
      ...fitTable([["ID", "PARTITIONS", "BUSY/SLOTS", "HEARTBEAT", "HOST"], ...rows], columns, "  ", [4, 1]),
    );
    if (snap.workers.length > MAX_WORKER_ROWS)
      lines.push(`  ... and ${snap.workers.length - MAX_WORKER_ROWS} more`);
  }

  lines.push("", `SESSIONS (${snap.sessions.length} most recent of ${snap.sessionsTotal})`);
  if (snap.sessions.length === 0) lines.push("  none");
  else {
    const rows = snap.sessions.map((s) => {
      const counts = s.counts
        ? Object.entries(s.counts)
            .filter(([, n]) => n > 0)
            .map(([k, n]) => `${k} ${n}`)
            .join(", ")
        : "";
      return [s.sessionId, s.status, String(s.taskCount), age(snap.at - s.createdAt), counts];
    });
    // Narrow: the counts by status are shortened, then the age goes.
    lines.push(...fitTable([["ID", "STATUS", "TASKS", "AGE", "BY STATUS"], ...rows], columns, "  ", [3]));
  }
  return lines.join("\n");
}

const CTRL_C = String.fromCharCode(3);
const HIDE_CURSOR = "\x1b[?25l";
const SHOW_CURSOR = "\x1b[?25h";
const HOME_CLEAR = "\x1b[H\x1b[2J";

export async function runTop(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    ...TARGET_OPTIONS,
    interval: { type: "string" },
    once: { type: "boolean" },
  });
  if (values.help) {
    process.stdout.write(TOP_HELP + "\n");
    return 0;
  }
  const interval = Number(values.interval ?? 1000);
  if (!Number.isInteger(interval) || interval < 100)
    throw new UsageError("--interval must be an integer of at least 100 (milliseconds)");
  const out = process.stdout;
  const live = Boolean(out.isTTY) && !values.once;

  const timeoutMs = Math.max(5000, interval * 2);
  const defaultUrl = await daemonUrl(values, "default");
  const statusUrl = await daemonUrl(values, "status");
  const source = /^tcp:\/\/([^?]+)/.exec(defaultUrl)?.[1] ?? "";
  const firstMs = firstContactMs(values);
  const { client } = await connectChecked(defaultUrl, firstMs, timeoutMs);
  let statusClient: ZgridClient | undefined;
  try {
    statusClient = (await connectChecked(statusUrl, firstMs, timeoutMs)).client;
    if (!live) {
      out.write(renderTop(await takeSnapshot(statusClient, client), undefined, source) + "\n");
      return 0;
    }
    return await loop(statusClient, client, interval, source, out);
  } finally {
    await statusClient?.close();
    await client.close();
  }
}

/**
 * Redraws every `interval` ms, and at once at the new width when the terminal is resized, until q (or
 * Ctrl+C, SIGINT, SIGTERM); always gives the terminal back.
 */
async function loop(
  statusClient: ZgridClient,
  client: ZgridClient,
  interval: number,
  source: string,
  out: NodeJS.WriteStream,
): Promise<number> {
  let stopped = false;
  let wake: (() => void) | undefined;
  const stop = (): void => {
    stopped = true;
    wake?.();
  };
  // q quits. A terminal gives keys one by one in raw mode (where Ctrl+C is a key, not SIGINT); a pipe
  // gives what was written to it.
  const stdin = process.stdin;
  const raw = Boolean(stdin.isTTY);
  const onKey = (data: Buffer): void => {
    const keys = data.toString("latin1");
    if (keys.includes("q") || keys.includes("Q") || keys.includes(CTRL_C)) stop();
  };
  if (raw) stdin.setRawMode(true);
  stdin.on("data", onKey);
  stdin.resume();
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  const restore = (): void => {
    out.write(SHOW_CURSOR);
  };
  process.on("exit", restore);
  let shown: { snap: TopSnapshot; previous?: TopSnapshot; error?: string } | undefined;
  const draw = (): void => {
    if (!shown) return;
    const columns = out.columns || 80;
    const rows = out.rows || 0;
    const text =
      (shown.error === undefined || shown.previous
        ? renderTop(shown.snap, shown.previous, source, columns)
        : "") +
      (shown.error === undefined
        ? ""
        : `\n\n${wrap(`refresh failed: ${shown.error}; retrying`, columns, " ").join("\n")}`);
    let lines = text.split("\n");
    if (rows > 1 && lines.length > rows - 1) lines = lines.slice(0, rows - 1);
    out.write(
      HOME_CLEAR +
        lines.join("\n") +
        "\n" +
        wrap(`(refresh every ${interval} ms, q to quit)`, columns, ", ")[0],
    );
  };
  out.on("resize", draw);
  out.write(HIDE_CURSOR);
  let previous: TopSnapshot | undefined;
  try {
    while (!stopped) {
      try {
        const snap = await takeSnapshot(statusClient, client);
        shown = { snap, previous };
        previous = snap;
      } catch (err) {
        if (previous) shown = { snap: previous, error: (err as Error).message };
        else shown = undefined;
        if (!previous) out.write(`${HOME_CLEAR}refresh failed: ${(err as Error).message}; retrying`);
      }
      if (stopped) break;
      draw();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, interval);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  } finally {
    out.off("resize", draw);
    stdin.off("data", onKey);
    if (raw) stdin.setRawMode(false);
    stdin.pause();
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    process.off("exit", restore);
    out.write(SHOW_CURSOR + "\n");
  }
  return 0;
}
