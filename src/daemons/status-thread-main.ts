/**
 * The STATUS thread's entry point (see StatusThread): a StatusDaemon on its own socket and event loop,
 * fed by the scheduler's thread through messages.
 */
import { parentPort, workerData, type MessagePort } from "node:worker_threads";
import type { BuiltinsContext } from "../commands/builtins.js";
import { createLogger } from "../log.js";
import { TokenCheck } from "./auth.js";
import { UserDirectory } from "./users.js";
import type { Endpoints } from "./context.js";
import type { RequestRecorder } from "./daemon.js";
import { StatusDaemon, type StatusDaemonSource } from "./status-daemon.js";
import type { FromStatusThread, StatusThreadInit, ToStatusThread } from "./status-thread.js";

/** How long `getstatus` waits for a fresh summary before it answers with the last one. */
const FRESH_WAIT_MS = 250;
/** How long a `ruok` that finds the scheduler's thread silent waits for it to speak. */
const LIVENESS_WAIT_MS = 100;

/**
 * Hands each answered request to the scheduler's thread at once: STATUS requests are few, and a metrics
 * reader right after a `ruok` sees it counted.
 */
class MetricsRelay implements RequestRecorder {
  constructor(
    private readonly port: MessagePort,
    private readonly requests: () => number,
  ) {}

  dropped(daemon: string, count: number): void {
    send(this.port, { t: "dropped", daemon, count });
  }

  record(daemon: string, command: string, user: string, seconds: number, errorCode?: string): void {
    send(this.port, {
      t: "request",
      record: [daemon, command, user, seconds, errorCode],
      requests: this.requests(),
    });
  }
}

/** The scheduler's thread as the STATUS daemon sees it: its last status, and whether it still speaks. */
class SchedulerLink implements StatusDaemonSource {
  private last: Record<string, unknown>;
  private lastAt = performance.now();
  private heardAt = performance.now();
  private asked = false;
  private waiting: (() => void)[] = [];

  constructor(
    private readonly port: MessagePort,
    private readonly requests: () => number,
    status: Record<string, unknown>,
    /** Silence of the scheduler's thread after which `ruok` stops answering imok (it ticks every second). */
    private readonly livenessMs: number,
  ) {
    this.last = status;
  }

  /** Any message from the scheduler's thread shows its loop turns. */
  heard(): void {
    this.heardAt = performance.now();
  }

  received(status: Record<string, unknown>): void {
    this.last = status;
    this.lastAt = performance.now();
    this.asked = false;
    const waiting = this.waiting;
    this.waiting = [];
    for (const wake of waiting) wake();
  }

  async status(): Promise<Record<string, unknown>> {
    await this.ask(FRESH_WAIT_MS);
    const startedAt = Date.parse(String(this.last.startedAt));
    return {
      ...this.last,
      uptimeSeconds: (Date.now() - startedAt) / 1000,
      // 0 when the scheduler answered now; else how old the summary is (its loop is busy).
      statusAgeMs: Math.round(performance.now() - this.lastAt),
    };
  }

  async stalled(): Promise<string | null> {
    if (performance.now() - this.heardAt < this.livenessMs) return null;
    // Ticks can lag behind a loop that has just come free: ask once before calling it stuck.
    await this.ask(LIVENESS_WAIT_MS);
    const silentMs = performance.now() - this.heardAt;
    if (silentMs < this.livenessMs) return null;
    return `the scheduler's event loop has not answered for ${Math.round(silentMs / 1000)} s`;
  }

  /** Asks the scheduler's thread for its status; resolves when it comes or after `waitMs`. */
  private ask(waitMs: number): Promise<void> {
    if (!this.asked) {
      send(this.port, { t: "want-status", requests: this.requests() });
      this.asked = true;
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, waitMs);
      this.waiting.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

function send(port: MessagePort, m: FromStatusThread): void {
  port.postMessage(m);
}

async function main(port: MessagePort, init: StatusThreadInit): Promise<void> {
  const log = createLogger(init.config.logLevel).child({ thread: "status" });
  let endpoints: Endpoints = init.endpoints;
  let security = init.security;
  const requests = (): number => daemon.requests;
  const relay = new MetricsRelay(port, requests);
  const users = init.users === null ? null : new UserDirectory(init.users);
  const daemon = new StatusDaemon({
    host: init.config.host,
    port: init.port,
    auth: new TokenCheck(init.token, users),
    curveSecretKey: init.curveSecretKey,
    maxFrameBytes: init.config.maxFrameBytes,
    metrics: relay,
    log,
  });
  const link = new SchedulerLink(port, requests, init.status, init.config.livenessMs);
  const server: BuiltinsContext = {
    config: init.config,
    version: init.version,
    instance: init.instance,
    authEnabled: init.authEnabled,
    endpoints: () => ({ ...endpoints, statusPort: daemon.port }),
    security: () => security,
    requestShutdown: (user) => send(port, { t: "shutdown", user }),
  };
  daemon.registerCommands(server, link);

  // An error of this thread must not end it: an ending thread with an open socket aborts the process.
  process.on("uncaughtException", (err) => log.error({ err }, "STATUS thread error (it keeps serving)"));
  process.on("unhandledRejection", (err) => log.error({ err }, "STATUS thread error (it keeps serving)"));

  port.on("message", (m: ToStatusThread) => {
    link.heard();
    switch (m.t) {
      case "tick":
        break;
      case "endpoints":
        endpoints = m.endpoints;
        break;
      case "status":
        link.received(m.status);
        break;
      case "users":
        users?.replace(m.users);
        break;
      case "security":
        security = m.security;
        break;
      case "close-now": {
        // The process is exiting and the scheduler's thread waits on the flag: close synchronously.
        daemon.closeNow();
        const flag = new Int32Array(init.closed);
        Atomics.store(flag, 0, 1);
        Atomics.notify(flag, 0);
        break;
      }
      case "stop":
        void daemon.stop(m.graceMs).then(() => {
          log.flush?.();
          port.close();
        });
        break;
    }
  });

  try {
    await daemon.start();
  } catch (err) {
    send(port, { t: "failed", message: (err as Error).message });
    port.close();
    return;
  }
  send(port, { t: "listening", port: daemon.port });
}

await main(parentPort!, workerData as StatusThreadInit);
