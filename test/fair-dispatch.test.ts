/**
 * Fair dispatch (design §11): credit follows measured task duration, so long tasks of one partition
 * are shared by every worker host that serves it, with the default settings (no --prefetch 0).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import { encodePayload } from "../src/client/payload.js";
import type { Server } from "../src/daemons/server.js";
import { pack, unpack } from "msgpackr";
import { Dealer } from "zeromq";
import { FIXTURE_APPS, spawnWorker, startServer, waitFor, type Proc } from "./helpers.js";

describe("fair dispatch of long tasks", () => {
  let server: Server;
  let client: ZgridClient;
  const workers: Proc[] = [];

  before(async () => {
    ({ server } = await startServer({ heartbeatMs: 200 }));
    client = await connect(server.info!.url, { timeoutMs: 60_000 });
    workers.push(await spawnWorker(server, FIXTURE_APPS, 2));
    workers.push(await spawnWorker(server, FIXTURE_APPS, 2));
  });
  after(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await client.close();
    await server.shutdown();
  });

  /**
   * Submits `n` tasks running `payload` and waits for them all; returns them and the most tasks any
   * host held at once meanwhile (polled, bounded).
   */
  async function runWatchingHeld(
    sessionId: string,
    payload: Buffer,
    n: number,
  ): Promise<{ tasks: { taskId: string }[]; mostHeld: number }> {
    // Sampled from before the submission: its tasks may run (and end) before it is acknowledged,
    // which waits for the store's commit.
    let mostHeld = 0;
    const sample = setInterval(() => {
      for (const w of server.scheduler.workers.values()) mostHeld = Math.max(mostHeld, w.inflight.size);
    }, 1);
    try {
      const tasks = await client.submitTasks(
        sessionId,
        Array.from({ length: n }, () => ({ payload })),
      );
      const outputs = tasks.map((t) => t.expectedOutputIds[0]);
      await client.waitResults(outputs, { timeoutMs: 60_000 });
      return { tasks, mostHeld };
    } finally {
      clearInterval(sample);
    }
  }

  it("two hosts × 2 slots share 12 tasks of 300 ms; neither holds a task behind a busy slot", async () => {
    const sessionId = await client.createSession({ applicationName: "testapp" });
    // While they run, no host is ever given more tasks than it has slots: a task held behind a busy
    // slot while a slot elsewhere is idle is what this guards against.
    const { tasks, mostHeld } = await runWatchingHeld(sessionId, encodePayload("sleep", [300]), 12);
    assert.ok(mostHeld <= 2, `a worker held ${mostHeld} tasks of 300 ms with 2 slots`);
    const ranOn = new Map<string, number>();
    for (const t of tasks) {
      const info = await client.getTask(t.taskId);
      assert.equal(info.status, "COMPLETED");
      const w = info.attempts[0]!.workerId;
      ranOn.set(w, (ranOn.get(w) ?? 0) + 1);
    }
    assert.equal(ranOn.size, 2, `every task ran on one host: ${JSON.stringify([...ranOn])}`);
    for (const [w, n] of ranOn) assert.ok(n >= 4, `host ${w} ran only ${n} of 12 tasks`);
  });

  it("short tasks still stream: a host is given more than its slots once they measure short", async () => {
    const sessionId = await client.createSession({ applicationName: "testapp" });
    const payload = encodePayload("echo", [1]);
    // Teach the scheduler that these tasks are short, then watch the hosts' credit grow.
    await runWatchingHeld(sessionId, payload, 50);
    const { mostHeld } = await runWatchingHeld(sessionId, payload, 5000);
    assert.ok(mostHeld > 2, `no host was ever given more than its 2 slots of short tasks (${mostHeld})`);
  });
});

describe("prefetch of large payloads", () => {
  it("short tasks with 1 MiB payloads: a worker is never sent more than 64 MiB of them at once", async () => {
    // The raw worker sends no HEARTBEAT: a long interval keeps it alive on a loaded machine.
    const { server } = await startServer({ store: "memory", heartbeatMs: 10_000 });
    const client = await connect(server.info!.url, { timeoutMs: 60_000 });
    // A worker of 4 slots that asks for a prefetch of 1,000, holds each batch a moment (the poll's interval) and then
    // reports it as run in no time: by time alone its credit would be its whole capacity.
    const worker = new Dealer({ linger: 0 });
    worker.connect(server.info!.workerUrl.split("?")[0]);
    const EMPTY = Buffer.alloc(0);
    const n = 300;
    let held: string[] = [];
    let done = 0;
    let mostHeld = 0;
    let welcomed = false;
    const reading = (async () => {
      for await (const [, header] of worker) {
        const msg = unpack(header) as { t: string; tasks?: { taskId: string }[] };
        if (msg.t === "WELCOME") welcomed = true;
        if (msg.t === "TASKS") {
          held.push(...msg.tasks!.map((t) => t.taskId));
          mostHeld = Math.max(mostHeld, held.length);
        }
      }
    })().catch(() => {});
    try {
      await worker.send([
        EMPTY,
        pack({
          t: "READY",
          v: 1,
          token: server.workerToken,
          workerId: "w-big",
          partitions: ["default"],
          slots: 4,
          prefetch: 1000,
        }),
      ]);
      const sessionId = await client.createSession({ applicationName: "testapp" });
      const [payload] = await client.createResults(sessionId, [
        { name: "p", data: Buffer.alloc(1 << 20, 7) },
      ]);
      await waitFor(() => welcomed, 10_000, "WELCOME");
      await client.submitTasks(
        sessionId,
        Array.from({ length: n }, () => ({ payloadId: payload.resultId })),
      );
      await waitFor(
        async () => {
          if (held.length > 0) {
            const ids = held;
            held = [];
            await worker.send([EMPTY, pack({ t: "STARTED", taskIds: ids })]);
            await worker.send([
              EMPTY,
              pack({ t: "DONE", results: ids.map((taskId) => ({ taskId, status: "COMPLETED" })) }),
            ]);
            done += ids.length;
          }
          return done === n;
        },
        60_000,
        `${n} tasks reported`,
      );
      assert.ok(mostHeld > 4, `the worker was never given more than its slots (${mostHeld})`);
      assert.ok(mostHeld <= 64, `the worker held ${mostHeld} tasks of 1 MiB at once`);
    } finally {
      worker.close();
      await reading;
      await client.close();
      await server.shutdown();
    }
  });
});
