import { collectGarbage, shrinkHeap } from "../gc.js";
import type { Store } from "../store/store.js";
import { IdMap } from "./id-map.js";
import { FINAL_TASK_STATUSES, type Result, type Task } from "./model.js";
import type { TaskTable } from "./task-table.js";

/** How long finished records stay in memory after their commit (SchedulerOptions.finishedRetainMs). */
export const DEFAULT_FINISHED_RETAIN_MS = 2000;
/** How often finished records are let go, and for how long at most each time (ms). */
const RETIRE_TICK_MS = 50;
const RETIRE_SLICE_MS = 4;
/**
 * Records this late (ms past their time) mean retire() is falling behind the work: it runs again at the
 * next turn of the event loop, not after a tick. Under full load a 50 ms timer fires late and 4 ms in 50
 * let go of fewer records than finish: memory grew with history (750,000 records after 1M tasks).
 */
const RETIRE_BEHIND_MS = 500;
/** Records let go since the last full collection that make one worth it once the server is idle. */
const IDLE_GC_RECORDS = 50_000;
/** At most this many tasks in memory: idle enough for a full collection (it takes milliseconds then). */
const IDLE_GC_TASKS = 1000;

/**
 * Bytes of large result data (LARGE_DATA_BYTES or more each) leaving memory with their records that
 * make the heap worth shrinking now. Small data is left to V8: many small payloads leaving after a run
 * would otherwise ask for a collection every 64 MiB of them.
 */
const RELEASED_DATA_BYTES = 64 * 1024 * 1024;
const LARGE_DATA_BYTES = 1024 * 1024;

/** Tasks submitted since the heap was last shrunk that make a burst worth shrinking after. */
const BURST_TASKS = 50_000;
/**
 * How long without a submission ends a burst (ms). A client submitting a million tasks in requests of
 * 50,000 leaves gaps of over a second between them on a busy machine: 1 s shrank the heap between
 * requests, for nothing.
 */
export const BURST_QUIET_MS = 2000;

/** What else keeps records in memory, as the scheduler knows it. */
export interface Holds {
  /** A running attempt of this task staged what it created (agent calls): committed when it ends. */
  staging(taskId: string): boolean;
  /** The result is staged by a running attempt, being uploaded, or awaited by tasks. */
  result(resultId: string): boolean;
}

/**
 * Finished work leaves memory (issue 18 item 2): a finished task and a result no live work needs are
 * dropped from the task table once the store has committed them and `retainMs` has passed, a slice at
 * a time; from then on their records are read from the store. The results that live tasks name
 * (payloads, data dependencies) are pinned: they stay, or come back from the store while such a task
 * lives. While a listing merges the store's records with memory's (a scan), nothing leaves memory.
 */
export class Residency {
  /**
   * result id → how many unfinished tasks name it (payload or data dependency): such a result stays in
   * memory, where dispatch and dependency tracking find it. Live work only.
   */
  private readonly pins: IdMap<number>;
  /** Listings that merge the store's records with memory's, under way: nothing leaves memory meanwhile. */
  private scans = 0;
  /** Records committed, by commit, oldest first: their finished ones leave memory (retire). */
  private readonly retiring: { at: number; tasks: Iterator<Task>; results: Iterator<Result> }[] = [];
  private retireTimer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  private readonly runRetire = (): void => this.retire();
  /** Records retire() let go since the last full collection. */
  private retiredSinceGc = 0;
  /** Bytes of result data let go with their records since the heap was last shrunk for them. */
  private releasedDataBytes = 0;
  /** Tasks submitted since the heap was last shrunk, and the timer that ends their burst. */
  private submittedSinceShrink = 0;
  private burstTimer: NodeJS.Timeout | null = null;
  private readonly endBurst = (): void => {
    this.burstTimer = null;
    this.submittedSinceShrink = 0;
    this.shrink();
  };

  constructor(
    private readonly table: TaskTable,
    private readonly store: Store,
    private readonly holds: Holds,
    /** How long finished records stay in memory after their commit (ms). */
    private readonly retainMs: number,
    /** What gives back the heap a burst of submissions left grown (tests pass a spy). */
    private readonly shrink: () => void = shrinkHeap,
    /** How long without a submission ends a burst (ms). */
    private readonly quietMs = BURST_QUIET_MS,
  ) {
    this.pins = new IdMap(table.ids, "r");
  }

  /**
   * `count` tasks were submitted. Their records stay (queued), but building them grew the heap well
   * beyond them, and V8 keeps those pages until it collects for a reason of its own: after a burst of
   * BURST_TASKS or more, once no task has been submitted for `quietMs`, the heap is shrunk.
   */
  submitted(count: number): void {
    this.submittedSinceShrink += count;
    if (this.submittedSinceShrink < BURST_TASKS) return;
    if (this.burstTimer) this.burstTimer.refresh();
    else this.burstTimer = setTimeout(this.endBurst, this.quietMs).unref();
  }

  /** A listing that reads the store and then memory begins: nothing leaves memory until it ends. */
  scanStarted(): void {
    this.scans++;
  }

  scanEnded(): void {
    this.scans--;
  }

  /** The result's session was deleted: no task names it any more. */
  forget(resultId: string): void {
    this.pins.delete(resultId);
  }

  /**
   * Names the task's payload and data dependencies as needed by live work: they stay in memory. `read`:
   * records of results that left memory, read already.
   */
  pin(task: Task, read?: ReadonlyMap<string, Result>): void {
    // A store that keeps every record in memory (--store memory) lets nothing go: nothing to count.
    if (this.store.keepsData) return;
    this.pinId(task.payloadId, read);
    for (const id of task.dataDependencies) this.pinId(id, read);
  }

  private pinId(id: string, read: ReadonlyMap<string, Result> | undefined): void {
    this.pins.set(id, (this.pins.get(id) ?? 0) + 1);
    if (this.table.results.has(id)) return;
    // A result that left memory, named by a new task: back in memory while the task lives.
    const r = read?.get(id) ?? this.store.getResult(id);
    if (r) this.table.results.set(id, r);
  }

  unpin(task: Task): void {
    if (this.store.keepsData) return;
    this.unpinId(task.payloadId);
    for (const id of task.dataDependencies) this.unpinId(id);
  }

  private unpinId(id: string): void {
    const n = (this.pins.get(id) ?? 0) - 1;
    if (n > 0) this.pins.set(id, n);
    else this.pins.delete(id);
  }

  /**
   * The store committed these records as they are: the finished ones no live work needs leave memory
   * (their records are read from the store from then on), with the results their tasks named, once
   * `finishedRetainMs` has passed (a client that waits for a result usually asks for it at once) and a
   * slice at a time on a timer, so that neither a commit nor a client waits for it.
   */
  committed(tasks: Iterable<Task>, results: Iterable<Result>): void {
    this.retiring.push({
      at: Date.now(),
      tasks: tasks[Symbol.iterator](),
      results: results[Symbol.iterator](),
    });
    this.retireTimer ??= setTimeout(this.runRetire, RETIRE_TICK_MS).unref();
  }

  private retire(): void {
    this.retireTimer = null;
    // No record leaves memory while a listing merges the store's with memory's.
    const before = Date.now() - this.retainMs;
    if (this.scans === 0) {
      const until = performance.now() + RETIRE_SLICE_MS;
      while (this.retiring.length > 0 && this.retiring[0].at <= before && performance.now() <= until) {
        const c = this.retiring[0];
        if (!this.letGo(c.tasks, (t) => this.evictTask(t), until)) break;
        if (!this.letGo(c.results, (r) => this.evictResult(r), until)) break;
        this.retiring.shift();
      }
    }
    if (this.retiring.length > 0) {
      this.retireTimer =
        this.retiring[0].at < before - RETIRE_BEHIND_MS && this.scans === 0
          ? setImmediate(this.runRetire).unref()
          : setTimeout(this.runRetire, RETIRE_TICK_MS).unref();
    } else if (this.retiredSinceGc >= IDLE_GC_RECORDS && this.table.tasks.size <= IDLE_GC_TASKS) {
      // A burst has left memory and little is live: give its garbage back now, not at the next burst.
      this.retiredSinceGc = 0;
      collectGarbage();
    }
  }

  /**
   * Lets go of what `records` holds until it ends (true), or until `until` (performance.now()) has
   * passed (false: the rest waits for the next tick).
   */
  private letGo<T>(records: Iterator<T>, evict: (record: T) => void, until: number): boolean {
    for (let n = 1; ; n++) {
      const next = records.next();
      if (next.done) return true;
      evict(next.value);
      this.retiredSinceGc++;
      if ((n & 127) === 0 && performance.now() > until) return false;
    }
  }

  private evictTask(t: Task): void {
    if (
      this.table.tasks.get(t.id) !== t ||
      !FINAL_TASK_STATUSES.has(t.status) ||
      t.workerId !== null ||
      this.holds.staging(t.id) ||
      this.store.isDirty(t)
    )
      return;
    this.table.releaseTask(t);
    this.evictResultId(t.payloadId);
    for (const id of t.dataDependencies) this.evictResultId(id);
    for (const id of t.expectedOutputIds) this.evictResultId(id);
  }

  private evictResultId(id: string): void {
    const r = this.table.results.get(id);
    if (r) this.evictResult(r);
  }

  private evictResult(r: Result): void {
    if (
      this.table.results.get(r.id) !== r ||
      r.status === "CREATED" ||
      (r.data !== null && !r.stored) ||
      this.pins.has(r.id) ||
      this.holds.result(r.id) ||
      this.store.isDirty(r)
    )
      return;
    if (r.ownerTaskId !== null) {
      const owner = this.table.tasks.get(r.ownerTaskId);
      if (owner && !FINAL_TASK_STATUSES.has(owner.status)) return;
    }
    this.table.results.delete(r.id);
    const data = r.data;
    if (data === null) return;
    // Stored, it is read from the store from now on. The record itself may stay listed a while longer
    // (with a later commit, as an upload's is): its data must not stay with it.
    r.data = null;
    // Large data let go (an upload of hundreds of MB, say) stays in RSS until V8 collects for a reason
    // of its own, which a busy machine delays while a download of it allocates as much again: past
    // RELEASED_DATA_BYTES of it let go, the collection is asked for now.
    if (data.length >= LARGE_DATA_BYTES) {
      this.releasedDataBytes += data.length;
      if (this.releasedDataBytes >= RELEASED_DATA_BYTES) {
        this.releasedDataBytes = 0;
        setImmediate(this.shrink);
      }
    }
  }
}
