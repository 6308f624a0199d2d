/**
 * `npm run bench`: the figures of design §10, one JSON line each. Server and worker host run as child
 * processes, as they would in production; the client is this process (the STATUS prober a thread of it).
 *
 *   node dist/bench/run.js --help     (the options)
 */
import { spawn, type ChildProcess } from "node:child_process";
import {
  closeSync,
  existsSync,
  fdatasyncSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeSync,
} from "node:fs";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { connect, type ZgridClient } from "../src/client/client.js";
import { encodePayload } from "../src/client/payload.js";
import { intFlag, parse, UsageError } from "../src/cli/usage.js";
import { hasIdleMemoryAddon } from "../src/gc.js";
import { BURST_QUIET_MS } from "../src/scheduler/residency.js";
import { freePort } from "../test/helpers.js";
import { newDatabase, postgresUnavailable, startPostgres } from "../test/postgres.js";
import { bullmq, graphileWorker, startRedis, type PeerRun } from "./peers.js";
import type { ProbeInput } from "./status-probe.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = join(ROOT, "dist/src/cli/main.js");
const APPS = join(ROOT, "examples/apps");
const BENCHES = [
  "throughput",
  "latency",
  "scaling",
  "queue_depth",
  "fairness",
  "status_under_load",
  "recovery",
  "memory",
  "history",
  "finished",
  "postgres",
  "peers",
];
const USAGE = `usage: node dist/bench/run.js [--only ${BENCHES.join(",")}] [--tasks N] [--runs N]
  [--slots N] [--batch N] [--recovery-tasks N] [--memory-tasks N] [--finished-tasks N] [--pg-tasks N] [--profile DIR]
Prints one JSON line per figure. postgres and peers start a throw-away PostgreSQL cluster (Debian's
postgresql package); peers runs BullMQ where redis-server is installed.`;

/** What the options set for every bench. */
const settings = { runs: 3, slots: 2, batch: 10_000 };

function emit(o: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(o) + "\n");
}

/** `--profile DIR`: node's CPU profiler on the server and worker processes, profiles written to DIR. */
let profileArgs: string[] = [];

/** Server and worker processes still running: killed if the bench exits early (an error, ^C, a closed pipe). */
const children = new Set<ChildProcess>();
function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.on(sig, () => process.exit(128 + constants.signals[sig]));
// `npm run bench | head -1` closes stdout early: stop rather than die on EPIPE with the grid left running.
process.stdout.on("error", () => process.exit(1));

interface Grid {
  url: string;
  server: ChildProcess;
  workers: ChildProcess[];
  dir: string;
}

/** A server and `hosts` worker hosts of `slots` slots each, default settings otherwise. */
async function startGrid(store: string, slots: number, hosts = 1, serverArgs: string[] = []): Promise<Grid> {
  const dir = mkdtempSync(join(tmpdir(), "zgrid-bench-"));
  const { server, url, workerUrl } = await startServerProcess(dir, store, serverArgs);
  const deadline = Date.now() + 20_000;
  const workers = Array.from({ length: hosts }, () =>
    track(
      spawn(
        process.execPath,
        [
          ...profileArgs,
          CLI,
          "worker",
          "--connect",
          workerUrl,
          "--app-path",
          APPS,
          "--slots",
          String(slots),
          "--log-level",
          "warn",
        ],
        { stdio: ["ignore", "ignore", "inherit"] },
      ),
    ),
  );
  const client = await connect(url);
  try {
    while ((await client.listWorkers().catch(() => null))?.total !== hosts) {
      if (Date.now() > deadline) throw new Error("the workers did not connect");
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    for (const w of workers) w.kill("SIGKILL");
    server.kill("SIGKILL");
    throw err;
  } finally {
    await client.close();
  }
  return { url, server, workers, dir };
}

async function stopGrid(g: Grid): Promise<void> {
  const gone = (p: ChildProcess) =>
    new Promise<void>((resolve) =>
      p.exitCode !== null || p.signalCode !== null ? resolve() : p.once("exit", () => resolve()),
    );
  const all = [...g.workers, g.server];
  for (const p of all) p.kill("SIGTERM");
  const timer = setTimeout(() => {
    for (const p of all) p.kill("SIGKILL");
  }, 10_000);
  await Promise.all(all.map(gone));
  clearTimeout(timer);
  rmSync(g.dir, { recursive: true, force: true });
}

/** No-op tasks submitted in batches, until the client holds every result. */
async function throughput(client: ZgridClient, tasks: number, batch: number): Promise<number> {
  const sessionId = await client.createSession({ applicationName: "hello" });
  const payload = encodePayload("noop");
  const started = process.hrtime.bigint();
  const waits: Promise<unknown>[] = [];
  for (let from = 0; from < tasks; from += batch) {
    const n = Math.min(batch, tasks - from);
    const defs = new Array(n).fill({ payload });
    const submitted = client.submitTasks(sessionId, defs);
    waits.push(
      submitted.then(async (ts) => {
        const r = await client.waitResultsData(ts.map((t) => t.expectedOutputIds[0]));
        if (r.data.size !== n) throw new Error(`only ${r.data.size} of ${n} results came back`);
      }),
    );
  }
  await Promise.all(waits);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  // Untimed: each run starts from the same state. With --store memory every finished record stays in
  // memory until its session is deleted, and the runs before would weigh on this one's collections.
  await client.deleteSession(sessionId);
  return seconds;
}

/** 20 tasks of 1 s on two hosts × 2 slots of one partition, default settings: ideal 5 s. */
async function fairness(): Promise<Record<string, unknown>> {
  const grid = await startGrid("sqlite", 2, 2);
  const client = await connect(grid.url, { timeoutMs: 120_000 });
  try {
    const sessionId = await client.createSession({ applicationName: "hello" });
    const payload = encodePayload("sleep", [1000]);
    const started = process.hrtime.bigint();
    const ts = await client.submitTasks(sessionId, new Array(20).fill({ payload }));
    await client.waitResults(
      ts.map((t) => t.expectedOutputIds[0]),
      { timeoutMs: 120_000 },
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const hosts = new Set<string>();
    for (const t of ts) hosts.add((await client.getTask(t.taskId)).attempts[0]?.workerId ?? "?");
    return {
      bench: "fairness",
      store: "sqlite",
      tasks: 20,
      task_ms: 1000,
      hosts_used: hosts.size,
      seconds: +seconds.toFixed(2),
      target_s: 5.3,
    };
  } finally {
    await client.close();
    await stopGrid(grid);
  }
}

/** One task at a time: submit → result at the client. */
async function latency(client: ZgridClient, n: number): Promise<number[]> {
  const sessionId = await client.createSession({ applicationName: "hello" });
  const payload = encodePayload("noop");
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const [t] = await client.submitTasks(sessionId, [{ payload }]);
    await client.waitResultsData(t.expectedOutputIds);
    samples.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return samples.sort((a, b) => a - b);
}

/** A server process on its own data dir; resolves once its connection-info file exists. */
async function startServerProcess(
  dir: string,
  store: string,
  extra: string[] = [],
): Promise<{ server: ChildProcess; url: string; workerUrl: string }> {
  const server = spawnServer(dir, store, extra, false);
  return { server, ...(await serverInfo(dir, server, 120_000)) };
}

/**
 * `zgrid server` on `dir` (its connection-info file: DIR/info.json, removed first), ports of its own;
 * `watch`: its stdout is piped to read what it says.
 */
function spawnServer(dir: string, store: string, extra: string[], watch: boolean): ChildProcess {
  const infoFile = join(dir, "info.json");
  rmSync(infoFile, { force: true });
  return track(
    spawn(
      process.execPath,
      [
        ...profileArgs,
        CLI,
        "server",
        "--port",
        "0",
        "--worker-port",
        "0",
        "--metrics-port",
        "0",
        "--status-port",
        "0",
        "--data-dir",
        dir,
        "--store",
        store,
        "--token",
        "bench",
        "--connection-info",
        infoFile,
        "--log-level",
        "warn",
        // A bench's servers come and go on random ports: none is one a client here should find.
        "--no-tokens-file",
        ...extra,
      ],
      { stdio: ["ignore", watch ? "pipe" : "ignore", "inherit"] },
    ),
  );
}

/** The URLs of the server started on `dir`, once it wrote them (it serves). */
async function serverInfo(
  dir: string,
  server: ChildProcess,
  timeoutMs: number,
): Promise<{ url: string; workerUrl: string }> {
  const infoFile = join(dir, "info.json");
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(infoFile)) {
    if (Date.now() > deadline || server.exitCode !== null) throw new Error("the server did not start");
    await new Promise((r) => setTimeout(r, 5));
  }
  return JSON.parse(readFileSync(infoFile, "utf8")) as { url: string; workerUrl: string };
}

async function queueTasks(url: string, n: number): Promise<void> {
  const client = await connect(url, { timeoutMs: 600_000 });
  try {
    const sessionId = await client.createSession({ applicationName: "hello", partitionId: "nobody" });
    const [payload] = await client.createResults(sessionId, [{ name: "p", data: encodePayload("noop") }]);
    for (let from = 0; from < n; from += 50_000) {
      const defs = new Array(Math.min(50_000, n - from)).fill({ payloadId: payload.resultId });
      await client.submitTasks(sessionId, defs);
    }
  } finally {
    await client.close();
  }
}

/** Time from start to serving after kill -9 with `tasks` queued tasks in the SQLite store. */
async function recovery(tasks: number): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), "zgrid-bench-"));
  try {
    const first = await startServerProcess(dir, "sqlite");
    await queueTasks(first.url, tasks);
    first.server.kill("SIGKILL");
    await new Promise((r) => first.server.once("exit", r));
    const started = process.hrtime.bigint();
    const second = await startServerProcess(dir, "sqlite");
    const client = await connect(second.url, { timeoutMs: 60_000 });
    const counts = await client.countTasks();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    await client.close();
    second.server.kill("SIGTERM");
    await new Promise((r) => second.server.once("exit", r));
    return {
      bench: "recovery",
      store: "sqlite",
      tasks,
      seconds: +seconds.toFixed(3),
      recovered_queued: counts.SUBMITTED,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * PostgreSQL failover: a server owning the database `pgUrl` with `tasks` queued tasks and a standby
 * waiting on it; the owner is killed -9, and the time runs until the standby answers with every task.
 */
async function failover(pgUrl: string, tasks: number): Promise<Record<string, unknown>> {
  const ownerDir = mkdtempSync(join(tmpdir(), "zgrid-bench-"));
  const standbyDir = mkdtempSync(join(tmpdir(), "zgrid-bench-"));
  const pg = ["--pg-url", pgUrl];
  try {
    const owner = await startServerProcess(ownerDir, "postgres", pg);
    await queueTasks(owner.url, tasks);
    const standby = spawnServer(standbyDir, "postgres", [...pg, "--standby"], true);
    // It says that it waits for the owner: then it polls the database's lock.
    let said = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the standby did not wait: ${said}`)), 60_000);
      standby.stdout!.on("data", (chunk: Buffer) => {
        said += chunk.toString();
        if (/standby: /.test(said)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    standby.stdout!.resume();
    owner.server.kill("SIGKILL");
    await new Promise((r) => owner.server.once("exit", r));
    const started = process.hrtime.bigint();
    const info = await serverInfo(standbyDir, standby, 120_000);
    const client = await connect(info.url, { timeoutMs: 60_000 });
    const counts = await client.countTasks();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    await client.close();
    standby.kill("SIGTERM");
    await new Promise((r) => standby.once("exit", r));
    return {
      bench: "failover",
      store: "postgres",
      tasks,
      seconds: +seconds.toFixed(3),
      recovered_queued: counts.SUBMITTED,
      target_s: 5,
    };
  } finally {
    rmSync(ownerDir, { recursive: true, force: true });
    rmSync(standbyDir, { recursive: true, force: true });
  }
}

/** Resident memory of a server holding `tasks` queued tasks (SQLite store, the default). */
async function memory(tasks: number): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), "zgrid-bench-"));
  try {
    const { server, url } = await startServerProcess(dir, "sqlite");
    const peak = rssPeak(server.pid!);
    await queueTasks(url, tasks);
    const peakMb = peak.stop();
    const client = await connect(url);
    const atLastSubmit = await client.getMemStatus();
    // The server shrinks its heap once submissions have been quiet for BURST_QUIET_MS: read after it.
    await new Promise((r) => setTimeout(r, BURST_QUIET_MS + 1000));
    const mem = await settledMemory(client);
    await client.close();
    server.kill("SIGTERM");
    await new Promise((r) => server.once("exit", r));
    return {
      bench: "memory",
      store: "sqlite",
      tasks,
      rss_mb: Math.round(mem.rss / 2 ** 20),
      rss_mb_at_last_submit: Math.round(atLastSubmit.rss / 2 ** 20),
      rss_mb_peak_while_submitting: peakMb,
      heap_used_mb: Math.round(mem.heapUsed / 2 ** 20),
      rss_bytes_per_task: Math.round(mem.rss / tasks),
      target_mb: 600,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The highest resident memory of process `pid` from now until stop(), read from /proc every 50 ms (in
 * MB; null where there is no /proc).
 */
function rssPeak(pid: number): { stop(): number | null } {
  let peak: number | null = null;
  const read = (): void => {
    try {
      const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (kb) peak = Math.max(peak ?? 0, Math.round(Number(kb[1]) / 1024));
    } catch {
      /* no /proc, or the process ended */
    }
  };
  const timer = setInterval(read, 50);
  return {
    stop: () => {
      clearInterval(timer);
      read();
      return peak;
    },
  };
}

/**
 * Memory follows live work, not history (issue 18): a server (SQLite) runs `sessions` sessions of
 * `tasks` tasks returning `outputBytes` each, one after the other, each downloaded and closed; its RSS
 * after the first and after the last.
 */
async function history(
  sessions: number,
  tasks: number,
  outputBytes: number,
): Promise<Record<string, unknown>> {
  const g = await startGrid("sqlite", 2, 1);
  try {
    const client = await connect(g.url, { timeoutMs: 600_000 });
    let afterFirst = 0;
    let heapAfterFirst = 0;
    let mem: Record<string, number> = {};
    for (let s = 0; s < sessions; s++) {
      const sessionId = await client.createSession({ applicationName: "hello" });
      const defs = new Array(tasks).fill({ payload: encodePayload("bytes", [outputBytes]) });
      const submitted = await client.submitTasks(sessionId, defs);
      const ids = submitted.map((t) => t.expectedOutputIds[0]);
      for (let from = 0; from < ids.length; from += 1000) {
        const { data } = await client.waitResultsData(ids.slice(from, from + 1000));
        for (const d of data.values()) if (d.length < outputBytes) throw new Error("an output is short");
      }
      await client.closeSession(sessionId);
      if (s === 0) {
        const m = await settledMemory(client);
        afterFirst = m.rss;
        heapAfterFirst = m.heapUsed;
      }
    }
    mem = await settledMemory(client);
    await client.close();
    return {
      bench: "history",
      store: "sqlite",
      idle_memory_addon: hasIdleMemoryAddon(),
      sessions,
      tasks_per_session: tasks,
      output_bytes: outputBytes,
      outputs_mb: Math.round((sessions * tasks * outputBytes) / 2 ** 20),
      rss_after_first_mb: Math.round(afterFirst / 2 ** 20),
      rss_after_last_mb: Math.round(mem.rss / 2 ** 20),
      growth_mb: Math.round((mem.rss - afterFirst) / 2 ** 20),
      heap_after_first_mb: Math.round(heapAfterFirst / 2 ** 20),
      heap_after_last_mb: Math.round(mem.heapUsed / 2 ** 20),
      target_growth_mb: 300,
    };
  } finally {
    await stopGrid(g);
  }
}

/**
 * The server's memory once it has settled: an idle server collects its garbage and lets go of freed
 * pages over a few seconds, so its RSS is read once a second until it has not fallen by more than
 * 1 MiB for 3 readings in a row (at most 30 s).
 */
async function settledMemory(client: ZgridClient): Promise<Record<string, number>> {
  let mem = await client.getMemStatus();
  const deadline = Date.now() + 30_000;
  for (let steady = 0; steady < 3 && Date.now() < deadline;) {
    await new Promise((r) => setTimeout(r, 1000));
    const next = await client.getMemStatus();
    steady = next.rss > mem.rss - 2 ** 20 ? steady + 1 : 0;
    mem = next;
  }
  return mem;
}

/** Resident memory of an idle grid's server once `tasks` finished, in batches, and nothing is live. */
async function idleRss(
  tasks: number,
): Promise<{ rss: number; heapUsed: number; seconds: number; mostInMemory: number }> {
  const g = await startGrid("sqlite", 2, 1);
  try {
    const client = await connect(g.url, { timeoutMs: 600_000 });
    const info = JSON.parse(readFileSync(join(g.dir, "info.json"), "utf8")) as { statusUrl: string };
    const status = await connect(info.statusUrl);
    const inMemory = async (): Promise<number> =>
      ((await status.getStatus()) as { scheduler: { tasksInMemory: number } }).scheduler.tasksInMemory;
    // The most task records held at the end of a batch: live work (one batch) and what has not yet left.
    let mostInMemory = 0;
    const started = process.hrtime.bigint();
    if (tasks > 0) {
      const sessionId = await client.createSession({ applicationName: "hello" });
      const [payload] = await client.createResults(sessionId, [{ name: "p", data: encodePayload("noop") }]);
      for (let from = 0; from < tasks; from += 50_000) {
        const n = Math.min(50_000, tasks - from);
        const submitted = await client.submitTasks(
          sessionId,
          new Array(n).fill({ payloadId: payload.resultId }),
        );
        // Live work stays one batch: the next goes once this one has finished.
        const outputs = submitted.map((t) => t.expectedOutputIds[0]);
        for (let k = 0; k < n; k += 10_000)
          await client.waitResults(outputs.slice(k, k + 10_000), { timeoutMs: 600_000 });
        mostInMemory = Math.max(mostInMemory, await inMemory());
      }
      await client.closeSession(sessionId);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    // Idle: what is left to commit is committed, and the records of finished work have left.
    const deadline = Date.now() + 60_000;
    while ((await inMemory()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await status.close();
    const mem = await settledMemory(client);
    await client.close();
    return { rss: mem.rss, heapUsed: mem.heapUsed, seconds, mostInMemory };
  } finally {
    await stopGrid(g);
  }
}

/**
 * Memory follows live work, not history (issue 18 item 2): the RSS of an idle server (SQLite) that has
 * run `tasks` no-op tasks against that of an empty one.
 */
async function finished(tasks: number): Promise<Record<string, unknown>> {
  const empty = await idleRss(0);
  const full = await idleRss(tasks);
  return {
    bench: "finished",
    store: "sqlite",
    finished_tasks: tasks,
    seconds_to_run: +full.seconds.toFixed(1),
    rss_empty_mb: Math.round(empty.rss / 2 ** 20),
    rss_finished_mb: Math.round(full.rss / 2 ** 20),
    difference_mb: Math.round((full.rss - empty.rss) / 2 ** 20),
    heap_empty_mb: Math.round(empty.heapUsed / 2 ** 20),
    heap_finished_mb: Math.round(full.heapUsed / 2 ** 20),
    most_tasks_in_memory: full.mostInMemory,
    // Whether the idle server gives its memory back through native/idle-memory (built by npm install).
    idle_memory_addon: hasIdleMemoryAddon(),
    target_difference_mb: 150,
  };
}

/**
 * STATUS daemon `ruok` round trips while clients submit to the DEFAULT daemon as fast as they can
 * (tasks queued in a partition no worker serves, so the load is the submissions themselves).
 */
async function statusUnderLoad(seconds: number, store: string): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), "zgrid-bench-"));
  const { server, url } = await startServerProcess(dir, store);
  try {
    const statusUrl = withStatusPort(url, await statusPort(url));
    const loaders = await Promise.all([0, 1].map(() => connect(url, { timeoutMs: 120_000 })));
    const payload = encodePayload("noop");
    const deadline = Date.now() + seconds * 1000;
    let submitted = 0;
    const load = loaders.map(async (c) => {
      const sessionId = await c.createSession({ partitionId: "nobody" });
      const defs = new Array(5000).fill({ payload });
      while (Date.now() < deadline) {
        await c.submitTasks(sessionId, defs);
        submitted += defs.length;
      }
    });
    const probe: ProbeInput = { url: statusUrl, deadline, intervalMs: 10 };
    const prober = new Worker(new URL("./status-probe.js", import.meta.url), { workerData: probe });
    const samples = await new Promise<number[]>((resolve, reject) => {
      prober.once("message", resolve);
      prober.once("error", reject);
    });
    await Promise.all(load);
    await Promise.all(loaders.map((c) => c.close()));
    samples.sort((a, b) => a - b);
    return {
      bench: "status_under_load",
      store,
      seconds,
      submitted_tasks_per_s: Math.round(submitted / seconds),
      samples: samples.length,
      p50_ms: +samples[Math.floor(samples.length * 0.5)].toFixed(2),
      p99_ms: +samples[Math.floor(samples.length * 0.99)].toFixed(2),
      max_ms: +samples[samples.length - 1].toFixed(2),
    };
  } finally {
    server.kill("SIGTERM");
    await new Promise((r) => server.once("exit", r));
    rmSync(dir, { recursive: true, force: true });
  }
}

async function statusPort(url: string): Promise<number> {
  const c = await connect(url);
  try {
    return (await c.getConfig()).statusPort as number;
  } finally {
    await c.close();
  }
}

function withStatusPort(url: string, port: number): string {
  return url.replace(/:(\d+)\?/, `:${port}?`);
}

/** The data disk's fdatasync p50 in µs (4 KiB writes): what one durable commit costs at the least. */
function fdatasyncP50(dir: string): number {
  const file = join(dir, "fsync-probe");
  const fd = openSync(file, "w");
  const page = Buffer.alloc(4096, 1);
  const samples: number[] = [];
  try {
    for (let i = 0; i < 200; i++) {
      writeSync(fd, page, 0, page.length, (i % 16) * 4096);
      const t0 = process.hrtime.bigint();
      fdatasyncSync(fd);
      samples.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  return median(samples);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

interface StoreRun {
  throughput: boolean;
  latency: boolean;
  tasks: number;
  /** Peers' figures measured in this run, printed beside ours (the ratio to the first). */
  beside?: Record<string, number>;
}

/** Throughput (median of `runs`) and one-at-a-time latency on one store, one JSON line each. */
async function storeFigures(store: string, serverArgs: string[], what: StoreRun): Promise<void> {
  const { tasks } = what;
  const grid = await startGrid(store, settings.slots, 1, serverArgs);
  const client = await connect(grid.url, { timeoutMs: 120_000 });
  try {
    if (what.throughput) {
      await throughput(client, Math.min(tasks, 20_000), settings.batch); // warm-up
      const seconds: number[] = [];
      for (let r = 0; r < settings.runs; r++) seconds.push(await throughput(client, tasks, settings.batch));
      const s = median(seconds);
      const perS = Math.round(tasks / s);
      const beside: Record<string, unknown> = {};
      for (const [name, figure] of Object.entries(what.beside ?? {})) {
        beside[`${name}_per_s`] = figure;
        beside[`ratio_to_${name}`] = +(perS / figure).toFixed(2);
      }
      emit({
        bench: "throughput",
        store,
        tasks,
        seconds: +s.toFixed(3),
        tasks_per_s: perS,
        runs: settings.runs,
        all_tasks_per_s: seconds.map((x) => Math.round(tasks / x)),
        ...beside,
      });
    }
    if (what.latency) {
      await latency(client, 200);
      const s = await latency(client, 2000);
      // Design §10: memory p50 ≤ 300 µs; a durable store, where the submission and the output are each
      // fsynced before the client hears of them, p50 ≤ 2 × the data disk's fdatasync p50 + 200 µs.
      const fsync = store === "memory" ? 0 : fdatasyncP50(grid.dir);
      emit({
        bench: "latency",
        store,
        tasks: s.length,
        p50_us: Math.round(s[Math.floor(s.length * 0.5)]),
        p99_us: Math.round(s[Math.floor(s.length * 0.99)]),
        ...(store === "memory" ? {} : { fdatasync_p50_us: Math.round(fsync) }),
        target_p50_us: store === "memory" ? 300 : Math.round(2 * fsync + 200),
      });
    }
  } finally {
    await client.close();
    await stopGrid(grid);
  }
}

/** A peer's runs: one JSON line (median, every run), and the median in jobs/s, or null if skipped. */
async function peerFigures(
  peer: string,
  on: string,
  jobs: number,
  run: () => Promise<PeerRun>,
): Promise<number | null> {
  const seconds: number[] = [];
  for (let r = 0; r < settings.runs; r++) {
    const got = await run();
    if ("skipped" in got) {
      emit({ bench: "peer", peer, skipped: got.skipped });
      return null;
    }
    seconds.push(got.seconds);
  }
  const perS = Math.round(jobs / median(seconds));
  emit({
    bench: "peer",
    peer,
    on,
    jobs,
    jobs_per_s: perS,
    runs: settings.runs,
    all_jobs_per_s: seconds.map((x) => Math.round(jobs / x)),
  });
  return perS;
}

const OPTIONS = {
  only: { type: "string" },
  tasks: { type: "string" },
  runs: { type: "string" },
  slots: { type: "string" },
  batch: { type: "string" },
  "recovery-tasks": { type: "string" },
  "memory-tasks": { type: "string" },
  "finished-tasks": { type: "string" },
  "pg-tasks": { type: "string" },
  profile: { type: "string" },
  // The names of before, kebab-case now like the CLI's: still taken, with a note.
  recoveryTasks: { type: "string" },
  memoryTasks: { type: "string" },
} as const;

/** An old camelCase flag's value, under its kebab-case name, with a note on stderr. */
function renamed(values: Record<string, unknown>, kebab: string, camel: string): unknown {
  if (values[camel] === undefined) return values[kebab];
  process.stderr.write(`bench: --${camel} is now --${kebab}\n`);
  return values[kebab] ?? values[camel];
}

async function main(): Promise<void> {
  const { values } = parse(process.argv.slice(2), OPTIONS);
  if (values.help) {
    process.stdout.write(USAGE + "\n");
    return;
  }
  const only = new Set(typeof values.only === "string" ? values.only.split(",") : BENCHES);
  const unknown = [...only].filter((b) => !BENCHES.includes(b));
  if (unknown.length > 0) throw new UsageError(`no bench named ${unknown.join(", ")}`);
  const tasks = intFlag(values.tasks, "--tasks", 1) ?? 200_000;
  const runs = (settings.runs = intFlag(values.runs, "--runs", 1) ?? 3);
  const slots = (settings.slots = intFlag(values.slots, "--slots", 1) ?? 2);
  const batch = (settings.batch = intFlag(values.batch, "--batch", 1) ?? 10_000);
  const pgTasks = intFlag(values["pg-tasks"], "--pg-tasks", 1) ?? 50_000;
  const recoveryTasks =
    intFlag(renamed(values, "recovery-tasks", "recoveryTasks"), "--recovery-tasks", 1) ?? 100_000;
  const memoryTasks =
    intFlag(renamed(values, "memory-tasks", "memoryTasks"), "--memory-tasks", 1) ?? 1_000_000;
  const finishedTasks = intFlag(values["finished-tasks"], "--finished-tasks", 1) ?? 1_000_000;
  if (typeof values.profile === "string") profileArgs = ["--cpu-prof", "--cpu-prof-dir", values.profile];

  for (const store of ["memory", "sqlite"]) {
    if (!only.has("throughput") && !only.has("latency")) break;
    await storeFigures(store, [], {
      throughput: only.has("throughput"),
      latency: only.has("latency"),
      tasks,
    });
  }
  if (only.has("scaling")) {
    for (const hosts of [1, 2, 4]) {
      const grid = await startGrid("memory", slots, hosts);
      const client = await connect(grid.url, { timeoutMs: 120_000 });
      try {
        await throughput(client, Math.min(tasks, 20_000), batch); // warm-up
        const s = await throughput(client, tasks, batch);
        emit({ bench: "scaling", store: "memory", hosts, slots, tasks, tasks_per_s: Math.round(tasks / s) });
      } finally {
        await client.close();
        await stopGrid(grid);
      }
    }
  }
  if (only.has("queue_depth")) {
    // The same throughput run beside 0 and then `memoryTasks` tasks queued in a partition no worker
    // serves: the cost of a task must not grow with the depth of the queue (target: within 10 %).
    const figures: number[] = [];
    for (const queued of [0, memoryTasks]) {
      const grid = await startGrid("memory", slots, 1);
      const client = await connect(grid.url, { timeoutMs: 120_000 });
      try {
        if (queued > 0) await queueTasks(grid.url, queued);
        await throughput(client, Math.min(tasks, 20_000), batch); // warm-up
        const seconds: number[] = [];
        for (let r = 0; r < runs; r++) seconds.push(await throughput(client, tasks, batch));
        seconds.sort((a, b) => a - b);
        figures.push(Math.round(tasks / seconds[Math.floor(seconds.length / 2)]));
      } finally {
        await client.close();
        await stopGrid(grid);
      }
    }
    emit({
      bench: "queue_depth",
      store: "memory",
      tasks,
      queued: memoryTasks,
      tasks_per_s_empty: figures[0],
      tasks_per_s_queued: figures[1],
      ratio: +(figures[1] / figures[0]).toFixed(3),
      target_ratio: 0.9,
    });
  }
  if (only.has("fairness")) emit(await fairness());
  if (only.has("status_under_load")) {
    for (const store of ["memory", "sqlite"]) emit(await statusUnderLoad(10, store));
  }
  if (only.has("recovery")) emit(await recovery(recoveryTasks));
  if (only.has("memory")) emit(await memory(memoryTasks));
  if (only.has("history")) emit(await history(20, 5000, 10_000));
  if (only.has("finished")) emit(await finished(finishedTasks));
  if (only.has("postgres") || only.has("peers"))
    await postgresFigures(only, { tasks, pgTasks, recoveryTasks });
}

/**
 * On a throw-away PostgreSQL cluster: graphile-worker (peers), zgrid's throughput and latency on it
 * beside that figure, failover with `recoveryTasks` queued (postgres); BullMQ on a Redis of our own
 * (peers), `tasks` jobs.
 */
async function postgresFigures(
  only: Set<string>,
  { tasks, pgTasks, recoveryTasks }: { tasks: number; pgTasks: number; recoveryTasks: number },
): Promise<void> {
  const why = postgresUnavailable();
  if (why !== null) {
    emit({ bench: "postgres", skipped: why });
    return;
  }
  const pg = await startPostgres();
  try {
    const beside: Record<string, number> = {};
    if (only.has("peers")) {
      const gw = await peerFigures("graphile-worker", "postgresql", pgTasks, async () =>
        graphileWorker(await newDatabase(pg), pgTasks, settings.batch),
      );
      if (gw !== null) beside.graphile_worker = gw;
    }
    if (only.has("postgres")) {
      const args = ["--pg-url", await newDatabase(pg)];
      await storeFigures("postgres", args, { throughput: true, latency: true, tasks: pgTasks, beside });
      emit(await failover(await newDatabase(pg), recoveryTasks));
    }
  } finally {
    await pg.stop();
  }
  if (!only.has("peers")) return;
  const port = await freePort();
  const redis = await startRedis(port);
  if (redis === null) {
    emit({ bench: "peer", peer: "bullmq", skipped: "no redis-server (Debian's redis-server package)" });
    return;
  }
  track(redis);
  try {
    // As many jobs as zgrid's throughput bench runs tasks, beside which it is printed.
    await peerFigures("bullmq", "redis", tasks, () => bullmq(port, tasks, settings.batch));
  } finally {
    redis.kill("SIGTERM");
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`bench: ${err.message}\n${USAGE}\n`);
      process.exit(2);
    }
    process.stderr.write(`bench failed: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
