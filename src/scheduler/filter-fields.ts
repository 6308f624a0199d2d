import { legacyEq, type Condition, type FieldDef, type FieldKind, type FieldSet } from "./filter.js";
import {
  RESULT_STATUSES,
  SESSION_STATUSES,
  TASK_STATUSES,
  type Result,
  type Session,
  type TaskOptions,
  type Task,
} from "./model.js";

/** The fields filters and sorts name: those of the records clients see (views.ts), by the same names. */

const TASK_OPTION_KINDS: Record<Exclude<keyof TaskOptions, "options">, FieldKind> = {
  maxDuration: "number",
  maxRetries: "number",
  priority: "number",
  partitionId: "string",
  applicationName: "string",
  applicationVersion: "string",
  applicationNamespace: "string",
  applicationService: "string",
  engineType: "string",
};

/** `PREFIX.maxRetries`, `PREFIX.priority`, ... of a record's task options. */
function optionFields<T>(prefix: string, of: (item: T) => TaskOptions): [string, FieldDef<T>][] {
  return Object.entries(TASK_OPTION_KINDS).map(([key, kind]) => [
    `${prefix}.${key}`,
    { kind, get: (item: T) => of(item)[key as keyof typeof TASK_OPTION_KINDS] },
  ]);
}

/** The user's own options, `PREFIX.options.KEY`: a string, null where the key is not set. */
function userOptions<T>(prefix: string, of: (item: T) => TaskOptions): FieldSet<T>["dynamic"] {
  return {
    prefix: `${prefix}.options.`,
    def: (key) => ({ kind: "string", nullable: true, get: (item) => of(item).options[key] ?? null }),
  };
}

const time = <T>(get: (item: T) => number | null, nullable = true): FieldDef<T> => ({
  kind: "time",
  get,
  nullable,
});
const text = <T>(get: (item: T) => string | null, nullable = false): FieldDef<T> => ({
  kind: "string",
  get,
  nullable,
});

/** `createdAfter` (inclusive) and `createdBefore` (exclusive) of the plain map filter. */
const createdAfter = (value: unknown): Condition => ({ field: "createdAt", op: "afterOrEqual", value });
const createdBefore = (value: unknown): Condition => ({ field: "createdAt", op: "before", value });

export const TASK_FIELDS: FieldSet<Task> = {
  what: "tasks",
  fields: new Map<string, FieldDef<Task>>([
    ["taskId", text((t) => t.id)],
    ["sessionId", text((t) => t.sessionId)],
    ["status", { kind: "status", statuses: TASK_STATUSES, get: (t) => t.status }],
    ["payloadId", text((t) => t.payloadId)],
    ["expectedOutputIds", { kind: "list", get: (t) => t.expectedOutputIds }],
    ["dataDependencies", { kind: "list", get: (t) => t.dataDependencies }],
    ["createdAt", time((t) => t.createdAt, false)],
    ["receivedAt", time((t) => t.createdAt, false)],
    ["submittedAt", time((t) => t.submittedAt)],
    ["dispatchedAt", time((t) => t.attempts.at(-1)?.dispatchedAt ?? null)],
    ["startedAt", time((t) => t.startedAt)],
    ["endedAt", time((t) => t.endedAt)],
    ["error", text((t) => t.error, true)],
    ["workerId", text((t) => t.workerId, true)],
    ["createdBy", text((t) => t.createdBy, true)],
    ["parentTaskIds", { kind: "list", get: (t) => (t.parentTaskId === null ? [] : [t.parentTaskId]) }],
    ["attempts", { kind: "number", get: (t) => t.attempts.length }],
    ...optionFields<Task>("options", (t) => t.options),
  ]),
  dynamic: userOptions<Task>("options", (t) => t.options),
  legacy: {
    sessionId: legacyEq("sessionId"),
    status: legacyEq("status"),
    partitionId: legacyEq("options.partitionId"),
    applicationName: legacyEq("options.applicationName"),
    createdAfter,
    createdBefore,
  },
};

export const RESULT_FIELDS: FieldSet<Result> = {
  what: "results",
  fields: new Map<string, FieldDef<Result>>([
    ["resultId", text((r) => r.id)],
    ["sessionId", text((r) => r.sessionId)],
    ["name", text((r) => r.name)],
    ["status", { kind: "status", statuses: RESULT_STATUSES, get: (r) => r.status }],
    ["ownerTaskId", text((r) => r.ownerTaskId, true)],
    ["createdBy", text((r) => r.createdBy, true)],
    ["size", { kind: "number", get: (r) => r.size }],
    ["createdAt", time((r) => r.createdAt, false)],
    ["completedAt", time((r) => r.completedAt)],
  ]),
  legacy: {
    sessionId: legacyEq("sessionId"),
    status: legacyEq("status"),
    createdAfter,
    createdBefore,
  },
};

function sessionDuration(s: Session): number | null {
  const end = s.closedAt ?? s.cancelledAt ?? s.deletedAt ?? null;
  return end === null ? null : end - s.createdAt;
}

export const SESSION_FIELDS: FieldSet<Session> = {
  what: "sessions",
  fields: new Map<string, FieldDef<Session>>([
    ["sessionId", text((s) => s.id)],
    ["status", { kind: "status", statuses: SESSION_STATUSES, get: (s) => s.status }],
    ["owner", text((s) => s.owner, true)],
    ["createdAt", time((s) => s.createdAt, false)],
    ["cancelledAt", time((s) => s.cancelledAt)],
    ["closedAt", time((s) => s.closedAt)],
    ["purgedAt", time((s) => s.purgedAt)],
    ["deletedAt", time((s) => s.deletedAt)],
    ["duration", { kind: "number", nullable: true, get: sessionDuration }],
    ["taskCount", { kind: "number", get: (s) => s.taskCount }],
    ["partitionIds", { kind: "list", get: (s) => s.partitionIds }],
    ["clientSubmission", { kind: "boolean", get: (s) => s.clientSubmission }],
    ["workerSubmission", { kind: "boolean", get: (s) => s.workerSubmission }],
    ["submissionStopped", { kind: "boolean", get: (s) => !s.clientSubmission && !s.workerSubmission }],
    ...optionFields<Session>("defaultTaskOptions", (s) => s.defaultTaskOptions),
  ]),
  dynamic: userOptions<Session>("defaultTaskOptions", (s) => s.defaultTaskOptions),
  legacy: { status: legacyEq("status"), createdAfter, createdBefore },
};
