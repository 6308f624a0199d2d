/**
 * Exactly-once checks for tests that put a grid through faults: every task of a run completed, with the
 * output expected, by one COMPLETED attempt only (test/multi-host.test.ts; the store and standby tests to
 * come can use them as well).
 */
import assert from "node:assert/strict";
import { unpack } from "msgpackr";
import type { ZgridClient } from "../src/client/client.js";
import type { TaskInfo } from "../src/client/types.js";

/** Every task of a session, with its attempts. */
export async function sessionTasks(client: ZgridClient, sessionId: string): Promise<TaskInfo[]> {
  const tasks: TaskInfo[] = [];
  for (let page = 0; ; page++) {
    const { items, total } = await client.listTasks({ filter: { sessionId }, page, pageSize: 10_000 });
    tasks.push(...items);
    if (tasks.length >= total || items.length === 0) return tasks;
  }
}

/** What a run of tasks came to: anything but zeros in the first three is a failure. */
export interface Tally {
  notCompleted: number;
  wrongOutput: number;
  completedTwice: number;
  /** Completed attempts by worker id. */
  byWorker: Map<string, number>;
  tasks: TaskInfo[];
}

/**
 * Waits for every output, then checks each task: COMPLETED, its output the one expected, one COMPLETED
 * attempt only.
 */
export async function tally(
  client: ZgridClient,
  sessionId: string,
  expected: Map<string, unknown>,
  timeoutMs: number,
): Promise<Tally> {
  const t: Tally = { notCompleted: 0, wrongOutput: 0, completedTwice: 0, byWorker: new Map(), tasks: [] };
  const ids = [...expected.keys()];
  for (let from = 0; from < ids.length; from += 2000) {
    const chunk = ids.slice(from, from + 2000);
    const r = await client.waitResultsData(chunk, { timeoutMs });
    for (const id of chunk) {
      const data = r.data.get(id);
      if (r.statuses[id] !== "COMPLETED" || data === undefined) t.notCompleted++;
      else if (unpack(data) !== expected.get(id)) t.wrongOutput++;
    }
  }
  t.tasks = await sessionTasks(client, sessionId);
  assert.equal(t.tasks.length, expected.size, "every task submitted is listed");
  for (const task of t.tasks) {
    if (task.status !== "COMPLETED") t.notCompleted++;
    const done = task.attempts.filter((a) => a.status === "COMPLETED");
    if (done.length > 1) t.completedTwice++;
    for (const a of done) t.byWorker.set(a.workerId, (t.byWorker.get(a.workerId) ?? 0) + 1);
  }
  return t;
}
