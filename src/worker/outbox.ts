import { encode } from "../protocol/codec.js";
import type { SendQueue } from "../protocol/send-queue.js";
import type { AgentMsg, WireCompletion, WorkerToServer } from "../protocol/worker-messages.js";
import type { PoolCompletion } from "./executor-pool.js";

const EMPTY = Buffer.alloc(0);
// Keeps a DONE message to a size the server handles in one go; more results go in further messages.
const MAX_RESULTS_PER_DONE = 4096;

/**
 * Everything the worker host sends. STARTED, DONE and FETCH are the hot path: they are gathered during an
 * event-loop turn and sent as one message each (per kind) from setImmediate, instead of one per task.
 */
export class Outbox {
  private started: string[] = [];
  private done: WireCompletion[] = [];
  private blobs: Buffer[] = [];
  private fetches: string[] = [];
  private nextRid = 1;
  private scheduled = false;

  constructor(private readonly queue: SendQueue) {}

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
    for (const r of results) {
      const c: WireCompletion = { taskId: r.taskId, status: r.status };
      if (r.error !== undefined) c.error = r.error;
      if (r.output !== undefined) {
        c.output = this.blobs.length;
        this.blobs.push(r.output);
      }
      this.done.push(c);
      if (this.done.length >= MAX_RESULTS_PER_DONE) this.flushDone();
    }
    this.schedule();
  }

  fetch(resultIds: Iterable<string>): void {
    for (const id of resultIds) this.fetches.push(id);
    this.schedule();
  }

  /** Sends what was gathered: STARTED before DONE, so the server sees a task begin before it ends. */
  flush(): void {
    this.scheduled = false;
    this.flushStarted();
    this.flushDone();
    if (this.fetches.length > 0) {
      this.send({ t: "FETCH", rid: this.nextRid++, resultIds: this.fetches });
      this.fetches = [];
    }
  }

  private flushDone(): void {
    if (this.done.length === 0) return;
    // A DONE must not overtake the STARTED of its tasks.
    this.flushStarted();
    this.send({ t: "DONE", results: this.done }, this.blobs);
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
    setImmediate(() => this.flush());
  }
}
