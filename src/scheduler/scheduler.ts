import type { Logger } from "../log.js";
import { ZgridError, ErrorCode, failedPrecondition, invalidArgument, notFound } from "../protocol/errors.js";
import { EventHub, newResultEvent, newTaskEvent, wants, type Subscriber } from "./events.js";
import { IdGenerator } from "./ids.js";
import { TurnClock } from "./turn-clock.js";
import { MemoryStore } from "../store/memory-store.js";
import type { KeptRequest, LoadedState, Store } from "../store/store.js";
import {
  FINAL_TASK_STATUSES,
  type Attempt,
  type Result,
  type Session,
  type SessionStatus,
  type Task,
  type TaskOptions,
  type TaskStatus,
} from "./model.js";
import type { StatusCounts } from "./task-counts.js";
import { Dispatcher } from "./dispatcher.js";
import { GridViews } from "./grid-views.js";
import { StagingArea } from "./staging.js";
import { DEFAULT_FINISHED_RETAIN_MS, Residency } from "./residency.js";
import { TaskTable } from "./task-table.js";
import { mergeTaskOptions } from "./task-options.js";
import type { AppSet } from "./task-queue.js";
import { ResultCache } from "./result-cache.js";

/** How long, and how many, deleted sessions' records `sessions.get` still answers (memory only). */
const DELETED_RETENTION_MS = 60 * 60_000;
const MAX_DELETED = 10_000;
/** The cache of recent outputs, by default (`--result-cache-mb`). */
export const DEFAULT_RESULT_CACHE_BYTES = 64 * 2 ** 20;
/** The most result data the memory store holds, by default (`--memory-store-mb`). */
export const DEFAULT_MAX_MEMORY_RESULT_BYTES = 4096 * 2 ** 20;
import { ResultWaiters } from "./result-waiters.js";
import type {
  AttemptStaging,
  Completion,
  NewResult,
  SchedulerOptions,
  TaskSubmission,
  WaitSpec,
  WorkerLink,
  WorkerState,
} from "./types.js";

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

/** The attempts of a task never dispatched: shared until its first attempt. */
const NO_ATTEMPTS: Attempt[] = Object.freeze([]) as unknown as Attempt[];

/** The task's own attempts list, made on its first attempt. */
function attemptsOf(task: Task): Attempt[] {
  if (task.attempts === NO_ATTEMPTS) task.attempts = [];
  return task.attempts;
}

/**
 * A new attempt of `task`, dispatched to `workerId` at `now`. It was queued when the task was first
 * submitted, or, for a retry, when the attempt before it ended (a retry is queued at once).
 */
function newAttempt(task: Task, workerId: string, now: number): void {
  const attempts = attemptsOf(task);
  const before = attempts.at(-1);
  // A retry has not started until its worker says so: not the attempt before's start.
  if (before !== undefined) task.startedAt = null;
  attempts.push({
    number: attempts.length + 1,
    workerId,
    queuedAt: before === undefined ? task.submittedAt : before.endedAt,
    dispatchedAt: now,
    startedAt: now,
    endedAt: null,
    status: null,
    error: null,
  });
}

/**
 * A task record kept by a zgrid before lineage: no createdBy or parent, attempts without their queue and
 * dispatch times (an attempt's startedAt was its dispatch time until its worker reported a start).
 */
function upgradeTask(t: Task): void {
  if (t.createdBy !== undefined) return;
  t.createdBy = null;
  t.parentTaskId ??= null;
  for (const a of t.attempts) {
    a.queuedAt ??= null;
    a.dispatchedAt ??= a.startedAt;
  }
}

/** Names of the results a submission creates for a task: shared strings, not one per task. */
const OUTPUT_NAMES = Array.from({ length: 16 }, (_, k) => `output-${k}`);

/** Users kept as one shared string each (a task's createdBy), at most this many; others as given. */
const MAX_INTERNED_USERS = 10_000;

/** The dependencies of a task that has none: shared, never written to. */
const NO_IDS: string[] = Object.freeze([]) as unknown as string[];

/**
 * Sessions, results and tasks, and the placement of tasks onto workers (design §4–§6).
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
  private readonly dependents = new Map<string, Task[]>();
  private readonly waiters = new ResultWaiters();
  private readonly ids = new IdGenerator();
  /** The time of this turn of the event loop, one boxed number shared by what it creates (turn-clock.ts). */
  private readonly clock = new TurnClock();
  readonly events = new EventHub();
  /** What running attempts created through their agent, committed only on success. */
  private readonly staged = new StagingArea();
  /**
   * Tasks that were on a worker when the server stopped, by id: they wait (status and attempt as they
   * were) for that worker to come back holding them, until the orphan grace ends.
   */
  private readonly orphans = new Map<string, Task>();
  private keptRequests: { key: string; at: number; tasks: Task[] }[] = [];
  /** Sessions deleted lately, oldest first: `sessions.get` answers their DELETED record a while. */
  private readonly deletedSessions = new Map<string, Session>();
  /** Results whose upload is being committed (uploadResultDurably): one at a time each. */
  private readonly uploading = new Set<string>();
  private seq = 0;
  /** user → its one string: the createdBy of a million tasks is one string, not one per request. */
  private readonly users = new Map<string, string>();
  private readonly log: Logger;
  /** Called once when a task ends COMPLETED, ERROR or TIMEOUT (the metrics observe durations here). */
  onTaskEnd: ((task: Task) => void) | null = null;
  /** Results clients can see, in memory or in the store: a running count. */
  resultCount = 0;
  /** Bytes of the COMPLETED results, in memory or in the store: a running sum, for the metrics. */
  resultBytes = 0;
  /** Recent task outputs, kept in memory after the store has them. */
  readonly cache: ResultCache;
  /** The most result data the store may hold in memory (the memory store), else Infinity. */
  private readonly maxMemoryResultBytes: number;

  readonly store: Store;
  /** Partitions, applications, workers, counts and health, for administrators and metrics. */
  readonly views: GridViews;
  /** Dispatch and credit: which worker gets which queued tasks, and when. */
  private readonly dispatcher = new Dispatcher(this.table, (task, w, now) => this.assign(task, w, now));
  /** Which records stay in memory, and when finished ones leave it. */
  private readonly residency: Residency;

  constructor(private readonly opts: SchedulerOptions) {
    this.log = opts.log.child({ component: "scheduler" });
    this.store = opts.store ?? new MemoryStore();
    this.cache = new ResultCache(opts.resultCacheBytes ?? DEFAULT_RESULT_CACHE_BYTES);
    this.views = new GridViews(this.table, this.store, () => this.resultCount);
    this.store.onStored = (results) => this.dataStored(results);
    this.residency = new Residency(
      this.table,
      this.store,
      {
        staging: (taskId) => this.staged.has(taskId),
        result: (id) => this.staged.holds(id) || this.uploading.has(id) || this.dependents.has(id),
      },
      opts.finishedRetainMs ?? DEFAULT_FINISHED_RETAIN_MS,
    );
    this.store.onCommitted = (tasks, results) => this.residency.committed(tasks, results);
    this.maxMemoryResultBytes = this.store.keepsData
      ? (opts.maxMemoryResultBytes ?? DEFAULT_MAX_MEMORY_RESULT_BYTES)
      : Infinity;
  }

  /**
   * A session change that must be durable before it takes effect (pause, resume, close, cancel, stop
   * submission): the session's new record is committed first, then `apply` makes the change in memory.
   * A commit the store refuses changes nothing (issue 13 item 3). What `apply` does to the session's
   * tasks follows from the session's record at a restart (restore()).
   */
  async changeSessionDurably<T>(
    sessionId: string,
    to: SessionStatus,
    allowed: readonly SessionStatus[],
    apply: () => T,
    fields: Partial<Session> = {},
  ): Promise<T> {
    const session = this.transition(sessionId, to, allowed);
    const staged: Session = { ...session, ...fields, status: to };
    this.store.session(staged);
    try {
      await this.store.flush();
    } catch (err) {
      this.store.discard([], [], [staged]);
      throw err;
    }
    return apply();
  }

  private setSessionStatus(session: Session, status: SessionStatus): void {
    session.status = status;
    this.store.session(session);
  }

  /**
   * Rebuilds the state a store kept (design §8): final tasks stay as they are; tasks that were on a
   * worker when the server died lose that attempt and go back to the queue while retries allow;
   * queued tasks keep their place (submission order); pending ones wait for their dependencies again.
   */
  restore(state: LoadedState): { tasks: number; requeued: number; lost: number } {
    // A session whose deletion was committed first (changeSessionDurably) and not its removal (a crash
    // in between): removed now.
    const deleted = new Set(state.sessions.filter((s) => s.status === "DELETED").map((s) => s.id));
    if (deleted.size > 0) {
      for (const id of deleted) this.store.deleteSession(id);
      state = {
        ...state,
        sessions: state.sessions.filter((s) => !deleted.has(s.id)),
        results: state.results.filter((r) => !deleted.has(r.sessionId)),
        tasks: state.tasks.filter((t) => !deleted.has(t.sessionId)),
      };
    }
    for (const s of state.sessions) {
      s.taskCount = 0;
      // Records of zgrid before sessions had their submission flags and times.
      const old = s as Session & { submissionStopped?: boolean };
      if (s.clientSubmission === undefined) s.clientSubmission = s.workerSubmission = !old.submissionStopped;
      delete old.submissionStopped;
      s.cancelledAt ??= null;
      s.closedAt ??= null;
      s.purgedAt ??= null;
      s.deletedAt ??= null;
      // Records of zgrid before users: no user's, so only admins see them.
      s.owner ??= null;
      this.sessions.set(s.id, s);
    }
    for (const r of state.results) {
      // Records of zgrid before lineage.
      r.createdBy ??= null;
      this.results.set(r.id, r);
      if (r.status === "DELETED" && r.stored) {
        // Its deletion was committed first (deleteResultsData), the removal of its data after it: a
        // crash in between leaves the data to be removed here.
        r.stored = false;
        this.store.result(r);
        this.store.deleteResultData(r.id);
      }
      if (r.status === "COMPLETED" && this.sessions.get(r.sessionId)?.status === "PURGED") {
        // The session's purge was committed first (changeSessionDurably), its results' after it: a
        // crash in between leaves them to be purged here.
        this.dropResultData(r);
        continue;
      }
      if (r.status === "COMPLETED") this.resultBytes += r.size;
    }
    // Finished tasks stay in the store: counted, not held (issue 18 item 2).
    for (const f of state.finished ?? []) {
      this.table.counts.add(f.partitionId, f.status, f.count);
      this.table.sessionCounts.add(f.sessionId, f.status, f.count);
      const session = this.sessions.get(f.sessionId);
      if (session) session.taskCount += f.count;
    }
    this.seq = Math.max(this.seq, state.nextSeq ?? 0);
    this.resultBytes += state.storedResultBytes ?? 0;
    this.resultCount = state.resultCount ?? state.results.length;
    let requeued = 0;
    let lost = 0;
    for (const t of state.tasks) {
      upgradeTask(t);
      this.table.holdTask(t);
      this.table.counts.add(t.options.partitionId, t.status);
      this.table.sessionCounts.add(t.sessionId, t.status);
      this.seq = Math.max(this.seq, t.seq + 1);
      t.remainingDeps = 0;
      if (!FINAL_TASK_STATUSES.has(t.status)) this.residency.pin(t);
      const session = this.sessions.get(t.sessionId);
      if (session) session.taskCount++;
    }
    for (const t of state.tasks) {
      if (this.sessions.get(t.sessionId)?.status === "CANCELLED" && !FINAL_TASK_STATUSES.has(t.status)) {
        // The session's cancellation was committed first (changeSessionDurably), its tasks' after it:
        // a crash in between leaves them to be cancelled here.
        this.closeAttempt(t, "CANCELLED", t.error);
        this.finishTask(t, "CANCELLED", `session ${t.sessionId} was cancelled`);
        continue;
      }
      switch (t.status) {
        case "DISPATCHED":
        case "PROCESSING":
          // Its worker may still be running it: a restart of ours is not charged to the task.
          lost++;
          t.workerId = null;
          this.orphans.set(t.id, t);
          break;
        case "CANCELLING":
          this.closeAttempt(t, "CANCELLED", t.error);
          this.finishTask(t, "CANCELLED", t.error ?? "cancelled");
          break;
        case "SUBMITTED":
        case "RETRIED":
          requeued++;
          this.enqueue(t, t.status);
          break;
        case "PAUSED":
          if (this.sessions.get(t.sessionId)?.status !== "PAUSED") this.enqueue(t);
          break;
        case "PENDING":
          this.trackDependencies(t);
          break;
        default:
          break;
      }
    }
    if (this.orphans.size > 0) {
      setTimeout(() => this.releaseOrphans(), this.opts.orphanGraceMs ?? 4000).unref();
    }
    const requestTasks = state.requestTasks ?? [];
    const answered =
      requestTasks.length === 0
        ? state.tasks
        : [...state.tasks, ...requestTasks].sort((a, b) => a.seq - b.seq);
    this.keptRequests = matchRequests(state.requests ?? [], answered);
    return { tasks: state.tasks.length, requeued, lost };
  }

  /** The keyed submissions the store kept, with their tasks (once: tasks.submit takes them at start). */
  takeKeptRequests(): { key: string; at: number; tasks: Task[] }[] {
    const kept = this.keptRequests;
    this.keptRequests = [];
    return kept;
  }

  /** The orphan grace is over: what no worker came back for runs again, charged as a lost attempt. */
  private releaseOrphans(): void {
    for (const t of this.orphans.values()) {
      if (t.workerId !== null || (t.status !== "DISPATCHED" && t.status !== "PROCESSING")) continue;
      this.failAttempt(t, "its worker did not come back after the server restarted", true);
    }
    this.orphans.clear();
  }

  setLink(link: WorkerLink): void {
    this.dispatcher.setLink(link);
  }

  // ---- sessions ------------------------------------------------------------------------------------

  createSession(
    defaultTaskOptions: Partial<TaskOptions>,
    partitionIds: string[],
    owner: string | null = null,
  ): Session {
    const session: Session = {
      id: this.ids.next("s"),
      status: "RUNNING",
      owner,
      createdAt: Date.now(),
      defaultTaskOptions: mergeTaskOptions(defaultTaskOptions),
      partitionIds,
      taskCount: 0,
      clientSubmission: true,
      workerSubmission: true,
      cancelledAt: null,
      closedAt: null,
      purgedAt: null,
      deletedAt: null,
    };
    if (partitionIds.length > 0 && defaultTaskOptions.partitionId === undefined) {
      session.defaultTaskOptions.partitionId = partitionIds[0];
    }
    this.sessions.set(session.id, session);
    this.store.session(session);
    return session;
  }

  /** Undoes createSession, whose commit the store refused: nothing of the session is kept. */
  withdrawSession(session: Session): void {
    if (this.sessions.get(session.id) === session) this.sessions.delete(session.id);
    this.store.discard([], [], [session]);
  }

  session(id: string): Session {
    const s = this.sessions.get(id);
    if (!s) throw notFound(`session ${id} does not exist`);
    return s;
  }

  /** A session, or the record of one deleted lately (kept DELETED_RETENTION_MS, at most MAX_DELETED). */
  sessionRecord(id: string): Session {
    const s = this.sessions.get(id) ?? this.deletedSessions.get(id);
    if (!s) throw notFound(`session ${id} does not exist`);
    return s;
  }

  private rememberDeleted(session: Session): void {
    this.deletedSessions.set(session.id, session);
    const before = Date.now() - DELETED_RETENTION_MS;
    for (const [id, s] of this.deletedSessions) {
      if (this.deletedSessions.size <= MAX_DELETED && (s.deletedAt ?? 0) >= before) break;
      this.deletedSessions.delete(id);
    }
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
  findResult(id: string): Result | undefined {
    const r = this.results.get(id);
    if (r) return r;
    const stored = this.store.getResult(id);
    return stored && this.sessions.has(stored.sessionId) ? stored : undefined;
  }

  /**
   * As findResult for many ids, in their order: those not in memory are read from the store a few
   * hundred a query, not one a round trip; with `withData`, the data kept in their own row comes too
   * (`data`, by id: what dataOf would read).
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
      if (!r) missing.push(ids[i]);
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

  /** A result of `sessionId`, else NOT_FOUND or INVALID_ARGUMENT naming the other session. */
  sessionResult(sessionId: string, id: string, what = "result", parent: Task | null = null): Result {
    const r = this.findResult(id);
    // A result a running attempt created exists only for that attempt (its children may use it).
    if (!r || this.staged.hides(id, parent)) throw notFound(`${what} ${id} does not exist`);
    if (r.sessionId !== sessionId) {
      throw invalidArgument(`${what} ${id} belongs to session ${r.sessionId}, not to session ${sessionId}`);
    }
    return r;
  }

  /** A client's results.create; `createdBy`: the client's user. */
  createResults(sessionId: string, items: NewResult[], createdBy = "client"): Result[] {
    const session = this.session(sessionId);
    this.requireOpen(session);
    this.requireBatch(items.length, "results");
    let bytes = 0;
    for (const item of items) bytes += item.data?.length ?? 0;
    this.checkDataRoom(bytes);
    const by = this.user(createdBy);
    return items.map((item) => this.newResult(sessionId, item.name, by, item.data));
  }

  /** Takes back results whose creation the store refused (see withdrawTasks). */
  withdrawResults(results: readonly Result[]): void {
    this.store.discard([], results);
    for (const r of results) {
      if (r.status === "COMPLETED") this.resultBytes -= r.size;
      this.results.delete(r.id);
      this.resultCount--;
    }
  }

  /** One shared string per user, so that what a user creates does not each hold a copy of its name. */
  private user(name: string): string {
    const known = this.users.get(name);
    if (known !== undefined) return known;
    if (this.users.size < MAX_INTERNED_USERS) this.users.set(name, name);
    return name;
  }

  /** A new result; with `staging` it belongs to a running attempt and is announced only when committed. */
  private newResult(
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

  /** Throws unless a client may upload data for this result now. */
  checkUploadable(resultId: string): Result {
    const r = this.result(resultId);
    if (r.status !== "CREATED") {
      throw failedPrecondition(`result ${resultId} is ${r.status}: only a CREATED result takes data`);
    }
    if (r.ownerTaskId !== null) {
      const owner = this.tasks.get(r.ownerTaskId);
      if (owner && !FINAL_TASK_STATUSES.has(owner.status)) {
        throw failedPrecondition(
          `result ${resultId} is an expected output of task ${owner.id}, which will produce it`,
        );
      }
    }
    return r;
  }

  /** Why the memory store takes no more data: what it holds, its cap, what to do. */
  private memoryFull(bytes: number): string {
    const mb = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
    return `the ${this.store.name} store holds ${mb(this.resultBytes)} of result data and may hold ${mb(this.maxMemoryResultBytes)} (--memory-store-mb): ${mb(bytes)} more do not fit; purge or delete finished sessions, or use the SQLite store`;
  }

  /** Refuses `bytes` of new result data that a store keeping data in memory has no room for. */
  checkDataRoom(bytes: number): void {
    if (bytes > 0 && this.resultBytes + bytes > this.maxMemoryResultBytes)
      throw new ZgridError(ErrorCode.RESOURCE_EXHAUSTED, this.memoryFull(bytes));
  }

  /** A client's upload: allowed for a result no task is due to produce. */
  uploadResult(resultId: string, data: Buffer): Result {
    const r = this.checkUploadable(resultId);
    this.checkDataRoom(data.length);
    this.completeResult(r, data);
    return r;
  }

  /**
   * A client's upload, durable before anything sees it: the completed result is committed first, and
   * only then completed in memory (its waiters answered, its dependents queued). A commit the store
   * refuses changes nothing (issue 13 item 3). One upload of a result at a time.
   */
  async uploadResultDurably(resultId: string, data: Buffer): Promise<Result> {
    const r = this.checkUploadable(resultId);
    this.checkDataRoom(data.length);
    if (this.uploading.has(resultId))
      throw failedPrecondition(`an upload of result ${resultId} is under way: wait for its answer`);
    const staged: Result = { ...r, status: "COMPLETED", data, size: data.length, completedAt: Date.now() };
    this.uploading.add(resultId);
    try {
      this.store.result(staged);
      try {
        await this.store.flush();
      } catch (err) {
        this.store.discard([], [staged]);
        throw err;
      }
      // The data is on disk already: completing the result rewrites its row, not its data.
      r.stored = staged.stored;
      return this.uploadResult(resultId, data);
    } finally {
      this.uploading.delete(resultId);
    }
  }

  /** A range of a COMPLETED result's data, from memory or from the store. */
  resultRange(resultId: string, offset: number, length: number): { data: Buffer; size: number } {
    const r = this.result(resultId);
    if (r.status !== "COMPLETED") {
      throw failedPrecondition(
        `result ${resultId} is ${r.status}: its data can be downloaded once it is COMPLETED`,
      );
    }
    const end = Math.min(r.size, offset + length);
    if (offset > r.size)
      throw invalidArgument(`offset ${offset} is past the end of result ${resultId} (${r.size} bytes)`);
    const held = r.data ?? this.cache.get(r.id);
    const data = held ? held.subarray(offset, end) : this.store.readData(r.id, offset, end - offset);
    return { data, size: r.size };
  }

  /** A COMPLETED result's data: from memory, from the cache of recent outputs, or from the store. */
  resultData(resultId: string): Buffer {
    return this.dataOf(this.result(resultId));
  }

  /** As resultData, for a result record in hand (of result() or findResults()). */
  dataOf(r: Result): Buffer {
    const resultId = r.id;
    if (r.status === "COMPLETED") {
      const held = r.data ?? this.cache.get(r.id);
      if (held) return held;
      if (r.stored) return this.store.readData(r.id, 0, r.size);
    }
    if (r.status === "DELETED")
      throw failedPrecondition(
        `result ${resultId} is DELETED: its data was deleted (results.deleteData, or a purge)`,
      );
    throw failedPrecondition(
      `result ${resultId} is ${r.status}: its data can be downloaded once it is COMPLETED`,
    );
  }

  /**
   * The store has committed these results' data: task outputs leave the server's memory for the cache
   * of recent outputs (bounded), so that memory follows live work, not history (issue 18 item 1). Data
   * a client gave (payloads, inputs) stays while its session lives: tasks read it when dispatched.
   */
  private dataStored(results: readonly Result[]): void {
    for (const r of results) {
      if (r.ownerTaskId === null || r.status !== "COMPLETED" || !r.data || !r.stored) continue;
      this.cache.put(r.id, r.data);
      r.data = null;
    }
  }

  private completeResult(r: Result, data: Buffer): void {
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
  private abortResult(r: Result): void {
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
    // Results no longer in memory are read from the store together, not one a round trip.
    const { results } = this.findResults(spec.resultIds);
    const stored = new Map<string, Result>();
    results.forEach((r, i) => {
      if (r && !this.results.has(r.id)) stored.set(spec.resultIds[i], r);
    });
    return this.waiters.wait(spec, (id) => {
      const r = this.results.get(id) ?? stored.get(id);
      if (!r || this.staged.holds(id)) throw notFound(`result ${id} does not exist`);
      return r.status;
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

  /**
   * Submits a batch atomically: every task is checked before any is created, so a bad task leaves the
   * session unchanged.
   */
  submitTasks(
    sessionId: string,
    submissionOptions: Partial<TaskOptions>,
    items: TaskSubmission[],
    createdBy = "client",
  ): Task[] {
    const session = this.session(sessionId);
    this.requireSubmission(session, "client");
    this.requireBatch(items.length, "tasks");
    const options = this.validateSubmission(session, submissionOptions, items, null);
    if (this.maxMemoryResultBytes !== Infinity) {
      let bytes = 0;
      for (const item of items) bytes += item.payload?.length ?? 0;
      this.checkDataRoom(bytes);
    }
    const tasks = this.buildTasks(sessionId, items, options, null, this.user(createdBy), null);
    for (const t of tasks) this.insertTask(t);
    this.residency.submitted(tasks.length);
    return tasks;
  }

  /**
   * Takes back a submission whose commit the store refused (a full disk), so that a reply of failure
   * means nothing happened: its tasks and the results it created leave memory and the store's pending
   * writes, expected outputs it was given are owned by no task again, and a task a worker already
   * received is cancelled there. Subscribers were told of the tasks; they are not told of this.
   */
  withdrawTasks(tasks: readonly Task[], items: readonly TaskSubmission[]): void {
    if (tasks.length === 0) return;
    const gone = new Set(tasks);
    const created: Result[] = [];
    const byWorker = new Map<string, string[]>();
    for (const q of this.table.queues.values()) q.remove((t) => gone.has(t));
    tasks.forEach((t, i) => {
      this.table.releaseTask(t);
      if (!FINAL_TASK_STATUSES.has(t.status)) this.residency.unpin(t);
      if (t.workerId !== null) {
        this.workers.get(t.workerId)?.inflight.delete(t.id);
        let ids = byWorker.get(t.workerId);
        if (!ids) byWorker.set(t.workerId, (ids = []));
        ids.push(t.id);
      }
      this.table.counts.remove(t.options.partitionId, t.status);
      this.table.sessionCounts.remove(t.sessionId, t.status);
      const session = this.sessions.get(t.sessionId);
      if (session) session.taskCount--;
      for (const id of [t.payloadId, ...t.dataDependencies]) {
        const waiting = this.dependents.get(id);
        if (!waiting) continue;
        const kept = waiting.filter((w) => !gone.has(w));
        if (kept.length > 0) this.dependents.set(id, kept);
        else this.dependents.delete(id);
      }
      const item = items[i];
      // The results the submission made for this task: its inline payload, outputs it was not given.
      if (item.payloadId === undefined) created.push(this.results.get(t.payloadId)!);
      const madeOutputs = item.expectedOutputIds === undefined || item.expectedOutputIds.length === 0;
      for (const id of t.expectedOutputIds) {
        const r = this.results.get(id);
        if (!r) continue;
        if (madeOutputs) created.push(r);
        else if (r.ownerTaskId === t.id) r.ownerTaskId = null;
      }
    });
    this.store.discard(tasks, []);
    this.withdrawResults(created);
    for (const [workerId, ids] of byWorker)
      this.dispatcher.cancel(workerId, ids, "its submission was refused");
  }

  /**
   * Checks a batch before anything is created. `parent`: the task submitting children through its
   * agent; its own expected outputs may be handed to a child (delegation).
   */
  private validateSubmission(
    session: Session,
    submissionOptions: Partial<TaskOptions>,
    items: TaskSubmission[],
    parent: Task | null,
  ): TaskOptions[] {
    const sessionId = session.id;
    const claimed = new Set<string>();
    const options: TaskOptions[] = new Array(items.length);
    let shared: TaskOptions | undefined;
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      const where = `tasks[${i}]`;
      if (item.payloadId !== undefined)
        this.sessionResult(sessionId, item.payloadId, `${where}.payloadId`, parent);
      else if (item.payload === undefined)
        throw invalidArgument(`${where} needs a payloadId or an inline payload`);
      for (const id of item.expectedOutputIds ?? []) {
        const r = this.sessionResult(sessionId, id, `${where} expected output`, parent);
        if (r.status !== "CREATED")
          throw failedPrecondition(`${where}: expected output ${id} is ${r.status}, not CREATED`);
        if (r.ownerTaskId !== null && r.ownerTaskId !== parent?.id) {
          const owner = this.tasks.get(r.ownerTaskId);
          if (owner && !FINAL_TASK_STATUSES.has(owner.status)) {
            throw failedPrecondition(`${where}: expected output ${id} is already owned by task ${owner.id}`);
          }
        }
        if (claimed.has(id))
          throw invalidArgument(`${where}: expected output ${id} appears twice in this submission`);
        claimed.add(id);
      }
      for (const id of item.dataDependencies ?? [])
        this.sessionResult(sessionId, id, `${where} data dependency`, parent);
      // Tasks without options of their own share one merged object: a million queued tasks, one copy.
      const merged =
        item.taskOptions === undefined
          ? (shared ??= mergeTaskOptions(session.defaultTaskOptions, submissionOptions))
          : mergeTaskOptions(session.defaultTaskOptions, submissionOptions, item.taskOptions);
      if (session.partitionIds.length > 0 && !session.partitionIds.includes(merged.partitionId)) {
        throw invalidArgument(
          `${where}: partition "${merged.partitionId}" is not one of the session's partitions (${session.partitionIds.join(", ")})`,
        );
      }
      options[i] = merged;
    }
    return options;
  }

  /**
   * Makes the Task objects and their inline payload / new output results; inserts no task. `createdBy`:
   * the client's user, or the parent's id when `parent` submits them through its agent.
   */
  private buildTasks(
    sessionId: string,
    items: TaskSubmission[],
    options: TaskOptions[],
    staging: AttemptStaging | null,
    createdBy: string,
    parent: Task | null,
  ): Task[] {
    const now = this.clock.now();
    const created: Task[] = new Array(items.length);
    const result = (name: string, data?: Buffer): string => {
      const r = this.newResult(sessionId, name, createdBy, data, staging);
      return r.id;
    };
    let lastPayloadId: string | null = null;
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      const id = this.ids.next("t");
      let payloadId: string;
      if (item.payloadId === undefined) payloadId = result("payload", item.payload);
      else {
        // The result's own id string, not the copy each task of the request was decoded with: a
        // million tasks sharing a payload keep one string, not a million.
        if (item.payloadId !== lastPayloadId)
          lastPayloadId = this.results.get(item.payloadId)?.id ?? item.payloadId;
        payloadId = lastPayloadId;
      }
      let outputs = item.expectedOutputIds;
      if (outputs === undefined || outputs.length === 0) {
        const n = item.outputCount ?? (outputs === undefined ? 1 : 0);
        // Sized to fit: an array grown by push keeps room for 17 ids, 150 bytes per queued task.
        if (n === 1) outputs = [result(OUTPUT_NAMES[0])];
        else {
          outputs = new Array<string>(n);
          for (let k = 0; k < n; k++) outputs[k] = result(OUTPUT_NAMES[k] ?? `output-${k}`);
        }
      }
      created[i] = {
        id,
        sessionId,
        payloadId,
        expectedOutputIds: outputs,
        dataDependencies: item.dataDependencies ?? NO_IDS,
        options: options[i],
        status: "PENDING",
        seq: 0,
        createdAt: now,
        submittedAt: null,
        startedAt: null,
        endedAt: null,
        createdBy,
        parentTaskId: parent === null ? null : parent.id,
        error: null,
        attempts: NO_ATTEMPTS,
        remainingDeps: 0,
        workerId: null,
      };
    }
    return created;
  }

  /** Makes a built task live: known, owning its outputs, queued once its dependencies are there. */
  private insertTask(task: Task): void {
    task.seq = this.seq++;
    this.table.counts.add(task.options.partitionId, "PENDING");
    this.table.sessionCounts.add(task.sessionId, "PENDING");
    this.store.task(task);
    this.table.holdTask(task);
    const session = this.sessions.get(task.sessionId);
    if (session) session.taskCount++;
    this.events.newTask(task);
    this.residency.pin(task);
    for (const out of task.expectedOutputIds) {
      const r = this.results.get(out);
      if (!r) continue;
      const previous = r.ownerTaskId;
      r.ownerTaskId = task.id;
      this.store.result(r);
      this.events.resultOwner(r, previous);
    }
    this.trackDependencies(task);
  }

  // ---- the agent: what a running task creates, staged until it succeeds ----------------------------

  /** The task `taskId` if it is running on `workerId`, else FAILED_PRECONDITION. */
  private runningTask(workerId: string, taskId: string): Task {
    const t = this.tasks.get(taskId);
    if (!t || t.workerId !== workerId || (t.status !== "DISPATCHED" && t.status !== "PROCESSING")) {
      throw failedPrecondition(
        `task ${taskId} is not running on worker ${workerId}: its agent calls are refused`,
      );
    }
    return t;
  }

  agentCreateResults(workerId: string, taskId: string, items: NewResult[]): Result[] {
    const task = this.runningTask(workerId, taskId);
    this.requireBatch(items.length, "results");
    const st = this.staged.of(task);
    return items.map((item) => {
      const r = this.newResult(task.sessionId, item.name, task.id, undefined, st);
      if (item.data) st.uploads.set(r.id, item.data);
      return r;
    });
  }

  agentUpload(workerId: string, taskId: string, resultId: string, data: Buffer): void {
    const task = this.runningTask(workerId, taskId);
    const st = this.staged.of(task);
    const r = this.sessionResult(task.sessionId, resultId);
    const own =
      st.results.has(resultId) || (task.expectedOutputIds.includes(resultId) && r.ownerTaskId === task.id);
    if (!own)
      throw failedPrecondition(
        `task ${taskId} may upload only results it created or its expected outputs, not ${resultId}`,
      );
    if (r.status !== "CREATED")
      throw failedPrecondition(`result ${resultId} is ${r.status}: only a CREATED result takes data`);
    st.uploads.set(resultId, data);
  }

  agentSubmit(
    workerId: string,
    taskId: string,
    submissionOptions: Partial<TaskOptions>,
    items: TaskSubmission[],
  ): Task[] {
    const task = this.runningTask(workerId, taskId);
    const session = this.session(task.sessionId);
    this.requireSubmission(session, "worker");
    this.requireBatch(items.length, "tasks");
    const options = this.validateSubmission(session, submissionOptions, items, task);
    const st = this.staged.of(task);
    const children = this.buildTasks(task.sessionId, items, options, st, task.id, task);
    st.children.push(...children);
    return children;
  }

  agentGetData(workerId: string, taskId: string, resultIds: string[]): Buffer[] {
    const task = this.runningTask(workerId, taskId);
    const st = this.staged.get(task.id);
    return resultIds.map((id) => {
      const own = st?.uploads.get(id);
      if (own) return own;
      this.sessionResult(task.sessionId, id);
      return this.resultData(id);
    });
  }

  /** A failed or retried attempt leaves nothing behind: its results and children vanish. */
  private discardStaging(task: Task): void {
    const st = this.staged.take(task.id);
    if (!st) return;
    for (const id of st.results) {
      this.results.delete(id);
      this.dependents.delete(id);
    }
  }

  /** Queues the task now if its payload and dependencies are COMPLETED, else waits for them. */
  private trackDependencies(task: Task): void {
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

  private setStatus(task: Task, status: TaskStatus): void {
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

  private enqueue(task: Task, status: TaskStatus = "SUBMITTED"): void {
    if (task.submittedAt === null) task.submittedAt = this.clock.now();
    if (this.sessions.get(task.sessionId)?.status === "PAUSED") {
      this.setStatus(task, "PAUSED");
      return;
    }
    if (task.status !== status) this.setStatus(task, status);
    this.table.queue(task.options.partitionId).push(task);
    this.dispatcher.schedule();
  }

  // ---- workers -------------------------------------------------------------------------------------

  /** `task` goes to worker `w`: its new attempt first (the status event carries its times). */
  private assign(task: Task, w: WorkerState, now: number): void {
    newAttempt(task, w.id, now);
    task.workerId = w.id;
    this.setStatus(task, "DISPATCHED");
    w.inflight.add(task.id);
  }

  /** A worker's applications changed (APPS: it was given new modules): it may take other tasks now. */
  setWorkerApps(workerId: string, apps: AppSet): void {
    const w = this.workers.get(workerId);
    if (!w) return;
    w.apps = apps;
    this.dispatcher.schedule();
  }

  addWorker(
    info: Omit<WorkerState, "inflight" | "avgTaskMs" | "avgPayloadBytes" | "connectedAt" | "lastHeartbeat">,
  ): WorkerState {
    const existing = this.workers.get(info.id);
    if (existing) {
      // The same worker process saying READY again (it thought the server lost): its tasks are still
      // running there, so they stay its own rather than being retried elsewhere.
      existing.partitions = info.partitions;
      existing.slots = info.slots;
      existing.capacity = info.capacity;
      existing.columns = info.columns;
      existing.apps = info.apps;
      existing.lastHeartbeat = Date.now();
      this.dispatcher.schedule();
      return existing;
    }
    const w: WorkerState = {
      ...info,
      inflight: new Set(),
      avgTaskMs: null,
      avgPayloadBytes: 0,
      connectedAt: Date.now(),
      lastHeartbeat: Date.now(),
    };
    this.workers.set(w.id, w);
    this.log.info({ worker: w.id, partitions: w.partitions, slots: w.slots }, "worker joined");
    this.dispatcher.schedule();
    return w;
  }

  /** A worker that left or died: its tasks are retried elsewhere while their retries allow. */
  removeWorker(workerId: string, reason: string): void {
    const w = this.workers.get(workerId);
    if (!w) return;
    this.workers.delete(workerId);
    // Leaving with tasks in hand is worth a warning; a clean goodbye is not.
    this.log[w.inflight.size > 0 ? "warn" : "info"](
      { worker: workerId, tasks: w.inflight.size, reason },
      "worker left",
    );
    for (const taskId of w.inflight) {
      const task = this.tasks.get(taskId);
      if (task) this.failAttempt(task, `worker ${workerId} was lost (${reason})`, true);
    }
    this.dispatcher.schedule();
  }

  /**
   * A worker id taken by a new connection: its process restarted (same `--worker-id`), and what the old
   * process was given and the new one does not hold is lost with it, retried while retries allow.
   */
  releaseUnheld(workerId: string, held: readonly string[]): void {
    const w = this.workers.get(workerId);
    if (!w || w.inflight.size === 0) return;
    const keep = new Set(held);
    const lost = [...w.inflight].filter((id) => !keep.has(id));
    if (lost.length === 0) return;
    this.log.warn({ worker: workerId, tasks: lost.length }, "worker restarted without tasks it held");
    for (const id of lost) {
      w.inflight.delete(id);
      const task = this.tasks.get(id);
      if (task && task.workerId === workerId)
        this.failAttempt(task, `worker ${workerId} restarted without it`, true);
    }
    this.dispatcher.schedule();
  }

  /**
   * A worker (re)joining says which tasks it still holds. Those it already has, or that wait in a queue
   * (requeued after a restart of the server), become its own again; the ids of the others are returned
   * so that the worker drops them.
   */
  adoptTasks(workerId: string, taskIds: string[]): string[] {
    const w = this.workers.get(workerId);
    if (!w) return taskIds;
    const adopt = new Set<string>();
    const notYours: string[] = [];
    // Never more than the worker's credit allows, whatever it claims to hold.
    let room = w.capacity - w.inflight.size;
    for (const id of taskIds) {
      if (room <= 0) {
        if (!(this.tasks.get(id)?.workerId === workerId && w.inflight.has(id))) notYours.push(id);
        continue;
      }
      const t = this.tasks.get(id);
      if (t && t.workerId === workerId && w.inflight.has(id)) continue;
      const orphan = this.orphans.get(id);
      if (
        orphan &&
        this.tasks.get(id) === orphan &&
        orphan.workerId === null &&
        (orphan.status === "DISPATCHED" || orphan.status === "PROCESSING") &&
        orphan.attempts.at(-1)?.workerId === workerId
      ) {
        // Still running where it was when the server stopped: the same attempt goes on.
        this.orphans.delete(id);
        orphan.workerId = workerId;
        w.inflight.add(id);
        room--;
        continue;
      }
      if (
        t &&
        (t.status === "SUBMITTED" || t.status === "RETRIED") &&
        w.partitions.includes(t.options.partitionId)
      ) {
        adopt.add(id);
        room--;
      } else notYours.push(id);
    }
    if (adopt.size === 0) return notYours;
    const now = Date.now();
    for (const q of this.table.queues.values()) {
      for (const t of q.remove((t) => adopt.has(t.id))) this.assign(t, w, now);
    }
    return notYours;
  }

  /**
   * Ends as TIMEOUT every running task past its maxDuration by more than `graceMs` that its worker has
   * not reported (a worker gone quiet about a task, or one that ignores the limit), and tells the
   * worker to drop it. Called on the heartbeat tick.
   */
  expireOverdue(now: number, graceMs: number): void {
    for (const w of this.workers.values()) {
      let overdue: Task[] | null = null;
      for (const id of w.inflight) {
        const t = this.tasks.get(id);
        if (!t || t.status !== "PROCESSING" || t.options.maxDuration <= 0) continue;
        if (now - t.attempts[t.attempts.length - 1].startedAt > t.options.maxDuration + graceMs)
          (overdue ??= []).push(t);
      }
      if (!overdue) continue;
      for (const t of overdue) {
        const why = `maxDuration ${t.options.maxDuration} ms exceeded and worker ${w.id} did not stop the task`;
        w.inflight.delete(t.id);
        this.closeAttempt(t, "TIMEOUT", why);
        this.finishTask(t, "TIMEOUT", why);
      }
      this.dispatcher.cancel(
        w.id,
        overdue.map((t) => t.id),
        "maxDuration exceeded (ended by the server)",
      );
      this.dispatcher.schedule();
    }
  }

  tasksStarted(workerId: string, taskIds: string[]): void {
    const w = this.workers.get(workerId);
    if (!w) return;
    const now = Date.now();
    for (const id of taskIds) {
      const task = this.tasks.get(id);
      if (!task || task.workerId !== workerId || task.status !== "DISPATCHED") continue;
      task.startedAt = now;
      task.attempts[task.attempts.length - 1].startedAt = now;
      this.setStatus(task, "PROCESSING");
    }
  }

  /**
   * Completions from one worker. A completion is taken only from the worker that holds the task, and
   * only while the task is in flight: a late or repeated report changes nothing (exactly once).
   */
  completeTasks(workerId: string, completions: Completion[]): void {
    const w = this.workers.get(workerId);
    if (!w) return;
    const now = Date.now();
    for (const c of completions) {
      const task = this.tasks.get(c.taskId);
      if (!task || task.workerId !== workerId || !w.inflight.has(task.id)) continue;
      w.inflight.delete(task.id);
      if (c.status !== "CANCELLED") {
        // Run time from the start on a slot (or from dispatch, if STARTED never came).
        const ms = now - task.attempts[task.attempts.length - 1].startedAt;
        this.dispatcher.ranFor(w, ms);
      }
      if (task.status === "CANCELLING") {
        this.closeAttempt(task, "CANCELLED", "cancelled");
        this.finishTask(task, "CANCELLED", task.error ?? "cancelled");
        continue;
      }
      switch (c.status) {
        case "COMPLETED":
          this.succeedTask(task, c.output ?? Buffer.alloc(0));
          break;
        case "FAILED":
          this.failAttempt(task, c.error ?? "the application failed", false);
          break;
        case "ERROR":
        case "TIMEOUT":
        case "CANCELLED":
          this.closeAttempt(task, c.status, c.error ?? null);
          this.finishTask(task, c.status, c.error ?? null);
          break;
        default:
          this.closeAttempt(task, "ERROR", `worker reported unknown status ${String(c.status)}`);
          this.finishTask(task, "ERROR", `worker reported unknown status ${String(c.status)}`);
      }
    }
    this.dispatcher.schedule();
  }

  private closeAttempt(task: Task, status: string, error: string | null): void {
    const a = task.attempts[task.attempts.length - 1];
    if (a && a.endedAt === null) {
      a.endedAt = Date.now();
      a.status = status;
      a.error = error;
    }
  }

  /**
   * A successful attempt: every expected output must be produced (the returned value completes the
   * first), uploaded through the agent, or delegated to a child; then what the attempt staged is
   * committed, and the outputs completed.
   */
  private succeedTask(task: Task, output: Buffer): void {
    this.closeAttempt(task, "COMPLETED", null);
    const st = this.staged.get(task.id);
    const [first] = task.expectedOutputIds;
    const missing = this.missingOutputs(task, st);
    if (missing.length > 0) {
      this.finishTask(task, "ERROR", `the task returned without producing its outputs ${missing.join(", ")}`);
      return;
    }
    let bytes = output.length;
    if (st) for (const data of st.uploads.values()) bytes += data.length;
    if (this.resultBytes + bytes > this.maxMemoryResultBytes) {
      this.discardStaging(task);
      this.finishTask(task, "ERROR", this.memoryFull(bytes));
      return;
    }
    task.workerId = null;
    task.endedAt = Date.now();
    if (st) {
      this.staged.take(task.id);
      for (const id of st.results) {
        const r = this.results.get(id);
        if (r) {
          this.resultCount++;
          this.events.newResult(r);
          this.store.result(r);
        }
      }
      for (const [id, data] of st.uploads) {
        const r = this.results.get(id);
        if (r && r.status === "CREATED" && !task.expectedOutputIds.includes(id)) this.completeResult(r, data);
      }
      for (const child of st.children) this.insertTask(child);
    }
    this.setStatus(task, "COMPLETED");
    this.onTaskEnd?.(task);
    for (const id of task.expectedOutputIds) {
      const r = this.results.get(id);
      if (!r || r.ownerTaskId !== task.id || r.status !== "CREATED") continue;
      const uploaded = st?.uploads.get(id);
      if (uploaded) this.completeResult(r, uploaded);
      else if (id === first) this.completeResult(r, output);
    }
  }

  /**
   * The expected outputs of a task that returned which it did not produce: any after the first (the
   * returned value completes that one) neither uploaded nor delegated to a child. A task of one output
   * (most) has none to check: no set or list is made for it.
   */
  private missingOutputs(task: Task, st: AttemptStaging | undefined): string[] {
    const outs = task.expectedOutputIds;
    if (outs.length <= 1) return NO_IDS;
    const delegated = new Set<string>();
    if (st) for (const child of st.children) for (const id of child.expectedOutputIds) delegated.add(id);
    const missing: string[] = [];
    for (let i = 1; i < outs.length; i++) {
      const id = outs[i];
      const r = this.results.get(id);
      if (!r || r.ownerTaskId !== task.id || r.status !== "CREATED") continue;
      if (!delegated.has(id) && !st?.uploads.has(id)) missing.push(id);
    }
    return missing;
  }

  /** An attempt that may be retried: crash, lost worker, uncaught exception. */
  private failAttempt(task: Task, error: string, lost: boolean): void {
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
  private finishTask(task: Task, status: TaskStatus, error: string | null): void {
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

  // ---- session life cycle and cancellation (design §5) ---------------------------------------------

  private transition(sessionId: string, to: SessionStatus, allowed: readonly SessionStatus[]): Session {
    const session = this.session(sessionId);
    if (!allowed.includes(session.status)) {
      throw failedPrecondition(
        `session ${sessionId} is ${session.status}: it cannot become ${to} (allowed from ${allowed.join(", ")})`,
      );
    }
    return session;
  }

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

  /** Queued tasks are cancelled, running ones stopped on their workers, CREATED results aborted. */
  cancelSession(sessionId: string): { cancelled: Record<string, number> } {
    const session = this.transition(sessionId, "CANCELLED", ["RUNNING", "PAUSED", "CLOSED"]);
    session.cancelledAt = Date.now();
    this.setSessionStatus(session, "CANCELLED");
    const cancelled = this.cancel(this.table.sessionTasks(sessionId), `session ${sessionId} was cancelled`);
    for (const r of this.results.values()) if (r.sessionId === sessionId) this.abortResult(r);
    return { cancelled };
  }

  pauseSession(sessionId: string): void {
    const session = this.transition(sessionId, "PAUSED", ["RUNNING"]);
    this.setSessionStatus(session, "PAUSED");
    for (const q of this.table.queues.values()) {
      for (const t of q.remove((t) => t.sessionId === sessionId)) this.setStatus(t, "PAUSED");
    }
  }

  resumeSession(sessionId: string): void {
    const session = this.transition(sessionId, "RUNNING", ["PAUSED"]);
    this.setSessionStatus(session, "RUNNING");
    for (const t of this.table.sessionTasks(sessionId)) if (t.status === "PAUSED") this.enqueue(t);
  }

  closeSession(sessionId: string): void {
    const session = this.transition(sessionId, "CLOSED", ["RUNNING", "PAUSED"]);
    session.closedAt = Date.now();
    this.setSessionStatus(session, "CLOSED");
  }

  /** sessions.stopSubmission: clients, running tasks (child tasks), or both submit no more tasks. */
  stopSubmission(sessionId: string, client: boolean, worker: boolean): Session {
    const session = this.session(sessionId);
    if (client) session.clientSubmission = false;
    if (worker) session.workerSubmission = false;
    this.store.session(session);
    return session;
  }

  /** Result data deleted, metadata kept. */
  purgeSession(sessionId: string): { purged: number } {
    const session = this.transition(sessionId, "PURGED", ["CLOSED", "CANCELLED"]);
    session.purgedAt = Date.now();
    this.setSessionStatus(session, "PURGED");
    let purged = 0;
    for (const r of this.results.values()) {
      if (r.sessionId !== sessionId || r.status !== "COMPLETED") continue;
      this.resultBytes -= r.size;
      this.dropResultData(r);
      this.events.resultStatus(r);
      purged++;
    }
    // Those that left memory: their rows say DELETED, their data goes (read once, in slices).
    for (const r of this.store.scanResults([sessionId], (id) => this.results.has(id))) {
      if (r.status !== "COMPLETED") continue;
      this.resultBytes -= r.size;
      this.cache.delete(r.id);
      this.store.deleteStoredResult(r.id);
      r.status = "DELETED";
      r.stored = false;
      this.events.resultStatus(r);
      purged++;
    }
    return { purged };
  }

  /**
   * `results.deleteData` (ArmoniK's DeleteResultsData): the data of COMPLETED results leaves memory, the
   * cache and the store; the results stay, DELETED, so that a download or a task that needs one says
   * why. Committed before it takes effect (a refused commit changes nothing); a restart finishes it.
   */
  async deleteResultsData(resultIds: string[]): Promise<string[]> {
    this.requireBatch(resultIds.length, "results");
    const targets = resultIds.map((id) => this.result(id));
    for (const r of targets) {
      if (r.status !== "COMPLETED" && r.status !== "DELETED")
        throw failedPrecondition(
          `result ${r.id} is ${r.status}: only the data of a COMPLETED result can be deleted`,
        );
    }
    const live = [...new Set(targets.filter((r) => r.status === "COMPLETED"))];
    const staged: Result[] = live.map((r) => ({ ...r, data: null, status: "DELETED" }));
    for (const s of staged) this.store.result(s);
    try {
      await this.store.flush();
    } catch (err) {
      this.store.discard([], staged);
      throw err;
    }
    const deleted: string[] = [];
    for (const r of live) {
      if (r.status !== "COMPLETED") continue;
      this.resultBytes -= r.size;
      this.dropResultData(r);
      this.events.resultStatus(r);
      deleted.push(r.id);
    }
    return deleted;
  }

  /** A COMPLETED result's data deleted, its metadata kept (DELETED). */
  private dropResultData(r: Result): void {
    r.data = null;
    this.cache.delete(r.id);
    r.status = "DELETED";
    r.stored = false;
    this.store.result(r);
    this.store.deleteResultData(r.id);
  }

  /** Everything of the session removed; running tasks are stopped first. */
  deleteSession(sessionId: string): { tasks: number; results: number } {
    const session = this.session(sessionId);
    if (session.status !== "CANCELLED" && session.status !== "PURGED") {
      this.cancel(this.table.sessionTasks(sessionId), `session ${sessionId} was deleted`);
    }
    session.status = "DELETED";
    session.deletedAt = Date.now();
    let tasks = 0;
    let results = 0;
    // Finished records that left memory: counted out here, their rows removed with the session's.
    for (const t of this.store.scanTasks([sessionId], (id) => this.tasks.has(id))) {
      this.table.counts.remove(t.options.partitionId, t.status);
      this.table.sessionCounts.remove(t.sessionId, t.status);
      tasks++;
    }
    for (const r of this.store.scanResults([sessionId], (id) => this.results.has(id))) {
      if (r.status === "COMPLETED") this.resultBytes -= r.size;
      this.cache.delete(r.id);
      this.resultCount--;
      results++;
    }
    for (const t of this.table.sessionTasks(sessionId)) {
      // A task still on a worker stays known until the worker answers, so nothing completes twice.
      if (t.status === "CANCELLING") continue;
      this.table.counts.remove(t.options.partitionId, t.status);
      this.table.sessionCounts.remove(t.sessionId, t.status);
      this.tasks.delete(t.id);
      tasks++;
    }
    for (const [id, r] of this.results) {
      if (r.sessionId !== sessionId) continue;
      if (r.status === "COMPLETED") this.resultBytes -= r.size;
      if (!this.staged.holds(id)) this.resultCount--;
      this.results.delete(id);
      this.cache.delete(id);
      this.dependents.delete(id);
      this.residency.forget(id);
      if (this.waiters.has(id)) {
        r.status = "DELETED";
        this.waiters.settled(r.id, r.status);
      }
      results++;
    }
    this.events.removeSession(sessionId);
    this.sessions.delete(sessionId);
    this.table.releaseSession(sessionId);
    this.rememberDeleted(session);
    this.store.deleteSession(sessionId);
    return { tasks, results };
  }

  /** tasks.cancel: queued and pending tasks end CANCELLED now, running ones once their worker stopped them. */
  cancelTasks(taskIds: string[]): Record<string, number> {
    const tasks = taskIds.map((id) => this.task(id));
    return this.cancel(tasks, "cancelled by request");
  }

  /** Cancels tasks; returns counts by the status each task had (HTC-Grid's cancel_sessions shape). */
  private cancel(tasks: Task[], reason: string): Record<string, number> {
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

  private requireOpen(session: Session): void {
    if (session.status !== "RUNNING" && session.status !== "PAUSED") {
      throw failedPrecondition(
        `session ${session.id} is ${session.status}: it takes no new tasks or results`,
      );
    }
  }

  private requireSubmission(session: Session, by: "client" | "worker"): void {
    this.requireOpen(session);
    if (by === "client" ? !session.clientSubmission : !session.workerSubmission) {
      throw failedPrecondition(
        `session ${session.id} stopped taking ${by === "client" ? "submissions from clients" : "child tasks from its tasks"} (sessions.stopSubmission)`,
      );
    }
  }

  private requireBatch(n: number, what: string): void {
    if (n > this.opts.maxBatch) {
      throw new ZgridError(
        ErrorCode.RESOURCE_EXHAUSTED,
        `${n} ${what} in one request exceeds the limit of ${this.opts.maxBatch}: split the batch`,
      );
    }
  }
}

/**
 * The tasks of each kept keyed submission: `count` consecutive seqs from `firstSeq`, in `tasks` (sorted
 * by seq). A request whose tasks are not all there, or not those it made, is dropped.
 */
function matchRequests(
  requests: readonly KeptRequest[],
  tasks: readonly Task[],
): { key: string; at: number; tasks: Task[] }[] {
  const out: { key: string; at: number; tasks: Task[] }[] = [];
  for (const r of requests) {
    // Binary search: no index of every task for the few requests kept.
    let lo = 0;
    let hi = tasks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (tasks[mid].seq < r.firstSeq) lo = mid + 1;
      else hi = mid;
    }
    const from = lo;
    if (from >= tasks.length || tasks[from].id !== r.firstTaskId) continue;
    const mine = tasks.slice(from, from + r.count);
    if (
      mine.length === r.count &&
      mine.every((t, i) => t.seq === r.firstSeq + i && t.sessionId === r.sessionId)
    )
      out.push({ key: r.key, at: r.at, tasks: mine });
  }
  return out;
}
