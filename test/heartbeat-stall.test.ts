/**
 * Heartbeats are judged against the server's own stalls (issue 12): a server whose event loop was held
 * (a huge submission, a long commit) has not read what its workers sent meanwhile, and must not declare
 * them dead for it, nor charge their tasks an attempt.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import { encodePayload } from "../src/client/payload.js";
import type { Server } from "../src/daemons/server.js";
import { FIXTURE_APPS, ROOT, spawnWorker, startServer, waitFor, type Proc } from "./helpers.js";

/** A user module with `custom.busy`: holds the server's event loop for args.ms. */
const BUSY_MODULES = join(ROOT, "test/fixtures/modules/all-with-busy.cfg");

describe("a server that stalls", () => {
  let server: Server;
  let client: ZgridClient;
  let worker: Proc;

  before(async () => {
    ({ server } = await startServer({ heartbeatMs: 200, modules: BUSY_MODULES }));
    client = await connect(server.info!.url, { timeoutMs: 60_000 });
    worker = await spawnWorker(server, FIXTURE_APPS, 1);
  });
  after(async () => {
    await worker.stop();
    await client.close();
    await server.shutdown();
  });

  it("for 5 heartbeat intervals keeps its worker and charges no attempt", async () => {
    const sessionId = await client.createSession({ applicationName: "testapp" });
    const [task] = await client.submitTasks(sessionId, [{ payload: encodePayload("sleep", [2500]) }]);
    await waitFor(
      async () => (await client.getTask(task.taskId)).status === "PROCESSING",
      15_000,
      "the task to start",
    );
    const workerId = [...server.scheduler.workers.keys()][0];
    // 1,000 ms with heartbeats every 200 ms: three missed intervals would declare the worker dead.
    await client.call("custom.busy", { ms: 1000 });
    await client.waitResults(task.expectedOutputIds, { timeoutMs: 30_000 });
    const info = await client.getTask(task.taskId);
    assert.equal(info.status, "COMPLETED");
    assert.equal(info.attempts.length, 1, `attempts: ${JSON.stringify(info.attempts)}`);
    assert.ok(server.scheduler.workers.has(workerId), "the worker is still connected under its id");
  });
});
