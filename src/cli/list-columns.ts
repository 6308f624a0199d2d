import type { ResultInfo, SessionInfo, TaskInfo } from "../client/types.js";
import { time } from "./table.js";
import { didYouMean, UsageError } from "./usage.js";

export type Kind = "sessions" | "tasks" | "results";

/** One column of a list: its header and how an item shows in it. */
interface Column<T> {
  header: string;
  cell(item: T): string;
}

const text = (v: string | null | undefined): string => (v === null || v === undefined || v === "" ? "-" : v);
const ids = (v: readonly string[]): string => (v.length === 0 ? "-" : v.join(","));

const SESSION_COLUMNS: Record<string, Column<SessionInfo>> = {
  sessionId: { header: "SESSION", cell: (s) => s.sessionId },
  status: { header: "STATUS", cell: (s) => s.status },
  taskCount: { header: "TASKS", cell: (s) => String(s.taskCount) },
  partitionIds: { header: "PARTITIONS", cell: (s) => ids(s.partitionIds) },
  createdAt: { header: "CREATED", cell: (s) => time(s.createdAt) },
};

const TASK_COLUMNS: Record<string, Column<TaskInfo>> = {
  taskId: { header: "TASK", cell: (t) => t.taskId },
  sessionId: { header: "SESSION", cell: (t) => t.sessionId },
  status: { header: "STATUS", cell: (t) => t.status },
  partitionId: { header: "PARTITION", cell: (t) => t.options.partitionId },
  applicationName: { header: "APPLICATION", cell: (t) => text(t.options.applicationName) },
  attempts: { header: "ATTEMPTS", cell: (t) => String(t.attempts.length) },
  createdBy: { header: "CREATED BY", cell: (t) => text(t.createdBy) },
  parentTaskIds: { header: "PARENTS", cell: (t) => ids(t.parentTaskIds ?? []) },
  initialTaskId: { header: "INITIAL", cell: (t) => text(t.initialTaskId) },
  payloadId: { header: "PAYLOAD", cell: (t) => t.payloadId },
  expectedOutputIds: { header: "OUTPUTS", cell: (t) => ids(t.expectedOutputIds) },
  workerId: { header: "WORKER", cell: (t) => text(t.workerId) },
  createdAt: { header: "CREATED", cell: (t) => time(t.createdAt) },
  receivedAt: { header: "RECEIVED", cell: (t) => time(t.receivedAt) },
  submittedAt: { header: "SUBMITTED", cell: (t) => time(t.submittedAt) },
  dispatchedAt: { header: "DISPATCHED", cell: (t) => time(t.dispatchedAt) },
  startedAt: { header: "STARTED", cell: (t) => time(t.startedAt) },
  endedAt: { header: "ENDED", cell: (t) => time(t.endedAt) },
  error: { header: "ERROR", cell: (t) => (t.error ?? "").slice(0, 60) },
};

const RESULT_COLUMNS: Record<string, Column<ResultInfo>> = {
  resultId: { header: "RESULT", cell: (r) => r.resultId },
  sessionId: { header: "SESSION", cell: (r) => r.sessionId },
  status: { header: "STATUS", cell: (r) => r.status },
  name: { header: "NAME", cell: (r) => r.name },
  size: { header: "BYTES", cell: (r) => String(r.size) },
  ownerTaskId: { header: "OWNER", cell: (r) => text(r.ownerTaskId) },
  createdBy: { header: "CREATED BY", cell: (r) => text(r.createdBy) },
  createdAt: { header: "CREATED", cell: (r) => time(r.createdAt) },
  completedAt: { header: "COMPLETED", cell: (r) => time(r.completedAt) },
};

const COLUMNS = { sessions: SESSION_COLUMNS, tasks: TASK_COLUMNS, results: RESULT_COLUMNS } as Record<
  Kind,
  Record<string, Column<unknown>>
>;

/** The columns of `list` without --fields. */
const DEFAULT_FIELDS: Record<Kind, string[]> = {
  sessions: ["sessionId", "status", "taskCount", "partitionIds", "createdAt"],
  tasks: ["taskId", "status", "partitionId", "applicationName", "attempts", "createdAt", "error"],
  results: ["resultId", "status", "name", "size", "ownerTaskId", "createdAt"],
};

/** The fields `--fields` may name for a kind, in the order of its columns. */
export function listFields(kind: Kind): string[] {
  return Object.keys(COLUMNS[kind]);
}

/**
 * The columns `--fields a,b,c` chooses (the default ones without it); an unknown field is a usage error
 * that lists the valid ones.
 */
export function chooseColumns(
  kind: Kind,
  fields: string | undefined,
): ({ name: string } & Column<unknown>)[] {
  const names =
    fields === undefined
      ? DEFAULT_FIELDS[kind]
      : fields
          .split(",")
          .map((f) => f.trim())
          .filter((f) => f.length > 0);
  if (names.length === 0)
    throw new UsageError(`--fields names no field: valid are ${listFields(kind).join(", ")}`);
  return names.map((name) => {
    const column = COLUMNS[kind][name];
    if (column === undefined)
      throw new UsageError(
        `unknown field "${name}" for ${kind}${didYouMean(name, listFields(kind))} (valid: ${listFields(kind).join(", ")})`,
      );
    return { name, ...column };
  });
}
