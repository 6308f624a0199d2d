/**
 * Finished work leaves memory too (issue 18 item 2): on the SQLite store, the records of finished tasks
 * and of the results nothing live needs leave the server's memory once committed, and every command
 * that names them (get, list, count, download, wait, a new task depending on them, events, a session's
 * purge and delete) reads them from the store, before and after a restart. The memory store keeps them.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import { decodeOutput, encodePayload } from "../src/client/payload.js";
import type { SessionEvent } from "../src/client/types.js";
import { Server } from "../src/daemons/server.js";
import type { ZgridError } from "../src/protocol/errors.js";
import { EXAMPLE_APPS, removeDir, spawnWorker, testConfig, waitFor, type Proc } from "./helpers.js";
import { BothStores } from "./postgres.js";

const TASKS = 300;
const value = (i: number) => `value ${i}`;
/** The results of the session: an input, and an inline payload and an output per task but one. */
const RESULTS = 1 + 2 * (TASKS + 3) + 1;

describe("finished work in memory", { timeout: 240_000 }, () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c();
  });
  /** Clients of the server's DEFAULT, STATUS and METRICS daemons. */
  const clients = new Map<ZgridClient, { status: ZgridClient; metrics: ZgridClient }>();
  const started = async (server: Server): Promise<ZgridClient> => {
    const info = await server.start();
    cleanup.push(() => server.shutdown());
    const c = await connect(info.url, { timeoutMs: 60_000 });
    const status = await connect(info.statusUrl!, { timeoutMs: 60_000 });
    const metrics = await connect(info.metricsUrl!, { timeoutMs: 60_000 });
    clients.set(c, { status, metrics });
    cleanup.push(
      () => c.close(),
      () => status.close(),
      () => metrics.close(),
    );
    return c;
  };
  /** Records held in memory, as the STATUS daemon's getstatus reports them. */
  const held = async (c: ZgridClient) => {
    const s = (await clients.get(c)!.status.getStatus()).scheduler as {
      tasksInMemory: number;
      resultsInMemory: number;
    };
    return { tasks: s.tasksInMemory, results: s.resultsInMemory };
  };
  const prometheus = (c: ZgridClient) => clients.get(c)!.metrics.prometheus();

  const stores = new BothStores();
  after(() => stores.stop());
  for (const kind of stores.kinds) {
    it(
      `${kind}: finished tasks and results leave memory; get, list, count, download, wait and new dependent tasks read them from the store, before and after a restart`,
      { skip: stores.skip(kind) },
      async () => {
        const config = testConfig(await stores.settings(kind));
        cleanup.push(() => removeDir(config.dataDir));
        const a = new Server(config);
        const c = await started(a);
        const worker: Proc = await spawnWorker(a, EXAMPLE_APPS, 2);
        cleanup.push(() => worker.stop());
        const sessionId = await c.createSession({ applicationName: "echo" });
        const [input] = await c.createResults(sessionId, [
          { name: "input", data: encodePayload("echo", ["from the input"]) },
        ]);
        const tasks = await c.submitTasks(
          sessionId,
          Array.from({ length: TASKS }, (_, i) => ({ payload: encodePayload("echo", [value(i)]) })),
        );
        const outputs = tasks.map((t) => t.expectedOutputIds[0]);
        assert.equal((await c.waitResults(outputs, { timeoutMs: 60_000 })).timedOut, false);

        // Nothing is live: every record leaves memory once its final state is committed.
        await waitFor(async () => (await held(c)).tasks === 0, 30_000, "no task record held in memory");
        await waitFor(async () => (await held(c)).results === 0, 30_000, "no result record held in memory");
        assert.equal(a.scheduler.tasks.size, 0);
        assert.match(await prometheus(c), /^zgrid_tasks_in_memory 0$/m);
        assert.match(await prometheus(c), /^zgrid_results_in_memory 0$/m);

        // Read back from the store.
        const checkHistory = async (client: ZgridClient) => {
          const t = await client.getTask(tasks[7].taskId);
          assert.equal(t.status, "COMPLETED");
          assert.equal(t.attempts.length, 1);
          assert.equal(typeof t.createdBy, "string", "lineage read back");
          assert.deepEqual(t.parentTaskIds, []);
          assert.equal(t.sessionId, sessionId);
          assert.equal((await client.getResult(outputs[7])).status, "COMPLETED");
          assert.equal((await client.getResult(outputs[7])).ownerTaskId, tasks[7].taskId);
          assert.equal(decodeOutput(await client.downloadResult(outputs[7])), value(7));
          const waited = await client.waitResults([outputs[0], outputs[TASKS - 1]], { timeoutMs: 10_000 });
          assert.deepEqual(waited.statuses, { [outputs[0]]: "COMPLETED", [outputs[TASKS - 1]]: "COMPLETED" });
          const { data } = await client.waitResultsData([outputs[3]], { timeoutMs: 10_000 });
          assert.equal(decodeOutput(data.get(outputs[3])!), value(3));
          assert.deepEqual(await client.getResultIds([tasks[5].taskId]), { [tasks[5].taskId]: [outputs[5]] });
        };
        await checkHistory(c);

        // A new task naming old results: the client's input as its payload, an old output as a dependency.
        const [late] = await c.submitTasks(sessionId, [
          { payloadId: input.resultId, dataDependencies: [outputs[0]] },
        ]);
        const lateData = await c.waitResultsData(late.expectedOutputIds, { timeoutMs: 30_000 });
        assert.equal(decodeOutput(lateData.data.get(late.expectedOutputIds[0])!), "from the input");

        // Live work beside the history: three tasks queued in a partition no worker serves.
        const queued = await c.submitTasks(
          sessionId,
          [0, 1, 2].map((i) => ({ payload: encodePayload("echo", [`queued ${i}`]) })),
          { partitionId: "nobody" },
        );
        await waitFor(async () => (await held(c)).tasks === 3, 30_000, "only the queued tasks in memory");

        const checkMerged = async (client: ZgridClient) => {
          const counts = await client.countTasks();
          assert.equal(counts.COMPLETED, TASKS + 1);
          assert.equal(counts.SUBMITTED, 3);
          const bySession = await client.countTasks({ sessionId });
          assert.equal(bySession.COMPLETED, TASKS + 1);
          assert.equal(bySession.SUBMITTED, 3);
          // Unsorted: submission order, finished (store) and live (memory) tasks together, no duplicates.
          const all = [...tasks, late, ...queued].map((t) => t.taskId);
          const page0 = await client.listTasks({ filter: { sessionId }, pageSize: 100 });
          assert.equal(page0.total, TASKS + 4);
          assert.deepEqual(
            page0.items.map((t) => t.taskId),
            all.slice(0, 100),
          );
          const last = await client.listTasks({ filter: { sessionId }, pageSize: 100, page: 3 });
          assert.deepEqual(
            last.items.map((t) => t.taskId),
            all.slice(300),
          );
          // Sorted across both: the queued ones are the newest.
          const newest = await client.listTasks({
            filter: { sessionId },
            sort: { field: "createdAt", direction: "desc" },
            pageSize: 3,
          });
          assert.deepEqual(newest.items.map((t) => t.taskId).sort(), queued.map((t) => t.taskId).sort());
          const open = await client.listTasks({
            filter: { or: [{ and: [{ field: "status", op: "in", value: ["SUBMITTED", "ERROR"] }] }] },
          });
          assert.equal(open.total, 3);
          const done = await client.listTasks({
            filter: { or: [{ and: [{ field: "status", op: "eq", value: "COMPLETED" }] }] },
            pageSize: 1,
          });
          assert.equal(done.total, TASKS + 1);
          // Results: the input, a payload and an output per task (the late task's payload is the input).
          const results = await client.listResults({ filter: { sessionId }, pageSize: 1 });
          assert.equal(results.total, RESULTS);
        };
        await checkMerged(c);

        // Whole sessions are counted from counters kept by session: not one record is read from the store.
        const store = a.scheduler.store;
        const scanTasks = store.scanTasks.bind(store);
        let scans = 0;
        store.scanTasks = (...args) => {
          scans++;
          return scanTasks(...args);
        };
        const bySessions = await c.countTasks({
          or: [{ and: [{ field: "sessionId", op: "in", value: [sessionId, "no-such-session"] }] }],
        });
        assert.equal(bySessions.COMPLETED, TASKS + 1);
        assert.equal(bySessions.SUBMITTED, 3);
        assert.equal((await c.countTasks({ sessionId })).COMPLETED, TASKS + 1);
        assert.equal(scans, 0, "tasks.count of whole sessions read records from the store");
        // Another condition beside the session: the records are read.
        const inNobody = await c.countTasks({
          or: [
            {
              and: [
                { field: "sessionId", op: "eq", value: sessionId },
                { field: "options.partitionId", op: "eq", value: "nobody" },
              ],
            },
          ],
        });
        assert.equal(inNobody.SUBMITTED, 3);
        assert.equal(inNobody.COMPLETED, 0);
        assert.ok(scans > 0);
        store.scanTasks = scanTasks;

        // Events: the snapshot holds what already exists, from the store and from memory.
        const snapshot: SessionEvent[] = [];
        const sub = await c.subscribe(sessionId, (e) => snapshot.push(e), { eventTypes: ["newTask"] });
        await waitFor(() => snapshot.length >= TASKS + 4, 10_000, "the snapshot's newTask events");
        assert.equal(new Set(snapshot.map((e) => (e as { taskId: string }).taskId)).size, TASKS + 4);
        await sub.close();

        await worker.stop();
        await c.close();
        await a.shutdown();

        // After a restart: only the live work is loaded; history answers from the store.
        const b = new Server(config);
        const c2 = await started(b);
        assert.deepEqual(
          [...b.scheduler.tasks.keys()].sort(),
          queued.map((t) => t.taskId).sort(),
          "only the unfinished tasks are loaded",
        );
        assert.ok(b.scheduler.results.size <= 6, `${b.scheduler.results.size} results loaded`);
        await checkHistory(c2);
        await checkMerged(c2);
        assert.equal((await c2.getSession(sessionId)).taskCount, TASKS + 4);

        // The session's life cycle reaches the records in the store.
        await c2.cancelSession(sessionId);
        assert.equal((await c2.countTasks({ sessionId })).CANCELLED, 3);
        const { purgedResults } = await c2.purgeSession(sessionId);
        // The input, every inline payload, and the outputs of the tasks that completed.
        assert.equal(purgedResults, 1 + (TASKS + 3) + (TASKS + 1));
        assert.equal((await c2.getResult(outputs[9])).status, "DELETED");
        await assert.rejects(
          c2.downloadResult(outputs[9]),
          (err: ZgridError) => err.code === "FAILED_PRECONDITION" && /DELETED/.test(err.message),
        );
        const removed = (await c2.deleteSession(sessionId)) as {
          removed: { tasks: number; results: number };
        };
        assert.deepEqual(removed.removed, { tasks: TASKS + 4, results: RESULTS });
        await assert.rejects(c2.getTask(tasks[0].taskId), (err: ZgridError) => err.code === "NOT_FOUND");
        await assert.rejects(c2.getResult(outputs[0]), (err: ZgridError) => err.code === "NOT_FOUND");
        assert.equal((await c2.listTasks()).total, 0);
        const zero = await c2.countTasks();
        assert.ok(
          Object.values(zero).every((n) => n === 0),
          JSON.stringify(zero),
        );
      },
    );
  }

  it("memory store: the records stay in memory (there is no disk to read them back from)", async () => {
    const server = new Server(testConfig({ store: "memory" }));
    const c = await started(server);
    const worker = await spawnWorker(server, EXAMPLE_APPS, 1);
    cleanup.push(() => worker.stop());
    const sessionId = await c.createSession({ applicationName: "echo" });
    const tasks = await c.submitTasks(
      sessionId,
      Array.from({ length: 20 }, (_, i) => ({ payload: encodePayload("echo", [value(i)]) })),
    );
    await c.waitResults(
      tasks.map((t) => t.expectedOutputIds[0]),
      { timeoutMs: 30_000 },
    );
    assert.equal((await held(c)).tasks, 20);
    assert.equal((await c.getTask(tasks[0].taskId)).status, "COMPLETED");
    assert.equal((await c.listTasks({ filter: { sessionId } })).total, 20);
  });
});
