/**
 * Agent calls of running tasks (createResults, uploadData, submitTasks, getData, submitCall): a
 * WorkerHost with real executor threads and the fixture app test/fixtures/apps/agentcalls.js, over real
 * ZeroMQ sockets, against `StandInServer` (test/stand-in-server.ts): a ROUTER that plays the server's
 * worker endpoint (the real one lives in src/daemons) and answers AGENT messages as each test says.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { unpack } from "msgpackr";
import { decode } from "../src/protocol/codec.js";
import type { DoneMsg, WireTask } from "../src/protocol/worker-messages.js";
import { createAgent } from "../src/worker/agent.js";
import { WorkerHost, ZgridError, type WorkerHostOptions } from "../src/worker/index.js";
import { FIXTURES, payload, quiet, StandInServer, task as wireTask, type Agent } from "./stand-in-server.js";

let taskCounter = 0;

/** A task of the agentcalls fixture, its payload inline (blob 0). */
function task(fields: Partial<WireTask> = {}): WireTask {
  return wireTask(`t${++taskCounter}`, {
    payload: 0,
    options: { applicationName: "agentcalls", applicationService: "svc" },
    ...fields,
  });
}

/** Sends one task running `method(...args)`; returns its id. */
function run(server: StandInServer, peer: Buffer, method: string, args: unknown[] = []): string {
  const t = task();
  server.send(peer, { t: "TASKS", tasks: [t] }, [payload(method, args)]);
  return t.taskId;
}

/** A host on the fixture apps, welcomed by `server`, with the server heartbeating it. */
async function startHost(
  server: StandInServer,
  options: Partial<WorkerHostOptions> = {},
): Promise<{ host: WorkerHost; peer: Buffer }> {
  const host = new WorkerHost({
    url: `${server.endpoint}?token=t`,
    appPath: FIXTURES,
    slots: 1,
    heartbeatMs: 100,
    log: quiet,
    ...options,
  });
  const started = host.start();
  const ready = await server.next("READY");
  server.send(ready.peer, { t: "WELCOME", workerId: ready.msg.workerId, heartbeatMs: 100 });
  server.beat(ready.peer, 100);
  await started;
  return { host, peer: ready.peer };
}

describe("agent calls through a WorkerHost", () => {
  const server = new StandInServer();
  let host: WorkerHost;
  let peer: Buffer;

  before(async () => {
    await server.start();
    ({ host, peer } = await startHost(server));
  });

  after(async () => {
    await host.stop();
    server.close();
  });

  test("createResults: names and data as blobs; the reply resolves the call", async () => {
    server.drain();
    const id = run(server, peer, "create");
    const call = (await server.next("AGENT")) as Agent;
    assert.equal(call.msg.op, "createResults");
    assert.equal(call.msg.taskId, id);
    assert.equal(typeof call.msg.rid, "number");
    assert.deepEqual(call.msg.args, {
      results: [{ name: "meta" }, { name: "withData", data: 0 }, { name: "" }],
    });
    assert.equal(call.blobs.length, 1);
    assert.equal(call.blobs[0].toString(), "hello");
    const created = [
      { resultId: "r1", name: "meta", status: "CREATED" },
      { resultId: "r2", name: "withData", status: "COMPLETED" },
      { resultId: "r3", name: "", status: "CREATED" },
    ];
    server.reply(call, { ok: true, msg: created });
    assert.deepEqual(await server.output(id), created);
  });

  test("STARTED reaches the server before the task's first agent call", async () => {
    server.drain();
    const id = run(server, peer, "create");
    const call = (await server.next("AGENT")) as Agent;
    const started = server.received.findIndex(
      (r) => r.msg.t === "STARTED" && (r.msg as { taskIds: string[] }).taskIds.includes(id),
    );
    assert.ok(started !== -1 && started < server.received.indexOf(call), "STARTED first");
    server.reply(call, { ok: true, msg: [] });
    await server.output(id);
  });

  test("uploadData: {resultId} and one blob; resolves to nothing", async () => {
    server.drain();
    const id = run(server, peer, "upload", ["r9", "some data"]);
    const call = (await server.next("AGENT")) as Agent;
    assert.equal(call.msg.op, "uploadData");
    assert.deepEqual(call.msg.args, { resultId: "r9" });
    assert.deepEqual(
      call.blobs.map((b) => b.toString()),
      ["some data"],
    );
    server.reply(call, { ok: true, msg: { resultId: "r9", size: 9 } });
    assert.equal(await server.output(id), "void");
  });

  test("submitTasks: payloads as blob indexes, ids, options passed as given", async () => {
    server.drain();
    const id = run(server, peer, "submit");
    const call = (await server.next("AGENT")) as Agent;
    assert.equal(call.msg.op, "submitTasks");
    assert.deepEqual(call.msg.args, {
      tasks: [
        { payloadId: "p-existing", expectedOutputIds: ["o1"], dataDependencies: ["d1"] },
        { payload: 0, outputCount: 2, taskOptions: { priority: 5 } },
      ],
      taskOptions: { maxRetries: 1 },
    });
    assert.equal(call.blobs.length, 1);
    assert.equal(call.blobs[0].toString(), "inline");
    const submitted = [
      { taskId: "c1", payloadId: "p-existing", expectedOutputIds: ["o1"] },
      { taskId: "c2", payloadId: "p2", expectedOutputIds: ["o2", "o3"] },
    ];
    server.reply(call, { ok: true, msg: submitted });
    assert.deepEqual(await server.output(id), submitted);
  });

  test("submitCall: the standard payload, the caller's application, options", async () => {
    server.drain();
    const id = run(server, peer, "callChild", [
      "sum",
      [1, 2, 3],
      { expectedOutputIds: ["out-1"], dataDependencies: ["dep-1"], taskOptions: { priority: 3 } },
    ]);
    const call = (await server.next("AGENT")) as Agent;
    assert.equal(call.msg.op, "submitTasks");
    assert.deepEqual(call.msg.args, {
      tasks: [
        {
          payload: 0,
          expectedOutputIds: ["out-1"],
          dataDependencies: ["dep-1"],
          taskOptions: { applicationName: "agentcalls", applicationService: "svc", priority: 3 },
        },
      ],
    });
    const sent = decode(call.blobs[0]) as { method: string; args: Uint8Array };
    assert.equal(sent.method, "sum");
    assert.deepEqual(unpack(sent.args), [1, 2, 3]);
    server.reply(call, { ok: true, msg: [{ taskId: "c9", payloadId: "p9", expectedOutputIds: ["out-1"] }] });
    assert.deepEqual(await server.output(id), {
      taskId: "c9",
      payloadId: "p9",
      expectedOutputIds: ["out-1"],
    });
  });

  test("getData: {resultIds}; the reply's blobs, in order, as Buffers; a single id gives one Buffer", async () => {
    server.drain();
    const id = run(server, peer, "fetch", [["a", "b"]]);
    const call = (await server.next("AGENT")) as Agent;
    assert.equal(call.msg.op, "getData");
    assert.deepEqual(call.msg.args, { resultIds: ["a", "b"] });
    assert.equal(call.blobs.length, 0);
    server.reply(call, { ok: true, msg: { resultIds: ["a", "b"] } }, [Buffer.from("AAA"), Buffer.from("")]);
    assert.deepEqual(await server.output(id), ["AAA", ""]);

    const one = run(server, peer, "fetchOne", ["c"]);
    const call2 = (await server.next("AGENT")) as Agent;
    assert.deepEqual(call2.msg.args, { resultIds: ["c"] });
    server.reply(call2, { ok: true, msg: { resultIds: ["c"] } }, [Buffer.from("CCC")]);
    assert.deepEqual(await server.output(one), { isBuffer: true, text: "CCC" });
  });

  test("ok=false rejects with a ZgridError carrying the code and the server's message", async () => {
    server.drain();
    const id = run(server, peer, "caught", ["missing"]);
    const call = (await server.next("AGENT")) as Agent;
    server.reply(call, {
      ok: false,
      code: "FAILED_PRECONDITION",
      error: "result missing is CREATED: no data yet",
    });
    assert.deepEqual(await server.output(id), {
      name: "ZgridError",
      code: "FAILED_PRECONDITION",
      message: "result missing is CREATED: no data yet",
    });
  });

  test("an uncaught refusal fails the attempt (FAILED, retryable) with the server's message", async () => {
    server.drain();
    const id = run(server, peer, "fetch", [["gone"]]);
    const call = (await server.next("AGENT")) as Agent;
    server.reply(call, { ok: false, code: "NOT_FOUND", error: "result gone not found" });
    const r = (await server.results([id])).get(id)!;
    assert.equal(r.status, "FAILED");
    assert.match(r.error ?? "", /result gone not found/);
  });

  test("several calls in flight from one task: each reply settles its own call", async () => {
    server.drain();
    const id = run(server, peer, "parallel");
    const calls: Agent[] = [];
    for (let i = 0; i < 3; i++) calls.push((await server.next("AGENT")) as Agent);
    assert.deepEqual(
      calls.map((c) => c.msg.args.resultIds),
      [["x"], ["y"], ["z"]],
    );
    assert.equal(new Set(calls.map((c) => c.msg.rid)).size, 3, "distinct rids");
    // Answered in reverse order, and a reply for a call nobody made is ignored.
    server.send(peer, { t: "AGENT_REPLY", rid: 987654, ok: true, msg: {} }, [Buffer.from("stray")]);
    for (const c of calls.reverse()) {
      const rid = (c.msg.args.resultIds as string[])[0];
      server.reply(c, { ok: true, msg: { resultIds: [rid] } }, [Buffer.from(`data-${rid}`)]);
    }
    assert.deepEqual(await server.output(id), ["data-x", "data-y", "data-z"]);
  });

  test("a call fired and not awaited: sent before DONE, dropped when the task ends; the thread lives on", async () => {
    server.drain();
    const id = run(server, peer, "fireAndForget");
    const call = (await server.next("AGENT")) as Agent;
    assert.deepEqual(call.msg.args, { resultIds: ["never-awaited"] });
    const threadId = await server.output(id);
    const done = server.received.findIndex(
      (r) => r.msg.t === "DONE" && (r.msg as DoneMsg).results.some((c) => c.taskId === id),
    );
    assert.ok(server.received.indexOf(call) < done, "AGENT before DONE");
    // The late reply reaches nobody, and rejects nothing.
    server.reply(call, { ok: false, code: "FAILED_PRECONDITION", error: "task is not running" });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(await server.output(run(server, peer, "whoami")), threadId, "same thread");
  });

  test("the agent of a finished task rejects calls with a clear error, without a round trip", async () => {
    server.drain();
    const from = server.received.length;
    assert.equal(await server.output(run(server, peer, "leak")), "kept");
    const out = (await server.output(run(server, peer, "useLeaked"))) as { code: string; message: string };
    assert.equal(out.code, "FAILED_PRECONDITION");
    assert.match(out.message, /has ended, its agent can no longer be used/);
    assert.equal(server.received.slice(from).filter((r) => r.msg.t === "AGENT").length, 0);
  });

  test("bad arguments are refused in the thread: INVALID_ARGUMENT", async () => {
    server.drain();
    const from = server.received.length;
    const out = (await server.output(run(server, peer, "badArguments"))) as { code: string; message: string };
    assert.equal(out.code, "INVALID_ARGUMENT");
    assert.match(out.message, /uploadData: data must be a Uint8Array/);
    const clone = (await server.output(run(server, peer, "uncloneable"))) as { name: string };
    assert.equal(clone.name, "DataCloneError");
    assert.equal(server.received.slice(from).filter((r) => r.msg.t === "AGENT").length, 0, "nothing sent");
  });

  test("a task cancelled while its call is in flight: CANCELLED, the call dropped, the host serves on", async () => {
    server.drain();
    const id = run(server, peer, "caught", ["slow"]);
    const call = (await server.next("AGENT")) as Agent;
    server.send(peer, { t: "CANCEL", taskIds: [id], reason: "by the test" });
    const r = (await server.results([id], 2000)).get(id)!;
    assert.equal(r.status, "CANCELLED");
    server.reply(call, { ok: true, msg: { resultIds: ["slow"] } }, [Buffer.from("late")]);
    const next = run(server, peer, "caught", ["quick"]);
    const call2 = (await server.next("AGENT")) as Agent;
    server.reply(call2, { ok: true, msg: { resultIds: ["quick"] } }, [Buffer.from("q")]);
    assert.equal(await server.output(next), "resolved");
  });

  test("RECONNECT: calls in flight fail with UNAVAILABLE (the server forgot their tasks)", async () => {
    server.drain();
    const id = run(server, peer, "caught", ["x"]);
    const call = await server.next("AGENT");
    server.send(peer, { t: "RECONNECT", msg: "unknown worker" });
    const out = (await server.output(id)) as { code: string; message: string };
    assert.equal(out.code, "UNAVAILABLE");
    assert.match(out.message, /lost track of this worker: unknown worker/);
    assert.ok(
      server.received.some((r) => r.msg.t === "READY" && r.at >= call.at),
      "READY again",
    );
    server.send(peer, { t: "WELCOME", workerId: host.workerId, heartbeatMs: 100 });
  });
});

describe("agent calls when the server does not answer", () => {
  test("a call with no reply fails with TIMEOUT after agentTimeoutMs", async () => {
    const server = new StandInServer();
    await server.start();
    const { host, peer } = await startHost(server, { agentTimeoutMs: 300 });
    try {
      const id = run(server, peer, "caught", ["x"]);
      const call = await server.next("AGENT");
      const out = (await server.output(id)) as { code: string; message: string };
      const waited = Date.now() - call.at;
      assert.equal(out.code, "TIMEOUT");
      assert.match(out.message, /no answer from the server to agent call getData within 300 ms/);
      assert.ok(waited >= 250 && waited < 2000, `failed after ${waited} ms`);
    } finally {
      await host.stop();
      server.close();
    }
  });

  test("stop() while a call is in flight: the task ends at once instead of waiting out the grace period", async () => {
    const server = new StandInServer();
    await server.start();
    const { host, peer } = await startHost(server, { stopGraceMs: 5000 });
    try {
      run(server, peer, "caught", ["x"]);
      await server.next("AGENT");
      const t0 = Date.now();
      await host.stop();
      assert.ok(Date.now() - t0 < 2500, `stopped in ${Date.now() - t0} ms`);
      await server.next("BYE", 1000);
    } finally {
      await host.stop();
      server.close();
    }
  });
});

describe("an agent without a server connection (a service tested in process)", () => {
  test("its calls reject with UNAVAILABLE; its fields are the task's", async () => {
    const agent = createAgent({
      taskId: "t1",
      sessionId: "s1",
      expectedOutputIds: ["o1"],
      dataDependencies: ["d1"],
      attempt: 1,
    });
    assert.deepEqual(agent.expectedOutputIds, ["o1"]);
    await assert.rejects(agent.getData("d1"), (err: unknown) => {
      assert.ok(err instanceof ZgridError);
      assert.equal(err.code, "UNAVAILABLE");
      return true;
    });
    agent.close();
    await assert.rejects(agent.createResults([{ name: "x" }]), /has ended/);
  });
});
