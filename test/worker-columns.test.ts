/**
 * Batches as columns (docs/protocol.md): TASKS and DONE between the server and a worker that asks for
 * them in READY (one that does not keeps the maps), and the reply of `results.wait {columns: true}`.
 * Batches of one, of many, of the limit, empty and malformed.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pack, unpack } from "msgpackr";
import { Dealer } from "zeromq";
import { connect, type ZgridClient } from "../src/client/client.js";
import type { Server } from "../src/daemons/server.js";
import {
  donePacked,
  tasksOfColumns,
  unpackOutputs,
  type TasksColumnsMsg,
  type WireTask,
} from "../src/protocol/worker-messages.js";
import { FIXTURE_APPS, spawnWorker, startServer, waitFor } from "./helpers.js";

const EMPTY = Buffer.alloc(0);

/** A worker speaking the protocol by hand: what it is sent, and a way to answer. */
class RawWorker {
  readonly socket = new Dealer({ linger: 0 });
  readonly received: { header: Record<string, unknown>; blobs: Buffer[] }[] = [];
  private readonly reading: Promise<void>;

  constructor(url: string) {
    this.socket.connect(url.split("?")[0]);
    this.reading = (async () => {
      for await (const [, header, ...blobs] of this.socket)
        this.received.push({ header: unpack(header) as Record<string, unknown>, blobs });
    })().catch(() => {});
  }

  send(header: object, blobs: Buffer[] = []): Promise<void> {
    return this.socket.send([EMPTY, pack(header), ...blobs]);
  }

  async next(t: string, what = t): Promise<{ header: Record<string, unknown>; blobs: Buffer[] }> {
    await waitFor(() => this.received.some((m) => m.header.t === t), 15_000, what);
    const i = this.received.findIndex((m) => m.header.t === t);
    return this.received.splice(i, 1)[0];
  }

  async close(): Promise<void> {
    this.socket.close();
    await this.reading;
  }
}

describe("TASKS and DONE as columns", () => {
  let server: Server;
  let client: ZgridClient;

  before(async () => {
    // Raw workers here send no HEARTBEAT: a long interval keeps them alive on a loaded machine, where
    // the steps between their READY and their DONE can take longer than 3 intervals of 200 ms.
    ({ server } = await startServer({ store: "memory", heartbeatMs: 10_000 }));
    client = await connect(server.info!.url, { timeoutMs: 30_000 });
  });
  after(async () => {
    await client.close();
    await server.shutdown();
  });

  async function rawWorker(
    workerId: string,
    columns: boolean,
    prefetch = 0,
    packedPayloads = false,
  ): Promise<RawWorker> {
    const w = new RawWorker(server.info!.workerUrl);
    await w.send({
      t: "READY",
      v: 1,
      token: server.workerToken,
      workerId,
      partitions: [workerId],
      slots: 4,
      prefetch,
      ...(columns ? { columns: true } : {}),
      ...(packedPayloads ? { packedPayloads: true } : {}),
    });
    const welcome = await w.next("WELCOME");
    assert.equal(welcome.header.columns, columns ? true : undefined, "WELCOME answers READY's columns");
    assert.equal(
      welcome.header.packedOutputs,
      columns ? true : undefined,
      "packed outputs come with columns",
    );
    assert.equal(
      welcome.header.packedPayloads,
      columns && packedPayloads ? true : undefined,
      "packed payloads when the worker asked, with columns",
    );
    return w;
  }

  it("a batch of one and a batch with dependencies, options and shared payloads, both ways", async () => {
    const w = await rawWorker("w-cols", true);
    try {
      const sessionId = await client.createSession({ applicationName: "raw", partitionId: "w-cols" });
      const [dep] = await client.createResults(sessionId, [{ name: "dep", data: Buffer.from("d") }]);
      const payload = Buffer.from("p");
      const [one] = await client.submitTasks(sessionId, [{ payload }]);
      const first = await w.next("TASKS", "a TASKS of one task");
      assert.ok(Array.isArray(first.header.taskIds), "TASKS came as columns");
      assert.equal(first.header.payloadSizes, undefined, "a blob a payload: the worker did not ask to pack");
      const [t1] = tasksOfColumns(first.header as unknown as TasksColumnsMsg);
      assert.equal(t1.taskId, one.taskId);
      assert.deepEqual(t1.expectedOutputIds, one.expectedOutputIds);
      assert.deepEqual(t1.dataDependencies, []);
      assert.equal(t1.sessionId, sessionId);
      assert.equal(t1.attempt, 1);
      assert.equal(t1.options.applicationName, "raw");
      assert.deepEqual(first.blobs[t1.payload!], payload);
      await w.send({ t: "DONE", taskIds: [t1.taskId], statuses: ["COMPLETED"], outputs: [0] }, [
        Buffer.from("out-1"),
      ]);
      const r1 = await client.waitResultsData(one.expectedOutputIds, { timeoutMs: 15_000 });
      assert.deepEqual(r1.data.get(one.expectedOutputIds[0]), Buffer.from("out-1"));

      // Three tasks: two share a payload, one has a data dependency and options of its own.
      const many = await client.submitTasks(sessionId, [
        { payload },
        { payload },
        { payload: Buffer.from("q"), dataDependencies: [dep.resultId], taskOptions: { priority: 3 } },
      ]);
      const got: WireTask[] = [];
      const blobs: Buffer[][] = [];
      while (got.length < 3) {
        const m = await w.next("TASKS", "the three tasks");
        for (const t of tasksOfColumns(m.header as unknown as TasksColumnsMsg)) {
          got.push(t);
          blobs.push(m.blobs);
        }
      }
      const byId = new Map(got.map((t, i) => [t.taskId, { t, blobs: blobs[i] }]));
      for (const s of many) {
        const { t, blobs: b } = byId.get(s.taskId)!;
        assert.deepEqual(t.expectedOutputIds, s.expectedOutputIds);
        assert.equal(t.payloadId, s.payloadId);
        assert.ok(t.payload !== undefined, "the payload travels inline");
        assert.equal(b[t.payload].length, 1);
      }
      assert.deepEqual(byId.get(many[2].taskId)!.t.dataDependencies, [dep.resultId]);
      // One completed with an output, one ERROR with its message, one COMPLETED without output.
      await w.send(
        {
          t: "DONE",
          taskIds: many.map((s) => s.taskId),
          statuses: ["COMPLETED", "ERROR", "COMPLETED"],
          outputs: [0, -1, -1],
          errors: [null, "the application said no", null],
        },
        [Buffer.from("out-a")],
      );
      const outs = many.map((s) => s.expectedOutputIds[0]);
      await client.waitResults(outs, { timeoutMs: 15_000 });
      assert.equal((await client.getTask(many[0].taskId)).status, "COMPLETED");
      assert.deepEqual(await client.downloadResult(outs[0]), Buffer.from("out-a"));
      const failed = await client.getTask(many[1].taskId);
      assert.equal(failed.status, "ERROR");
      assert.match(failed.error ?? "", /the application said no/);
      assert.equal((await client.getTask(many[2].taskId)).status, "COMPLETED");
      assert.deepEqual(await client.downloadResult(outs[2]), Buffer.alloc(0));
    } finally {
      await w.close();
    }
  });

  it("a worker that does not ask keeps TASKS as maps", async () => {
    const w = await rawWorker("w-maps", false);
    try {
      const sessionId = await client.createSession({ applicationName: "raw", partitionId: "w-maps" });
      const [one] = await client.submitTasks(sessionId, [{ payload: Buffer.from("p") }]);
      const m = await w.next("TASKS");
      assert.equal(m.header.taskIds, undefined);
      const tasks = m.header.tasks as WireTask[];
      assert.equal(tasks[0].taskId, one.taskId);
      await w.send({ t: "DONE", results: [{ taskId: one.taskId, status: "COMPLETED" }] });
      await client.waitResults(one.expectedOutputIds, { timeoutMs: 15_000 });
      assert.equal((await client.getTask(one.taskId)).status, "COMPLETED");
    } finally {
      await w.close();
    }
  });

  it("an empty DONE and malformed ones change nothing; a bad output index fails only that attempt", async () => {
    const w = await rawWorker("w-bad", true);
    try {
      const sessionId = await client.createSession(
        { applicationName: "raw", partitionId: "w-bad", maxRetries: 0 },
        ["w-bad"],
      );
      const [a, b] = await client.submitTasks(sessionId, [
        { payload: Buffer.from("a") },
        { payload: Buffer.from("b") },
      ]);
      const ids = new Set<string>();
      while (ids.size < 2) {
        const m = await w.next("TASKS");
        for (const t of tasksOfColumns(m.header as unknown as TasksColumnsMsg)) ids.add(t.taskId);
      }
      await w.send({ t: "DONE", taskIds: [], statuses: [], outputs: [] });
      // Columns of different lengths, a column that is not a list, an unknown status: all ignored.
      await w.send({ t: "DONE", taskIds: [a.taskId, b.taskId], statuses: ["COMPLETED"], outputs: [-1, -1] });
      await w.send({ t: "DONE", taskIds: [a.taskId], statuses: "COMPLETED", outputs: [-1] });
      await w.send({ t: "DONE", taskIds: [a.taskId], statuses: ["DONE-ISH"], outputs: [-1] });
      await w.send({ t: "DONE", taskIds: [a.taskId], statuses: ["COMPLETED"], outputs: [-1], errors: "x" });
      await w.send({ t: "HEARTBEAT" });
      // The server read all of them (they come before this ping on the same connection)...
      const ping = await client.getTask(a.taskId);
      await waitFor(async () => (await client.listWorkers()).total >= 1, 5_000, "the worker still listed");
      assert.ok(["DISPATCHED", "PROCESSING"].includes(ping.status), `task a is ${ping.status}`);
      assert.ok(["DISPATCHED", "PROCESSING"].includes((await client.getTask(b.taskId)).status));
      // ...and an output index outside the message fails that attempt, not the server.
      await w.send(
        { t: "DONE", taskIds: [a.taskId, b.taskId], statuses: ["COMPLETED", "COMPLETED"], outputs: [5, 0] },
        [Buffer.from("out-b")],
      );
      await client.waitResults([...a.expectedOutputIds, ...b.expectedOutputIds], { timeoutMs: 15_000 });
      const ta = await client.getTask(a.taskId);
      assert.equal(ta.status, "ERROR");
      assert.match(ta.error ?? "", /output frame 5/);
      assert.equal((await client.getTask(b.taskId)).status, "COMPLETED");
      assert.deepEqual(await client.downloadResult(b.expectedOutputIds[0]), Buffer.from("out-b"));
    } finally {
      await w.close();
    }
  });

  /** Runs `count` tasks on a raw worker of partition `partition`; returns them as submitted and as sent. */
  async function dispatched(w: RawWorker, partition: string, count: number) {
    const sessionId = await client.createSession(
      { applicationName: "raw", partitionId: partition, maxRetries: 0 },
      [partition],
    );
    const submitted = await client.submitTasks(
      sessionId,
      Array.from({ length: count }, () => ({ payload: Buffer.from("p") })),
    );
    const ids = new Set<string>();
    while (ids.size < count) {
      const m = await w.next("TASKS");
      for (const t of tasksOfColumns(m.header as unknown as TasksColumnsMsg)) ids.add(t.taskId);
    }
    return submitted;
  }

  it("DONE with packed outputs: a batch of one, none, empty, shared and cut blobs, an error", async () => {
    const w = await rawWorker("w-packed", true);
    try {
      const [one] = await dispatched(w, "w-packed", 1);
      // Begun and ended in one message: `started` is read first, as a STARTED just before.
      await w.send(
        { t: "DONE", taskIds: [one.taskId], statuses: ["COMPLETED"], sizes: [5], started: [one.taskId] },
        [Buffer.from("out-1")],
      );
      const r1 = await client.waitResultsData(one.expectedOutputIds, { timeoutMs: 15_000 });
      assert.deepEqual(r1.data.get(one.expectedOutputIds[0]), Buffer.from("out-1"));
      const ran = await client.getTask(one.taskId);
      assert.equal(typeof ran.attempts[0].startedAt, "number", "the attempt says when it started");

      const four = await dispatched(w, "w-packed", 4);
      // "abc" and "defgh" share the first blob, "defgh" ends in the second; none; empty; an ERROR.
      await w.send(
        {
          t: "DONE",
          taskIds: four.map((t) => t.taskId),
          statuses: ["COMPLETED", "COMPLETED", "COMPLETED", "ERROR"],
          sizes: [3, -1, 0, 5],
          errors: [null, null, null, "the application said no"],
        },
        [Buffer.from("abcde"), Buffer.from("fgh")],
      );
      const outs = four.map((t) => t.expectedOutputIds[0]);
      await client.waitResults(outs, { timeoutMs: 15_000 });
      assert.deepEqual(await client.downloadResult(outs[0]), Buffer.from("abc"));
      assert.deepEqual(await client.downloadResult(outs[1]), Buffer.alloc(0), "no output: an empty one");
      assert.deepEqual(await client.downloadResult(outs[2]), Buffer.alloc(0));
      const failed = await client.getTask(four[3].taskId);
      assert.equal(failed.status, "ERROR");
      assert.match(failed.error ?? "", /the application said no/);
    } finally {
      await w.close();
    }
  });

  it("DONE with packed outputs at the worker host's limit of 4096 tasks a message", async () => {
    const w = await rawWorker("w-packed-limit", true);
    try {
      // A worker new to the server holds its slots' worth: the other entries name no task of its, and
      // are skipped; the outputs of all 4096 travel packed, and the real ones are read from among them.
      const tasks = await dispatched(w, "w-packed-limit", 4);
      const ids = Array.from({ length: 4096 }, (_, i) =>
        i >= 4092 ? tasks[i - 4092].taskId : `t-none-${i}`,
      );
      const { msg, blobs } = donePacked(
        ids.map((taskId, i) => ({ taskId, status: "COMPLETED" as const, output: i })),
        ids.map((_, i) => Buffer.from(`out-${i}`)),
      );
      assert.equal(blobs.length, 1, "small outputs share one blob");
      await w.send(msg, blobs);
      const r = await client.waitResultsData(
        tasks.map((t) => t.expectedOutputIds[0]),
        { timeoutMs: 30_000 },
      );
      assert.equal(r.data.size, 4);
      for (let k = 0; k < 4; k++)
        assert.deepEqual(r.data.get(tasks[k].expectedOutputIds[0]), Buffer.from(`out-${4092 + k}`));
    } finally {
      await w.close();
    }
  });

  it("an empty packed DONE and malformed ones change nothing", async () => {
    const w = await rawWorker("w-packed-bad", true);
    try {
      const [a] = await dispatched(w, "w-packed-bad", 1);
      const out = [Buffer.from("xyz")];
      await w.send({ t: "DONE", taskIds: [], statuses: [], sizes: [] });
      // Sizes that do not add up to the blobs (short, long), that are not whole numbers of at least -1,
      // columns of other lengths, outputs beside sizes, sizes that are not a list: each ignored whole.
      await w.send({ t: "DONE", taskIds: [a.taskId], statuses: ["COMPLETED"], sizes: [2] }, out);
      await w.send({ t: "DONE", taskIds: [a.taskId], statuses: ["COMPLETED"], sizes: [4] }, out);
      await w.send({ t: "DONE", taskIds: [a.taskId], statuses: ["COMPLETED"], sizes: [-2] });
      await w.send({ t: "DONE", taskIds: [a.taskId], statuses: ["COMPLETED"], sizes: [1.5] }, out);
      await w.send({ t: "DONE", taskIds: [a.taskId], statuses: ["COMPLETED"], sizes: [3, 0] }, out);
      await w.send({ t: "DONE", taskIds: [a.taskId], statuses: [], sizes: [3] }, out);
      await w.send(
        { t: "DONE", taskIds: [a.taskId], statuses: ["COMPLETED"], sizes: [3], outputs: [0] },
        out,
      );
      await w.send({ t: "DONE", taskIds: [a.taskId], statuses: ["COMPLETED"], sizes: "3" }, out);
      await w.send({ t: "DONE", taskIds: [a.taskId], statuses: ["COMPLETED"], sizes: [3], errors: "x" }, out);
      await w.send(
        { t: "DONE", taskIds: [a.taskId], statuses: ["COMPLETED"], sizes: [3], started: "x" },
        out,
      );
      await w.send(
        { t: "DONE", taskIds: [a.taskId], statuses: ["COMPLETED"], sizes: [3], started: [1] },
        out,
      );
      await w.send({ t: "HEARTBEAT" });
      // The server read all of them (they come before this request's effects on the same loop)...
      await waitFor(async () => (await client.listWorkers()).total >= 1, 5_000, "the worker still listed");
      const ping = await client.getTask(a.taskId);
      assert.equal(ping.status, "DISPATCHED", "not even its start was taken");
      // ...and a good one still completes it.
      await w.send({ t: "DONE", taskIds: [a.taskId], statuses: ["COMPLETED"], sizes: [3] }, out);
      await client.waitResults(a.expectedOutputIds, { timeoutMs: 15_000 });
      assert.deepEqual(await client.downloadResult(a.expectedOutputIds[0]), Buffer.from("xyz"));
    } finally {
      await w.close();
    }
  });

  it("donePacked and unpackOutputs: shared blobs, a large output on its own, cut at maxFrameBytes", () => {
    const large = Buffer.alloc(100 * 1024, 7);
    const outputs = [Buffer.from("a"), large, Buffer.from("bc"), Buffer.alloc(0)];
    const results = [
      { taskId: "t0", status: "COMPLETED" as const, output: 0 },
      { taskId: "t1", status: "COMPLETED" as const, output: 1 },
      { taskId: "t2", status: "FAILED" as const, error: "boom" },
      { taskId: "t3", status: "COMPLETED" as const, output: 2 },
      { taskId: "t4", status: "COMPLETED" as const, output: 3 },
    ];
    const { msg, blobs } = donePacked(results, outputs);
    assert.deepEqual(msg.sizes, [1, large.length, -1, 2, 0]);
    assert.deepEqual(msg.errors, [null, null, "boom", null, null]);
    assert.equal(blobs[1], large, "a large output is its own blob, not copied");
    const back = unpackOutputs(msg.sizes, blobs);
    assert.ok(Array.isArray(back));
    assert.deepEqual(back, [Buffer.from("a"), large, undefined, Buffer.from("bc"), Buffer.alloc(0)]);
    // Small outputs cut into blobs of at most maxFrameBytes, read back across the cuts.
    const many = Array.from({ length: 100 }, (_, i) => Buffer.from(`output-${i}`));
    const cut = donePacked(
      many.map((_, i) => ({ taskId: `t${i}`, status: "COMPLETED" as const, output: i })),
      many,
      64,
    );
    assert.ok(cut.blobs.length > 1 && cut.blobs.every((b) => b.length <= 64));
    const split = Buffer.concat(cut.blobs);
    // Any cut reads the same: here every 7 bytes.
    const sevens = Array.from({ length: Math.ceil(split.length / 7) }, (_, i) =>
      split.subarray(i * 7, i * 7 + 7),
    );
    assert.deepEqual(unpackOutputs(cut.msg.sizes, sevens), many);
    assert.match(unpackOutputs([3], [Buffer.from("ab")]) as string, /add up to 3 bytes but the blobs hold 2/);
    assert.match(unpackOutputs([-2], []) as string, /whole number/);
  });

  it("results.wait {columns}: statuses in order, data back to back cut at maxFrameBytes, sizes -1 for none", async () => {
    const small = await startServer({ store: "memory", maxFrameBytes: 64 * 1024 });
    const c = await connect(small.server.info!.url, { timeoutMs: 30_000 });
    try {
      const sessionId = await c.createSession({ applicationName: "raw" });
      const big = Buffer.alloc(100 * 1024, 3); // two chunks of 64 KiB uploaded, three blobs of reply
      const [a, none, empty] = await c.createResults(sessionId, [
        { name: "a", data: Buffer.from("alpha") },
        { name: "none" },
        { name: "empty", data: Buffer.alloc(0) },
      ]);
      const [b] = await c.createResults(sessionId, [{ name: "b" }]);
      await c.call("results.upload", { resultId: b.resultId, offset: 0, size: big.length }, [
        big.subarray(0, 65536),
      ]);
      await c.call("results.upload", { resultId: b.resultId, offset: 65536, size: big.length }, [
        big.subarray(65536),
      ]);
      const ids = [a.resultId, none.resultId, b.resultId, empty.resultId];
      const reply = await c.request<{ timedOut: boolean; statuses: string[]; sizes: number[] }>(
        "results.wait",
        {
          resultIds: ids,
          behavior: "any",
          withData: true,
          columns: true,
        },
      );
      assert.equal(reply.msg.timedOut, false);
      assert.deepEqual(reply.msg.statuses, ["COMPLETED", "CREATED", "COMPLETED", "COMPLETED"]);
      assert.deepEqual(reply.msg.sizes, [5, -1, big.length, 0]);
      assert.ok(
        reply.blobs.every((blob) => blob.length <= 64 * 1024),
        "no blob over maxFrameBytes",
      );
      assert.deepEqual(Buffer.concat(reply.blobs), Buffer.concat([Buffer.from("alpha"), big]));
      // Without data: statuses only, no blob.
      const plain = await c.request<Record<string, unknown>>("results.wait", {
        resultIds: [a.resultId],
        columns: true,
      });
      assert.deepEqual(plain.msg, { timedOut: false, statuses: ["COMPLETED"] });
      assert.equal(plain.blobs.length, 0);
      // The client library asks for columns and gives back the same as before.
      const got = await c.waitResultsData([a.resultId, b.resultId, empty.resultId], { timeoutMs: 10_000 });
      assert.deepEqual(got.statuses, {
        [a.resultId]: "COMPLETED",
        [b.resultId]: "COMPLETED",
        [empty.resultId]: "COMPLETED",
      });
      assert.ok(Object.keys(got).includes("statuses"), "statuses is an own enumerable property");
      assert.deepEqual({ ...got }.statuses, got.statuses);
      assert.deepEqual(got.data.get(b.resultId), big);
      assert.deepEqual(got.data.get(a.resultId), Buffer.from("alpha"));
      assert.equal(got.data.get(empty.resultId)?.length, 0);
      await assert.rejects(c.call("results.wait", { resultIds: [a.resultId], columns: "yes" }), /columns/);
    } finally {
      await c.close();
      await small.server.shutdown();
    }
  });

  it("TASKS with packed payloads: shared, empty and large payloads back to back in few blobs", async () => {
    const w = await rawWorker("w-packed-tasks", true, 16, true);
    try {
      const sessionId = await client.createSession({ applicationName: "raw", partitionId: "w-packed-tasks" });
      const shared = Buffer.from("shared");
      const large = Buffer.alloc(100 * 1024, 7);
      const payloads = [shared, Buffer.from("a"), shared, Buffer.alloc(0), large, Buffer.from("b")];
      // The worker's first batch is one task (its task time is not known yet): the rest come after it ends.
      const submitted = await client.submitTasks(
        sessionId,
        payloads.map((payload) => ({ payload })),
      );
      const got = new Map<string, Buffer | undefined>();
      const messages: { header: Record<string, unknown>; blobs: Buffer[] }[] = [];
      for (let round = 0; round < 10 && got.size < payloads.length; round++) {
        const m = await w.next("TASKS", "the packed tasks");
        messages.push(m);
        const msg = m.header as unknown as TasksColumnsMsg;
        assert.ok(Array.isArray(msg.payloadSizes), "payloadSizes come with every TASKS");
        const cut = unpackOutputs(msg.payloadSizes!, m.blobs);
        assert.ok(Array.isArray(cut), `the sizes describe the blobs: ${String(cut)}`);
        const tasks = tasksOfColumns(msg);
        for (const t of tasks) got.set(t.taskId, t.payload === undefined ? undefined : cut[t.payload]);
        await w.send({
          t: "DONE",
          taskIds: tasks.map((t) => t.taskId),
          statuses: tasks.map(() => "COMPLETED"),
          outputs: tasks.map(() => -1),
        });
      }
      submitted.forEach((s, i) => assert.deepEqual(got.get(s.taskId), payloads[i], `payload of task ${i}`));
      for (const m of messages) {
        const tasks = tasksOfColumns(m.header as unknown as TasksColumnsMsg);
        const distinct = new Set(tasks.map((t) => t.payloadId)).size;
        assert.equal(
          (m.header.payloadSizes as number[]).length,
          distinct,
          "a payload tasks of a batch share is sent once in it",
        );
      }
      const blobs = messages.reduce((n, m) => n + m.blobs.length, 0);
      const sizes = messages.reduce((n, m) => n + (m.header.payloadSizes as number[]).length, 0);
      assert.ok(blobs < sizes, `fewer blobs (${blobs}) than payloads (${sizes})`);
      assert.ok(
        messages.some((m) => m.blobs.some((b) => b.length === large.length && b.equals(large))),
        "a large payload is a blob of its own",
      );
    } finally {
      await w.close();
    }
  });

  it("tasksOfColumns refuses columns that do not describe every task", () => {
    const good: TasksColumnsMsg = {
      t: "TASKS",
      taskIds: ["t1", "t2"],
      payloadIds: ["p", "p"],
      payloads: [0, 0],
      attempts: [1, 1],
      sessions: ["s"],
      session: [0, 0],
      optionSets: [{ applicationName: "a" }],
      option: [0, 0],
      outputs: ["o1", "o2"],
      outputCounts: [1, 1],
    };
    assert.equal(tasksOfColumns(good).length, 2);
    assert.deepEqual(
      tasksOfColumns({
        ...good,
        taskIds: [],
        payloadIds: [],
        payloads: [],
        attempts: [],
        session: [],
        option: [],
        outputs: [],
        outputCounts: [],
      }),
      [],
    );
    assert.throws(() => tasksOfColumns({ ...good, attempts: [1] }), /attempts/);
    assert.throws(() => tasksOfColumns({ ...good, session: [0, 3] }), /task 1/);
    assert.throws(() => tasksOfColumns({ ...good, outputCounts: [1, 2] }), /task 1/);
    assert.throws(() => tasksOfColumns({ ...good, dependencies: ["d"], dependencyCounts: [0, 2] }), /task 1/);
    assert.throws(
      () => tasksOfColumns({ ...good, optionSets: "x" } as unknown as TasksColumnsMsg),
      /optionSets/,
    );
    assert.throws(
      () => tasksOfColumns({ ...good, payloadSizes: 3 } as unknown as TasksColumnsMsg),
      /payloadSizes/,
    );
    assert.equal(tasksOfColumns({ ...good, payloadSizes: [1] }).length, 2);
  });

  it("a zgrid worker host speaks columns: a batch at the submission limit runs end to end", async () => {
    const worker = await spawnWorker(server, FIXTURE_APPS, 2);
    try {
      const sessionId = await client.createSession({ applicationName: "testapp" });
      const { encodePayload } = await import("../src/client/payload.js");
      const limit = server.config.maxBatch;
      const tasks = await client.submitTasks(
        sessionId,
        Array.from({ length: limit }, () => ({ payload: encodePayload("echo", [1]) })),
      );
      const r = await client.waitResultsData(
        tasks.map((t) => t.expectedOutputIds[0]),
        { timeoutMs: 120_000 },
      );
      assert.equal(r.data.size, limit);
      const host = [...server.scheduler.workers.values()].find((w) => w.partitions.includes("default"));
      assert.equal(host?.columns, true, "the worker host asked for columns");
    } finally {
      await worker.stop();
    }
  });
});
