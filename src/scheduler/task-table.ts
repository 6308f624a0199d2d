import { IdMap } from "./id-map.js";
import { IdGenerator } from "./ids.js";
import type { Result, Session, Task } from "./model.js";
import { TaskCounts } from "./task-counts.js";
import { PartitionQueue } from "./task-queue.js";
import type { WorkerState } from "./types.js";

/**
 * The records the scheduler holds in memory and the indexes over them: sessions, results and tasks by
 * id, the tasks of each session, the queue of each partition, the workers, and the task counts. Every
 * other part of the scheduler reads and changes them here; what is not here is in the store. Holds no
 * rule of the grid (who may change what, and when): that is the scheduler's.
 */
export class TaskTable {
  /** What makes the ids of this process's records (the tables below find them by it). */
  readonly ids = new IdGenerator();
  readonly sessions = new Map<string, Session>();
  readonly results = new IdMap<Result>(this.ids, "r");
  readonly tasks = new IdMap<Task>(this.ids, "t");
  readonly workers = new Map<string, WorkerState>();
  /** partition → its tasks no worker holds yet. */
  readonly queues = new Map<string, PartitionQueue>();
  /** Tasks by partition and status, the finished ones in the store included. */
  readonly counts = new TaskCounts();
  /** The same counts by session (its id in place of a partition's): `tasks.count` of whole sessions. */
  readonly sessionCounts = new TaskCounts();
  /**
   * session id → its tasks in memory, in submission order: the index of filters naming a session. An
   * array, 8 bytes a task where a Set took 20 (20 MB of a million queued tasks): a task that leaves stays
   * in it, skipped, until those that left are half of it and it is compacted (so that a session keeps
   * no more records that left than it holds, and none once its last task left).
   */
  private readonly bySession = new Map<string, { tasks: Task[]; left: number }>();

  /** The queue of `partitionId`, made on first use. */
  queue(partitionId: string): PartitionQueue {
    let q = this.queues.get(partitionId);
    if (!q) {
      q = new PartitionQueue(partitionId);
      this.queues.set(partitionId, q);
    }
    return q;
  }

  /**
   * `task` is held in memory from now on: found by id and by its session. Each record is held once: a
   * task submitted or loaded at a start (a task that left and comes back is a new record).
   */
  holdTask(task: Task): void {
    this.tasks.set(task.id, task);
    const index = this.bySession.get(task.sessionId);
    if (index) index.tasks.push(task);
    else this.bySession.set(task.sessionId, { tasks: [task], left: 0 });
  }

  /** `task` leaves memory: its record is the store's, or it is gone. */
  releaseTask(task: Task): void {
    this.tasks.delete(task.id);
    const index = this.bySession.get(task.sessionId);
    if (!index) return;
    index.left++;
    if (index.left * 2 >= index.tasks.length) {
      index.tasks = index.tasks.filter((t) => this.holds(t));
      index.left = 0;
      if (index.tasks.length === 0) this.bySession.delete(task.sessionId);
    }
  }

  /** Whether `task` is the record held in memory under its id. */
  private holds(task: Task): boolean {
    return this.tasks.get(task.id) === task;
  }

  /** The session left: its index entry goes (its tasks were released one by one, or by id). */
  releaseSession(sessionId: string): void {
    this.bySession.delete(sessionId);
  }

  /** Tasks of a session held in memory (all its unfinished ones), in submission order. */
  sessionTasks(sessionId: string): Task[] {
    const index = this.bySession.get(sessionId);
    return index ? index.tasks.filter((t) => this.holds(t)) : [];
  }

  /**
   * The tasks held in memory a filter may match (every unfinished one is): those of the sessions it
   * names (by the index), else all, each in submission order. A task that leaves while a scan is
   * between slices is not visited after it left.
   */
  *liveTasksOf(sessionIds: readonly string[] | null): Generator<Task> {
    if (sessionIds === null) {
      yield* this.tasks.values();
      return;
    }
    for (const id of new Set(sessionIds)) {
      const tasks = this.bySession.get(id)?.tasks;
      if (!tasks) continue;
      // By index: tasks held meanwhile are visited too (compaction makes a new array: not those).
      for (let i = 0; i < tasks.length; i++) if (this.holds(tasks[i])) yield tasks[i];
    }
  }

  /** Tasks of a partition no slot runs yet: in its queue, or sent to a worker and not STARTED. */
  backlog(partitionId: string, q: PartitionQueue): number {
    return q.size + this.counts.of(partitionId, "DISPATCHED");
  }

  /** Slots of a worker running a task (PROCESSING), not counting the tasks it prefetched. */
  busySlots(w: WorkerState): number {
    let n = 0;
    for (const t of w.inflight.values()) if (t.status === "PROCESSING") n++;
    return Math.min(w.slots, n);
  }
}
