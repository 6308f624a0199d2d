/**
 * WorkerHost over real ZeroMQ sockets, against `StandInServer` (test/stand-in-server.ts): a ROUTER that
 * plays the server's worker endpoint just far enough to drive the host (the real one lives in src/daemons).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { unpack } from "msgpackr";
import { Router } from "zeromq";
import type { ReadyMsg, WireTask } from "../src/protocol/worker-messages.js";
import { WorkerHost } from "../src/worker/index.js";
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
    server.send(peer, { t: "WELCOME", workerId: ready.workerId, heartbeatMs: 100 });
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
    const results = await server.results(["t1", "t2", "t3"]);
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
    const r = (await server.results(["t4"])).get("t4")!;
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
    const results = await server.results(tasks.map((t) => t.taskId));
    tasks.forEach((t, i) => assert.equal(unpack(results.get(t.taskId)!.data!), i + 1));
    const doneMessages = server.received.filter((r) => r.msg.t === "DONE").length;
    assert.ok(doneMessages < 250, `${doneMessages} DONE messages for 500 tasks`);
  });

  test("heartbeats flow while welcomed", async () => {
    server.drain();
    const first = await server.next("HEARTBEAT", 1000);
    const second = await server.next("HEARTBEAT", 1000);
    assert.ok(second.at - first.at < 500);
  });

  test("CANCEL of a task waiting for its payload: DONE CANCELLED", async () => {
    server.drain();
    server.send(peer, { t: "TASKS", tasks: [task("c2")] });
    await server.next("FETCH");
    server.send(peer, { t: "CANCEL", taskIds: ["c2", "unknown"], reason: "by the test" });
    const r = (await server.results(["c2"])).get("c2")!;
    assert.equal(r.status, "CANCELLED");
    assert.match(r.error ?? "", /by the test/);
  });

  test("a silent server is declared lost: READY again every interval until WELCOME", async () => {
    server.drain();
    const t0 = Date.now();
    server.silence(); // nothing for more than 3 heartbeat intervals
    const again = await server.next("READY", 2000);
    assert.ok(Date.now() - t0 >= 300, "not before 3 silent intervals");
    assert.equal(again.msg.workerId, "worker-under-test");
    await server.next("READY", 1000);
    server.send(peer, { t: "WELCOME", workerId: "worker-under-test", heartbeatMs: 100 });
    server.beat(peer, 100);
    server.drain();
    await server.next("HEARTBEAT", 1000);
    // Welcomed again: no more READY while the server is heard.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(server.received.slice(-5).filter((r) => r.msg.t === "READY").length, 0);
  });

  test("RECONNECT → READY", async () => {
    server.drain();
    server.send(peer, { t: "RECONNECT", msg: "unknown worker" });
    await server.next("READY", 1000);
    server.send(peer, { t: "WELCOME", workerId: "worker-under-test", heartbeatMs: 100 });
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
      await assert.rejects(started, /rejected this worker: wrong worker token \(UNAUTHENTICATED\)/);
      await host.closed;
    } finally {
      await host.stop();
      server.close();
    }
  });

  test("CANCEL of a running task: DONE CANCELLED within a second", async () => {
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
      assert.deepEqual((await server.next("STARTED")).msg.taskIds, ["spin1"]);
      const t0 = Date.now();
      server.send(r.peer, { t: "CANCEL", taskIds: ["spin1"], reason: "user" });
      const done = (await server.results(["spin1"], 1000)).get("spin1")!;
      assert.equal(done.status, "CANCELLED");
      assert.ok(Date.now() - t0 < 1000);
      // The host still serves.
      server.send(
        r.peer,
        { t: "TASKS", tasks: [task("e1", { payload: 0, options: { applicationName: "testapp" } })] },
        [payload("echo", ["ok"])],
      );
      assert.equal(unpack((await server.results(["e1"])).get("e1")!.data!), "ok");
    } finally {
      await host.stop();
      server.close();
    }
  });

  test("stop(): BYE, and a running task's thread does not outlive the grace period", async () => {
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
      await server.next("STARTED");
      const t0 = Date.now();
      await host.stop();
      assert.ok(Date.now() - t0 < 3000, "stopped within the grace period");
      await server.next("BYE", 1000);
      await host.closed;
    } finally {
      await host.stop();
      server.close();
    }
  });

  test("a server that comes up late gets one READY, not one per heartbeat missed", async () => {
    // Find a free port, then leave it closed while the host starts.
    const probe = new Router();
    await probe.bind("tcp://127.0.0.1:*");
    const endpoint = probe.lastEndpoint!;
    probe.close();
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
      await new Promise((resolve) => setTimeout(resolve, 800)); // 8 heartbeat intervals with no server
      await server.start(endpoint);
      const r = await server.next("READY", 3000);
      server.send(r.peer, { t: "WELCOME", workerId: r.msg.workerId, heartbeatMs: 100 });
      server.beat(r.peer, 100);
      await started;
      await new Promise((resolve) => setTimeout(resolve, 200));
      const readies = server.received.filter((m) => m.msg.t === "READY").length;
      assert.ok(readies <= 2, `${readies} READY messages`);
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
