/**
 * What the pool (main thread) and an executor thread say to each other over postMessage. This is the hot
 * path, so batches travel in columns (typed arrays, arrays of strings): structured clone is much cheaper
 * on those than on one object per task. Payloads and outputs of a batch travel concatenated in one
 * transferred ArrayBuffer: cloning a Uint8Array view copies its whole backing buffer (often an 8 KB pool
 * slab), which would dwarf a no-op task.
 */
import type { AgentMsg, WireTaskOptions, WireTaskOutcome } from "../protocol/worker-messages.js";

/** The task options an executor thread needs: which service runs the task. */
export type ThreadApp = Pick<
  WireTaskOptions,
  "applicationName" | "applicationVersion" | "applicationNamespace" | "applicationService"
>;

/** A task as an executor thread runs it. */
export interface ThreadTask {
  /** The pool's sequence number: unique per pool. */
  seq: number;
  taskId: string;
  sessionId: string;
  /** Shared by the tasks of a batch that run on the same service. */
  options: ThreadApp;
  expectedOutputIds: string[];
  dataDependencies: string[];
  attempt: number;
}

/** Per-task numbers of a {@link RunBatch}: `RUN_STRIDE` numbers per task, at these offsets. */
export const RUN_STRIDE = 7;
export const RUN_SEQ = 0;
export const RUN_ATTEMPT = 1;
export const RUN_APP = 2;
export const RUN_PAYLOAD_LENGTH = 3;
/** Index of the task's session in {@link RunBatch.sessions}. */
export const RUN_SESSION = 4;
/** How many expected output ids, then data dependency ids, follow the task id in {@link RunBatch.ids}. */
export const RUN_OUTPUTS = 5;
export const RUN_DEPENDENCIES = 6;

/** What separates the ids of {@link RunBatch.ids}: never part of an id the server makes. */
export const ID_SEPARATOR = "\u0000";

/**
 * Tasks for a thread's queue, in columns; task i's payload is the next payload-length bytes of `payloads`.
 * The ids travel as one string (one copy, where a list of strings and a list per task would be cloned
 * item by item): for each task in turn, its id, its expected output ids, its data dependency ids, joined
 * by ID_SEPARATOR.
 */
export interface RunBatch {
  t: "run";
  numbers: Float64Array;
  ids: string;
  /** The distinct sessions of the batch; RUN_SESSION indexes it. */
  sessions: string[];
  /** The distinct services of the batch; RUN_APP indexes it. */
  apps: ThreadApp[];
  payloads: ArrayBuffer;
}

/** The agent operations of the worker protocol (AGENT's `op`). */
export type AgentOp = AgentMsg["op"];

/**
 * Thread → pool: an agent call of the running task. `rid` is the thread's own call number; the blobs
 * travel concatenated in `data` (transferred), blob i being the next `sizes[i]` bytes.
 */
export interface AgentCall {
  t: "agent";
  seq: number;
  taskId: string;
  rid: number;
  op: AgentOp;
  args: Record<string, unknown>;
  data: ArrayBuffer | null;
  sizes: number[] | null;
}

/** Pool → thread: the answer to the thread's agent call `rid` (AGENT_REPLY, or a local failure). */
export interface AgentAnswer {
  t: "agentReply";
  rid: number;
  ok: boolean;
  msg?: unknown;
  code?: string;
  error?: string;
  data: ArrayBuffer | null;
  sizes: number[] | null;
}

/** Pool → thread. */
export type ToThread =
  | RunBatch
  | AgentAnswer
  /** Drop these queued tasks (cancelled): the thread reports them CANCELLED instead of running them. */
  | { t: "skip"; seqs: number[] }
  /** Drop the queue, finish the current task, leave sessions, destroy services, answer "stopped". */
  | { t: "stop" };

/** Outcomes as numbers, for the report's columns. */
export const OUTCOMES: readonly WireTaskOutcome[] = ["COMPLETED", "FAILED", "ERROR", "TIMEOUT", "CANCELLED"];
export const OUTCOME_CODE: Readonly<Record<WireTaskOutcome, number>> = {
  COMPLETED: 0,
  FAILED: 1,
  ERROR: 2,
  TIMEOUT: 3,
  CANCELLED: 4,
};

/** Per-result numbers of a report: seq, outcome code, output length (-1: no output). */
export const REPORT_STRIDE = 3;

/**
 * Thread → pool: tasks up to and including `started` (a seq, -1 if none yet) have begun; the results ended,
 * in queue order. Result i's output is the next output-length bytes of `outputs`; its error, if any, is
 * `errors[i]`. `busyMs`: time spent running those tasks (the pool sizes its batches from it).
 */
export interface Report {
  t: "report";
  started: number;
  busyMs: number;
  count: number;
  numbers: Float64Array;
  errors: (string | null)[] | null;
  outputs: ArrayBuffer | null;
}

/** Thread → pool. */
export type FromThread =
  | Report
  | AgentCall
  | { t: "log"; level: "info" | "warn" | "error"; msg: string; err?: string }
  | { t: "stopped" };

/** What an executor thread is started with (`workerData`). */
export interface ExecutorThreadData {
  appPath: string;
  /** Import an application module again when its file changed (`zgrid worker --watch`). */
  watch?: boolean;
  /** A {@link ThreadState} buffer. */
  state: SharedArrayBuffer;
}

/** Whether two tasks run on the same service (same application, version, namespace, service name). */
export function sameApp(a: ThreadApp, b: ThreadApp): boolean {
  return (
    a === b ||
    (a.applicationName === b.applicationName &&
      (a.applicationVersion ?? "") === (b.applicationVersion ?? "") &&
      (a.applicationNamespace ?? "") === (b.applicationNamespace ?? "") &&
      (a.applicationService ?? "") === (b.applicationService ?? ""))
  );
}

/** Packs blobs for postMessage: one buffer to transfer, and the size of each blob. */
export function packBlobs(blobs: readonly Uint8Array[]): {
  data: ArrayBuffer | null;
  sizes: number[] | null;
} {
  if (blobs.length === 0) return { data: null, sizes: null };
  let total = 0;
  for (const b of blobs) total += b.length;
  const data = new ArrayBuffer(total);
  const bytes = new Uint8Array(data);
  const sizes = new Array<number>(blobs.length);
  let offset = 0;
  for (let i = 0; i < blobs.length; i++) {
    bytes.set(blobs[i], offset);
    offset += blobs[i].length;
    sizes[i] = blobs[i].length;
  }
  return { data, sizes };
}

/** The blobs {@link packBlobs} packed, as Buffers over the received buffer (no copy). */
export function unpackBlobs(data: ArrayBuffer | null, sizes: number[] | null): Buffer[] {
  if (!data || !sizes) return [];
  const blobs = new Array<Buffer>(sizes.length);
  let offset = 0;
  for (let i = 0; i < sizes.length; i++) {
    blobs[i] = Buffer.from(data, offset, sizes[i]);
    offset += sizes[i];
  }
  return blobs;
}
