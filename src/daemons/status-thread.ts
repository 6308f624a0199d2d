import { Worker } from "node:worker_threads";
import type { Logger } from "../log.js";
import type { ServerConfig } from "./config.js";
import type { Endpoints, SecuritySummary } from "./context.js";
import type { Daemon, RequestRecorder } from "./daemon.js";
import type { UserEntry } from "./users.js";

/** What the STATUS thread starts from (structured-cloned into it). */
export interface StatusThreadInit {
  config: ServerConfig;
  /** The port to bind: 0 for any free one. */
  port: number;
  token: string | null;
  /** The users file's users, null without one. */
  users: UserEntry[] | null;
  /** With `--curve`: the server's secret key. */
  curveSecretKey?: string;
  version: string;
  instance: string;
  authEnabled: boolean;
  endpoints: Endpoints;
  security: SecuritySummary;
  status: Record<string, unknown>;
  /** Set to 1 by the thread once its socket is closed after a `close-now`. */
  closed: SharedArrayBuffer;
}

/** One request the thread answered, for the server's request metrics: [daemon, command, user, seconds, code]. */
export type RecordedRequest = [string, string, string, number, string | undefined];

/** Messages from the scheduler's thread to the STATUS thread. */
export type ToStatusThread =
  | { t: "tick" }
  | { t: "endpoints"; endpoints: Endpoints }
  | { t: "status"; status: Record<string, unknown> }
  | { t: "users"; users: UserEntry[] }
  | { t: "security"; security: SecuritySummary }
  | { t: "stop"; graceMs: number }
  | { t: "close-now" };

/** Messages from the STATUS thread to the scheduler's thread. */
export type FromStatusThread =
  | { t: "listening"; port: number }
  | { t: "failed"; message: string }
  | { t: "request"; record: RecordedRequest; requests: number }
  | { t: "dropped"; daemon: string; count: number }
  | { t: "want-status"; requests: number }
  | { t: "shutdown"; user: string };

/** How often the scheduler's thread tells the STATUS thread it is alive. */
export const TICK_MS = 1000;
/** How long a process that exits waits for the STATUS thread to close its socket. */
const EXIT_CLOSE_MS = 1000;

export interface StatusThreadOptions {
  config: ServerConfig;
  token: string | null;
  users: UserEntry[] | null;
  curveSecretKey?: string;
  version: string;
  instance: string;
  metrics: RequestRecorder;
  log: Logger;
  /** The server's status now (runs on the scheduler's thread). */
  status(): Record<string, unknown>;
  endpoints(): Endpoints;
  security(): SecuritySummary;
  requestShutdown(user: string): void;
}

const ENTRY = new URL("./status-thread-main.js", import.meta.url);

/**
 * The STATUS daemon on a worker thread with its own ZeroMQ socket and event loop: `ruok` is answered
 * there at once however long the scheduler's loop is busy with a big submission or a store commit.
 * `getstatus` asks this (the scheduler's) thread for a fresh summary and answers with the last one it
 * got when none comes soon enough; the thread reports each request it answered to the server's
 * request metrics.
 *
 * zeromq.js aborts the whole process when a thread ends with a socket still open (zeromq.js issue
 * 411): the thread therefore outlives its own errors, and a process that exits while the thread runs
 * first has it close its socket (see `closeOnExit`).
 */
export class StatusThread implements Daemon {
  readonly name = "STATUS";
  private worker: Worker | null = null;
  private boundPort = 0;
  private requestCount = 0;
  private ticker: NodeJS.Timeout | null = null;
  private readonly closed = new SharedArrayBuffer(4);
  private readonly closeOnExit = (): void => {
    // An exit handler cannot wait for a message: block on the shared flag the thread sets.
    this.post({ t: "close-now" });
    Atomics.wait(new Int32Array(this.closed), 0, 0, EXIT_CLOSE_MS);
  };
  private exited: (() => void) | null = null;

  constructor(private readonly opts: StatusThreadOptions) {}

  get port(): number {
    return this.boundPort;
  }

  get requests(): number {
    return this.requestCount;
  }

  /** Starts the thread; resolves once its socket is bound, rejects with its bind error. */
  start(): Promise<void> {
    const init: StatusThreadInit = {
      config: this.opts.config,
      port: this.opts.config.statusPort,
      token: this.opts.token,
      users: this.opts.users,
      curveSecretKey: this.opts.curveSecretKey,
      version: this.opts.version,
      instance: this.opts.instance,
      authEnabled: this.opts.token !== null,
      endpoints: this.opts.endpoints(),
      security: this.opts.security(),
      status: this.opts.status(),
      closed: this.closed,
    };
    const worker = new Worker(ENTRY, { workerData: init });
    this.worker = worker;
    process.on("exit", this.closeOnExit);
    return new Promise((resolve, reject) => {
      worker.on("message", (m: FromStatusThread) => {
        if (m.t === "listening") {
          this.boundPort = m.port;
          this.ticker = setInterval(() => this.post({ t: "tick" }), TICK_MS).unref();
          resolve();
        } else if (m.t === "failed") {
          reject(new Error(m.message));
        } else {
          this.onMessage(m);
        }
      });
      worker.on("error", (err) => {
        this.opts.log.error({ err }, "the STATUS thread failed");
        reject(err);
      });
      worker.on("exit", (code) => {
        this.worker = null;
        process.off("exit", this.closeOnExit);
        if (this.ticker) clearInterval(this.ticker);
        if (this.exited) return this.exited();
        this.opts.log.error({ code, port: this.boundPort }, "the STATUS thread exited: its port is closed");
        reject(new Error(`the STATUS thread exited with code ${code}`));
      });
    });
  }

  /** Tells the thread every endpoint, once all sockets are bound (`getconfig`, `connect` show them). */
  announce(): void {
    this.post({ t: "endpoints", endpoints: this.opts.endpoints() });
  }

  /** The users file was read again: the thread checks tokens against these users from now on. */
  replaceUsers(users: UserEntry[]): void {
    this.post({ t: "users", users });
  }

  /** The users file or the allow-lists were read again: `getconfig` tells the new counts. */
  securityChanged(): void {
    this.post({ t: "security", security: this.opts.security() });
  }

  /** Lets the thread finish what it answers (up to `graceMs`), close its socket and end. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.worker) return;
    await new Promise<void>((resolve) => {
      this.exited = resolve;
      this.post({ t: "stop", graceMs });
    });
  }

  private onMessage(m: FromStatusThread): void {
    switch (m.t) {
      case "request": {
        const [daemon, cmd, user, seconds, code] = m.record;
        this.opts.metrics.record(daemon, cmd, user, seconds, code);
        this.requestCount = m.requests;
        break;
      }
      case "dropped":
        this.opts.metrics.dropped(m.daemon, m.count);
        break;
      case "want-status":
        this.requestCount = m.requests;
        this.post({ t: "status", status: this.opts.status() });
        break;
      case "shutdown":
        this.opts.requestShutdown(m.user);
        break;
    }
  }

  private post(m: ToStatusThread): void {
    this.worker?.postMessage(m);
  }
}
