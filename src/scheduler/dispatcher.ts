import type { Task } from "./model.js";
import type { AppQueue, PartitionQueue } from "./task-queue.js";
import type { TaskTable } from "./task-table.js";
import type { WorkerLink, WorkerState } from "./types.js";

/**
 * A worker is given about as many tasks as it finishes in this window (design §11): no-op tasks stream
 * in large batches, long ones never wait behind each other on one host while a slot elsewhere is idle.
 */
const CREDIT_WINDOW_MS = 50;
/** Weight of the newest run time in a worker's moving average. */
const RUN_TIME_WEIGHT = 0.2;
/**
 * About how many bytes of inline payloads a worker may hold beyond its slots: credit for short tasks
 * with large payloads is cut to fit, so prefetching never costs either side more than this.
 */
const PREFETCH_PAYLOAD_BYTES = 64 * 1024 * 1024;
/** Payloads up to this size travel inside TASKS; larger ones are fetched by the worker. */
export const INLINE_PAYLOAD_BYTES = 1024 * 1024;

/**
 * Dispatch and credit: fills each worker's free capacity from the queues of its partitions, highest
 * priority first, in one batch a worker, coalesced into one pass a turn of the event loop. How much a
 * worker may hold follows how fast it finishes tasks (credit()). What a dispatched task becomes (its
 * attempt and status) is the scheduler's: `assign`.
 */
export class Dispatcher {
  private link: WorkerLink | null = null;
  private scheduled = false;
  private readonly run = (): void => this.dispatch();

  constructor(
    private readonly table: TaskTable,
    /** `task` goes to worker `w` at `now`: its new attempt, its status, the worker's inflight set. */
    private readonly assign: (task: Task, w: WorkerState, now: number) => void,
  ) {}

  /** How tasks and cancellations reach workers (the worker endpoint); nothing is sent before. */
  setLink(link: WorkerLink): void {
    this.link = link;
  }

  /** Tells a worker to stop these tasks. */
  cancel(workerId: string, taskIds: string[], reason: string): void {
    this.link?.cancelTasks(workerId, taskIds, reason);
  }

  /** An attempt ran `ms` on worker `w` (from its start on a slot): the worker's credit follows. */
  ranFor(w: WorkerState, ms: number): void {
    w.avgTaskMs = w.avgTaskMs === null ? ms : w.avgTaskMs + RUN_TIME_WEIGHT * (ms - w.avgTaskMs);
  }

  /** Something changed that may let a worker take tasks: one pass runs at the next turn of the loop. */
  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.run);
  }

  /** Fills every worker's free capacity from the queues of its partitions, highest priority first. */
  private dispatch(): void {
    this.scheduled = false;
    if (!this.link) return;
    const now = Date.now();
    for (const w of this.table.workers.values()) {
      let free = this.credit(w) - w.inflight.size;
      if (free <= 0) continue;
      let batch: Task[] | null = null;
      let batchBytes = 0;
      while (free > 0 && batchBytes < PREFETCH_PAYLOAD_BYTES) {
        let best: PartitionQueue | null = null;
        let bestApp: AppQueue | null = null;
        let bestPriority = -Infinity;
        for (const p of w.partitions) {
          const q = this.table.queues.get(p);
          if (!q || q.size === 0) continue;
          const app = q.next(w.apps);
          if (!app) continue;
          const top = app.topPriority();
          if (top > bestPriority) {
            best = q;
            bestApp = app;
            bestPriority = top;
          }
        }
        if (!best || !bestApp) break;
        const task = best.popFrom(bestApp)!;
        this.assign(task, w, now);
        (batch ??= []).push(task);
        free--;
        const size = this.table.results.get(task.payloadId)?.size ?? 0;
        if (size <= INLINE_PAYLOAD_BYTES) batchBytes += size;
      }
      if (batch) {
        const mean = batchBytes / batch.length;
        w.avgPayloadBytes =
          w.avgPayloadBytes === 0 ? mean : w.avgPayloadBytes + RUN_TIME_WEIGHT * (mean - w.avgPayloadBytes);
        this.link.sendTasks(w.id, batch);
      }
    }
  }

  /**
   * How many tasks a worker may hold: its slots while its task time is unknown or long, up to its
   * slots + prefetch for tasks it finishes many of within CREDIT_WINDOW_MS.
   */
  private credit(w: WorkerState): number {
    if (w.avgTaskMs === null) return w.slots;
    let n = Math.floor((w.slots * CREDIT_WINDOW_MS) / Math.max(w.avgTaskMs, 0.001));
    if (w.avgPayloadBytes > 0) n = Math.min(n, Math.floor(PREFETCH_PAYLOAD_BYTES / w.avgPayloadBytes));
    return Math.min(w.capacity, Math.max(w.slots, n));
  }
}
