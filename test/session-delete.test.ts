/**
 * `sessions.delete` leaves nothing behind (issue 13 item 10): a task its worker was still running when
 * the session was deleted goes once the worker answers, from lists, counts and the store, and does not
 * come back after a restart.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { connect } from "../src/client/client.js";
import { encodePayload } from "../src/client/payload.js";
import { Server } from "../src/daemons/server.js";
import { createLogger } from "../src/log.js";
import { FIXTURE_APPS, spawnWorker, testConfig, waitFor } from "./helpers.js";

describe("sessions.delete", () => {
  it("forgets a task its worker was running, once the worker answers, and after a restart too", async () => {
    const config = testConfig({ heartbeatMs: 200 });
    const first = new Server(config, createLogger("silent"));
    await first.start();
    const worker = await spawnWorker(first, FIXTURE_APPS, 1);
    const client = await connect(first.info!.url, { timeoutMs: 30_000 });
    let second: Server | null = null;
    try {
      const sessionId = await client.createSession({ applicationName: "testapp" });
      const keep = await client.createSession({ applicationName: "testapp" });
      const [kept] = await client.submitTasks(keep, [{ payload: encodePayload("echo", [1]) }]);
      await client.waitResults(kept.expectedOutputIds, { timeoutMs: 30_000 });
      const [t] = await client.submitTasks(sessionId, [{ payload: encodePayload("sleep", [1500]) }]);
      await waitFor(
        async () => (await client.getTask(t.taskId)).status === "PROCESSING",
        15_000,
        "the task running",
      );
      await client.deleteSession(sessionId);
      // Once its worker has stopped it, nothing of it is listed or counted.
      await waitFor(() => !first.scheduler.tasks.has(t.taskId), 15_000, "the task forgotten");
      const listed = await client.listTasks();
      assert.deepEqual(
        listed.items.map((x) => x.taskId),
        [kept.taskId],
      );
      assert.equal((await client.countTasks()).CANCELLED ?? 0, 0);
      assert.equal(first.scheduler.views.summary().tasksByStatus.CANCELLED ?? 0, 0);
      await client.close();
      await worker.stop();
      await first.shutdown();

      second = new Server({ ...config }, createLogger("silent"));
      await second.start();
      assert.equal(second.scheduler.tasks.has(t.taskId), false, "the deleted session's task came back");
      // The kept task finished: it is read from the store, not held in memory (issue 18 item 2).
      assert.equal(second.scheduler.tasks.size, 0);
      assert.equal(second.scheduler.task(kept.taskId).status, "COMPLETED");
    } finally {
      await client.close();
      await worker.stop();
      await first.shutdown();
      await second?.shutdown();
    }
  });
});
