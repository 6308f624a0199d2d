/**
 * Entry of an executor thread: runs the tasks the pool sends it, one after the other, and reports them in
 * batches. Application code runs here, off the main thread, so a task spinning the CPU never delays the
 * host's heartbeats, and the pool can terminate this thread to enforce maxDuration or a cancellation.
 */
import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { performance } from "node:perf_hooks";
import { AgentChannel } from "./agent-channel.js";
import { AppLoader } from "./app-loader.js";
import {
  ID_SEPARATOR,
  OUTCOME_CODE,
  RUN_APP,
  RUN_ATTEMPT,
  RUN_DEPENDENCIES,
  RUN_OUTPUTS,
  RUN_PAYLOAD_LENGTH,
  RUN_SEQ,
  RUN_SESSION,
  RUN_STRIDE,
  type ExecutorThreadData,
  type FromThread,
  type RunBatch,
  type ThreadTask,
  type ToThread,
} from "./executor-messages.js";
import { ServiceRegistry } from "./service-registry.js";
import { TaskRunner, describeError } from "./task-runner.js";
import { ThreadState } from "./thread-state.js";

if (!parentPort) throw new Error("executor-thread.js runs as a worker thread of the zgrid worker host");
const port = parentPort;
const data = workerData as ExecutorThreadData;
const state = new ThreadState(data.state);
const registry = new ServiceRegistry(new AppLoader(data.appPath, { watch: data.watch }), (msg, err) =>
  send({ t: "log", level: "warn", msg, err: describeError(err) }),
);
// Agent calls of the running task: one message to the pool and one back per call. The task's start is
// reported first, so the server sees it running (STARTED) before its calls.
const channel = new AgentChannel((msg, transfer) => {
  if (started !== reportedStarted) report();
  send(msg, transfer);
});
const runner = new TaskRunner(registry, channel);

// The local queue: a thread may hold a small batch of tasks.
let queue: { task: ThreadTask; payload: Uint8Array }[] = [];
let head = 0;
const skipped = new Set<number>();
let pumping = false;
let stopping = false;
let finished = false;

// The report being gathered: sent when the queue runs dry, or at most every millisecond while busy.
let started = -1;
let reportedStarted = -1;
let numbers: number[] = []; // REPORT_STRIDE numbers per result
let errors: (string | null)[] | null = null;
let count = 0;
let outputs: Uint8Array[] = [];
let outputBytes = 0;
let busyMs = 0;
let lastReport = 0;
let reportTimer: NodeJS.Timeout | undefined;
let reportSoon: NodeJS.Immediate | undefined;

function send(msg: FromThread, transfer?: ArrayBuffer[]): void {
  port.postMessage(msg, transfer);
}

function handle(msg: ToThread): void {
  switch (msg.t) {
    case "run":
      enqueue(msg);
      if (!pumping && !stopping) void pump();
      break;
    case "agentReply":
      channel.onAnswer(msg);
      break;
    case "skip":
      for (const seq of msg.seqs) skipped.add(seq);
      break;
    case "stop":
      stopping = true;
      if (!pumping) void finish();
      break;
  }
}

function enqueue(batch: RunBatch): void {
  const { numbers: nums, apps, sessions } = batch;
  const n = nums.length / RUN_STRIDE;
  const ids = batch.ids.split(ID_SEPARATOR);
  let expected = 0;
  for (let i = 0; i < n; i++)
    expected += 1 + nums[i * RUN_STRIDE + RUN_OUTPUTS] + nums[i * RUN_STRIDE + RUN_DEPENDENCIES];
  if (ids.length !== expected) {
    // An id holding the separator (never one the server makes): the batch cannot be read back.
    for (let i = 0; i < n; i++)
      addResult(
        nums[i * RUN_STRIDE + RUN_SEQ],
        OUTCOME_CODE.FAILED,
        "the task's ids could not be read",
        undefined,
      );
    report();
    return;
  }
  let offset = 0;
  let at = 0;
  for (let i = 0; i < n; i++) {
    const k = i * RUN_STRIDE;
    const length = nums[k + RUN_PAYLOAD_LENGTH];
    const taskId = ids[at++];
    const outputs = nums[k + RUN_OUTPUTS];
    const dependencies = nums[k + RUN_DEPENDENCIES];
    const task: ThreadTask = {
      seq: nums[k + RUN_SEQ],
      taskId,
      sessionId: sessions[nums[k + RUN_SESSION]],
      options: apps[nums[k + RUN_APP]],
      expectedOutputIds: ids.slice(at, at + outputs),
      dataDependencies: ids.slice(at + outputs, at + outputs + dependencies),
      attempt: nums[k + RUN_ATTEMPT],
    };
    at += outputs + dependencies;
    queue.push({ task, payload: new Uint8Array(batch.payloads, offset, length) });
    offset += length;
  }
}

/** Handles messages already waiting, without yielding: a batch of synchronous tasks never yields. */
function drainPort(): void {
  for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) handle(m.message as ToThread);
}

async function pump(): Promise<void> {
  pumping = true;
  let lastDrain = Date.now();
  while (head < queue.length && !stopping) {
    const now = Date.now();
    if (now - lastDrain >= 1) {
      drainPort(); // picks up skips, more tasks, or a stop
      lastDrain = now;
      if (stopping) break;
    }
    const { task, payload } = queue[head];
    queue[head++] = undefined as unknown as (typeof queue)[number];
    if (skipped.delete(task.seq)) {
      addResult(task.seq, OUTCOME_CODE.CANCELLED, undefined, undefined);
      continue;
    }
    state.begin(task.seq, now);
    started = task.seq;
    // Say promptly that a task has begun, and what ended before it, unless reports are flowing anyway
    // (many short tasks). If the task turns out long but awaits, the timer reports while it waits.
    // With nothing ended to report, at the next turn: a task that ends at once is then reported once,
    // begun and ended together; one that holds the thread is seen begun by the pool (shared state).
    if (now - lastReport >= 1) {
      if (count > 0) report();
      else reportSoon ??= setImmediate(report);
    } else {
      reportTimer ??= setTimeout(report, 1);
    }
    const t0 = performance.now();
    const outcome = await runner.run(task, payload);
    busyMs += performance.now() - t0;
    state.end();
    addResult(task.seq, OUTCOME_CODE[outcome.status], outcome.error, outcome.output);
  }
  queue = head < queue.length ? queue.slice(head) : [];
  head = 0;
  pumping = false;
  report();
  if (stopping) await finish();
}

function addResult(
  seq: number,
  code: number,
  error: string | undefined,
  output: Uint8Array | undefined,
): void {
  numbers.push(seq, code, output ? output.length : -1);
  if (output) {
    outputs.push(output);
    outputBytes += output.length;
  }
  if (error !== undefined) {
    errors ??= new Array<string | null>(count).fill(null);
    errors.push(error);
  } else if (errors) {
    errors.push(null);
  }
  count++;
}

function report(): void {
  if (reportTimer) {
    clearTimeout(reportTimer);
    reportTimer = undefined;
  }
  if (reportSoon) {
    clearImmediate(reportSoon);
    reportSoon = undefined;
  }
  if (count === 0 && started === reportedStarted) return;
  let buffer: ArrayBuffer | null = null;
  if (outputBytes > 0) {
    // One buffer for every output of the report, transferred, not copied.
    buffer = new ArrayBuffer(outputBytes);
    const bytes = new Uint8Array(buffer);
    let offset = 0;
    for (const out of outputs) {
      bytes.set(out, offset);
      offset += out.length;
    }
  }
  const nums = new Float64Array(numbers);
  const transfer = [nums.buffer as ArrayBuffer];
  if (buffer) transfer.push(buffer);
  send({ t: "report", started, busyMs, count, numbers: nums, errors, outputs: buffer }, transfer);
  reportedStarted = started;
  numbers = [];
  errors = null;
  count = 0;
  outputs = [];
  outputBytes = 0;
  busyMs = 0;
  lastReport = Date.now();
}

async function finish(): Promise<void> {
  if (finished) return;
  finished = true;
  queue = [];
  head = 0;
  try {
    await registry.shutdown();
  } catch (err) {
    send({ t: "log", level: "warn", msg: "shutting services down failed", err: describeError(err) });
  }
  send({ t: "stopped" });
}

port.on("message", handle);
