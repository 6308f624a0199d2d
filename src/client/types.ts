/** Shapes of what the server returns, for the typed client. Times are epoch milliseconds. */

export type SessionStatus = "RUNNING" | "PAUSED" | "CLOSED" | "CANCELLED" | "PURGED" | "DELETED";
export type ResultStatus = "CREATED" | "COMPLETED" | "ABORTED" | "DELETED";
export type TaskStatus =
  | "PENDING"
  | "SUBMITTED"
  | "DISPATCHED"
  | "PROCESSING"
  | "COMPLETED"
  | "ERROR"
  | "TIMEOUT"
  | "RETRIED"
  | "CANCELLING"
  | "CANCELLED"
  | "PAUSED";

export interface TaskOptions {
  /** Milliseconds; 0: no limit. */
  maxDuration?: number;
  maxRetries?: number;
  priority?: number;
  partitionId?: string;
  applicationName?: string;
  applicationVersion?: string;
  applicationNamespace?: string;
  applicationService?: string;
  engineType?: string;
  options?: Record<string, string>;
}

export interface SessionInfo {
  sessionId: string;
  status: SessionStatus;
  /** The user (of the server's users file) who created it; null: no user's, only admins see it. */
  owner: string | null;
  createdAt: number;
  partitionIds: string[];
  defaultTaskOptions: Required<TaskOptions>;
  taskCount: number;
  /** Clients may submit tasks; running tasks may submit child tasks (sessions.stopSubmission ends them). */
  clientSubmission: boolean;
  workerSubmission: boolean;
  /** Both submissions stopped (what sessions.stopSubmission without flags does). */
  submissionStopped: boolean;
  /** When it was cancelled, closed, purged, deleted (ms since the epoch), or null. */
  cancelledAt: number | null;
  closedAt: number | null;
  purgedAt: number | null;
  deletedAt: number | null;
  /** From creation to its end (closed, cancelled or deleted), ms; null while it runs. */
  duration: number | null;
}

export interface ResultInfo {
  resultId: string;
  sessionId: string;
  name: string;
  status: ResultStatus;
  ownerTaskId: string | null;
  /**
   * Who created it: the id of the task whose attempt did (an output or a result it made through its
   * agent), else the user of the client that did; null on records older than lineage.
   */
  createdBy: string | null;
  size: number;
  createdAt: number;
  completedAt: number | null;
}

export interface AttemptInfo {
  number: number;
  workerId: string;
  /** When it entered the queue: the task's submittedAt for the first, the previous attempt's end for a retry. */
  queuedAt: number | null;
  /** When it was sent to its worker. */
  dispatchedAt: number;
  /** When its worker reported it started; its dispatchedAt until then. */
  startedAt: number;
  endedAt: number | null;
  status: string | null;
  error: string | null;
}

export interface TaskInfo {
  taskId: string;
  sessionId: string;
  status: TaskStatus;
  payloadId: string;
  expectedOutputIds: string[];
  dataDependencies: string[];
  options: Required<TaskOptions>;
  /** The parent task's id for a child task, else the submitting client's user (null on older records). */
  createdBy: string | null;
  /** The task that submitted it through its agent: one id, or none for a client's task. */
  parentTaskIds: string[];
  /** zgrid retries a task as a new attempt of the same task: this is always the task's own id. */
  initialTaskId: string;
  /** Always empty: a retry is an attempt of the same task (see attempts), not a new task. */
  retryOfTaskIds: string[];
  /** Same as receivedAt (its older name). */
  createdAt: number;
  /** When the server read the submission (ms since 1970, as every time here). */
  receivedAt: number;
  /** When it entered its partition's queue. */
  submittedAt: number | null;
  /** When its latest attempt was sent to a worker. */
  dispatchedAt: number | null;
  /** When its latest attempt started on the worker. */
  startedAt: number | null;
  endedAt: number | null;
  error: string | null;
  workerId: string | null;
  attempts: AttemptInfo[];
}

/** One task of {@link ZgridClient.submitTasks}. */
export interface TaskDefinition {
  /** An existing result holding the payload... */
  payloadId?: string;
  /** ...or the payload itself, sent inline (a payload result is created for it). */
  payload?: Uint8Array;
  /** Existing CREATED results this task must produce; default: one new output result. */
  expectedOutputIds?: string[];
  /** With no expectedOutputIds: how many output results to create (default 1). */
  outputCount?: number;
  dataDependencies?: string[];
  taskOptions?: TaskOptions;
}

export interface SubmittedTask {
  taskId: string;
  payloadId: string;
  expectedOutputIds: string[];
}

export interface CreatedResult {
  resultId: string;
  name: string;
  status: ResultStatus;
}

export interface ListQuery {
  /** A {@link Filter}, or the plain map of before (`{sessionId, status: [...]}`: equal, or one of). */
  filter?: Filter | Record<string, unknown>;
  sort?: { field: string; direction?: "asc" | "desc" };
  page?: number;
  pageSize?: number;
}

export interface Page<T> {
  items: T[];
  total: number;
}

export interface WaitOptions {
  behavior?: "all" | "any";
  breakOnError?: boolean;
  /** 0: wait as long as it takes. */
  timeoutMs?: number;
}

export interface WaitResult {
  timedOut: boolean;
  statuses: Record<string, ResultStatus>;
}

/** Where a task comes from, as {@link TaskInfo} has it. */
export type TaskLineage = Pick<TaskInfo, "createdBy" | "parentTaskIds" | "initialTaskId" | "retryOfTaskIds">;
/** A task's times, as {@link TaskInfo} has them. */
export type TaskTimes = Pick<
  TaskInfo,
  "receivedAt" | "submittedAt" | "dispatchedAt" | "startedAt" | "endedAt"
>;

/** An event of `events.subscribe` (design §4). */
export type SessionEvent =
  | ({
      type: "newTask";
      sessionId: string;
      taskId: string;
      status: TaskStatus;
      payloadId: string;
      expectedOutputIds: string[];
      dataDependencies: string[];
      partitionId: string;
    } & TaskLineage &
      TaskTimes)
  | ({
      type: "taskStatusUpdate";
      sessionId: string;
      taskId: string;
      status: TaskStatus;
      /** The attempt this status belongs to (0 before the first dispatch). */
      attempt: number;
    } & TaskTimes)
  | {
      type: "newResult";
      sessionId: string;
      resultId: string;
      name: string;
      status: ResultStatus;
      ownerTaskId: string | null;
      createdBy: string | null;
    }
  | { type: "resultStatusUpdate"; sessionId: string; resultId: string; status: ResultStatus }
  | {
      type: "resultOwnerUpdate";
      sessionId: string;
      resultId: string;
      previousOwnerId: string | null;
      currentOwnerId: string | null;
    };

export interface Subscription {
  subscriptionId: string;
  close(): Promise<void>;
}

export interface WorkerInfo {
  workerId: string;
  partitions: string[];
  slots: number;
  capacity: number;
  busy: number;
  inflight: number;
  host: string;
  pid: number;
  connectedAt: number;
  lastHeartbeat: number;
}

/** An operator of a filter condition (docs/protocol.md, "Filters"). */
export type FilterOperator =
  | "eq"
  | "ne"
  | "in"
  | "notIn"
  | "lt"
  | "lte"
  | "gt"
  | "gte"
  | "contains"
  | "notContains"
  | "startsWith"
  | "endsWith"
  | "before"
  | "beforeOrEqual"
  | "after"
  | "afterOrEqual";

/** One condition: a field of the records listed (`status`, `options.priority`, `options.options.KEY`, ...). */
export interface FilterCondition {
  field: string;
  op: FilterOperator;
  value: unknown;
}

/** ArmoniK's filter: an OR of AND clauses. */
export interface Filter {
  or: { and: FilterCondition[] }[];
}

/** `auth.currentUser`: who the server takes this client for. */
export interface CurrentUser {
  user: string;
  /** `admin`, `submitter` or `reader`. */
  role: string;
  /** The commands the role grants, sorted; `["*"]`: every command. */
  permissions: string[];
  /** The user comes from the server's users file; false: the server token, whose user name is only claimed. */
  fromUsersFile: boolean;
  authEnabled: boolean;
}
