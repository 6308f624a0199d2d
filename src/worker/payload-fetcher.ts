import type { DataMsg, WireTask } from "../protocol/worker-messages.js";
import type { PoolCompletion } from "./executor-pool.js";
import type { Outbox } from "./outbox.js";

/** A task and its payload, ready to run. */
export interface ReadyTask {
  task: WireTask;
  payload: Uint8Array;
}

/**
 * Tasks whose payload did not come inline: asks the server for the payloads (FETCH, batched by the
 * {@link Outbox}) and releases the tasks when DATA brings them.
 */
export class PayloadFetcher {
  /** payloadId → tasks waiting for it (several tasks may share a payload). */
  private readonly waiting = new Map<string, WireTask[]>();
  private readonly taskIds = new Set<string>();

  constructor(private readonly outbox: Outbox) {}

  get size(): number {
    return this.taskIds.size;
  }

  has(taskId: string): boolean {
    return this.taskIds.has(taskId);
  }

  need(task: WireTask): void {
    this.taskIds.add(task.taskId);
    const list = this.waiting.get(task.payloadId);
    if (list) {
      list.push(task);
    } else {
      this.waiting.set(task.payloadId, [task]);
      this.outbox.fetch([task.payloadId]);
    }
  }

  /** Asks again for everything still missing (after the server was lost and came back). */
  refetch(): void {
    if (this.waiting.size > 0) this.outbox.fetch(this.waiting.keys());
  }

  /** Takes a DATA reply: the tasks it completes, and the tasks whose payload cannot be had (FAILED). */
  onData(msg: DataMsg, blobs: Buffer[], base: number): { ready: ReadyTask[]; failed: PoolCompletion[] } {
    const ready: ReadyTask[] = [];
    const failed: PoolCompletion[] = [];
    for (const r of msg.results ?? []) {
      const tasks = this.waiting.get(r.resultId);
      if (!tasks) continue;
      this.waiting.delete(r.resultId);
      const payload = r.blob === undefined ? undefined : blobs[base + r.blob];
      for (const task of tasks) {
        this.taskIds.delete(task.taskId);
        if (payload) {
          ready.push({ task, payload });
        } else {
          const why = r.error ?? "the server sent no data for it";
          failed.push({
            taskId: task.taskId,
            status: "FAILED",
            error: `payload ${r.resultId} unavailable: ${why}`,
          });
        }
      }
    }
    return { ready, failed };
  }

  /** Drops waiting tasks that were cancelled; returns their ids. */
  cancel(taskIds: string[]): string[] {
    const cancelled: string[] = [];
    for (const id of taskIds) {
      if (!this.taskIds.delete(id)) continue;
      cancelled.push(id);
      for (const [payloadId, tasks] of this.waiting) {
        const i = tasks.findIndex((t) => t.taskId === id);
        if (i === -1) continue;
        tasks.splice(i, 1);
        if (tasks.length === 0) this.waiting.delete(payloadId);
        break;
      }
    }
    return cancelled;
  }

  clear(): void {
    this.waiting.clear();
    this.taskIds.clear();
  }
}
