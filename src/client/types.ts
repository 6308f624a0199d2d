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
  size: number;
  createdAt: number;
  completedAt: number | null;
}

export interface AttemptInfo {
  number: number;
  workerId: string;
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
  createdAt: number;
  submittedAt: number | null;
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
  filter?: Record<string, unknown>;
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

/** An event of `events.subscribe` (design §4). */
export type SessionEvent =
  | {
      type: "newTask";
      sessionId: string;
      taskId: string;
      status: TaskStatus;
      payloadId: string;
      expectedOutputIds: string[];
      dataDependencies: string[];
      partitionId: string;
    }
  | { type: "taskStatusUpdate"; sessionId: string; taskId: string; status: TaskStatus }
  | {
      type: "newResult";
      sessionId: string;
      resultId: string;
      name: string;
      status: ResultStatus;
      ownerTaskId: string | null;
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
