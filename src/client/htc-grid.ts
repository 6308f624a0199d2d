import { ErrorCode, ZgridError } from "../protocol/errors.js";
import { ZgridClient } from "./client.js";
import { DEFAULT_SESSION_TASK_OPTIONS } from "./config.js";
import { decodeOutput, encodePayload } from "./payload.js";
import type { TaskInfo, TaskOptions } from "./types.js";

/**
 * The configuration of an {@link HtcGridConnector}: HTC-Grid's `client_config_data` (seed 003), with
 * the keys that mean something on zgrid. The AWS-only keys (`grid_storage_service`, `s3_bucket`,
 * `redis_url`, `public_api_gateway_url`, `private_api_gateway_url`, `api_gateway_key`, `user_pool_id`,
 * `cognito_userpool_client_id`, `username`, `password`, `task_input_passed_via_external_storage`,
 * `region`, ...) and any other key are accepted and ignored, so an HTC-Grid config file can be passed
 * as it is.
 */
export interface HtcGridConfig {
  /** The server URL, `tcp://HOST:PORT?token=TOKEN`; default: `grid_url`, else `ZGRID_URL`. */
  endpoint?: string;
  /** Same as `endpoint`. */
  grid_url?: string;
  /** The server token; default: the URL's, else `ZGRID_TOKEN`, else `~/.zgrid/tokens.txt`. */
  token?: string;
  /** The application the tasks run (a module `NAME.js` on the workers); default "htcgrid". */
  application_name?: string;
  application_version?: string;
  application_namespace?: string;
  application_service?: string;
  /** The method of the application's ServiceBase each task calls with its object; default "run". */
  method?: string;
  /** Partition the tasks run in (default: the server's "default"). */
  partition_id?: string;
  /** Default 1; higher runs first. */
  priority?: number;
  /** Default 2. An error the application raises as `ApplicationError` is not retried. */
  max_retries?: number;
  /** Seconds a task may run before it ends TIMEOUT (default: no limit). */
  task_timeout_sec?: number;
  /**
   * HTC-Grid's polling period. zgrid needs no polling (the server answers when results settle); here it
   * is the longest a single wait request of {@link HtcGridConnector.getResults} lasts (default 10 s).
   */
  dynamodb_results_pull_interval_sec?: number;
  /** Per-request timeout of the connection, in milliseconds (default 30,000). */
  request_timeout_ms?: number;
  /** Reported to the server as the user. */
  user?: string;
  [key: string]: unknown;
}

/** What {@link HtcGridConnector.send} returns: the submission's session, its task ids in order. */
export interface SubmissionResponse {
  session_id: string;
  task_ids: string[];
}

/**
 * What {@link HtcGridConnector.getResults} returns: the tasks that reached a final state, by outcome,
 * in the order of the submission, each with its output (`*_OUTPUT[i]` belongs to `*[i]`).
 */
export interface HtcGridResults {
  finished: string[];
  /** What each finished task's method returned, decoded (JSON-like values). */
  finished_OUTPUT: unknown[];
  failed: string[];
  /** The error of each failed task (ERROR or TIMEOUT). */
  failed_OUTPUT: string[];
  cancelled: string[];
  /** Why each task was cancelled. */
  cancelled_OUTPUT: string[];
  metadata: { tasks_in_response: number };
}

/** What {@link HtcGridConnector.cancelSessions} returns per session: tasks cancelled, by their previous state. */
export interface HtcGridCancelCounts {
  /** Were PENDING (waiting for data), SUBMITTED (queued) or PAUSED. */
  cancelled_pending: number;
  /** Were DISPATCHED or PROCESSING on a worker (which is told to stop them). */
  cancelled_processing: number;
  /** Were RETRIED (queued for another attempt). */
  cancelled_retrying: number;
  total_cancelled_tasks: number;
}

const IGNORED_NOTE = "AWS-only keys are ignored";
const FINAL_CANCELLED = new Set(["CANCELLED", "CANCELLING"]);
const DOWNLOAD_CHUNK = 1_000;
const SUBMIT_BATCH = 10_000;
const LOOKUP_CONCURRENCY = 64;

function bad(message: string): never {
  throw new ZgridError(ErrorCode.INVALID_ARGUMENT, message);
}

function optString(config: HtcGridConfig, key: string): string | undefined {
  const v = config[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string" || v === "") bad(`HtcGridConnector: ${key} must be a non-empty string`);
  return v;
}

function optNumber(config: HtcGridConfig, key: string, min: number, integer: boolean): number | undefined {
  const v = config[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v)))
    bad(
      `HtcGridConnector: ${key} must be ${integer ? "an integer" : "a number"} ≥ ${min}, not ${JSON.stringify(v)}`,
    );
  return v;
}

/** Maps sessions.cancel's counts by previous status to HTC-Grid's shape. */
function cancelCounts(cancelled: Record<string, number>): HtcGridCancelCounts {
  const out = {
    cancelled_pending: 0,
    cancelled_processing: 0,
    cancelled_retrying: 0,
    total_cancelled_tasks: 0,
  };
  for (const [status, n] of Object.entries(cancelled)) {
    if (status === "PENDING" || status === "SUBMITTED" || status === "PAUSED") out.cancelled_pending += n;
    else if (status === "DISPATCHED" || status === "PROCESSING") out.cancelled_processing += n;
    else if (status === "RETRIED") out.cancelled_retrying += n;
    out.total_cancelled_tasks += n;
  }
  return out;
}

/**
 * HTC-Grid's client API (seed 003, `AWSConnector`) on zgrid: send lists of JSON objects to an
 * application, get their outputs back by outcome, cancel sessions. Each {@link send} creates a session;
 * each object becomes a task calling the application's `run` method (configurable) with the object,
 * the standard ServiceBase payload `encodePayload(method, [object])`; the method's return value is the
 * task's output.
 *
 * Differences from HTC-Grid: there is no Data Plane to read (outputs are returned by
 * {@link getResults}, not `read_from_REDIS` placeholders); authentication is the server token
 * (`username` / `password`, Cognito and `INTRA_VPC` do not apply); results are not polled
 * (`dynamodb_results_pull_interval_sec` only bounds each wait request). Call {@link close} when done.
 *
 * @example
 * const grid = new HtcGridConnector({ grid_url: "tcp://127.0.0.1:5555?token=...", application_name: "htcgrid" });
 * await grid.authenticate();
 * const submission = await grid.send([{ values: [1, 2] }, { values: [3] }]);
 * const results = await grid.getResults(submission, 60);
 * console.log(results.finished, results.finished_OUTPUT, results.metadata.tasks_in_response);
 * await grid.close();
 */
export class HtcGridConnector {
  /** The connection, for anything beyond HTC-Grid's API. */
  readonly client: ZgridClient;
  /** The method each task calls. */
  readonly method: string;
  private readonly taskOptions: TaskOptions;
  private readonly pullIntervalMs: number;
  private readonly outputs = new Map<string, string>();

  /**
   * Checks the configuration and opens the connection (nothing is sent yet). Unknown keys are ignored
   * ({@link HtcGridConfig}); a malformed known one is a {@link ZgridError} `INVALID_ARGUMENT`.
   */
  constructor(config: HtcGridConfig = {}) {
    if (!config || typeof config !== "object" || Array.isArray(config))
      bad("HtcGridConnector takes a config object (client_config_data)");
    const url =
      optString(config, "endpoint") ?? optString(config, "grid_url") ?? (process.env.ZGRID_URL || undefined);
    if (!url)
      bad(
        `HtcGridConnector: no server URL: set "endpoint" (or "grid_url") in the config, or ZGRID_URL (${IGNORED_NOTE})`,
      );
    const token = optString(config, "token");
    const applicationName = optString(config, "application_name") ?? "htcgrid";
    this.method = optString(config, "method") ?? "run";
    const timeoutSec = optNumber(config, "task_timeout_sec", 0, false);
    const pull = optNumber(config, "dynamodb_results_pull_interval_sec", 0, false);
    this.pullIntervalMs = pull && pull > 0 ? Math.max(1, Math.round(pull * 1000)) : 10_000;
    this.taskOptions = {
      ...DEFAULT_SESSION_TASK_OPTIONS,
      applicationName,
      applicationVersion: optString(config, "application_version"),
      applicationNamespace: optString(config, "application_namespace"),
      applicationService: optString(config, "application_service"),
      partitionId: optString(config, "partition_id"),
      priority: optNumber(config, "priority", 0, true) ?? DEFAULT_SESSION_TASK_OPTIONS.priority,
      maxRetries: optNumber(config, "max_retries", 0, true) ?? DEFAULT_SESSION_TASK_OPTIONS.maxRetries,
      maxDuration: timeoutSec !== undefined ? Math.round(timeoutSec * 1000) : undefined,
    };
    for (const k of Object.keys(this.taskOptions) as (keyof TaskOptions)[])
      if (this.taskOptions[k] === undefined) delete this.taskOptions[k];
    this.client = new ZgridClient(url, {
      token: token ?? (urlHasToken(url) ? undefined : process.env.ZGRID_TOKEN || undefined),
      timeoutMs: optNumber(config, "request_timeout_ms", 1, true),
      user: optString(config, "user"),
    });
  }

  /**
   * Checks that the server is reachable and accepts the token (a `connect` round trip). HTC-Grid's
   * Cognito login has no equivalent: the token is the credential.
   *
   * @throws ZgridError `UNAUTHENTICATED` for a wrong token, `TIMEOUT` when the server does not answer.
   */
  async authenticate(): Promise<void> {
    await this.client.hello();
  }

  /**
   * Sends tasks: creates a session, then one task per object of `tasksList` (each must survive
   * `JSON.stringify`; it is passed to the method as that JSON value).
   *
   * @returns `{ session_id, task_ids }`, the task ids in the order of `tasksList`.
   */
  async send(tasksList: unknown[]): Promise<SubmissionResponse> {
    if (!Array.isArray(tasksList) || tasksList.length === 0)
      bad("send takes a non-empty list of JSON-serialisable tasks");
    const payloads = tasksList.map((task, i) => {
      let json: string | undefined;
      try {
        json = JSON.stringify(task);
      } catch (err) {
        bad(`task ${i} is not JSON-serialisable: ${(err as Error).message}`);
      }
      if (json === undefined) bad(`task ${i} is not JSON-serialisable (${typeof task})`);
      return encodePayload(this.method, [JSON.parse(json)]);
    });
    const sessionId = await this.client.createSession(this.taskOptions);
    const taskIds: string[] = [];
    for (let from = 0; from < payloads.length; from += SUBMIT_BATCH) {
      const submitted = await this.client.submitTasks(
        sessionId,
        payloads.slice(from, from + SUBMIT_BATCH).map((payload) => ({ payload })),
      );
      for (const t of submitted) {
        this.outputs.set(t.taskId, t.expectedOutputIds[0]);
        taskIds.push(t.taskId);
      }
    }
    return { session_id: sessionId, task_ids: taskIds };
  }

  /**
   * Waits until every task of the submission has reached a final state or `timeoutSec` seconds have
   * passed (0: look once, do not wait), then returns the tasks that did, by outcome, with their outputs:
   * COMPLETED → `finished` / `finished_OUTPUT` (decoded return values); ERROR, TIMEOUT → `failed` /
   * `failed_OUTPUT` (error texts); CANCELLED → `cancelled` / `cancelled_OUTPUT`. Tasks still running are
   * absent. It may be called again on the same submission.
   */
  async getResults(submissionResponse: SubmissionResponse, timeoutSec: number): Promise<HtcGridResults> {
    const taskIds = submissionResponse?.task_ids;
    if (!Array.isArray(taskIds) || taskIds.some((id) => typeof id !== "string"))
      bad("getResults takes the response of send(): { session_id, task_ids }");
    if (typeof timeoutSec !== "number" || !(timeoutSec >= 0))
      bad(`timeoutSec must be a number ≥ 0, not ${JSON.stringify(timeoutSec)}`);
    const out: HtcGridResults = {
      finished: [],
      finished_OUTPUT: [],
      failed: [],
      failed_OUTPUT: [],
      cancelled: [],
      cancelled_OUTPUT: [],
      metadata: { tasks_in_response: 0 },
    };
    if (taskIds.length === 0) return out;
    const outputIds = await this.outputIdsOf(taskIds);

    const deadline = Date.now() + timeoutSec * 1000;
    let statuses: Record<string, string> = {};
    for (;;) {
      const slice = Math.max(1, Math.min(this.pullIntervalMs, deadline - Date.now()));
      const r = await this.client.waitResults(outputIds, { behavior: "all", timeoutMs: slice });
      statuses = r.statuses;
      if (!r.timedOut || Date.now() >= deadline) break;
    }

    const completed = outputIds.filter((id) => statuses[id] === "COMPLETED");
    const data = new Map<string, Buffer>();
    for (let from = 0; from < completed.length; from += DOWNLOAD_CHUNK) {
      const ids = completed.slice(from, from + DOWNLOAD_CHUNK);
      const blobs = await this.client.downloadResults(ids);
      ids.forEach((id, i) => data.set(id, blobs[i]));
    }
    const abortedTasks = taskIds.filter((_, i) => {
      const s = statuses[outputIds[i]];
      return s === "ABORTED" || s === "DELETED";
    });
    const info = new Map<string, TaskInfo | null>();
    for (let from = 0; from < abortedTasks.length; from += LOOKUP_CONCURRENCY) {
      const ids = abortedTasks.slice(from, from + LOOKUP_CONCURRENCY);
      const got = await Promise.all(ids.map((id) => this.client.getTask(id).catch(() => null)));
      ids.forEach((id, i) => info.set(id, got[i]));
    }

    taskIds.forEach((taskId, i) => {
      const status = statuses[outputIds[i]];
      if (status === "COMPLETED") {
        out.finished.push(taskId);
        out.finished_OUTPUT.push(decodeOutput(data.get(outputIds[i]) ?? Buffer.alloc(0)));
      } else if (status === "ABORTED" || status === "DELETED") {
        const task = info.get(taskId);
        const taskStatus = task?.status ?? "ERROR";
        const text = task?.error ?? `task ${taskId} ended ${taskStatus}`;
        if (FINAL_CANCELLED.has(taskStatus)) {
          out.cancelled.push(taskId);
          out.cancelled_OUTPUT.push(text);
        } else {
          out.failed.push(taskId);
          out.failed_OUTPUT.push(text);
        }
      }
    });
    out.metadata.tasks_in_response = out.finished.length + out.failed.length + out.cancelled.length;
    return out;
  }

  /**
   * Cancels sessions: their unfinished tasks are cancelled (running ones are stopped on their workers and
   * not retried) and their results aborted. Every session is tried; if one fails (unknown, already
   * cancelled), a {@link ZgridError} naming each failure is thrown after the others were cancelled.
   *
   * @returns per session id, how many tasks were cancelled, by the state they were in.
   */
  async cancelSessions(sessionIds: string[]): Promise<Record<string, HtcGridCancelCounts>> {
    if (!Array.isArray(sessionIds) || sessionIds.some((id) => typeof id !== "string"))
      bad("cancelSessions takes a list of session ids");
    const out: Record<string, HtcGridCancelCounts> = {};
    const errors: { id: string; err: ZgridError | Error }[] = [];
    for (const id of sessionIds) {
      try {
        out[id] = cancelCounts((await this.client.cancelSession(id)).cancelled);
      } catch (err) {
        errors.push({ id, err: err as Error });
      }
    }
    if (errors.length > 0) {
      const first = errors[0].err;
      throw new ZgridError(
        first instanceof ZgridError ? first.code : ErrorCode.INTERNAL,
        `could not cancel ${errors.map((e) => `session ${e.id} (${e.err.message})`).join("; ")}` +
          (Object.keys(out).length > 0 ? `; cancelled ${Object.keys(out).join(", ")}` : ""),
      );
    }
    return out;
  }

  /** Alias of {@link getResults}, HTC-Grid's Python name. */
  get_results(submissionResponse: SubmissionResponse, timeoutSec: number): Promise<HtcGridResults> {
    return this.getResults(submissionResponse, timeoutSec);
  }

  /** Alias of {@link cancelSessions}, HTC-Grid's Python name. */
  cancel_sessions(sessionIds: string[]): Promise<Record<string, HtcGridCancelCounts>> {
    return this.cancelSessions(sessionIds);
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    await this.client.close();
  }

  /** The output result of each task: remembered from send(), else asked of the server. */
  private async outputIdsOf(taskIds: string[]): Promise<string[]> {
    const missing = taskIds.filter((id) => !this.outputs.has(id));
    for (let from = 0; from < missing.length; from += LOOKUP_CONCURRENCY) {
      const ids = missing.slice(from, from + LOOKUP_CONCURRENCY);
      const got = await Promise.all(ids.map((id) => this.client.getTask(id)));
      got.forEach((t) => this.outputs.set(t.taskId, t.expectedOutputIds[0]));
    }
    return taskIds.map((id) => this.outputs.get(id)!);
  }
}

function urlHasToken(url: string): boolean {
  return /[?&]token=/.test(url);
}
