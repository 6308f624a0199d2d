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
  /**
   * The worker reads and writes the columnar forms of TASKS and DONE (a v1 extension): the server then
   * says `columns: true` in WELCOME and sends TASKS as columns, and the worker may send DONE as columns.
   */
  columns?: boolean;
  /**
   * With `columns`: the worker reads TASKS whose inline payloads are packed (`payloadSizes`, a v1
   * extension): the server then says `packedPayloads: true` in WELCOME and sends them so.
   */
  packedPayloads?: boolean;
  /**
   * The applications the worker can load: the file stems of its app path (`NAME`, `NAME.VERSION`), at
   * most MAX_WORKER_APPS of at most MAX_APP_NAME_CHARS each (a v1 extension). The server sends it only
   * tasks of those applications (or tasks that name none); a worker that says nothing takes any task.
   */
  apps?: string[];
}
/** The applications a welcomed worker can load changed (new modules in its app path): READY's `apps`. */
export interface AppsMsg {
  t: "APPS";
  apps: string[];
}
export const MAX_WORKER_APPS = 10_000;
export const MAX_APP_NAME_CHARS = 256;
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
/**
 * DONE as columns, once WELCOME said `columns: true`: entry i is taskIds[i], statuses[i], the blob index
 * outputs[i] (-1: none), errors[i] (null: none; `errors` is absent when no entry has one).
 */
export interface DoneColumnsMsg {
  t: "DONE";
  taskIds: string[];
  statuses: WireTaskOutcome[];
  outputs: number[];
  errors?: (string | null)[];
}
/**
 * DONE in columns with its outputs packed (a v1 extension, once WELCOME said `packedOutputs: true`): no
 * blob per output. `sizes[i]` is the length of task i's output (-1: none, 0: an empty one), and the
 * outputs follow back to back across the blobs after the header, in order, cut anywhere: join the blobs
 * and take `sizes[i]` bytes for each task in turn (as in `results.wait {columns}`).
 */
export interface DonePackedMsg {
  t: "DONE";
  taskIds: string[];
  statuses: WireTaskOutcome[];
  sizes: number[];
  errors?: (string | null)[];
  /** Tasks that began, taken before the completions: what a STARTED just before this DONE would say. */
  started?: string[];
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
export type WorkerToServer =
  | ReadyMsg
  | HeartbeatMsg
  | StartedMsg
  | DoneMsg
  | DoneColumnsMsg
  | DonePackedMsg
  | FetchMsg
  | ByeMsg
  | AgentMsg
  | AppsMsg;

// ---- server → worker -------------------------------------------------------------------------------
export interface WelcomeMsg {
  t: "WELCOME";
  workerId: string;
  heartbeatMs: number;
  /** The server sends TASKS as columns and takes DONE as columns (the worker asked in READY). */
  columns?: boolean;
  /**
   * The largest frame the server reads; a larger one makes it drop the connection that sent it (a v1
   * extension: a worker ends a task whose output is larger ERROR instead of sending it).
   */
  maxFrameBytes?: number;
  /** The server takes DONE with packed outputs (DonePackedMsg; a v1 extension, said with `columns`). */
  packedOutputs?: boolean;
  /** The server sends TASKS with packed payloads (the worker asked in READY; said with `columns`). */
  packedPayloads?: boolean;
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
/**
 * TASKS as columns, to a worker that asked for them: task i is taskIds[i], payloadIds[i], the blob index
 * payloads[i] (-1: FETCH it), attempts[i], sessions[session[i]], optionSets[option[i]], its
 * outputCounts[i] expected outputs taken in order from `outputs`, and its dependencyCounts[i] data
 * dependencies taken in order from `dependencies` (both absent when no task has any).
 *
 * With packed payloads (`payloadSizes`, to a worker that said `packedPayloads` in READY): payloads[i] is
 * the index of its payload among the batch's inline payloads (each sent once), payloadSizes[k] the bytes
 * of payload k, and the payloads follow back to back across the blobs, cut anywhere: no blob a task.
 */
export interface TasksColumnsMsg {
  t: "TASKS";
  taskIds: string[];
  payloadIds: string[];
  payloads: number[];
  attempts: number[];
  sessions: string[];
  session: number[];
  optionSets: WireTaskOptions[];
  option: number[];
  outputs: string[];
  outputCounts: number[];
  dependencies?: string[];
  dependencyCounts?: number[];
  payloadSizes?: number[];
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
  | WelcomeMsg
  | RejectMsg
  | HeartbeatMsg
  | TasksMsg
  | TasksColumnsMsg
  | CancelMsg
  | DataMsg
  | ReconnectMsg
  | AgentReplyMsg;

// ---- the columnar forms ----------------------------------------------------------------------------

const NONE: string[] = [];

/** The tasks of a TASKS in columns, as task records; throws a TypeError naming what is malformed. */
export function tasksOfColumns(m: TasksColumnsMsg): WireTask[] {
  const n = Array.isArray(m.taskIds) ? m.taskIds.length : -1;
  const column = (name: keyof TasksColumnsMsg, length = n): unknown[] => {
    const c = m[name];
    if (!Array.isArray(c) || (length >= 0 && c.length !== length))
      throw new TypeError(`TASKS column ${name} is not a list of ${length} entries`);
    return c;
  };
  column("taskIds", -1);
  const payloadIds = column("payloadIds") as string[];
  const payloads = column("payloads") as number[];
  const attempts = column("attempts") as number[];
  const sessions = column("sessions", -1) as string[];
  const session = column("session") as number[];
  const optionSets = column("optionSets", -1) as WireTaskOptions[];
  const option = column("option") as number[];
  const outputs = column("outputs", -1) as string[];
  const outputCounts = column("outputCounts") as number[];
  const hasDeps = m.dependencies !== undefined;
  const dependencies = hasDeps ? (column("dependencies", -1) as string[]) : NONE;
  const dependencyCounts = hasDeps ? (column("dependencyCounts") as number[]) : null;
  if (m.payloadSizes !== undefined) column("payloadSizes", -1);
  const tasks: WireTask[] = new Array(n);
  let o = 0;
  let d = 0;
  for (let i = 0; i < n; i++) {
    const outs = outputCounts[i];
    const deps = dependencyCounts ? dependencyCounts[i] : 0;
    const sessionId = sessions[session[i]];
    const options = optionSets[option[i]];
    if (
      typeof sessionId !== "string" ||
      typeof options !== "object" ||
      options === null ||
      !Number.isInteger(outs) ||
      outs < 0 ||
      o + outs > outputs.length ||
      !Number.isInteger(deps) ||
      deps < 0 ||
      d + deps > dependencies.length
    )
      throw new TypeError(`TASKS columns do not describe task ${i}`);
    tasks[i] = {
      taskId: m.taskIds[i],
      sessionId,
      payloadId: payloadIds[i],
      payload: payloads[i] >= 0 ? payloads[i] : undefined,
      dataDependencies: deps === 0 ? NONE : dependencies.slice(d, d + deps),
      expectedOutputIds: outputs.slice(o, o + outs),
      options,
      attempt: attempts[i],
    };
    o += outs;
    d += deps;
  }
  return tasks;
}

/** Completions as a DONE in columns; output blob indexes are kept as they are. */
export function doneColumns(results: readonly WireCompletion[]): DoneColumnsMsg {
  const n = results.length;
  const taskIds: string[] = new Array(n);
  const statuses: WireTaskOutcome[] = new Array(n);
  const outputs: number[] = new Array(n);
  let errors: (string | null)[] | undefined;
  for (let i = 0; i < n; i++) {
    const c = results[i];
    taskIds[i] = c.taskId;
    statuses[i] = c.status;
    outputs[i] = c.output ?? -1;
    if (c.error !== undefined) (errors ??= new Array<string | null>(n).fill(null))[i] = c.error;
  }
  return errors
    ? { t: "DONE", taskIds, statuses, outputs, errors }
    : { t: "DONE", taskIds, statuses, outputs };
}

/** Outputs smaller than this share the blobs of a packed DONE; a larger one travels in a blob of its own. */
const PACK_SHARED_BYTES = 64 * 1024;
/** The most bytes of small outputs one blob of a packed DONE gathers. */
const PACK_BLOB_BYTES = 1024 * 1024;

/**
 * Gathers byte strings back to back into few blobs, as packed DONE outputs and packed TASKS payloads
 * travel: small ones (under PACK_SHARED_BYTES) are copied together into blobs of at most PACK_BLOB_BYTES;
 * a large one is a blob of its own (no copy). No blob exceeds `maxFrameBytes` unless a byte string does.
 */
export class BlobPacker {
  readonly blobs: Buffer[] = [];
  private run: Buffer[] = [];
  private runBytes = 0;
  private readonly limit: number;

  constructor(maxFrameBytes = Infinity) {
    this.limit = Math.min(PACK_BLOB_BYTES, maxFrameBytes);
  }

  add(part: Buffer): void {
    if (part.length === 0) return;
    if (part.length >= PACK_SHARED_BYTES || part.length > this.limit) {
      this.endRun();
      this.blobs.push(part);
      return;
    }
    if (this.runBytes + part.length > this.limit) this.endRun();
    this.run.push(part);
    this.runBytes += part.length;
  }

  /** The blobs, once every part is added. */
  finish(): Buffer[] {
    this.endRun();
    return this.blobs;
  }

  private endRun(): void {
    if (this.run.length === 0) return;
    this.blobs.push(this.run.length === 1 ? this.run[0] : Buffer.concat(this.run, this.runBytes));
    this.run = [];
    this.runBytes = 0;
  }
}

/**
 * Completions as a DONE with packed outputs (DonePackedMsg): `outputs[c.output]` is the output of
 * completion c. Small outputs are copied together into few blobs; a large one is its own blob (no copy).
 * Every blob is at most `maxFrameBytes` (an output is never larger: the worker ends such a task ERROR).
 */
export function donePacked(
  results: readonly WireCompletion[],
  outputs: readonly Buffer[],
  maxFrameBytes = Infinity,
): { msg: DonePackedMsg; blobs: Buffer[] } {
  const n = results.length;
  const taskIds: string[] = new Array(n);
  const statuses: WireTaskOutcome[] = new Array(n);
  const sizes: number[] = new Array(n);
  let errors: (string | null)[] | undefined;
  const packer = new BlobPacker(maxFrameBytes);
  for (let i = 0; i < n; i++) {
    const c = results[i];
    taskIds[i] = c.taskId;
    statuses[i] = c.status;
    if (c.error !== undefined) (errors ??= new Array<string | null>(n).fill(null))[i] = c.error;
    const out = c.output === undefined ? undefined : outputs[c.output];
    if (out === undefined) {
      sizes[i] = -1;
      continue;
    }
    sizes[i] = out.length;
    packer.add(out);
  }
  const blobs = packer.finish();
  const msg: DonePackedMsg = errors
    ? { t: "DONE", taskIds, statuses, sizes, errors }
    : { t: "DONE", taskIds, statuses, sizes };
  return { msg, blobs };
}

/**
 * The outputs of a packed DONE, or the payloads of a packed TASKS: `sizes[i]` bytes each, in turn, from
 * the blobs joined (-1: none). One that is a whole blob is that blob; one that shares a blob is copied
 * out of it, so that keeping it never keeps its neighbours. A string when the sizes are not whole numbers of at least -1 or do not
 * add up to the blobs' bytes.
 */
export function unpackOutputs(
  sizes: readonly unknown[],
  blobs: readonly Buffer[],
): (Buffer | undefined)[] | string {
  let total = 0;
  for (const s of sizes) {
    if (typeof s !== "number" || !Number.isInteger(s) || s < -1)
      return "a size is not a whole number of at least -1";
    if (s > 0) total += s;
  }
  let have = 0;
  for (const b of blobs) have += b.length;
  if (have !== total) return `the sizes add up to ${total} bytes but the blobs hold ${have}`;
  const out: (Buffer | undefined)[] = new Array(sizes.length);
  let f = 0;
  let at = 0;
  for (let i = 0; i < sizes.length; i++) {
    const size = sizes[i] as number;
    if (size < 0) {
      out[i] = undefined;
      continue;
    }
    if (size === 0) {
      out[i] = Buffer.alloc(0);
      continue;
    }
    while (at === blobs[f].length) {
      f++;
      at = 0;
    }
    const blob = blobs[f];
    if (blob.length - at >= size) {
      out[i] = at === 0 && size === blob.length ? blob : Buffer.from(blob.subarray(at, at + size));
      at += size;
      continue;
    }
    // Across blobs: gathered into one buffer.
    const whole = Buffer.allocUnsafe(size);
    let filled = 0;
    while (filled < size) {
      while (at === blobs[f].length) {
        f++;
        at = 0;
      }
      const take = Math.min(size - filled, blobs[f].length - at);
      blobs[f].copy(whole, filled, at, at + take);
      filled += take;
      at += take;
    }
    out[i] = whole;
  }
  return out;
}
