import { randomUUID } from "node:crypto";
import { ErrorCode, ZgridError } from "../protocol/errors.js";
import { Connection, type ConnectOptions } from "./connection.js";
import type {
  CreatedResult,
  CurrentUser,
  Filter,
  ListQuery,
  Page,
  ResultInfo,
  SessionEvent,
  SessionInfo,
  Subscription,
  ResultStatus,
  SubmittedTask,
  TaskDefinition,
  TaskInfo,
  TaskOptions,
  TaskStatus,
  WaitOptions,
  WaitResult,
  WorkerInfo,
} from "./types.js";

/** Slack added to a results.wait request's timeout so the server answers before the client gives up. */
const WAIT_SLACK_MS = 5_000;
/** How often a client holding subscriptions checks that the server did not restart (see subscribe). */
const SUBSCRIPTION_CHECK_MS = 2_000;

/** A subscription as the client keeps it, renewed on a new server instance. */
interface LiveSubscription {
  listenId: number;
  subscriptionId: string;
  instance: string;
  open: boolean;
  renew: (() => Promise<void>) | null;
}

/** A wait longer than this goes to the server in rounds of this length (see waitResults). */
const WAIT_ROUND_MS = 10_000;

/**
 * The typed zgrid client: one DEALER connection to a daemon, a method per command (design §3.4, §4).
 * Get one with {@link connect}.
 */
export class ZgridClient extends Connection {
  private readonly subscriptions = new Set<LiveSubscription>();
  private instanceTimer: NodeJS.Timeout | null = null;
  private checking = false;

  // ---- built-ins -----------------------------------------------------------------------------------

  /** `connect`: a sentence naming the server and the user. */
  hello(): Promise<string> {
    return this.call<string>("connect");
  }
  /** `disconnect`: a sentence; nothing is torn down (call {@link close} to close the socket). */
  disconnect(): Promise<string> {
    return this.call<string>("disconnect");
  }
  /** `"imok"` when the daemon is alive. */
  ruok(): Promise<string> {
    return this.call<string>("ruok");
  }
  /** `noop`: answers `"noop"`, touching nothing (latency probes). */
  noop(): Promise<string> {
    return this.call<string>("noop");
  }
  /** `getconfig`: version, host, ports, daemons, store, auth, limits (`maxFrameBytes`, `maxBatch`). */
  getConfig(): Promise<Record<string, unknown>> {
    return this.call("getconfig");
  }
  /** `getCmdMap`: every command this daemon answers → the module that registered it. */
  getCmdMap(): Promise<Record<string, string>> {
    return this.call("getCmdMap");
  }
  /** `getmemused`: the server's resident memory, in bytes. */
  getMemUsed(): Promise<number> {
    return this.call<number>("getmemused");
  }
  /** `getmemstatus`: the server's memory figures (rss, heap, external, ...), in bytes. */
  getMemStatus(): Promise<Record<string, number>> {
    return this.call("getmemstatus");
  }
  /** STATUS daemon: uptime, daemons, version, request counts, scheduler summary. */
  getStatus(): Promise<Record<string, unknown>> {
    return this.call("getstatus");
  }
  /** METRICS daemon: Arkouda-style metrics of one category (default ALL). */
  metrics(category = "ALL"): Promise<Record<string, unknown>[]> {
    return this.call("metrics", { category });
  }
  /** METRICS daemon: the Prometheus text exposition. */
  prometheus(): Promise<string> {
    return this.call<string>("prometheus");
  }
  /**
   * `auth.currentUser`: this client's user, role and the commands the role grants (ArmoniK's
   * GetCurrentUser). Without a users file on the server, the token is an admin's.
   */
  currentUser(): Promise<CurrentUser> {
    return this.call<CurrentUser>("auth.currentUser");
  }
  /** Asks the server to shut down gracefully. */
  shutdown(): Promise<string> {
    return this.call<string>("shutdown");
  }

  // ---- sessions ------------------------------------------------------------------------------------

  /**
   * `sessions.create`: a new RUNNING session whose tasks default to `defaultTaskOptions`; with
   * `partitionIds`, its tasks may only run in those partitions. Returns the session id.
   */
  async createSession(defaultTaskOptions?: TaskOptions, partitionIds?: string[]): Promise<string> {
    const r = await this.call<{ sessionId: string }>("sessions.create", { defaultTaskOptions, partitionIds });
    return r.sessionId;
  }
  /** `sessions.get`: a session's status, defaults, partitions and task count. */
  getSession(sessionId: string): Promise<SessionInfo> {
    return this.call("sessions.get", { sessionId });
  }
  /** `sessions.list`: a page of sessions, filtered and sorted on any field of theirs (docs/protocol.md). */
  listSessions(query: ListQuery = {}): Promise<Page<SessionInfo>> {
    return this.call("sessions.list", { ...query });
  }

  /**
   * `sessions.cancel`: cancels the session's unfinished tasks (running ones are stopped on their
   * workers) and aborts its results. `cancelled` counts the tasks by the status they had.
   */
  cancelSession(
    sessionId: string,
  ): Promise<{ sessionId: string; status: string; cancelled: Record<string, number> }> {
    return this.call("sessions.cancel", { sessionId });
  }
  /** `sessions.pause`: queued tasks are held (PAUSED) until {@link resumeSession}; running ones finish. */
  pauseSession(sessionId: string): Promise<unknown> {
    return this.call("sessions.pause", { sessionId });
  }
  /** `sessions.resume`: PAUSED tasks are queued again. */
  resumeSession(sessionId: string): Promise<unknown> {
    return this.call("sessions.resume", { sessionId });
  }
  /** `sessions.close`: no new tasks; those submitted run to their end. */
  closeSession(sessionId: string): Promise<unknown> {
    return this.call("sessions.close", { sessionId });
  }
  /**
   * `sessions.stopSubmission` (ArmoniK's StopSubmission): `client` stops submissions from clients,
   * `worker` stops running tasks submitting child tasks; with neither, both stop. Answers the session.
   */
  stopSubmission(
    sessionId: string,
    which: { client?: boolean; worker?: boolean } = {},
  ): Promise<SessionInfo> {
    return this.call("sessions.stopSubmission", { sessionId, ...which });
  }
  /** `sessions.purge`: deletes the data of a CLOSED or CANCELLED session's results. */
  purgeSession(sessionId: string): Promise<{ purgedResults: number }> {
    return this.call("sessions.purge", { sessionId });
  }
  /** `sessions.delete`: removes the session, its tasks and results entirely. */
  deleteSession(sessionId: string): Promise<unknown> {
    return this.call("sessions.delete", { sessionId });
  }

  // ---- events --------------------------------------------------------------------------------------

  /**
   * Streams a session's events to `onEvent`: first what already exists (newTask, newResult), then live
   * updates, with no gap. Returns a handle whose `close()` unsubscribes. A subscription outlives a
   * restart of the server: the client checks the server's instance every SUBSCRIPTION_CHECK_MS while it
   * holds subscriptions, and subscribes again on a new one; `onEvent` then sees the session as it is
   * (newTask, newResult for what exists) before the live updates go on.
   */
  async subscribe(
    sessionId: string,
    onEvent: (event: SessionEvent) => void,
    options: {
      eventTypes?: SessionEvent["type"][];
      filters?: { taskIds?: string[]; resultIds?: string[]; statuses?: string[] };
    } = {},
  ): Promise<Subscription> {
    const sub: LiveSubscription = { listenId: 0, subscriptionId: "", instance: "", open: true, renew: null };
    sub.renew = async () => {
      const id = this.peekNextId();
      const reply = await this.call<{ subscriptionId: string; instance?: string }>(
        "events.subscribe",
        { sessionId, eventTypes: options.eventTypes, filters: options.filters },
        undefined,
        { onEvent: onEvent as (e: unknown) => void },
      );
      if (sub.listenId !== 0) this.unlisten(sub.listenId);
      sub.listenId = id;
      sub.subscriptionId = reply.subscriptionId;
      sub.instance = reply.instance ?? "";
    };
    await sub.renew();
    this.subscriptions.add(sub);
    this.watchInstance();
    return {
      get subscriptionId() {
        return sub.subscriptionId;
      },
      close: async () => {
        sub.open = false;
        this.subscriptions.delete(sub);
        this.unlisten(sub.listenId);
        await this.call("events.unsubscribe", { subscriptionId: sub.subscriptionId });
      },
    };
  }

  override async close(): Promise<void> {
    if (this.instanceTimer) clearInterval(this.instanceTimer);
    this.instanceTimer = null;
    this.subscriptions.clear();
    await super.close();
  }

  /** While subscriptions are open: notices a new server instance and subscribes them again. */
  private watchInstance(): void {
    if (this.instanceTimer) return;
    this.instanceTimer = setInterval(() => {
      if (this.subscriptions.size === 0) {
        clearInterval(this.instanceTimer!);
        this.instanceTimer = null;
        return;
      }
      if (this.checking) return;
      this.checking = true;
      void this.call<{ instance?: string }>("getconfig", {}, undefined, { timeoutMs: SUBSCRIPTION_CHECK_MS })
        .then(async ({ instance }) => {
          for (const sub of [...this.subscriptions]) {
            if (!sub.open || instance === undefined || sub.instance === instance) continue;
            await sub.renew!().catch(() => {}); // tried again at the next check
          }
        })
        .catch(() => {}) // the server is down: checked again later
        .finally(() => (this.checking = false));
    }, SUBSCRIPTION_CHECK_MS);
    this.instanceTimer.unref();
  }

  // ---- admin ---------------------------------------------------------------------------------------

  /** `partitions.list`: each partition's queue length, workers and slots. */
  listPartitions(): Promise<Page<{ partitionId: string; queued: number; workers: number; slots: number }>> {
    return this.call("partitions.list");
  }
  /** `applications.list`: the applications tasks have named, with their task counts. */
  listApplications(): Promise<Page<{ applicationName: string; applicationVersion: string; tasks: number }>> {
    return this.call("applications.list");
  }
  /** `workers.list`: the connected worker hosts. */
  listWorkers(): Promise<Page<WorkerInfo>> {
    return this.call("workers.list");
  }
  /** `health`: HEALTHY, DEGRADED (e.g. queued tasks no worker serves) or UNHEALTHY, with each check. */
  health(): Promise<{ status: "HEALTHY" | "DEGRADED" | "UNHEALTHY"; checks: Record<string, string> }> {
    return this.call("health");
  }

  // ---- results -------------------------------------------------------------------------------------

  /** Creates results: metadata only, or with data (uploaded in the same request). */
  createResults(
    sessionId: string,
    results: { name?: string; data?: Uint8Array }[],
  ): Promise<CreatedResult[]> {
    const blobs: Buffer[] = [];
    const items = results.map((r) => {
      if (r.data === undefined) return { name: r.name ?? "" };
      blobs.push(Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength));
      return { name: r.name ?? "", data: blobs.length - 1 };
    });
    return this.call("results.create", { sessionId, results: items }, blobs);
  }
  /** Uploads the data of a CREATED result (a payload uploaded after its task was submitted, say). */
  uploadResult(
    resultId: string,
    data: Uint8Array,
  ): Promise<{ resultId: string; status: string; size: number }> {
    return this.call("results.upload", { resultId }, [
      Buffer.from(data.buffer, data.byteOffset, data.byteLength),
    ]);
  }
  /** `results.download`: the data of a COMPLETED result. */
  async downloadResult(resultId: string): Promise<Buffer> {
    const r = await this.request("results.download", { resultId });
    return r.blobs[0] ?? Buffer.alloc(0);
  }
  /** `results.download` of several results in one request; the data in the order of `resultIds`. */
  async downloadResults(resultIds: string[]): Promise<Buffer[]> {
    return (await this.request("results.download", { resultIds })).blobs;
  }
  /**
   * `results.deleteData` (ArmoniK's DeleteResultsData): deletes the data of COMPLETED results; they stay,
   * DELETED. Returns the ids whose data was deleted now.
   */
  async deleteResultsData(resultIds: string[]): Promise<string[]> {
    return (await this.call<{ resultIds: string[] }>("results.deleteData", { resultIds })).resultIds;
  }
  /** `results.get`: a result's status, owner task, size. */
  getResult(resultId: string): Promise<ResultInfo> {
    return this.call("results.get", { resultId });
  }
  /** `results.list`: a page of results, filtered and sorted on any field of theirs (docs/protocol.md). */
  listResults(query: ListQuery = {}): Promise<Page<ResultInfo>> {
    return this.call("results.list", { ...query });
  }
  /**
   * Waits, without polling, until the results are COMPLETED or ABORTED as `options` asks. The wait goes
   * to the server in rounds of at most WAIT_ROUND_MS: a round that gets no answer (the server restarted,
   * and forgot it) is asked again, so a wait never hangs across a restart.
   */
  waitResults(resultIds: string[], options: WaitOptions = {}): Promise<WaitResult> {
    return this.inRounds(options.timeoutMs ?? 0, (roundMs) =>
      this.call<WaitResult>(
        "results.wait",
        {
          resultIds,
          behavior: options.behavior ?? "all",
          breakOnError: options.breakOnError ?? false,
          timeoutMs: roundMs,
        },
        undefined,
        { timeoutMs: roundMs + WAIT_SLACK_MS },
      ),
    );
  }
  /** Like waitResults, and returns the data of every COMPLETED result in the same reply. */
  async waitResultsData(
    resultIds: string[],
    options: WaitOptions = {},
  ): Promise<WaitResult & { data: Map<string, Buffer> }> {
    // Asked as columns: one status list and the data back to back, not a map entry and a frame per
    // result. A server that does not know `columns` answers with the maps, which are read as well.
    const reply = await this.inRounds(options.timeoutMs ?? 0, async (roundMs) => {
      const r = await this.request<
        | { timedOut: boolean; statuses: ResultStatus[]; sizes: number[] }
        | (WaitResult & { data: Record<string, number> })
      >(
        "results.wait",
        {
          resultIds,
          behavior: options.behavior ?? "all",
          breakOnError: options.breakOnError ?? false,
          timeoutMs: roundMs,
          withData: true,
          columns: true,
        },
        undefined,
        { timeoutMs: roundMs + WAIT_SLACK_MS },
      );
      return { timedOut: r.msg.timedOut, reply: r };
    });
    const msg = reply.reply.msg;
    const blobs = reply.reply.blobs;
    const data = new Map<string, Buffer>();
    if (!Array.isArray(msg.statuses)) {
      const maps = msg as WaitResult & { data: Record<string, number> };
      for (const [id, index] of Object.entries(maps.data)) data.set(id, blobs[index]);
      return { timedOut: maps.timedOut, statuses: maps.statuses, data };
    }
    const { sizes } = msg as { sizes: number[] };
    const all = blobs.length === 1 ? blobs[0] : Buffer.concat(blobs);
    let at = 0;
    for (let i = 0; i < resultIds.length; i++) {
      const size = sizes[i];
      if (size >= 0) {
        data.set(resultIds[i], all.subarray(at, at + size));
        at += size;
      }
    }
    return withLazyStatuses({ timedOut: msg.timedOut, data }, resultIds, msg.statuses);
  }

  /**
   * Runs a long poll in rounds until it is answered without `timedOut`, or `timeoutMs` (0: no limit)
   * has passed. A round that gets no reply at all is asked again while time is left.
   */
  private async inRounds<R extends { timedOut: boolean }>(
    timeoutMs: number,
    ask: (roundMs: number) => Promise<R>,
  ): Promise<R> {
    const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
    for (;;) {
      const roundMs = Math.max(1, Math.min(WAIT_ROUND_MS, deadline - Date.now()));
      try {
        const r = await ask(roundMs);
        if (!r.timedOut || Date.now() >= deadline) return r;
      } catch (err) {
        const lost = err instanceof ZgridError && err.code === ErrorCode.TIMEOUT;
        if (!lost || Date.now() >= deadline) throw err;
      }
    }
  }

  // ---- tasks ---------------------------------------------------------------------------------------

  /**
   * `tasks.submit`: a batch of tasks in one request (at most the server's `maxBatch`, 100,000 by
   * default). Each task gets its payload inline (`payload`, sent once per distinct buffer) or as an
   * existing result (`payloadId`), and one new output result unless `expectedOutputIds` are given.
   * `taskOptions` apply to the whole batch, over the session's defaults, under each task's own.
   * `requestKey` (a random one by default) names the submission: sent again with the same key within
   * 10 minutes, it gets the first answer and creates nothing. Pass your own to retry safely after a
   * TIMEOUT; a request the server reads after this client gave up on it is refused anyway.
   */
  async submitTasks(
    sessionId: string,
    tasks: TaskDefinition[],
    taskOptions?: TaskOptions,
    { requestKey = randomUUID() }: { requestKey?: string } = {},
  ): Promise<SubmittedTask[]> {
    const blobs: Buffer[] = [];
    const blobOf = new Map<Uint8Array, number>();
    const items = tasks.map((t) => {
      const { payload, ...rest } = t;
      if (payload === undefined) return rest;
      let index = blobOf.get(payload);
      if (index === undefined) {
        index = blobs.length;
        blobs.push(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength));
        blobOf.set(payload, index);
      }
      return { ...rest, payload: index };
    });
    // Asked as columns (no map per task in the reply); a server that does not know `columns` answers
    // with the maps, which are read as well.
    const reply = await this.call<
      SubmittedTask[] | { taskIds: string[]; payloadIds: string[]; outputCounts: number[]; outputs: string[] }
    >("tasks.submit", { sessionId, taskOptions, tasks: items, requestKey, columns: true }, blobs);
    if (Array.isArray(reply)) return reply;
    const { taskIds, payloadIds, outputCounts, outputs } = reply;
    const submitted: SubmittedTask[] = new Array(taskIds.length);
    let at = 0;
    for (let i = 0; i < taskIds.length; i++) {
      const count = outputCounts[i];
      submitted[i] = {
        taskId: taskIds[i],
        payloadId: payloadIds[i],
        expectedOutputIds: outputs.slice(at, at + count),
      };
      at += count;
    }
    return submitted;
  }
  /** Cancels tasks, running ones included; returns counts by the status they had. */
  cancelTasks(taskIds: string[]): Promise<{ cancelled: Record<string, number> }> {
    return this.call("tasks.cancel", { taskIds });
  }
  /**
   * `tasks.cancel {filter}`: cancels the unfinished tasks a filter matches (at least one condition), at
   * most 100,000 a call: `more` says some are left, call again.
   */
  cancelTasksWhere(
    filter: Filter | Record<string, unknown>,
  ): Promise<{ cancelled: Record<string, number>; more: boolean }> {
    return this.call("tasks.cancel", { filter });
  }
  /** `tasks.getResultIds` (ArmoniK's GetResultIds): each task's expected outputs, in one request. */
  async getResultIds(taskIds: string[]): Promise<Record<string, string[]>> {
    return (await this.call<{ resultIds: Record<string, string[]> }>("tasks.getResultIds", { taskIds }))
      .resultIds;
  }
  /** `results.getOwnerTaskId` (ArmoniK's GetOwnerTaskId): the task due to produce each result, or null. */
  async getOwnerTaskIds(resultIds: string[]): Promise<Record<string, string | null>> {
    return (
      await this.call<{ owners: Record<string, string | null> }>("results.getOwnerTaskId", { resultIds })
    ).owners;
  }
  /** `tasks.get`: a task's status, options, times, error and attempts. */
  getTask(taskId: string): Promise<TaskInfo> {
    return this.call("tasks.get", { taskId });
  }
  /**
   * `tasks.list`: a page of tasks, filtered on their fields, options and the user's own options, sorted
   * on any of them (docs/protocol.md, "Filters"; {@link parseFilterText} reads the CLI's short form).
   */
  listTasks(query: ListQuery = {}): Promise<Page<TaskInfo>> {
    return this.call("tasks.list", { ...query });
  }
  /** `tasks.count`: how many tasks in each status, with the same filters as {@link listTasks}. */
  countTasks(filter?: Filter | Record<string, unknown>): Promise<Record<TaskStatus, number>> {
    return this.call("tasks.count", { filter });
  }
}

/**
 * `result` with `statuses` ({resultId: status}) built from the columns when first read: an object of
 * 10,000 result ids as keys costs about a microsecond a key, and a caller that takes the data often
 * never reads it. It reads and assigns as a plain property.
 */
function withLazyStatuses<T extends object>(
  result: T,
  resultIds: readonly string[],
  column: readonly ResultStatus[],
): T & { statuses: Record<string, ResultStatus> } {
  let statuses: Record<string, ResultStatus> | undefined;
  return Object.defineProperty(result, "statuses", {
    enumerable: true,
    configurable: true,
    get() {
      if (statuses === undefined) {
        statuses = {};
        for (let i = 0; i < resultIds.length; i++) statuses[resultIds[i]] = column[i];
      }
      return statuses;
    },
    set(value: Record<string, ResultStatus>) {
      statuses = value;
    },
  }) as T & { statuses: Record<string, ResultStatus> };
}

/**
 * Connects to a zgrid daemon. `url` is `tcp://HOST:PORT?token=TOKEN` (default: `ZGRID_URL`); without a
 * token, `~/.zgrid/tokens.txt` is read.
 *
 * @example
 * const client = await connect("tcp://127.0.0.1:5555?token=...");
 * console.log(await client.ruok()); // "imok"
 * await client.close();
 */
export async function connect(url?: string, options?: ConnectOptions): Promise<ZgridClient> {
  const target = url ?? process.env.ZGRID_URL;
  if (!target) {
    const { ZgridError, ErrorCode } = await import("../protocol/errors.js");
    throw new ZgridError(ErrorCode.INVALID_ARGUMENT, "no server URL: pass one, or set ZGRID_URL");
  }
  return new ZgridClient(target, options);
}
