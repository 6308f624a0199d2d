import type { ServerContext } from "../daemons/context.js";
import { list, optMap, str, strList } from "../protocol/args.js";
import { isPlainObject } from "../protocol/codec.js";
import type { CommandRegistrar } from "../protocol/command-map.js";
import { invalidArgument } from "../protocol/errors.js";
import { matches, pageOf, parseListQuery } from "../scheduler/listing.js";
import { TASK_STATUSES, type Task } from "../scheduler/model.js";
import type { TaskSubmission } from "../scheduler/scheduler.js";
import { parseTaskOptions } from "../scheduler/task-options.js";
import { taskView } from "../scheduler/views.js";

const TASK_FILTERS = [
  "sessionId",
  "status",
  "partitionId",
  "applicationName",
  "createdAfter",
  "createdBefore",
] as const;

function idList(raw: Record<string, unknown>, key: string, where: string): string[] | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string"))
    throw invalidArgument(`${where}.${key} must be a list of ids`);
  return v as string[];
}

/** One task of tasks.submit, type-checked; the scheduler checks that the ids exist. */
function parseSubmission(raw: unknown, i: number, blobs: Buffer[]): TaskSubmission {
  const where = `tasks[${i}]`;
  if (!isPlainObject(raw))
    throw invalidArgument(
      `${where} must be a map {payloadId, expectedOutputIds, dataDependencies?, taskOptions?}`,
    );
  const sub: TaskSubmission = {};
  if (raw.payloadId !== undefined) {
    if (typeof raw.payloadId !== "string") throw invalidArgument(`${where}.payloadId must be a result id`);
    sub.payloadId = raw.payloadId;
  } else if (raw.payload !== undefined) {
    if (
      typeof raw.payload !== "number" ||
      !Number.isInteger(raw.payload) ||
      raw.payload < 0 ||
      raw.payload >= blobs.length
    ) {
      throw invalidArgument(
        `${where}.payload must be the index of a blob of this request (it has ${blobs.length})`,
      );
    }
    sub.payload = blobs[raw.payload];
  } else {
    throw invalidArgument(`${where} needs a payloadId (or an inline payload blob index)`);
  }
  sub.expectedOutputIds = idList(raw, "expectedOutputIds", where);
  sub.dataDependencies = idList(raw, "dataDependencies", where);
  if (raw.outputCount !== undefined) {
    if (
      typeof raw.outputCount !== "number" ||
      !Number.isInteger(raw.outputCount) ||
      raw.outputCount < 0 ||
      raw.outputCount > 1000
    ) {
      throw invalidArgument(`${where}.outputCount must be an integer from 0 to 1000`);
    }
    sub.outputCount = raw.outputCount;
  }
  if (raw.taskOptions !== undefined)
    sub.taskOptions = parseTaskOptions(raw.taskOptions, `${where}.taskOptions`);
  return sub;
}

function taskFilter(q: Record<string, unknown>): (t: Task) => boolean {
  const { sessionId, status, partitionId, applicationName, createdAfter, createdBefore } = q;
  if (status !== undefined) {
    for (const s of Array.isArray(status) ? status : [status]) {
      if (!(TASK_STATUSES as readonly unknown[]).includes(s))
        throw invalidArgument(`unknown task status ${JSON.stringify(s)}`);
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

  map.register("tasks.submit", (req) => {
    const sessionId = str(req.args, "sessionId");
    const options = parseTaskOptions(optMap(req.args, "taskOptions"), "taskOptions");
    const items = list(req.args, "tasks").map((raw, i) => parseSubmission(raw, i, req.blobs));
    const tasks = scheduler.submitTasks(sessionId, options, items);
    return {
      msg: tasks.map((t) => ({
        taskId: t.id,
        payloadId: t.payloadId,
        expectedOutputIds: t.expectedOutputIds,
      })),
    };
  });

  map.register("tasks.get", (req) => ({ msg: taskView(scheduler.task(str(req.args, "taskId"))) }));

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
    const items: Task[] = [];
    for (const t of scheduler.tasks.values()) if (keep(t)) items.push(t);
    return { msg: pageOf(items, q, taskView) };
  });

  map.register("tasks.count", (req) => {
    const filter = optMap(req.args, "filter") ?? {};
    for (const key of Object.keys(filter)) {
      if (!(TASK_FILTERS as readonly string[]).includes(key))
        throw invalidArgument(`unknown filter "${key}": known are ${TASK_FILTERS.join(", ")}`);
    }
    if (Object.keys(filter).length === 0) return { msg: scheduler.summary().tasksByStatus };
    const keep = taskFilter(filter);
    const counts = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<string, number>;
    for (const t of scheduler.tasks.values()) if (keep(t)) counts[t.status]++;
    return { msg: counts };
  });

  map.register("tasks.cancel", (req) => {
    const taskIds = strList(req.args, "taskIds");
    return { msg: { cancelled: scheduler.cancelTasks(taskIds) } };
  });
}
