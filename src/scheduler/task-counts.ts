import { TASK_STATUSES, type TaskStatus } from "./model.js";

/** Tasks in each status, one counter per status. */
export type StatusCounts = Record<TaskStatus, number>;

/** One partition's counters; `total` says in O(1) whether the partition still holds tasks. */
interface PartitionCounts {
  total: number;
  byStatus: StatusCounts;
}

function zeroCounts(): StatusCounts {
  return Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as StatusCounts;
}

/**
 * How many tasks the scheduler knows, by status in all and by status within each partition.
 *
 * A status change runs for every task several times, so each update is one Map lookup and a few
 * increments, without allocating; a partition's counters are allocated once, when its first task comes.
 */
export class TaskCounts {
  private readonly all = zeroCounts();
  private readonly partitions = new Map<string, PartitionCounts>();

  /** A task becomes known (submitted or restored). */
  add(partitionId: string, status: TaskStatus): void {
    this.all[status]++;
    let p = this.partitions.get(partitionId);
    if (!p) {
      p = { total: 0, byStatus: zeroCounts() };
      this.partitions.set(partitionId, p);
    }
    p.byStatus[status]++;
    p.total++;
  }

  /** A known task changes status. */
  move(partitionId: string, from: TaskStatus, to: TaskStatus): void {
    this.all[from]--;
    this.all[to]++;
    // Every task is added before it moves; a miscount should skew a gauge, not stop the server.
    const p = this.partitions.get(partitionId);
    if (!p) return;
    p.byStatus[from]--;
    p.byStatus[to]++;
  }

  /** A task is forgotten (its session deleted); a partition left without tasks is dropped. */
  remove(partitionId: string, status: TaskStatus): void {
    this.all[status]--;
    const p = this.partitions.get(partitionId);
    if (!p) return;
    p.byStatus[status]--;
    if (--p.total === 0) this.partitions.delete(partitionId);
  }

  /** Tasks by status over all partitions: a copy. */
  totals(): StatusCounts {
    return { ...this.all };
  }

  /** Tasks by status in one partition: a copy, all zeros for a partition without tasks. */
  partition(partitionId: string): StatusCounts {
    const p = this.partitions.get(partitionId);
    return p ? { ...p.byStatus } : zeroCounts();
  }

  /**
   * Each partition that holds tasks with its counts by status, zeros included. The counts are live
   * views: read them before the next change, copy them to keep them.
   */
  *byPartition(): IterableIterator<[partitionId: string, counts: Readonly<StatusCounts>]> {
    for (const [id, p] of this.partitions) yield [id, p.byStatus];
  }

  /** Each partition that holds tasks → its counts by status: a copy. */
  toRecord(): Record<string, StatusCounts> {
    const out: Record<string, StatusCounts> = {};
    for (const [id, p] of this.partitions) out[id] = { ...p.byStatus };
    return out;
  }
}
