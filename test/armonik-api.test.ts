/**
 * Parts of ArmoniK's API that zgrid lacked (issue 18): results.deleteData (DeleteResultsData), the batch
 * lookups (owner task of many results, result ids of many tasks), and results an attempt creates stay
 * invisible until it completes.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import Database from "better-sqlite3";
import { connect, type ZgridClient } from "../src/client/client.js";
import { decodeOutput, encodePayload } from "../src/client/payload.js";
import { Server } from "../src/daemons/server.js";
import type { ZgridError } from "../src/protocol/errors.js";
import { removeDir, spawnWorker, tempDir, testConfig, waitFor } from "./helpers.js";

describe("ArmoniK's API where zgrid lacked it", () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c();
  });
  const started = async (server: Server): Promise<ZgridClient> => {
    const info = await server.start();
    cleanup.push(() => server.shutdown());
    const c = await connect(info.url, { timeoutMs: 30_000 });
    cleanup.push(() => c.close());
    return c;
  };

  it("results.deleteData deletes the data of completed results from memory and the store; downloads and dependent tasks say why", async () => {
    const config = testConfig();
    cleanup.push(() => removeDir(config.dataDir));
    const server = new Server(config);
    const c = await started(server);
    const sessionId = await c.createSession({ partitionId: "nobody" });
    const [small, large, open] = await c.createResults(sessionId, [
      { name: "small", data: Buffer.from("small data") },
      { name: "large", data: Buffer.alloc(300_000, 3) },
      { name: "open" },
    ]);
    // Not COMPLETED: refused, and nothing deleted.
    await assert.rejects(
      c.deleteResultsData([small.resultId, open.resultId]),
      (err: ZgridError) => err.code === "FAILED_PRECONDITION" && /is CREATED/.test(err.message),
    );
    assert.equal((await c.getResult(small.resultId)).status, "COMPLETED");

    const deleted = await c.deleteResultsData([small.resultId, large.resultId]);
    assert.deepEqual(deleted.sort(), [small.resultId, large.resultId].sort());
    assert.deepEqual(await c.deleteResultsData([small.resultId]), [], "already deleted: left alone");
    for (const r of [small, large]) {
      assert.equal((await c.getResult(r.resultId)).status, "DELETED");
      await assert.rejects(c.downloadResult(r.resultId), /its data was deleted/);
      assert.equal(server.scheduler.results.get(r.resultId)?.data ?? null, null, "its data is not in memory");
    }
    // The store holds none of it.
    const db = new Database(join(config.dataDir, "zgrid.db"), { readonly: true });
    try {
      const chunks = db
        .prepare("SELECT count(*) AS n FROM result_data WHERE result_id = ?")
        .get(large.resultId) as {
        n: number;
      };
      assert.equal(chunks.n, 0);
      const row = db.prepare("SELECT data FROM results WHERE id = ?").get(small.resultId) as {
        data: Buffer | null;
      };
      assert.equal(row.data, null);
    } finally {
      db.close();
    }
    // A task that depends on deleted data ends ERROR saying why.
    const [t] = await c.submitTasks(sessionId, [
      { payload: encodePayload("noop"), dataDependencies: [small.resultId] },
    ]);
    const task = await c.getTask(t.taskId);
    assert.equal(task.status, "ERROR");
    assert.match(
      task.error ?? "",
      new RegExp(`dependency ${small.resultId} is DELETED: its data was deleted`),
    );
  });

  it("results an attempt creates through its agent are invisible to clients until the attempt completes", async () => {
    const config = testConfig();
    cleanup.push(() => removeDir(config.dataDir));
    const server = new Server(config);
    const c = await started(server);
    const apps = tempDir("zgrid-staged-app-");
    cleanup.push(() => removeDir(apps));
    // The method name is a file: the task creates a result, then waits until the test writes that file.
    writeFileSync(
      join(apps, "staged.js"),
      `import { existsSync } from "node:fs";
export function createService() { return {}; }
export async function call(service, session, release, args, agent) {
  const [r] = await agent.createResults([{ name: "made-by-task", data: new Uint8Array([1, 2, 3]) }]);
  for (let i = 0; i < 3000 && !existsSync(release); i++) await new Promise((ok) => setTimeout(ok, 20));
  return r.resultId;
}
`,
    );
    const worker = await spawnWorker(server, apps, 1);
    cleanup.push(() => worker.stop());
    const release = join(apps, "release");
    const sessionId = await c.createSession({ applicationName: "staged" });
    const [t] = await c.submitTasks(sessionId, [{ payload: encodePayload(release) }]);
    await waitFor(
      () => [...server.scheduler.results.values()].some((r) => r.name === "made-by-task"),
      30_000,
      "the task to create its result",
    );
    const made = [...server.scheduler.results.values()].find((r) => r.name === "made-by-task")!;
    const listed = await c.listResults({ filter: { sessionId }, pageSize: 1000 });
    assert.ok(!listed.items.some((r) => r.resultId === made.id), "listed while the attempt runs");
    await assert.rejects(c.getResult(made.id), (err: ZgridError) => err.code === "NOT_FOUND");
    await assert.rejects(c.downloadResult(made.id), (err: ZgridError) => err.code === "NOT_FOUND");
    await assert.rejects(
      c.submitTasks(sessionId, [{ payload: encodePayload("x"), dataDependencies: [made.id] }]),
      (err: ZgridError) => err.code === "NOT_FOUND",
    );

    writeFileSync(release, "");
    await c.waitResults(t.expectedOutputIds, { timeoutMs: 30_000 });
    assert.equal((await c.getTask(t.taskId)).status, "COMPLETED");
    assert.equal((await c.getResult(made.id)).status, "COMPLETED");
    assert.deepEqual([...(await c.downloadResult(made.id))], [1, 2, 3]);
  });

  it("batch lookups: the owner task of many results and the result ids of many tasks, one request each", async () => {
    const server = new Server(testConfig({ store: "memory" }));
    const c = await started(server);
    const sessionId = await c.createSession({ partitionId: "nobody" });
    const [given] = await c.createResults(sessionId, [{ name: "given", data: Buffer.from("x") }]);
    const tasks = await c.submitTasks(sessionId, [
      { payload: encodePayload("a"), outputCount: 2 },
      { payload: encodePayload("b") },
    ]);
    const ids = await c.getResultIds(tasks.map((t) => t.taskId));
    assert.deepEqual(ids, Object.fromEntries(tasks.map((t) => [t.taskId, t.expectedOutputIds])));
    assert.equal(ids[tasks[0].taskId].length, 2);
    const outputs = tasks.flatMap((t) => t.expectedOutputIds);
    const owners = await c.getOwnerTaskIds([...outputs, given.resultId]);
    for (const t of tasks) for (const o of t.expectedOutputIds) assert.equal(owners[o], t.taskId);
    assert.equal(owners[given.resultId], null);
    await assert.rejects(c.getOwnerTaskIds(["r-nope"]), (err: ZgridError) => err.code === "NOT_FOUND");
    await assert.rejects(c.getResultIds(["t-nope"]), (err: ZgridError) => err.code === "NOT_FOUND");
  });

  it("sessions: stopSubmission's client and worker flags, whole records in every reply, times and duration", async () => {
    const server = new Server(testConfig({ store: "memory" }));
    const c = await started(server);
    const apps = tempDir("zgrid-child-app-");
    cleanup.push(() => removeDir(apps));
    // A task that submits one child and answers what happened.
    writeFileSync(
      join(apps, "parent.js"),
      `export function createService() { return {}; }
export async function call(service, session, method, args, agent) {
  if (method === "child") return "child ran";
  try {
    await agent.submitTasks([{ payload: new Uint8Array([0x81, 0xa6, 0x6d, 0x65, 0x74, 0x68, 0x6f, 0x64, 0xa5, 0x63, 0x68, 0x69, 0x6c, 0x64]) }]);
    return "child submitted";
  } catch (err) {
    return "refused: " + err.message;
  }
}
`,
    );
    const worker = await spawnWorker(server, apps, 1);
    cleanup.push(() => worker.stop());
    const run = async (s: string) => {
      const [t] = await c.submitTasks(s, [{ payload: encodePayload("parent") }]);
      const { data } = await c.waitResultsData(t.expectedOutputIds, { timeoutMs: 30_000 });
      return decodeOutput(data.get(t.expectedOutputIds[0])!) as string;
    };

    const a = await c.createSession({ applicationName: "parent" });
    const stoppedClients = await c.stopSubmission(a, { client: true });
    assert.equal(stoppedClients.sessionId, a);
    assert.equal(stoppedClients.clientSubmission, false);
    assert.equal(stoppedClients.workerSubmission, true);
    await assert.rejects(
      c.submitTasks(a, [{ payload: encodePayload("parent") }]),
      /stopped taking submissions from clients/,
    );

    const b = await c.createSession({ applicationName: "parent" });
    await c.stopSubmission(b, { worker: true });
    assert.match(await run(b), /refused: .*stopped taking child tasks from its tasks/);
    const open = await c.createSession({ applicationName: "parent" });
    assert.equal(await run(open), "child submitted");

    // Every session command answers the whole record.
    const paused = await c.pauseSession(open);
    assert.equal((paused as { status: string }).status, "PAUSED");
    assert.equal((paused as { taskCount: number }).taskCount, 2);
    await c.resumeSession(open);
    const closed = (await c.closeSession(open)) as { closedAt: number; duration: number; createdAt: number };
    assert.ok(closed.closedAt >= closed.createdAt);
    assert.equal(closed.duration, closed.closedAt - closed.createdAt);
    const cancelled = await c.cancelSession(b);
    assert.equal((cancelled as unknown as { status: string }).status, "CANCELLED");
    assert.ok((await c.getSession(b)).cancelledAt !== null);
    assert.equal((await c.getSession(a)).duration, null, "a running session has no duration yet");
  });
});
