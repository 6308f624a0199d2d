import type { ServerContext } from "../daemons/context.js";
import { list, optBool, optMap, optStr, str, strList } from "../protocol/args.js";
import type { CommandRegistrar, CommandRequest } from "../protocol/command-map.js";
import { describeValue } from "../protocol/describe.js";
import { invalidArgument, notFound } from "../protocol/errors.js";
import { compileFilter } from "../scheduler/filter.js";
import { TASK_FIELDS } from "../scheduler/filter-fields.js";
import { listPage, parseListQuery, scan } from "../scheduler/listing.js";
import { FINAL_TASK_STATUSES, TASK_STATUSES, type Task } from "../scheduler/model.js";
import { parseSubmission } from "../scheduler/submission-args.js";
import { IdList } from "../scheduler/ids.js";
import { parseTaskOptions } from "../scheduler/task-options.js";
import { taskView } from "../scheduler/views.js";
import { RequestKeys } from "./request-keys.js";
import { ownSession, ownTasks, seesAll, visibleMatches, visibleSessions } from "./access.js";

type SubmitAnswer = { taskId: string; payloadId: string; expectedOutputIds: string[] }[];

/**
 * The answer of `tasks.submit {columns: true}`: task i is taskIds[i], payloadIds[i], and its
 * outputCounts[i] expected outputs taken in order from `outputs`. Also how answers are kept for their
 * request keys (no object per task).
 */
interface SubmitColumns {
  taskIds: string[];
  payloadIds: string[];
  outputCounts: number[];
  outputs: string[];
}

function columnsOf(tasks: readonly Task[]): SubmitColumns {
  const n = tasks.length;
  const c: SubmitColumns = {
    taskIds: new Array<string>(n),
    payloadIds: new Array<string>(n),
    outputCounts: new Array<number>(n),
    outputs: [],
  };
  for (let i = 0; i < n; i++) {
    const t = tasks[i];
    c.taskIds[i] = t.id;
    c.payloadIds[i] = t.payloadId;
    c.outputCounts[i] = t.expectedOutputIds.length;
    for (const o of t.expectedOutputIds) c.outputs.push(o);
  }
  return c;
}

/** What a kept answer holds (RequestKeys): its ids in runs, its output counts as (count, repeats) pairs. */
interface KeptColumns {
  taskIds: IdList;
  payloadIds: IdList;
  outputCounts: number[];
  outputs: IdList;
}

function keptOf(c: SubmitColumns): KeptColumns {
  const counts: number[] = [];
  for (const n of c.outputCounts) {
    if (counts.length > 0 && counts[counts.length - 2] === n) counts[counts.length - 1]++;
    else counts.push(n, 1);
  }
  return {
    taskIds: IdList.of(c.taskIds),
    payloadIds: IdList.of(c.payloadIds),
    outputCounts: counts,
    outputs: IdList.of(c.outputs),
  };
}

function columnsOfKept(k: KeptColumns): SubmitColumns {
  const outputCounts: number[] = [];
  for (let i = 0; i < k.outputCounts.length; i += 2)
    for (let j = 0; j < k.outputCounts[i + 1]; j++) outputCounts.push(k.outputCounts[i]);
  return {
    taskIds: k.taskIds.toArray(),
    payloadIds: k.payloadIds.toArray(),
    outputCounts,
    outputs: k.outputs.toArray(),
  };
}

function mapsOf(c: SubmitColumns): SubmitAnswer {
  const answer: SubmitAnswer = new Array(c.taskIds.length);
  let at = 0;
  for (let i = 0; i < c.taskIds.length; i++) {
    const count = c.outputCounts[i];
    answer[i] = {
      taskId: c.taskIds[i],
      payloadId: c.payloadIds[i],
      expectedOutputIds: c.outputs.slice(at, at + count),
    };
    at += count;
  }
  return answer;
}

/** The most tasks one `tasks.cancel {filter}` cancels; `more: true` in its answer says to call again. */
export const MAX_CANCEL_BY_FILTER = 100_000;

/** tasks.submit / get / list / count / cancel. */
export function register(map: CommandRegistrar, server: ServerContext): void {
  const scheduler = server.scheduler;

  const keys = new RequestKeys<SubmitColumns, KeptColumns>({ keep: keptOf, restore: columnsOfKept });
  // Keyed submissions the store kept: a resend after a restart gets the first answer too.
  for (const r of scheduler.takeKeptRequests()) keys.seed(r.key, r.at, columnsOf(r.tasks), r.tasks.length);

  map.register("tasks.submit", async (req) => {
    const sessionId = str(req.args, "sessionId");
    ownSession(req, scheduler, sessionId);
    const options = parseTaskOptions(optMap(req.args, "taskOptions"), "taskOptions");
    const items = list(req.args, "tasks").map((raw, i) => parseSubmission(raw, i, req.blobs));
    const requestKey = optStr(req.args, "requestKey");
    const columns = optBool(req.args, "columns") ?? false;
    if (requestKey !== undefined && (requestKey.length === 0 || requestKey.length > 128))
      throw invalidArgument("requestKey must be a string of 1 to 128 characters");
    const key = requestKey === undefined ? undefined : `${sessionId}\u0000${requestKey}`;
    const submit = async (): Promise<SubmitColumns> => {
      const tasks = scheduler.submission.submitTasks(sessionId, options, items, req.user);
      if (key !== undefined && tasks.length > 0) {
        const at = Date.now();
        const [first] = tasks;
        // In the commit of its tasks: the answer is kept exactly when they are.
        scheduler.store.keepRequest(
          { key, at, sessionId, firstSeq: first.seq, count: tasks.length, firstTaskId: first.id },
          at - keys.ttlMs,
        );
      }
      try {
        await scheduler.store.flush();
      } catch (err) {
        // A reply of failure means nothing happened: the submission is taken back.
        scheduler.submission.withdrawTasks(tasks, items);
        throw err;
      }
      return columnsOf(tasks);
    };
    const answer =
      key === undefined
        ? await submit()
        : await keys.run(key, items.length, submit, () =>
            invalidArgument(
              `requestKey ${describeValue(requestKey)} was used for a submission of another size`,
            ),
          );
    return { msg: columns ? answer : mapsOf(answer) };
  });

  map.register("tasks.get", (req) => {
    const taskId = str(req.args, "taskId");
    ownTasks(req, scheduler, [taskId]);
    return { msg: taskView(scheduler.task(taskId)) };
  });

  // ArmoniK's GetResultIds: the expected outputs of many tasks in one request.
  map.register("tasks.getResultIds", (req) => {
    const taskIds = strList(req.args, "taskIds");
    if (taskIds.length > server.config.maxBatch)
      throw invalidArgument(
        `taskIds lists ${taskIds.length} tasks: at most ${server.config.maxBatch} a request`,
      );
    const resultIds: Record<string, string[]> = {};
    const tasks = ownTasks(req, scheduler, taskIds) ?? scheduler.findTasks(taskIds);
    taskIds.forEach((id, i) => {
      const t = tasks[i];
      if (!t) throw notFound(`task ${id} does not exist`);
      resultIds[id] = t.expectedOutputIds;
    });
    return { msg: { resultIds } };
  });

  map.register("tasks.list", async (req) => {
    const q = parseListQuery(req.args, TASK_FIELDS);
    const visible = {
      ...q,
      filter: { ...q.filter, matches: visibleMatches(req, scheduler, q.filter.matches) },
    };
    // Finished tasks come from the store, live ones from memory: submission order (seq) orders both,
    // and breaks ties of a sort.
    const bySeq = (t: Task) => t.seq;
    const ordered = q.sortKey === null ? { ...visible, sortKey: bySeq } : visible;
    return { msg: await listPage(scheduler.tasksOf(q.filter.sessionIds), ordered, taskView, bySeq) };
  });

  map.register("tasks.count", async (req) => {
    const filter = compileFilter(optMap(req.args, "filter"), TASK_FIELDS);
    if (filter.conditions === 0 && seesAll(req.caller))
      return { msg: scheduler.views.summary().tasksByStatus };
    const counts = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<string, number>;
    if (filter.onlySessions) {
      // Whole sessions: their counters, not a read of every record (finished ones are in the store).
      const visible = visibleSessions(req, scheduler);
      for (const id of filter.sessionIds!) {
        if (!scheduler.sessions.has(id) || (visible !== null && !visible(id))) continue;
        const of = scheduler.sessionTaskCounts(id);
        for (const s of TASK_STATUSES) counts[s] += of[s];
      }
      return { msg: counts };
    }
    await scan(scheduler.tasksOf(filter.sessionIds), visibleMatches(req, scheduler, filter.matches), (t) => {
      counts[t.status]++;
    });
    return { msg: counts };
  });

  map.register("tasks.cancel", async (req) => {
    if (req.args.filter !== undefined && req.args.filter !== null) {
      if (req.args.taskIds !== undefined)
        throw invalidArgument("tasks.cancel takes taskIds or a filter, not both");
      return { msg: await cancelByFilter(req, req.args.filter) };
    }
    const taskIds = strList(req.args, "taskIds");
    ownTasks(req, scheduler, taskIds);
    const cancelled = scheduler.cancelTasks(taskIds);
    // The reply acknowledges the cancellation: it must be on disk first.
    await scheduler.store.flush();
    return { msg: { cancelled } };
  });

  /**
   * Cancels the unfinished tasks a filter matches, at most MAX_CANCEL_BY_FILTER a call (`more` says
   * whether some are left). The scan yields between slices; the cancellation itself is one step, of
   * the tasks that still match then, and it is on disk before the reply.
   */
  async function cancelByFilter(req: CommandRequest, raw: unknown) {
    const filter = compileFilter(raw, TASK_FIELDS);
    // A user's filter reaches its own sessions' tasks only.
    const matches = visibleMatches(req, scheduler, filter.matches);
    if (filter.conditions === 0)
      throw invalidArgument("tasks.cancel {filter} needs at least one condition: it would cancel every task");
    const found: Task[] = [];
    let more = false;
    const open = (t: Task) => !FINAL_TASK_STATUSES.has(t.status) && t.status !== "CANCELLING";
    // Every unfinished task is in memory: finished ones in the store need not be read.
    await scan(scheduler.table.liveTasksOf(filter.sessionIds), matches, (t) => {
      if (!open(t)) return;
      if (found.length === MAX_CANCEL_BY_FILTER) return !(more = true);
      found.push(t);
    });
    // Between the slices tasks moved on: what is cancelled is what still is there and matches now.
    const ids = found
      .filter((t) => scheduler.tasks.get(t.id) === t && open(t) && matches(t))
      .map((t) => t.id);
    const cancelled = scheduler.cancelTasks(ids);
    await scheduler.store.flush();
    return { cancelled, more };
  }
}
