import type { Logger } from "../log.js";
import { ZgridError, ErrorCode, failedPrecondition, invalidArgument, notFound } from "../protocol/errors.js";
import { EventHub, newResultEvent, newTaskEvent, wants, type Subscriber } from "./events.js";
import { TurnClock } from "./turn-clock.js";
import { MemoryStore } from "../store/memory-store.js";
import type { LoadedState, Store } from "../store/store.js";
import {
  FINAL_TASK_STATUSES,
  type Result,
  type ResultStatus,
  type Session,
  type Task,
  type TaskStatus,
} from "./model.js";
import { Agent } from "./agent.js";
import { Fleet } from "./fleet.js";
import { restore as restoreState, upgradeTask } from "./restore.js";
import { ResultData } from "./result-data.js";
import { SessionLifecycle } from "./session-lifecycle.js";
import { Submission } from "./submission.js";
import type { StatusCounts } from "./task-counts.js";
import { Dispatcher } from "./dispatcher.js";
import { GridViews } from "./grid-views.js";
import { StagingArea } from "./staging.js";
import { DEFAULT_FINISHED_RETAIN_MS, Residency } from "./residency.js";
import { TaskTable } from "./task-table.js";
import { ResultCache } from "./result-cache.js";
import { ResultWaiters } from "./result-waiters.js";
import type { AttemptStaging, SchedulerOptions, WaitSpec, WorkerLink } from "./types.js";

/** The cache of recent outputs, by default (`--result-cache-mb`). */
export const DEFAULT_RESULT_CACHE_BYTES = 64 * 2 ** 20;
/** The most result data the memory store holds, by default (`--memory-store-mb`). */
export const DEFAULT_MAX_MEMORY_RESULT_BYTES = 4096 * 2 ** 20;

export type {
  Completion,
  NewResult,
  SchedulerOptions,
  SchedulerSummary,
  TaskSubmission,
  WaitSpec,
  WorkerLink,
  WorkerState,
} from "./types.js";

/** Users kept as one shared string each (a task's createdBy), at most this many; others as given. */
const MAX_INTERNED_USERS = 10_000;

/**
 * Sessions, results and tasks, and the placement of tasks onto workers (design §4–§6).
 *
 * This class holds the records and a task's and a result's life: dependencies, statuses, queues,
 * attempts, endings. Its parts, each in a file of its own, work on the same records through it: the
 * connected workers and their reports (`fleet`, fleet.ts), sessions' life cycle (`lifecycle`,
 * session-lifecycle.ts), submission of tasks (`submission`, submission.ts), result data (`data`,
 * result-data.ts), running tasks' agent calls (`agent`, agent.ts), the rebuild from the store at a
 * start (restore.ts). Dispatch is the Dispatcher's, the table and queues the TaskTable's, what stays
 * in memory the Residency's. Members the parts use are not private; commands call the methods
 * documented as theirs.
 *
 * Everything here runs on the server's event loop and is synchronous, so a status change and what
 * follows from it (dependents queued, waiters woken) happen in one step that no request can interleave.
 * Dispatch is coalesced: changes mark the scheduler dirty, and one pass per event-loop turn fills every
 * worker's free capacity with one batch.
 */
export class Scheduler {
  /** The records in memory and their indexes. */
  readonly table = new TaskTable();
  /** The table's sessions, results and tasks by id (what is not there is in the store). */
  readonly sessions = this.table.sessions;
  readonly results = this.table.results;
  readonly tasks = this.table.tasks;
  readonly workers = this.table.workers;
  /** result id → tasks that wait for it (as payload or data dependency). */
  readonly dependents = new Map<string, Task[]>();
  readonly ids = this.table.ids;
  readonly waiters = new ResultWaiters(this.ids);
  /** The time of this turn of the event loop, one boxed number shared by what it creates (turn-clock.ts). */
  readonly clock = new TurnClock();
  readonly events = new EventHub();
  /** What running attempts created through their agent, committed only on success. */
  readonly staged = new StagingArea();
  keptRequests: { key: string; at: number; tasks: Task[] }[] = [];
  seq = 0;
  /** user → its one string: the createdBy of a million tasks is one string, not one per request. */
  private readonly users = new Map<string, string>();
  readonly log: Logger;
  /** Called once when a task ends COMPLETED, ERROR or TIMEOUT (the metrics observe durations here). */
  onTaskEnd: ((task: Task) => void) | null = null;
  /** Results clients can see, in memory or in the store: a running count. */
  resultCount = 0;
  /** Bytes of the COMPLETED results, in memory or in the store: a running sum, for the metrics. */
  resultBytes = 0;
  /** Recent task outputs, kept in memory after the store has them. */
  readonly cache: ResultCache;
  /** The most result data the store may hold in memory (the memory store), else Infinity. */
  readonly maxMemoryResultBytes: number;

  readonly store: Store;
  /** Partitions, applications, workers, counts and health, for administrators and metrics. */
  readonly views: GridViews;
  /** The connected workers: joining, leaving, and the starts and completions they report. */
  readonly fleet = new Fleet(this);
  /** Sessions' life cycle: pause, resume, close, cancel, purge, delete. */
  readonly lifecycle = new SessionLifecycle(this);
  /** Result data: created, uploaded, downloaded, deleted. */
  readonly data = new ResultData(this);
  /** Submission of tasks: checked, built, made live; or taken back. */
  readonly submission = new Submission(this);
  /** What running tasks ask through their agent: results, children, data. */
  readonly agent = new Agent(this);
  /** Dispatch and credit: which worker gets which queued tasks, and when. */
  readonly dispatcher = new Dispatcher(this.table, (task, w, now) => this.fleet.assign(task, w, now));
  /** Which records stay in memory, and when finished ones leave it. */
  readonly residency: Residency;

  constructor(readonly opts: SchedulerOptions) {
    this.log = opts.log.child({ component: "scheduler" });
    this.store = opts.store ?? new MemoryStore();
    this.cache = new ResultCache(opts.resultCacheBytes ?? DEFAULT_RESULT_CACHE_BYTES);
    this.views = new GridViews(this.table, this.store, () => this.resultCount);
    this.store.onStored = (results) => this.data.dataStored(results);
    this.residency = new Residency(
      this.table,
      this.store,
      {
        staging: (taskId) => this.staged.has(taskId),
        result: (id) => this.staged.holds(id) || this.data.uploading.has(id) || this.dependents.has(id),
      },
      opts.finishedRetainMs ?? DEFAULT_FINISHED_RETAIN_MS,
    );
    this.store.onCommitted = (tasks, results) => this.residency.committed(tasks, results);
    this.maxMemoryResultBytes = this.store.keepsData
      ? (opts.maxMemoryResultBytes ?? DEFAULT_MAX_MEMORY_RESULT_BYTES)
      : Infinity;
  }

  /** The keyed submissions the store kept, with their tasks (once: tasks.submit takes them at start). */
  takeKeptRequests(): { key: string; at: number; tasks: Task[] }[] {
    const kept = this.keptRequests;
    this.keptRequests = [];
    return kept;
  }

  /**
   * Rebuilds the state a store kept (design §8; restore.ts): final tasks stay as they are, tasks that
   * were on a worker wait for it a while, queued and pending ones wait again.
   */
  restore(state: LoadedState): { tasks: number; requeued: number; lost: number } {
    return restoreState(this, state);
  }

  setLink(link: WorkerLink): void {
    this.dispatcher.setLink(link);
  }

  // ---- sessions (their life cycle: SessionLifecycle) -------------------------------------------------

  session(id: string): Session {
    const s = this.sessions.get(id);
    if (!s) throw notFound(`session ${id} does not exist`);
    return s;
  }

  // ---- results -------------------------------------------------------------------------------------

  /** A result as clients see it: one a running attempt created is not there until the attempt completes. */
  result(id: string): Result {
    const r = this.findResult(id);
    if (!r || this.staged.holds(id)) throw notFound(`result ${id} does not exist`);
    return r;
  }

  /**
   * A result from memory, else (a finished one that left it) a copy read from the store; undefined when
   * there is none, or its session is gone.
   */
  findResult(id: string, read?: ReadonlyMap<string, Result>): Result | undefined {
    const r = this.results.get(id) ?? read?.get(id);
    if (r) return r;
    const stored = this.store.getResult(id);
    return stored && this.sessions.has(stored.sessionId) ? stored : undefined;
  }

  /**
   * As findResult for many ids, in their order: those not in memory are read from the store a few
   * hundred a query, not one a round trip; with `withData`, the data kept in their own row comes too
   * (`data`, by id: what dataOf would read), for those in memory whose data is neither held nor cached
   * as well.
   */
  findResults(
    ids: readonly string[],
    withData = false,
  ): { results: (Result | undefined)[]; data: Map<string, Buffer> } {
    const results: (Result | undefined)[] = new Array(ids.length);
    const missing: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const r = this.results.get(ids[i]);
      results[i] = r;
      // An output past the cache would be read alone (dataOf): 10,000 of them on PostgreSQL held the
      // event loop for 20 s, a round trip each.
      if (
        !r ||
        (withData && r.status === "COMPLETED" && r.data === null && r.stored && !this.cache.has(r.id))
      )
        missing.push(ids[i]);
    }
    if (missing.length === 0) return { results, data: new Map() };
    const stored = this.store.getResults(missing, withData);
    for (let i = 0; i < ids.length; i++) {
      if (results[i]) continue;
      const r = stored.results.get(ids[i]);
      results[i] = r && this.sessions.has(r.sessionId) ? r : undefined;
    }
    return { results, data: stored.data };
  }

  /**
   * For the reply of a wait: the status of each of `ids` (null for one that does not exist) and,
   * `withData`, the data of each COMPLETED one. An output that left memory while its data is in the
   * cache of recent outputs is COMPLETED (the cache holds only committed outputs of live sessions, and
   * loses one whose data is deleted): neither its record nor its data is read from the store. A client
   * that submits faster than its waits reach the server asks for outputs whose records left memory 2 s
   * after their commit; reading each back took 4-5 µs of the server's thread (SQLite).
   */
  waitedResults(
    ids: readonly string[],
    withData: boolean,
  ): { statuses: (ResultStatus | null)[]; data: (Buffer | undefined)[] } {
    const n = ids.length;
    const statuses: (ResultStatus | null)[] = new Array(n);
    const data: (Buffer | undefined)[] = new Array(n);
    let missing: number[] | null = null;
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      const r = this.results.get(id);
      if (r) {
        statuses[i] = r.status;
        if (!withData || r.status !== "COMPLETED") continue;
        data[i] = r.data ?? this.cache.get(id);
        if (data[i] === undefined && r.stored) (missing ??= []).push(i);
        else data[i] ??= this.data.dataOf(r);
      } else if (this.cache.has(id)) {
        statuses[i] = "COMPLETED";
        if (withData) data[i] = this.cache.get(id);
      } else (missing ??= []).push(i);
    }
    if (missing === null) return { statuses, data };
    const stored = this.store.getResults(
      missing.map((i) => ids[i]),
      withData,
    );
    for (const i of missing) {
      const held = this.results.get(ids[i]);
      const found = stored.results.get(ids[i]);
      const r = held ?? (found && this.sessions.has(found.sessionId) ? found : undefined);
      statuses[i] = r ? r.status : null;
      if (withData && r?.status === "COMPLETED") data[i] = stored.data.get(r.id) ?? this.data.dataOf(r);
    }
    return { statuses, data };
  }

  /** As findResults, for tasks (without data). */
  findTasks(ids: readonly string[]): (Task | undefined)[] {
    const tasks: (Task | undefined)[] = new Array(ids.length);
    const missing: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      tasks[i] = this.tasks.get(ids[i]);
      if (!tasks[i]) missing.push(ids[i]);
    }
    if (missing.length === 0) return tasks;
    const stored = this.store.getTasks(missing);
    for (let i = 0; i < ids.length; i++) {
      if (tasks[i]) continue;
      const t = stored.get(ids[i]);
      if (!t || !this.sessions.has(t.sessionId)) continue;
      upgradeTask(t);
      tasks[i] = t;
    }
    return tasks;
  }

  /** As findResult, for tasks. */
  findTask(id: string): Task | undefined {
    const t = this.tasks.get(id);
    if (t) return t;
    const stored = this.store.getTask(id);
    if (!stored || !this.sessions.has(stored.sessionId)) return undefined;
    upgradeTask(stored);
    return stored;
  }

  /** Whether clients see this result (not created by an attempt still running). */
  isVisible(r: Result): boolean {
    return !this.staged.holds(r.id);
  }

  /**
   * The results of `ids` that left memory, read from the store a few hundred a query (those of a
   * deleted session left out): what a batch names, read once, not one round trip an id.
   */
  storedResults(ids: Iterable<string>): Map<string, Result> {
    const missing = new Set<string>();
    for (const id of ids) if (!this.results.has(id)) missing.add(id);
    const read = new Map<string, Result>();
    if (missing.size === 0) return read;
    for (const r of this.store.getResults([...missing], false).results.values())
      if (this.sessions.has(r.sessionId)) read.set(r.id, r);
    return read;
  }

  /**
   * A result of `sessionId`, else NOT_FOUND or INVALID_ARGUMENT naming the other session. `read`: records
   * of results that left memory, read already (storedResults).
   */
  sessionResult(
    sessionId: string,
    id: string,
    what = "result",
    parent: Task | null = null,
    read?: ReadonlyMap<string, Result>,
  ): Result {
    const r = this.findResult(id, read);
    // A result a running attempt created exists only for that attempt (its children may use it).
    if (!r || this.staged.hides(id, parent)) throw notFound(`${what} ${id} does not exist`);
    if (r.sessionId !== sessionId) {
      throw invalidArgument(`${what} ${id} belongs to session ${r.sessionId}, not to session ${sessionId}`);
    }
    return r;
  }

  /** One shared string per user, so that what a user creates does not each hold a copy of its name. */
  user(name: string): string {
    const known = this.users.get(name);
    if (known !== undefined) return known;
    if (this.users.size < MAX_INTERNED_USERS) this.users.set(name, name);
    return name;
  }

  /** A new result; with `staging` it belongs to a running attempt and is announced only when committed. */
  newResult(
    sessionId: string,
    name: string,
    createdBy: string,
    data?: Buffer,
    staging?: AttemptStaging | null,
  ): Result {
    const r: Result = {
      id: this.ids.next("r"),
      sessionId,
      name,
      status: "CREATED",
      ownerTaskId: null,
      createdBy,
      data: null,
      size: 0,
      createdAt: this.clock.now(),
      completedAt: null,
    };
    this.results.set(r.id, r);
    if (staging) {
      this.staged.addResult(staging, r.id);
      if (data) staging.uploads.set(r.id, data);
      return r;
    }
    this.resultCount++;
    this.events.newResult(r);
    this.store.result(r);
    if (data) this.completeResult(r, data);
    return r;
  }

  completeResult(r: Result, data: Buffer): void {
    r.data = data;
    r.size = data.length;
    this.resultBytes += data.length;
    r.status = "COMPLETED";
    this.store.result(r);
    r.completedAt = Date.now();
    this.events.resultStatus(r);
    this.waiters.settled(r.id, r.status);
    const waiting = this.dependents.get(r.id);
    if (waiting) {
      this.dependents.delete(r.id);
      for (const task of waiting) {
        if (task.status !== "PENDING") continue;
        if (--task.remainingDeps === 0) this.enqueue(task);
      }
    }
  }

  /** Aborts a result and, down the graph, every task waiting on it. */
  abortResult(r: Result): void {
    if (r.status !== "CREATED") return;
    r.status = "ABORTED";
    this.store.result(r);
    r.completedAt = Date.now();
    this.events.resultStatus(r);
    this.waiters.settled(r.id, r.status);
    const waiting = this.dependents.get(r.id);
    if (!waiting) return;
    this.dependents.delete(r.id);
    for (const task of waiting) {
      if (task.status !== "PENDING") continue;
      this.finishTask(task, "ERROR", `dependency ${r.id} was aborted`);
    }
  }

  // ---- waiting -------------------------------------------------------------------------------------

  /**
   * Resolves when the results are settled as asked (all, any, or the first abort with breakOnError),
   * or at the timeout. Event driven: settling a result wakes its waiters; nothing polls.
   */
  waitResults(spec: WaitSpec): Promise<boolean> {
    // Results no longer in memory are read from the store together, not one a round trip; outputs in
    // the cache of recent outputs are COMPLETED (waitedResults), not read at all.
    const gone = spec.resultIds.filter((id) => !this.results.has(id));
    const stored = new Map<string, ResultStatus>();
    if (gone.length > 0) {
      const { statuses } = this.waitedResults(gone, false);
      gone.forEach((id, i) => {
        const status = statuses[i];
        if (status !== null) stored.set(id, status);
      });
    }
    return this.waiters.wait(spec, (id) => {
      const status = this.results.get(id)?.status ?? stored.get(id);
      if (status === undefined || this.staged.holds(id)) throw notFound(`result ${id} does not exist`);
      return status;
    });
  }

  // ---- tasks ---------------------------------------------------------------------------------------

  /** The tasks of a session by status, finished ones in the store included (zeros when it has none). */
  sessionTaskCounts(sessionId: string): StatusCounts {
    return this.table.sessionCounts.countsOf(sessionId);
  }

  task(id: string): Task {
    const t = this.findTask(id);
    if (!t) throw notFound(`task ${id} does not exist`);
    return t;
  }

  // ---- a task's life: dependencies, statuses, queues, attempts and endings --------------------------

  /** A failed or retried attempt leaves nothing behind: its results and children vanish. */
  discardStaging(task: Task): void {
    const st = this.staged.take(task.id);
    if (!st) return;
    for (const id of st.results) {
      this.results.delete(id);
      this.dependents.delete(id);
    }
  }

  /** Queues the task now if its payload and dependencies are COMPLETED, else waits for them. */
  trackDependencies(task: Task): void {
    const deps =
      task.dataDependencies.length === 0 ? [task.payloadId] : [task.payloadId, ...task.dataDependencies];
    for (const id of deps) {
      const r = this.results.get(id)!;
      if (r.status === "COMPLETED") continue;
      if (r.status === "ABORTED" || r.status === "DELETED") {
        const why = r.status === "DELETED" ? ": its data was deleted" : "";
        this.finishTask(task, "ERROR", `dependency ${id} is ${r.status}${why}`);
        return;
      }
      task.remainingDeps++;
      let list = this.dependents.get(id);
      if (!list) {
        list = [];
        this.dependents.set(id, list);
      }
      list.push(task);
    }
    if (task.remainingDeps === 0) this.enqueue(task);
  }

  setStatus(task: Task, status: TaskStatus): void {
    this.table.counts.move(
      task.options.partitionId,
      task.status,
      status,
      this.table.sessionCounts,
      task.sessionId,
    );
    if (FINAL_TASK_STATUSES.has(status) && !FINAL_TASK_STATUSES.has(task.status)) this.residency.unpin(task);
    task.status = status;
    this.store.task(task);
    this.events.taskStatus(task);
  }

  enqueue(task: Task, status: TaskStatus = "SUBMITTED"): void {
    if (task.submittedAt === null) task.submittedAt = this.clock.now();
    if (this.sessions.get(task.sessionId)?.status === "PAUSED") {
      this.setStatus(task, "PAUSED");
      return;
    }
    if (task.status !== status) this.setStatus(task, status);
    this.table.queue(task.options.partitionId).push(task);
    this.dispatcher.schedule();
  }

  closeAttempt(task: Task, status: string, error: string | null): void {
    const a = task.attempts[task.attempts.length - 1];
    if (a && a.endedAt === null) {
      a.endedAt = Date.now();
      a.status = status;
      a.error = error;
    }
  }

  /** An attempt that may be retried: crash, lost worker, uncaught exception. */
  failAttempt(task: Task, error: string, lost: boolean): void {
    this.discardStaging(task);
    this.closeAttempt(task, lost ? "LOST" : "FAILED", error);
    task.workerId = null;
    if (task.status === "CANCELLING") {
      this.finishTask(task, "CANCELLED", task.error ?? "cancelled");
      return;
    }
    if (task.attempts.length <= task.options.maxRetries) {
      this.enqueue(task, "RETRIED");
    } else {
      this.finishTask(task, "ERROR", `${error} (after ${task.attempts.length} attempts)`);
    }
  }

  /** Ends a task that did not succeed; its outputs are aborted, and with them what waits on them. */
  finishTask(task: Task, status: TaskStatus, error: string | null): void {
    this.discardStaging(task);
    task.workerId = null;
    task.error = error;
    task.endedAt = Date.now();
    this.setStatus(task, status);
    if (!this.sessions.has(task.sessionId)) {
      // Its session was deleted while its worker still ran it: now that the worker answered, it goes
      // too, from memory and from the store (its row is not written again after the session's delete).
      this.table.counts.remove(task.options.partitionId, task.status);
      this.table.sessionCounts.remove(task.sessionId, task.status);
      this.tasks.delete(task.id);
      this.store.discard([task], []);
      return;
    }
    if (status !== "CANCELLED") this.onTaskEnd?.(task);
    for (const id of task.expectedOutputIds) {
      const r = this.results.get(id);
      if (r && r.ownerTaskId === task.id) this.abortResult(r);
    }
  }

  // ---- listings and cancellation ------------------------------------------------------------------

  /**
   * Every task a filter may match, finished ones included: first those the store holds and memory
   * does not (copies, read in slices), then memory's. While a scan is under way nothing leaves memory,
   * so no task is visited twice or missed for having moved between the two.
   */
  *tasksOf(sessionIds: readonly string[] | null): Generator<Task> {
    this.residency.scanStarted();
    try {
      for (const t of this.store.scanTasks(sessionIds, (id) => this.tasks.has(id))) {
        if (!this.sessions.has(t.sessionId)) continue;
        upgradeTask(t);
        yield t;
      }
      yield* this.table.liveTasksOf(sessionIds);
    } finally {
      this.residency.scanEnded();
    }
  }

  /** As tasksOf, for results (all of them, or those of the sessions named). */
  *resultsOf(sessionIds: readonly string[] | null): Generator<Result> {
    this.residency.scanStarted();
    try {
      for (const r of this.store.scanResults(sessionIds, (id) => this.results.has(id))) {
        if (this.sessions.has(r.sessionId)) yield r;
      }
      if (sessionIds === null) yield* this.results.values();
      else {
        const named = new Set(sessionIds);
        for (const r of this.results.values()) if (named.has(r.sessionId)) yield r;
      }
    } finally {
      this.residency.scanEnded();
    }
  }

  /** tasks.cancel: queued and pending tasks end CANCELLED now, running ones once their worker stopped them. */
  cancelTasks(taskIds: string[]): Record<string, number> {
    const tasks = taskIds.map((id) => this.task(id));
    return this.cancel(tasks, "cancelled by request");
  }

  /** Cancels tasks; returns counts by the status each task had (HTC-Grid's cancel_sessions shape). */
  cancel(tasks: Task[], reason: string): Record<string, number> {
    const counts: Record<string, number> = {};
    const byWorker = new Map<string, string[]>();
    const dequeued = new Set<string>();
    const queuedIds = new Set(
      tasks.filter((t) => t.status === "SUBMITTED" || t.status === "RETRIED").map((t) => t.id),
    );
    if (queuedIds.size > 0) {
      for (const q of this.table.queues.values())
        for (const t of q.remove((t) => queuedIds.has(t.id))) dequeued.add(t.id);
    }
    for (const t of tasks) {
      if (FINAL_TASK_STATUSES.has(t.status) || t.status === "CANCELLING") continue;
      counts[t.status] = (counts[t.status] ?? 0) + 1;
      if ((t.status === "DISPATCHED" || t.status === "PROCESSING") && t.workerId) {
        let list = byWorker.get(t.workerId);
        if (!list) byWorker.set(t.workerId, (list = []));
        list.push(t.id);
        t.error = reason;
        this.setStatus(t, "CANCELLING");
        for (const id of t.expectedOutputIds) {
          const r = this.results.get(id);
          if (r && r.ownerTaskId === t.id) this.abortResult(r);
        }
        continue;
      }
      this.closeAttempt(t, "CANCELLED", reason);
      this.finishTask(t, "CANCELLED", reason);
    }
    for (const [workerId, ids] of byWorker) this.dispatcher.cancel(workerId, ids, reason);
    return counts;
  }

  // ---- events --------------------------------------------------------------------------------------

  /**
   * Subscribes to a session's events: first a snapshot of what already matches (newTask and newResult
   * with current statuses), then live updates. Both happen in this one synchronous call, so nothing
   * can slip between them.
   */
  subscribe(sub: Subscriber): void {
    this.session(sub.sessionId);
    const f = sub.filter;
    // Finished records that left memory first (read from the store), then memory's.
    const inMemory = (id: string) => this.results.has(id);
    for (const r of this.store.scanResults([sub.sessionId], inMemory)) {
      if (wants(f, "newResult", null, r.id, r.status)) sub.send(newResultEvent(r));
    }
    for (const r of this.results.values()) {
      if (r.sessionId === sub.sessionId && wants(f, "newResult", null, r.id, r.status))
        sub.send(newResultEvent(r));
    }
    for (const t of this.store.scanTasks([sub.sessionId], (id) => this.tasks.has(id))) {
      upgradeTask(t);
      if (wants(f, "newTask", t.id, null, t.status)) sub.send(newTaskEvent(t));
    }
    for (const t of this.table.sessionTasks(sub.sessionId)) {
      if (wants(f, "newTask", t.id, null, t.status)) sub.send(newTaskEvent(t));
    }
    this.events.add(sub);
  }

  // ---- checks --------------------------------------------------------------------------------------

  requireOpen(session: Session): void {
    if (session.status !== "RUNNING" && session.status !== "PAUSED") {
      throw failedPrecondition(
        `session ${session.id} is ${session.status}: it takes no new tasks or results`,
      );
    }
  }

  requireSubmission(session: Session, by: "client" | "worker"): void {
    this.requireOpen(session);
    if (by === "client" ? !session.clientSubmission : !session.workerSubmission) {
      throw failedPrecondition(
        `session ${session.id} stopped taking ${by === "client" ? "submissions from clients" : "child tasks from its tasks"} (sessions.stopSubmission)`,
      );
    }
  }

  requireBatch(n: number, what: string): void {
    if (n > this.opts.maxBatch) {
      throw new ZgridError(
        ErrorCode.RESOURCE_EXHAUSTED,
        `${n} ${what} in one request exceeds the limit of ${this.opts.maxBatch}: split the batch`,
      );
    }
  }
}
