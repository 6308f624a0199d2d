/**
 * The worker protocol (design §6): what a worker host and the server's worker endpoint say to each other.
 * Frames, both ways: "" HEADER BLOB*. HEADER is a msgpack map whose `t` names the message; blob indexes in
 * a header count from 0 = the first frame after the header.
 */

export const WORKER_PROTOCOL_VERSION = 1;

/** Task options a worker needs to run a task. maxDuration is in milliseconds (0 or absent: no limit). */
export interface WireTaskOptions {
  applicationName?: string;
  applicationVersion?: string;
  applicationNamespace?: string;
  applicationService?: string;
  engineType?: string;
  maxDuration?: number;
  options?: Record<string, string>;
}

export interface WireTask {
  taskId: string;
  sessionId: string;
  payloadId: string;
  /** Index of the blob holding the payload, when it was sent inline; else the worker FETCHes payloadId. */
  payload?: number;
  dataDependencies: string[];
  expectedOutputIds: string[];
  options: WireTaskOptions;
  /** 1 for the first attempt. */
  attempt: number;
}

/**
 * How an attempt ended, as the worker reports it.
 * - COMPLETED: output (if any) goes to expectedOutputIds[0].
 * - FAILED: the application crashed or threw: retried while maxRetries allows.
 * - ERROR: the application returned an error, or the app/method does not exist: final.
 * - TIMEOUT: maxDuration exceeded, the worker stopped the task: final.
 * - CANCELLED: stopped after a CANCEL from the server.
 */
export type WireTaskOutcome = "COMPLETED" | "FAILED" | "ERROR" | "TIMEOUT" | "CANCELLED";

export interface WireCompletion {
  taskId: string;
  status: WireTaskOutcome;
  error?: string;
  /** Index of the blob holding the task's output. */
  output?: number;
}

// ---- worker → server -------------------------------------------------------------------------------
export interface ReadyMsg {
  t: "READY";
  v: number;
  token?: string;
  workerId: string;
  partitions: string[];
  slots: number;
  prefetch: number;
  host?: string;
  pid?: number;
  /**
   * Tasks the worker still holds (after losing the server, say). The server adopts those still waiting
   * in its queue and CANCELs the others (finished elsewhere, or unknown), so nothing runs twice.
   */
  held?: string[];
}
export interface HeartbeatMsg {
  t: "HEARTBEAT";
}
export interface StartedMsg {
  t: "STARTED";
  taskIds: string[];
}
export interface DoneMsg {
  t: "DONE";
  results: WireCompletion[];
}
export interface FetchMsg {
  t: "FETCH";
  rid: number;
  resultIds: string[];
}
export interface ByeMsg {
  t: "BYE";
}
/**
 * An agent call made by application code during a task (design §6; seed 002's agent/worker exchange).
 * What it creates is staged and committed only if the task's attempt succeeds.
 * - createResults: args {results: [{name, data?: blob index}]} → msg [{resultId, name, status}]
 * - uploadData: args {resultId} + one blob → msg {resultId, size}; for a result this task created or
 *   one of its expected outputs
 * - submitTasks: args {tasks: [{payloadId? | payload?: blob index, expectedOutputIds?, outputCount?,
 *   dataDependencies?, taskOptions?}], taskOptions?} → msg [{taskId, payloadId, expectedOutputIds}];
 *   a child whose expectedOutputIds include one of the parent's takes it over (delegation)
 * - getData: args {resultIds} → msg {resultIds}, one blob per id in order (each must be COMPLETED)
 */
export interface AgentMsg {
  t: "AGENT";
  rid: number;
  taskId: string;
  op: "createResults" | "uploadData" | "submitTasks" | "getData";
  args: Record<string, unknown>;
}
export type WorkerToServer = ReadyMsg | HeartbeatMsg | StartedMsg | DoneMsg | FetchMsg | ByeMsg | AgentMsg;

// ---- server → worker -------------------------------------------------------------------------------
export interface WelcomeMsg {
  t: "WELCOME";
  workerId: string;
  heartbeatMs: number;
}
export interface RejectMsg {
  t: "REJECT";
  code: string;
  msg: string;
}
export interface TasksMsg {
  t: "TASKS";
  tasks: WireTask[];
}
export interface CancelMsg {
  t: "CANCEL";
  taskIds: string[];
  reason: string;
}
export interface DataMsg {
  t: "DATA";
  rid: number;
  /** blob: index of the data frame; error: why it cannot be had. */
  results: { resultId: string; blob?: number; error?: string }[];
}
/** The server does not know this worker (it restarted, or declared the worker dead): send READY again. */
export interface ReconnectMsg {
  t: "RECONNECT";
  msg: string;
}
/** The answer to an AgentMsg: ok with msg (and blobs for getData), or an error with a protocol code. */
export interface AgentReplyMsg {
  t: "AGENT_REPLY";
  rid: number;
  ok: boolean;
  msg?: unknown;
  code?: string;
  error?: string;
}
export type ServerToWorker =
  WelcomeMsg | RejectMsg | HeartbeatMsg | TasksMsg | CancelMsg | DataMsg | ReconnectMsg | AgentReplyMsg;
