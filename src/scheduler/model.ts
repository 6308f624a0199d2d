/** Statuses and shapes of the data model (design §5, binding names). */

export const SESSION_STATUSES = ["RUNNING", "PAUSED", "CLOSED", "CANCELLED", "PURGED", "DELETED"] as const;
export type SessionStatus = (typeof SESSION_STATUSES)[number];

export const RESULT_STATUSES = ["CREATED", "COMPLETED", "ABORTED", "DELETED"] as const;
export type ResultStatus = (typeof RESULT_STATUSES)[number];

export const TASK_STATUSES = [
  "PENDING",
  "SUBMITTED",
  "DISPATCHED",
  "PROCESSING",
  "COMPLETED",
  "ERROR",
  "TIMEOUT",
  "RETRIED",
  "CANCELLING",
  "CANCELLED",
  "PAUSED",
] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

/** Statuses a task never leaves. */
export const FINAL_TASK_STATUSES: ReadonlySet<TaskStatus> = new Set([
  "COMPLETED",
  "ERROR",
  "TIMEOUT",
  "CANCELLED",
]);

export interface TaskOptions {
  /** Milliseconds; 0: no limit. */
  maxDuration: number;
  maxRetries: number;
  priority: number;
  partitionId: string;
  applicationName: string;
  applicationVersion: string;
  applicationNamespace: string;
  applicationService: string;
  engineType: string;
  options: Record<string, string>;
}

export const DEFAULT_TASK_OPTIONS: Readonly<TaskOptions> = Object.freeze({
  maxDuration: 0,
  maxRetries: 2,
  priority: 1,
  partitionId: "default",
  applicationName: "",
  applicationVersion: "",
  applicationNamespace: "",
  applicationService: "",
  engineType: "",
  options: {},
});

export interface Session {
  id: string;
  status: SessionStatus;
  /** The user of the users file who created it; null: no user's (admins only), as sessions before users. */
  owner: string | null;
  createdAt: number;
  defaultTaskOptions: TaskOptions;
  partitionIds: string[];
  taskCount: number;
  /** Clients may submit tasks (ArmoniK's clientSubmission); sessions.stopSubmission {client} ends it. */
  clientSubmission: boolean;
  /** Running tasks may submit child tasks (ArmoniK's workerSubmission); stopSubmission {worker} ends it. */
  workerSubmission: boolean;
  /** When it was cancelled, closed, purged, deleted (ms since the epoch), null while it was not. */
  cancelledAt: number | null;
  closedAt: number | null;
  purgedAt: number | null;
  deletedAt: number | null;
}

export interface Result {
  id: string;
  sessionId: string;
  name: string;
  status: ResultStatus;
  /** The task that must produce it; null for data a client uploads. */
  ownerTaskId: string | null;
  /**
   * Who created it: the id of the task whose attempt created it (through its agent, or as a child's
   * payload or output), else the user of the client that did (its header's `user`, "anonymous" when it
   * gave none); null on a record kept by a zgrid older than lineage.
   */
  createdBy: string | null;
  data: Buffer | null;
  size: number;
  createdAt: number;
  completedAt: number | null;
  /** Its data is in the store (after a restart, `data` is read back from there on demand). */
  stored?: boolean;
}

export interface Attempt {
  number: number;
  workerId: string;
  /**
   * When this attempt entered its partition's queue: the task's submittedAt for the first, the end of
   * the attempt before for a retry (null on a record kept by a zgrid older than lineage).
   */
  queuedAt: number | null;
  /** When it was sent to its worker. */
  dispatchedAt: number;
  /** When its worker reported it started (STARTED); its dispatch time until then. */
  startedAt: number;
  endedAt: number | null;
  status: string | null;
  error: string | null;
}

export interface Task {
  id: string;
  sessionId: string;
  payloadId: string;
  expectedOutputIds: string[];
  dataDependencies: string[];
  options: TaskOptions;
  status: TaskStatus;
  /** Submission order, for FIFO within a priority. */
  seq: number;
  /** When the server read the request that submitted it (the view's receivedAt too). */
  createdAt: number;
  /** When it first entered its partition's queue (its dependencies were there). */
  submittedAt: number | null;
  /** When its worker reported its latest attempt started. */
  startedAt: number | null;
  endedAt: number | null;
  /**
   * Who submitted it: the parent task's id for a child task, else the client's user; null on a record
   * kept by a zgrid older than lineage. A shared string: the parent's id, or one per user.
   */
  createdBy: string | null;
  /** The task that submitted it through its agent; null for a client's task. */
  parentTaskId: string | null;
  error: string | null;
  attempts: Attempt[];
  /** Payload and dependencies not yet COMPLETED. */
  remainingDeps: number;
  workerId: string | null;
}

/** The attempts of a task never dispatched: shared until its first attempt (Fleet.assign makes its own). */
export const NO_ATTEMPTS: Attempt[] = Object.freeze([]) as unknown as Attempt[];

/** What a task holds once it has been dispatched, failed or ended: its worker, times, error, attempts. */
interface TaskRun {
  workerId: string | null;
  startedAt: number | null;
  endedAt: number | null;
  error: string | null;
  attempts: Attempt[];
}

/**
 * A task as the scheduler holds it in memory. The fields a queued task leaves null (its worker, its
 * start and end, its error, its attempts) live in a record of their own, made the first time one of them
 * is set: a queued task is 15 fields, not 19 (32 MB of a million queued tasks). Read and written as a
 * Task's fields; a task read back from a store is a plain Task until restore() makes it one of these.
 */
export class TaskRecord implements Task {
  id: string;
  sessionId: string;
  payloadId: string;
  expectedOutputIds: string[];
  dataDependencies: string[];
  options: TaskOptions;
  status: TaskStatus = "PENDING";
  seq = 0;
  createdAt: number;
  submittedAt: number | null = null;
  createdBy: string | null;
  parentTaskId: string | null;
  remainingDeps = 0;
  private run: TaskRun | null = null;

  constructor(
    id: string,
    sessionId: string,
    payloadId: string,
    expectedOutputIds: string[],
    dataDependencies: string[],
    options: TaskOptions,
    createdAt: number,
    createdBy: string | null,
    parentTaskId: string | null,
  ) {
    this.id = id;
    this.sessionId = sessionId;
    this.payloadId = payloadId;
    this.expectedOutputIds = expectedOutputIds;
    this.dataDependencies = dataDependencies;
    this.options = options;
    this.createdAt = createdAt;
    this.createdBy = createdBy;
    this.parentTaskId = parentTaskId;
  }

  /** `t` (a task read back from a store) as a record of this shape. */
  static of(t: Task): TaskRecord {
    if (t instanceof TaskRecord) return t;
    const r = new TaskRecord(
      t.id,
      t.sessionId,
      t.payloadId,
      t.expectedOutputIds,
      t.dataDependencies,
      t.options,
      t.createdAt,
      t.createdBy,
      t.parentTaskId,
    );
    r.status = t.status;
    r.seq = t.seq;
    r.submittedAt = t.submittedAt;
    r.remainingDeps = t.remainingDeps;
    r.workerId = t.workerId;
    r.startedAt = t.startedAt;
    r.endedAt = t.endedAt;
    r.error = t.error;
    r.attempts = t.attempts.length === 0 ? NO_ATTEMPTS : t.attempts;
    return r;
  }

  /** The run record, made on the first write of a value other than null (and of attempts). */
  private ran(): TaskRun {
    return (this.run ??= {
      workerId: null,
      startedAt: null,
      endedAt: null,
      error: null,
      attempts: NO_ATTEMPTS,
    });
  }

  get workerId(): string | null {
    return this.run === null ? null : this.run.workerId;
  }
  set workerId(v: string | null) {
    if (v !== null || this.run !== null) this.ran().workerId = v;
  }
  get startedAt(): number | null {
    return this.run === null ? null : this.run.startedAt;
  }
  set startedAt(v: number | null) {
    if (v !== null || this.run !== null) this.ran().startedAt = v;
  }
  get endedAt(): number | null {
    return this.run === null ? null : this.run.endedAt;
  }
  set endedAt(v: number | null) {
    if (v !== null || this.run !== null) this.ran().endedAt = v;
  }
  get error(): string | null {
    return this.run === null ? null : this.run.error;
  }
  set error(v: string | null) {
    if (v !== null || this.run !== null) this.ran().error = v;
  }
  get attempts(): Attempt[] {
    return this.run === null ? NO_ATTEMPTS : this.run.attempts;
  }
  set attempts(v: Attempt[]) {
    if (v !== NO_ATTEMPTS || this.run !== null) this.ran().attempts = v;
  }
}

/** The dependencies of a task that has none, and other empty id lists: shared, never written to. */
export const NO_IDS: string[] = Object.freeze([]) as unknown as string[];
