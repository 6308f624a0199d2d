import type { Task } from "./model.js";
import type { AttemptStaging } from "./types.js";

/**
 * What running attempts created through their agent (results, uploads, child tasks), held apart until
 * the attempt succeeds: then it is committed as one (`take`); a failed or retried attempt leaves
 * nothing behind (`discard`). A staged result exists only for its attempt and that attempt's children.
 */
export class StagingArea {
  /** task id → what its running attempt created. */
  private readonly byTask = new Map<string, AttemptStaging>();
  /** Results created by attempts still running: invisible to clients until committed. */
  private readonly results = new Set<string>();

  /** What `task`'s running attempt staged, made on its first agent call. */
  of(task: Task): AttemptStaging {
    let st = this.byTask.get(task.id);
    if (!st) {
      st = { results: new Set(), uploads: new Map(), children: [] };
      this.byTask.set(task.id, st);
    }
    return st;
  }

  get(taskId: string): AttemptStaging | undefined {
    return this.byTask.get(taskId);
  }

  has(taskId: string): boolean {
    return this.byTask.has(taskId);
  }

  /** `resultId` was created by the attempt that staged `st`. */
  addResult(st: AttemptStaging, resultId: string): void {
    st.results.add(resultId);
    this.results.add(resultId);
  }

  /** The result was created by an attempt still running. */
  holds(resultId: string): boolean {
    return this.results.size > 0 && this.results.has(resultId);
  }

  /** The result is staged, and not by `parent`'s attempt (whose children may name it). */
  hides(resultId: string, parent: Task | null): boolean {
    return this.holds(resultId) && !(parent && this.byTask.get(parent.id)?.results.has(resultId));
  }

  /** The attempt of `taskId` ended: what it staged, no longer held here (null: nothing). */
  take(taskId: string): AttemptStaging | null {
    const st = this.byTask.get(taskId);
    if (!st) return null;
    this.byTask.delete(taskId);
    for (const id of st.results) this.results.delete(id);
    return st;
  }
}
