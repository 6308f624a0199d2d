/**
 * Lineage and times (issue 18 item 5): who created a task or a result (a client's user, or the task
 * that submitted it), its parent, its initial task and retries (zgrid: a retry is a new attempt of the
 * same task), and its times, in tasks.get, tasks.list, events and the CLI, kept across a restart on
 * SQLite. Also: an older record without these fields still loads.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { connect, type ZgridClient } from "../src/client/client.js";
import { encodePayload } from "../src/client/payload.js";
import type { SessionEvent, TaskInfo } from "../src/client/types.js";
import type { Server } from "../src/daemons/server.js";
import { decode, encode } from "../src/protocol/codec.js";
import {
  FIXTURE_APPS,
  removeDir,
  runCli,
  spawnWorker,
  startServer,
  tempDir,
  waitFor,
  type Proc,
} from "./helpers.js";

/** received ≤ submitted ≤ dispatched ≤ started ≤ ended, each present. */
function assertTimesInOrder(t: TaskInfo): void {
  const times = [t.receivedAt, t.submittedAt, t.dispatchedAt, t.startedAt, t.endedAt];
  for (const v of times) assert.equal(typeof v, "number", `times of ${t.taskId}: ${JSON.stringify(times)}`);
  for (let i = 1; i < times.length; i++)
    assert.ok(times[i - 1]! <= times[i]!, `times of ${t.taskId} out of order: ${JSON.stringify(times)}`);
  assert.equal(t.createdAt, t.receivedAt);
}

describe("lineage and times", () => {
  const dataDir = tempDir();
  let server: Server;
  let client: ZgridClient;
  let worker: Proc;

  const start = async (): Promise<void> => {
    ({ server } = await startServer({ dataDir, store: "sqlite" }));
    client = await connect(server.info!.url, { timeoutMs: 60_000, user: "alice" });
  };

  before(start);
  after(async () => {
    await worker?.stop();
    await client?.close();
    await server?.shutdown();
    removeDir(dataDir);
  });

  let clientTask: TaskInfo;
  let parent: TaskInfo;
  let retried: TaskInfo;
  const events: SessionEvent[] = [];

  it("a client's task: createdBy its user, no parent, itself as initial task, times in order", async () => {
    worker = await spawnWorker(server, FIXTURE_APPS, 2);
    const s = await client.createSession({ applicationName: "testapp" });
    const sub = await client.subscribe(s, (e) => events.push(e));
    const [t] = await client.submitTasks(s, [{ payload: encodePayload("echo", [1]) }]);
    await client.waitResults(t.expectedOutputIds, { timeoutMs: 30_000 });
    clientTask = await client.getTask(t.taskId);
    assert.equal(clientTask.status, "COMPLETED");
    assert.equal(clientTask.createdBy, "alice");
    assert.deepEqual(clientTask.parentTaskIds, []);
    assert.equal(clientTask.initialTaskId, t.taskId);
    assert.deepEqual(clientTask.retryOfTaskIds, []);
    assertTimesInOrder(clientTask);
    const [a] = clientTask.attempts;
    assert.equal(a.queuedAt, clientTask.submittedAt);
    assert.equal(a.dispatchedAt, clientTask.dispatchedAt);
    assert.ok(a.dispatchedAt <= a.startedAt && a.startedAt <= a.endedAt!, JSON.stringify(a));

    // Its payload and output were created by the client; the output is owned by the task.
    const payload = await client.getResult(t.payloadId);
    assert.equal(payload.createdBy, "alice");
    assert.equal(payload.ownerTaskId, null);
    const output = await client.getResult(t.expectedOutputIds[0]);
    assert.equal(output.createdBy, "alice");
    assert.equal(output.ownerTaskId, t.taskId);

    // Events: newTask with the lineage, each status update with its attempt and the times so far.
    await waitFor(
      () => events.some((e) => e.type === "taskStatusUpdate" && e.status === "COMPLETED"),
      10_000,
      "the COMPLETED event",
    );
    await sub.close();
    const created = events.find((e) => e.type === "newTask" && e.taskId === t.taskId);
    assert.ok(created && created.type === "newTask");
    assert.equal(created.createdBy, "alice");
    assert.deepEqual(created.parentTaskIds, []);
    assert.equal(created.initialTaskId, t.taskId);
    assert.equal(created.receivedAt, clientTask.receivedAt);
    const updates = events.filter((e) => e.type === "taskStatusUpdate" && e.taskId === t.taskId);
    const byStatus = new Map(updates.map((e) => [e.type === "taskStatusUpdate" ? e.status : "", e]));
    const dispatched = byStatus.get("DISPATCHED");
    assert.ok(dispatched && dispatched.type === "taskStatusUpdate");
    assert.equal(dispatched.attempt, 1);
    assert.equal(dispatched.dispatchedAt, clientTask.dispatchedAt);
    const done = byStatus.get("COMPLETED");
    assert.ok(done && done.type === "taskStatusUpdate");
    assert.equal(done.endedAt, clientTask.endedAt);
    assert.equal(done.startedAt, clientTask.startedAt);
    const newResult = events.find((e) => e.type === "newResult" && e.resultId === t.payloadId);
    assert.ok(newResult && newResult.type === "newResult");
    assert.equal(newResult.createdBy, "alice");
  });

  it("a child task: its parent in parentTaskIds and createdBy; results a task creates name it", async () => {
    const s = await client.createSession({ applicationName: "dag" });
    const [t] = await client.submitTasks(s, [{ payload: encodePayload("sumRange", [0, 150]) }]);
    await client.waitResults(t.expectedOutputIds, { timeoutMs: 30_000 });
    parent = await client.getTask(t.taskId);
    assert.equal(parent.status, "COMPLETED");
    const tasks = (await client.listTasks({ filter: { sessionId: s } })).items;
    const children = tasks.filter((c) => c.taskId !== t.taskId);
    assert.equal(children.length, 3, "two halves and the add2 that combines them");
    // Lineage is a filter's field too.
    const where = (field: string, op: "eq" | "contains", value: string) => ({
      filter: { or: [{ and: [{ field, op, value }] }] },
    });
    const kids = await client.listTasks(where("parentTaskIds", "contains", t.taskId));
    assert.deepEqual(kids.items.map((k) => k.taskId).sort(), children.map((c) => c.taskId).sort());
    assert.equal((await client.listTasks(where("createdBy", "eq", t.taskId))).total, 3);
    assert.equal((await client.listResults(where("createdBy", "eq", t.taskId))).total >= 3, true);
    for (const c of children) {
      assert.deepEqual(c.parentTaskIds, [t.taskId]);
      assert.equal(c.createdBy, t.taskId);
      assert.equal(c.initialTaskId, c.taskId);
      assertTimesInOrder(c);
      assert.ok(c.receivedAt >= parent.receivedAt, "a child is received while its parent runs");
      // Its inline payload was created by the parent's attempt.
      assert.equal((await client.getResult(c.payloadId)).createdBy, t.taskId);
    }
    // The parent's output was delegated to the combining child: owned by it, created by the client.
    const out = await client.getResult(t.expectedOutputIds[0]);
    assert.equal(out.createdBy, "alice");
    const combiner = children.find((c) => c.expectedOutputIds.includes(out.resultId));
    assert.ok(combiner);
    assert.equal(out.ownerTaskId, combiner.taskId);
    // The halves' outputs were created by the parent (agent.createResults), owned by each half.
    for (const half of children.filter((c) => c !== combiner)) {
      const r = await client.getResult(half.expectedOutputIds[0]);
      assert.equal(r.createdBy, t.taskId);
      assert.equal(r.ownerTaskId, half.taskId);
    }
  });

  it("a retried task: one task, its attempts listed, each queued when the one before ended", async () => {
    const s = await client.createSession({ applicationName: "testapp", maxRetries: 1 });
    const [t] = await client.submitTasks(s, [{ payload: encodePayload("fail", ["boom"]) }]);
    await client.waitResults(t.expectedOutputIds, { timeoutMs: 30_000 });
    retried = await client.getTask(t.taskId);
    assert.equal(retried.status, "ERROR");
    assert.equal(retried.initialTaskId, t.taskId);
    assert.deepEqual(retried.retryOfTaskIds, []);
    assert.equal(retried.attempts.length, 2);
    const [first, second] = retried.attempts;
    assert.deepEqual([first.number, second.number, first.status, second.status], [1, 2, "FAILED", "FAILED"]);
    assert.equal(first.queuedAt, retried.submittedAt);
    assert.equal(second.queuedAt, first.endedAt);
    assert.ok(second.queuedAt! <= second.dispatchedAt && second.dispatchedAt <= second.startedAt);
    assert.equal(retried.dispatchedAt, second.dispatchedAt, "the task's times are its latest attempt's");
    assert.equal(retried.startedAt, second.startedAt);
    assertTimesInOrder(retried);
  });

  it("zgrid tasks list --fields shows the columns asked for, and names the valid ones on a wrong one", async () => {
    const url = server.info!.url;
    const sessionId = clientTask.sessionId;
    const r = await runCli([
      "tasks",
      "list",
      "--url",
      url,
      "--session",
      sessionId,
      "--fields",
      "taskId,createdBy,parentTaskIds,dispatchedAt",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const [head, row] = r.stdout.split("\n");
    assert.match(head, /^TASK\s+CREATED BY\s+PARENTS\s+DISPATCHED$/);
    assert.match(
      row,
      new RegExp(`^${clientTask.taskId}\\s+alice\\s+-\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d$`),
    );

    const json = await runCli([
      "tasks",
      "list",
      "--url",
      url,
      "--session",
      parent.sessionId,
      "--fields",
      "taskId,parentTaskIds",
      "--json",
    ]);
    assert.equal(json.code, 0, json.stderr);
    const items = (JSON.parse(json.stdout) as { items: Record<string, unknown>[] }).items;
    assert.equal(items.length, 4);
    for (const i of items) assert.deepEqual(Object.keys(i), ["taskId", "parentTaskIds"]);

    const bad = await runCli(["tasks", "list", "--url", url, "--fields", "taskId,createdby,nope"]);
    assert.equal(bad.code, 2, bad.stdout + bad.stderr);
    assert.match(bad.stderr, /unknown field "createdby" for tasks: did you mean "createdBy"\?/);
    assert.match(bad.stderr, /valid: taskId, sessionId, status, .*dispatchedAt/);
  });

  it("keeps lineage and times across a restart", async () => {
    await worker.stop();
    await client.close();
    await server.shutdown();
    await start();
    for (const before of [clientTask, parent, retried]) {
      const now = await client.getTask(before.taskId);
      for (const k of [
        "createdBy",
        "parentTaskIds",
        "initialTaskId",
        "receivedAt",
        "submittedAt",
        "dispatchedAt",
        "startedAt",
        "endedAt",
        "attempts",
      ] as const)
        assert.deepEqual(now[k], before[k], `${k} of ${before.taskId}`);
    }
    const out = await client.getResult(clientTask.expectedOutputIds[0]);
    assert.equal(out.createdBy, "alice");
    assert.equal(out.ownerTaskId, clientTask.taskId);
  });

  it("loads a task and a result stored before lineage, without its fields", async () => {
    await client.close();
    await server.shutdown();
    // Rewrite the rows as an older zgrid stored them: no createdBy, parentTaskId, queuedAt, dispatchedAt.
    const db = new Database(join(dataDir, "zgrid.db"));
    try {
      const row = db.prepare("SELECT doc FROM tasks WHERE id = ?").get(clientTask.taskId) as { doc: Buffer };
      const doc = decode(row.doc) as Record<string, unknown> & { attempts: Record<string, unknown>[] };
      delete doc.createdBy;
      delete doc.parentTaskId;
      for (const a of doc.attempts) {
        delete a.queuedAt;
        delete a.dispatchedAt;
      }
      db.prepare("UPDATE tasks SET doc = ? WHERE id = ?").run(Buffer.from(encode(doc)), clientTask.taskId);
      const rrow = db.prepare("SELECT doc FROM results WHERE id = ?").get(clientTask.payloadId) as {
        doc: Buffer;
      };
      const rdoc = decode(rrow.doc) as Record<string, unknown>;
      delete rdoc.createdBy;
      db.prepare("UPDATE results SET doc = ? WHERE id = ?").run(
        Buffer.from(encode(rdoc)),
        clientTask.payloadId,
      );
    } finally {
      db.close();
    }
    await start();
    const t = await client.getTask(clientTask.taskId);
    assert.equal(t.status, "COMPLETED");
    assert.equal(t.createdBy, null);
    assert.deepEqual(t.parentTaskIds, []);
    assert.equal(t.initialTaskId, t.taskId);
    assert.equal(t.attempts[0].queuedAt, null);
    // An older attempt's startedAt (its worker's start) stands in for its dispatch time.
    assert.equal(t.attempts[0].dispatchedAt, clientTask.attempts[0].startedAt);
    assert.equal(t.endedAt, clientTask.endedAt);
    assert.equal((await client.getResult(clientTask.payloadId)).createdBy, null);
  });
});
