import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { unpack } from "msgpackr";
import { connect, type ZgridClient } from "../src/client/client.js";
import { decodeOutput, encodePayload } from "../src/client/payload.js";
import type { Server } from "../src/daemons/server.js";
import { FIXTURE_APPS, startServer, type Proc, spawnWorker } from "./helpers.js";

describe("the agent: child tasks, delegation, results created by tasks", () => {
  let server: Server;
  let client: ZgridClient;
  let worker: Proc;

  before(async () => {
    ({ server } = await startServer({ heartbeatMs: 200 }));
    client = await connect(server.info!.url, { timeoutMs: 60_000 });
    worker = await spawnWorker(server, FIXTURE_APPS, 2);
  });
  after(async () => {
    await worker.stop();
    await client.close();
    await server.shutdown();
  });

  it("sums 1..10,000 by recursive halves, each parent delegating its output to a combining child", async () => {
    const s = await client.createSession({ applicationName: "dag" });
    const [t] = await client.submitTasks(s, [{ payload: encodePayload("sumRange", [1, 10_001]) }]);
    const r = await client.waitResultsData(t.expectedOutputIds, { timeoutMs: 60_000 });
    assert.equal(r.statuses[t.expectedOutputIds[0]], "COMPLETED");
    assert.equal(decodeOutput(r.data.get(t.expectedOutputIds[0])!), 50_005_000);
    const root = await client.getResult(t.expectedOutputIds[0]);
    assert.notEqual(root.ownerTaskId, t.taskId, "the root's output was delegated to a child");
    const counts = await client.countTasks({ sessionId: s });
    assert.ok(counts.COMPLETED > 100, `${counts.COMPLETED} tasks`);
    assert.equal(counts.ERROR, 0);
  });

  it("leaves no child behind when the parent fails after submitting children", async () => {
    const s = await client.createSession({ applicationName: "dag", maxRetries: 1 });
    const [t] = await client.submitTasks(s, [{ payload: encodePayload("failAfterChildren") }]);
    await client.waitResults(t.expectedOutputIds, { timeoutMs: 20_000 });
    assert.equal((await client.getTask(t.taskId)).status, "ERROR");
    const tasks = await client.listTasks({ filter: { sessionId: s } });
    assert.equal(tasks.total, 1, "only the parent exists");
    // Finished records leave memory (issue 18 item 2): what the session has is read from the store too.
    const results = await client.listResults({ filter: { sessionId: s } });
    assert.equal(results.total, 2, "only the parent's payload and output");
    const held = [...server.scheduler.results.values()].filter((r) => r.sessionId === s);
    assert.ok(held.length <= 2, `${held.length} results of the session in memory`);
  });

  it("commits a result a task created once the task succeeded", async () => {
    const s = await client.createSession({ applicationName: "dag" });
    const [t] = await client.submitTasks(s, [{ payload: encodePayload("produce", [{ answer: 42 }]) }]);
    const r = await client.waitResultsData(t.expectedOutputIds, { timeoutMs: 20_000 });
    const createdId = decodeOutput<string>(r.data.get(t.expectedOutputIds[0])!);
    const info = await client.getResult(createdId);
    assert.equal(info.status, "COMPLETED");
    assert.deepEqual(unpack(await client.downloadResult(createdId)), { answer: 42 });
  });
});
