import type { ZgridClient } from "../client/client.js";
import { decodeOutput, encodePayload } from "../client/payload.js";
import type { TaskInfo, TaskOptions, TaskStatus } from "../client/types.js";
import { escapeControls } from "../protocol/describe.js";
import { Progress, tasksPerSecond } from "./progress.js";
import { table } from "./table.js";
import { TARGET_HELP, TARGET_OPTIONS, withClient } from "./target.js";
import { intFlag, parse, UsageError } from "./usage.js";
import { watchForIdleTasks } from "./worker-hint.js";

export const SUBMIT_HELP = `zgrid submit --app NAME --method M [--args JSON] [--count N] [options]

Submits N tasks (in batches) to a new session: each calls method M of the application NAME with the
arguments of --args, a JSON array (the ServiceBase payload convention). Prints the session id and the
task ids; with --wait, shows progress until every task has ended, then prints the outputs (up to 20
tasks) or a summary. Exit codes: 0 every task completed, 1 some failed (or --wait-timeout passed), 2 usage.

  -a, --app NAME                 application to run (module NAME.js on the workers)
      --app-version V            its version (module NAME.V.js)
  -m, --method M                 method to call
      --args JSON                the method's arguments, a JSON array (default [])
  -n, --count N                  tasks to submit (default 1)
  -p, --partition P              partition to run the tasks in (default: the server's default)
      --priority N               priority, higher first (default 1)
      --max-retries N            attempts after a failure (default 2)
      --max-duration MS          a task running longer ends TIMEOUT (default: no limit)
      --batch N                  tasks per request (default 10000)
  -w, --wait                     wait for the tasks, with progress on stderr
      --wait-timeout S           with --wait, give up after S seconds (default: no limit)
      --json                     print JSON: {sessionId, taskIds} or, with --wait, every task's outcome
${TARGET_HELP}

Examples:
  zgrid submit --app hello --method sum --args '[[1, 2, 3]]' --wait
  zgrid submit --app addition --method add --args '[1, 2]' --count 10000 --wait`;

/** Up to this many tasks, their ids and outputs are listed; beyond, counts only. */
const LIST_LIMIT = 20;
/** Results per results.wait request while waiting. */
const WAIT_CHUNK = 5_000;
const FAILED: TaskStatus[] = ["ERROR", "TIMEOUT", "CANCELLED"];
/** A task not ended yet: where a wait that gave up says it stands. */
const UNFINISHED: TaskStatus[] = [
  "PENDING",
  "SUBMITTED",
  "DISPATCHED",
  "PROCESSING",
  "RETRIED",
  "CANCELLING",
  "PAUSED",
];

interface Outcome {
  taskId: string;
  status: string;
  output?: unknown;
  error?: string | null;
}

function parseJsonArgs(text: string | undefined): unknown[] {
  if (text === undefined) return [];
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--args is not valid JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(value))
    throw new UsageError(
      `--args must be a JSON array of the method's arguments, e.g. '[[1, 2, 3]]' or '[1, 2]'`,
    );
  return value;
}

function show(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text === undefined ? String(value) : text;
}

/** `zgrid submit`. */
export async function runSubmit(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    ...TARGET_OPTIONS,
    app: { type: "string", short: "a" },
    "app-version": { type: "string" },
    method: { type: "string", short: "m" },
    args: { type: "string" },
    count: { type: "string", short: "n" },
    partition: { type: "string", short: "p" },
    priority: { type: "string" },
    "max-retries": { type: "string" },
    "max-duration": { type: "string" },
    batch: { type: "string" },
    wait: { type: "boolean", short: "w" },
    "wait-timeout": { type: "string" },
    json: { type: "boolean" },
  });
  if (values.help) {
    process.stdout.write(SUBMIT_HELP + "\n");
    return 0;
  }
  const app = values.app as string | undefined;
  const method = values.method as string | undefined;
  if (!app) throw new UsageError("--app NAME is required: the application that runs the tasks");
  if (!method) throw new UsageError("--method M is required: the method of the application to call");
  const args = parseJsonArgs(values.args as string | undefined);
  const count = intFlag(values.count, "--count", 1, 10_000_000) ?? 1;
  const batch = intFlag(values.batch, "--batch", 1, 100_000) ?? 10_000;
  const timeoutS = intFlag(values["wait-timeout"], "--wait-timeout", 0, 86_400) ?? 0;
  if (values["wait-timeout"] !== undefined && !values.wait)
    throw new UsageError("--wait-timeout goes with --wait");
  const partition = values.partition as string | undefined;
  const options: TaskOptions = { applicationName: app };
  if (values["app-version"]) options.applicationVersion = values["app-version"] as string;
  if (partition) options.partitionId = partition;
  const priority = intFlag(values.priority, "--priority", 0, 1_000_000);
  if (priority !== undefined) options.priority = priority;
  const maxRetries = intFlag(values["max-retries"], "--max-retries", 0, 1_000_000);
  if (maxRetries !== undefined) options.maxRetries = maxRetries;
  const maxDuration = intFlag(values["max-duration"], "--max-duration", 0, 1_000_000_000);
  if (maxDuration !== undefined) options.maxDuration = maxDuration;
  const json = Boolean(values.json);
  const payload = encodePayload(method, args);

  return withClient(
    values,
    "default",
    async (client) => {
      const started = Date.now();
      const sessionId = await client.createSession(options, partition ? [partition] : undefined);
      const watch: Watch = { submitted: 0, finished: 0 };
      const onInterrupt = (): void => interrupted(sessionId, watch);
      process.once("SIGINT", onInterrupt);
      try {
        return await submitAndWait(client, sessionId, watch, started);
      } finally {
        process.off("SIGINT", onInterrupt);
      }
    },
    60_000,
  );

  async function submitAndWait(
    client: ZgridClient,
    sessionId: string,
    watch: Watch,
    started: number,
  ): Promise<number> {
    const taskIds: string[] = [];
    const outputIds: string[] = [];
    // A submission of several batches shows its own progress (tasks sent), on stderr.
    const sending =
      count > batch ? new Progress(count, "submitting", process.stderr, 2000, started, true) : null;
    watch.progress = sending ?? undefined;
    for (let from = 0; from < count; from += batch) {
      const n = Math.min(batch, count - from);
      const submitted = await client.submitTasks(
        sessionId,
        Array.from({ length: n }, () => ({ payload })),
      );
      for (const t of submitted) {
        taskIds.push(t.taskId);
        outputIds.push(t.expectedOutputIds[0]);
      }
      watch.submitted = taskIds.length;
      sending?.update(taskIds.length);
    }
    sending?.finish(taskIds.length);
    const submitSeconds = (Date.now() - started) / 1000;
    if (!values.wait) {
      if (json) process.stdout.write(JSON.stringify({ sessionId, count, taskIds }, null, 2) + "\n");
      else {
        process.stdout.write(
          `Session ${sessionId}: ${count} task${count === 1 ? "" : "s"} submitted in ${submitSeconds.toFixed(2)} s\n`,
        );
        if (count <= LIST_LIMIT) process.stdout.write(taskIds.join("\n") + "\n");
        else process.stdout.write(`(their ids: zgrid tasks list --session ${sessionId})\n`);
      }
      return 0;
    }
    if (!json)
      process.stdout.write(
        `Session ${sessionId}: ${count} task${count === 1 ? "" : "s"} submitted, waiting\n`,
      );
    return waitAndReport(client, sessionId, taskIds, outputIds, { json, timeoutS, started, watch });
  }
}

/**
 * The statuses of `taskIds`, tasks of `sessionId` whose outputs were not ready: the session's unfinished
 * tasks, a page at a time; one that ended meanwhile is asked for by id.
 */
async function statusesOf(
  client: ZgridClient,
  sessionId: string,
  taskIds: readonly string[],
): Promise<Map<string, TaskStatus>> {
  const wanted = new Set(taskIds);
  const found = new Map<string, TaskStatus>();
  if (wanted.size === 0) return found;
  const pageSize = Math.min(10_000, wanted.size);
  for (let page = 0; page < 1_000; page++) {
    const got = await client.listTasks({ filter: { sessionId, status: UNFINISHED }, page, pageSize });
    for (const t of got.items) if (wanted.has(t.taskId)) found.set(t.taskId, t.status);
    if (got.items.length < pageSize) break;
  }
  for (const id of wanted) if (!found.has(id)) found.set(id, (await client.getTask(id)).status);
  return found;
}

/** What Ctrl+C needs to say where things stand. */
interface Watch {
  submitted: number;
  finished: number;
  progress?: Progress;
}

/** Ctrl+C: the tasks are the server's now and go on; say so, and how to stop them. */
function interrupted(sessionId: string, watch: Watch): never {
  watch.progress?.end();
  const left = Math.max(0, watch.submitted - watch.finished);
  // Before the first batch was acknowledged, one may still be on its way: the session is what to cancel.
  const what =
    watch.submitted === 0
      ? `no task was acknowledged yet, but a batch may be on its way to session ${sessionId}`
      : `the ${left} unfinished task${left === 1 ? " goes" : "s go"} on in session ${sessionId}`;
  process.stderr.write(`interrupted: ${what}; cancel them with: zgrid sessions cancel ${sessionId}\n`);
  process.exit(130);
}

async function waitAndReport(
  client: ZgridClient,
  sessionId: string,
  taskIds: string[],
  outputIds: string[],
  opts: { json: boolean; timeoutS: number; started: number; watch: Watch },
): Promise<number> {
  const total = taskIds.length;
  const keepData = opts.json || total <= LIST_LIMIT;
  // The submission's clock: the live rate and the summary's are the same figure.
  const progress = new Progress(total, "tasks", process.stderr, 2000, opts.started);
  opts.watch.progress = progress;
  const deadline = opts.timeoutS > 0 ? Date.now() + opts.timeoutS * 1000 : 0;
  let finished = false;
  const tick = () =>
    Promise.all([client.countTasks({ sessionId }), client.listWorkers()]).then(
      ([c, workers]) => {
        if (finished) return;
        opts.watch.finished = c.COMPLETED + c.ERROR + c.TIMEOUT + c.CANCELLED;
        // Running: on a slot. DISPATCHED tasks are held by a worker in advance; and a worker reports the
        // tasks it started apart from those it ended, so short tasks show PROCESSING by the hundred
        // between the two reports: no more can run than the workers have slots.
        const slots = workers.items.reduce((n, w) => n + w.slots, 0);
        progress.update(c.COMPLETED, c.ERROR + c.TIMEOUT + c.CANCELLED, Math.min(c.PROCESSING, slots));
      },
      () => undefined,
    );
  const ticker = setInterval(() => void tick(), 250);
  void tick();
  const stopHint = watchForIdleTasks(client, (line) => progress.note(line));

  const status = new Map<string, string>(); // output id → result status
  const data = new Map<string, Buffer>();
  /** Waits for some results; records their statuses (and data); true when it timed out. */
  const waitFor = async (ids: string[], timeoutMs: number): Promise<boolean> => {
    const r = keepData
      ? await client.waitResultsData(ids, { timeoutMs })
      : { ...(await client.waitResults(ids, { timeoutMs })), data: new Map<string, Buffer>() };
    for (const [id, s] of Object.entries(r.statuses)) status.set(id, s);
    for (const [id, d] of r.data) data.set(id, d);
    return r.timedOut;
  };
  let timedOut = false;
  try {
    for (let from = 0; from < total && !timedOut; from += WAIT_CHUNK) {
      const left = deadline ? Math.max(1, deadline - Date.now()) : 0;
      timedOut = await waitFor(outputIds.slice(from, from + WAIT_CHUNK), left);
    }
  } finally {
    clearInterval(ticker);
    stopHint();
    finished = true;
  }
  if (timedOut) {
    // Where the tasks of the chunks not waited on stand.
    for (let from = 0; from < total; from += WAIT_CHUNK) {
      const ids = outputIds.slice(from, from + WAIT_CHUNK).filter((id) => !status.has(id));
      if (ids.length > 0) await waitFor(ids, 1);
    }
  }
  const seconds = (Date.now() - opts.started) / 1000;
  let done = 0;
  let failed = 0;
  for (const s of status.values()) {
    if (s === "COMPLETED") done++;
    else if (s === "ABORTED" || s === "DELETED") failed++;
  }
  progress.finish(done, failed, seconds);

  // The errors of the failed tasks: all of them for --json and short lists, a few for a summary.
  const errors = new Map<string, TaskInfo>();
  const wanted = keepData ? failed : Math.min(failed, 5);
  const pageSize = Math.min(10_000, Math.max(wanted, 1));
  for (let page = 0; errors.size < wanted && page < 1_000; page++) {
    const got = await client.listTasks({ filter: { sessionId, status: FAILED }, page, pageSize });
    for (const t of got.items) if (errors.size < wanted) errors.set(t.taskId, t);
    if (got.items.length < pageSize) break;
  }

  // Where the tasks not ended stand (a wait that gave up): their statuses as the server has them.
  const unfinishedIds = taskIds.filter((_, i) => {
    const s = status.get(outputIds[i]);
    return s !== "COMPLETED" && s !== "ABORTED" && s !== "DELETED";
  });
  const standing = keepData
    ? await statusesOf(client, sessionId, unfinishedIds)
    : new Map<string, TaskStatus>();

  const outcomes: Outcome[] = taskIds.map((taskId, i) => {
    const s = status.get(outputIds[i]);
    if (s === "COMPLETED") {
      const d = data.get(outputIds[i]);
      return { taskId, status: "COMPLETED", ...(d ? { output: decodeOutput(d) } : {}) };
    }
    const info = errors.get(taskId);
    if (s === "ABORTED" || s === "DELETED")
      return { taskId, status: info?.status ?? "ERROR", error: info?.error ?? null };
    return { taskId, status: standing.get(taskId) ?? "SUBMITTED" };
  });
  const unfinished = total - done - failed;

  if (opts.json) {
    process.stdout.write(
      JSON.stringify(
        {
          sessionId,
          count: total,
          completed: done,
          failed,
          running: unfinished,
          timedOut,
          seconds,
          tasks: outcomes,
        },
        null,
        2,
      ) + "\n",
    );
  } else {
    if (total <= LIST_LIMIT) {
      process.stdout.write(
        table(
          ["TASK", "STATUS", "OUTPUT"],
          outcomes.map((o) => [
            o.taskId,
            o.status,
            o.status === "COMPLETED" ? show(o.output ?? null) : (o.error ?? ""),
          ]),
        ) + "\n",
      );
    } else {
      for (const t of errors.values())
        process.stdout.write(
          `failed: ${t.taskId} ${t.status} ${escapeControls((t.error ?? "").slice(0, 200))}\n`,
        );
    }
    process.stdout.write(
      `${done} completed, ${failed} failed${unfinished > 0 ? `, ${unfinished} not finished` : ""} in ${seconds.toFixed(2)} s` +
        (seconds > 0 ? ` (${tasksPerSecond(done + failed, seconds)} tasks/s)` : "") +
        (timedOut ? `: gave up after --wait-timeout ${opts.timeoutS} s` : "") +
        "\n",
    );
  }
  return failed === 0 && !timedOut ? 0 : 1;
}
