/**
 * Fair dispatch (design §11): credit follows measured task duration, so long tasks of one partition
 * are shared by every worker host that serves it, with the default settings (no --prefetch 0).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import { encodePayload } from "../src/client/payload.js";
import type { Server } from "../src/daemons/server.js";
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
    const tasks = await client.submitTasks(
      sessionId,
      Array.from({ length: n }, () => ({ payload })),
    );
    let mostHeld = 0;
    let settled = false;
    const outputs = tasks.map((t) => t.expectedOutputIds[0]);
    const done = client.waitResults(outputs, { timeoutMs: 60_000 }).then(() => (settled = true));
    await waitFor(
      () => {
        for (const w of server.scheduler.workers.values()) mostHeld = Math.max(mostHeld, w.inflight.size);
        return settled;
      },
      60_000,
      `${n} tasks to finish`,
    );
    await done;
    return { tasks, mostHeld };
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
