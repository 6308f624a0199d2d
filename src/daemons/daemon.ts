import { FairShare } from "../protocol/fair-share.js";
import { Router } from "zeromq";
import type { Logger } from "../log.js";
import { PROTOCOL_VERSION, decode, encode, isPlainObject, type MsgType } from "../protocol/codec.js";
import { describeValue, escapeControls } from "../protocol/describe.js";
import { CommandMap, type CommandReply, type CommandRequest } from "../protocol/command-map.js";
import { ErrorCode, ZgridError } from "../protocol/errors.js";
import type { TokenCheck } from "./auth.js";
import { grants } from "./roles.js";
import { SendQueue } from "../protocol/send-queue.js";
import { ZAP_CLIENTS } from "./zap-thread.js";

const EMPTY = Buffer.alloc(0);

/**
 * Fault injection for the crash-consistency tests only: the server process dies (SIGKILL) right after
 * it has handed its reply to this command to ZeroMQ, as a crash just after an acknowledgement would.
 */
const KILL_AFTER_REPLY = process.env.ZGRID_FAULT_KILL_AFTER_REPLY ?? "";

/** The largest frame a daemon's socket takes in at all (ZeroMQ's maxMessageSize, per frame). */
export function receiptLimit(maxFrameBytes: number): number {
  return Math.min(2 * maxFrameBytes + 64 * 1024, 2 ** 31 - 1);
}

/** A request whose handler is running: answered with UNAVAILABLE if it outlives the shutdown grace. */
interface OpenRequest {
  identity: Buffer;
  id: number | null;
  user: string;
  answered: boolean;
}

/** Where a daemon reports each request it answered (RequestMetrics, or a relay to it from a thread). */
export interface RequestRecorder {
  record(daemon: string, command: string, user: string, seconds: number, errorCode?: string): void;
  /** Replies or events dropped because their peer did not read them (its queue was full). */
  dropped(daemon: string, count: number): void;
}

/**
 * The most messages (replies and events) a daemon queues for one peer that does not read them: past it,
 * the peer's messages are dropped (counted, logged). A reading client never gets near it: its own
 * ZeroMQ takes messages off the wire as they come.
 */
export const PEER_SEND_HWM = 10_000;
/** The most requests one peer may have in flight (its handlers running) on a daemon. */
export const PEER_MAX_IN_FLIGHT = 1000;
/**
 * The most requests a daemon holds while the store is backlogged (see DaemonOptions.backpressure): past
 * it, it reads none until one runs, so that held requests cannot grow the server's memory.
 */
export const MAX_HELD_REQUESTS = 16;
/** How often, at most, a daemon logs that it drops messages. */
const DROP_LOG_MS = 10_000;

/** What the server needs of a daemon, wherever it runs (the STATUS daemon runs on a thread of its own). */
export interface Daemon {
  readonly name: string;
  /** The bound port, 0 before start. */
  readonly port: number;
  /** Requests authenticated so far. */
  readonly requests: number;
  start(): Promise<void>;
  stop(graceMs?: number): Promise<void>;
}

export interface DaemonOptions {
  /** "DEFAULT", "METRICS", "STATUS". */
  name: string;
  host: string;
  port: number;
  auth: TokenCheck;
  maxFrameBytes: number;
  metrics: RequestRecorder;
  log: Logger;
  /** With `--curve`: the server's secret key; the socket is a CurveZMQ server of the "clients" ZAP domain. */
  curveSecretKey?: string;
  /**
   * Asked before a request that may change state runs: something to wait for first (the store's
   * backlog: see Store.backlogged), else null. Requests of `readOnly` commands never wait. Past
   * MAX_HELD_REQUESTS waiting, no request is read: what peers send meanwhile waits in ZeroMQ's queues.
   */
  backpressure?: () => Promise<void> | null;
  /** Commands that change nothing the store keeps: answered at once while the store is backlogged. */
  readOnly?: ReadonlySet<string>;
}

/**
 * Makes a socket a CurveZMQ server whose peers the ZAP handler judges in `domain`. `zapEnforceDomain`:
 * with no handler to ask, a handshake fails rather than letting any key in.
 */
export function makeCurveServer(socket: Router, secretKey: string, domain: string): void {
  socket.curveServer = true;
  socket.curveSecretKey = secretKey;
  socket.zapDomain = domain;
  socket.zapEnforceDomain = true;
}

/**
 * One daemon: a ROUTER socket on its own port, a CommandMap, token checks on every request, request
 * metrics, and a clean stop. Subclasses only fill the CommandMap (Arkouda's ArkoudaServerDaemon).
 *
 * Requests are handled concurrently: a slow command never holds up the socket loop, and each parseable
 * request gets exactly one reply, whatever its handler does.
 */
export class ServerDaemon implements Daemon {
  readonly name: string;
  readonly commands = new CommandMap();
  protected readonly log: Logger;
  // sendTimeout 0: a send never waits. With `mandatory`, a ROUTER reports POLLOUT only while some peer
  // is connected, so a waiting send to a peer that has just gone would block forever, and with it every
  // later reply of this socket; without waiting it fails at once with EHOSTUNREACH.
  private readonly socket = new Router({
    mandatory: true,
    // Bounded per peer: a peer that sends and never reads cannot grow the server's memory.
    sendHighWaterMark: PEER_SEND_HWM,
    receiveHighWaterMark: PEER_SEND_HWM,
    sendTimeout: 0,
    linger: 200,
  });
  /** Requests in flight by peer (identity in hex): bounded by PEER_MAX_IN_FLIGHT. */
  private readonly inFlightByPeer = new Map<string, number>();
  private droppedPending = 0;
  private dropTimer: NodeJS.Timeout | null = null;
  private droppedSinceLog = 0;
  private lastDropLog = 0;
  private readonly out: SendQueue;
  private boundPort = 0;
  private accepting = true;
  private inFlight = 0;
  private readonly open = new Set<OpenRequest>();
  private drained: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private requestCount = 0;
  /**
   * Requests that may change state, held while the store is backlogged (DaemonOptions.backpressure):
   * let go in order, one a commit while the backlog lasts (release); the loop waits for room among them.
   */
  private readonly held: (() => void)[] = [];
  private releasing = false;
  private heldRoom: (() => void) | null = null;

  constructor(private readonly opts: DaemonOptions) {
    this.name = opts.name;
    this.log = opts.log.child({ daemon: opts.name });
    this.out = new SendQueue(this.socket, this.log, () => this.droppedOne());
    // Enforced at receipt too: a frame up to twice the limit is read and refused with a sentence; a
    // larger one is never buffered, and its sender is disconnected by ZeroMQ.
    this.socket.maxMessageSize = receiptLimit(opts.maxFrameBytes);
    if (opts.curveSecretKey !== undefined) makeCurveServer(this.socket, opts.curveSecretKey, ZAP_CLIENTS);
  }

  get port(): number {
    return this.boundPort;
  }

  get requests(): number {
    return this.requestCount;
  }

  /** Binds the socket (port 0: any free port) and starts serving. */
  async start(): Promise<void> {
    const port = this.opts.port === 0 ? "*" : String(this.opts.port);
    try {
      await this.socket.bind(`tcp://${this.opts.host}:${port}`);
    } catch (err) {
      throw new Error(
        `${this.name} daemon cannot listen on ${this.opts.host}:${this.opts.port}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const endpoint = this.socket.lastEndpoint ?? "";
    this.boundPort = Number(endpoint.slice(endpoint.lastIndexOf(":") + 1));
    this.loop = this.serve();
  }

  private async serve(): Promise<void> {
    try {
      const fair = new FairShare();
      for await (const frames of this.socket) {
        this.handle(frames).catch((err: unknown) => this.log.error({ err }, "request handling failed"));
        const pause = fair.pause();
        if (pause) await pause;
        if (this.held.length >= MAX_HELD_REQUESTS)
          await new Promise<void>((resolve) => {
            this.heldRoom = resolve;
          });
      }
    } catch (err) {
      if (!this.socket.closed) this.log.error({ err }, "receive loop ended");
    }
  }

  /**
   * Stops accepting (new requests get UNAVAILABLE), lets what is in flight finish for up to `graceMs`,
   * answers what is still running then with UNAVAILABLE (every request gets its one reply), closes the socket.
   */
  async stop(graceMs = 5000): Promise<void> {
    this.accepting = false;
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    for (const r of this.open) {
      r.answered = true;
      this.replyError(
        r.identity,
        r.id,
        ErrorCode.UNAVAILABLE,
        "the server shut down before this request finished",
        r.user,
      );
    }
    this.open.clear();
    await this.out.idle();
    this.socket.close();
    // A loop waiting for room among held requests goes on, to find the socket closed.
    const room = this.heldRoom;
    this.heldRoom = null;
    room?.();
    await this.loop;
  }

  /** A message to a peer that does not read was dropped: counted within 100 ms, logged now and then. */
  private droppedOne(): void {
    this.droppedPending++;
    this.dropTimer ??= setTimeout(() => this.reportDrops(), 100).unref();
  }

  private reportDrops(): void {
    this.dropTimer = null;
    this.opts.metrics.dropped(this.name, this.droppedPending);
    this.droppedSinceLog += this.droppedPending;
    this.droppedPending = 0;
    const now = Date.now();
    if (now - this.lastDropLog < DROP_LOG_MS) return;
    this.log.warn(
      { dropped: this.droppedSinceLog, hwm: PEER_SEND_HWM },
      "replies to a peer that does not read them are dropped: it has the most messages waiting a peer may have",
    );
    this.droppedSinceLog = 0;
    this.lastDropLog = now;
  }

  /** Closes the socket at once, unanswered requests and unsent replies dropped: for a process that exits. */
  closeNow(): void {
    this.accepting = false;
    if (!this.socket.closed) this.socket.close();
  }

  private reply(
    identity: Buffer,
    id: number | null,
    msgType: MsgType,
    msg: unknown,
    extra?: Record<string, unknown>,
    blobs?: Buffer[],
  ): void {
    // `now`: the server's clock, from which a client learns how to stamp deadlines it will honour.
    const header = encode({ v: PROTOCOL_VERSION, id, msgType, msg, now: Date.now(), ...extra });
    const frames =
      blobs && blobs.length > 0 ? [identity, EMPTY, header, ...blobs] : [identity, EMPTY, header];
    this.out.send(frames);
  }

  private replyError(identity: Buffer, id: number | null, code: string, msg: string, user?: string): void {
    const text = escapeControls(msg);
    this.reply(identity, id, "ERROR", text, user === undefined ? { code } : { code, user });
  }

  /**
   * ZGRID_FAULT_KILL_AFTER_REPLY: the reply was handed to ZeroMQ in this same step (its I/O thread sends
   * it); no JS runs again, so no write-behind commit can hide a missing flush.
   */
  private dieAfterSending(): never {
    const until = Date.now() + 100;
    while (Date.now() < until) {
      // the I/O thread sends the reply meanwhile
    }
    process.kill(process.pid, "SIGKILL");
    throw new Error("unreachable");
  }

  /**
   * Whether a request of `cmd` must wait before it runs: it may change state, and the store is backlogged
   * or others wait already (it goes after them). Then resolves when its turn comes.
   */
  private waitTurn(cmd: string): Promise<void> | null {
    const backpressure = this.opts.backpressure;
    if (!backpressure || this.opts.readOnly?.has(cmd)) return null;
    let backlog: Promise<void> | null = null;
    if (!this.releasing) {
      backlog = backpressure();
      if (!backlog) return null;
    }
    const turn = new Promise<void>((resolve) => this.held.push(resolve));
    if (!this.releasing) void this.release(backlog, backpressure);
    return turn;
  }

  /**
   * Lets held requests go in order: one each time the commit under way ends while the store stays
   * backlogged (as if read one a commit); once it no longer is, the rest one a turn of the event loop,
   * each judged again after the one before has run.
   */
  private async release(
    first: Promise<void> | null,
    backpressure: () => Promise<void> | null,
  ): Promise<void> {
    this.releasing = true;
    let backlog = first;
    while (this.held.length > 0) {
      if (backlog) await backlog;
      this.held.shift()!();
      const room = this.heldRoom;
      this.heldRoom = null;
      room?.();
      // The request let go runs, its changes counted, before the next one is judged.
      await new Promise<void>((resolve) => setImmediate(resolve));
      backlog = this.held.length > 0 ? backpressure() : null;
    }
    this.releasing = false;
  }

  private async handle(frames: Buffer[]): Promise<void> {
    const started = performance.now();
    const identity = frames[0];
    let id: number | null = null;
    let cmd = "<invalid>";
    let user = "anonymous";
    const fail = (code: string, msg: string): void => {
      this.opts.metrics.record(this.name, cmd, user, (performance.now() - started) / 1000, code);
      this.replyError(identity, id, code, msg);
    };

    // Frames after the identity: "" HEADER BLOB*. REQ sockets add the delimiter themselves.
    if (frames.length < 3 || frames[1].length !== 0) {
      return fail(ErrorCode.BAD_REQUEST, "expected frames: an empty delimiter, a msgpack header, then blobs");
    }
    const headerBuf = frames[2];
    let oversized = -1;
    for (let i = 2; i < frames.length; i++) {
      if (frames[i].length > this.opts.maxFrameBytes) {
        oversized = i;
        break;
      }
    }
    if (oversized === 2 && headerBuf.length > this.opts.maxFrameBytes) {
      return fail(
        ErrorCode.RESOURCE_EXHAUSTED,
        `header frame of ${headerBuf.length} bytes exceeds the limit of ${this.opts.maxFrameBytes} bytes`,
      );
    }
    let header: unknown;
    try {
      header = decode(headerBuf);
    } catch {
      return fail(ErrorCode.BAD_REQUEST, "the header frame is not valid msgpack");
    }
    if (!isPlainObject(header)) return fail(ErrorCode.BAD_REQUEST, "the header must be a msgpack map");
    if (typeof header.id === "number" && Number.isInteger(header.id)) id = header.id;
    // The user and command a request names label metrics only once its token is checked: a stranger
    // must not mint a series per made-up name.
    const claimedUser =
      typeof header.user === "string" && header.user.length > 0 && header.user.length <= 128
        ? header.user
        : "anonymous";
    if (header.v !== PROTOCOL_VERSION) {
      return fail(
        ErrorCode.BAD_REQUEST,
        `unsupported protocol version ${describeValue(header.v)}: this server speaks v: ${PROTOCOL_VERSION}`,
      );
    }
    if (typeof header.cmd !== "string" || header.cmd.length === 0) {
      return fail(ErrorCode.BAD_REQUEST, "the header has no cmd: name the command to run");
    }
    const caller = this.opts.auth.identify(header.token, claimedUser);
    if (caller === null) {
      cmd = "<unauthenticated>";
      return fail(
        ErrorCode.UNAUTHENTICATED,
        header.token === undefined
          ? "this server requires a token: pass the one it printed at start"
          : "wrong token",
      );
    }
    cmd = header.cmd.length <= 128 ? header.cmd : header.cmd.slice(0, 128);
    user = caller.user;
    this.requestCount++;
    if (oversized >= 0) {
      return fail(
        ErrorCode.RESOURCE_EXHAUSTED,
        `blob ${oversized - 3} of ${frames[oversized].length} bytes exceeds the limit of ${this.opts.maxFrameBytes} bytes: upload large data in chunks`,
      );
    }
    if (!this.accepting) return fail(ErrorCode.UNAVAILABLE, "the server is shutting down");
    // A client that gave up on a request (its timeout passed while the server was down or stalled)
    // must not see it done later: a request read after its deadline is refused, and nothing happens.
    if (typeof header.deadline === "number" && header.deadline < Date.now()) {
      return fail(
        ErrorCode.UNAVAILABLE,
        `the request reached the server after its deadline (${header.deadline} ms since the epoch, server time ${Date.now()}): nothing was done`,
      );
    }
    const entry = this.commands.get(cmd);
    if (!entry)
      return fail(
        ErrorCode.UNKNOWN_COMMAND,
        `unknown command ${describeValue(cmd)} on the ${this.name} daemon`,
      );
    if (!grants(caller.role, cmd)) {
      return fail(
        ErrorCode.PERMISSION_DENIED,
        `user ${user} (role ${caller.role}) may not run ${cmd}: ask an admin for a role that grants it`,
      );
    }
    const args = header.args ?? {};
    if (!isPlainObject(args)) return fail(ErrorCode.INVALID_ARGUMENT, "args must be a msgpack map");

    const peer = identity.toString("hex");
    const peerInFlight = this.inFlightByPeer.get(peer) ?? 0;
    if (peerInFlight >= PEER_MAX_IN_FLIGHT) {
      return fail(
        ErrorCode.RESOURCE_EXHAUSTED,
        `this connection has ${peerInFlight} requests in flight, the most allowed: wait for their answers`,
      );
    }
    this.inFlightByPeer.set(peer, peerInFlight + 1);
    this.inFlight++;
    const open: OpenRequest = { identity, id, user, answered: false };
    this.open.add(open);
    const requestId = id;
    const req: CommandRequest = {
      cmd,
      args,
      blobs: frames.length > 3 ? frames.slice(3) : [],
      user,
      caller,
      daemon: this.name,
      peer,
      push: (event: unknown, gone?: () => void) => {
        if (this.socket.closed) return false;
        this.out.send(
          [identity, EMPTY, encode({ v: PROTOCOL_VERSION, id: requestId, msgType: "EVENT", msg: event })],
          gone,
        );
        return true;
      },
    };
    // A request is counted before its reply leaves: a client that reads the metrics right after a
    // reply must see it.
    let recorded = false;
    const count = (errorCode?: string): void => {
      if (recorded) return;
      recorded = true;
      this.opts.metrics.record(this.name, cmd, user, (performance.now() - started) / 1000, errorCode);
    };
    try {
      // While the store is far behind, a request that may add to it waits for the commit under way
      // (commits stay of a bounded size); one that only reads is answered meanwhile.
      const turn = this.waitTurn(cmd);
      if (turn) {
        await turn;
        // Answered UNAVAILABLE by a shutdown while it waited: it never runs.
        if (open.answered) return;
      }
      const result = entry.handler(req);
      const answer: CommandReply = result instanceof Promise ? await result : result;
      if (!open.answered) {
        count();
        this.reply(identity, id, answer.msgType ?? "NORMAL", answer.msg, { user }, answer.blobs);
      }
      if (KILL_AFTER_REPLY === cmd) this.dieAfterSending();
    } catch (err) {
      if (open.answered) {
        count(ErrorCode.UNAVAILABLE);
      } else if (err instanceof ZgridError) {
        count(err.code);
        this.replyError(identity, id, err.code, err.message, user);
      } else {
        count(ErrorCode.INTERNAL);
        this.log.error({ err, cmd }, "command failed");
        this.replyError(
          identity,
          id,
          ErrorCode.INTERNAL,
          `internal error in ${cmd}: ${(err as Error)?.message ?? String(err)}`,
          user,
        );
      }
    } finally {
      // Answered UNAVAILABLE by a shutdown while it ran.
      count(ErrorCode.UNAVAILABLE);
      open.answered = true;
      this.open.delete(open);
      const left = (this.inFlightByPeer.get(peer) ?? 1) - 1;
      if (left > 0) this.inFlightByPeer.set(peer, left);
      else this.inFlightByPeer.delete(peer);
      this.inFlight--;
      if (this.inFlight === 0 && this.drained) this.drained();
    }
  }
}
