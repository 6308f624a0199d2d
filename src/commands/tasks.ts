import type { ServerContext } from "../daemons/context.js";
import { list, optMap, optStr, str, strList } from "../protocol/args.js";
import type { CommandRegistrar } from "../protocol/command-map.js";
import { describeValue } from "../protocol/describe.js";
import { invalidArgument } from "../protocol/errors.js";
import { matches, pageOf, parseListQuery } from "../scheduler/listing.js";
import { TASK_STATUSES, type Task } from "../scheduler/model.js";
import { parseSubmission } from "../scheduler/submission-args.js";
import { parseTaskOptions } from "../scheduler/task-options.js";
import { taskView } from "../scheduler/views.js";
import { RequestKeys } from "./request-keys.js";
import { ownSession, ownTasks, visibleSessions } from "./access.js";

type SubmitAnswer = { taskId: string; payloadId: string; expectedOutputIds: string[] }[];

const TASK_FILTERS = [
  "sessionId",
  "status",
  "partitionId",
  "applicationName",
  "createdAfter",
  "createdBefore",
] as const;

function taskFilter(q: Record<string, unknown>): (t: Task) => boolean {
  const { sessionId, status, partitionId, applicationName, createdAfter, createdBefore } = q;
  if (status !== undefined) {
    for (const s of Array.isArray(status) ? status : [status]) {
      if (!(TASK_STATUSES as readonly unknown[]).includes(s))
        throw invalidArgument(`unknown task status ${describeValue(s)}`);
    }
  }
  return (t) =>
    (sessionId === undefined || matches(t.sessionId, sessionId)) &&
    (status === undefined || matches(t.status, status)) &&
    (partitionId === undefined || matches(t.options.partitionId, partitionId)) &&
    (applicationName === undefined || matches(t.options.applicationName, applicationName)) &&
    (typeof createdAfter !== "number" || t.createdAt >= createdAfter) &&
    (typeof createdBefore !== "number" || t.createdAt < createdBefore);
}

/** tasks.submit / get / list / count / cancel. */
export function register(map: CommandRegistrar, server: ServerContext): void {
  const scheduler = server.scheduler;

  const keys = new RequestKeys<SubmitAnswer>();
  const answerOf = (tasks: readonly Task[]): SubmitAnswer =>
    tasks.map((t) => ({ taskId: t.id, payloadId: t.payloadId, expectedOutputIds: t.expectedOutputIds }));
  // Keyed submissions the store kept: a resend after a restart gets the first answer too.
  for (const r of scheduler.takeKeptRequests()) keys.seed(r.key, r.at, answerOf(r.tasks), r.tasks.length);

  map.register("tasks.submit", async (req) => {
    const sessionId = str(req.args, "sessionId");
    ownSession(req, scheduler, sessionId);
    const options = parseTaskOptions(optMap(req.args, "taskOptions"), "taskOptions");
    const items = list(req.args, "tasks").map((raw, i) => parseSubmission(raw, i, req.blobs));
    const requestKey = optStr(req.args, "requestKey");
    if (requestKey !== undefined && (requestKey.length === 0 || requestKey.length > 128))
      throw invalidArgument("requestKey must be a string of 1 to 128 characters");
    const key = requestKey === undefined ? undefined : `${sessionId}\u0000${requestKey}`;
    const submit = async (): Promise<SubmitAnswer> => {
      const tasks = scheduler.submitTasks(sessionId, options, items);
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
        scheduler.withdrawTasks(tasks, items);
        throw err;
      }
      return answerOf(tasks);
    };
    if (key === undefined) return { msg: await submit() };
    const msg = await keys.run(key, items.length, submit, () =>
      invalidArgument(`requestKey ${describeValue(requestKey)} was used for a submission of another size`),
    );
    return { msg };
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
    ownTasks(req, scheduler, taskIds);
    const resultIds: Record<string, string[]> = {};
    for (const id of taskIds) resultIds[id] = scheduler.task(id).expectedOutputIds;
    return { msg: { resultIds } };
  });

  map.register("tasks.list", (req) => {
    const q = parseListQuery(req.args, TASK_FILTERS, [
      "taskId",
      "status",
      "createdAt",
      "submittedAt",
      "startedAt",
      "endedAt",
    ]);
    const keep = taskFilter(q.filter);
    const visible = visibleSessions(req, scheduler);
    const items: Task[] = [];
    for (const t of scheduler.tasks.values())
      if (keep(t) && (!visible || visible(t.sessionId))) items.push(t);
    return { msg: pageOf(items, q, taskView) };
  });

  map.register("tasks.count", (req) => {
    const filter = optMap(req.args, "filter") ?? {};
    for (const key of Object.keys(filter)) {
      if (!(TASK_FILTERS as readonly string[]).includes(key))
        throw invalidArgument(`unknown filter "${key}": known are ${TASK_FILTERS.join(", ")}`);
    }
    const visible = visibleSessions(req, scheduler);
    if (Object.keys(filter).length === 0 && !visible) return { msg: scheduler.summary().tasksByStatus };
    const keep = taskFilter(filter);
    const counts = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<string, number>;
    for (const t of scheduler.tasks.values())
      if (keep(t) && (!visible || visible(t.sessionId))) counts[t.status]++;
    return { msg: counts };
  });

  map.register("tasks.cancel", async (req) => {
    const taskIds = strList(req.args, "taskIds");
    ownTasks(req, scheduler, taskIds);
    const cancelled = scheduler.cancelTasks(taskIds);
    // The reply acknowledges the cancellation: it must be on disk first.
    await scheduler.store.flush();
    return { msg: { cancelled } };
  });
}
