import { FairShare } from "../protocol/fair-share.js";
import { SILENT_PEER_HEARTBEATS } from "../protocol/heartbeats.js";
import { randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import { hostname } from "node:os";
import type { Dealer } from "zeromq";
import type { Logger } from "../log.js";
import { decode, isPlainObject } from "../protocol/codec.js";
import { ErrorCode, ZgridError } from "../protocol/errors.js";
import { CUT_HANDSHAKES_AFTER_SUCCESS } from "../protocol/handshakes.js";
import { SendQueue } from "../protocol/send-queue.js";
import {
  WORKER_PROTOCOL_VERSION,
  tasksOfColumns,
  unpackOutputs,
  type ServerToWorker,
  type TasksMsg,
  type TasksColumnsMsg,
  type CancelMsg,
  type WireTask,
} from "../protocol/worker-messages.js";
import { AgentRelay } from "./agent-relay.js";
import { AppScanner } from "./app-scan.js";
import { ExecutorPool } from "./executor-pool.js";
import { Outbox } from "./outbox.js";
import { PayloadFetcher, type ReadyTask } from "./payload-fetcher.js";
import { parseWorkerUrl } from "./worker-url.js";
import { isZ85Key } from "../protocol/z85.js";

/** Options of a {@link WorkerHost}. */
export interface WorkerHostOptions {
  /** The server's worker endpoint, `tcp://HOST:PORT?token=TOKEN`. */
  url: string;
  /** The directory holding the application modules (`NAME.js`, `NAME.VER.js`). */
  appPath: string;
  /** Tasks run at once: one executor thread each. */
  slots: number;
  /** Partitions this worker takes tasks from. Default `["default"]`. */
  partitions?: string[];
  /**
   * Tasks the server may send beyond `slots`, so threads never wait for the network. Default
   * max(4096, 32 × slots): short tasks need a deep pipeline for throughput, one that outlasts the server's
   * handling of a large submission (no-op tasks on two cores: about 73k/s with 1024, 80k with 4096). The
   * server gives that many only for short tasks (its credit follows their run time), so long tasks are
   * still not held behind each other.
   */
  prefetch?: number;
  /** Default `HOSTNAME-PID-RANDOM`. */
  workerId?: string;
  /**
   * This worker's CurveZMQ key pair, used when the URL carries the server's key (`&serverKey=`); default
   * a new pair. A server started with `--curve-workers` lets in only the public keys that file lists.
   */
  curveKeyPair?: { publicKey: string; secretKey: string };
  /** Heartbeat interval, ms; the server's own interval (from WELCOME) wins when shorter. Default 1000. */
  heartbeatMs?: number;
  /** Heap limit of each executor thread, MB (default: Node's); a task going past it fails (FAILED). */
  threadMemoryLimitMb?: number;
  /**
   * A session new to an executor thread runs an application module's file as it is now: an edited file
   * is imported again (`zgrid worker --watch`). Default false: each thread keeps what it loaded first.
   */
  watchApps?: boolean;
  /** How long stop() lets a running task finish before its thread is terminated, ms. Default 3000. */
  stopGraceMs?: number;
  /**
   * How long an agent call (createResults, submitTasks, ...) waits for the server's answer before it
   * fails with TIMEOUT, ms: what keeps a task from hanging when the server is lost. Default 60000.
   */
  agentTimeoutMs?: number;
  log?: Logger;
}

type HostState = "new" | "connecting" | "ready" | "stopping" | "closed";

const EMPTY = Buffer.alloc(0);

/**
 * A worker host (`zgrid worker`): connects to the server's worker endpoint, takes task batches, runs them
 * on executor threads and reports them. The main thread only talks to the server (READY, heartbeats,
 * STARTED/DONE batches); application code runs on the threads, so a busy task never silences heartbeats.
 *
 * If nothing is heard from the server for three heartbeat intervals, it is considered lost: READY is sent
 * every interval until a WELCOME comes back. Tasks keep running meanwhile and are still reported.
 */
export class WorkerHost {
  /** Resolves once the host has stopped (after {@link stop}, or after the server rejected it). */
  readonly closed: Promise<void>;
  readonly workerId: string;

  private readonly opts: Required<
    Omit<WorkerHostOptions, "log" | "workerId" | "url" | "threadMemoryLimitMb" | "watchApps" | "curveKeyPair">
  > &
    Pick<WorkerHostOptions, "threadMemoryLimitMb" | "watchApps">;
  private readonly endpoint: string;
  /** Every server's endpoint (a server and its standbys): the worker talks to the one serving. */
  private readonly endpoints: string[];
  private readonly token: string | undefined;
  private readonly serverKey: string | undefined;
  private readonly curveKeyPair: { publicKey: string; secretKey: string } | undefined;
  private log: Logger | undefined;
  private pool: ExecutorPool | undefined;
  private socket: Dealer | undefined;
  private outbox: Outbox | undefined;
  private sendQueue: SendQueue | undefined;
  private fetcher: PayloadFetcher | undefined;
  private agents: AgentRelay | undefined;
  private state: HostState = "new";
  private failed: ZgridError | null = null;
  private welcomed = false;
  private lastHeard = 0;
  private readonly appScanner: AppScanner;
  private serverHeartbeatMs: number;
  private timer: NodeJS.Timeout | undefined;
  private welcome: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private stopping: Promise<void> | undefined;
  private resolveClosed!: () => void;

  constructor(options: WorkerHostOptions) {
    const { endpoint, endpoints, token, serverKey } = parseWorkerUrl(options.url);
    this.endpoint = endpoint;
    this.endpoints = endpoints;
    this.token = token;
    this.serverKey = serverKey;
    const pair = options.curveKeyPair;
    if (pair !== undefined && (!isZ85Key(pair.publicKey) || !isZ85Key(pair.secretKey))) {
      throw new Error("curveKeyPair is not a CurveZMQ key pair: 40 Z85 characters each (zgrid keygen)");
    }
    this.curveKeyPair = pair;
    if (!Number.isInteger(options.slots) || options.slots < 1) {
      throw new Error(`slots must be a whole number of at least 1, got ${options.slots}`);
    }
    if (!isDirectory(options.appPath)) {
      throw new Error(`the application directory ${options.appPath} does not exist or is not a directory`);
    }
    this.appScanner = new AppScanner(options.appPath);
    this.opts = {
      appPath: options.appPath,
      slots: options.slots,
      partitions: options.partitions?.length ? options.partitions : ["default"],
      prefetch: options.prefetch ?? Math.max(4096, options.slots * 32),
      heartbeatMs: options.heartbeatMs ?? 1000,
      stopGraceMs: options.stopGraceMs ?? 3000,
      agentTimeoutMs: options.agentTimeoutMs ?? 60_000,
      threadMemoryLimitMb: options.threadMemoryLimitMb,
      watchApps: options.watchApps,
    };
    this.serverHeartbeatMs = this.opts.heartbeatMs;
    this.workerId = options.workerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
    this.log = options.log?.child({ workerId: this.workerId });
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  /** Why this host stopped on its own (a refused key, a server that changed its key), else null. */
  get failure(): ZgridError | null {
    return this.failed;
  }

  /** Connects and resolves once the server welcomed this worker; rejects if it refused (e.g. wrong token). */
  start(): Promise<void> {
    if (this.state !== "new") return Promise.reject(new Error("this worker host was already started"));
    this.state = "connecting";
    const welcomed = new Promise<void>((resolve, reject) => (this.welcome = { resolve, reject }));
    // Handled by the caller through the promise returned below; this keeps a rejection that comes while
    // connect() is still loading from being reported as unhandled.
    welcomed.catch(() => {});
    return this.connect().then(() => welcomed);
  }

  private async connect(): Promise<void> {
    // zeromq and pino load here, not at import: application modules import "zgrid/worker" too, and each
    // executor thread would otherwise load a ZeroMQ context and a logger it never uses.
    const [{ Dealer, curveKeyPair }, log] = await Promise.all([
      import("zeromq"),
      this.log ?? defaultLogger(this.workerId),
    ]);
    this.log = log;
    if (this.state !== "connecting") return; // stopped meanwhile
    this.pool = new ExecutorPool({
      appPath: this.opts.appPath,
      slots: this.opts.slots,
      threadMemoryLimitMb: this.opts.threadMemoryLimitMb,
      watchApps: this.opts.watchApps,
      log,
      onStarted: (ids) => this.outbox?.taskStarted(ids),
      onDone: (results) => this.outbox?.taskDone(results),
      onAgent: (request) => this.agents?.request(request),
      onThreadGone: (thread) => this.agents?.drop(thread),
    });
    this.pool.start();
    // linger: give BYE and the last DONE a moment to leave at close. immediate: while there is no
    // connection, sends wait in the SendQueue instead of piling up in ZeroMQ, so tick() can see that and
    // keep a single READY waiting (a server receiving a burst of READY would re-admit this worker each time).
    const socket = new Dealer({ linger: 1000, immediate: true });
    if (this.serverKey !== undefined) {
      const keys = this.curveKeyPair ?? curveKeyPair();
      socket.curveServerKey = this.serverKey;
      socket.curvePublicKey = keys.publicKey;
      socket.curveSecretKey = keys.secretKey;
    }
    // Several servers (an owner and its standbys): a connection to one that went silent (its host cut
    // off) is closed after missed ZMTP heartbeats, so that no message goes on waiting for it.
    if (this.endpoints.length > 1) Object.assign(socket, SILENT_PEER_HEARTBEATS);
    void this.watchHandshakes(socket);
    this.socket = socket;
    this.sendQueue = new SendQueue(socket, log);
    this.outbox = new Outbox(this.sendQueue, () => (this.pool?.held ?? 0) > this.opts.slots);
    this.fetcher = new PayloadFetcher(this.outbox);
    const outbox = this.outbox;
    this.agents = new AgentRelay((msg, blobs) => outbox.agent(msg, blobs), this.opts.agentTimeoutMs);
    for (const endpoint of this.endpoints) socket.connect(endpoint);
    void this.receive(socket);
    this.lastHeard = Date.now();
    this.sendReady();
    this.timer = setInterval(() => this.tick(), this.heartbeatInterval());
    log.info(
      {
        endpoint: this.endpoint,
        slots: this.opts.slots,
        partitions: this.opts.partitions,
        appPath: this.opts.appPath,
      },
      "worker connecting",
    );
  }

  /**
   * Stops gracefully: reports what finished, says BYE (the server requeues what this worker still holds),
   * lets each thread finish its current task (up to stopGraceMs), leave its sessions and destroy its
   * services, then closes the socket.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.state = "stopping";
    clearInterval(this.timer);
    this.welcome?.reject(new Error("the worker host was stopped before the server welcomed it"));
    this.welcome = undefined;
    if (this.outbox) {
      this.outbox.flush();
      this.outbox.send({ t: "BYE" });
    }
    this.fetcher?.clear();
    // Replies would no longer be read: let the tasks waiting on agent calls end now.
    this.agents?.failAll(ErrorCode.UNAVAILABLE, "the worker is stopping");
    await this.pool?.stop(this.opts.stopGraceMs);
    if (this.socket) {
      // Let BYE reach ZeroMQ, but never hang on a server that is gone.
      await Promise.race([this.sendQueue?.idle(), sleep(1000)]);
      this.socket.close();
    }
    this.state = "closed";
    this.log?.info("worker stopped");
    this.resolveClosed();
  }

  private heartbeatInterval(): number {
    return Math.min(this.opts.heartbeatMs, this.serverHeartbeatMs);
  }

  private sendReady(): void {
    this.outbox?.send({
      t: "READY",
      v: WORKER_PROTOCOL_VERSION,
      token: this.token,
      workerId: this.workerId,
      partitions: this.opts.partitions,
      slots: this.opts.slots,
      prefetch: this.opts.prefetch,
      host: hostname(),
      pid: process.pid,
      columns: true,
      packedPayloads: true,
      ...this.appsField(),
      // What it runs, and what it finished lately: the server may not have read those reports.
      held: [...(this.pool?.heldIds() ?? []), ...(this.outbox?.recentlyDone() ?? [])],
    });
  }

  /** READY's `apps`: what the app path holds now; nothing when it holds too many to list (any task then). */
  private appsField(): { apps?: string[] } {
    this.appScanner.scan();
    const apps = this.appScanner.current();
    return apps === null ? {} : { apps };
  }

  /** Every heartbeat interval: heartbeat while welcomed; notice a silent server; READY until welcomed. */
  private tick(): void {
    const now = Date.now();
    this.agents?.expire(now);
    this.outbox?.trimRecent(now, 10 * this.serverHeartbeatMs);
    const silentMs = now - this.lastHeard;
    if (this.welcomed && silentMs > 3 * this.serverHeartbeatMs) {
      this.welcomed = false;
      this.state = "connecting";
      this.log?.warn(
        { silentMs, held: this.pool!.held },
        "server lost: nothing heard from it; sending READY until it answers",
      );
    }
    if (this.welcomed) {
      this.outbox?.send({ t: "HEARTBEAT" });
      // Applications deployed (or removed) while the worker runs: the server routes by them.
      const apps = this.appScanner.scan();
      if (apps) this.outbox?.send({ t: "APPS", apps });
    } else if (this.sendQueue?.pending === 0) {
      // (While ZeroMQ accepts nothing, READYs would only pile up in memory.)
      this.sendReady();
    }
  }

  private async receive(socket: Dealer): Promise<void> {
    try {
      const fair = new FairShare();
      for await (const frames of socket) {
        this.lastHeard = Date.now();
        this.onFrames(frames);
        const pause = fair.pause();
        if (pause) await pause;
      }
    } catch (err) {
      if (this.state !== "stopping" && this.state !== "closed") {
        this.log?.error({ err: (err as Error).message }, "worker socket failed");
      }
    }
    // The socket is gone: without it this host can do nothing more.
    if (this.state !== "stopping" && this.state !== "closed") void this.stop();
  }

  private onFrames(frames: Buffer[]): void {
    // A DEALER receives what the ROUTER sent after the peer's identity: "" HEADER BLOB*.
    const h = frames.length > 0 && frames[0].length === 0 ? 1 : 0;
    let msg: unknown;
    try {
      msg = decode(frames[h] ?? EMPTY);
    } catch {
      this.log?.warn("ignoring a message from the server that is not msgpack");
      return;
    }
    if (isPlainObject(msg) && typeof msg.msgType === "string" && msg.t === undefined) {
      // A reply of the client protocol: the URL names a client port (DEFAULT, METRICS or STATUS).
      this.fail(
        new ZgridError(
          ErrorCode.INVALID_ARGUMENT,
          `${this.endpoint} is a client port of the zgrid server, not its worker endpoint: connect to the "workers" URL the server printed`,
        ),
      );
      return;
    }
    if (!isPlainObject(msg) || typeof msg.t !== "string") {
      this.log?.warn("ignoring a message from the server without a type");
      return;
    }
    if (this.state === "stopping" || this.state === "closed") return;
    this.handle(msg as unknown as ServerToWorker, frames, h + 1);
  }

  private handle(msg: ServerToWorker, frames: Buffer[], base: number): void {
    switch (msg.t) {
      case "AGENT_REPLY":
        if (!this.agents!.onReply(msg, frames.slice(base))) {
          this.log?.debug({ rid: msg.rid }, "AGENT_REPLY for no call in flight (timed out or dropped)");
        }
        break;
      case "WELCOME":
        this.outbox!.columns = msg.columns === true;
        this.outbox!.packedOutputs = msg.packedOutputs === true;
        if (typeof msg.maxFrameBytes === "number" && msg.maxFrameBytes > 0) {
          this.outbox!.maxFrameBytes = msg.maxFrameBytes;
          this.agents!.maxFrameBytes = msg.maxFrameBytes;
        }
        this.onWelcome(msg.heartbeatMs);
        break;
      case "REJECT": {
        const code = Object.values(ErrorCode).includes(msg.code as ErrorCode)
          ? (msg.code as ErrorCode)
          : ErrorCode.FAILED_PRECONDITION;
        this.fail(new ZgridError(code, `the server rejected this worker: ${msg.msg}`));
        break;
      }
      case "HEARTBEAT":
        break;
      case "TASKS":
        this.onTasks(msg, frames, base);
        break;
      case "CANCEL":
        this.onCancel(msg);
        break;
      case "DATA": {
        const { ready, failed } = this.fetcher!.onData(msg, frames, base);
        if (failed.length > 0) this.outbox!.taskDone(failed);
        if (ready.length > 0) this.pool!.submit(ready);
        break;
      }
      case "RECONNECT":
        this.log?.warn({ reason: msg.msg }, "the server does not know this worker; sending READY again");
        // It failed the tasks this worker held: their agent calls will never be answered.
        this.agents!.failAll(ErrorCode.UNAVAILABLE, `the server lost track of this worker: ${msg.msg}`);
        this.welcomed = false;
        this.state = "connecting";
        this.sendReady();
        break;
      default:
        this.log?.warn({ t: (msg as { t: string }).t }, "ignoring a message of unknown type from the server");
    }
  }

  /**
   * A refused CurveZMQ key, or a server that does not speak the URL's security, would only look like a
   * silent server: this host says why and stops. A Curve handshake cut short counts at once before the
   * first handshake that succeeded; after one, only several in a row (a server caught as it restarts may
   * cut one): the server came back with another key, or without Curve.
   */
  private async watchHandshakes(socket: Dealer): Promise<void> {
    const where = this.endpoint.replace(/^tcp:\/\//, "");
    const curve = this.serverKey !== undefined;
    let succeeded = false;
    let cutInARow = 0;
    try {
      for await (const event of socket.events) {
        let sentence: string | null = null;
        if (event.type === "handshake") {
          succeeded = true;
          cutInARow = 0;
        } else if (event.type === "handshake:error:auth")
          sentence = `the server at ${where} refused this worker's CurveZMQ public key: it is not in the server's --curve-workers list`;
        else if (event.type === "handshake:error:protocol")
          sentence = curve
            ? `the server at ${where} does not use CurveZMQ (not started with --curve?), and a worker never falls back to plain text`
            : `the server at ${where} requires CurveZMQ: use the workerUrl it prints, which carries serverKey=`;
        else if (event.type === "handshake:error:other" && curve) {
          cutInARow++;
          if (!succeeded)
            sentence = `the CurveZMQ handshake with ${where} failed: the server there does not use CurveZMQ (not started with --curve?) or serverKey is not its key, and a worker never falls back to plain text`;
          else if (cutInARow >= CUT_HANDSHAKES_AFTER_SUCCESS)
            sentence = `the CurveZMQ handshakes with ${where} fail since the server there went away: it came back with another key (was its curve-server.key replaced?) or without --curve, and a worker never falls back to plain text: start it again with the workerUrl the server prints now`;
        }
        if (sentence !== null) return this.fail(new ZgridError(ErrorCode.UNAUTHENTICATED, sentence));
      }
    } catch {
      // The socket closed.
    }
  }

  /** This host cannot work with what it reached: says why, fails start(), and stops. */
  private fail(err: ZgridError): void {
    if (this.state === "stopping" || this.state === "closed") return;
    this.failed = err;
    this.log?.error({ code: err.code }, err.message);
    this.welcome?.reject(err);
    this.welcome = undefined;
    void this.stop();
  }

  private onWelcome(heartbeatMs: number | undefined): void {
    const wasLost = this.state === "connecting" && this.welcome === undefined;
    this.welcomed = true;
    this.state = "ready";
    if (typeof heartbeatMs === "number" && heartbeatMs > 0 && heartbeatMs !== this.serverHeartbeatMs) {
      // The server counts our missed heartbeats by its interval: beat at least that often.
      this.serverHeartbeatMs = heartbeatMs;
      clearInterval(this.timer);
      this.timer = setInterval(() => this.tick(), this.heartbeatInterval());
    }
    if (this.welcome) {
      this.log?.info({ heartbeatMs: this.serverHeartbeatMs }, "worker welcomed by the server");
      this.welcome.resolve();
      this.welcome = undefined;
    } else if (wasLost) {
      this.log?.info({ held: this.pool!.held }, "server back: worker welcomed again");
      this.fetcher?.refetch();
      this.outbox?.resendRecent();
    }
  }

  private onTasks(msg: TasksMsg | TasksColumnsMsg, frames: Buffer[], base: number): void {
    let tasks: WireTask[];
    try {
      tasks = "taskIds" in msg ? tasksOfColumns(msg) : (msg.tasks ?? []);
    } catch (err) {
      this.log?.error({ err }, "ignoring a TASKS message that is not well formed");
      return;
    }
    // Packed payloads: task.payload indexes the batch's payloads, cut out of the blobs back to back.
    let packed: (Buffer | undefined)[] | null = null;
    if ("payloadSizes" in msg && msg.payloadSizes !== undefined) {
      const cut = unpackOutputs(msg.payloadSizes, frames.slice(base));
      if (typeof cut === "string") {
        this.log?.error(`ignoring a TASKS message whose packed payloads are not well formed: ${cut}`);
        return;
      }
      packed = cut;
    }
    const ready: ReadyTask[] = [];
    for (const task of tasks) {
      // A task already held is a duplicate delivery (e.g. after a reconnection): run it once.
      if (this.pool!.has(task.taskId) || this.fetcher!.has(task.taskId)) continue;
      if (typeof task.payload === "number") {
        const payload = packed ? packed[task.payload] : frames[base + task.payload];
        if (payload) {
          ready.push({ task, payload });
          continue;
        }
        this.log?.warn({ taskId: task.taskId }, "TASKS named a payload frame that is missing; fetching it");
      }
      this.fetcher!.need(task);
    }
    if (ready.length > 0) this.pool!.submit(ready);
  }

  private onCancel(msg: CancelMsg): void {
    const ids = msg.taskIds ?? [];
    const reason = msg.reason ? `cancelled: ${msg.reason}` : "cancelled";
    const waiting = this.fetcher!.cancel(ids);
    if (waiting.length > 0) {
      this.outbox!.taskDone(
        waiting.map((taskId) => ({ taskId, status: "CANCELLED" as const, error: reason })),
      );
    }
    this.pool!.cancel(ids, reason);
  }
}

async function defaultLogger(workerId: string): Promise<Logger> {
  const { createLogger } = await import("../log.js");
  return createLogger("info", "zgrid-worker").child({ workerId });
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
