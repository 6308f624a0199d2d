import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import { encodePayload } from "../src/client/payload.js";
import type { SessionEvent } from "../src/client/types.js";
import type { Server } from "../src/daemons/server.js";
import { ZgridError } from "../src/protocol/errors.js";
import { FIXTURE_APPS, holdsOver, spawnCli, startServer, waitFor, type Proc } from "./helpers.js";

const FINAL = new Set(["COMPLETED", "ERROR", "TIMEOUT", "CANCELLED"]);

describe("dependencies, events and the session life cycle, with real workers", () => {
  let server: Server;
  let client: ZgridClient;
  const procs: Proc[] = [];

  before(async () => {
    ({ server } = await startServer({ heartbeatMs: 200 }));
    client = await connect(server.info!.url, { timeoutMs: 60_000 });
    procs.push(
      spawnCli([
        "worker",
        "--connect",
        server.info!.workerUrl,
        "--app-path",
        FIXTURE_APPS,
        "--slots",
        "2",
        "--log-level",
        "warn",
      ]),
    );
    await waitFor(() => server.scheduler.workers.size === 1, 15_000, "worker");
  });
  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await client.close();
    await server.shutdown();
  });

  const sessionOf = (options = {}) => client.createSession({ applicationName: "testapp", ...options });

  it("runs a diamond A → B, C → D in dependency order", async () => {
    const s = await sessionOf();
    const [a, b, c, d] = await client.createResults(s, [
      { name: "a" },
      { name: "b" },
      { name: "c" },
      { name: "d" },
    ]);
    const p = (x: string) => encodePayload("echo", [x]);
    // Submitted in reverse so that only the dependencies can explain the order.
    const [td] = await client.submitTasks(s, [
      { payload: p("D"), expectedOutputIds: [d.resultId], dataDependencies: [b.resultId, c.resultId] },
    ]);
    const [tb, tc] = await client.submitTasks(s, [
      { payload: p("B"), expectedOutputIds: [b.resultId], dataDependencies: [a.resultId] },
      { payload: p("C"), expectedOutputIds: [c.resultId], dataDependencies: [a.resultId] },
    ]);
    assert.equal((await client.getTask(td.taskId)).status, "PENDING");
    const [ta] = await client.submitTasks(s, [{ payload: p("A"), expectedOutputIds: [a.resultId] }]);
    const r = await client.waitResults([d.resultId], { timeoutMs: 20_000 });
    assert.equal(r.statuses[d.resultId], "COMPLETED");
    const info = Object.fromEntries(
      await Promise.all(
        [ta, tb, tc, td].map(async (t) => [t.taskId, await client.getTask(t.taskId)] as const),
      ),
    );
    const A = info[ta.taskId],
      B = info[tb.taskId],
      C = info[tc.taskId],
      D = info[td.taskId];
    assert.ok(
      A.endedAt! <= B.submittedAt! && A.endedAt! <= C.submittedAt!,
      "B and C were queued after A ended",
    );
    assert.ok(
      B.endedAt! <= D.submittedAt! && C.endedAt! <= D.submittedAt!,
      "D was queued after B and C ended",
    );
  });

  it("runs a task submitted before its payload only after the upload", async () => {
    const s = await sessionOf();
    const [payload] = await client.createResults(s, [{ name: "late payload" }]);
    const [t] = await client.submitTasks(s, [{ payloadId: payload.resultId }]);
    // A task submitted after it, ready at once, runs meanwhile on the idle worker: the worker was there
    // to take the first one too, had it been ready. Over all that time the first stays PENDING.
    const [control] = await client.submitTasks(s, [{ payload: encodePayload("echo", ["control"]) }]);
    const controlRan = client.waitResults(control.expectedOutputIds, { timeoutMs: 15_000 }).then((r) => {
      assert.equal(r.statuses[control.expectedOutputIds[0]], "COMPLETED", "the control task ran");
    });
    await holdsOver(async () => (await client.getTask(t.taskId)).status === "PENDING", {
      until: controlRan,
      what: "the task without its payload PENDING",
    });
    assert.deepEqual((await client.getTask(t.taskId)).attempts, [], "it never ran");
    await client.uploadResult(payload.resultId, encodePayload("echo", ["late"]));
    const r = await client.waitResults(t.expectedOutputIds, { timeoutMs: 15_000 });
    assert.equal(r.statuses[t.expectedOutputIds[0]], "COMPLETED");
  });

  it("fails the dependents of a failing producer, down the graph, with outputs ABORTED", async () => {
    const s = await sessionOf({ maxRetries: 0 });
    const [x, y, z] = await client.createResults(s, [{ name: "x" }, { name: "y" }, { name: "z" }]);
    const [ty] = await client.submitTasks(s, [
      {
        payload: encodePayload("echo", [1]),
        expectedOutputIds: [y.resultId],
        dataDependencies: [x.resultId],
      },
    ]);
    const [tz] = await client.submitTasks(s, [
      {
        payload: encodePayload("echo", [2]),
        expectedOutputIds: [z.resultId],
        dataDependencies: [y.resultId],
      },
    ]);
    const [tx] = await client.submitTasks(s, [
      { payload: encodePayload("appfail", ["producer broke"]), expectedOutputIds: [x.resultId] },
    ]);
    await client.waitResults([z.resultId], { timeoutMs: 15_000 });
    assert.equal((await client.getTask(tx.taskId)).status, "ERROR");
    for (const t of [ty, tz]) {
      const info = await client.getTask(t.taskId);
      assert.equal(info.status, "ERROR");
      assert.match(info.error ?? "", /aborted/);
      assert.equal(info.attempts.length, 0, "a dependent never ran");
    }
    for (const r of [x, y, z]) assert.equal((await client.getResult(r.resultId)).status, "ABORTED");
  });

  it("gives a subscriber who joins mid-session every task exactly once, then live updates, then nothing after unsubscribe", async () => {
    const s = await sessionOf({ partitionId: "held" });
    const early = await client.submitTasks(
      s,
      Array.from({ length: 20 }, () => ({ payload: encodePayload("echo", [0]) })),
    );
    const events: SessionEvent[] = [];
    const sub = await client.subscribe(s, (e) => events.push(e));
    // The same subscription by hand, whose listener the test keeps after unsubscribing: what the server
    // still sends then is seen here (sub.close() drops it on the client side).
    const rawEvents: SessionEvent[] = [];
    const raw = await client.call<{ subscriptionId: string }>(
      "events.subscribe",
      { sessionId: s },
      undefined,
      {
        onEvent: (e) => rawEvents.push(e as SessionEvent),
      },
    );
    const late = await client.submitTasks(
      s,
      Array.from({ length: 10 }, () => ({ payload: encodePayload("echo", [1]) })),
    );
    const newTaskIds = (list: SessionEvent[]): string[] =>
      list.filter((e) => e.type === "newTask").map((e) => (e as { taskId: string }).taskId);
    await waitFor(
      () => newTaskIds(events).length >= 30 && newTaskIds(rawEvents).length >= 30,
      10_000,
      "newTask events",
    );
    for (const seen of [newTaskIds(events), newTaskIds(rawEvents)]) {
      assert.equal(seen.length, 30);
      assert.equal(new Set(seen).size, 30, "each task exactly once");
      for (const t of [...early, ...late]) assert.ok(seen.includes(t.taskId));
    }
    // Live status updates: cancel the tasks (the session stays RUNNING), every task's CANCELLED arrives.
    const cancelled = (list: SessionEvent[]): number =>
      list.filter((e) => e.type === "taskStatusUpdate" && e.status === "CANCELLED").length;
    await client.cancelTasks([...early, ...late].map((t) => t.taskId));
    await waitFor(() => cancelled(events) === 30 && cancelled(rawEvents) === 30, 10_000, "CANCELLED updates");

    // A third subscription stays open: the control that events of this session still flow.
    const control: SessionEvent[] = [];
    const watcher = await client.subscribe(s, (e) => control.push(e), { eventTypes: ["newTask"] });
    await sub.close();
    const unsubscribed = await client.call<{ removed: boolean }>("events.unsubscribe", {
      subscriptionId: raw.subscriptionId,
    });
    assert.equal(unsubscribed.removed, true);
    const n = events.length;
    const m = rawEvents.length;
    const [afterwards] = await client.submitTasks(s, [{ payload: encodePayload("echo", [2]) }]);
    await waitFor(
      () => newTaskIds(control).includes(afterwards.taskId),
      10_000,
      "the control subscription to see the task submitted after unsubscribe",
    );
    // Events and replies leave the server in order on this one connection: once the reply to a later
    // request is here, every event sent before it is here too.
    assert.equal(await client.ruok(), "imok");
    assert.equal(events.length, n, "nothing after close()");
    assert.equal(rawEvents.length, m, "the server sent nothing after events.unsubscribe");
    await watcher.close();
  });

  it("cancels a running task within a second, and every status is final", async () => {
    const s = await sessionOf();
    const [t] = await client.submitTasks(s, [{ payload: encodePayload("spin", [30_000]) }]);
    await waitFor(async () => (await client.getTask(t.taskId)).status === "PROCESSING", 10_000, "processing");
    const queued = await client.submitTasks(
      s,
      Array.from({ length: 5 }, () => ({ payload: encodePayload("spin", [30_000]) })),
      { partitionId: "held" },
    );
    const started = Date.now();
    await client.cancelSession(s);
    await waitFor(
      async () => (await client.getTask(t.taskId)).status === "CANCELLED",
      1500,
      "the running task cancelled",
    );
    assert.ok(Date.now() - started < 1500);
    const all = await client.listTasks({ filter: { sessionId: s } });
    for (const x of all.items) assert.ok(FINAL.has(x.status), `${x.taskId} is ${x.status}`);
    for (const q of queued) assert.equal((await client.getResult(q.expectedOutputIds[0])).status, "ABORTED");
    // The worker's slot is free again.
    const s2 = await sessionOf();
    const [echo] = await client.submitTasks(s2, [{ payload: encodePayload("echo", ["x"]) }]);
    assert.equal((await client.waitResults(echo.expectedOutputIds, { timeoutMs: 10_000 })).timedOut, false);
  });

  it("holds queued tasks while paused and runs them on resume", async () => {
    const s = await sessionOf();
    await client.pauseSession(s);
    const ts = await client.submitTasks(
      s,
      Array.from({ length: 5 }, () => ({ payload: encodePayload("echo", [3]) })),
    );
    // A task of another session, submitted after them, runs meanwhile on the idle worker, which had
    // slots for the paused ones too. Over all that time the five stay PAUSED.
    const [control] = await client.submitTasks(await sessionOf(), [{ payload: encodePayload("echo", [4]) }]);
    const controlRan = client.waitResults(control.expectedOutputIds, { timeoutMs: 15_000 }).then((r) => {
      assert.equal(r.statuses[control.expectedOutputIds[0]], "COMPLETED", "the control task ran");
    });
    await holdsOver(async () => (await client.countTasks({ sessionId: s })).PAUSED === 5, {
      until: controlRan,
      what: "the 5 tasks PAUSED",
    });
    await client.resumeSession(s);
    const r = await client.waitResults(
      ts.map((t) => t.expectedOutputIds[0]),
      { timeoutMs: 15_000 },
    );
    assert.equal(r.timedOut, false);
    assert.equal((await client.countTasks({ sessionId: s })).COMPLETED, 5);
  });

  it("purges data but keeps metadata; delete leaves nothing", async () => {
    const s = await sessionOf();
    const [t] = await client.submitTasks(s, [{ payload: encodePayload("echo", ["keep?"]) }]);
    await client.waitResults(t.expectedOutputIds, { timeoutMs: 10_000 });
    await client.closeSession(s);
    const purged = await client.purgeSession(s);
    assert.ok(purged.purgedResults >= 2);
    assert.equal((await client.getResult(t.expectedOutputIds[0])).status, "DELETED");
    await assert.rejects(
      client.downloadResult(t.expectedOutputIds[0]),
      (e: unknown) => e instanceof ZgridError && e.code === "FAILED_PRECONDITION",
    );
    assert.equal((await client.getTask(t.taskId)).status, "COMPLETED");
    const deleted = await client.deleteSession(s);
    assert.equal((deleted as { status: string }).status, "DELETED");
    // The session answers with its DELETED record a while (issue 18 item 6); its tasks and results are gone.
    const record = await client.getSession(s);
    assert.equal(record.status, "DELETED");
    assert.ok(record.deletedAt !== null && record.deletedAt >= record.createdAt);
    assert.ok(record.closedAt !== null && record.purgedAt !== null);
    assert.equal(record.duration, record.closedAt - record.createdAt);
    for (const call of [client.getTask(t.taskId), client.getResult(t.expectedOutputIds[0])]) {
      await assert.rejects(call, (e: unknown) => e instanceof ZgridError && e.code === "NOT_FOUND");
    }
    assert.equal((await client.listTasks({ filter: { sessionId: s } })).total, 0);
  });

  it("answers every transition design §5 does not allow with FAILED_PRECONDITION naming the status", async () => {
    const expectPrecondition = async (p: Promise<unknown>, status: string) =>
      assert.rejects(
        p,
        (e: unknown) =>
          e instanceof ZgridError && e.code === "FAILED_PRECONDITION" && e.message.includes(status),
      );
    const s = await sessionOf();
    await expectPrecondition(client.resumeSession(s), "RUNNING");
    await expectPrecondition(client.purgeSession(s), "RUNNING");
    await client.pauseSession(s);
    await expectPrecondition(client.pauseSession(s), "PAUSED");
    await client.closeSession(s);
    await expectPrecondition(client.pauseSession(s), "CLOSED");
    await expectPrecondition(client.resumeSession(s), "CLOSED");
    await expectPrecondition(client.closeSession(s), "CLOSED");
    await expectPrecondition(client.submitTasks(s, [{ payload: encodePayload("echo", [1]) }]), "CLOSED");
    await client.cancelSession(s);
    await expectPrecondition(client.cancelSession(s), "CANCELLED");
    await client.purgeSession(s);
    await expectPrecondition(client.purgeSession(s), "PURGED");
    await expectPrecondition(client.cancelSession(s), "PURGED");
    const stopped = await sessionOf();
    await client.stopSubmission(stopped);
    await expectPrecondition(
      client.submitTasks(stopped, [{ payload: encodePayload("echo", [1]) }]),
      "stopped",
    );
  });

  it("cancels tasks by id, running ones included", async () => {
    const s = await sessionOf();
    const [run] = await client.submitTasks(s, [{ payload: encodePayload("spin", [30_000]) }]);
    await waitFor(
      async () => (await client.getTask(run.taskId)).status === "PROCESSING",
      10_000,
      "processing",
    );
    const [held] = await client.submitTasks(s, [{ payload: encodePayload("echo", [1]) }], {
      partitionId: "held",
    });
    const r = await client.cancelTasks([run.taskId, held.taskId]);
    assert.deepEqual(r.cancelled, { PROCESSING: 1, SUBMITTED: 1 });
    await waitFor(async () => (await client.getTask(run.taskId)).status === "CANCELLED", 1500, "cancelled");
    assert.equal((await client.getTask(held.taskId)).status, "CANCELLED");
    const workers = await client.listWorkers();
    assert.equal(workers.total, 1);
    assert.ok(workers.items[0].lastHeartbeat > 0);
    const partitions = await client.listPartitions();
    assert.ok(partitions.items.some((p) => p.partitionId === "default" && p.workers === 1));
    const apps = await client.listApplications();
    assert.ok(apps.items.some((a) => a.applicationName === "testapp" && a.tasks > 0));
  });
});
