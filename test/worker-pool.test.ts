/**
 * The executor pool and application loading, with real worker threads and the fixture applications in
 * test/fixtures/apps (no server needed).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { pack, unpack } from "msgpackr";
import { encode } from "../src/protocol/codec.js";
import type { WireTaskOptions } from "../src/protocol/worker-messages.js";
import { ExecutorPool, type PoolCompletion } from "../src/worker/executor-pool.js";

const FIXTURES = fileURLToPath(new URL("../../test/fixtures/apps/", import.meta.url));
const EXAMPLES = fileURLToPath(new URL("../../examples/apps/", import.meta.url));

interface TaskSpec {
  app?: string;
  method?: string;
  args?: unknown[];
  payload?: Uint8Array;
  sessionId?: string;
  options?: WireTaskOptions;
}

/** A pool plus what it reported, with waits that give up after a bounded time. */
class PoolHarness {
  readonly pool: ExecutorPool;
  readonly started = new Set<string>();
  readonly results = new Map<string, PoolCompletion>();
  private waiters: (() => void)[] = [];
  private next = 1;

  constructor(appPath: string, slots: number, threadMemoryLimitMb?: number) {
    this.pool = new ExecutorPool({
      appPath,
      slots,
      threadMemoryLimitMb,
      onStarted: (ids) => {
        for (const id of ids) this.started.add(id);
        this.wake();
      },
      onDone: (results) => {
        for (const r of results) {
          assert.ok(!this.results.has(r.taskId), `task ${r.taskId} reported twice`);
          this.results.set(r.taskId, r);
        }
        this.wake();
      },
    });
    this.pool.start();
  }

  submit(spec: TaskSpec): string {
    const taskId = `task-${this.next++}`;
    const payload = spec.payload ?? encode({ method: spec.method ?? "echo", args: pack(spec.args ?? []) });
    this.pool.submit([
      {
        task: {
          taskId,
          sessionId: spec.sessionId ?? "session-1",
          payloadId: `payload-${taskId}`,
          dataDependencies: [],
          expectedOutputIds: [`output-${taskId}`],
          options: { applicationName: spec.app ?? "testapp", ...spec.options },
          attempt: 1,
        },
        payload,
      },
    ]);
    return taskId;
  }

  // The default waits are bounds on a hang, generous for a loaded machine, not expected figures.
  async result(taskId: string, timeoutMs = 15_000): Promise<PoolCompletion> {
    await this.until(() => this.results.has(taskId), timeoutMs, `no result for ${taskId}`);
    return this.results.get(taskId)!;
  }

  /** Submits one task and waits for its result. */
  async run(spec: TaskSpec, timeoutMs = 15_000): Promise<PoolCompletion> {
    return this.result(this.submit(spec), timeoutMs);
  }

  async until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  stop(): Promise<void> {
    return this.pool.stop(2000);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

function output(r: PoolCompletion): unknown {
  assert.ok(r.output, `task ${r.taskId} has no output (${r.status} ${r.error ?? ""})`);
  return unpack(r.output);
}

describe("executor pool: examples", () => {
  let h: PoolHarness;
  before(() => (h = new PoolHarness(EXAMPLES, 2)));
  after(() => h.stop());

  test("hello sums a list of numbers", async () => {
    const r = await h.run({ app: "hello", method: "sum", args: [[1, 2, 3, 4.5]] });
    assert.equal(r.status, "COMPLETED", r.error);
    assert.equal(output(r), 10.5);
    assert.ok(h.started.has(r.taskId), "STARTED reported");
  });

  test("hello also takes the numbers spread, and noop returns nil", async () => {
    assert.equal(output(await h.run({ app: "hello", method: "sum", args: [1, 2, 3] })), 6);
    assert.equal(output(await h.run({ app: "hello", method: "noop" })), null);
  });

  test("echo and addition", async () => {
    assert.deepEqual(output(await h.run({ app: "echo", method: "echo", args: [{ a: [1, "x"] }] })), {
      a: [1, "x"],
    });
    assert.equal(output(await h.run({ app: "addition", method: "add", args: [2, 40] })), 42);
    const bad = await h.run({ app: "addition", method: "add", args: ["2", 40] });
    assert.equal(bad.status, "ERROR");
    assert.match(bad.error ?? "", /add takes two numbers/);
  });

  test("many short tasks all complete, each once", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2000; i++) ids.push(h.submit({ app: "hello", method: "sum", args: [[i, 1]] }));
    await h.until(() => ids.every((id) => h.results.has(id)), 30_000, "2000 tasks");
    ids.forEach((id, i) => assert.equal(output(h.results.get(id)!), i + 1));
  });
});

describe("executor pool: application loading and outcomes", () => {
  let h: PoolHarness;
  before(() => (h = new PoolHarness(FIXTURES, 2)));
  after(() => h.stop());

  test("ServiceBase dispatches to the method of the same name", async () => {
    assert.deepEqual(output(await h.run({ method: "echo", args: [[1, 2]] })), [1, 2]);
    assert.equal(output(await h.run({ method: "echo", args: ["just one"] })), "just one");
  });

  test("unknown method: ERROR listing the methods the service has", async () => {
    const r = await h.run({ method: "nope" });
    assert.equal(r.status, "ERROR");
    assert.equal(
      r.error,
      'method "nope" not found on service TestService: it has agentInfo, appfail, crash, echo, fail, hog, sleep, spin, throwOutside, whoami',
    );
    // Private (_) and lifecycle methods are not task methods.
    for (const method of ["_hidden", "destroy", "enterSession", "constructor", "toString"]) {
      const other = await h.run({ method });
      assert.equal(other.status, "ERROR", method);
      assert.match(other.error ?? "", /not found on service TestService/);
    }
  });

  test("unknown application: ERROR naming the files looked for", async () => {
    const r = await h.run({ app: "nosuchapp", options: { applicationVersion: "2" } });
    assert.equal(r.status, "ERROR");
    assert.equal(
      r.error,
      `application "nosuchapp" version "2" not found: looked for ${join(FIXTURES, "nosuchapp.2.js")} and ${join(FIXTURES, "nosuchapp.js")}`,
    );
    const plain = await h.run({ app: "nosuchapp" });
    assert.equal(
      plain.error,
      `application "nosuchapp" not found: looked for ${join(FIXTURES, "nosuchapp.js")}`,
    );
  });

  test("no application name, or one that is a path: ERROR", async () => {
    const none = await h.run({ app: "" });
    assert.equal(none.status, "ERROR");
    assert.match(none.error ?? "", /names no application/);
    const path = await h.run({ app: "../apps/testapp" });
    assert.equal(path.status, "ERROR");
    assert.match(path.error ?? "", /invalid application name/);
  });

  test("NAME.VER.js is preferred over NAME.js, which is the fallback", async () => {
    assert.equal(output(await h.run({ app: "versioned", options: { applicationVersion: "2" } })), "v2");
    assert.equal(output(await h.run({ app: "versioned", options: { applicationVersion: "3" } })), "plain");
    assert.equal(output(await h.run({ app: "versioned" })), "plain");
  });

  test("a module without createService: ERROR saying so", async () => {
    const r = await h.run({ app: "nocreate" });
    assert.equal(r.status, "ERROR");
    assert.match(r.error ?? "", /nocreate\.js does not export createService/);
  });

  test("a payload that is not { method, args }: ERROR", async () => {
    const r = await h.run({ payload: encode([1, 2, 3]) });
    assert.equal(r.status, "ERROR");
    assert.match(
      r.error ?? "",
      /payload must be a msgpack map \{ method: string, args: binary \}, got an array/,
    );
    const garbage = await h.run({ payload: new Uint8Array([0x82, 0xa1]) });
    assert.equal(garbage.status, "ERROR");
    assert.match(garbage.error ?? "", /not valid msgpack/);
  });

  test("a plain thrown Error: FAILED (retryable) with the message and where", async () => {
    const r = await h.run({ method: "fail", args: ["boom"] });
    assert.equal(r.status, "FAILED");
    assert.match(r.error ?? "", /^boom \(at TestService\.fail \(.*testapp\.js:\d+:\d+\)\)$/);
  });

  test("an ApplicationError: ERROR (final) with its message", async () => {
    const r = await h.run({ method: "appfail", args: ["bad input"] });
    assert.equal(r.status, "ERROR");
    assert.equal(r.error, "bad input");
  });

  test("the agent describes the running task", async () => {
    const id = h.submit({ method: "agentInfo", sessionId: "session-agent" });
    const info = output(await h.result(id)) as Record<string, unknown>;
    assert.deepEqual(info, {
      taskId: id,
      sessionId: "session-agent",
      expectedOutputIds: [`output-${id}`],
      dataDependencies: [],
      attempt: 1,
      session: { sessionId: "session-agent" },
    });
  });

  test("application code runs off the main thread", async () => {
    const who = output(await h.run({ method: "whoami" })) as { pid: number; threadId: number };
    assert.equal(who.pid, process.pid);
    assert.notEqual(who.threadId, 0);
  });
});

describe("executor pool: stopping tasks and threads", () => {
  test("maxDuration exceeded: TIMEOUT, and the pool then runs other tasks, queued ones included", async () => {
    const h = new PoolHarness(FIXTURES, 1);
    try {
      const t0 = Date.now();
      const slow = h.submit({ method: "spin", args: [20000], options: { maxDuration: 200 } });
      // On one thread, these queue behind the spinning task.
      const behind = [h.submit({ method: "echo", args: [1] }), h.submit({ method: "echo", args: [2] })];
      const r = await h.result(slow, 10_000);
      assert.equal(r.status, "TIMEOUT");
      assert.match(r.error ?? "", /exceeded its maxDuration of 200 ms/);
      // Far below the 20 s of the spin, and generous for a loaded machine (about 200 ms expected).
      assert.ok(Date.now() - t0 < 10_000, "stopped promptly");
      assert.equal(output(await h.result(behind[0])), 1);
      assert.equal(output(await h.result(behind[1])), 2);
      assert.equal(output(await h.run({ method: "echo", args: ["after"] })), "after");
      // A task within its limit is left alone.
      const ok = await h.run({ method: "sleep", args: [50], options: { maxDuration: 2000 } });
      assert.equal(ok.status, "COMPLETED");
    } finally {
      await h.stop();
    }
  });

  test("a thread that exits: FAILED with the reason, and a new thread takes over", async () => {
    const h = new PoolHarness(FIXTURES, 1);
    try {
      const before = output(await h.run({ method: "whoami" })) as { threadId: number };
      const r = await h.run({ method: "crash" });
      assert.equal(r.status, "FAILED");
      assert.match(r.error ?? "", /worker thread running the task died: exited with code 3/);
      const afterCrash = output(await h.run({ method: "whoami" })) as { threadId: number };
      assert.notEqual(afterCrash.threadId, before.threadId);
    } finally {
      await h.stop();
    }
  });

  test("an error thrown outside the task's promise kills the thread: FAILED, pool keeps working", async () => {
    const h = new PoolHarness(FIXTURES, 1);
    try {
      const r = await h.run({ method: "throwOutside", args: ["stray"] });
      assert.equal(r.status, "FAILED");
      assert.match(r.error ?? "", /died: Error: stray/);
      assert.equal(output(await h.run({ method: "echo", args: [3] })), 3);
    } finally {
      await h.stop();
    }
  });

  test("a thread out of memory: FAILED, the host process lives on", async () => {
    const h = new PoolHarness(FIXTURES, 1, 32);
    try {
      const r = await h.run({ method: "hog" }, 20000);
      assert.equal(r.status, "FAILED");
      assert.match(r.error ?? "", /died: .*memory/i);
      assert.equal(output(await h.run({ method: "echo", args: ["alive"] })), "alive");
    } finally {
      await h.stop();
    }
  });

  test("cancel of a running task: CANCELLED without waiting for the task, thread replaced", async () => {
    const h = new PoolHarness(FIXTURES, 1);
    try {
      const spinning = h.submit({ method: "spin", args: [20000] });
      await h.until(() => h.started.has(spinning), 15_000, "spin started");
      assert.equal(h.pool.cancel([spinning], "cancelled: by test"), 1);
      // Both bounds are far below the 20 s the spin would take, and generous for a loaded machine
      // (well under a second expected): CANCELLED does not wait for the task, nor does the next task on
      // the one slot, which a fresh thread takes.
      const r = await h.result(spinning, 10_000);
      assert.equal(r.status, "CANCELLED");
      assert.equal(output(await h.run({ method: "echo", args: ["still here"] }, 10_000)), "still here");
    } finally {
      await h.stop();
    }
  });

  test("cancel of a queued task: dropped and CANCELLED; the running one is not disturbed", async () => {
    const h = new PoolHarness(FIXTURES, 1);
    try {
      const running = h.submit({ method: "sleep", args: [300] });
      const queued = h.submit({ method: "echo", args: ["never"] });
      await h.until(() => h.started.has(running), 15_000, "sleep started");
      h.pool.cancel([queued]);
      assert.equal((await h.result(queued, 1000)).status, "CANCELLED");
      assert.equal(output(await h.result(running)), 300);
      assert.equal(h.pool.cancel(["task-unknown"]), 0);
      assert.equal(h.pool.held, 0);
    } finally {
      await h.stop();
    }
  });
});

describe("executor pool: reporting", () => {
  test("a result is not held back by a long task batched behind it", async () => {
    const h = new PoolHarness(FIXTURES, 1);
    try {
      // Short tasks first, so the pool batches generously.
      const warm: string[] = [];
      for (let i = 0; i < 200; i++) warm.push(h.submit({ method: "echo", args: [i] }));
      await h.until(() => warm.every((id) => h.results.has(id)), 15_000, "warm-up");
      const quick = h.submit({ method: "echo", args: ["quick"] });
      const slow = h.submit({ method: "sleep", args: [20_000] });
      // Held back, the quick result and the slow task's STARTED would come with the slow result, 20 s on:
      // both must come while the slow task still runs (the bounds are generous for a loaded machine).
      assert.equal(output(await h.result(quick, 10_000)), "quick");
      await h.until(() => h.started.has(slow), 10_000, "STARTED of the slow task");
      assert.ok(!h.results.has(slow), "the slow task still runs");
      h.pool.cancel([slow]);
    } finally {
      await h.stop();
    }
  });
});

describe("executor pool: mixed load", () => {
  test("every task is reported exactly once through timeouts, crashes and cancels", async () => {
    const h = new PoolHarness(FIXTURES, 3);
    try {
      const ids: string[] = [];
      const kinds = ["echo", "sleep", "spin", "fail", "timeout", "crash", "cancel"] as const;
      const want = new Map<string, string>();
      for (let i = 0; i < 300; i++) {
        const kind = kinds[i % kinds.length];
        let id: string;
        switch (kind) {
          case "echo":
            id = h.submit({ method: "echo", args: [i] });
            break;
          case "sleep":
            id = h.submit({ method: "sleep", args: [i % 5] });
            break;
          case "spin":
            id = h.submit({ method: "spin", args: [1] });
            break;
          case "fail":
            id = h.submit({ method: "fail", args: ["f"] });
            break;
          case "timeout":
            id = h.submit({ method: "spin", args: [5000], options: { maxDuration: 30 } });
            break;
          case "crash":
            // One in three: the others are plain echo tasks (see below).
            id = i % 21 === 5 ? h.submit({ method: "crash" }) : h.submit({ method: "echo", args: [i] });
            break;
          case "cancel":
            id = h.submit({ method: "sleep", args: [5000] });
            break;
        }
        ids.push(id);
        want.set(id, kind === "crash" && i % 21 !== 5 ? "echo" : kind);
        if (i % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 2));
      }
      // Cancel the long sleepers, some queued, some running.
      h.pool.cancel(ids.filter((id) => want.get(id) === "cancel"));
      await h.until(() => ids.every((id) => h.results.has(id)), 60_000, "300 mixed tasks");
      const expected: Record<string, string[]> = {
        echo: ["COMPLETED"],
        sleep: ["COMPLETED"],
        spin: ["COMPLETED"],
        fail: ["FAILED"],
        timeout: ["TIMEOUT"],
        crash: ["FAILED"],
        cancel: ["CANCELLED"],
      };
      for (const id of ids) {
        const r = h.results.get(id)!;
        assert.ok(
          expected[want.get(id)!].includes(r.status),
          `${want.get(id)} task ${id}: ${r.status} ${r.error}`,
        );
        if (want.get(id) === "crash") assert.match(r.error ?? "", /worker thread running the task died/, id);
      }
      assert.ok([...want.values()].filter((k) => k === "crash").length >= 10, "crashes among the tasks");
      assert.equal(h.pool.held, 0);
      assert.equal(output(await h.run({ method: "echo", args: ["end"] })), "end");
    } finally {
      await h.stop();
    }
  });
});

describe("executor pool: raw lifecycle", () => {
  test("services are created once, sessions entered and left in turn, everything torn down at stop", async () => {
    const dir = mkdtempSync(join(tmpdir(), "zgrid-rawapp-"));
    const logFile = join(dir, "lifecycle.log");
    process.env.ZGRID_RAWAPP_LOG = logFile; // threads copy the environment when they start
    const h = new PoolHarness(FIXTURES, 1);
    try {
      const service = { applicationService: "svc", applicationNamespace: "ns" };
      const raw = await h.run({
        app: "rawapp",
        method: "raw",
        args: ["x"],
        sessionId: "s1",
        options: service,
      });
      assert.equal(raw.status, "COMPLETED", raw.error);
      assert.deepEqual(raw.output && [...raw.output], [...pack(["x"])], "bytes returned as they are");
      const nothing = await h.run({ app: "rawapp", method: "nothing", sessionId: "s1", options: service });
      assert.equal(nothing.status, "COMPLETED");
      assert.equal(nothing.output, undefined);
      const obj = await h.run({ app: "rawapp", method: "object", sessionId: "s2", options: service });
      assert.deepEqual(output(obj), { calls: 3, namespace: "ns", taskId: obj.taskId });
      const thrown = await h.run({ app: "rawapp", method: "other", sessionId: "s2", options: service });
      assert.equal(thrown.status, "FAILED");
      assert.match(thrown.error ?? "", /rawapp has no method other/);
    } finally {
      await h.stop();
      delete process.env.ZGRID_RAWAPP_LOG;
    }
    try {
      assert.deepEqual(readFileSync(logFile, "utf8").trim().split("\n"), [
        "create svc ns",
        "enter svc s1",
        "call svc s1 raw",
        "call svc s1 nothing",
        "leave svc s1",
        "enter svc s2",
        "call svc s2 object",
        "call svc s2 other",
        "leave svc s2",
        "destroy svc",
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
