import { ErrorCode, ZgridError } from "../protocol/errors.js";
import type { Filter, FilterCondition, FilterOperator } from "./types.js";

/**
 * The short text form of a filter (`zgrid tasks list --filter`): conditions joined by `,` are an AND
 * clause, clauses joined by `|` (or given in several texts) are OR-ed. A condition is FIELD OP VALUE:
 *
 *   `=` eq, `!=` ne, `<` lt, `<=` lte, `>` gt, `>=` gte, `~` contains, `!~` notContains,
 *   `^=` startsWith, `$=` endsWith, `=a;b;c` in (several values, `;` between them)
 *
 * e.g. `status=COMPLETED,priority>=3|status=ERROR`. A value that reads as a number is a number, unless
 * the field is a string one (ids, names, the user's options); `null` is null; a time field
 * (`createdAt`, `endedAt`, ...) also takes an ISO 8601 date. A bare task option (`priority`,
 * `partitionId`, ...) means `options.priority`; the user's own options are `options.options.KEY`.
 */
const OPERATORS: [string, FilterOperator][] = [
  ["!=", "ne"],
  ["<=", "lte"],
  [">=", "gte"],
  ["!~", "notContains"],
  ["^=", "startsWith"],
  ["$=", "endsWith"],
  ["=", "eq"],
  ["<", "lt"],
  [">", "gt"],
  ["~", "contains"],
];

const TASK_OPTIONS = new Set([
  "maxDuration",
  "maxRetries",
  "priority",
  "partitionId",
  "applicationName",
  "applicationVersion",
  "applicationNamespace",
  "applicationService",
  "engineType",
]);

const NUMERIC = new Set([
  "options.maxDuration",
  "options.maxRetries",
  "options.priority",
  "attempts",
  "size",
  "taskCount",
  "duration",
]);

const TIMES = new Set([
  "createdAt",
  "submittedAt",
  "startedAt",
  "endedAt",
  "completedAt",
  "cancelledAt",
  "closedAt",
  "purgedAt",
  "deletedAt",
]);

function isTime(field: string): boolean {
  return TIMES.has(field);
}

function bad(message: string): ZgridError {
  return new ZgridError(ErrorCode.INVALID_ARGUMENT, message);
}

function valueOf(field: string, text: string): unknown {
  if (text === "null") return null;
  if (text === "true" || text === "false") return text === "true";
  if (isTime(field)) {
    if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
    const ms = Date.parse(text);
    if (Number.isNaN(ms)) throw bad(`${field} takes a time (milliseconds or ISO 8601), not "${text}"`);
    return ms;
  }
  if (NUMERIC.has(field)) {
    const n = Number(text);
    if (text.trim() === "" || !Number.isFinite(n)) throw bad(`${field} takes a number, not "${text}"`);
    return n;
  }
  return text;
}

function condition(text: string): FilterCondition {
  const trimmed = text.trim();
  let best: { at: number; sym: string; op: FilterOperator } | null = null;
  for (const [sym, op] of OPERATORS) {
    const at = trimmed.indexOf(sym);
    // The leftmost operator; at one place, the longest (OPERATORS lists two-character ones first).
    if (at > 0 && (best === null || at < best.at)) best = { at, sym, op };
  }
  if (!best)
    throw bad(`"${trimmed}" is not a condition FIELD OP VALUE (OP one of = != < <= > >= ~ !~ ^= $=)`);
  let field = trimmed.slice(0, best.at).trim();
  if (TASK_OPTIONS.has(field)) field = `options.${field}`;
  const raw = trimmed.slice(best.at + best.sym.length).trim();
  if (best.op === "eq" && raw.includes(";")) {
    return { field, op: "in", value: raw.split(";").map((v) => valueOf(field, v.trim())) };
  }
  return { field, op: best.op, value: valueOf(field, raw) };
}

/** Parses texts of the short form into a filter: each text (and each `|` part in it) is an OR clause. */
export function parseFilterText(texts: string | readonly string[]): Filter {
  const or: { and: FilterCondition[] }[] = [];
  for (const text of typeof texts === "string" ? [texts] : texts) {
    for (const clause of text.split("|")) {
      if (clause.trim() === "") throw bad(`an empty clause in the filter "${text}"`);
      or.push({ and: clause.split(",").map(condition) });
    }
  }
  return { or };
}
