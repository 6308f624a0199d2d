import { FairShare } from "../protocol/fair-share.js";
import { Router } from "zeromq";
import type { Logger } from "../log.js";
import { list, optMap, str, strList } from "../protocol/args.js";
import { decode, encode, isPlainObject } from "../protocol/codec.js";
import { describeValue, escapeControls } from "../protocol/describe.js";
import { ZgridError, invalidArgument } from "../protocol/errors.js";
import { parseNewResult, parseSubmission } from "../scheduler/submission-args.js";
import { parseTaskOptions } from "../scheduler/task-options.js";
import { SendQueue } from "../protocol/send-queue.js";
import type {
  TasksColumnsMsg,
  WireCompletion,
  WireTask,
  WireTaskOptions,
  WireTaskOutcome,
} from "../protocol/worker-messages.js";
import { makeCurveServer, receiptLimit } from "./daemon.js";
import { ZAP_WORKERS } from "./zap-thread.js";
import {
  BlobPacker,
  MAX_APP_NAME_CHARS,
  MAX_WORKER_APPS,
  WORKER_PROTOCOL_VERSION,
  unpackOutputs,
} from "../protocol/worker-messages.js";
import type { AppSet } from "../scheduler/task-queue.js";
import type { Task, TaskOptions } from "../scheduler/model.js";
import { INLINE_PAYLOAD_BYTES } from "../scheduler/dispatcher.js";
import type { Completion, Scheduler, WorkerLink } from "../scheduler/scheduler.js";
import type { TokenCheck } from "./auth.js";

const EMPTY = Buffer.alloc(0);
const OUTCOMES: ReadonlySet<string> = new Set<WireTaskOutcome>([
  "COMPLETED",
  "FAILED",
  "ERROR",
  "TIMEOUT",
  "CANCELLED",
]);

/**
 * One entry of a DONE, checked: null when it names no task or no known outcome. `output` is a blob index
 * (-1, null or absent: none); one outside the message's blobs fails the attempt, never taking the worker's
 * identity or the header as a task's output.
 */
function completion(
  taskId: unknown,
  status: unknown,
  error: unknown,
  output: unknown,
  frames: Buffer[],
): Completion | null {
  if (typeof taskId !== "string" || typeof status !== "string" || !OUTCOMES.has(status)) return null;
  if (output === -1 || output === null || output === undefined)
    return {
      taskId,
      status: status as WireTaskOutcome,
      error: typeof error === "string" ? error : undefined,
    };
  if (typeof output !== "number" || !Number.isInteger(output) || output < 0 || 3 + output >= frames.length) {
    return {
      taskId,
      status: "FAILED",
      error: `the worker reported output frame ${describeValue(output)}, which its DONE does not carry`,
    };
  }
  return {
    taskId,
    status: status as WireTaskOutcome,
    error: typeof error === "string" ? error : undefined,
    output: frames[3 + output],
  };
}

/** The options a worker needs to run a task. */
function wireOptions(o: TaskOptions): WireTaskOptions {
  return {
    applicationName: o.applicationName,
    applicationVersion: o.applicationVersion,
    applicationNamespace: o.applicationNamespace,
    applicationService: o.applicationService,
    engineType: o.engineType,
    maxDuration: o.maxDuration,
    options: o.options,
  };
}

export interface WorkerEndpointOptions {
  host: string;
  port: number;
  auth: TokenCheck;
  heartbeatMs: number;
  maxFrameBytes: number;
  scheduler: Scheduler;
  log: Logger;
  /** With `--curve`: the server's secret key; workers are judged in the "workers" ZAP domain. */
  curveSecretKey?: string;
}

/** The most messages the worker endpoint queues for one peer that does not read them. */
export const WORKER_PEER_HWM = 100_000;

/**
 * The DEFAULT daemon's worker side: a ROUTER socket that speaks the worker protocol (design §6) and
 * carries task batches between the scheduler and the worker hosts. Heartbeats both ways; a worker not
 * heard from for three intervals is dead and its tasks are retried.
 */
export class WorkerEndpoint implements WorkerLink {
  // sendTimeout 0: a send never waits. With `mandatory`, a ROUTER reports POLLOUT only while some peer
  // is connected, so a waiting send to a peer that has just gone would block forever, and with it every
  // later reply of this socket; without waiting it fails at once with EHOSTUNREACH.
  private readonly socket = new Router({
    mandatory: true,
    // Bounded per peer (a stranger flooding READYs it never reads the REJECTs of). Far above what a
    // worker ever has waiting: its TASKS are bounded by its credit, and it reads as they come.
    sendHighWaterMark: WORKER_PEER_HWM,
    receiveHighWaterMark: WORKER_PEER_HWM,
    sendTimeout: 0,
    linger: 0,
  });
  private dropped = 0;
  private readonly out: SendQueue;
  private readonly log: Logger;
  private readonly identityOf = new Map<string, Buffer>();
  private readonly workerOf = new Map<string, string>();
  private readonly lastSeen = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  /** When the heartbeat timer last ran, and before when no worker is judged (after a stall of ours). */
  private lastBeat = 0;
  private judgeAfter = 0;
  private loop: Promise<void> | null = null;
  private boundPort = 0;

  constructor(private readonly opts: WorkerEndpointOptions) {
    this.log = opts.log.child({ daemon: "WORKERS" });
    // A frame far over the limit is never buffered: ZeroMQ drops the connection that sends it (a
    // stranger's 192 MiB frames cost nothing). Workers are told the limit in WELCOME.
    this.socket.maxMessageSize = receiptLimit(opts.maxFrameBytes);
    if (opts.curveSecretKey !== undefined) makeCurveServer(this.socket, opts.curveSecretKey, ZAP_WORKERS);
    this.out = new SendQueue(this.socket, this.log, () => {
      // Rare and telling: logged at the first drop and at every 10,000th.
      if (this.dropped++ % 10_000 === 0)
        this.log.warn(
          { dropped: this.dropped },
          "messages to a worker connection that does not read them are dropped",
        );
    });
    opts.scheduler.setLink(this);
  }

  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<void> {
    const port = this.opts.port === 0 ? "*" : String(this.opts.port);
    try {
      await this.socket.bind(`tcp://${this.opts.host}:${port}`);
    } catch (err) {
      throw new Error(
        `worker endpoint cannot listen on ${this.opts.host}:${this.opts.port}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    const endpoint = this.socket.lastEndpoint ?? "";
    this.boundPort = Number(endpoint.slice(endpoint.lastIndexOf(":") + 1));
    this.lastBeat = Date.now();
    this.timer = setInterval(() => this.beat(), this.opts.heartbeatMs);
    this.timer.unref();
    this.loop = this.serve();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.out.idle();
    this.socket.close();
    await this.loop;
  }

  private async serve(): Promise<void> {
    try {
      const fair = new FairShare();
      for await (const frames of this.socket) {
        try {
          this.handle(frames);
        } catch (err) {
          this.log.error({ err }, "worker message handling failed");
        }
        const pause = fair.pause();
        if (pause) await pause;
      }
    } catch (err) {
      if (!this.socket.closed) this.log.error({ err }, "worker receive loop ended");
    }
  }

  private send(identity: Buffer, header: object, blobs?: Buffer[]): void {
    const h = encode(header);
    this.out.send(blobs && blobs.length > 0 ? [identity, EMPTY, h, ...blobs] : [identity, EMPTY, h]);
  }

  private beat(): void {
    const now = Date.now();
    const interval = this.opts.heartbeatMs;
    // A beat that comes late means this server's event loop was held (a huge submission, a long
    // commit): what workers sent meanwhile is still unread. Judge no one until the receive loop has had
    // an interval to catch up, so a stall of ours is never taken for a silence of theirs.
    if (now - this.lastBeat > 1.5 * interval) this.judgeAfter = now + interval;
    this.lastBeat = now;
    const judge = now >= this.judgeAfter;
    // The worker enforces maxDuration; the server too, a few intervals later, in case it does not.
    if (judge) this.opts.scheduler.fleet.expireOverdue(now, 5 * interval);
    const deadline = now - 3 * interval;
    const hb = encode({ t: "HEARTBEAT" });
    for (const [workerId, identity] of this.identityOf) {
      if (judge && (this.lastSeen.get(workerId) ?? 0) < deadline) {
        this.forget(workerId, `no heartbeat for ${3 * interval} ms`);
        continue;
      }
      this.out.send([identity, EMPTY, hb]);
    }
  }

  private forget(workerId: string, reason: string): void {
    const identity = this.identityOf.get(workerId);
    this.identityOf.delete(workerId);
    this.lastSeen.delete(workerId);
    if (identity) this.workerOf.delete(identity.toString("hex"));
    this.opts.scheduler.fleet.removeWorker(workerId, reason);
  }

  private handle(frames: Buffer[]): void {
    const identity = frames[0];
    if (frames.length < 3 || frames[1].length !== 0) return;
    if (frames[2].length > this.opts.maxFrameBytes) return;
    let header: unknown;
    try {
      header = decode(frames[2]);
    } catch {
      this.send(identity, { t: "REJECT", code: "BAD_REQUEST", msg: "the header frame is not valid msgpack" });
      return;
    }
    if (!isPlainObject(header) || typeof header.t !== "string") {
      this.send(identity, {
        t: "REJECT",
        code: "BAD_REQUEST",
        msg: "the header must be a map with a message type t",
      });
      return;
    }
    const key = identity.toString("hex");
    if (header.t === "READY") return this.ready(identity, key, header);
    const workerId = this.workerOf.get(key);
    if (workerId === undefined) {
      this.send(identity, { t: "RECONNECT", msg: "this server does not know you: send READY" });
      return;
    }
    const now = Date.now();
    this.lastSeen.set(workerId, now);
    const scheduler = this.opts.scheduler;
    const state = scheduler.workers.get(workerId);
    if (state) state.lastHeartbeat = now;
    try {
      switch (header.t) {
        case "HEARTBEAT":
          break;
        case "STARTED":
          if (Array.isArray(header.taskIds))
            scheduler.fleet.tasksStarted(workerId, header.taskIds as string[]);
          break;
        case "DONE":
          if (Array.isArray(header.taskIds) && header.sizes !== undefined)
            scheduler.fleet.completeTasks(workerId, this.packedCompletions(workerId, header, frames));
          else if (Array.isArray(header.taskIds))
            scheduler.fleet.completeTasks(workerId, this.columnCompletions(header, frames));
          else if (Array.isArray(header.results))
            scheduler.fleet.completeTasks(workerId, this.completions(header.results, frames));
          break;
        case "FETCH":
          this.fetch(identity, header);
          break;
        case "AGENT":
          this.agent(identity, workerId, header, frames);
          break;
        case "BYE":
          this.forget(workerId, "it said goodbye");
          break;
        case "APPS": {
          const apps = parseApps(header.apps);
          if (apps === undefined || apps === null)
            this.log.warn({ worker: workerId }, "an APPS message without a valid apps list: ignored");
          else scheduler.fleet.setWorkerApps(workerId, apps);
          break;
        }
        default:
          this.log.warn({ worker: workerId, t: header.t }, "unknown worker message ignored");
      }
    } catch (err) {
      this.log.error({ err, worker: workerId, t: header.t }, "worker message failed");
    }
  }

  private ready(identity: Buffer, key: string, h: Record<string, unknown>): void {
    if (!this.opts.auth.accepts(h.token)) {
      this.send(identity, { t: "REJECT", code: "UNAUTHENTICATED", msg: "wrong or missing worker token" });
      return;
    }
    const partitions =
      Array.isArray(h.partitions) && h.partitions.every((p) => typeof p === "string")
        ? (h.partitions as string[])
        : null;
    const slots = typeof h.slots === "number" && Number.isInteger(h.slots) && h.slots > 0 ? h.slots : null;
    const prefetch =
      typeof h.prefetch === "number" && Number.isInteger(h.prefetch) && h.prefetch >= 0 ? h.prefetch : 0;
    if (
      typeof h.workerId !== "string" ||
      !h.workerId ||
      !partitions ||
      partitions.length === 0 ||
      slots === null
    ) {
      this.send(identity, {
        t: "REJECT",
        code: "INVALID_ARGUMENT",
        msg: "READY needs workerId (string), partitions (non-empty list of strings) and slots (positive integer)",
      });
      return;
    }
    const apps = parseApps(h.apps);
    if (apps === undefined) {
      this.send(identity, {
        t: "REJECT",
        code: "INVALID_ARGUMENT",
        msg: `READY's apps must be a list of at most ${MAX_WORKER_APPS} application names of at most ${MAX_APP_NAME_CHARS} characters`,
      });
      return;
    }
    if (h.v !== WORKER_PROTOCOL_VERSION) {
      this.send(identity, {
        t: "REJECT",
        code: "BAD_REQUEST",
        msg: `worker protocol v${describeValue(h.v)} is not v${WORKER_PROTOCOL_VERSION}`,
      });
      return;
    }
    const workerId = h.workerId;
    // Packed payloads come only with columns (docs/protocol.md).
    const packedPayloads = h.columns === true && h.packedPayloads === true;
    const previous = this.identityOf.get(workerId);
    if (previous && !previous.equals(identity)) {
      // A worker id belongs to the connection that claimed it while that one is alive: another
      // connection naming it (ids are listed by workers.list) would take over its tasks and forge their
      // outputs. No answer: a worker that really reconnected says READY again each heartbeat and is
      // taken once its old connection has been silent for three intervals.
      const seen = this.lastSeen.get(workerId) ?? 0;
      if (Date.now() - seen < 3 * this.opts.heartbeatMs) {
        this.log.warn({ worker: workerId }, "READY for a live worker from another connection: ignored");
        return;
      }
    }
    // The id on a new connection: the worker's process restarted with the same --worker-id.
    const restarted = previous !== undefined && !previous.equals(identity);
    if (previous) this.workerOf.delete(previous.toString("hex"));
    const oldWorker = this.workerOf.get(key);
    if (oldWorker !== undefined && oldWorker !== workerId)
      this.forget(oldWorker, "its connection now belongs to another worker");
    this.identityOf.set(workerId, identity);
    this.workerOf.set(key, workerId);
    this.lastSeen.set(workerId, Date.now());
    this.opts.scheduler.fleet.addWorker({
      id: workerId,
      partitions,
      slots,
      capacity: slots + prefetch,
      host: typeof h.host === "string" ? h.host : "",
      pid: typeof h.pid === "number" ? h.pid : 0,
      columns: h.columns === true,
      packedPayloads,
      apps,
    });
    this.send(
      identity,
      h.columns === true
        ? {
            t: "WELCOME",
            workerId,
            heartbeatMs: this.opts.heartbeatMs,
            columns: true,
            maxFrameBytes: this.opts.maxFrameBytes,
            packedOutputs: true,
            ...(packedPayloads ? { packedPayloads: true } : {}),
          }
        : {
            t: "WELCOME",
            workerId,
            heartbeatMs: this.opts.heartbeatMs,
            maxFrameBytes: this.opts.maxFrameBytes,
          },
    );
    const held = Array.isArray(h.held) ? h.held.filter((id): id is string => typeof id === "string") : [];
    if (restarted) this.opts.scheduler.fleet.releaseUnheld(workerId, held);
    if (held.length > 0) {
      const notYours = this.opts.scheduler.fleet.adoptTasks(workerId, held);
      if (notYours.length > 0)
        this.cancelTasks(workerId, notYours, "not this worker's any more: finished or reassigned");
    }
  }

  private completions(raw: unknown[], frames: Buffer[]): Completion[] {
    const out: Completion[] = [];
    for (const item of raw) {
      if (!isPlainObject(item)) continue;
      const c = item as unknown as WireCompletion;
      const done = completion(c.taskId, c.status, c.error, c.output ?? -1, frames);
      if (done) out.push(done);
    }
    return out;
  }

  /** A DONE in columns (DoneColumnsMsg); entries that are not well formed are skipped, as above. */
  private columnCompletions(h: Record<string, unknown>, frames: Buffer[]): Completion[] {
    const taskIds = h.taskIds as unknown[];
    const n = taskIds.length;
    const { statuses, outputs, errors } = h;
    if (
      !Array.isArray(statuses) ||
      statuses.length !== n ||
      !Array.isArray(outputs) ||
      outputs.length !== n ||
      (errors !== undefined && (!Array.isArray(errors) || errors.length !== n))
    ) {
      this.log.warn({ tasks: n }, "a DONE in columns whose columns differ in length: ignored");
      return [];
    }
    const out: Completion[] = [];
    for (let i = 0; i < n; i++) {
      const done = completion(taskIds[i], statuses[i], errors?.[i], outputs[i], frames);
      if (done) out.push(done);
    }
    return out;
  }

  /**
   * A DONE in columns with packed outputs (DonePackedMsg): one that is not well formed (columns of
   * different lengths, `outputs` beside `sizes`, sizes that do not add up to its blobs, a `started` that
   * is not a list of ids) is ignored as a whole; an entry naming no task or no known outcome is skipped.
   * Its `started` tasks are taken as begun first, as a STARTED just before it would be.
   */
  private packedCompletions(workerId: string, h: Record<string, unknown>, frames: Buffer[]): Completion[] {
    const taskIds = h.taskIds as unknown[];
    const n = taskIds.length;
    const { statuses, sizes, errors } = h;
    const why =
      !Array.isArray(statuses) || statuses.length !== n || !Array.isArray(sizes) || sizes.length !== n
        ? "its columns differ in length"
        : errors !== undefined && (!Array.isArray(errors) || errors.length !== n)
          ? "its errors column differs in length"
          : h.outputs !== undefined
            ? "it has both outputs and sizes"
            : h.started !== undefined &&
                (!Array.isArray(h.started) || !h.started.every((id) => typeof id === "string"))
              ? "its started is not a list of task ids"
              : null;
    const outputs = why === null ? unpackOutputs(sizes as unknown[], frames.slice(3)) : why;
    if (typeof outputs === "string") {
      this.log.warn({ tasks: n }, `a DONE with packed outputs is ignored: ${outputs}`);
      return [];
    }
    if (h.started !== undefined) this.opts.scheduler.fleet.tasksStarted(workerId, h.started as string[]);
    const out: Completion[] = [];
    for (let i = 0; i < n; i++) {
      const taskId = taskIds[i];
      const status = (statuses as unknown[])[i];
      if (typeof taskId !== "string" || typeof status !== "string" || !OUTCOMES.has(status)) continue;
      const error = (errors as unknown[] | undefined)?.[i];
      const c: Completion = { taskId, status: status as WireTaskOutcome };
      if (typeof error === "string") c.error = error;
      if (outputs[i] !== undefined) c.output = outputs[i];
      out.push(c);
    }
    return out;
  }

  /** An agent call of a running task: answered with AGENT_REPLY, errors as protocol codes. */
  private agent(identity: Buffer, workerId: string, h: Record<string, unknown>, frames: Buffer[]): void {
    const rid = h.rid;
    const blobs = frames.slice(3);
    const scheduler = this.opts.scheduler;
    const args = isPlainObject(h.args) ? h.args : {};
    try {
      if (typeof h.taskId !== "string") throw invalidArgument("AGENT needs the taskId of the running task");
      const taskId = h.taskId;
      let msg: unknown;
      let out: Buffer[] | undefined;
      switch (h.op) {
        case "createResults":
          msg = scheduler.agent
            .createResults(
              workerId,
              taskId,
              list(args, "results").map((raw, i) => parseNewResult(raw, i, blobs)),
            )
            .map((r) => ({ resultId: r.id, name: r.name, status: r.status }));
          break;
        case "uploadData": {
          if (blobs.length === 0) throw invalidArgument("uploadData needs the data as a blob");
          const resultId = str(args, "resultId");
          const data = blobs.length === 1 ? blobs[0] : Buffer.concat(blobs);
          scheduler.agent.upload(workerId, taskId, resultId, data);
          msg = { resultId, size: data.length };
          break;
        }
        case "submitTasks": {
          const options = parseTaskOptions(optMap(args, "taskOptions"), "taskOptions");
          const items = list(args, "tasks").map((raw, i) => parseSubmission(raw, i, blobs));
          msg = scheduler.agent
            .submit(workerId, taskId, options, items)
            .map((t) => ({ taskId: t.id, payloadId: t.payloadId, expectedOutputIds: t.expectedOutputIds }));
          break;
        }
        case "getData": {
          const resultIds = strList(args, "resultIds");
          out = scheduler.agent.getData(workerId, taskId, resultIds);
          msg = { resultIds };
          break;
        }
        default:
          throw invalidArgument(`unknown agent operation ${describeValue(h.op)}`);
      }
      this.send(identity, { t: "AGENT_REPLY", rid, ok: true, msg }, out);
    } catch (err) {
      const code = err instanceof ZgridError ? err.code : "INTERNAL";
      if (!(err instanceof ZgridError)) this.log.error({ err, worker: workerId }, "agent call failed");
      const error = escapeControls((err as Error).message);
      this.send(identity, { t: "AGENT_REPLY", rid, ok: false, code, error });
    }
  }

  private fetch(identity: Buffer, h: Record<string, unknown>): void {
    const ids = Array.isArray(h.resultIds) ? h.resultIds : [];
    const results: { resultId: string; blob?: number; error?: string }[] = [];
    const blobs: Buffer[] = [];
    for (const id of ids) {
      try {
        const data = this.opts.scheduler.data.resultData(String(id));
        results.push({ resultId: String(id), blob: blobs.length });
        blobs.push(data);
      } catch (err) {
        results.push({ resultId: String(id), error: escapeControls((err as Error).message) });
      }
    }
    this.send(identity, { t: "DATA", rid: h.rid, results }, blobs);
  }

  // ---- WorkerLink ----------------------------------------------------------------------------------

  sendTasks(workerId: string, tasks: Task[]): void {
    const identity = this.identityOf.get(workerId);
    if (!identity) return;
    const w = this.opts.scheduler.workers.get(workerId);
    if (w?.columns) this.sendTaskColumns(identity, tasks, w.packedPayloads);
    else this.sendTaskMaps(identity, tasks);
  }

  /**
   * The blob index of a task's payload when it travels inline (added to `blobs` once per payload),
   * else undefined: the worker FETCHes it.
   */
  private payloadBlob(t: Task, blobs: Buffer[], blobOf: Map<string, number>): number | undefined {
    let payload = blobOf.get(t.payloadId);
    if (payload !== undefined) return payload;
    const r = this.opts.scheduler.results.get(t.payloadId);
    // After a restart, data lives in the store until someone asks for it.
    const data =
      r && r.size <= INLINE_PAYLOAD_BYTES
        ? (r.data ?? (r.stored ? this.opts.scheduler.data.resultData(r.id) : null))
        : null;
    if (!data) return undefined;
    payload = blobs.length;
    blobs.push(data);
    blobOf.set(t.payloadId, payload);
    return payload;
  }

  private sendTaskMaps(identity: Buffer, tasks: Task[]): void {
    const blobs: Buffer[] = [];
    const blobOf = new Map<string, number>();
    const wire: WireTask[] = new Array(tasks.length);
    for (let i = 0; i < tasks.length; i++) {
      const t = tasks[i];
      wire[i] = {
        taskId: t.id,
        sessionId: t.sessionId,
        payloadId: t.payloadId,
        payload: this.payloadBlob(t, blobs, blobOf),
        dataDependencies: t.dataDependencies,
        expectedOutputIds: t.expectedOutputIds,
        options: wireOptions(t.options),
        attempt: t.attempts.length,
      };
    }
    this.send(identity, { t: "TASKS", tasks: wire }, blobs);
  }

  /**
   * TASKS as columns (TasksColumnsMsg): no map per task, sessions and option sets sent once each;
   * `packed`: the inline payloads back to back in few blobs (`payloadSizes`), not a blob each.
   */
  private sendTaskColumns(identity: Buffer, tasks: Task[], packed: boolean): void {
    const n = tasks.length;
    const blobs: Buffer[] = [];
    const blobOf = new Map<string, number>();
    const taskIds: string[] = new Array(n);
    const payloadIds: string[] = new Array(n);
    const payloads: number[] = new Array(n);
    const attempts: number[] = new Array(n);
    const session: number[] = new Array(n);
    const option: number[] = new Array(n);
    const outputCounts: number[] = new Array(n);
    const sessions: string[] = [];
    const optionSets: WireTaskOptions[] = [];
    const outputs: string[] = [];
    let dependencies: string[] | undefined;
    let dependencyCounts: number[] | undefined;
    let lastSession = "";
    let lastOptions: TaskOptions | null = null;
    const optionIndex = new Map<TaskOptions, number>();
    for (let i = 0; i < n; i++) {
      const t = tasks[i];
      taskIds[i] = t.id;
      payloadIds[i] = t.payloadId;
      payloads[i] = this.payloadBlob(t, blobs, blobOf) ?? -1;
      attempts[i] = t.attempts.length;
      if (t.sessionId !== lastSession) {
        lastSession = t.sessionId;
        let k = sessions.indexOf(lastSession);
        if (k < 0) k = sessions.push(lastSession) - 1;
        session[i] = k;
      } else session[i] = session[i - 1];
      // Tasks of one submission share one options object: one entry for all of them.
      if (t.options !== lastOptions) {
        lastOptions = t.options;
        let k = optionIndex.get(lastOptions);
        if (k === undefined) {
          k = optionSets.push(wireOptions(lastOptions)) - 1;
          optionIndex.set(lastOptions, k);
        }
        option[i] = k;
      } else option[i] = option[i - 1];
      const outs = t.expectedOutputIds;
      outputCounts[i] = outs.length;
      for (let k = 0; k < outs.length; k++) outputs.push(outs[k]);
      const deps = t.dataDependencies;
      if (deps.length > 0 && !dependencies) {
        dependencies = [];
        dependencyCounts = new Array<number>(n).fill(0);
      }
      if (dependencyCounts) {
        dependencyCounts[i] = deps.length;
        for (let k = 0; k < deps.length; k++) dependencies!.push(deps[k]);
      }
    }
    const msg: TasksColumnsMsg = {
      t: "TASKS",
      taskIds,
      payloadIds,
      payloads,
      attempts,
      sessions,
      session,
      optionSets,
      option,
      outputs,
      outputCounts,
    };
    if (dependencies) {
      msg.dependencies = dependencies;
      msg.dependencyCounts = dependencyCounts;
    }
    if (!packed) {
      this.send(identity, msg, blobs);
      return;
    }
    const payloadSizes: number[] = new Array(blobs.length);
    const packer = new BlobPacker(this.opts.maxFrameBytes);
    for (let k = 0; k < blobs.length; k++) {
      payloadSizes[k] = blobs[k].length;
      packer.add(blobs[k]);
    }
    msg.payloadSizes = payloadSizes;
    this.send(identity, msg, packer.finish());
  }

  cancelTasks(workerId: string, taskIds: string[], reason: string): void {
    const identity = this.identityOf.get(workerId);
    if (identity) this.send(identity, { t: "CANCEL", taskIds, reason });
  }
}

/**
 * READY's or APPS's `apps`: null when absent (the worker takes any task), undefined when malformed or
 * over the limits.
 */
function parseApps(value: unknown): AppSet | undefined {
  if (value === undefined || value === null) return null;
  if (!Array.isArray(value) || value.length > MAX_WORKER_APPS) return undefined;
  for (const a of value) if (typeof a !== "string" || a.length > MAX_APP_NAME_CHARS) return undefined;
  return new Set(value as string[]);
}
