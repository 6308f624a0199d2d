import { FairShare } from "../protocol/fair-share.js";
import { SILENT_PEER_HEARTBEATS } from "../protocol/heartbeats.js";
import { userInfo } from "node:os";
import { Dealer, curveKeyPair } from "zeromq";
import { PROTOCOL_VERSION, decode, encode, isPlainObject } from "../protocol/codec.js";
import { ErrorCode, ZgridError } from "../protocol/errors.js";
import { CUT_HANDSHAKES_AFTER_SUCCESS } from "../protocol/handshakes.js";
import { SendQueue } from "../protocol/send-queue.js";
import { isZ85Key } from "../protocol/z85.js";
import type { CurveKeyPair } from "./session-service.js";
import { parseServerUrl, type ServerAddress } from "./url.js";

const EMPTY = Buffer.alloc(0);

/**
 * The server requires CurveZMQ and this connection has no server key (`UNAUTHENTICATED`). A caller
 * that can find the key (a probe beside the server reads its data dir) may connect again with it.
 */
export class CurveRequiredError extends ZgridError {
  constructor(message: string) {
    super(ErrorCode.UNAUTHENTICATED, message);
  }
}

function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    return "anonymous";
  }
}

/** Options of {@link connect}. */
export interface ConnectOptions {
  /** Token; overrides the one in the URL. */
  token?: string;
  /** Reported to the server as `user` (metrics per user); default: the OS user. */
  user?: string;
  /** Per-request timeout in milliseconds (default 30,000). */
  timeoutMs?: number;
  /**
   * The server's CurveZMQ public key (Z85, 40 characters); overrides the URL's `serverKey`. With one, the
   * connection is encrypted and authenticated, and fails rather than fall back to plain text.
   */
  serverKey?: string;
  /**
   * This client's CurveZMQ key pair, used with a server key (default: a new pair for this connection). A
   * server started with `--curve-clients` lets in only the public keys that file lists.
   */
  curveKeyPair?: CurveKeyPair;
}

/** A reply: its header's `msg` and `msgType`, and the blobs that followed it. */
export interface Reply<T = unknown> {
  msg: T;
  msgType: "NORMAL" | "WARNING";
  blobs: Buffer[];
}

/** Per-request options. */
export interface RequestOptions {
  timeoutMs?: number;
  /** Called with each EVENT pushed for this request (events.subscribe). */
  onEvent?: (event: unknown) => void;
}

interface Pending {
  resolve: (reply: Reply) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | null;
  cmd: string;
  onEvent?: (event: unknown) => void;
}

/**
 * One connection to one daemon: a DEALER socket with many requests in flight, matched to their replies
 * by id. Sends go through one queue (zeromq.js allows a single pending send per socket).
 */
export class Connection {
  readonly address: ServerAddress;
  private readonly socket = new Dealer({ linger: 0, sendHighWaterMark: 0, receiveHighWaterMark: 0 });
  /** Why this connection cannot be used: its CurveZMQ handshake failed. Every request fails with it. */
  private broken: ZgridError | null = null;
  private readonly out: SendQueue;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Map<number, (event: unknown) => void>();
  private nextId = 1;
  private readonly token?: string;
  private readonly user: string;
  private readonly timeoutMs: number;
  private readonly loop: Promise<void>;
  private closed = false;
  /** The server's clock minus this host's, in ms, from the `now` of its replies; null before one. */
  private clockOffset: number | null = null;

  constructor(url: string, options: ConnectOptions = {}) {
    this.address = parseServerUrl(url);
    this.token = options.token ?? this.address.token;
    this.user = options.user ?? process.env.USER ?? process.env.USERNAME ?? osUser();
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.out = new SendQueue(this.socket);
    const serverKey = options.serverKey ?? this.address.serverKey;
    if (serverKey !== undefined) {
      try {
        this.useCurve(serverKey, options.curveKeyPair);
      } catch (err) {
        this.socket.close();
        throw err;
      }
    }
    void this.watchHandshakes(serverKey !== undefined);
    // Several servers (an owner and its standbys): a request goes only to one that is connected, which
    // is the one serving (a standby binds nothing until it takes over).
    // A connection to one that went silent (its host cut off) is closed after missed ZMTP heartbeats.
    if (this.address.endpoints.length > 1) {
      this.socket.immediate = true;
      Object.assign(this.socket, SILENT_PEER_HEARTBEATS);
    }
    for (const endpoint of this.address.endpoints) this.socket.connect(endpoint);
    this.loop = this.receive();
  }

  private useCurve(serverKey: string, pair: CurveKeyPair | undefined): void {
    if (!isZ85Key(serverKey))
      throw new ZgridError(
        ErrorCode.INVALID_ARGUMENT,
        "serverKey is not a CurveZMQ public key: expected 40 Z85 characters, as the server prints in its connect URL",
      );
    if (pair !== undefined && (!isZ85Key(pair.publicKey) || !isZ85Key(pair.secretKey)))
      throw new ZgridError(
        ErrorCode.INVALID_ARGUMENT,
        "curveKeyPair is not a CurveZMQ key pair: expected { publicKey, secretKey }, 40 Z85 characters each (zgrid keygen)",
      );
    const keys = pair ?? curveKeyPair();
    this.socket.curveServerKey = serverKey;
    this.socket.curvePublicKey = keys.publicKey;
    this.socket.curveSecretKey = keys.secretKey;
  }

  /**
   * A failed handshake makes ZeroMQ retry in silence, and the requests would only time out: this turns
   * it into a sentence. A refused key or a server that does not speak the same security is a setting to
   * fix, so the connection fails for good and drops what it queued (nothing is ever sent in clear). A
   * Curve handshake cut short ("other") counts so at once before any handshake succeeded; after one, a
   * server caught while it stops or starts may cut one, so only several in a row count: the server
   * came back with another key (or without Curve), and retrying in silence would never end.
   */
  private async watchHandshakes(curve: boolean): Promise<void> {
    const where = this.address.endpoint.replace(/^tcp:\/\//, "");
    let succeeded = false;
    let cutInARow = 0;
    try {
      for await (const event of this.socket.events) {
        let sentence: string | null = null;
        if (event.type === "handshake") {
          succeeded = true;
          cutInARow = 0;
        } else if (event.type === "handshake:error:auth")
          sentence = `the server at ${where} refused this client's CurveZMQ public key: it is not in the server's --curve-clients list (or --curve-workers, for a worker)`;
        else if (event.type === "handshake:error:protocol" && !curve) {
          this.fail(
            new CurveRequiredError(
              `the server at ${where} requires CurveZMQ (it was started with --curve): use the connect URL it prints, which carries serverKey=`,
            ),
          );
          return;
        } else if (event.type === "handshake:error:protocol")
          sentence = `the server at ${where} does not use CurveZMQ (not started with --curve?), and this client never falls back to plain text: drop serverKey= from the URL only if you mean to talk in clear`;
        else if (event.type === "handshake:error:other" && curve) {
          cutInARow++;
          if (!succeeded)
            sentence = `the CurveZMQ handshake with ${where} failed: the server there does not use CurveZMQ (not started with --curve?) or serverKey is not its key, and this client never falls back to plain text`;
          else if (cutInARow >= CUT_HANDSHAKES_AFTER_SUCCESS)
            sentence = `the CurveZMQ handshakes with ${where} fail since the server there went away: it came back with another key (was its curve-server.key replaced?) or without --curve, and this client never falls back to plain text: connect again with the URL the server prints now`;
        }
        if (sentence !== null) {
          this.fail(new ZgridError(ErrorCode.UNAUTHENTICATED, sentence));
          return;
        }
      }
    } catch {
      // The socket closed: nothing more to watch.
    }
  }

  private fail(err: ZgridError): void {
    if (this.closed || this.broken) return;
    this.broken = err;
    this.failAll(err);
    this.listeners.clear();
    // Closing drops what ZeroMQ still queues for the server (linger 0): a request this client reported
    // failed must not run once a later handshake succeeds.
    this.socket.close();
  }

  /** Sends a request and resolves with its reply; an ERROR reply rejects with a {@link ZgridError}. */
  request<T = unknown>(
    cmd: string,
    args?: Record<string, unknown>,
    blobs?: Buffer[],
    options: RequestOptions = {},
  ): Promise<Reply<T>> {
    if (this.broken) return Promise.reject(this.broken);
    if (this.closed) return Promise.reject(new ZgridError(ErrorCode.UNAVAILABLE, "the connection is closed"));
    const id = this.nextId++;
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    // The deadline tells the server not to act on a request this client has given up on by then (one
    // queued while the server was down, say): a TIMEOUT here means it was not done later.
    // Stamped on the server's clock (learnt from its replies), so skew between hosts does not matter;
    // the first request, before any reply, carries none.
    const header = encode(
      timeoutMs > 0 && this.clockOffset !== null
        ? {
            v: PROTOCOL_VERSION,
            id,
            cmd,
            token: this.token,
            user: this.user,
            args,
            deadline: Date.now() + this.clockOffset + timeoutMs,
          }
        : { v: PROTOCOL_VERSION, id, cmd, token: this.token, user: this.user, args },
    );
    const frames = blobs && blobs.length > 0 ? [EMPTY, header, ...blobs] : [EMPTY, header];
    return new Promise<Reply<T>>((resolve, reject) => {
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              this.pending.delete(id);
              reject(
                new ZgridError(
                  ErrorCode.TIMEOUT,
                  `no reply to ${cmd} from ${this.address.endpoint} within ${timeoutMs} ms: is the server running?`,
                ),
              );
            }, timeoutMs)
          : null;
      this.pending.set(id, {
        resolve: resolve as (r: Reply) => void,
        reject,
        timer,
        cmd,
        onEvent: options.onEvent,
      });
      this.out.send(frames);
    });
  }

  /** Sends a request and returns only its `msg`. */
  async call<T = unknown>(
    cmd: string,
    args?: Record<string, unknown>,
    blobs?: Buffer[],
    options?: RequestOptions,
  ): Promise<T> {
    return (await this.request<T>(cmd, args, blobs, options)).msg;
  }

  /** Keeps receiving EVENTs tagged with `id` after its reply came. */
  listen(id: number, onEvent: (event: unknown) => void): void {
    this.listeners.set(id, onEvent);
  }

  unlisten(id: number): void {
    this.listeners.delete(id);
  }

  /** The id the next request will carry. */
  peekNextId(): number {
    return this.nextId;
  }

  private async receive(): Promise<void> {
    try {
      const fair = new FairShare();
      for await (const frames of this.socket) {
        this.dispatch(frames);
        const pause = fair.pause();
        if (pause) await pause;
      }
    } catch (err) {
      if (!this.closed && !this.broken)
        this.failAll(new ZgridError(ErrorCode.UNAVAILABLE, `connection lost: ${(err as Error).message}`));
    }
  }

  private dispatch(frames: Buffer[]): void {
    if (frames.length < 2) return;
    let header: unknown;
    try {
      header = decode(frames[1]);
    } catch {
      return;
    }
    if (!isPlainObject(header)) return;
    if (typeof header.now === "number") {
      // The server's clock minus ours, less the reply's transit: the largest sample is the closest.
      const sample = header.now - Date.now();
      this.clockOffset = this.clockOffset === null ? sample : Math.max(sample, this.clockOffset - 1);
    }
    if (typeof header.t === "string" && header.msgType === undefined) {
      // The worker protocol's REJECT: this address is a server's worker endpoint, not a client port.
      this.failAll(
        new ZgridError(
          ErrorCode.INVALID_ARGUMENT,
          `${this.address.endpoint} is a zgrid worker endpoint, not a client port: connect to the server's "connect URL"`,
        ),
      );
      return;
    }
    if (typeof header.id !== "number") return;
    const id = header.id;
    if (header.msgType === "EVENT") {
      const p = this.pending.get(id);
      (p?.onEvent ?? this.listeners.get(id))?.(header.msg);
      return;
    }
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (p.timer) clearTimeout(p.timer);
    if (p.onEvent) this.listeners.set(id, p.onEvent);
    if (header.msgType === "ERROR") {
      const code = (typeof header.code === "string" ? header.code : ErrorCode.INTERNAL) as ErrorCode;
      p.reject(
        new ZgridError(code, typeof header.msg === "string" ? header.msg : JSON.stringify(header.msg)),
      );
      return;
    }
    p.resolve({
      msg: header.msg,
      msgType: header.msgType === "WARNING" ? "WARNING" : "NORMAL",
      blobs: frames.slice(2),
    });
  }

  private failAll(err: Error): void {
    for (const [id, p] of this.pending) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(err);
      this.pending.delete(id);
    }
  }

  /** Rejects what is still pending and closes the socket. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new ZgridError(ErrorCode.UNAVAILABLE, "the connection was closed"));
    this.listeners.clear();
    await this.out.idle();
    if (!this.socket.closed) this.socket.close();
    await this.loop;
  }
}
