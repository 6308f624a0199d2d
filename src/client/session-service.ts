import type { Logger } from "pino";
import { encode } from "../protocol/codec.js";
import { ZgridClient } from "./client.js";
import type { ConnectOptions } from "./connection.js";
import type { TaskOptions } from "./types.js";

/** Where and how to connect (seed 000's configuration). */
export interface ClientConfiguration {
  /** The server URL, tcp://HOST:PORT?token=TOKEN. */
  endpoint: string;
  token?: string;
  /** Per-request timeout in milliseconds. */
  timeoutMs?: number;
  user?: string;
}

/** A SessionService's properties: the configuration and the session's default task options. */
export interface Properties {
  configuration: ClientConfiguration;
  taskOptions: TaskOptions;
}

/** One task of {@link SessionService.submit}: a method, its serialized arguments, its data dependencies. */
export interface TaskRequest {
  method: string;
  /** The method's arguments, serialized (for ServiceBase applications: msgpackr `pack([...args])`). */
  args: Uint8Array;
  dataDependencies?: string[];
}

/** Receives each task's outcome, exactly once per task. */
export interface ServiceInvocationHandler {
  handleResponse(data: Buffer, taskId: string): void | Promise<void>;
  handleError(error: Error, taskId: string): void | Promise<void>;
}

/** When {@link SessionService.waitResults} returns; flags, combine with `|`. */
export const WaitBehavior = {
  /** Every task waited on has its outcome. */
  All: 1,
  /** At least one task waited on has its outcome. */
  Any: 2,
  /** Return as soon as a task of this service has failed (its result aborted). */
  BreakOnError: 4,
} as const;
export type WaitBehavior = number;

export interface WaitResultsOptions {
  /** Give up after this many milliseconds (0: no limit). */
  timeoutMs?: number;
}

/** Raised to a handler for a task whose result was aborted. */
export class TaskFailedError extends Error {
  override readonly name = "TaskFailedError";
  constructor(
    readonly taskId: string,
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
}

/**
 * The high-level client of ArmoniK's SDK (seed 000): one session, tasks submitted as method calls,
 * outcomes delivered to handlers.
 *
 * @example
 * const service = new SessionService({ configuration: { endpoint: url }, taskOptions: { applicationName: "hello" } });
 * const [id] = await service.submit([{ method: "sum", args: pack([[1, 2, 3]]) }], {
 *   handleResponse: (data, taskId) => console.log(taskId, unpack(data)),
 *   handleError: (err, taskId) => console.error(taskId, err.message),
 * });
 * await service.waitResults();
 * await service.close();
 */
export class SessionService {
  readonly client: ZgridClient;
  private sessionPromise: Promise<string> | null = null;
  private readonly tracked = new Map<string, Tracked>();
  private readonly log?: Logger;

  constructor(
    private readonly properties: Properties,
    logger?: Logger,
  ) {
    const c = properties.configuration;
    const options: ConnectOptions = { token: c.token, timeoutMs: c.timeoutMs, user: c.user };
    this.client = new ZgridClient(c.endpoint, options);
    this.log = logger;
  }

  /** The session's id, creating the session on first use with the default task options. */
  getSessionId(): Promise<string> {
    this.sessionPromise ??= this.client.createSession(this.properties.taskOptions).then((id) => {
      this.log?.info({ sessionId: id }, "session created");
      return id;
    });
    return this.sessionPromise;
  }

  /** Submits the requests as tasks of this session; returns their ids, in order. */
  async submit(requests: TaskRequest[], handler: ServiceInvocationHandler): Promise<string[]> {
    const sessionId = await this.getSessionId();
    const submitted = await this.client.submitTasks(
      sessionId,
      requests.map((r) => ({
        payload: encode({ method: r.method, args: r.args }),
        dataDependencies: r.dataDependencies,
      })),
    );
    for (const t of submitted)
      this.tracked.set(t.taskId, { outputId: t.expectedOutputIds[0], handler, handled: false });
    this.log?.debug({ sessionId, tasks: submitted.length }, "tasks submitted");
    return submitted.map((t) => t.taskId);
  }

  /**
   * Waits for tasks of this service and calls their handlers (once per task). With no ids, waits for
   * every task submitted by this service, and All and Any mean the same. With BreakOnError, returns as
   * soon as one of the tasks waited on has failed.
   */
  async waitResults(
    taskIds: string[] = [],
    behavior: WaitBehavior = WaitBehavior.All,
    options: WaitResultsOptions = {},
  ): Promise<void> {
    const breakOnError = (behavior & WaitBehavior.BreakOnError) !== 0;
    const any =
      taskIds.length > 0 && (behavior & WaitBehavior.Any) !== 0 && (behavior & WaitBehavior.All) === 0;
    const ids = taskIds.length > 0 ? taskIds : [...this.tracked.keys()];
    for (const id of ids) {
      if (!this.tracked.has(id)) throw new Error(`task ${id} was not submitted by this SessionService`);
    }
    const deadline = options.timeoutMs ? Date.now() + options.timeoutMs : 0;
    if (any && ids.some((id) => this.tracked.get(id)!.handled)) return;
    for (;;) {
      const pending = ids.filter((id) => !this.tracked.get(id)!.handled);
      if (pending.length === 0) return;
      const watched = pending;
      const timeoutMs = deadline ? Math.max(1, deadline - Date.now()) : 0;
      const outputs = watched.map((id) => this.tracked.get(id)!.outputId);
      const r = await this.client.waitResultsData(outputs, {
        behavior: any ? "any" : "all",
        breakOnError,
        timeoutMs,
      });
      let aborted = false;
      for (const id of watched) {
        const t = this.tracked.get(id)!;
        const status = r.statuses[t.outputId];
        if (status === "COMPLETED") {
          await this.deliver(id, t, r.data.get(t.outputId) ?? Buffer.alloc(0));
        } else if (status === "ABORTED" || status === "DELETED") {
          await this.deliver(id, t, null);
          aborted = true;
        }
      }
      if (r.timedOut) throw new Error(`waitResults timed out after ${options.timeoutMs} ms`);
      if (breakOnError && aborted) return;
      if (any && ids.some((id) => this.tracked.get(id)!.handled)) return;
    }
  }

  private async deliver(taskId: string, t: Tracked, data: Buffer | null): Promise<void> {
    if (t.handled) return;
    t.handled = true;
    try {
      if (data !== null) {
        await t.handler.handleResponse(data, taskId);
        return;
      }
      const task = await this.client.getTask(taskId).catch(() => null);
      const status = task?.status ?? "ERROR";
      await t.handler.handleError(
        new TaskFailedError(taskId, status, task?.error ?? `task ${taskId} ended ${status}`),
        taskId,
      );
    } catch (err) {
      this.log?.error({ err, taskId }, "result handler threw");
    }
  }

  /** Closes the connection. The session stays on the server; `cleanup()` cancels it first. */
  async close(): Promise<void> {
    await this.client.close();
  }

  /** Cancels the session where the server supports it, then closes. */
  async cleanup(): Promise<void> {
    if (this.sessionPromise) {
      const id = await this.sessionPromise;
      await this.client.call("sessions.cancel", { sessionId: id }).catch(() => undefined);
    }
    await this.close();
  }
}
