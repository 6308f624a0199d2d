/**
 * WorkerHost over real ZeroMQ sockets, against `StandInServer` (test/stand-in-server.ts): a ROUTER that
 * plays the server's worker endpoint just far enough to drive the host (the real one lives in src/daemons).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Worker } from "node:worker_threads";
import { unpack } from "msgpackr";
import type { DoneMsg, ReadyMsg, TasksColumnsMsg, WireTask } from "../src/protocol/worker-messages.js";
import { WorkerHost } from "../src/worker/index.js";
import { freePort } from "./helpers.js";
import { EXAMPLES, FIXTURES, payload, quiet, StandInServer, task } from "./stand-in-server.js";

describe("WorkerHost against a stand-in server", () => {
  const server = new StandInServer();
  let host: WorkerHost;
  let peer: Buffer;
  let ready: ReadyMsg;

  before(async () => {
    await server.start();
    host = new WorkerHost({
      url: `${server.endpoint}?token=s3cret`,
      appPath: EXAMPLES,
      slots: 2,
      partitions: ["p1", "p2"],
      heartbeatMs: 100,
      workerId: "worker-under-test",
      log: quiet,
    });
    const started = host.start();
    const r = await server.next("READY");
    peer = r.peer;
    ready = r.msg;
    // The host beats every 100 ms (its own interval, the shorter); the server's interval of 1 s lets the
    // host hear nothing for 3 s before it calls the server lost, so that a loaded machine's pauses do not.
    server.send(peer, { t: "WELCOME", workerId: ready.workerId, heartbeatMs: 1000 });
    server.beat(peer, 100);
    await started;
  });

  after(async () => {
    await host.stop();
    server.close();
  });

  test("READY carries the token, partitions, slots and worker id", () => {
    assert.equal(ready.v, 1);
    assert.equal(ready.token, "s3cret");
    assert.deepEqual(ready.partitions, ["p1", "p2"]);
    assert.equal(ready.slots, 2);
    assert.equal(ready.workerId, "worker-under-test");
    assert.ok(ready.prefetch > 0);
    assert.equal(ready.pid, process.pid);
  });

  test("TASKS → STARTED and DONE with the outputs, payloads inline or fetched", async () => {
    server.drain();
    server.send(
      peer,
      {
        t: "TASKS",
        tasks: [task("t1", { payload: 0 }), task("t2", { payload: 1 }), task("t3")],
      },
      [payload("sum", [[1, 2, 3]]), payload("noop", [])],
    );
    // t3's payload did not come inline: the host asks for it.
    const fetch = await server.next("FETCH");
    assert.deepEqual(fetch.msg.resultIds, ["payload-t3"]);
    server.send(peer, { t: "DATA", rid: fetch.msg.rid, results: [{ resultId: "payload-t3", blob: 0 }] }, [
      payload("sum", [[10, 20]]),
    ]);
    const results = await server.results(["t1", "t2", "t3"], 15_000);
    assert.equal(results.get("t1")?.status, "COMPLETED");
    assert.equal(unpack(results.get("t1")!.data!), 6);
    assert.equal(unpack(results.get("t2")!.data!), null);
    assert.equal(unpack(results.get("t3")!.data!), 30);
    const started = server.received
      .filter((r) => r.msg.t === "STARTED")
      .flatMap((r) => (r.msg as { taskIds: string[] }).taskIds);
    for (const id of ["t1", "t2", "t3"]) assert.ok(started.includes(id), `STARTED for ${id}`);
  });

  test("a payload the server cannot provide: FAILED", async () => {
    server.drain();
    server.send(peer, { t: "TASKS", tasks: [task("t4")] });
    const fetch = await server.next("FETCH");
    server.send(peer, {
      t: "DATA",
      rid: fetch.msg.rid,
      results: [{ resultId: "payload-t4", error: "deleted" }],
    });
    const r = (await server.results(["t4"], 15_000)).get("t4")!;
    assert.equal(r.status, "FAILED");
    assert.match(r.error ?? "", /payload payload-t4 unavailable: deleted/);
  });

  test("many tasks are reported in a few batched messages", async () => {
    server.drain();
    const tasks: WireTask[] = [];
    const blobs: Buffer[] = [];
    for (let i = 0; i < 500; i++) {
      tasks.push(task(`b${i}`, { payload: i }));
      blobs.push(payload("sum", [[i, 1]]));
    }
    server.send(peer, { t: "TASKS", tasks }, blobs);
    const results = await server.results(
      tasks.map((t) => t.taskId),
      15_000,
    );
    tasks.forEach((t, i) => assert.equal(unpack(results.get(t.taskId)!.data!), i + 1));
    const doneMessages = server.received.filter((r) => r.msg.t === "DONE").length;
    assert.ok(doneMessages < 250, `${doneMessages} DONE messages for 500 tasks`);
  });

  test("TASKS in columns with packed payloads: shared and cut anywhere; a malformed one is ignored", async () => {
    assert.equal(ready.columns, true);
    assert.equal(ready.packedPayloads, true, "READY asks for packed payloads");
    server.drain();
    /** TASKS in columns for `ids`, whose payloads[i] index the packed payloads. */
    const columns = (ids: string[], payloads: number[], payloadSizes: number[]): TasksColumnsMsg => ({
      t: "TASKS",
      taskIds: ids,
      payloadIds: ids.map((id) => `payload-${id}`),
      payloads,
      attempts: ids.map(() => 1),
      sessions: ["session-1"],
      session: ids.map(() => 0),
      optionSets: [{ applicationName: "hello" }],
      option: ids.map(() => 0),
      outputs: ids.map((id) => `output-${id}`),
      outputCounts: ids.map(() => 1),
      payloadSizes,
    });
    const a = payload("sum", [[1, 2]]);
    const b = payload("sum", [[5, 5]]);
    const joined = Buffer.concat([a, b]);
    // Sizes that do not add up to the blobs: ignored as a whole, and the host goes on.
    server.send(peer, columns(["bad1"], [0], [a.length + 1]), [a]);
    server.send(peer, columns(["k1", "k2", "k3"], [0, 1, 0], [a.length, b.length]), [
      joined.subarray(0, 3),
      joined.subarray(3),
    ]);
    const results = await server.results(["k1", "k2", "k3"], 15_000);
    assert.equal(unpack(results.get("k1")!.data!), 3);
    assert.equal(unpack(results.get("k2")!.data!), 10);
    assert.equal(unpack(results.get("k3")!.data!), 3, "a payload two tasks share, sent once");
    const named = server.received.flatMap((r) =>
      r.msg.t === "DONE"
        ? (r.msg as DoneMsg).results.map((c) => c.taskId)
        : r.msg.t === "STARTED" || r.msg.t === "FETCH"
          ? ((r.msg as { taskIds?: string[]; resultIds?: string[] }).taskIds ??
            (r.msg as { resultIds?: string[] }).resultIds ??
            [])
          : [],
    );
    assert.ok(!named.some((id) => id.includes("bad1")), "the malformed TASKS ran nothing");
  });

  test("heartbeats flow while welcomed, at the host's interval", async () => {
    server.drain();
    const first = await server.next("HEARTBEAT", 10_000);
    let last = first;
    for (let i = 0; i < 9; i++) last = await server.next("HEARTBEAT", 10_000);
    // 9 intervals of 100 ms: about 900 ms. The bound is generous for a loaded machine, and half what a
    // host beating at the server's interval (1 s) would take.
    assert.ok(last.at - first.at < 4500, `10 heartbeats in ${last.at - first.at} ms`);
  });

  test("CANCEL of a task waiting for its payload: DONE CANCELLED", async () => {
    server.drain();
    server.send(peer, { t: "TASKS", tasks: [task("c2")] });
    await server.next("FETCH");
    server.send(peer, { t: "CANCEL", taskIds: ["c2", "unknown"], reason: "by the test" });
    const r = (await server.results(["c2"], 15_000)).get("c2")!;
    assert.equal(r.status, "CANCELLED");
    assert.match(r.error ?? "", /by the test/);
  });

  test("a silent server is declared lost: READY again every interval until WELCOME", async () => {
    // A server interval of 300 ms: lost after 900 ms of silence (the host still beats every 100 ms).
    server.send(peer, { t: "WELCOME", workerId: "worker-under-test", heartbeatMs: 300 });
    await server.next("HEARTBEAT", 10_000);
    server.drain();
    server.silence();
    // The last thing the host hears: a HEARTBEAT sent after t0, so it is silence from t0 on (the
    // beats before it may have left up to an interval earlier, and do not count).
    const t0 = Date.now();
    server.send(peer, { t: "HEARTBEAT" });
    // Expected about 900 ms after t0: the bound is a generous one for a loaded machine.
    const again = await server.next("READY", 10_000);
    assert.ok(again.at - t0 >= 900, `READY ${again.at - t0} ms into the silence: not before 3 intervals`);
    assert.equal(again.msg.workerId, "worker-under-test");
    // The host's interval is 100 ms: the next READY is due then (bounded generously).
    await server.next("READY", 5000);
    server.send(peer, { t: "WELCOME", workerId: "worker-under-test", heartbeatMs: 1000 });
    server.beat(peer, 100);
    // Welcomed again: a HEARTBEAT, and over the next several heartbeats no READY while the server is
    // heard (one sent before the HEARTBEAT came in before it: a socket keeps its order).
    const welcomed = await server.next("HEARTBEAT", 10_000);
    for (let i = 0; i < 5; i++) await server.next("HEARTBEAT", 10_000);
    const since = server.received.slice(server.received.indexOf(welcomed));
    assert.equal(since.filter((r) => r.msg.t === "READY").length, 0);
  });

  test("RECONNECT → READY", async () => {
    server.drain();
    server.send(peer, { t: "RECONNECT", msg: "unknown worker" });
    await server.next("READY", 10_000);
    server.send(peer, { t: "WELCOME", workerId: "worker-under-test", heartbeatMs: 1000 });
  });
});

describe("WorkerHost lifecycle", () => {
  test("REJECT (wrong token): start() rejects with the server's reason and the host closes", async () => {
    const server = new StandInServer();
    await server.start();
    const host = new WorkerHost({
      url: `${server.endpoint}?token=wrong`,
      appPath: EXAMPLES,
      slots: 1,
      log: quiet,
    });
    try {
      const started = host.start();
      const r = await server.next("READY");
      assert.equal(r.msg.token, "wrong");
      server.send(r.peer, { t: "REJECT", code: "UNAUTHENTICATED", msg: "wrong worker token" });
      await assert.rejects(started, (err: Error & { code?: string }) => {
        assert.match(err.message, /rejected this worker: wrong worker token/);
        assert.equal(err.code, "UNAUTHENTICATED");
        return true;
      });
      await host.closed;
    } finally {
      await host.stop();
      server.close();
    }
  });

  test("CANCEL of a running task: DONE CANCELLED, not after the task", async () => {
    const server = new StandInServer();
    await server.start();
    const host = new WorkerHost({
      url: `${server.endpoint}?token=t`,
      appPath: FIXTURES,
      slots: 1,
      log: quiet,
    });
    try {
      const started = host.start();
      const r = await server.next("READY");
      server.send(r.peer, { t: "WELCOME", workerId: r.msg.workerId, heartbeatMs: 1000 });
      await started;
      const spin = task("spin1", { payload: 0, options: { applicationName: "testapp" } });
      server.send(r.peer, { t: "TASKS", tasks: [spin] }, [payload("spin", [20000])]);
      assert.deepEqual((await server.next("STARTED", 15_000)).msg.taskIds, ["spin1"]);
      server.send(r.peer, { t: "CANCEL", taskIds: ["spin1"], reason: "user" });
      // The task would spin 20 s: a bound of 10 s tells a cancel from a wait for the end, and is
      // generous for a loaded machine (a few ms expected).
      const done = (await server.results(["spin1"], 10_000)).get("spin1")!;
      assert.equal(done.status, "CANCELLED");
      // The host still serves.
      server.send(
        r.peer,
        { t: "TASKS", tasks: [task("e1", { payload: 0, options: { applicationName: "testapp" } })] },
        [payload("echo", ["ok"])],
      );
      assert.equal(unpack((await server.results(["e1"], 15_000)).get("e1")!.data!), "ok");
    } finally {
      await host.stop();
      server.close();
    }
  });

  test("stop(): BYE, and a running task's thread does not outlive the grace period", async () => {
    // The host's executor threads, seen as they are created, and when each exits.
    const threads: { exitedAt: number | undefined }[] = [];
    const onWorker = (w: Worker): void => {
      const t: { exitedAt: number | undefined } = { exitedAt: undefined };
      threads.push(t);
      w.once("exit", () => (t.exitedAt = Date.now()));
    };
    process.on("worker", onWorker);
    const server = new StandInServer();
    await server.start();
    const host = new WorkerHost({
      url: `${server.endpoint}?token=t`,
      appPath: FIXTURES,
      slots: 1,
      heartbeatMs: 100,
      stopGraceMs: 300,
      log: quiet,
    });
    try {
      const started = host.start();
      const r = await server.next("READY");
      server.send(r.peer, { t: "WELCOME", workerId: r.msg.workerId, heartbeatMs: 100 });
      await started;
      const spin = task("s1", { payload: 0, options: { applicationName: "testapp" } });
      server.send(r.peer, { t: "TASKS", tasks: [spin] }, [payload("spin", [20000])]);
      await server.next("STARTED", 15_000);
      assert.equal(threads.length, 1, "one executor thread for one slot");
      assert.equal(threads[0].exitedAt, undefined, "the thread runs the task");
      const t0 = Date.now();
      await host.stop();
      const stopMs = Date.now() - t0;
      // The spin would keep its thread 20 s: the grace is 300 ms, and the bound of 10 s is generous for a
      // loaded machine while it tells a thread ended at the grace from one left to finish its task.
      assert.ok(stopMs < 10_000, `stop() took ${stopMs} ms`);
      for (const [i, t] of threads.entries()) {
        assert.ok(t.exitedAt !== undefined, `executor thread ${i} still runs after stop()`);
        assert.ok(t.exitedAt - t0 < 10_000, `executor thread ${i} ended ${t.exitedAt - t0} ms into stop()`);
      }
      await server.next("BYE", 10_000);
      await host.closed;
    } finally {
      process.off("worker", onWorker);
      await host.stop();
      server.close();
    }
  });

  // SendQueue.pending counts the message handed to ZeroMQ and not yet sent (the first READY, held while
  // there is no connection): without it the first tick queued a second READY behind the first.
  test("a server that comes up late gets one READY, not one per heartbeat missed", async (t) => {
    // A free port, left closed while the host starts. Below the ephemeral range (see freePorts): a port
    // in it may become the source port of one of the host's attempts to connect, which then reaches
    // itself (a TCP self-connection) and takes the READY meant for the server.
    const endpoint = `tcp://127.0.0.1:${await freePort()}`;
    // The test turns the host's heartbeat timer: then no tick can come between the READY and the WELCOME
    // (a READY sent then would be the protocol's, not a pile-up), however slow the machine.
    t.mock.timers.enable({ apis: ["setInterval"] });
    // The host starts its executor thread, sends READY and sets its timer in one turn of the loop.
    const connected = new Promise((resolve) => process.once("worker", resolve));
    const host = new WorkerHost({
      url: `${endpoint}?token=t`,
      appPath: EXAMPLES,
      slots: 1,
      heartbeatMs: 100,
      log: quiet,
    });
    const server = new StandInServer();
    try {
      const started = host.start();
      started.catch(() => {}); // awaited below; stop() rejects it if the test ends before a WELCOME
      await connected;
      for (let i = 0; i < 8; i++) t.mock.timers.tick(100); // 8 heartbeat intervals with no server
      await server.start(endpoint);
      const r = await server.next("READY", 10_000);
      // A server interval of 60 s: no silence of the test's can make the host call it lost.
      server.send(r.peer, { t: "WELCOME", workerId: r.msg.workerId, heartbeatMs: 60_000 });
      await started;
      // A window of 10 intervals, welcomed: 10 HEARTBEATs, behind any READY sent before them.
      for (let i = 0; i < 10; i++) {
        t.mock.timers.tick(100);
        await server.next("HEARTBEAT", 10_000);
      }
      const readies = server.received.filter((m) => m.msg.t === "READY").length;
      assert.equal(readies, 1, `${readies} READY messages`);
    } finally {
      await host.stop();
      server.close();
    }
  });

  test("options are checked when the host is built", () => {
    assert.throws(
      () => new WorkerHost({ url: "http://x", appPath: EXAMPLES, slots: 1 }),
      /invalid worker URL/,
    );
    assert.throws(
      () => new WorkerHost({ url: "tcp://127.0.0.1:1", appPath: "/no/such/dir", slots: 1 }),
      /\/no\/such\/dir does not exist/,
    );
    assert.throws(() => new WorkerHost({ url: "tcp://127.0.0.1:1", appPath: EXAMPLES, slots: 0 }), /slots/);
  });
});
