/**
 * The task table's index of tasks by session (issue 12): an array a session, whose tasks that left
 * memory are skipped and then compacted away, and which keeps submission order.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Task } from "../src/scheduler/model.js";
import { TaskTable } from "../src/scheduler/task-table.js";

/** A record with what the index reads (id, session): the table holds it as a task. */
function task(id: string, sessionId: string): Task {
  return { id, sessionId } as unknown as Task;
}

const ids = (tasks: Iterable<Task>): string[] => [...tasks].map((t) => t.id);

describe("TaskTable: tasks by session", () => {
  it("gives a session's held tasks in submission order, through releases and compactions", () => {
    const table = new TaskTable();
    const a = Array.from({ length: 300 }, (_, i) => task(`a${i}`, "A"));
    const b = Array.from({ length: 10 }, (_, i) => task(`b${i}`, "B"));
    for (let i = 0; i < 300; i++) {
      table.holdTask(a[i]);
      if (i < 10) table.holdTask(b[i]);
    }
    // Every even task of A leaves, then most of the odd ones: compactions happen on the way.
    for (let i = 0; i < 300; i += 2) table.releaseTask(a[i]);
    assert.deepEqual(
      table.sessionTasks("A").map((t) => t.id),
      a.filter((_, i) => i % 2 === 1).map((t) => t.id),
    );
    for (let i = 1; i < 280; i += 2) table.releaseTask(a[i]);
    assert.deepEqual(ids(table.sessionTasks("A")), [
      "a281",
      "a283",
      "a285",
      "a287",
      "a289",
      "a291",
      "a293",
      "a295",
      "a297",
      "a299",
    ]);
    assert.deepEqual(ids(table.liveTasksOf(["B", "A", "B"])), [...ids(b), ...ids(table.sessionTasks("A"))]);
    assert.equal(table.tasks.size, 20);
    // A session's last task leaves: nothing listed, and a new task is indexed again.
    for (let i = 281; i < 300; i += 2) table.releaseTask(a[i]);
    assert.deepEqual(table.sessionTasks("A"), []);
    table.holdTask(task("a300", "A"));
    assert.deepEqual(ids(table.sessionTasks("A")), ["a300"]);
    assert.deepEqual(table.sessionTasks("nobody"), []);
  });

  it("keeps no more records that left than a session holds, and none once all left", () => {
    const table = new TaskTable();
    const index = (id: string) =>
      (table as unknown as { bySession: Map<string, { tasks: Task[] }> }).bySession.get(id);
    // Many small sessions whose tasks all leave (finished, out of memory): nothing of them stays.
    for (let s = 0; s < 100; s++) {
      const tasks = Array.from({ length: 10 }, (_, i) => task(`s${s}t${i}`, `S${s}`));
      for (const t of tasks) table.holdTask(t);
      for (const t of tasks) table.releaseTask(t);
      assert.equal(index(`S${s}`), undefined, `session S${s} still indexes records that left`);
    }
    const b = Array.from({ length: 10 }, (_, i) => task(`b${i}`, "B"));
    for (const t of b) table.holdTask(t);
    for (const t of b.slice(0, 9)) table.releaseTask(t);
    assert.ok(index("B")!.tasks.length <= 2, `${index("B")!.tasks.length} records kept for one task held`);
    assert.deepEqual(ids(table.sessionTasks("B")), ["b9"]);
  });

  it("a listing between slices skips what left and sees what came", () => {
    const table = new TaskTable();
    const a = Array.from({ length: 5 }, (_, i) => task(`a${i}`, "A"));
    for (const t of a) table.holdTask(t);
    const seen: string[] = [];
    for (const t of table.liveTasksOf(["A"])) {
      seen.push(t.id);
      if (t.id === "a1") {
        table.releaseTask(a[2]);
        table.holdTask(task("a5", "A"));
      }
    }
    assert.deepEqual(seen, ["a0", "a1", "a3", "a4", "a5"]);
  });
});
