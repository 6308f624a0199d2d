import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "../client/client.js";
import { decodeOutput, encodePayload } from "../client/payload.js";
import { generateToken } from "../daemons/auth.js";
import { serverConfig } from "../daemons/config.js";
import { Server } from "../daemons/server.js";
import { createLogger } from "../log.js";
import { Progress, tasksPerSecond } from "./progress.js";
import { intFlag, parse } from "./usage.js";

export const DEMO_HELP = `zgrid demo [--tasks N] [--workers N] [--slots N] [--batch N]

The whole grid on one machine, nothing else installed: starts a server on free ports with the embedded
store, starts local worker hosts running the example applications, submits a sample workload (sums of
lists of numbers through the "hello" application), shows progress, checks every result, prints a
summary, and stops everything.

      --tasks N      tasks to run (default 20000)
      --workers N    local worker hosts (default 1)
      --slots N      slots per worker host (default: CPU count)
      --batch N      tasks per submission (default 5000)`;

export async function runDemo(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    tasks: { type: "string" },
    workers: { type: "string" },
    slots: { type: "string" },
    batch: { type: "string" },
  });
  if (values.help) {
    process.stdout.write(DEMO_HELP + "\n");
    return 0;
  }
  const total = intFlag(values.tasks, "--tasks", 1, 10_000_000) ?? 20_000;
  const workers = intFlag(values.workers, "--workers", 1, 64) ?? 1;
  const slots = intFlag(values.slots, "--slots", 1, 1024) ?? availableParallelism();
  const batch = intFlag(values.batch, "--batch", 1, 100_000) ?? 5000;

  // A data dir of its own, so the demo never meets a server running in this directory.
  const dataDir = mkdtempSync(join(tmpdir(), "zgrid-demo-"));
  const server = new Server(
    serverConfig({
      dataDir,
      port: 0,
      workerPort: 0,
      metricsPort: 0,
      statusPort: 0,
      token: generateToken(),
      localWorkers: workers,
      slots,
      logLevel: "warn",
    }),
    createLogger("warn"),
  );
  const info = await server.start();
  console.log(
    `zgrid demo: server at ${info.url.replace(/token=.*/, "token=…")}, ${workers} local worker(s) × ${slots} slots`,
  );
  const client = await connect(info.url);
  try {
    const sessionId = await client.createSession({ applicationName: "hello", maxRetries: 2 });
    const started = Date.now();
    // Progress from the first submission on (workers start on the first batch, while the rest is sent),
    // on the summary's clock, so that the last line's rate is the summary's.
    const progress = new Progress(total, "running", process.stderr, 2000, started);
    let ticking = true;
    const ticker = setInterval(() => {
      void client.countTasks({ sessionId }).then(
        (c) => {
          // A count that comes back after the last line draws nothing over the summary.
          if (ticking) progress.update(c.COMPLETED, c.ERROR + c.TIMEOUT + c.CANCELLED, c.PROCESSING);
        },
        () => undefined,
      );
    }, 250);
    // Task i sums the numbers 0..(i % 100): its answer is known, so every result can be checked.
    const outputs: string[] = [];
    const expected: number[] = [];
    let wrong = 0;
    let failed = 0;
    try {
      for (let from = 0; from < total; from += batch) {
        const n = Math.min(batch, total - from);
        const tasks = Array.from({ length: n }, (_, k) => {
          const m = (from + k) % 100;
          expected.push((m * (m - 1)) / 2);
          return { payload: encodePayload("sum", [Array.from({ length: m }, (_, j) => j)]) };
        });
        const submitted = await client.submitTasks(sessionId, tasks);
        for (const t of submitted) outputs.push(t.expectedOutputIds[0]);
      }
      progress.note(`submitted ${total} tasks in ${((Date.now() - started) / 1000).toFixed(2)} s`);
      for (let from = 0; from < total; from += batch) {
        const ids = outputs.slice(from, from + batch);
        const r = await client.waitResultsData(ids);
        ids.forEach((id, k) => {
          const data = r.data.get(id);
          if (!data) failed++;
          else if (decodeOutput<number>(data) !== expected[from + k]) wrong++;
        });
      }
    } catch (err) {
      progress.end();
      throw err;
    } finally {
      ticking = false;
      clearInterval(ticker);
    }
    const seconds = (Date.now() - started) / 1000;
    progress.finish(total - failed, failed, seconds);
    const counts = await client.countTasks({ sessionId });
    console.log(
      [
        "",
        `zgrid demo summary`,
        `  tasks:       ${total} (${counts.COMPLETED} completed, ${counts.ERROR} error, ${counts.TIMEOUT} timeout)`,
        `  results:     ${total - failed - wrong} correct, ${wrong} wrong, ${failed} missing`,
        `  time:        ${seconds.toFixed(2)} s, ${tasksPerSecond(total, seconds)} tasks/s end to end`,
        `  sample:      sum(0..9) = ${decodeOutput<number>((await client.downloadResults([outputs[Math.min(10, total - 1)]]))[0])}`,
      ].join("\n"),
    );
    return failed + wrong === 0 ? 0 : 1;
  } finally {
    await client.close();
    await server.shutdown();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
