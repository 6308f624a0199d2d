import type { Logger } from "../log.js";
import type { WireTask, WireTaskOutcome } from "../protocol/worker-messages.js";
import { ErrorCode } from "../protocol/errors.js";
import type { AgentOutcome, AgentRequest } from "./agent-relay.js";
import {
  OUTCOMES,
  REPORT_STRIDE,
  packBlobs,
  unpackBlobs,
  type AgentCall,
  type FromThread,
  type Report,
} from "./executor-messages.js";
import { Executor, type PoolTask } from "./executor.js";

/** How a task the pool held ended. */
export interface PoolCompletion {
  taskId: string;
  status: WireTaskOutcome;
  error?: string;
  /** The task's output; absent when it produced none. */
  output?: Buffer;
}

export interface ExecutorPoolOptions {
  appPath: string;
  /** Executor threads, one task running on each at a time. */
  slots: number;
  log?: Logger;
  /** Tasks that began running (batched). */
  onStarted: (taskIds: string[]) => void;
  /** Tasks that ended (batched). */
  onDone: (results: PoolCompletion[]) => void;
  /** Heap limit of each executor thread, MB (default: Node's). A task going past it fails (FAILED). */
  threadMemoryLimitMb?: number;
  /** New sessions run an application module's file as it is now (`zgrid worker --watch`). */
  watchApps?: boolean;
  /** How often running tasks are checked against maxDuration and cancellation, ms. Default 25. */
  monitorMs?: number;
  /**
   * Agent calls of running tasks, to be sent to the server; `request.answer` takes the outcome back to
   * the thread. Without it, agent calls fail with UNAVAILABLE.
   */
  onAgent?: (request: AgentRequest) => void;
  /** A thread was terminated or died: its agent calls in flight can be forgotten. */
  onThreadGone?: (thread: object) => void;
}

// Batch sizing: a thread gets about this much work at a time (by the measured task duration)...
const TARGET_BATCH_MS = 2;
// ...within these bounds.
const MAX_BATCH = 256;
// A thread that dies this soon after starting, having reported nothing, probably cannot start: wait a bit.
const RESPAWN_BACKOFF_MS = 1000;
// How long to wait for a terminated thread's last messages before re-running the tasks they would report.
const SALVAGE_WAIT_MS = 2000;

/**
 * Runs tasks on `slots` executor threads. Tasks wait in one queue and go to threads in small batches, sized
 * so a batch is about two milliseconds of work: short tasks travel many to a message, long ones one at a time
 * so no task waits behind a long one while another thread is idle.
 *
 * Each thread shares a {@link ThreadState} with the pool; a timer reads it to stop a task past its
 * maxDuration (TIMEOUT) or cancelled while running (CANCELLED) by terminating the thread and starting a
 * fresh one. A thread that dies fails the task it was running (FAILED, retryable). Either way the tasks
 * queued behind it run elsewhere.
 */
export class ExecutorPool {
  private readonly executors: Executor[] = [];
  /** Every thread not yet exited, including retired ones still terminating. */
  private readonly threads = new Set<Executor>();
  private readonly tasks = new Map<string, PoolTask>();
  private pending: PoolTask[] = [];
  private pendingHead = 0;
  private pendingCount = 0;
  private nextSeq = 1;
  private avgTaskMs: number | undefined;
  private monitor: NodeJS.Timeout | undefined;
  private stopping = false;
  // Gathered during one handler, handed over once at its end.
  private startedOut: string[] = [];
  private doneOut: PoolCompletion[] = [];

  constructor(private readonly opts: ExecutorPoolOptions) {}

  /** Starts the threads. Tasks submitted before they are up wait in their message queues. */
  start(): void {
    for (let slot = 0; slot < this.opts.slots; slot++) this.executors.push(this.spawn(slot));
    this.monitor = setInterval(() => this.checkRunning(), this.opts.monitorMs ?? 25);
    this.monitor.unref();
  }

  /** Tasks held: queued here or on a thread, or running. */
  get held(): number {
    return this.tasks.size;
  }

  has(taskId: string): boolean {
    return this.tasks.has(taskId);
  }

  /** Ids of the tasks held, for READY: the server says which are still this worker's. */
  heldIds(): string[] {
    return [...this.tasks.keys()];
  }

  /** Queues tasks; a task already held (a duplicate delivery) is ignored. */
  submit(batch: { task: WireTask; payload: Uint8Array }[]): void {
    if (this.stopping) return;
    for (const { task, payload } of batch) {
      if (this.tasks.has(task.taskId)) continue;
      const t: PoolTask = {
        task,
        payload,
        seq: this.nextSeq++,
        state: "pending",
        started: false,
        executor: undefined,
      };
      this.tasks.set(task.taskId, t);
      this.pending.push(t);
      this.pendingCount++;
    }
    this.dispatch();
  }

  /**
   * Cancels tasks: a queued one is dropped, a running one has its thread replaced. Each is reported
   * CANCELLED at once. Returns how many were held.
   */
  cancel(taskIds: string[], reason = "cancelled"): number {
    let count = 0;
    const skips = new Map<Executor, number[]>();
    for (const id of taskIds) {
      const t = this.tasks.get(id);
      if (!t || t.state === "done") continue;
      count++;
      const executor = t.executor;
      this.finish(t, "CANCELLED", reason);
      if (!executor || executor.retired) continue;
      if (executor.runningTask() === t) {
        this.retire(executor);
      } else {
        const seqs = skips.get(executor) ?? [];
        seqs.push(t.seq);
        skips.set(executor, seqs);
      }
    }
    // A skip can lose the race against the thread starting the task: checkRunning() catches that.
    for (const [executor, seqs] of skips) if (!executor.retired) executor.skip(seqs);
    this.flush();
    this.dispatch();
    return count;
  }

  /**
   * Stops every thread: each leaves its sessions and destroys its services after its current task, or is
   * terminated after `graceMs`. Tasks still held are dropped without a report.
   */
  async stop(graceMs = 3000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.monitor);
    this.pending = [];
    this.pendingHead = 0;
    this.pendingCount = 0;
    const waits: Promise<unknown>[] = [];
    for (const e of this.threads) {
      if (!e.retired) {
        e.retired = true;
        e.stop();
        const timer = setTimeout(() => void e.worker.terminate(), graceMs);
        waits.push(e.exited.finally(() => clearTimeout(timer)));
      } else {
        waits.push(e.exited);
      }
    }
    await Promise.all(waits);
    this.tasks.clear();
  }

  private spawn(slot: number): Executor {
    const e = new Executor(
      slot,
      this.opts.appPath,
      (executor, msg) => this.onMessage(executor, msg),
      this.opts.threadMemoryLimitMb,
      this.opts.watchApps,
    );
    this.threads.add(e);
    void e.exited.then((code) => this.onExit(e, code));
    return e;
  }

  private onMessage(e: Executor, msg: FromThread): void {
    switch (msg.t) {
      case "report":
        e.reported = true;
        this.onReport(e, msg);
        break;
      case "agent":
        this.onAgentCall(e, msg);
        break;
      case "log":
        this.opts.log?.[msg.level]({ slot: e.slot, err: msg.err }, msg.msg);
        break;
      case "stopped":
        void e.worker.terminate();
        break;
    }
  }

  private onReport(e: Executor, msg: Report): void {
    if (this.stopping) return;
    // STARTED: every task up to the one named `started`, in the thread's order.
    if (msg.started !== -1) {
      let last = -1;
      for (let i = 0; i < e.queue.length; i++) if (e.queue[i].seq === msg.started) last = i;
      this.startedUpTo(e, last);
    }
    const { numbers, errors, outputs, count } = msg;
    let offset = 0;
    for (let i = 0; i < count; i++) {
      const k = i * REPORT_STRIDE;
      const seq = numbers[k];
      const outputLength = numbers[k + 2];
      let output: Buffer | undefined;
      if (outputLength >= 0 && outputs) {
        output = Buffer.from(outputs, offset, outputLength);
        offset += outputLength;
      }
      // Results come in queue order; anything passed over was already finished here (cancelled).
      let t = e.queue.shift();
      while (t && t.seq !== seq) {
        if (t.state !== "done") this.requeue([t]);
        t = e.queue.shift();
      }
      if (t && t.state !== "done") this.finish(t, OUTCOMES[numbers[k + 1]], errors?.[i] ?? undefined, output);
    }
    if (count > 0) {
      const per = msg.busyMs / count;
      this.avgTaskMs = this.avgTaskMs === undefined ? per : this.avgTaskMs * 0.7 + per * 0.3;
    }
    this.flush();
    this.dispatch();
  }

  /** The tasks of `e`'s queue up to index `last` have begun: STARTED for those not yet said. */
  private startedUpTo(e: Executor, last: number): void {
    for (let i = 0; i <= last; i++) {
      const t = e.queue[i];
      if (!t.started && t.state !== "done") {
        t.started = true;
        this.startedOut.push(t.task.taskId);
      }
    }
  }

  /** An agent call of the task running on `e`: to the host, if the task is still ours to run. */
  private onAgentCall(e: Executor, call: AgentCall): void {
    const answer = (o: AgentOutcome): void => {
      const { data, sizes } = packBlobs(o.blobs);
      e.answer({
        t: "agentReply",
        rid: call.rid,
        ok: o.ok,
        msg: o.msg,
        code: o.code,
        error: o.error,
        data,
        sizes,
      });
    };
    const t = this.tasks.get(call.taskId);
    if (this.stopping) {
      answer({ ok: false, code: ErrorCode.UNAVAILABLE, error: "the worker is stopping", blobs: [] });
    } else if (!t || t.seq !== call.seq || t.executor !== e || t.state !== "assigned") {
      answer({
        ok: false,
        code: ErrorCode.FAILED_PRECONDITION,
        error: `task ${call.taskId} is no longer running on this worker (cancelled or timed out)`,
        blobs: [],
      });
    } else if (!this.opts.onAgent) {
      answer({ ok: false, code: ErrorCode.UNAVAILABLE, error: "no server to take agent calls", blobs: [] });
    } else {
      this.opts.onAgent({
        taskId: call.taskId,
        op: call.op,
        args: call.args,
        blobs: unpackBlobs(call.data, call.sizes),
        owner: e,
        answer,
      });
    }
  }

  private onExit(e: Executor, code: number): void {
    this.threads.delete(e);
    this.opts.onThreadGone?.(e);
    if (this.stopping) return;
    if (!e.retired) {
      // The thread died on its own: process.exit in application code, an uncaught error, out of memory.
      e.retired = true;
      const reason = e.lastError ? `${e.lastError.name}: ${e.lastError.message}` : `exited with code ${code}`;
      const running = e.runningTask();
      this.opts.log?.warn({ slot: e.slot, taskId: running?.task.taskId, reason }, "executor thread died");
      if (running && running.state !== "done") {
        this.finish(running, "FAILED", `the worker thread running the task died: ${reason}`);
      }
      const quick = !e.reported && Date.now() - e.spawnedAt < RESPAWN_BACKOFF_MS;
      if (quick) {
        setTimeout(() => this.replace(e), RESPAWN_BACKOFF_MS).unref();
      } else {
        this.replace(e);
      }
    }
    this.salvage(e);
    this.flush();
    this.dispatch();
  }

  /**
   * Gives up on a thread (running task past its limit, or cancelled): terminates it and starts a fresh one
   * in its slot. Its tasks that never began go back to the queue now; those that ran may have results in
   * flight, so they wait for the thread's exit (or {@link SALVAGE_WAIT_MS}) before running again.
   */
  private retire(e: Executor): void {
    if (e.retired) return;
    e.retired = true;
    const begun = e.lastStartedIndex();
    this.requeue(e.queue.splice(begun + 1).filter((t) => t.state !== "done"));
    void e.worker.terminate();
    this.opts.onThreadGone?.(e);
    setTimeout(() => this.salvage(e), SALVAGE_WAIT_MS).unref();
    this.replace(e);
  }

  private replace(e: Executor): void {
    if (this.stopping || this.executors[e.slot] !== e) return;
    this.executors[e.slot] = this.spawn(e.slot);
    this.dispatch();
  }

  /** Re-runs what a dead thread held and did not report. */
  private salvage(e: Executor): void {
    const left = e.queue.filter((t) => t.state !== "done");
    e.queue = [];
    if (left.length > 0 && !this.stopping) {
      this.requeue(left);
      this.dispatch();
    }
  }

  /** Puts tasks back at the head of the queue, in order. */
  private requeue(tasks: PoolTask[]): void {
    if (tasks.length === 0) return;
    for (const t of tasks) {
      t.state = "pending";
      t.executor = undefined;
    }
    this.pending = tasks.concat(this.pending.slice(this.pendingHead));
    this.pendingHead = 0;
    this.pendingCount += tasks.length;
  }

  /** The timer: stops tasks past their maxDuration, and cancelled tasks a thread started anyway. */
  private checkRunning(): void {
    const now = Date.now();
    for (const e of this.executors) {
      if (e.retired) continue;
      const t = e.runningTask();
      if (!t) continue;
      if (t.state === "done") {
        this.retire(e); // cancelled, but the skip came too late
        continue;
      }
      // A task holding its thread since it began has not said so (the thread says it at its next turn).
      if (!t.started) this.startedUpTo(e, e.lastStartedIndex());
      const limit = t.task.options.maxDuration ?? 0;
      const ran = now - e.state.startedAt;
      if (limit > 0 && ran > limit) {
        this.finish(
          t,
          "TIMEOUT",
          `the task exceeded its maxDuration of ${limit} ms (ran ${ran} ms) and was stopped`,
        );
        this.retire(e);
      }
    }
    this.flush();
    this.dispatch();
  }

  private finish(t: PoolTask, status: WireTaskOutcome, error?: string, output?: Buffer): void {
    if (t.state === "pending") this.pendingCount--;
    t.state = "done";
    t.executor = undefined;
    this.tasks.delete(t.task.taskId);
    const c: PoolCompletion = { taskId: t.task.taskId, status };
    if (error !== undefined) c.error = error;
    if (output !== undefined) c.output = output;
    this.doneOut.push(c);
  }

  private flush(): void {
    if (this.startedOut.length > 0) {
      const started = this.startedOut;
      this.startedOut = [];
      this.opts.onStarted(started);
    }
    if (this.doneOut.length > 0) {
      const done = this.doneOut;
      this.doneOut = [];
      this.opts.onDone(done);
    }
  }

  /** Hands queued tasks to threads: idle threads first, an even share each; then tops up busy ones. */
  private dispatch(): void {
    if (this.stopping || this.pendingCount === 0) return;
    const avg = this.avgTaskMs;
    // Until a duration is measured, one at a time: the first tasks may well be long ones.
    const limit = avg === undefined ? 1 : Math.max(1, Math.min(MAX_BATCH, Math.floor(TARGET_BATCH_MS / avg)));
    const idle = this.executors.filter((e) => !e.retired && e.queue.length === 0);
    for (let i = 0; i < idle.length && this.pendingCount > 0; i++) {
      this.give(idle[i], Math.min(limit, Math.ceil(this.pendingCount / (idle.length - i))));
    }
    if (limit > 1) {
      // Short tasks: keep a batch queued behind the running one so the thread never waits for a round trip.
      for (const e of this.executors) {
        if (this.pendingCount === 0) break;
        if (!e.retired && e.queue.length <= limit / 2) this.give(e, limit - e.queue.length);
      }
    }
    if (this.pendingHead > 1024 && this.pendingHead * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.pendingHead);
      this.pendingHead = 0;
    }
  }

  private give(e: Executor, n: number): void {
    const batch: PoolTask[] = [];
    while (batch.length < n && this.pendingHead < this.pending.length) {
      const t = this.pending[this.pendingHead];
      this.pending[this.pendingHead++] = undefined as unknown as PoolTask;
      if (t.state !== "pending") continue; // finished (cancelled) while queued
      t.state = "assigned";
      t.executor = e;
      this.pendingCount--;
      batch.push(t);
    }
    if (this.pendingHead === this.pending.length) {
      this.pending = [];
      this.pendingHead = 0;
    }
    if (batch.length > 0) e.run(batch);
  }
}
