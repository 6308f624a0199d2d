import type { Logger } from "../log.js";
import { ZgridError, ErrorCode, failedPrecondition, invalidArgument, notFound } from "../protocol/errors.js";
import { EventHub, newResultEvent, newTaskEvent, wants, type Subscriber } from "./events.js";
import { IdGenerator } from "./ids.js";
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
import { TaskCounts, type StatusCounts } from "./task-counts.js";
import { collectGarbage } from "../gc.js";
import { mergeTaskOptions } from "./task-options.js";
import { type AppQueue, type AppSet, PartitionQueue } from "./task-queue.js";
import { ResultCache } from "./result-cache.js";

/** How long, and how many, deleted sessions' records `sessions.get` still answers (memory only). */
const DELETED_RETENTION_MS = 60 * 60_000;
const MAX_DELETED = 10_000;
/** The cache of recent outputs, by default (`--result-cache-mb`). */
export const DEFAULT_RESULT_CACHE_BYTES = 64 * 2 ** 20;
/** The most result data the memory store holds, by default (`--memory-store-mb`). */
export const DEFAULT_MAX_MEMORY_RESULT_BYTES = 4096 * 2 ** 20;
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
import { ResultWaiters } from "./result-waiters.js";
import type {
  AttemptStaging,
  Completion,
  NewResult,
  SchedulerOptions,
  SchedulerSummary,
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
  readonly sessions = new Map<string, Session>();
  readonly results = new Map<string, Result>();
  readonly tasks = new Map<string, Task>();
  /** session id → its tasks in memory, in submission order: the index of filters naming a session. */
  private readonly tasksBySession = new Map<string, Set<Task>>();
  /**
   * result id → how many unfinished tasks name it (payload or data dependency): such a result stays in
   * memory, where dispatch and dependency tracking find it. Live work only.
   */
  private readonly pins = new Map<string, number>();
  /** Listings that merge the store's records with memory's, under way: nothing leaves memory meanwhile. */
  private scans = 0;
  /** Records committed, by commit, oldest first: their finished ones leave memory (retire). */
  private readonly retiring: { at: number; tasks: Iterator<Task>; results: Iterator<Result> }[] = [];
  private retireTimer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  private readonly runRetire = (): void => this.retire();
  /** Records retire() let go since the last full collection. */
  private retiredSinceGc = 0;
  readonly workers = new Map<string, WorkerState>();
  private readonly queues = new Map<string, PartitionQueue>();
  /** result id → tasks that wait for it (as payload or data dependency). */
  private readonly dependents = new Map<string, Task[]>();
  private readonly waiters = new ResultWaiters();
  private readonly counts = new TaskCounts();
  /** The same counts by session (its id in place of a partition's): `tasks.count` of whole sessions. */
  private readonly sessionCounts = new TaskCounts();
  private readonly ids = new IdGenerator();
  readonly events = new EventHub();
  /** task id → what its running attempt created through the agent, committed only on success. */
  private readonly staged = new Map<string, AttemptStaging>();
  private link: WorkerLink | null = null;
  /**
   * Tasks that were on a worker when the server stopped, by id: they wait (status and attempt as they
   * were) for that worker to come back holding them, until the orphan grace ends.
   */
  private readonly orphans = new Map<string, Task>();
  private keptRequests: { key: string; at: number; tasks: Task[] }[] = [];
  /** Sessions deleted lately, oldest first: `sessions.get` answers their DELETED record a while. */
  private readonly deletedSessions = new Map<string, Session>();
  /** Results created by attempts still running (their staging): invisible to clients until committed. */
  private readonly stagedResults = new Set<string>();
  /** Results whose upload is being committed (uploadResultDurably): one at a time each. */
  private readonly uploading = new Set<string>();
  private seq = 0;
  /** user → its one string: the createdBy of a million tasks is one string, not one per request. */
  private readonly users = new Map<string, string>();
  private dispatchScheduled = false;
  private readonly log: Logger;
  private readonly runDispatch = (): void => this.dispatch();
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

  constructor(private readonly opts: SchedulerOptions) {
    this.log = opts.log.child({ component: "scheduler" });
    this.store = opts.store ?? new MemoryStore();
    this.cache = new ResultCache(opts.resultCacheBytes ?? DEFAULT_RESULT_CACHE_BYTES);
    this.store.onStored = (results) => this.dataStored(results);
    this.store.onCommitted = (tasks, results) => this.committed(tasks, results);
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
      this.counts.add(f.partitionId, f.status, f.count);
      this.sessionCounts.add(f.sessionId, f.status, f.count);
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
      this.tasks.set(t.id, t);
      this.indexTask(t);
      this.counts.add(t.options.partitionId, t.status);
      this.sessionCounts.add(t.sessionId, t.status);
      this.seq = Math.max(this.seq, t.seq + 1);
      t.remainingDeps = 0;
      if (!FINAL_TASK_STATUSES.has(t.status)) this.pin(t);
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
    this.link = link;
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
    if (!r || this.stagedResults.has(id)) throw notFound(`result ${id} does not exist`);
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
    return this.stagedResults.size === 0 || !this.stagedResults.has(r.id);
  }

  /** A result of `sessionId`, else NOT_FOUND or INVALID_ARGUMENT naming the other session. */
  sessionResult(sessionId: string, id: string, what = "result", parent: Task | null = null): Result {
    const r = this.findResult(id);
    // A result a running attempt created exists only for that attempt (its children may use it).
    const hidden = this.stagedResults.has(id) && !(parent && this.staged.get(parent.id)?.results.has(id));
    if (!r || hidden) throw notFound(`${what} ${id} does not exist`);
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
      createdAt: Date.now(),
      completedAt: null,
    };
    this.results.set(r.id, r);
    if (staging) {
      staging.results.add(r.id);
      this.stagedResults.add(r.id);
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
      if (!r || this.stagedResults.has(id)) throw notFound(`result ${id} does not exist`);
      return r.status;
    });
  }

  // ---- tasks ---------------------------------------------------------------------------------------

  /** The tasks of a session by status, finished ones in the store included (zeros when it has none). */
  sessionTaskCounts(sessionId: string): StatusCounts {
    return this.sessionCounts.countsOf(sessionId);
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
    for (const q of this.queues.values()) q.remove((t) => gone.has(t));
    tasks.forEach((t, i) => {
      this.tasksBySession.get(t.sessionId)?.delete(t);
      if (!FINAL_TASK_STATUSES.has(t.status)) this.unpin(t);
      if (t.workerId !== null) {
        this.workers.get(t.workerId)?.inflight.delete(t.id);
        let ids = byWorker.get(t.workerId);
        if (!ids) byWorker.set(t.workerId, (ids = []));
        ids.push(t.id);
      }
      this.counts.remove(t.options.partitionId, t.status);
      this.sessionCounts.remove(t.sessionId, t.status);
      this.tasks.delete(t.id);
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
      this.link?.cancelTasks(workerId, ids, "its submission was refused");
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
    const now = Date.now();
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
    this.counts.add(task.options.partitionId, "PENDING");
    this.sessionCounts.add(task.sessionId, "PENDING");
    this.store.task(task);
    this.tasks.set(task.id, task);
    this.indexTask(task);
    const session = this.sessions.get(task.sessionId);
    if (session) session.taskCount++;
    this.events.newTask(task);
    this.pin(task);
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

  private staging(task: Task): AttemptStaging {
    let st = this.staged.get(task.id);
    if (!st) {
      st = { results: new Set(), uploads: new Map(), children: [] };
      this.staged.set(task.id, st);
    }
    return st;
  }

  agentCreateResults(workerId: string, taskId: string, items: NewResult[]): Result[] {
    const task = this.runningTask(workerId, taskId);
    this.requireBatch(items.length, "results");
    const st = this.staging(task);
    return items.map((item) => {
      const r = this.newResult(task.sessionId, item.name, task.id, undefined, st);
      if (item.data) st.uploads.set(r.id, item.data);
      return r;
    });
  }

  agentUpload(workerId: string, taskId: string, resultId: string, data: Buffer): void {
    const task = this.runningTask(workerId, taskId);
    const st = this.staging(task);
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
    const st = this.staging(task);
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
    const st = this.staged.get(task.id);
    if (!st) return;
    this.staged.delete(task.id);
    for (const id of st.results) {
      this.results.delete(id);
      this.stagedResults.delete(id);
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
    this.counts.move(task.options.partitionId, task.status, status, this.sessionCounts, task.sessionId);
    if (FINAL_TASK_STATUSES.has(status) && !FINAL_TASK_STATUSES.has(task.status)) this.unpin(task);
    task.status = status;
    this.store.task(task);
    this.events.taskStatus(task);
  }

  private queue(partitionId: string): PartitionQueue {
    let q = this.queues.get(partitionId);
    if (!q) {
      q = new PartitionQueue(partitionId);
      this.queues.set(partitionId, q);
    }
    return q;
  }

  private enqueue(task: Task, status: TaskStatus = "SUBMITTED"): void {
    if (task.submittedAt === null) task.submittedAt = Date.now();
    if (this.sessions.get(task.sessionId)?.status === "PAUSED") {
      this.setStatus(task, "PAUSED");
      return;
    }
    if (task.status !== status) this.setStatus(task, status);
    this.queue(task.options.partitionId).push(task);
    this.scheduleDispatch();
  }

  private scheduleDispatch(): void {
    if (this.dispatchScheduled) return;
    this.dispatchScheduled = true;
    setImmediate(this.runDispatch);
  }

  /** Fills every worker's free capacity from the queues of its partitions, highest priority first. */
  private dispatch(): void {
    this.dispatchScheduled = false;
    if (!this.link) return;
    const now = Date.now();
    for (const w of this.workers.values()) {
      let free = this.credit(w) - w.inflight.size;
      if (free <= 0) continue;
      let batch: Task[] | null = null;
      let batchBytes = 0;
      while (free > 0 && batchBytes < PREFETCH_PAYLOAD_BYTES) {
        let best: PartitionQueue | null = null;
        let bestApp: AppQueue | null = null;
        let bestPriority = -Infinity;
        for (const p of w.partitions) {
          const q = this.queues.get(p);
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
        // The attempt first: the status event carries its times.
        newAttempt(task, w.id, now);
        task.workerId = w.id;
        this.setStatus(task, "DISPATCHED");
        w.inflight.add(task.id);
        (batch ??= []).push(task);
        free--;
        const size = this.results.get(task.payloadId)?.size ?? 0;
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

  // ---- workers -------------------------------------------------------------------------------------

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
      this.scheduleDispatch();
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
    this.scheduleDispatch();
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
    this.scheduleDispatch();
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
    this.scheduleDispatch();
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
    for (const q of this.queues.values()) {
      for (const t of q.remove((t) => adopt.has(t.id))) {
        newAttempt(t, workerId, now);
        t.workerId = workerId;
        this.setStatus(t, "DISPATCHED");
        w.inflight.add(t.id);
      }
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
      this.link?.cancelTasks(
        w.id,
        overdue.map((t) => t.id),
        "maxDuration exceeded (ended by the server)",
      );
      this.scheduleDispatch();
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
        w.avgTaskMs = w.avgTaskMs === null ? ms : w.avgTaskMs + RUN_TIME_WEIGHT * (ms - w.avgTaskMs);
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
    this.scheduleDispatch();
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
    const delegated = new Set<string>();
    if (st) for (const child of st.children) for (const id of child.expectedOutputIds) delegated.add(id);
    const [first] = task.expectedOutputIds;
    const missing = task.expectedOutputIds.filter((id, i) => {
      const r = this.results.get(id);
      if (!r || r.ownerTaskId !== task.id || r.status !== "CREATED") return false;
      return i > 0 && !delegated.has(id) && !st?.uploads.has(id);
    });
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
      this.staged.delete(task.id);
      for (const id of st.results) {
        this.stagedResults.delete(id);
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
      this.counts.remove(task.options.partitionId, task.status);
      this.sessionCounts.remove(task.sessionId, task.status);
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

  /** Tasks of a session held in memory (all its unfinished ones), in submission order. */
  sessionTasks(sessionId: string): Task[] {
    return [...(this.tasksBySession.get(sessionId) ?? [])];
  }

  private indexTask(task: Task): void {
    const set = this.tasksBySession.get(task.sessionId);
    if (set) set.add(task);
    else this.tasksBySession.set(task.sessionId, new Set([task]));
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
      const set = this.tasksBySession.get(id);
      if (set) yield* set;
    }
  }

  /**
   * Every task a filter may match, finished ones included: first those the store holds and memory
   * does not (copies, read in slices), then memory's. While a scan is under way nothing leaves memory,
   * so no task is visited twice or missed for having moved between the two.
   */
  *tasksOf(sessionIds: readonly string[] | null): Generator<Task> {
    this.scans++;
    try {
      for (const t of this.store.scanTasks(sessionIds, (id) => this.tasks.has(id))) {
        if (!this.sessions.has(t.sessionId)) continue;
        upgradeTask(t);
        yield t;
      }
      yield* this.liveTasksOf(sessionIds);
    } finally {
      this.scans--;
    }
  }

  /** As tasksOf, for results (all of them, or those of the sessions named). */
  *resultsOf(sessionIds: readonly string[] | null): Generator<Result> {
    this.scans++;
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
      this.scans--;
    }
  }

  // ---- finished work leaves memory (issue 18 item 2) -----------------------------------------------

  /** Names the task's payload and data dependencies as needed by live work: they stay in memory. */
  private pin(task: Task): void {
    // A store that keeps every record in memory (--store memory) lets nothing go: nothing to count.
    if (this.store.keepsData) return;
    this.pinId(task.payloadId);
    for (const id of task.dataDependencies) this.pinId(id);
  }

  private pinId(id: string): void {
    this.pins.set(id, (this.pins.get(id) ?? 0) + 1);
    if (this.results.has(id)) return;
    // A result that left memory, named by a new task: back in memory while the task lives.
    const r = this.store.getResult(id);
    if (r) this.results.set(id, r);
  }

  private unpin(task: Task): void {
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
  private committed(tasks: Iterable<Task>, results: Iterable<Result>): void {
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
    const before = Date.now() - (this.opts.finishedRetainMs ?? DEFAULT_FINISHED_RETAIN_MS);
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
    } else if (this.retiredSinceGc >= IDLE_GC_RECORDS && this.tasks.size <= IDLE_GC_TASKS) {
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
      this.tasks.get(t.id) !== t ||
      !FINAL_TASK_STATUSES.has(t.status) ||
      t.workerId !== null ||
      this.staged.has(t.id) ||
      this.store.isDirty(t)
    )
      return;
    this.tasks.delete(t.id);
    this.tasksBySession.get(t.sessionId)?.delete(t);
    this.evictResultId(t.payloadId);
    for (const id of t.dataDependencies) this.evictResultId(id);
    for (const id of t.expectedOutputIds) this.evictResultId(id);
  }

  private evictResultId(id: string): void {
    const r = this.results.get(id);
    if (r) this.evictResult(r);
  }

  private evictResult(r: Result): void {
    if (
      this.results.get(r.id) !== r ||
      r.status === "CREATED" ||
      (r.data !== null && !r.stored) ||
      this.pins.has(r.id) ||
      this.stagedResults.has(r.id) ||
      this.uploading.has(r.id) ||
      this.dependents.has(r.id) ||
      this.store.isDirty(r)
    )
      return;
    if (r.ownerTaskId !== null) {
      const owner = this.tasks.get(r.ownerTaskId);
      if (owner && !FINAL_TASK_STATUSES.has(owner.status)) return;
    }
    this.results.delete(r.id);
  }

  /** Queued tasks are cancelled, running ones stopped on their workers, CREATED results aborted. */
  cancelSession(sessionId: string): { cancelled: Record<string, number> } {
    const session = this.transition(sessionId, "CANCELLED", ["RUNNING", "PAUSED", "CLOSED"]);
    session.cancelledAt = Date.now();
    this.setSessionStatus(session, "CANCELLED");
    const cancelled = this.cancel(this.sessionTasks(sessionId), `session ${sessionId} was cancelled`);
    for (const r of this.results.values()) if (r.sessionId === sessionId) this.abortResult(r);
    return { cancelled };
  }

  pauseSession(sessionId: string): void {
    const session = this.transition(sessionId, "PAUSED", ["RUNNING"]);
    this.setSessionStatus(session, "PAUSED");
    for (const q of this.queues.values()) {
      for (const t of q.remove((t) => t.sessionId === sessionId)) this.setStatus(t, "PAUSED");
    }
  }

  resumeSession(sessionId: string): void {
    const session = this.transition(sessionId, "RUNNING", ["PAUSED"]);
    this.setSessionStatus(session, "RUNNING");
    for (const t of this.sessionTasks(sessionId)) if (t.status === "PAUSED") this.enqueue(t);
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
      this.cancel(this.sessionTasks(sessionId), `session ${sessionId} was deleted`);
    }
    session.status = "DELETED";
    session.deletedAt = Date.now();
    let tasks = 0;
    let results = 0;
    // Finished records that left memory: counted out here, their rows removed with the session's.
    for (const t of this.store.scanTasks([sessionId], (id) => this.tasks.has(id))) {
      this.counts.remove(t.options.partitionId, t.status);
      this.sessionCounts.remove(t.sessionId, t.status);
      tasks++;
    }
    for (const r of this.store.scanResults([sessionId], (id) => this.results.has(id))) {
      if (r.status === "COMPLETED") this.resultBytes -= r.size;
      this.cache.delete(r.id);
      this.resultCount--;
      results++;
    }
    for (const t of this.sessionTasks(sessionId)) {
      // A task still on a worker stays known until the worker answers, so nothing completes twice.
      if (t.status === "CANCELLING") continue;
      this.counts.remove(t.options.partitionId, t.status);
      this.sessionCounts.remove(t.sessionId, t.status);
      this.tasks.delete(t.id);
      tasks++;
    }
    for (const [id, r] of this.results) {
      if (r.sessionId !== sessionId) continue;
      if (r.status === "COMPLETED") this.resultBytes -= r.size;
      if (!this.stagedResults.has(id)) this.resultCount--;
      this.results.delete(id);
      this.cache.delete(id);
      this.dependents.delete(id);
      this.pins.delete(id);
      if (this.waiters.has(id)) {
        r.status = "DELETED";
        this.waiters.settled(r.id, r.status);
      }
      results++;
    }
    this.events.removeSession(sessionId);
    this.sessions.delete(sessionId);
    this.tasksBySession.delete(sessionId);
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
      for (const q of this.queues.values())
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
    for (const [workerId, ids] of byWorker) this.link?.cancelTasks(workerId, ids, reason);
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
    for (const t of this.sessionTasks(sub.sessionId)) {
      if (wants(f, "newTask", t.id, null, t.status)) sub.send(newTaskEvent(t));
    }
    this.events.add(sub);
  }

  // ---- admin views ---------------------------------------------------------------------------------

  /** Each partition with its backlog (`queued`: see backlog()), what an autoscaler must see. */
  partitions(): { partitionId: string; queued: number; workers: number; slots: number }[] {
    const out = new Map<string, { partitionId: string; queued: number; workers: number; slots: number }>();
    const get = (p: string) => {
      let e = out.get(p);
      if (!e) out.set(p, (e = { partitionId: p, queued: 0, workers: 0, slots: 0 }));
      return e;
    };
    for (const [p, q] of this.queues) get(p).queued = this.backlog(p, q);
    for (const w of this.workers.values()) {
      for (const p of w.partitions) {
        const e = get(p);
        e.workers++;
        e.slots += w.slots;
      }
    }
    for (const s of this.sessions.values()) for (const p of s.partitionIds) get(p);
    return [...out.values()].sort((a, b) => a.partitionId.localeCompare(b.partitionId));
  }

  applications(): { applicationName: string; applicationVersion: string; tasks: number }[] {
    const out = new Map<string, { applicationName: string; applicationVersion: string; tasks: number }>();
    for (const t of this.tasks.values()) {
      const key = `${t.options.applicationName}\u0000${t.options.applicationVersion}`;
      let e = out.get(key);
      if (!e)
        out.set(
          key,
          (e = {
            applicationName: t.options.applicationName,
            applicationVersion: t.options.applicationVersion,
            tasks: 0,
          }),
        );
      e.tasks++;
    }
    return [...out.values()];
  }

  workerList(): Record<string, unknown>[] {
    return [...this.workers.values()].map((w) => ({
      workerId: w.id,
      partitions: w.partitions,
      slots: w.slots,
      capacity: w.capacity,
      busy: this.busySlots(w),
      inflight: w.inflight.size,
      // null: it did not say, and takes tasks of any application.
      apps: w.apps === null ? null : [...w.apps].sort(),
      host: w.host,
      pid: w.pid,
      connectedAt: w.connectedAt,
      lastHeartbeat: w.lastHeartbeat,
    }));
  }

  /**
   * Applications whose tasks wait in a partition that has workers, none of which has the application:
   * they wait until such a worker joins (design §6), and health() says so.
   */
  unservedApplications(): {
    partitionId: string;
    applicationName: string;
    applicationVersion: string;
    queued: number;
  }[] {
    const out: {
      partitionId: string;
      applicationName: string;
      applicationVersion: string;
      queued: number;
    }[] = [];
    for (const [p, q] of this.queues) {
      if (q.size === 0) continue;
      const serving: AppSet[] = [];
      for (const w of this.workers.values()) if (w.partitions.includes(p)) serving.push(w.apps);
      if (serving.length === 0) continue;
      for (const a of q.unserved(serving))
        out.push({
          partitionId: p,
          applicationName: a.applicationName,
          applicationVersion: a.applicationVersion,
          queued: a.size,
        });
    }
    return out;
  }

  /** A worker's applications changed (APPS: it was given new modules): it may take other tasks now. */
  setWorkerApps(workerId: string, apps: AppSet): void {
    const w = this.workers.get(workerId);
    if (!w) return;
    w.apps = apps;
    this.scheduleDispatch();
  }

  /** Tasks of a partition no slot runs yet: in its queue, or sent to a worker and not STARTED. */
  private backlog(partitionId: string, q: PartitionQueue): number {
    return q.size + this.counts.of(partitionId, "DISPATCHED");
  }

  /** Slots of a worker running a task (PROCESSING), not counting the tasks it prefetched. */
  busySlots(w: WorkerState): number {
    let n = 0;
    for (const id of w.inflight) if (this.tasks.get(id)?.status === "PROCESSING") n++;
    return Math.min(w.slots, n);
  }

  /**
   * HEALTHY; DEGRADED when tasks wait in a partition no worker serves, or for an application no worker
   * of their partition has; UNHEALTHY when the store cannot commit (a full disk): nothing new can be
   * acknowledged.
   */
  health(): { status: "HEALTHY" | "DEGRADED" | "UNHEALTHY"; checks: Record<string, string> } {
    const starving = this.partitions().filter((p) => p.queued > 0 && p.workers === 0);
    const appless = this.unservedApplications().filter(
      (a) => !starving.some((p) => p.partitionId === a.partitionId),
    );
    const store = this.store.stats();
    const checks: Record<string, string> = {
      store:
        store.failure === undefined
          ? `ok (${this.store.name}, ${store.pendingWrites} pending writes)`
          : `failing: ${store.failure}`,
      queue:
        starving.length === 0
          ? "ok"
          : `tasks wait in partitions no worker serves: ${starving.map((p) => p.partitionId).join(", ")}`,
      workers: `${this.workers.size} connected`,
    };
    if (appless.length > 0) {
      checks.applications = `tasks wait for applications no worker of their partition has: ${appless
        .slice(0, 10)
        .map(
          (a) =>
            `${a.applicationName}${a.applicationVersion ? ` ${a.applicationVersion}` : ""} (${a.partitionId}, ${a.queued} queued)`,
        )
        .join(", ")}`;
    }
    const status =
      store.failure !== undefined
        ? "UNHEALTHY"
        : starving.length === 0 && appless.length === 0
          ? "HEALTHY"
          : "DEGRADED";
    return { status, checks };
  }

  // ---- views ---------------------------------------------------------------------------------------

  /** Each partition that holds tasks with its counts by status (for a scrape). */
  tasksByPartition(): Record<string, Record<TaskStatus, number>> {
    return this.counts.byPartition();
  }

  summary(): SchedulerSummary {
    const queued: Record<string, number> = {};
    for (const [p, q] of this.queues) queued[p] = this.backlog(p, q);
    let slots = 0;
    let busy = 0;
    for (const w of this.workers.values()) {
      slots += w.slots;
      busy += this.busySlots(w);
    }
    let tasks = 0;
    for (const n of Object.values(this.counts.totals())) tasks += n;
    return {
      sessions: this.sessions.size,
      results: this.resultCount,
      tasks,
      tasksInMemory: this.tasks.size,
      resultsInMemory: this.results.size,
      tasksByStatus: this.counts.totals(),
      tasksByPartition: this.counts.byPartition(),
      queued,
      workers: this.workers.size,
      slots,
      busySlots: busy,
      store: this.store.stats(),
    };
  }

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
