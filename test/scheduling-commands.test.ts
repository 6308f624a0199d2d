import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import { encodePayload } from "../src/client/payload.js";
import type { ListQuery } from "../src/client/types.js";
import type { Server } from "../src/daemons/server.js";
import { ZgridError } from "../src/protocol/errors.js";
import { startServer, waitFor } from "./helpers.js";

/** Rejects with a ZgridError of `code`. */
async function rejectsWith(p: Promise<unknown>, code: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ZgridError, `expected a ZgridError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

describe("session, result and task commands without workers", () => {
  let server: Server;
  let client: ZgridClient;

  before(async () => {
    ({ server } = await startServer());
    client = await connect(server.info!.url);
  });
  after(async () => {
    await client.close();
    await server.shutdown();
  });

  it("creates a session with merged default options and lists it", async () => {
    const id = await client.createSession({ priority: 5, applicationName: "hello" }, ["p1", "p2"]);
    const s = await client.getSession(id);
    assert.equal(s.status, "RUNNING");
    assert.equal(s.defaultTaskOptions.priority, 5);
    assert.equal(s.defaultTaskOptions.maxRetries, 2);
    assert.equal(s.defaultTaskOptions.partitionId, "p1");
    const list = await client.listSessions({ pageSize: 1000 });
    assert.ok(list.items.some((x) => x.sessionId === id));
    assert.equal(list.total, list.items.length);
  });

  it("creates results with and without data, uploads, downloads, and waits", async () => {
    const sessionId = await client.createSession();
    const [a, b] = await client.createResults(sessionId, [
      { name: "a", data: Buffer.from("hello") },
      { name: "b" },
    ]);
    assert.equal(a.status, "COMPLETED");
    assert.equal(b.status, "CREATED");
    assert.deepEqual(await client.downloadResult(a.resultId), Buffer.from("hello"));
    await rejectsWith(client.downloadResult(b.resultId), "FAILED_PRECONDITION", /CREATED/);
    const waiting = client.waitResults([b.resultId], { timeoutMs: 5000 });
    await client.uploadResult(b.resultId, Buffer.from("world"));
    const waited = await waiting;
    assert.equal(waited.timedOut, false);
    assert.equal(waited.statuses[b.resultId], "COMPLETED");
    await rejectsWith(client.uploadResult(b.resultId, Buffer.from("again")), "FAILED_PRECONDITION");
    const timed = await client.waitResults(
      [(await client.createResults(sessionId, [{ name: "c" }]))[0].resultId],
      { timeoutMs: 100 },
    );
    assert.equal(timed.timedOut, true);
  });

  it("queues tasks while no worker serves their partition", async () => {
    const sessionId = await client.createSession({ applicationName: "hello", partitionId: "nobody" });
    const submitted = await client.submitTasks(
      sessionId,
      Array.from({ length: 3000 }, () => ({ payload: encodePayload("noop") })),
    );
    assert.equal(submitted.length, 3000);
    const counts = await client.countTasks({ sessionId });
    assert.equal(counts.SUBMITTED, 3000);
    await rejectsWith(client.call("getstatus"), "UNKNOWN_COMMAND", /getstatus/);
    assert.equal(server.scheduler.views.summary().queued.nobody, 3000);
    const t = await client.getTask(submitted[0].taskId);
    assert.equal(t.status, "SUBMITTED");
    assert.equal(t.options.partitionId, "nobody");
    assert.deepEqual(t.attempts, []);
  });

  it("keeps a task PENDING until its payload is uploaded", async () => {
    const sessionId = await client.createSession({ partitionId: "nobody" });
    const [payload, out] = await client.createResults(sessionId, [{ name: "payload" }, { name: "out" }]);
    const [t] = await client.submitTasks(sessionId, [
      { payloadId: payload.resultId, expectedOutputIds: [out.resultId] },
    ]);
    assert.equal((await client.getTask(t.taskId)).status, "PENDING");
    await client.uploadResult(payload.resultId, encodePayload("noop"));
    assert.equal((await client.getTask(t.taskId)).status, "SUBMITTED");
    await rejectsWith(
      client.uploadResult(out.resultId, Buffer.from("x")),
      "FAILED_PRECONDITION",
      /expected output/,
    );
  });

  it("tasks.submit {columns}: one, several with 0 and 2 outputs, empty, a bad flag, a key resent as maps", async () => {
    const sessionId = await client.createSession({ partitionId: "nobody" });
    type Columns = { taskIds: string[]; payloadIds: string[]; outputCounts: number[]; outputs: string[] };
    const one = await client.call<Columns>(
      "tasks.submit",
      { sessionId, tasks: [{ payload: 0 }], columns: true },
      [encodePayload("noop")],
    );
    assert.equal(one.taskIds.length, 1);
    assert.deepEqual(one.outputCounts, [1]);
    const t = await client.getTask(one.taskIds[0]);
    assert.equal(t.payloadId, one.payloadIds[0]);
    assert.deepEqual(t.expectedOutputIds, one.outputs);

    const several = await client.call<Columns>(
      "tasks.submit",
      {
        sessionId,
        tasks: [{ payload: 0, outputCount: 2 }, { payload: 0, expectedOutputIds: [] }, { payload: 0 }],
        columns: true,
        requestKey: "cols-1",
      },
      [encodePayload("noop")],
    );
    assert.deepEqual(several.outputCounts, [2, 0, 1]);
    assert.equal(several.outputs.length, 3);
    for (let i = 0, at = 0; i < 3; i++) {
      const info = await client.getTask(several.taskIds[i]);
      assert.deepEqual(info.expectedOutputIds, several.outputs.slice(at, at + several.outputCounts[i]));
      at += several.outputCounts[i];
    }
    // The same key asked as maps: the first answer, in that form, and nothing new.
    const before = (await client.countTasks({ sessionId })).SUBMITTED;
    const again = await client.call<{ taskId: string; expectedOutputIds: string[] }[]>(
      "tasks.submit",
      {
        sessionId,
        tasks: [{ payload: 0, outputCount: 2 }, { payload: 0, expectedOutputIds: [] }, { payload: 0 }],
        requestKey: "cols-1",
      },
      [encodePayload("noop")],
    );
    assert.deepEqual(
      again.map((a) => a.taskId),
      several.taskIds,
    );
    assert.deepEqual(again[0].expectedOutputIds, several.outputs.slice(0, 2));
    assert.equal((await client.countTasks({ sessionId })).SUBMITTED, before);

    assert.deepEqual(await client.call("tasks.submit", { sessionId, tasks: [], columns: true }), {
      taskIds: [],
      payloadIds: [],
      outputCounts: [],
      outputs: [],
    });
    await rejectsWith(
      client.call("tasks.submit", { sessionId, tasks: [{ payload: 0 }], columns: "yes" }, [
        encodePayload("noop"),
      ]),
      "INVALID_ARGUMENT",
      /columns/,
    );
    assert.equal((await client.countTasks({ sessionId })).SUBMITTED, before, "nothing submitted");
    // The client asks for columns and gives back the same as before.
    const [viaClient] = await client.submitTasks(sessionId, [
      { payload: encodePayload("noop"), outputCount: 2 },
    ]);
    assert.equal((await client.getTask(viaClient.taskId)).expectedOutputIds.length, 2);
    assert.deepEqual((await client.getTask(viaClient.taskId)).expectedOutputIds, viaClient.expectedOutputIds);
  });

  it("rejects bad arguments to every command and changes nothing", async () => {
    const sessionId = await client.createSession({ partitionId: "nobody" });
    const other = await client.createSession();
    const [foreign] = await client.createResults(other, [{ name: "foreign" }]);
    const [payload] = await client.createResults(sessionId, [{ name: "p", data: encodePayload("noop") }]);
    const before = server.scheduler.views.summary();

    await rejectsWith(
      client.call("sessions.create", { defaultTaskOptions: { maxRetry: 3 } }),
      "INVALID_ARGUMENT",
      /maxRetry/,
    );
    await rejectsWith(
      client.call("sessions.create", { defaultTaskOptions: { priority: "high" } }),
      "INVALID_ARGUMENT",
      /priority/,
    );
    await rejectsWith(
      client.call("sessions.create", { partitionIds: "p" }),
      "INVALID_ARGUMENT",
      /partitionIds/,
    );
    await rejectsWith(client.call("sessions.get", {}), "INVALID_ARGUMENT", /sessionId/);
    await rejectsWith(client.call("sessions.get", { sessionId: "nope" }), "NOT_FOUND", /nope/);
    await rejectsWith(client.call("sessions.list", { pageSize: -1 }), "INVALID_ARGUMENT", /pageSize/);
    await rejectsWith(
      client.call("sessions.list", { filter: { colour: "red" } }),
      "INVALID_ARGUMENT",
      /colour/,
    );

    await rejectsWith(
      client.call("results.create", { sessionId: "nope", results: [{ name: "x" }] }),
      "NOT_FOUND",
    );
    await rejectsWith(
      client.call("results.create", { sessionId, results: "x" }),
      "INVALID_ARGUMENT",
      /results/,
    );
    await rejectsWith(
      client.call("results.create", { sessionId, results: [{ name: 3 }] }),
      "INVALID_ARGUMENT",
      /name/,
    );
    await rejectsWith(
      client.call("results.create", { sessionId, results: [{ name: "x", data: 0 }] }),
      "INVALID_ARGUMENT",
      /blob/,
    );
    await rejectsWith(
      client.call("results.upload", { resultId: payload.resultId }),
      "INVALID_ARGUMENT",
      /blob/,
    );
    await rejectsWith(client.call("results.upload", { resultId: "nope" }, [Buffer.from("x")]), "NOT_FOUND");
    await rejectsWith(
      client.call("results.upload", { resultId: foreign.resultId, sessionId }, [Buffer.from("x")]),
      "INVALID_ARGUMENT",
      /belongs to session/,
    );
    await rejectsWith(client.call("results.download", { resultId: "nope" }), "NOT_FOUND");
    await rejectsWith(client.call("results.get", { resultId: 7 }), "INVALID_ARGUMENT");
    await rejectsWith(client.call("results.wait", { resultIds: ["nope"] }), "NOT_FOUND");
    await rejectsWith(
      client.call("results.wait", { resultIds: [payload.resultId], behavior: "some" }),
      "INVALID_ARGUMENT",
      /behavior/,
    );
    await rejectsWith(
      client.call("results.list", { sort: { field: "colour" } }),
      "INVALID_ARGUMENT",
      /colour/,
    );

    await rejectsWith(client.call("tasks.submit", { sessionId: "nope", tasks: [] }), "NOT_FOUND");
    await rejectsWith(client.call("tasks.submit", { sessionId, tasks: {} }), "INVALID_ARGUMENT", /tasks/);
    await rejectsWith(
      client.call("tasks.submit", { sessionId, tasks: [{}] }),
      "INVALID_ARGUMENT",
      /payloadId/,
    );
    await rejectsWith(
      client.call("tasks.submit", { sessionId, tasks: [{ payloadId: "nope" }] }),
      "NOT_FOUND",
      /nope/,
    );
    await rejectsWith(
      client.call("tasks.submit", { sessionId, tasks: [{ payloadId: foreign.resultId }] }),
      "INVALID_ARGUMENT",
      /belongs to session/,
    );
    await rejectsWith(
      client.call("tasks.submit", {
        sessionId,
        tasks: [{ payloadId: payload.resultId, expectedOutputIds: [foreign.resultId] }],
      }),
      "INVALID_ARGUMENT",
      /belongs to session/,
    );
    await rejectsWith(
      client.call("tasks.submit", {
        sessionId,
        tasks: [{ payloadId: payload.resultId, dataDependencies: [42] }],
      }),
      "INVALID_ARGUMENT",
    );
    await rejectsWith(
      client.call("tasks.submit", {
        sessionId,
        tasks: [{ payloadId: payload.resultId, taskOptions: { maxDuration: -1 } }],
      }),
      "INVALID_ARGUMENT",
      /maxDuration/,
    );
    // One bad task in a batch: the good ones before it are not created either.
    await rejectsWith(
      client.call("tasks.submit", {
        sessionId,
        tasks: [{ payloadId: payload.resultId }, { payloadId: payload.resultId }, { payloadId: "nope" }],
      }),
      "NOT_FOUND",
    );
    await rejectsWith(client.call("tasks.get", { taskId: "nope" }), "NOT_FOUND");
    await rejectsWith(client.call("tasks.list", { filter: { status: "DONE" } }), "INVALID_ARGUMENT", /DONE/);
    await rejectsWith(client.call("tasks.count", { filter: { colour: 1 } }), "INVALID_ARGUMENT", /colour/);
    // A session restricted to partitions refuses a task for another one.
    const restricted = await client.createSession({}, ["a"]);
    const [rp] = await client.createResults(restricted, [{ name: "p", data: encodePayload("noop") }]);
    await rejectsWith(
      client.call("tasks.submit", {
        sessionId: restricted,
        tasks: [{ payloadId: rp.resultId, taskOptions: { partitionId: "b" } }],
      }),
      "INVALID_ARGUMENT",
      /partition "b"/,
    );

    const afterSummary = server.scheduler.views.summary();
    assert.equal(afterSummary.tasks, before.tasks, "no task was created by a rejected request");
    assert.equal(
      afterSummary.results,
      before.results + 1,
      "only the restricted session's payload result was added",
    );
    assert.equal(await client.ruok(), "imok");
  });

  it("lists tasks with filters, sort and paging that agree with a count by hand", async () => {
    const sessionId = await client.createSession({ partitionId: "nobody" });
    const low = await client.submitTasks(
      sessionId,
      Array.from({ length: 7 }, () => ({ payload: encodePayload("noop") })),
      { priority: 1, applicationName: "low-app" },
    );
    // The second batch is created on a later millisecond, so that createdAt orders the batches.
    const lowCreated = (await client.getTask(low[0].taskId)).createdAt;
    await waitFor(() => Date.now() > lowCreated, 5000, "the clock to pass the first batch");
    const high = await client.submitTasks(
      sessionId,
      Array.from({ length: 5 }, () => ({ payload: encodePayload("noop") })),
      { priority: 9, applicationName: "high-app" },
    );
    const highCreated = (await client.getTask(high[0].taskId)).createdAt;
    assert.ok(highCreated > lowCreated, `created at ${lowCreated}, then ${highCreated}`);
    const lowIds = low.map((t) => t.taskId);
    const highIds = high.map((t) => t.taskId);

    /** Every page of a listing, in order, each checked for its total and its size. */
    const pages = async (
      query: Pick<ListQuery, "sort">,
      total: number,
      pageSize = 5,
    ): Promise<string[][]> => {
      const out: string[][] = [];
      for (let page = 0; page * pageSize <= total; page++) {
        const r = await client.listTasks({ filter: { sessionId }, ...query, pageSize, page });
        assert.equal(r.total, total, `total of page ${page}`);
        assert.equal(r.items.length, Math.min(pageSize, total - page * pageSize), `size of page ${page}`);
        out.push(r.items.map((t) => t.taskId));
      }
      return out;
    };
    // Ties (one batch shares a createdAt) keep the order of creation: the sort is stable.
    assert.deepEqual(await pages({ sort: { field: "createdAt", direction: "asc" } }, 12), [
      lowIds.slice(0, 5),
      [...lowIds.slice(5), ...highIds.slice(0, 3)],
      highIds.slice(3),
    ]);
    assert.deepEqual(await pages({ sort: { field: "createdAt", direction: "desc" } }, 12), [
      highIds,
      lowIds.slice(0, 5),
      lowIds.slice(5),
    ]);
    const byId = [...lowIds, ...highIds].sort();
    assert.deepEqual((await pages({ sort: { field: "taskId" } }, 12, 4)).flat(), byId);
    assert.deepEqual(
      (await pages({ sort: { field: "taskId", direction: "desc" } }, 12, 4)).flat(),
      [...byId].reverse(),
    );
    // A page past the end is empty; the total is still there.
    const past = await client.listTasks({ filter: { sessionId }, pageSize: 5, page: 3 });
    assert.deepEqual({ total: past.total, items: past.items }, { total: 12, items: [] });

    // Filters, each against the count by hand.
    const filtered = async (filter: Record<string, unknown>): Promise<string[]> => {
      const r = await client.listTasks({
        filter: { sessionId, ...filter },
        sort: { field: "createdAt" },
        pageSize: 100,
      });
      assert.equal(r.total, r.items.length);
      return r.items.map((t) => t.taskId);
    };
    assert.deepEqual(await filtered({ applicationName: "high-app" }), highIds);
    assert.deepEqual(await filtered({ applicationName: ["low-app", "other"] }), lowIds);
    assert.deepEqual(await filtered({ createdAfter: highCreated }), highIds);
    assert.deepEqual(await filtered({ createdBefore: highCreated }), lowIds);
    assert.deepEqual(await filtered({ status: "SUBMITTED" }), [...lowIds, ...highIds]);
    assert.deepEqual(await filtered({ status: "COMPLETED" }), []);
    assert.deepEqual(await filtered({ partitionId: "elsewhere" }), []);
    const counts = await client.countTasks({ sessionId });
    assert.equal(counts.SUBMITTED, 12);
    assert.equal((await client.countTasks({ sessionId, applicationName: "high-app" })).SUBMITTED, 5);
  });
});
