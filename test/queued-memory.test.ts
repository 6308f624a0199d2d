import assert from "node:assert/strict";
import { setImmediate as nextTurn } from "node:timers/promises";
import { describe, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createLogger } from "../src/log.js";
import { Residency } from "../src/scheduler/residency.js";
import { Scheduler } from "../src/scheduler/scheduler.js";
import { TaskTable } from "../src/scheduler/task-table.js";
import { MemoryStore } from "../src/store/memory-store.js";
import { TurnClock } from "../src/scheduler/turn-clock.js";
import { DEFAULT_TASK_OPTIONS, NO_ATTEMPTS, TaskRecord, type Task } from "../src/scheduler/model.js";

/** A full collection: `gc`, which --expose-gc gives a new context (as src/gc.ts does). */
function collector(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

describe("memory of queued tasks (issue 12)", () => {
  it("the turn clock gives one time a turn of the event loop, and a new one after it", async () => {
    const clock = new TurnClock();
    const first = clock.now();
    assert.equal(clock.now(), first);
    assert.ok(Math.abs(first - Date.now()) < 60_000, "it is Date.now()");
    // Bounded: the clock must move once the wall clock has (a millisecond passes in a few turns).
    let later = first;
    for (let i = 0; i < 10_000 && later === first; i++) {
      await nextTurn();
      later = clock.now();
    }
    assert.ok(later > first, "a later turn reads the clock again");
  });

  it("a queued task and its output cost at most 472 bytes of heap (no boxed time, no unset run fields of their own)", async () => {
    const gc = collector();
    const tasks = 100_000;
    /** The heap a scheduler holding `tasks` queued tasks costs, per task. */
    const measure = async (): Promise<number> => {
      const scheduler = new Scheduler({ log: createLogger("silent"), maxBatch: 50_000 });
      const sessionId = scheduler.lifecycle.createSession({ partitionId: "nobody" }, []).id;
      const [payload] = scheduler.data.createResults(sessionId, [{ name: "p", data: Buffer.from("x") }]);
      gc();
      gc();
      const before = process.memoryUsage().heapUsed;
      for (let n = 0; n < tasks; n += 50_000)
        scheduler.submission.submitTasks(sessionId, {}, new Array(50_000).fill({ payloadId: payload.id }));
      await nextTurn();
      gc();
      gc();
      assert.equal(scheduler.tasks.size, tasks);
      return (process.memoryUsage().heapUsed - before) / tasks;
    };
    // The least of three: one run in several measures about 2 MB more than the others (484-486 bytes a
    // task, and 501-515 in one run of four to eight on a busy machine, first run or not), which failed
    // this test in an npm test run.
    let perTask = Infinity;
    for (let run = 0; run < 3; run++) perTask = Math.min(perTask, await measure());
    // 452 bytes measured with this Node 20; 486 when a queued task held its worker, start, end, error
    // and attempts in fields of its own (TaskRecord's run); 501-503 when the index by session was a Set;
    // 540-550 when each record kept its times in boxes of their own (16 bytes each: the task's createdAt
    // and submittedAt, the output's createdAt).
    assert.ok(perTask <= 472, `a queued task costs ${Math.round(perTask)} bytes of heap`);
  });

  it("after a burst of 50,000 submitted tasks, once submissions have stopped, the heap is shrunk once", async () => {
    const holds = { staging: () => false, result: () => false };
    const shrinks: number[] = [];
    const quietMs = 200;
    // Two of them with the same quiet time: a timer of the first, had it one, would fire first.
    const small = new Residency(new TaskTable(), new MemoryStore(), holds, 0, () => shrinks.push(1), quietMs);
    const burst = new Residency(new TaskTable(), new MemoryStore(), holds, 0, () => shrinks.push(2), quietMs);
    small.submitted(49_999);
    const started = performance.now();
    burst.submitted(20_000);
    burst.submitted(30_000);
    burst.submitted(10_000);
    for (let i = 0; i < 200 && shrinks.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    assert.deepEqual(shrinks, [2], "one shrink, of the burst only");
    assert.ok(performance.now() - started >= quietMs - 5, "not before the burst was quiet");
    // Counted afresh: 49,999 more are not a burst, one more is.
    small.submitted(1);
    for (let i = 0; i < 200 && shrinks.length === 1; i++) await new Promise((r) => setTimeout(r, 25));
    assert.deepEqual(shrinks, [2, 1]);
  });

  it("a TaskRecord reads and writes every field of a Task; TaskRecord.of copies a stored task whole", () => {
    const fields = (t: Task): Record<string, unknown> => ({
      id: t.id,
      sessionId: t.sessionId,
      payloadId: t.payloadId,
      expectedOutputIds: t.expectedOutputIds,
      dataDependencies: t.dataDependencies,
      options: t.options,
      status: t.status,
      seq: t.seq,
      createdAt: t.createdAt,
      submittedAt: t.submittedAt,
      startedAt: t.startedAt,
      endedAt: t.endedAt,
      createdBy: t.createdBy,
      parentTaskId: t.parentTaskId,
      error: t.error,
      attempts: t.attempts,
      remainingDeps: t.remainingDeps,
      workerId: t.workerId,
    });
    const queued = new TaskRecord("t1", "s1", "r1", ["r2"], [], DEFAULT_TASK_OPTIONS, 5, "alice", null);
    assert.deepEqual(
      [queued.workerId, queued.startedAt, queued.endedAt, queued.error, queued.attempts],
      [null, null, null, null, NO_ATTEMPTS],
    );
    queued.workerId = null;
    queued.error = null;
    queued.attempts = NO_ATTEMPTS;
    // Writing null to a queued task's unset fields makes no run record for them.
    assert.match(JSON.stringify(queued), /"run":null/);
    const attempt = {
      number: 1,
      workerId: "w1",
      queuedAt: 5,
      dispatchedAt: 6,
      startedAt: 7,
      endedAt: 9,
      status: "COMPLETED",
      error: null,
    };
    const stored: Task = {
      ...fields(queued),
      status: "ERROR",
      seq: 42,
      submittedAt: 6,
      startedAt: 7,
      endedAt: 9,
      error: "boom",
      attempts: [attempt],
      remainingDeps: 1,
      workerId: "w1",
    } as Task;
    const copy = TaskRecord.of(stored);
    assert.ok(copy instanceof TaskRecord);
    assert.deepEqual(fields(copy), fields(stored));
    assert.equal(TaskRecord.of(copy), copy, "a record is not copied again");
    copy.workerId = null;
    copy.startedAt = null;
    assert.deepEqual([copy.workerId, copy.startedAt, copy.endedAt, copy.error], [null, null, 9, "boom"]);
  });
});
