import type { TaskOptions } from "../client/types.js";
import { pack } from "msgpackr";
import { encode } from "../protocol/codec.js";
import { ErrorCode, ZgridError } from "../protocol/errors.js";
import type { WireTask } from "../protocol/worker-messages.js";
import type { AgentChannel, AgentResponse } from "./agent-channel.js";
import type { AgentOp, ThreadApp } from "./executor-messages.js";

/** A result to create with {@link TaskAgent.createResults}: metadata only, or with its data. */
export interface NewResult {
  /** Default "". */
  name?: string;
  /** The data: the result is COMPLETED (once the task succeeds). Absent: CREATED, to be produced later. */
  data?: Uint8Array;
}

/** A result as {@link TaskAgent.createResults} created it. */
export interface CreatedResult {
  resultId: string;
  name: string;
  status: string;
}

/** Options of a child task (merged over the session's defaults by the server): the client's TaskOptions. */
export type ChildTaskOptions = TaskOptions;

/** A child task for {@link TaskAgent.submitTasks}. */
export interface ChildTask {
  /** An existing result holding the payload... */
  payloadId?: string;
  /** ...or the payload itself (the server creates a payload result for it). */
  payload?: Uint8Array;
  /**
   * CREATED results the child must produce: results this task created, or this task's own expected
   * outputs, which the child then takes over (delegation). Default: `outputCount` new results.
   */
  expectedOutputIds?: string[];
  /** New output results to create when `expectedOutputIds` is absent (default 1). */
  outputCount?: number;
  /** Results the child waits for: it is queued once they are all COMPLETED. */
  dataDependencies?: string[];
  taskOptions?: ChildTaskOptions;
}

/** A child task as submitted. */
export interface SubmittedTask {
  taskId: string;
  payloadId: string;
  expectedOutputIds: string[];
}

/** Options of {@link TaskAgent.submitCall}. */
export interface SubmitCallOptions {
  expectedOutputIds?: string[];
  outputCount?: number;
  dataDependencies?: string[];
  /** Merged over the calling task's application (name, version, namespace, service). */
  taskOptions?: ChildTaskOptions;
}

/**
 * What a running task knows about itself and can ask of the server: the fifth argument of `call`, and
 * `this.agent` in a {@link ServiceBase} method.
 *
 * Each method is a round trip to the server. What a task creates (results, data, child tasks) is kept
 * aside and committed only if the task succeeds; if it fails, or a retry runs, it vanishes. The agent
 * works only while its task runs: await every call before returning (a call made after the task ended
 * rejects; one left in flight when it ended is dropped and never settles).
 *
 * A call the server refuses rejects with a `ZgridError` whose `code` is the protocol's (INVALID_ARGUMENT,
 * NOT_FOUND, FAILED_PRECONDITION, ...); with TIMEOUT when no answer came within the worker's agent
 * timeout (default 60 s: the server is unreachable), UNAVAILABLE when the worker is stopping or the server
 * forgot this worker. Left uncaught, it fails the attempt (FAILED, retried while maxRetries allows).
 */
export interface TaskAgent {
  readonly taskId: string;
  readonly sessionId: string;
  /**
   * The results this task must produce: the value `call` returns completes the first one; each of them
   * may instead be uploaded ({@link uploadData}) or handed to a child ({@link submitTasks}). A task that
   * returns without producing all of them ends ERROR.
   */
  readonly expectedOutputIds: readonly string[];
  readonly dataDependencies: readonly string[];
  /** 1 for the first attempt, 2 for the first retry, ... */
  readonly attempt: number;

  /** Creates results in the task's session, with their data or metadata only. Same order as given. */
  createResults(results: NewResult[]): Promise<CreatedResult[]>;
  /** Gives data to a result this task created, or to one of its expected outputs. */
  uploadData(resultId: string, data: Uint8Array): Promise<void>;
  /** Submits child tasks in the task's session; `taskOptions` applies to all (each task's own win). */
  submitTasks(tasks: ChildTask[], taskOptions?: ChildTaskOptions): Promise<SubmittedTask[]>;
  /**
   * The data of COMPLETED results (typically this task's data dependencies), in the order asked; also
   * the data this task gave its own results. A single id gives a single Buffer.
   */
  getData(resultIds: string[]): Promise<Buffer[]>;
  getData(resultId: string): Promise<Buffer>;
  /**
   * Submits one child task calling `method` of a ServiceBase service with `args` (the standard payload
   * `{method, args: msgpack(args)}`), on the calling task's application unless `options.taskOptions`
   * names another.
   */
  submitCall(method: string, args?: unknown[], options?: SubmitCallOptions): Promise<SubmittedTask>;
}

/** The fields of a task the agent is built from (what an executor thread receives). */
export type AgentTaskFields = Pick<
  WireTask,
  "taskId" | "sessionId" | "expectedOutputIds" | "dataDependencies" | "attempt"
> & {
  /** The pool's number for the task (what the thread reports it by). */
  seq?: number;
  /** The task's application, inherited by {@link TaskAgent.submitCall}. */
  options?: ThreadApp;
};

/** A task's agent, as the executor thread holds it: {@link close} it when the task ends. */
export interface ClosableTaskAgent extends TaskAgent {
  /** The task ended: later calls reject; calls still in flight are dropped. */
  close(): void;
}

/**
 * Builds the agent of one task. Without a channel (a service tested in process), the agent's calls
 * reject with UNAVAILABLE.
 */
export function createAgent(task: AgentTaskFields, channel?: AgentChannel): ClosableTaskAgent {
  return new RunningTaskAgent(task, channel);
}

class RunningTaskAgent implements ClosableTaskAgent {
  readonly taskId: string;
  readonly sessionId: string;
  readonly expectedOutputIds: readonly string[];
  readonly dataDependencies: readonly string[];
  readonly attempt: number;
  #seq: number;
  #app: ThreadApp | undefined;
  #channel: AgentChannel | undefined;
  #closed = false;

  constructor(task: AgentTaskFields, channel: AgentChannel | undefined) {
    this.taskId = task.taskId;
    this.sessionId = task.sessionId;
    this.expectedOutputIds = task.expectedOutputIds;
    this.dataDependencies = task.dataDependencies;
    this.attempt = task.attempt;
    this.#seq = task.seq ?? 0;
    this.#app = task.options;
    this.#channel = channel;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#channel?.forget(this.#seq);
  }

  async createResults(results: NewResult[]): Promise<CreatedResult[]> {
    if (!Array.isArray(results)) throw invalid("createResults takes a list of {name?, data?}");
    const blobs: Uint8Array[] = [];
    const items = results.map((r, i) => {
      if (!isObject(r)) throw invalid(`createResults: results[${i}] must be an object {name?, data?}`);
      if (r.name !== undefined && typeof r.name !== "string")
        throw invalid(`createResults: results[${i}].name must be a string`);
      const item: { name: string; data?: number } = { name: r.name ?? "" };
      if (r.data !== undefined && r.data !== null) {
        if (!(r.data instanceof Uint8Array))
          throw invalid(`createResults: results[${i}].data must be a Uint8Array (a Buffer)`);
        item.data = blobs.length;
        blobs.push(r.data);
      }
      return item;
    });
    const { msg } = await this.#call("createResults", { results: items }, blobs);
    return msg as CreatedResult[];
  }

  async uploadData(resultId: string, data: Uint8Array): Promise<void> {
    if (typeof resultId !== "string") throw invalid("uploadData: resultId must be a string");
    if (!(data instanceof Uint8Array)) throw invalid("uploadData: data must be a Uint8Array (a Buffer)");
    await this.#call("uploadData", { resultId }, [data]);
  }

  async submitTasks(tasks: ChildTask[], taskOptions?: ChildTaskOptions): Promise<SubmittedTask[]> {
    if (!Array.isArray(tasks)) throw invalid("submitTasks takes a list of tasks");
    const blobs: Uint8Array[] = [];
    const items = tasks.map((t, i) => {
      if (!isObject(t)) throw invalid(`submitTasks: tasks[${i}] must be an object`);
      const item: Record<string, unknown> = {};
      if (t.payloadId !== undefined) {
        item.payloadId = t.payloadId;
      } else if (t.payload instanceof Uint8Array) {
        item.payload = blobs.length;
        blobs.push(t.payload);
      } else {
        throw invalid(`submitTasks: tasks[${i}] needs a payloadId or a payload (a Uint8Array)`);
      }
      if (t.expectedOutputIds !== undefined) item.expectedOutputIds = t.expectedOutputIds;
      if (t.outputCount !== undefined) item.outputCount = t.outputCount;
      if (t.dataDependencies !== undefined) item.dataDependencies = t.dataDependencies;
      if (t.taskOptions !== undefined) item.taskOptions = t.taskOptions;
      return item;
    });
    const args: Record<string, unknown> = { tasks: items };
    if (taskOptions !== undefined) args.taskOptions = taskOptions;
    const { msg } = await this.#call("submitTasks", args, blobs);
    return msg as SubmittedTask[];
  }

  getData(resultIds: string[]): Promise<Buffer[]>;
  getData(resultId: string): Promise<Buffer>;
  async getData(ids: string | string[]): Promise<Buffer | Buffer[]> {
    const single = typeof ids === "string";
    const resultIds = single ? [ids] : ids;
    if (!Array.isArray(resultIds) || !resultIds.every((id) => typeof id === "string"))
      throw invalid("getData takes a result id or a list of result ids");
    const { blobs } = await this.#call("getData", { resultIds });
    if (blobs.length !== resultIds.length) {
      throw new ZgridError(
        ErrorCode.INTERNAL,
        `getData asked for ${resultIds.length} results and the server sent ${blobs.length} blobs`,
      );
    }
    return single ? blobs[0] : blobs;
  }

  async submitCall(
    method: string,
    args: unknown[] = [],
    options: SubmitCallOptions = {},
  ): Promise<SubmittedTask> {
    if (typeof method !== "string" || method === "") throw invalid("submitCall: method must be a name");
    const app = this.#app;
    const taskOptions: ChildTaskOptions = {};
    if (app?.applicationName !== undefined) taskOptions.applicationName = app.applicationName;
    if (app?.applicationVersion !== undefined) taskOptions.applicationVersion = app.applicationVersion;
    if (app?.applicationNamespace !== undefined) taskOptions.applicationNamespace = app.applicationNamespace;
    if (app?.applicationService !== undefined) taskOptions.applicationService = app.applicationService;
    const [submitted] = await this.submitTasks([
      {
        payload: encode({ method, args: pack(args) }),
        expectedOutputIds: options.expectedOutputIds,
        outputCount: options.outputCount,
        dataDependencies: options.dataDependencies,
        taskOptions: { ...taskOptions, ...options.taskOptions },
      },
    ]);
    return submitted;
  }

  #call(op: AgentOp, args: Record<string, unknown>, blobs?: Uint8Array[]): Promise<AgentResponse> {
    if (this.#closed) {
      return Promise.reject(
        new ZgridError(
          ErrorCode.FAILED_PRECONDITION,
          `agent.${op}: task ${this.taskId} has ended, its agent can no longer be used ` +
            "(await agent calls before the task returns)",
        ),
      );
    }
    if (!this.#channel) {
      return Promise.reject(
        new ZgridError(ErrorCode.UNAVAILABLE, `agent.${op}: this agent is not connected to a server`),
      );
    }
    return this.#channel.call(this.#seq, this.taskId, op, args, blobs);
  }
}

function invalid(message: string): ZgridError {
  return new ZgridError(ErrorCode.INVALID_ARGUMENT, message);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
