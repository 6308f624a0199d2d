import type { Logger } from "pino";
import { encode } from "../protocol/codec.js";
import { ErrorCode, ZgridError } from "../protocol/errors.js";
import { ZgridClient } from "./client.js";
import { loadClientConfig, type LoadClientConfigOptions } from "./config.js";
import type { ConnectOptions } from "./connection.js";
import type { TaskOptions } from "./types.js";

/** A CurveZMQ key pair, Z85-encoded (40 characters each). */
export interface CurveKeyPair {
  publicKey: string;
  secretKey: string;
}

/** Where and how to connect (seed 000's configuration); {@link loadClientConfig} reads it. */
export interface ClientConfiguration {
  /** The server URL, tcp://HOST:PORT?token=TOKEN. */
  endpoint: string;
  /** The server token; overrides the one in the URL. */
  token?: string;
  /** Per-request timeout in milliseconds (default 30,000). */
  timeoutMs?: number;
  /** Reported to the server as the user of each request (default: the OS user). */
  user?: string;
  /** The server's CurveZMQ public key (Z85); overrides the URL's `serverKey` (a server with `--curve`). */
  curveServerKey?: string;
  /** This client's CurveZMQ key pair (default: a new one); `--curve-clients` must list its public key. */
  curveKeyPair?: CurveKeyPair;
}

/** A SessionService's properties: the configuration and the session's default task options. */
export interface Properties {
  configuration: ClientConfiguration;
  taskOptions: TaskOptions;
}

/** One task of {@link SessionService.submit}: a method, its serialized arguments, its data dependencies. */
export interface TaskRequest {
  /** The name of the method the worker's service runs. */
  method: string;
  /** The method's arguments, serialized (for ServiceBase applications: msgpackr `pack([...args])`). */
  args: Uint8Array;
  /** Results that must be COMPLETED before the task runs (default none). */
  dataDependencies?: string[];
}

/**
 * Receives each task's outcome, exactly once per task (seed 000's `IServiceInvocationHandler`). An
 * exception a handler throws is logged and does not stop {@link SessionService.waitResults}.
 */
export interface ServiceInvocationHandler {
  /** The task succeeded: `data` is what its method returned, serialized (msgpack for ServiceBase). */
  handleResponse(data: Buffer, taskId: string): void | Promise<void>;
  /** The task ended ERROR, TIMEOUT or CANCELLED (its result was aborted): a {@link TaskFailedError}. */
  handleError(error: Error, taskId: string): void | Promise<void>;
}

/**
 * When {@link SessionService.waitResults} returns; flags, combine with `|`
 * (`WaitBehavior.All | WaitBehavior.BreakOnError`).
 */
export const WaitBehavior = {
  /** Every task waited on has its outcome. */
  All: 1,
  /** At least one task waited on has its outcome. With no task ids, the same as All. */
  Any: 2,
  /** Return as soon as a task waited on has failed (its result aborted). */
  BreakOnError: 4,
} as const;
export type WaitBehavior = number;

/** Options of {@link SessionService.waitResults}. */
export interface WaitResultsOptions {
  /**
   * Give up after this many milliseconds (0 or absent: no limit), rejecting with a
   * {@link ZgridError} `TIMEOUT`; the outcomes that arrived meanwhile have been handled. There is no
   * polling interval: the server tells the client when results settle.
   */
  timeoutMs?: number;
}

/** Given to {@link ServiceInvocationHandler.handleError} for a task whose result was aborted. */
export class TaskFailedError extends Error {
  override readonly name = "TaskFailedError";
  constructor(
    /** The task that failed. */
    readonly taskId: string,
    /** Its status: ERROR, TIMEOUT, CANCELLED, CANCELLING (or the result's, DELETED). */
    readonly status: string,
    message: string,
  ) {
    super(message);
  }
}

interface Tracked {
  outputId: string;
  handler: ServiceInvocationHandler;
  handled: boolean;
  failed: boolean;
}

/** Tasks per tasks.submit request, and results per results.wait request of an All wait. */
const SUBMIT_BATCH = 10_000;
const WAIT_CHUNK = 10_000;

/**
 * The high-level client of ArmoniK's SDK (seed 000): one session, created on first use with the
 * default task options of its {@link Properties}; tasks submitted as method calls; each task's outcome
 * delivered to the handler it was submitted with, exactly once, by {@link SessionService.waitResults}.
 *
 * @example
 * import { pack, unpack } from "msgpackr";
 * const service = SessionService.fromConfig({ overrides: { applicationName: "addition" } }); // ZGRID_URL
 * const ids = await service.submit([{ method: "add", args: pack([1, 2]) }], {
 *   handleResponse: (data, taskId) => console.log(taskId, unpack(data)), // 3
 *   handleError: (err, taskId) => console.error(taskId, err.message),
 * });
 * await service.waitResults(); // every task of this service
 * await service.cleanup(); // cancels the session, closes the connection
 */
export class SessionService {
  /** The connection, for anything else (results, events, listings). */
  readonly client: ZgridClient;
  private sessionPromise: Promise<string> | null = null;
  private readonly tracked = new Map<string, Tracked>();
  private readonly log?: Logger;

  /**
   * Connects (lazily: nothing is sent before the first call). `properties.taskOptions` become the
   * session's defaults; `logger` (pino) gets the session's life and handler failures.
   */
  constructor(
    private readonly properties: Properties,
    logger?: Logger,
  ) {
    const c = properties.configuration;
    const options: ConnectOptions = {
      token: c.token,
      timeoutMs: c.timeoutMs,
      user: c.user,
      serverKey: c.curveServerKey,
      curveKeyPair: c.curveKeyPair,
    };
    this.client = new ZgridClient(c.endpoint, options);
    this.log = logger;
  }

  /**
   * A SessionService configured by {@link loadClientConfig}: a JSON file, the environment
   * (`ZGRID_URL`, `ZGRID_TOKEN`, `ZGRID_APPLICATION_NAME`, ...), then `overrides`.
   *
   * @example
   * const service = SessionService.fromConfig({ file: "client.json", overrides: { priority: 5 } });
   */
  static fromConfig(options: LoadClientConfigOptions = {}, logger?: Logger): SessionService {
    return new SessionService(loadClientConfig(options), logger);
  }

  /** The session's id, creating the session on first use with the default task options. */
  getSessionId(): Promise<string> {
    this.sessionPromise ??= this.client.createSession(this.properties.taskOptions).then(
      (id) => {
        this.log?.info({ sessionId: id }, "session created");
        return id;
      },
      (err: unknown) => {
        this.sessionPromise = null; // let a later call try again
        throw err;
      },
    );
    return this.sessionPromise;
  }

  /**
   * Submits the requests as tasks of this session (in batches); returns their ids, in order. Each task's
   * outcome goes to `handler`, once, during a {@link waitResults}.
   */
  async submit(requests: TaskRequest[], handler: ServiceInvocationHandler): Promise<string[]> {
    requests.forEach((r, i) => {
      if (typeof r?.method !== "string" || r.method === "")
        throw new ZgridError(ErrorCode.INVALID_ARGUMENT, `request ${i} has no method name`);
      if (!(r.args instanceof Uint8Array))
        throw new ZgridError(
          ErrorCode.INVALID_ARGUMENT,
          `request ${i} (${r.method}): args must be the serialized arguments, a Uint8Array (msgpackr pack([...]))`,
        );
    });
    const sessionId = await this.getSessionId();
    const ids: string[] = [];
    for (let from = 0; from < requests.length; from += SUBMIT_BATCH) {
      const submitted = await this.client.submitTasks(
        sessionId,
        requests.slice(from, from + SUBMIT_BATCH).map((r) => ({
          payload: encode({ method: r.method, args: r.args }),
          dataDependencies: r.dataDependencies,
        })),
      );
      for (const t of submitted) {
        this.tracked.set(t.taskId, {
          outputId: t.expectedOutputIds[0],
          handler,
          handled: false,
          failed: false,
        });
        ids.push(t.taskId);
      }
    }
    this.log?.debug({ sessionId, tasks: ids.length }, "tasks submitted");
    return ids;
  }

  /**
   * Waits for tasks of this service and calls their handlers, each task's once (seed 000's
   * `WaitResults`).
   *
   * - `taskIds` empty (the default): every task submitted by this service; All and Any then mean the
   *   same. Other tasks of the service that finish meanwhile may be handled too.
   * - `All`: returns when every task waited on has had its handler called.
   * - `Any`: returns as soon as one of them has (at once if one already had).
   * - `BreakOnError`: also returns as soon as one of them has failed (at once if one already had).
   *
   * @throws ZgridError `INVALID_ARGUMENT` for an id this service did not submit, `TIMEOUT` when
   * `options.timeoutMs` passes first.
   */
  async waitResults(
    taskIds: string[] = [],
    behavior: WaitBehavior = WaitBehavior.All,
    options: WaitResultsOptions = {},
  ): Promise<void> {
    const breakOnError = (behavior & WaitBehavior.BreakOnError) !== 0;
    const any =
      taskIds.length > 0 && (behavior & WaitBehavior.Any) !== 0 && (behavior & WaitBehavior.All) === 0;
    const ids = taskIds.length > 0 ? [...new Set(taskIds)] : [...this.tracked.keys()];
    for (const id of ids) {
      if (!this.tracked.has(id))
        throw new ZgridError(
          ErrorCode.INVALID_ARGUMENT,
          `task ${id} was not submitted by this SessionService`,
        );
    }
    const timeoutMs = options.timeoutMs ?? 0;
    const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : 0;
    const done = () => ids.some((id) => this.tracked.get(id)!.handled);
    if (breakOnError && ids.some((id) => this.tracked.get(id)!.failed)) return;
    if (any && done()) return;
    for (;;) {
      const pending = ids.filter((id) => !this.tracked.get(id)!.handled);
      if (pending.length === 0) return;
      // Any watches every pending task in one request; All goes through them a chunk at a time.
      const watched = any ? pending : pending.slice(0, WAIT_CHUNK);
      const left = deadline ? deadline - Date.now() : 0;
      if (deadline && left <= 0) throw this.timedOut(timeoutMs, ids);
      const r = await this.client.waitResultsData(
        watched.map((id) => this.tracked.get(id)!.outputId),
        { behavior: any ? "any" : "all", breakOnError, timeoutMs: deadline ? left : 0 },
      );
      let failed = false;
      for (const id of watched) {
        const t = this.tracked.get(id)!;
        const status = r.statuses[t.outputId];
        if (status === "COMPLETED") {
          await this.deliver(id, t, r.data.get(t.outputId) ?? Buffer.alloc(0), status);
        } else if (status === "ABORTED" || status === "DELETED") {
          await this.deliver(id, t, null, status);
          failed = true;
        }
      }
      if (breakOnError && failed) return;
      if (any && done()) return;
      if (r.timedOut) throw this.timedOut(timeoutMs, ids);
    }
  }

  private timedOut(timeoutMs: number, ids: string[]): ZgridError {
    const left = ids.filter((id) => !this.tracked.get(id)!.handled).length;
    return new ZgridError(
      ErrorCode.TIMEOUT,
      `waitResults timed out after ${timeoutMs} ms with ${left} of ${ids.length} task(s) still running`,
    );
  }

  private async deliver(
    taskId: string,
    t: Tracked,
    data: Buffer | null,
    resultStatus: string,
  ): Promise<void> {
    if (t.handled) return;
    t.handled = true;
    t.failed = data === null;
    try {
      if (data !== null) {
        await t.handler.handleResponse(data, taskId);
        return;
      }
      const task = await this.client.getTask(taskId).catch(() => null);
      const status = task?.status ?? resultStatus;
      await t.handler.handleError(
        new TaskFailedError(taskId, status, task?.error ?? `task ${taskId} ended ${status}`),
        taskId,
      );
    } catch (err) {
      this.log?.error({ err, taskId }, "result handler threw");
    }
  }

  /** Closes the connection. The session stays on the server; {@link cleanup} cancels it first. */
  async close(): Promise<void> {
    await this.client.close();
  }

  /**
   * Cancels the session (its unfinished tasks are cancelled, running ones stopped), then closes the
   * connection. A session that can no longer be cancelled (already cancelled, purged) is left as it is.
   */
  async cleanup(): Promise<void> {
    try {
      const id = this.sessionPromise ? await this.sessionPromise.catch(() => null) : null;
      if (id) {
        await this.client.cancelSession(id).then(
          (r) => this.log?.info({ sessionId: id, cancelled: r.cancelled }, "session cancelled"),
          (err: unknown) => this.log?.warn({ err, sessionId: id }, "the session could not be cancelled"),
        );
      }
    } finally {
      await this.close();
    }
  }
}
