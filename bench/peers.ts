/**
 * The peers `npm run bench` measures beside zgrid, on the same machine in the same run (issues 12, 16):
 * graphile-worker 0.18 on PostgreSQL, BullMQ on Redis. Each runs the way our throughput bench runs
 * zgrid: no-op jobs added in batches by this process while a worker process runs them, timed from the
 * first batch until the worker has run the last job. The worker is a child process (this file, run as
 * `node dist/bench/peers.js <peer> <where> <jobs>`), as zgrid's worker host is.
 *
 * Settings are each peer's own advice for throughput: graphile-worker with its local queue (a batch of
 * jobs locked per query), batched completions and prepared statements; BullMQ with a high concurrency
 * and completed jobs removed.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { connect } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

import { waitFor } from "../test/helpers.js";

const SELF = fileURLToPath(import.meta.url);
const GRAPHILE_CONCURRENCY = 24;
const BULLMQ_CONCURRENCY = 100;
const QUEUE = "zgrid-bench";

/** How a peer run went: the figure of one run, or why it could not run. */
export type PeerRun = { seconds: number } | { skipped: string };

/** Starts this file as a peer's worker process; resolves once it says it is ready to take jobs. */
async function startPeerWorker(peer: string, where: string, jobs: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [SELF, peer, where, String(jobs)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${peer}'s worker did not start in 60 s`)), 60_000);
    child.once("exit", (code) =>
      reject(new Error(`${peer}'s worker exited (${String(code)}) before it started`)),
    );
    lines.once("line", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return child;
}

/** Resolves when the worker process has run every job and exited 0. */
function finished(child: ChildProcess, peer: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${peer}'s worker did not finish in ${timeoutMs / 1000} s`));
    }, timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${peer}'s worker exited ${String(code)}`));
    });
  });
}

/** graphile-worker on the database `url` (its schema is made on first use): one timed run. */
export async function graphileWorker(url: string, jobs: number, batch: number): Promise<PeerRun> {
  let gw: typeof import("graphile-worker");
  try {
    gw = await import("graphile-worker");
  } catch {
    return { skipped: "graphile-worker is not installed (npm install)" };
  }
  const utils = await gw.makeWorkerUtils({ connectionString: url });
  try {
    await utils.migrate();
    const worker = await startPeerWorker("graphile-worker", url, jobs);
    const done = finished(worker, "graphile-worker", 600_000);
    const started = process.hrtime.bigint();
    for (let from = 0; from < jobs; from += batch) {
      const n = Math.min(batch, jobs - from);
      await utils.addJobs(Array.from({ length: n }, () => ({ identifier: "noop", payload: {} })));
    }
    await done;
    return { seconds: Number(process.hrtime.bigint() - started) / 1e9 };
  } finally {
    await utils.release();
  }
}

/**
 * A Redis server of our own on `port` of 127.0.0.1, without persistence, once it accepts connections;
 * null when there is no redis-server.
 */
export async function startRedis(port: number): Promise<ChildProcess | null> {
  if (spawnSync("redis-server", ["--version"]).status !== 0) return null;
  const redis = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" },
  );
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const probe = connect(port, "127.0.0.1");
        probe.once("connect", () => resolve(true)).once("error", () => resolve(false));
        probe.once("close", () => probe.destroy());
        probe.setTimeout(1000, () => probe.destroy());
        probe.once("connect", () => probe.end());
      }),
    10_000,
    "redis-server to listen",
  ).catch((err: unknown) => {
    redis.kill("SIGKILL");
    throw err;
  });
  return redis;
}

/** BullMQ on the Redis of `port`: one timed run. */
export async function bullmq(port: number, jobs: number, batch: number): Promise<PeerRun> {
  let bq: typeof import("bullmq");
  try {
    bq = await import("bullmq");
  } catch {
    return { skipped: "bullmq is not installed (npm install)" };
  }
  const { Redis } = await import("ioredis");
  const connection = new Redis({ host: "127.0.0.1", port, maxRetriesPerRequest: null });
  const queue = new bq.Queue(QUEUE, { connection });
  try {
    await queue.obliterate({ force: true });
    const worker = await startPeerWorker("bullmq", String(port), jobs);
    const done = finished(worker, "bullmq", 600_000);
    const started = process.hrtime.bigint();
    for (let from = 0; from < jobs; from += batch) {
      const n = Math.min(batch, jobs - from);
      // addBulk is one MULTI per call: batches of 1,000 as BullMQ advises, not one of `batch`.
      for (let k = 0; k < n; k += 1000) {
        const m = Math.min(1000, n - k);
        await queue.addBulk(
          Array.from({ length: m }, () => ({
            name: "noop",
            data: {},
            opts: { removeOnComplete: true, removeOnFail: true },
          })),
        );
      }
    }
    await done;
    return { seconds: Number(process.hrtime.bigint() - started) / 1e9 };
  } finally {
    await queue.close();
    connection.disconnect();
  }
}

/** The worker process: runs `jobs` no-op jobs, then exits 0. */
async function peerWorker(peer: string, where: string, jobs: number): Promise<void> {
  let ran = 0;
  let allRan!: () => void;
  const all = new Promise<void>((resolve) => (allRan = resolve));
  const noop = (): Promise<void> => {
    if (++ran === jobs) allRan();
    return Promise.resolve();
  };
  if (peer === "graphile-worker") {
    const gw = await import("graphile-worker");
    const runner = await gw.run({
      preset: {
        worker: {
          connectionString: where,
          concurrentJobs: GRAPHILE_CONCURRENCY,
          maxPoolSize: GRAPHILE_CONCURRENCY + 2,
          localQueue: { size: 500 },
          completeJobBatchDelay: 0,
          failJobBatchDelay: 0,
          preparedStatements: true,
          pollInterval: 100,
        },
      },
      taskList: { noop },
      noHandleSignals: true,
    });
    process.stdout.write("ready\n");
    await all;
    await runner.stop();
  } else if (peer === "bullmq") {
    const bq = await import("bullmq");
    const { Redis } = await import("ioredis");
    const connection = new Redis({ host: "127.0.0.1", port: Number(where), maxRetriesPerRequest: null });
    const worker = new bq.Worker(QUEUE, noop, { connection, concurrency: BULLMQ_CONCURRENCY });
    await worker.waitUntilReady();
    process.stdout.write("ready\n");
    await all;
    await worker.close();
    connection.disconnect();
  } else throw new Error(`no peer named ${peer}`);
}

if (process.argv[1] === SELF) {
  const [peer, where, jobs] = process.argv.slice(2);
  peerWorker(peer, where, Number(jobs)).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${peer} worker: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
