/**
 * SessionService (seed 000) against a real server and a real worker process running
 * test/fixtures/apps/testapp.js: each wait behaviour, handlers called exactly once per task,
 * cleanup cancelling the session.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pack, unpack } from "msgpackr";
import { connect, type ZgridClient } from "../src/client/client.js";
import {
  SessionService,
  TaskFailedError,
  WaitBehavior,
  type ServiceInvocationHandler,
  type TaskRequest,
} from "../src/client/session-service.js";
import type { Server } from "../src/daemons/server.js";
import { FIXTURE_APPS, startServer, type Proc, spawnWorker } from "./helpers.js";

/** A handler that records every call, so that "exactly once" can be checked. */
class Recorder implements ServiceInvocationHandler {
  readonly calls = new Map<string, number>();
  readonly outputs = new Map<string, unknown>();
  readonly errors = new Map<string, Error>();
  handleResponse(data: Buffer, taskId: string): void {
    this.calls.set(taskId, (this.calls.get(taskId) ?? 0) + 1);
    this.outputs.set(taskId, unpack(data));
  }
  handleError(error: Error, taskId: string): void {
    this.calls.set(taskId, (this.calls.get(taskId) ?? 0) + 1);
    this.errors.set(taskId, error);
  }
  assertOnce(): void {
    for (const [id, n] of this.calls) assert.equal(n, 1, `task ${id}'s handler was called ${n} times`);
  }
}

const call = (method: string, ...args: unknown[]): TaskRequest => ({ method, args: pack(args) });

describe("SessionService with real workers", () => {
  let server: Server;
  let client: ZgridClient;
  let worker: Proc;
  const services: SessionService[] = [];
  const service = (taskOptions = {}): SessionService => {
    const s = new SessionService({
      configuration: { endpoint: server.info!.url, timeoutMs: 10_000 },
      taskOptions: { applicationName: "testapp", maxRetries: 0, ...taskOptions },
    });
    services.push(s);
    return s;
  };

  before(async () => {
    ({ server } = await startServer({ heartbeatMs: 200 }));
    client = await connect(server.info!.url, { timeoutMs: 10_000 });
    worker = await spawnWorker(server, FIXTURE_APPS, 8);
  });
  after(async () => {
    await Promise.all(services.map((s) => s.close()));
    await worker.stop();
    await client.close();
    await server.shutdown();
  });

  it("All: every outcome reaches its handler once; cleanup cancels the session", async () => {
    const s = service();
    const h = new Recorder();
    const ids = await s.submit(
      [...Array.from({ length: 10 }, (_, i) => call("echo", { i })), call("appfail", "bad input 7")],
      h,
    );
    assert.equal(ids.length, 11);
    await s.waitResults([], WaitBehavior.All);
    assert.equal(h.calls.size, 11);
    ids.slice(0, 10).forEach((id, i) => assert.deepEqual(h.outputs.get(id), { i }));
    const err = h.errors.get(ids[10]);
    assert.ok(err instanceof TaskFailedError, String(err));
    assert.equal(err.status, "ERROR");
    assert.equal(err.taskId, ids[10]);
    assert.match(err.message, /bad input 7/);
    // Waiting again, in every way, calls no handler a second time.
    await s.waitResults(ids, WaitBehavior.All);
    await s.waitResults(ids, WaitBehavior.Any);
    await s.waitResults([], WaitBehavior.All | WaitBehavior.BreakOnError);
    h.assertOnce();
    assert.equal(h.calls.size, 11);

    const sessionId = await s.getSessionId();
    await s.cleanup();
    assert.equal((await client.getSession(sessionId)).status, "CANCELLED");
  });

  it("Any returns at the first completion; with no ids it means All", async () => {
    const s = service();
    const h = new Recorder();
    const ids = await s.submit([call("sleep", 20_000), call("sleep", 30), call("sleep", 20_000)], h);
    const started = Date.now();
    await s.waitResults(ids, WaitBehavior.Any);
    const elapsed = Date.now() - started;
    // Had it waited for all, 20 s; a loaded machine may take seconds for the 30 ms one.
    assert.ok(elapsed < 15_000, `Any returned after ${elapsed} ms`);
    assert.deepEqual([...h.calls.keys()], [ids[1]]);
    assert.equal(h.outputs.get(ids[1]), 30);
    // One outcome already in: Any returns at once.
    const again = Date.now();
    await s.waitResults(ids, WaitBehavior.Any);
    assert.ok(Date.now() - again < 1000);
    await s.cleanup(); // the sleepers are cancelled, not waited for

    const t = service();
    const h2 = new Recorder();
    const ids2 = await t.submit([call("sleep", 400), call("sleep", 10)], h2);
    await t.waitResults([], WaitBehavior.Any);
    assert.deepEqual(new Set(h2.calls.keys()), new Set(ids2), "an empty id list waits for every task");
    h.assertOnce();
    h2.assertOnce();
    await t.cleanup();
  });

  it("BreakOnError returns at the first aborted result, before the others end", async () => {
    const s = service();
    const h = new Recorder();
    const ids = await s.submit(
      [call("sleep", 20_000), call("sleep", 20), call("appfail", "first failure"), call("sleep", 20_000)],
      h,
    );
    const started = Date.now();
    await s.waitResults(ids, WaitBehavior.All | WaitBehavior.BreakOnError);
    const elapsed = Date.now() - started;
    // Had it waited for the others, 20 s.
    assert.ok(elapsed < 15_000, `BreakOnError returned after ${elapsed} ms`);
    assert.match(h.errors.get(ids[2])?.message ?? "", /first failure/);
    assert.equal(h.calls.has(ids[0]), false);
    assert.equal(h.calls.has(ids[3]), false);
    // A failure is already in: BreakOnError returns at once.
    const again = Date.now();
    await s.waitResults(ids, WaitBehavior.All | WaitBehavior.BreakOnError);
    assert.ok(Date.now() - again < 1000);

    const sessionId = await s.getSessionId();
    await s.cleanup();
    assert.equal((await client.getSession(sessionId)).status, "CANCELLED");
    for (const id of [ids[0], ids[3]])
      assert.match((await client.getTask(id)).status, /^CANCELL(ED|ING)$/, "the sleepers were cancelled");
    h.assertOnce();
  });

  it("timeoutMs rejects with TIMEOUT; an unknown id is refused", async () => {
    const s = service({ partitionId: "served-by-nobody" });
    const h = new Recorder();
    const ids = await s.submit([call("echo", 1)], h);
    const started = Date.now();
    await assert.rejects(
      s.waitResults(ids, WaitBehavior.All, { timeoutMs: 300 }),
      (err: Error & { code?: string }) => err.code === "TIMEOUT" && /1 of 1 task/.test(err.message),
    );
    assert.ok(Date.now() - started < 3000);
    await assert.rejects(s.waitResults(["t-not-mine"]), /was not submitted by this SessionService/);
    assert.equal(h.calls.size, 0);
    await s.cleanup();
  });
});
