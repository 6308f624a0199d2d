import assert from "node:assert/strict";
import { after, before, describe, it, type TestContext } from "node:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pack, unpack } from "msgpackr";
import { connect, type ZgridClient } from "../src/client/client.js";
import { decodeOutput, encodePayload } from "../src/client/payload.js";
import { SessionService, WaitBehavior } from "../src/client/session-service.js";
import type { Server } from "../src/daemons/server.js";
import {
  EXAMPLE_APPS,
  FIXTURE_APPS,
  holdsOver,
  runCli,
  spawnCli,
  startServer,
  waitFor,
  type Proc,
} from "./helpers.js";

function startWorker(server: Server, appPath: string, extra: string[] = []): Proc {
  return spawnCli([
    "worker",
    "--connect",
    server.info!.workerUrl,
    "--app-path",
    appPath,
    "--log-level",
    "warn",
    ...extra,
  ]);
}

/** Waits until `n` workers serving `partition` are connected. */
async function servedBy(server: Server, partition: string, n = 1): Promise<void> {
  await waitFor(
    () => [...server.scheduler.workers.values()].filter((w) => w.partitions.includes(partition)).length >= n,
    15_000,
    `${n} worker(s) of partition ${partition} connected`,
  );
}

describe("scheduling onto real worker processes", () => {
  let server: Server;
  let client: ZgridClient;
  const procs: Proc[] = [];
  /** A worker process for one test: stopped when the test ends (or, at the latest, after all). */
  const worker = (ctx: TestContext, appPath: string, extra: string[] = []): Proc => {
    const p = startWorker(server, appPath, extra);
    procs.push(p);
    ctx.after(() => p.stop());
    return p;
  };

  before(async () => {
    ({ server } = await startServer({ heartbeatMs: 200 }));
    client = await connect(server.info!.url, { timeoutMs: 60_000 });
  });
  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await client.close();
    await server.shutdown();
  });

  it("runs hello and addition through the CLI and through SessionService", async (ctx) => {
    worker(ctx, EXAMPLE_APPS, ["--slots", "2"]);
    await servedBy(server, "default");
    const hello = await runCli(["hello", "-e", server.info!.url, "-n", "10"]);
    assert.equal(hello.code, 0, hello.stderr);
    assert.match(hello.stdout, /^Result : 45$/m);
    assert.match(hello.stdout, /Good bye !/);
    const values = await runCli(["hello", "-e", server.info!.url, "-v", "1.5", "2", "3"]);
    assert.match(values.stdout, /^Result : 6\.5$/m);

    const service = new SessionService({
      configuration: { endpoint: server.info!.url },
      taskOptions: { applicationName: "addition" },
    });
    const answers = new Map<string, number>();
    const errors: string[] = [];
    const ids = await service.submit(
      Array.from({ length: 50 }, (_, i) => ({ method: "add", args: pack([i, 1000]) })),
      {
        handleResponse: (data, taskId) => void answers.set(taskId, unpack(data) as number),
        handleError: (err, taskId) => void errors.push(`${taskId}: ${err.message}`),
      },
    );
    await service.waitResults([], WaitBehavior.All);
    assert.deepEqual(errors, []);
    assert.equal(answers.size, 50);
    ids.forEach((id, i) => assert.equal(answers.get(id), i + 1000));
    await service.close();
  });

  it("starts tasks of higher priority first within a partition", async (ctx) => {
    const sessionId = await client.createSession({ applicationName: "hello", partitionId: "prio" });
    const payload = encodePayload("noop");
    const low = await client.submitTasks(
      sessionId,
      Array.from({ length: 6 }, () => ({ payload })),
      { priority: 1 },
    );
    const high = await client.submitTasks(
      sessionId,
      Array.from({ length: 6 }, () => ({ payload })),
      { priority: 5 },
    );
    worker(ctx, EXAMPLE_APPS, ["--slots", "1", "--prefetch", "0", "--partition", "prio"]);
    const outputs = [...low, ...high].map((t) => t.expectedOutputIds[0]);
    const r = await client.waitResults(outputs, { timeoutMs: 30_000 });
    assert.equal(r.timedOut, false);
    // Times are in milliseconds, so compare ranges: no low-priority task started before the last high one.
    const started = (ids: string[]) => ids.map((id) => server.scheduler.task(id).attempts[0].startedAt);
    const lastHigh = Math.max(...started(high.map((t) => t.taskId)));
    const firstLow = Math.min(...started(low.map((t) => t.taskId)));
    assert.ok(
      lastHigh <= firstLow,
      `a low-priority task started at ${firstLow}, before the last high one at ${lastHigh}`,
    );
    const dispatchOrder = [...low, ...high]
      // Finished tasks are read from the store (issue 18 item 2).
      .map((t) => server.scheduler.task(t.taskId))
      .sort((a, b) => a.attempts[0].startedAt - b.attempts[0].startedAt);
    assert.equal(dispatchOrder[0].options.priority, 5);
  });

  it("runs a partition's tasks only on its workers, and waits while none is connected", async (ctx) => {
    worker(ctx, FIXTURE_APPS, ["--slots", "1", "--partition", "pa"]);
    worker(ctx, FIXTURE_APPS, ["--slots", "1", "--partition", "pb"]);
    await servedBy(server, "pa");
    await servedBy(server, "pb");
    const sessionId = await client.createSession({ applicationName: "testapp" }, ["pa", "pb", "pc"]);
    const payload = encodePayload("whoami");
    const ta = await client.submitTasks(
      sessionId,
      Array.from({ length: 5 }, () => ({ payload })),
      { partitionId: "pa" },
    );
    const tb = await client.submitTasks(
      sessionId,
      Array.from({ length: 5 }, () => ({ payload })),
      { partitionId: "pb" },
    );
    const tc = await client.submitTasks(
      sessionId,
      Array.from({ length: 3 }, () => ({ payload })),
      { partitionId: "pc" },
    );
    await client.waitResults(
      [...ta, ...tb].map((t) => t.expectedOutputIds[0]),
      { timeoutMs: 30_000 },
    );
    const workerOf = async (id: string) => (await client.getTask(id)).attempts[0].workerId;
    const wa = new Set(await Promise.all(ta.map((t) => workerOf(t.taskId))));
    const wb = new Set(await Promise.all(tb.map((t) => workerOf(t.taskId))));
    assert.equal(wa.size, 1);
    assert.equal(wb.size, 1);
    assert.notDeepEqual([...wa], [...wb]);
    for (const w of wa) assert.deepEqual(server.scheduler.workers.get(w)!.partitions, ["pa"]);
    // Tasks of pa and pb submitted after those of pc run on their idle workers meanwhile; over all that
    // time the tasks of pc stay SUBMITTED: no worker of another partition takes them.
    const controls = [
      ...(await client.submitTasks(sessionId, [{ payload }], { partitionId: "pa" })),
      ...(await client.submitTasks(sessionId, [{ payload }], { partitionId: "pb" })),
    ];
    const controlsRan = client
      .waitResults(
        controls.map((t) => t.expectedOutputIds[0]),
        { timeoutMs: 30_000 },
      )
      .then((r) => assert.equal(r.timedOut, false, "the tasks of pa and pb ran"));
    await holdsOver(
      async () =>
        (await Promise.all(tc.map((t) => client.getTask(t.taskId)))).every(
          (t) => t.status === "SUBMITTED" && t.attempts.length === 0,
        ),
      { until: controlsRan, what: "the tasks of pc SUBMITTED" },
    );
    const health = await client.health();
    assert.equal(health.status, "DEGRADED");
    assert.match(health.checks.queue, /\bpc\b/);
    worker(ctx, FIXTURE_APPS, ["--slots", "1", "--partition", "pc"]);
    const r = await client.waitResults(
      tc.map((t) => t.expectedOutputIds[0]),
      { timeoutMs: 30_000 },
    );
    assert.equal(r.timedOut, false);
    for (const t of tc) assert.equal((await client.getTask(t.taskId)).status, "COMPLETED");
  });

  it("retries a task whose worker was killed with SIGKILL, once, on another worker", async (ctx) => {
    const victim = worker(ctx, FIXTURE_APPS, ["--slots", "1", "--partition", "kill"]);
    await waitFor(
      () => [...server.scheduler.workers.values()].some((w) => w.partitions.includes("kill")),
      15_000,
      "victim worker",
    );
    const sessionId = await client.createSession({
      applicationName: "testapp",
      partitionId: "kill",
      maxRetries: 2,
    });
    const [t] = await client.submitTasks(sessionId, [{ payload: encodePayload("sleep", [1500]) }]);
    await waitFor(
      async () => (await client.getTask(t.taskId)).status === "PROCESSING",
      15_000,
      "task processing",
    );
    victim.child.kill("SIGKILL");
    worker(ctx, FIXTURE_APPS, ["--slots", "1", "--partition", "kill"]);
    const r = await client.waitResults(t.expectedOutputIds, { timeoutMs: 30_000 });
    assert.equal(r.statuses[t.expectedOutputIds[0]], "COMPLETED");
    const info = await client.getTask(t.taskId);
    assert.equal(info.status, "COMPLETED");
    assert.equal(info.attempts.length, 2);
    assert.notEqual(info.attempts[0].workerId, info.attempts[1].workerId);
    assert.match(info.attempts[0].error ?? "", /lost/);
    const completions = (await client.listTasks({ filter: { sessionId } })).items.filter(
      (x) => x.status === "COMPLETED",
    );
    assert.equal(completions.length, 1);
  });

  it("retries a method that throws maxRetries times, then ERROR with the error text; an ApplicationError is final", async (ctx) => {
    worker(ctx, FIXTURE_APPS, ["--slots", "1", "--partition", "retry"]);
    const sessionId = await client.createSession({
      applicationName: "testapp",
      partitionId: "retry",
      maxRetries: 2,
    });
    const [t, final] = await client.submitTasks(sessionId, [
      { payload: encodePayload("fail", ["boom-123"]) },
      { payload: encodePayload("appfail", ["bad input"]) },
    ]);
    await client.waitResults([t.expectedOutputIds[0], final.expectedOutputIds[0]], { timeoutMs: 30_000 });
    const info = await client.getTask(t.taskId);
    assert.equal(info.status, "ERROR");
    assert.equal(info.attempts.length, 3);
    assert.match(info.error ?? "", /boom-123/);
    assert.equal((await client.getResult(t.expectedOutputIds[0])).status, "ABORTED");
    const f = await client.getTask(final.taskId);
    assert.equal(f.status, "ERROR");
    assert.equal(f.attempts.length, 1);
    assert.match(f.error ?? "", /bad input/);
  });

  it("stops a task past maxDuration as TIMEOUT, and the same worker then runs another task", async (ctx) => {
    worker(ctx, FIXTURE_APPS, ["--slots", "1", "--partition", "timeout"]);
    const sessionId = await client.createSession({ applicationName: "testapp", partitionId: "timeout" });
    const [spin] = await client.submitTasks(sessionId, [
      { payload: encodePayload("spin", [20_000]), taskOptions: { maxDuration: 400 } },
    ]);
    await client.waitResults(spin.expectedOutputIds, { timeoutMs: 15_000 });
    const info = await client.getTask(spin.taskId);
    assert.equal(info.status, "TIMEOUT");
    assert.equal(info.attempts.length, 1);
    const [echo] = await client.submitTasks(sessionId, [{ payload: encodePayload("echo", ["after"]) }]);
    const r = await client.waitResultsData(echo.expectedOutputIds, { timeoutMs: 15_000 });
    assert.equal(decodeOutput(r.data.get(echo.expectedOutputIds[0])!), "after");
    assert.equal((await client.getTask(echo.taskId)).attempts[0].workerId, info.attempts[0].workerId);
  });

  it("reports an unknown method as ERROR naming what was looked for", async (ctx) => {
    worker(ctx, FIXTURE_APPS, ["--slots", "1", "--partition", "unknown"]);
    const sessionId = await client.createSession({ partitionId: "unknown" });
    const [noMethod] = await client.submitTasks(sessionId, [
      { payload: encodePayload("nosuchmethod"), taskOptions: { applicationName: "testapp" } },
    ]);
    await client.waitResults([noMethod.expectedOutputIds[0]], { timeoutMs: 15_000 });
    const m = await client.getTask(noMethod.taskId);
    assert.equal(m.status, "ERROR");
    assert.match(m.error ?? "", /nosuchmethod/);
  });

  it("routes tasks by application: a task waits for a worker that has its app, and health says so", async (ctx) => {
    // Two workers of one partition with different app paths: each task goes to one that has its app.
    const appsA = mkdtempSync(join(tmpdir(), "zgrid-apps-a-"));
    const appsB = mkdtempSync(join(tmpdir(), "zgrid-apps-b-"));
    ctx.after(() => {
      rmSync(appsA, { recursive: true, force: true });
      rmSync(appsB, { recursive: true, force: true });
    });
    // Modules that import nothing, so that they load from any directory.
    const app = (name: string) =>
      `export function createService() { return {}; }\nexport function call() { return "${name}"; }\n`;
    writeFileSync(join(appsA, "alpha.js"), app("alpha"));
    writeFileSync(join(appsB, "beta.js"), app("beta"));
    const wa = worker(ctx, appsA, ["--slots", "1", "--partition", "routed", "--worker-id", "has-alpha"]);
    await servedBy(server, "routed", 1);
    const sessionId = await client.createSession({ partitionId: "routed" });
    const submit = (app: string, payload: Buffer, version?: string) =>
      client.submitTasks(sessionId, [
        {
          payload,
          taskOptions: { applicationName: app, ...(version ? { applicationVersion: version } : {}) },
        },
      ]);
    const betas = [];
    for (let i = 0; i < 5; i++) betas.push((await submit("beta", encodePayload("x")))[0]);
    const [versioned] = await submit("gamma", encodePayload("x"), "2");
    const alphas = [];
    for (let i = 0; i < 5; i++) alphas.push((await submit("alpha", encodePayload("x")))[0]);
    // The worker without beta runs the alpha tasks and leaves the beta ones queued, not ERROR.
    const ran = await client.waitResultsData(
      alphas.map((t) => t.expectedOutputIds[0]),
      { timeoutMs: 15_000 },
    );
    for (const t of alphas) assert.equal(decodeOutput(ran.data.get(t.expectedOutputIds[0])!), "alpha");
    for (const t of betas) assert.equal((await client.getTask(t.taskId)).status, "SUBMITTED");
    await waitFor(
      () => /beta \(routed, 5 queued\)/.test(server.scheduler.views.health().checks.applications ?? ""),
      10_000,
      "health names the application no worker has",
    );
    assert.equal(server.scheduler.views.health().status, "DEGRADED");
    assert.match(server.scheduler.views.health().checks.applications!, /gamma 2 \(routed, 1 queued\)/);

    // A worker with beta joins: the beta tasks run there and nowhere else.
    worker(ctx, appsB, ["--slots", "1", "--partition", "routed", "--worker-id", "has-beta"]);
    const done = await client.waitResultsData(
      betas.map((t) => t.expectedOutputIds[0]),
      { timeoutMs: 15_000 },
    );
    for (const t of betas) assert.equal(decodeOutput(done.data.get(t.expectedOutputIds[0])!), "beta");
    for (const t of betas) assert.equal((await client.getTask(t.taskId)).attempts[0].workerId, "has-beta");
    for (const t of alphas) assert.equal((await client.getTask(t.taskId)).attempts[0].workerId, "has-alpha");

    // An application deployed into a running worker's app path: it says so (APPS) and is sent the task.
    writeFileSync(join(appsA, "gamma.2.js"), app("gamma 2"));
    const g = await client.waitResultsData([versioned.expectedOutputIds[0]], { timeoutMs: 15_000 });
    assert.equal(decodeOutput(g.data.get(versioned.expectedOutputIds[0])!), "gamma 2");
    assert.equal((await client.getTask(versioned.taskId)).attempts[0].workerId, "has-alpha");
    await waitFor(
      () => server.scheduler.views.health().status === "HEALTHY",
      10_000,
      "health back to HEALTHY",
    );
    await wa.stop();
  });

  it("completes a 20,000-task session", async (ctx) => {
    worker(ctx, EXAMPLE_APPS, ["--slots", "2", "--partition", "bulk"]);
    const sessionId = await client.createSession({ applicationName: "hello", partitionId: "bulk" });
    const outputs: string[] = [];
    for (let b = 0; b < 4; b++) {
      const ts = await client.submitTasks(
        sessionId,
        Array.from({ length: 5000 }, (_, i) => ({ payload: encodePayload("sum", [[b, i]]) })),
      );
      outputs.push(...ts.map((t) => t.expectedOutputIds[0]));
    }
    const r = await client.waitResultsData(outputs, { timeoutMs: 120_000 });
    assert.equal(r.timedOut, false);
    assert.equal(r.data.size, 20_000);
    assert.equal(decodeOutput(r.data.get(outputs[5003])!), 1 + 3);
    const counts = await client.countTasks({ sessionId });
    assert.equal(counts.COMPLETED, 20_000);
  });
});
