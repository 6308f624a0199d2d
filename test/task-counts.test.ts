import assert from "node:assert/strict";
import { setImmediate as nextTurn } from "node:timers/promises";
import { describe, it } from "node:test";
import { createLogger } from "../src/log.js";
import { TASK_STATUSES, type TaskStatus } from "../src/scheduler/model.js";
import { Scheduler, type WorkerLink } from "../src/scheduler/scheduler.js";
import { TaskCounts } from "../src/scheduler/task-counts.js";

/** All statuses at zero but those given. */
function counts(nonZero: Partial<Record<TaskStatus, number>> = {}): Record<TaskStatus, number> {
  return Object.fromEntries(TASK_STATUSES.map((s) => [s, nonZero[s] ?? 0])) as Record<TaskStatus, number>;
}

describe("TaskCounts", () => {
  it("counts tasks by status in all and per partition as they are added, move and are removed", () => {
    const c = new TaskCounts();
    assert.deepEqual(c.totals(), counts());
    assert.deepEqual(c.byPartition(), {});

    c.add("a", "PENDING");
    c.add("a", "PENDING");
    c.add("b", "PENDING");
    c.move("a", "PENDING", "SUBMITTED");
    c.move("b", "PENDING", "SUBMITTED");
    c.move("b", "SUBMITTED", "DISPATCHED");
    c.move("b", "DISPATCHED", "COMPLETED");
    assert.deepEqual(c.totals(), counts({ PENDING: 1, SUBMITTED: 1, COMPLETED: 1 }));
    assert.deepEqual(c.byPartition(), {
      a: counts({ PENDING: 1, SUBMITTED: 1 }),
      b: counts({ COMPLETED: 1 }),
    });

    // A partition stays while it holds a task, zeros included; it goes with its last task.
    c.remove("b", "COMPLETED");
    assert.deepEqual(Object.keys(c.byPartition()), ["a"]);
    c.remove("a", "PENDING");
    assert.deepEqual(c.byPartition().a, counts({ SUBMITTED: 1 }));
    c.move("a", "SUBMITTED", "CANCELLED");
    c.remove("a", "CANCELLED");
    assert.deepEqual(c.byPartition(), {});
    assert.deepEqual(c.totals(), counts());

    // A partition comes back with its next task.
    c.add("b", "RETRIED");
    assert.deepEqual(c.byPartition(), { b: counts({ RETRIED: 1 }) });
  });

  it("hands out copies: changing them changes nothing", () => {
    const c = new TaskCounts();
    c.add("a", "PENDING");
    const totals = c.totals();
    totals.PENDING = 99;
    c.byPartition().a.PENDING = 99;
    assert.equal(c.totals().PENDING, 1);
    assert.equal(c.byPartition().a.PENDING, 1);
    const snapshot = c.totals();
    c.move("a", "PENDING", "SUBMITTED");
    assert.equal(snapshot.PENDING, 1, "a copy taken earlier does not follow later changes");
  });

  it("sums the partitions to the totals", () => {
    const c = new TaskCounts();
    const partitions = ["p0", "p1", "p2"];
    for (let i = 0; i < 300; i++) {
      const p = partitions[i % 3];
      c.add(p, "PENDING");
      c.move(p, "PENDING", "SUBMITTED");
      if (i % 2 === 0) c.move(p, "SUBMITTED", "DISPATCHED");
      if (i % 5 === 0) c.move(p, i % 2 === 0 ? "DISPATCHED" : "SUBMITTED", "ERROR");
    }
    const sum = counts();
    for (const byStatus of Object.values(c.byPartition()))
      for (const s of TASK_STATUSES) sum[s] += byStatus[s];
    assert.deepEqual(sum, c.totals());
    assert.equal(
      Object.values(c.totals()).reduce((a, b) => a + b, 0),
      300,
    );
  });
});

describe("the scheduler's task counts", () => {
  /** Stands in for the worker endpoint (no sockets here): records what the scheduler sends. */
  function fakeLink(): WorkerLink & { sent: string[]; cancelled: string[] } {
    const sent: string[] = [];
    const cancelled: string[] = [];
    return {
      sent,
      cancelled,
      sendTasks: (_w, tasks) => sent.push(...tasks.map((t) => t.id)),
      cancelTasks: (_w, ids) => cancelled.push(...ids),
    };
  }

  it("follows tasks by partition through submission, dispatch, cancellation and session deletion", async () => {
    const scheduler = new Scheduler({ log: createLogger("silent"), maxBatch: 1000 });
    const link = fakeLink();
    scheduler.setLink(link);
    const payload = Buffer.from("x");

    const s1 = scheduler.lifecycle.createSession({}, ["a"]).id;
    const s2 = scheduler.lifecycle.createSession({ partitionId: "b" }, []).id;
    scheduler.submission.submitTasks(s1, {}, [{ payload }, { payload }, { payload }]);
    scheduler.submission.submitTasks(s2, {}, [{ payload }, { payload }]);
    assert.deepEqual(scheduler.views.summary().tasksByPartition, {
      a: counts({ SUBMITTED: 3 }),
      b: counts({ SUBMITTED: 2 }),
    });
    assert.deepEqual(scheduler.views.summary().tasksByStatus, counts({ SUBMITTED: 5 }));

    // One slot on "a": one task of "a" is dispatched, "b" is untouched.
    scheduler.fleet.addWorker({
      id: "w1",
      partitions: ["a"],
      slots: 1,
      capacity: 1,
      host: "test",
      pid: 0,
      columns: false,
      packedPayloads: false,
      apps: null,
    });
    await nextTurn();
    assert.equal(link.sent.length, 1);
    scheduler.fleet.tasksStarted("w1", link.sent);
    assert.deepEqual(scheduler.views.summary().tasksByPartition.a, counts({ SUBMITTED: 2, PROCESSING: 1 }));
    assert.deepEqual(scheduler.views.summary().tasksByPartition.b, counts({ SUBMITTED: 2 }));

    // Cancel and delete session 1: the queued tasks go, the running one stays CANCELLING until its
    // worker answers, so partition "a" keeps one task.
    scheduler.lifecycle.cancelSession(s1);
    assert.deepEqual(link.cancelled, link.sent);
    assert.deepEqual(scheduler.views.summary().tasksByPartition.a, counts({ CANCELLED: 2, CANCELLING: 1 }));
    assert.deepEqual(await scheduler.lifecycle.deleteSession(s1), { tasks: 2, results: 6 });
    assert.deepEqual(scheduler.views.summary().tasksByPartition, {
      a: counts({ CANCELLING: 1 }),
      b: counts({ SUBMITTED: 2 }),
    });
    assert.deepEqual(scheduler.views.summary().tasksByStatus, counts({ SUBMITTED: 2, CANCELLING: 1 }));
    // Once the worker answers, the task of the deleted session goes too: partition "a" is empty.
    scheduler.fleet.completeTasks("w1", [{ taskId: link.sent[0], status: "CANCELLED" }]);
    assert.deepEqual(Object.keys(scheduler.views.summary().tasksByPartition), ["b"]);

    // Deleting session 2 empties partition "b": it is left out.
    scheduler.lifecycle.cancelSession(s2);
    await scheduler.lifecycle.deleteSession(s2);
    assert.deepEqual(Object.keys(scheduler.views.summary().tasksByPartition), []);
    assert.deepEqual(scheduler.views.summary().tasksByStatus, counts({}));
    assert.deepEqual(scheduler.views.tasksByPartition(), {});
  });
});
