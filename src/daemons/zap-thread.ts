import { Worker } from "node:worker_threads";
import type { Logger } from "../log.js";

/** The ZAP domain of the client daemons (DEFAULT, METRICS, STATUS) and of the worker endpoint. */
export const ZAP_CLIENTS = "clients";
export const ZAP_WORKERS = "workers";

/** The public keys let in, per ZAP domain; null: any key (the token still applies). */
export interface AllowLists {
  clients: string[] | null;
  workers: string[] | null;
}

/** What the ZAP thread starts from. */
export interface ZapThreadInit {
  lists: AllowLists;
  logLevel: string;
  /** Set to 1 by the thread once its socket is closed after a `close-now`. */
  closed: SharedArrayBuffer;
}

export type ToZapThread = { t: "lists"; lists: AllowLists } | { t: "stop" } | { t: "close-now" };
export type FromZapThread = { t: "listening" } | { t: "failed"; message: string };

const ENTRY = new URL("./zap-thread-main.js", import.meta.url);
/** How long a process that exits waits for the thread to close its socket. */
const EXIT_CLOSE_MS = 1000;

/**
 * The ZAP handler (ZeroMQ RFC 27) on a thread of its own: every CurveZMQ handshake on any socket of the
 * process asks it whether the peer's public key may in. On its own thread, a busy scheduler never holds
 * up a handshake with the STATUS daemon. The sockets set `zapEnforceDomain`, so a handshake with no
 * handler to ask fails: closed, never open.
 */
export class ZapThread {
  private worker: Worker | null = null;
  private readonly closed = new SharedArrayBuffer(4);
  private exited: (() => void) | null = null;
  private readonly closeOnExit = (): void => {
    // zeromq.js aborts the process when a thread ends with a socket open (zeromq.js issue 411).
    this.worker?.postMessage({ t: "close-now" } satisfies ToZapThread);
    Atomics.wait(new Int32Array(this.closed), 0, 0, EXIT_CLOSE_MS);
  };

  constructor(
    private lists: AllowLists,
    private readonly log: Logger,
    private readonly logLevel: string,
  ) {}

  /** Starts the thread; resolves once the handler is bound. */
  start(): Promise<void> {
    const init: ZapThreadInit = { lists: this.lists, logLevel: this.logLevel, closed: this.closed };
    const worker = new Worker(ENTRY, { workerData: init });
    this.worker = worker;
    process.on("exit", this.closeOnExit);
    return new Promise((resolve, reject) => {
      worker.on("message", (m: FromZapThread) => {
        if (m.t === "listening") resolve();
        else
          reject(
            new Error(
              `the CurveZMQ authentication handler cannot start: ${m.message}` +
                (/in use/i.test(m.message) ? " (one process runs one --curve server at most)" : ""),
            ),
          );
      });
      worker.on("error", (err) => {
        this.log.error({ err }, "the ZAP thread failed");
        reject(err);
      });
      worker.on("exit", (code) => {
        this.worker = null;
        process.off("exit", this.closeOnExit);
        if (this.exited) return this.exited();
        // The sockets enforce the domain: every new Curve connection is refused from now on.
        this.log.error({ code }, "the ZAP thread exited: new CurveZMQ connections are refused");
        reject(new Error(`the ZAP thread exited with code ${code}`));
      });
    });
  }

  /** Replaces the allow-lists (SIGHUP): connections made from now on are judged by them. */
  setLists(lists: AllowLists): void {
    this.lists = lists;
    this.worker?.postMessage({ t: "lists", lists } satisfies ToZapThread);
  }

  /** Closes the handler's socket and ends the thread (after every socket that asks it is closed). */
  async stop(): Promise<void> {
    if (!this.worker) return;
    await new Promise<void>((resolve) => {
      this.exited = resolve;
      this.worker!.postMessage({ t: "stop" } satisfies ToZapThread);
    });
  }
}
