import { failedPrecondition, notFound } from "../protocol/errors.js";
import { scan } from "./listing.js";
import type { Result, Session, SessionStatus, TaskOptions } from "./model.js";
import type { Scheduler } from "./scheduler.js";
import { mergeTaskOptions } from "./task-options.js";

/** How long, and how many, deleted sessions' records `sessions.get` still answers (memory only). */
const DELETED_RETENTION_MS = 60 * 60_000;
const MAX_DELETED = 10_000;

const always = (): boolean => true;

/**
 * A session's life (design §5): created RUNNING; paused and resumed; closed to new work; cancelled,
 * its queued tasks cancelled and its running ones stopped; purged of its result data; deleted with
 * everything it holds. A change a client asks for is committed before it takes effect
 * (changeSessionDurably).
 */
export class SessionLifecycle {
  /** Sessions deleted lately, oldest first: `sessions.get` answers their DELETED record a while. */
  private readonly deletedSessions = new Map<string, Session>();

  /**
   * Sessions a change is under way for (its commit, then its effect: a purge's or a deletion's reads
   * its records in slices, over many turns of the event loop). Another change of the same session
   * meanwhile is refused: two deletions at once counted the session's records out twice.
   */
  private readonly changing = new Set<string>();

  constructor(private readonly s: Scheduler) {}

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
    apply: () => T | Promise<T>,
    fields: Partial<Session> = {},
  ): Promise<T> {
    if (this.changing.has(sessionId)) {
      throw failedPrecondition(
        `session ${sessionId} is being changed by another request (a purge or a deletion takes a while): ask again once it is answered`,
      );
    }
    const session = this.transition(sessionId, to, allowed);
    const staged: Session = { ...session, ...fields, status: to };
    this.changing.add(sessionId);
    try {
      this.s.store.session(staged);
      try {
        await this.s.store.flush();
      } catch (err) {
        this.s.store.discard([], [], [staged]);
        throw err;
      }
      return await apply();
    } finally {
      this.changing.delete(sessionId);
    }
  }

  private setSessionStatus(session: Session, status: SessionStatus): void {
    session.status = status;
    this.s.store.session(session);
  }

  createSession(
    defaultTaskOptions: Partial<TaskOptions>,
    partitionIds: string[],
    owner: string | null = null,
  ): Session {
    const session: Session = {
      id: this.s.ids.next("s"),
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
    this.s.sessions.set(session.id, session);
    this.s.store.session(session);
    return session;
  }

  /** Undoes createSession, whose commit the store refused: nothing of the session is kept. */
  withdrawSession(session: Session): void {
    if (this.s.sessions.get(session.id) === session) this.s.sessions.delete(session.id);
    this.s.store.discard([], [], [session]);
  }

  /** A session, or the record of one deleted lately (kept DELETED_RETENTION_MS, at most MAX_DELETED). */
  sessionRecord(id: string): Session {
    const s = this.s.sessions.get(id) ?? this.deletedSessions.get(id);
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

  private transition(sessionId: string, to: SessionStatus, allowed: readonly SessionStatus[]): Session {
    const session = this.s.session(sessionId);
    if (!allowed.includes(session.status)) {
      throw failedPrecondition(
        `session ${sessionId} is ${session.status}: it cannot become ${to} (allowed from ${allowed.join(", ")})`,
      );
    }
    return session;
  }

  /** Queued tasks are cancelled, running ones stopped on their workers, CREATED results aborted. */
  cancelSession(sessionId: string): { cancelled: Record<string, number> } {
    const session = this.transition(sessionId, "CANCELLED", ["RUNNING", "PAUSED", "CLOSED"]);
    session.cancelledAt = Date.now();
    this.setSessionStatus(session, "CANCELLED");
    const cancelled = this.s.cancel(
      this.s.table.sessionTasks(sessionId),
      `session ${sessionId} was cancelled`,
    );
    for (const r of this.s.results.values()) if (r.sessionId === sessionId) this.s.abortResult(r);
    return { cancelled };
  }

  pauseSession(sessionId: string): void {
    const session = this.transition(sessionId, "PAUSED", ["RUNNING"]);
    this.setSessionStatus(session, "PAUSED");
    for (const q of this.s.table.queues.values()) {
      for (const t of q.remove((t) => t.sessionId === sessionId)) this.s.setStatus(t, "PAUSED");
    }
  }

  resumeSession(sessionId: string): void {
    const session = this.transition(sessionId, "RUNNING", ["PAUSED"]);
    this.setSessionStatus(session, "RUNNING");
    for (const t of this.s.table.sessionTasks(sessionId)) if (t.status === "PAUSED") this.s.enqueue(t);
  }

  closeSession(sessionId: string): void {
    const session = this.transition(sessionId, "CLOSED", ["RUNNING", "PAUSED"]);
    session.closedAt = Date.now();
    this.setSessionStatus(session, "CLOSED");
  }

  /** sessions.stopSubmission: clients, running tasks (child tasks), or both submit no more tasks. */
  stopSubmission(sessionId: string, client: boolean, worker: boolean): Session {
    const session = this.s.session(sessionId);
    if (client) session.clientSubmission = false;
    if (worker) session.workerSubmission = false;
    this.s.store.session(session);
    return session;
  }

  /** Result data deleted, metadata kept. */
  async purgeSession(sessionId: string): Promise<{ purged: number }> {
    const session = this.transition(sessionId, "PURGED", ["CLOSED", "CANCELLED"]);
    session.purgedAt = Date.now();
    this.setSessionStatus(session, "PURGED");
    let purged = 0;
    const completed = (r: Result) => r.sessionId === sessionId && r.status === "COMPLETED";
    // Read in slices, the event loop turning between them (memory holds every session's results, the
    // store this one's that left memory); meanwhile nothing leaves memory, so none is missed.
    this.s.residency.scanStarted();
    try {
      await scan(this.s.results.values(), completed, (r) => {
        this.s.resultBytes -= r.size;
        this.s.data.dropResultData(r);
        this.s.events.resultStatus(r);
        purged++;
      });
      // Those that left memory: their rows say DELETED, their data goes.
      const inMemory = (id: string) => this.s.results.has(id);
      await scan(this.s.store.scanResults([sessionId], inMemory), completed, (r) => {
        this.s.resultBytes -= r.size;
        this.s.cache.delete(r.id);
        this.s.store.deleteStoredResult(r.id);
        r.status = "DELETED";
        r.stored = false;
        this.s.events.resultStatus(r);
        purged++;
      });
    } finally {
      this.s.residency.scanEnded();
    }
    return { purged };
  }

  /** Everything of the session removed; running tasks are stopped first. */
  async deleteSession(sessionId: string): Promise<{ tasks: number; results: number }> {
    const session = this.s.session(sessionId);
    if (session.status !== "CANCELLED" && session.status !== "PURGED") {
      this.s.cancel(this.s.table.sessionTasks(sessionId), `session ${sessionId} was deleted`);
    }
    // DELETED before the first turn of the event loop: nothing is submitted to it meanwhile.
    session.status = "DELETED";
    session.deletedAt = Date.now();
    let tasks = 0;
    let results = 0;
    // The event loop turns between slices of records; meanwhile nothing leaves memory, so no record is
    // visited both in the store and in memory, or missed.
    this.s.residency.scanStarted();
    try {
      // Finished records that left memory: counted out here, their rows removed with the session's.
      const inMemoryTask = (id: string) => this.s.tasks.has(id);
      await scan(this.s.store.scanTasks([sessionId], inMemoryTask), always, (t) => {
        this.s.table.counts.remove(t.options.partitionId, t.status);
        this.s.table.sessionCounts.remove(t.sessionId, t.status);
        tasks++;
      });
      const inMemoryResult = (id: string) => this.s.results.has(id);
      await scan(this.s.store.scanResults([sessionId], inMemoryResult), always, (r) => {
        if (r.status === "COMPLETED") this.s.resultBytes -= r.size;
        this.s.cache.delete(r.id);
        this.s.resultCount--;
        results++;
      });
      for (const t of this.s.table.sessionTasks(sessionId)) {
        // A task still on a worker stays known until the worker answers, so nothing completes twice.
        if (t.status === "CANCELLING") continue;
        this.s.table.counts.remove(t.options.partitionId, t.status);
        this.s.table.sessionCounts.remove(t.sessionId, t.status);
        this.s.tasks.delete(t.id);
        tasks++;
      }
      // The results in memory are those of every session (all of them with --store memory): read in
      // slices too.
      const ofSession = (r: Result) => r.sessionId === sessionId;
      await scan(this.s.results.values(), ofSession, (r) => {
        const id = r.id;
        if (r.status === "COMPLETED") this.s.resultBytes -= r.size;
        if (!this.s.staged.holds(id)) this.s.resultCount--;
        this.s.results.delete(id);
        this.s.cache.delete(id);
        this.s.dependents.delete(id);
        this.s.residency.forget(id);
        if (this.s.waiters.has(id)) {
          r.status = "DELETED";
          this.s.waiters.settled(r.id, r.status);
        }
        results++;
      });
    } finally {
      this.s.residency.scanEnded();
    }
    this.s.events.removeSession(sessionId);
    this.s.sessions.delete(sessionId);
    this.s.table.releaseSession(sessionId);
    this.rememberDeleted(session);
    this.s.store.deleteSession(sessionId);
    return { tasks, results };
  }
}
