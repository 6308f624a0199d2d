import { encode } from "../protocol/codec.js";
import type { SendQueue } from "../protocol/send-queue.js";
import {
  doneColumns,
  donePacked,
  type AgentMsg,
  type WireCompletion,
  type WorkerToServer,
} from "../protocol/worker-messages.js";
import type { PoolCompletion } from "./executor-pool.js";

const EMPTY = Buffer.alloc(0);
// Keeps a DONE message to a size the server handles in one go; more results go in further messages.
const MAX_RESULTS_PER_DONE = 4096;

/** Completions kept for a resend after the server lost track of this worker: at most this many, */
const RECENT_MAX = 100_000;
/** this many bytes of outputs, */
const RECENT_MAX_BYTES = 64 * 1024 * 1024;
/** and for at least this long (or ten server heartbeat intervals). */
const RECENT_MIN_MS = 10_000;

interface SentCompletion {
  at: number;
  c: WireCompletion;
  output: Buffer | undefined;
}

/**
 * Everything the worker host sends. STARTED, DONE and FETCH are the hot path: they are gathered during an
 * event-loop turn and sent as one message each (per kind) from setImmediate, instead of one per task;
 * while the host is not busy, at the end of the handler that gathered them (a lone task waits no turn).
 */
export class Outbox {
  private started: string[] = [];
  private done: WireCompletion[] = [];
  private blobs: Buffer[] = [];
  private fetches: string[] = [];
  private nextRid = 1;
  private scheduled = false;
  private readonly flushNow = (): void => this.flush();
  /**
   * Completions sent lately, oldest first from recentHead: a server that restarted, or declared this
   * worker dead, may never have read them, so they are resent once it welcomes this worker again.
   */
  private recent: SentCompletion[] = [];
  private recentHead = 0;
  private recentBytes = 0;
  /** The server takes DONE as columns (its WELCOME said so). */
  columns = false;
  /** The server takes DONE with packed outputs, not a blob per output (its WELCOME said so). */
  packedOutputs = false;
  /** The largest frame the server reads (its WELCOME's `maxFrameBytes`): a larger output ends ERROR. */
  maxFrameBytes = Infinity;

  /**
   * `busy`: whether the host has more work than it runs at once (reports then come in streams, and are
   * gathered per turn); by default always.
   */
  constructor(
    private readonly queue: SendQueue,
    private readonly busy: () => boolean = () => true,
  ) {}

  /** Sends a message now (READY, HEARTBEAT, BYE). */
  send(msg: WorkerToServer, blobs: Buffer[] = []): void {
    this.queue.send([EMPTY, encode(msg), ...blobs]);
  }

  /**
   * Sends an agent call now: a task waits on it. Any STARTED gathered goes first, so the server sees the
   * task running before its calls; DONE is sent later, so it never overtakes them.
   */
  agent(msg: AgentMsg, blobs: Buffer[]): void {
    this.flushStarted();
    this.send(msg, blobs);
  }

  taskStarted(taskIds: string[]): void {
    for (const id of taskIds) this.started.push(id);
    this.schedule();
  }

  taskDone(results: PoolCompletion[]): void {
    const now = Date.now();
    for (const r of results) {
      const c: WireCompletion = { taskId: r.taskId, status: r.status };
      if (r.error !== undefined) c.error = r.error;
      let output = r.output;
      if (output !== undefined && output.length > this.maxFrameBytes) {
        // The server would drop the connection that sent it (and the worker send it again, forever).
        c.status = "ERROR";
        c.error = `the task's output of ${output.length} bytes is over the server's frame limit of ${this.maxFrameBytes} bytes (--max-frame-bytes)`;
        output = undefined;
      }
      if (output !== undefined) {
        c.output = this.blobs.length;
        this.blobs.push(output);
        this.recentBytes += output.length;
      }
      this.recent.push({ at: now, c, output });
      this.done.push(c);
      if (this.done.length >= MAX_RESULTS_PER_DONE) this.flushDone();
    }
    this.trimRecent(now, 0);
    this.schedule();
  }

  /** Drops kept completions older than `keepMs` (0: only what exceeds the count and byte caps). */
  trimRecent(now: number, keepMs: number): void {
    const oldest = keepMs > 0 ? now - Math.max(keepMs, RECENT_MIN_MS) : -Infinity;
    while (
      this.recentHead < this.recent.length &&
      (this.recent.length - this.recentHead > RECENT_MAX ||
        this.recentBytes > RECENT_MAX_BYTES ||
        this.recent[this.recentHead].at < oldest)
    ) {
      const e = this.recent[this.recentHead];
      this.recent[this.recentHead++] = undefined as unknown as SentCompletion;
      if (e.output) this.recentBytes -= e.output.length;
    }
    if (this.recentHead > 1024 && this.recentHead * 2 > this.recent.length) {
      this.recent = this.recent.slice(this.recentHead);
      this.recentHead = 0;
    }
  }

  /** Ids of the tasks whose completions were sent lately (READY's `held`: the server should keep them). */
  recentlyDone(): string[] {
    const ids: string[] = [];
    for (let i = this.recentHead; i < this.recent.length; i++) ids.push(this.recent[i].c.taskId);
    return ids;
  }

  /**
   * Sends the kept completions again (after a WELCOME that follows a loss of the server): the server
   * takes each only if it still has that task on this worker, so a repeat changes nothing.
   */
  resendRecent(): void {
    this.flush();
    for (let i = this.recentHead; i < this.recent.length; i += MAX_RESULTS_PER_DONE) {
      const results: WireCompletion[] = [];
      const blobs: Buffer[] = [];
      for (let j = i; j < Math.min(i + MAX_RESULTS_PER_DONE, this.recent.length); j++) {
        const { c, output } = this.recent[j];
        const again: WireCompletion = { taskId: c.taskId, status: c.status };
        if (c.error !== undefined) again.error = c.error;
        if (output !== undefined) {
          again.output = blobs.length;
          blobs.push(output);
        }
        results.push(again);
      }
      this.sendDone(results, blobs);
    }
  }

  /** One DONE, in the form the server reads best: packed outputs, columns, or maps. */
  private sendDone(results: WireCompletion[], blobs: Buffer[]): void {
    if (this.columns && this.packedOutputs) {
      const packed = donePacked(results, blobs, this.maxFrameBytes);
      this.send(packed.msg, packed.blobs);
    } else {
      this.send(this.columns ? doneColumns(results) : { t: "DONE", results }, blobs);
    }
  }

  fetch(resultIds: Iterable<string>): void {
    for (const id of resultIds) this.fetches.push(id);
    this.schedule();
  }

  /** Sends what was gathered: STARTED before DONE, so the server sees a task begin before it ends. */
  flush(): void {
    this.scheduled = false;
    this.flushDone();
    this.flushStarted();
    if (this.fetches.length > 0) {
      this.send({ t: "FETCH", rid: this.nextRid++, resultIds: this.fetches });
      this.fetches = [];
    }
  }

  private flushDone(): void {
    if (this.done.length === 0) return;
    // A DONE must not overtake the STARTED of its tasks: they go in it (packed), or just before it.
    if (this.columns && this.packedOutputs && this.started.length > 0) {
      const packed = donePacked(this.done, this.blobs, this.maxFrameBytes);
      packed.msg.started = this.started;
      this.started = [];
      this.send(packed.msg, packed.blobs);
    } else {
      this.flushStarted();
      this.sendDone(this.done, this.blobs);
    }
    this.done = [];
    this.blobs = [];
  }

  private flushStarted(): void {
    if (this.started.length === 0) return;
    this.send({ t: "STARTED", taskIds: this.started });
    this.started = [];
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // While the host is busy, gather a whole event-loop turn's; else send at the end of this handler:
    // one task at a time must not wait for the turn.
    if (this.busy()) setImmediate(this.flushNow);
    else queueMicrotask(this.flushNow);
  }
}
