/**
 * `npm run chaos`: a grid under scripted faults (issue 13). A server on SQLite and two worker hosts run
 * tasks whose outputs are known, while a seeded script kills the server (SIGKILL) and restarts it on the
 * same data dir and ports, kills and restarts workers, stops (SIGSTOP) a worker or the server for a
 * while, and fills the data dir's disk for a while (as root, the data dir is a tmpfs of its own; elsewhere
 * that fault is left out, said loudly), submitting more tasks meanwhile: those refused are not counted,
 * those acknowledged must complete. Then every acknowledged task must have completed exactly once with the
 * right output, and the database must pass `PRAGMA integrity_check`. One JSON line per run; exit 1 if
 * anything was lost.
 *
 *   node dist/bench/chaos.js [--seed N] [--runs N] [--rounds N] [--tasks N] [--no-full-disk]
 *
 * A bounded run is part of `npm test` (test/chaos.test.ts).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { unpack } from "msgpackr";
import { connect, type ZgridClient } from "../src/client/client.js";
import { encodePayload } from "../src/client/payload.js";
import { intFlag, parse, UsageError } from "../src/cli/usage.js";
import { seededRandom } from "./seeded-random.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = join(ROOT, "dist/src/cli/main.js");
const APPS = join(ROOT, "examples/apps");

export interface ChaosOptions {
  seed: number;
  /** Faults injected, one after another. */
  rounds: number;
  tasks: number;
  /** Fill the data dir's disk as one of the faults (needs root to mount a tmpfs). Default true. */
  fullDisk?: boolean;
  /** The first fault, then the seeded script (a bounded run makes sure of one kind). */
  firstFault?: Fault;
  /** Progress lines go here (stderr by default). */
  log?: (line: string) => void;
  /** How long the acknowledged tasks may take to complete after the last fault (ms). Default 300 s. */
  settleMs?: number;
}

export interface ChaosReport {
  seed: number;
  rounds: number;
  tasks_acknowledged: number;
  tasks_checked: number;
  server_kills: number;
  worker_kills: number;
  stops: number;
  disk_fulls: number;
  /** Submissions made while the disk was full: refused (RESOURCE_EXHAUSTED) and acknowledged. */
  submissions_refused: number;
  submissions_acknowledged_on_full_disk: number;
  /** Why the full-disk fault was left out, if it was. */
  full_disk_skipped?: string;
  lost: number;
  /** Up to 5 of the tasks lost: id, status, attempts (status@worker each), what the server says of them. */
  lost_tasks?: string[];
  wrong_output: number;
  completed_twice: number;
  integrity: string;
  restart_ms_max: number;
  seconds: number;
}

/** A port free on 127.0.0.1 now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export type Fault = "server-kill" | "worker-kill" | "stop" | "full-disk";

/** Mounts a tmpfs of `mb` MiB on `dir`; null when it could, else why not. */
function mountTmpfs(dir: string, mb: number): string | null {
  if (process.getuid?.() !== 0) return "not root: cannot mount a tmpfs";
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${mb}m`, "tmpfs", dir], { stdio: "ignore" });
    return null;
  } catch (err) {
    return `cannot mount a tmpfs: ${(err as Error).message}`;
  }
}

/** Writes `file` until its file system is full (at most 1 GiB). */
function fillDisk(file: string): void {
  const fd = openSync(file, "w");
  const chunk = Buffer.alloc(256 * 1024, 7);
  try {
    for (let i = 0; i < 4096; i++) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  } finally {
    closeSync(fd);
  }
}

function gone(p: ChildProcess): Promise<void> {
  return new Promise((resolve) =>
    p.exitCode !== null || p.signalCode !== null ? resolve() : p.once("exit", () => resolve()),
  );
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const log = opts.log ?? ((line: string) => process.stderr.write(line + "\n"));
  const random = seededRandom(opts.seed);
  const started = Date.now();
  const mnt = mkdtempSync(join(tmpdir(), "zgrid-chaos-"));
  // The data dir gets a disk of its own to fill: 96 MiB hold the runs' stores several times over.
  const noDisk = opts.fullDisk === false ? "--no-full-disk" : mountTmpfs(mnt, 96);
  const mounted = noDisk === null;
  if (!mounted && opts.fullDisk !== false) log(`*** chaos: the full-disk fault is left out: ${noDisk} ***`);
  const dir = join(mnt, "data");
  const filler = join(mnt, "filler");
  const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
  const serverArgs = [
    CLI,
    "server",
    "--port",
    String(ports[0]),
    "--worker-port",
    String(ports[1]),
    "--metrics-port",
    String(ports[2]),
    "--status-port",
    String(ports[3]),
    "--data-dir",
    dir,
    "--token",
    "chaos",
    "--worker-token",
    "chaos-worker",
    "--heartbeat-ms",
    "200",
    "--log-level",
    "error",
    "--no-tokens-file",
  ];
  const url = `tcp://127.0.0.1:${ports[0]}?token=chaos`;
  const workerUrl = `tcp://127.0.0.1:${ports[1]}?token=chaos-worker`;
  const children = new Set<ChildProcess>();
  const start = (args: string[]): ChildProcess => {
    const c = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "inherit"] });
    children.add(c);
    c.once("exit", () => children.delete(c));
    return c;
  };
  const startWorker = () =>
    start([
      CLI,
      "worker",
      "--connect",
      workerUrl,
      "--app-path",
      APPS,
      "--slots",
      "2",
      "--log-level",
      "error",
    ]);
  let server = start(serverArgs);
  const workers = [startWorker(), startWorker()];
  const report: ChaosReport = {
    seed: opts.seed,
    rounds: opts.rounds,
    tasks_acknowledged: 0,
    tasks_checked: 0,
    server_kills: 0,
    worker_kills: 0,
    stops: 0,
    disk_fulls: 0,
    submissions_refused: 0,
    submissions_acknowledged_on_full_disk: 0,
    ...(mounted ? {} : { full_disk_skipped: noDisk ?? "" }),
    lost: 0,
    wrong_output: 0,
    completed_twice: 0,
    integrity: "not checked",
    restart_ms_max: 0,
    seconds: 0,
  };
  let client: ZgridClient | null = null;
  let ok = false;
  const removeMount = () => {
    if (mounted) execFileSync("umount", [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  };
  try {
    client = await connect(url, { timeoutMs: 10_000 });
    const c = client;
    const deadline = Date.now() + 30_000;
    while ((await c.listWorkers().catch(() => ({ total: 0 }))).total < 2) {
      if (Date.now() > deadline) throw new Error("the workers did not connect");
      await sleep(50);
    }
    // Tasks that sleep a few ms and return that number: each output is known.
    const sessionId = await c.createSession({ applicationName: "hello", maxRetries: 20 });
    const expected = new Map<string, number>();
    const taskOf = new Map<string, string>();
    for (let from = 0; from < opts.tasks; from += 500) {
      const n = Math.min(500, opts.tasks - from);
      const ms = Array.from({ length: n }, (_, i) => 1 + ((from + i) % 40));
      const ts = await c.submitTasks(
        sessionId,
        ms.map((m) => ({ payload: encodePayload("sleep", [m]) })),
      );
      ts.forEach((t, i) => {
        expected.set(t.expectedOutputIds[0], ms[i]);
        taskOf.set(t.expectedOutputIds[0], t.taskId);
      });
    }
    log(`chaos seed ${opts.seed}: ${expected.size} tasks acknowledged; ${opts.rounds} faults follow`);

    const submit = async (n: number): Promise<void> => {
      const ms = Array.from({ length: n }, () => 1 + Math.floor(random() * 40));
      const ts = await c.submitTasks(
        sessionId,
        ms.map((m) => ({ payload: encodePayload("sleep", [m]) })),
      );
      ts.forEach((t, i) => {
        expected.set(t.expectedOutputIds[0], ms[i]);
        taskOf.set(t.expectedOutputIds[0], t.taskId);
      });
    };
    for (let round = 0; round < opts.rounds; round++) {
      await sleep(200 + random() * 1200);
      const action = random();
      const fault: Fault =
        round === 0 && opts.firstFault
          ? opts.firstFault
          : action < 0.35
            ? "server-kill"
            : action < 0.6
              ? "worker-kill"
              : action < 0.85 || !mounted
                ? "stop"
                : "full-disk";
      if (fault === "full-disk" && mounted) {
        // Full for a while; submissions meanwhile are refused or acknowledged, and those acknowledged count.
        fillDisk(filler);
        report.disk_fulls++;
        const until = Date.now() + 300 + Math.floor(random() * 1500);
        let refused = 0;
        let acked = 0;
        while (Date.now() < until) {
          try {
            await submit(100);
            acked++;
          } catch (err) {
            if ((err as { code?: string }).code !== "RESOURCE_EXHAUSTED") throw err;
            refused++;
          }
          await sleep(50);
        }
        rmSync(filler, { force: true });
        report.submissions_refused += refused;
        report.submissions_acknowledged_on_full_disk += acked;
        log(`  round ${round + 1}: disk full; submissions refused ${refused}, acknowledged ${acked}`);
      } else if (fault === "server-kill") {
        server.kill("SIGKILL");
        await gone(server);
        report.server_kills++;
        await sleep(random() * 300);
        const t0 = Date.now();
        server = start(serverArgs);
        while ((await c.call("ruok", {}, undefined, { timeoutMs: 1000 }).catch(() => null)) !== "imok") {
          if (Date.now() - t0 > 30_000) throw new Error("the server did not come back within 30 s");
        }
        report.restart_ms_max = Math.max(report.restart_ms_max, Date.now() - t0);
        log(`  round ${round + 1}: server killed, serving again after ${Date.now() - t0} ms`);
      } else if (fault === "worker-kill") {
        const k = Math.floor(random() * workers.length);
        workers[k].kill("SIGKILL");
        await gone(workers[k]);
        report.worker_kills++;
        workers[k] = startWorker();
        log(`  round ${round + 1}: worker ${k} killed and started again`);
      } else {
        const target = action < 0.75 ? workers[Math.floor(random() * workers.length)] : server;
        const ms = 300 + Math.floor(random() * 1500);
        target.kill("SIGSTOP");
        await sleep(ms);
        target.kill("SIGCONT");
        report.stops++;
        log(`  round ${round + 1}: ${target === server ? "server" : "a worker"} stopped for ${ms} ms`);
      }
    }

    // Every acknowledged task completes, once, with its output.
    report.tasks_acknowledged = expected.size;
    const ids = [...expected.keys()];
    const settleBy = Date.now() + (opts.settleMs ?? 300_000);
    const lostIds: string[] = [];
    for (let from = 0; from < ids.length; from += 2000) {
      const chunk = ids.slice(from, from + 2000);
      const r = await c.waitResultsData(chunk, { timeoutMs: Math.max(1, settleBy - Date.now()) });
      for (const id of chunk) {
        const data = r.data.get(id);
        if (r.statuses[id] !== "COMPLETED" || data === undefined) {
          report.lost++;
          lostIds.push(id);
          continue;
        }
        report.tasks_checked++;
        if (unpack(data) !== expected.get(id)) report.wrong_output++;
      }
    }
    if (lostIds.length > 0) {
      // What a failure needs to be understood: where the first few lost tasks stand.
      report.lost_tasks = [];
      for (const id of lostIds.slice(0, 5)) {
        const t = await c.getTask(taskOf.get(id)!).catch((err: Error) => err.message);
        report.lost_tasks.push(
          typeof t === "string"
            ? `${taskOf.get(id)}: ${t}`
            : `${t.taskId} ${t.status} [${t.attempts.map((a) => `${a.status}@${a.workerId}`).join(", ")}]`,
        );
      }
    }
    for (const id of ids) {
      const task = await c.getTask(taskOf.get(id)!);
      if (task.attempts.filter((a) => a.status === "COMPLETED").length > 1) report.completed_twice++;
    }
    ok = true;
  } finally {
    await client?.close();
    for (const p of children) p.kill("SIGCONT");
    for (const p of children) p.kill("SIGTERM");
    const timer = setTimeout(() => {
      for (const p of children) p.kill("SIGKILL");
    }, 10_000);
    await Promise.all([...children].map(gone));
    clearTimeout(timer);
    if (!ok) removeMount();
  }
  try {
    const db = new Database(join(dir, "zgrid.db"), { readonly: true });
    try {
      report.integrity = String(db.pragma("integrity_check", { simple: true }));
    } finally {
      db.close();
    }
  } finally {
    removeMount();
  }
  report.seconds = Math.round((Date.now() - started) / 100) / 10;
  return report;
}

async function main(): Promise<number> {
  const usage =
    "usage: node dist/bench/chaos.js [--seed N] [--runs N] [--rounds N] [--tasks N] [--no-full-disk]";
  let values;
  try {
    ({ values } = parse(process.argv.slice(2), {
      seed: { type: "string" },
      runs: { type: "string" },
      rounds: { type: "string" },
      tasks: { type: "string" },
      "no-full-disk": { type: "boolean" },
    }));
    if (values.help) {
      console.log(usage);
      return 0;
    }
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`chaos: ${err.message}\n${usage}`);
    return 2;
  }
  const seed = intFlag(values.seed, "--seed", 0) ?? Date.now() % 1_000_000;
  const runs = intFlag(values.runs, "--runs", 1, 1000) ?? 3;
  const rounds = intFlag(values.rounds, "--rounds", 0, 10_000) ?? 20;
  const tasks = intFlag(values.tasks, "--tasks", 1, 1_000_000) ?? 5000;
  let bad = 0;
  for (let r = 0; r < runs; r++) {
    const report = await runChaos({ seed: seed + r, rounds, tasks, fullDisk: !values["no-full-disk"] });
    console.log(JSON.stringify(report));
    if (report.lost + report.wrong_output + report.completed_twice > 0 || report.integrity !== "ok") bad++;
  }
  return bad > 0 ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`chaos failed: ${(err as Error)?.stack ?? String(err)}`);
      process.exit(1);
    },
  );
}
