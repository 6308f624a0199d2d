import { isPlainObject } from "../protocol/codec.js";
import { describeValue } from "../protocol/describe.js";
import { ErrorCode, ZgridError, invalidArgument } from "../protocol/errors.js";

/**
 * The filter language of list, count and cancel commands, as ArmoniK has it: an OR of AND clauses,
 * each condition a field, an operator and a value —
 * `{or: [{and: [{field: "status", op: "eq", value: "COMPLETED"}, ...]}, ...]}`.
 * A filter is checked and compiled once into a predicate; docs/protocol.md defines it for clients.
 */

/** What a field holds, which decides the operators and values it takes. */
export type FieldKind = "string" | "number" | "time" | "status" | "boolean" | "list";

export interface FieldDef<T> {
  kind: FieldKind;
  get: (item: T) => unknown;
  /** Its value may be null (not set): `eq null` and `ne null` ask whether it is. */
  nullable?: boolean;
  /** The values a status field takes. */
  statuses?: readonly string[];
}

/** The fields of one kind of record (tasks, results, sessions), and its filter of before issue 18. */
export interface FieldSet<T> {
  what: string;
  fields: ReadonlyMap<string, FieldDef<T>>;
  /** Fields under a prefix with any key, such as a task's own `options.options.KEY`. */
  dynamic?: { prefix: string; def: (key: string) => FieldDef<T> };
  /** The keys of the plain map filter (`{status: [...], sessionId}`): a key → the condition it means. */
  legacy: Readonly<Record<string, (value: unknown) => Condition>>;
}

export interface Condition {
  field: string;
  op: string;
  value: unknown;
}

export const MAX_FILTER_CONDITIONS = 100;
/** The most values one `in` condition (or one key of the plain map filter) may list. */
export const MAX_FILTER_VALUES = 10_000;
export const MAX_FILTER_STRING = 4096;

const OPS: Record<FieldKind, readonly string[]> = {
  string: ["eq", "ne", "in", "notIn", "contains", "notContains", "startsWith", "endsWith"],
  status: ["eq", "ne", "in", "notIn"],
  number: ["eq", "ne", "in", "notIn", "lt", "lte", "gt", "gte"],
  time: ["eq", "ne", "before", "beforeOrEqual", "after", "afterOrEqual", "lt", "lte", "gt", "gte"],
  boolean: ["eq", "ne"],
  list: ["contains", "notContains"],
};

/** A compiled filter: the predicate, and the sessions every match belongs to when it says (an index). */
export interface CompiledFilter<T> {
  matches: (item: T) => boolean;
  /** Each OR clause names its sessions (sessionId eq / in): only their records can match. */
  sessionIds: string[] | null;
  /** The filter says nothing but "in these sessions" (sessionIds): counts by session answer it. */
  onlySessions: boolean;
  conditions: number;
}

type Predicate<T> = (item: T) => boolean;

/** Finds a field by name, its dynamic prefix included; undefined when there is none. */
export function fieldOf<T>(set: FieldSet<T>, name: string): FieldDef<T> | undefined {
  const def = set.fields.get(name);
  if (def) return def;
  const d = set.dynamic;
  if (d && name.startsWith(d.prefix) && name.length > d.prefix.length)
    return d.def(name.slice(d.prefix.length));
  return undefined;
}

function knownFields<T>(set: FieldSet<T>): string {
  const names = [...set.fields.keys()];
  if (set.dynamic) names.push(`${set.dynamic.prefix}KEY`);
  return names.join(", ");
}

/** Parses and compiles a `filter` argument: the OR-of-ANDs shape, or the plain map of before. */
export function compileFilter<T>(raw: unknown, set: FieldSet<T>): CompiledFilter<T> {
  if (raw === undefined || raw === null)
    return { matches: () => true, sessionIds: null, onlySessions: false, conditions: 0 };
  if (!isPlainObject(raw)) throw invalidArgument(`filter must be a map: {or: [{and: [conditions]}]}`);
  let clauses: Condition[][];
  if ("or" in raw) {
    if (Object.keys(raw).length !== 1)
      throw invalidArgument(`a filter with "or" takes nothing beside it: {or: [{and: [conditions]}]}`);
    clauses = parseOr(raw.or);
  } else {
    clauses = Object.keys(raw).length === 0 ? [] : [legacyClause(raw, set)];
  }
  const conditions = clauses.reduce((n, c) => n + c.length, 0);
  if (conditions > MAX_FILTER_CONDITIONS)
    throw new ZgridError(
      ErrorCode.RESOURCE_EXHAUSTED,
      `the filter has ${conditions} conditions, more than ${MAX_FILTER_CONDITIONS}: split it into several requests`,
    );
  if (clauses.length === 0)
    return { matches: () => true, sessionIds: null, onlySessions: false, conditions: 0 };
  const compiled = clauses.map((clause, i) =>
    clause.map((c, j) => compileCondition(c, set, `filter.or[${i}].and[${j}]`)),
  );
  const sessionIds = sessionsNamed(clauses);
  const onlySessions =
    sessionIds !== null &&
    clauses.every((clause) => clause.length === 1) &&
    clauses.every(([c]) => c.field === "sessionId" && (c.op === "eq" || c.op === "in"));
  return { matches: orOf(compiled.map(andOf)), sessionIds, onlySessions, conditions };
}

function parseOr(or: unknown): Condition[][] {
  if (!Array.isArray(or)) throw invalidArgument(`filter.or must be a list of {and: [conditions]}`);
  if (or.length > MAX_FILTER_CONDITIONS)
    throw new ZgridError(
      ErrorCode.RESOURCE_EXHAUSTED,
      `filter.or has ${or.length} clauses, more than ${MAX_FILTER_CONDITIONS}: split it into several requests`,
    );
  return or.map((clause, i) => {
    if (!isPlainObject(clause) || Object.keys(clause).length !== 1 || !Array.isArray(clause.and))
      throw invalidArgument(`filter.or[${i}] must be a map {and: [conditions]}`);
    if (clause.and.length > MAX_FILTER_CONDITIONS)
      throw new ZgridError(
        ErrorCode.RESOURCE_EXHAUSTED,
        `filter.or[${i}].and has ${clause.and.length} conditions, more than ${MAX_FILTER_CONDITIONS}`,
      );
    return clause.and.map((c, j) => {
      const at = `filter.or[${i}].and[${j}]`;
      if (!isPlainObject(c)) throw invalidArgument(`${at} must be a map {field, op, value}`);
      for (const key of Object.keys(c)) {
        if (key !== "field" && key !== "op" && key !== "value")
          throw invalidArgument(`${at} has an unknown key "${key}": a condition is {field, op, value}`);
      }
      if (typeof c.field !== "string") throw invalidArgument(`${at}.field must be a string`);
      if (typeof c.op !== "string") throw invalidArgument(`${at}.op must be a string`);
      if (!("value" in c)) throw invalidArgument(`${at} has no value`);
      return { field: c.field, op: c.op, value: c.value };
    });
  });
}

/** The plain map of before issue 18 (`{sessionId, status: [...]}`): one AND clause. */
function legacyClause<T>(raw: Record<string, unknown>, set: FieldSet<T>): Condition[] {
  const known = Object.keys(set.legacy);
  return Object.keys(raw).map((key) => {
    const make = set.legacy[key];
    if (!make) {
      throw invalidArgument(
        `unknown filter "${key}": known are ${known.join(", ")}, or a filter {or: [{and: [{field, op, value}]}]}`,
      );
    }
    return make(raw[key]);
  });
}

/** A plain-map key that means "equal", or "one of" given a list. */
export function legacyEq(field: string): (value: unknown) => Condition {
  return (value) => ({ field, op: Array.isArray(value) ? "in" : "eq", value });
}

function compileCondition<T>(c: Condition, set: FieldSet<T>, at: string): Predicate<T> {
  if (c.field.length > 256) throw invalidArgument(`${at}.field is longer than 256 characters`);
  const def = fieldOf(set, c.field);
  if (!def)
    throw invalidArgument(`${at}: ${set.what} have no field "${c.field}": known are ${knownFields(set)}`);
  const ops = OPS[def.kind];
  if (!ops.includes(c.op)) {
    throw invalidArgument(
      `${at}: operator "${c.op}" does not apply to ${c.field} (a ${def.kind}): use ${ops.join(", ")}`,
    );
  }
  const get = def.get;
  if (c.op === "in" || c.op === "notIn") {
    if (!Array.isArray(c.value)) throw invalidArgument(`${at}: "${c.op}" takes a list of values`);
    if (c.value.length > MAX_FILTER_VALUES) {
      throw new ZgridError(
        ErrorCode.RESOURCE_EXHAUSTED,
        `${at} lists ${c.value.length} values, more than ${MAX_FILTER_VALUES}: list in several requests`,
      );
    }
    for (const v of c.value) checkValue(v, def, c.field, at, false);
    const set = new Set(c.value);
    return c.op === "in" ? (t) => set.has(get(t)) : (t) => !set.has(get(t));
  }
  const nullAllowed = def.nullable === true && (c.op === "eq" || c.op === "ne");
  checkValue(c.value, def, c.field, at, nullAllowed);
  const v = c.value;
  switch (c.op) {
    case "eq":
      return (t) => get(t) === v;
    case "ne":
      return (t) => get(t) !== v;
    case "lt":
    case "before":
      return (t) => compare(get(t), v as number) < 0;
    case "lte":
    case "beforeOrEqual":
      return (t) => compare(get(t), v as number) <= 0;
    case "gt":
    case "after":
      return (t) => compare(get(t), v as number) > 0;
    case "gte":
    case "afterOrEqual":
      return (t) => compare(get(t), v as number) >= 0;
    case "contains":
      if (def.kind === "list") return (t) => (get(t) as unknown[]).includes(v);
      return (t) => typeof get(t) === "string" && (get(t) as string).includes(v as string);
    case "notContains":
      if (def.kind === "list") return (t) => !(get(t) as unknown[]).includes(v);
      return (t) => typeof get(t) !== "string" || !(get(t) as string).includes(v as string);
    case "startsWith":
      return (t) => typeof get(t) === "string" && (get(t) as string).startsWith(v as string);
    default: // endsWith
      return (t) => typeof get(t) === "string" && (get(t) as string).endsWith(v as string);
  }
}

/** A number against a bound; an unset value (null) is neither less nor more than anything: NaN. */
function compare(x: unknown, bound: number): number {
  return typeof x === "number" ? x - bound : NaN;
}

function checkValue<T>(v: unknown, def: FieldDef<T>, field: string, at: string, nullAllowed: boolean): void {
  if (v === null && nullAllowed) return;
  const bad = (what: string) => invalidArgument(`${at}: ${field} takes ${what}, not ${describeValue(v)}`);
  switch (def.kind) {
    case "string":
    case "list":
      if (typeof v !== "string") throw bad(nullAllowed ? "a string or null" : "a string");
      if (v.length > MAX_FILTER_STRING)
        throw new ZgridError(
          ErrorCode.RESOURCE_EXHAUSTED,
          `${at}: a value of ${v.length} characters is longer than ${MAX_FILTER_STRING}`,
        );
      return;
    case "status":
      if (typeof v !== "string" || !def.statuses!.includes(v))
        throw bad(`one of the statuses ${def.statuses!.join(", ")}`);
      return;
    case "number":
      if (typeof v !== "number" || !Number.isFinite(v)) throw bad("a number");
      return;
    case "time":
      if (typeof v !== "number" || !Number.isFinite(v))
        throw bad(`a time in milliseconds since 1970${nullAllowed ? " or null" : ""}`);
      return;
    default: // boolean
      if (typeof v !== "boolean") throw bad("true or false");
  }
}

function andOf<T>(preds: Predicate<T>[]): Predicate<T> {
  if (preds.length === 1) return preds[0];
  return (t) => {
    for (const p of preds) if (!p(t)) return false;
    return true;
  };
}

function orOf<T>(preds: Predicate<T>[]): Predicate<T> {
  if (preds.length === 1) return preds[0];
  return (t) => {
    for (const p of preds) if (p(t)) return true;
    return false;
  };
}

/** The sessions a filter confines its matches to, when each OR clause says `sessionId eq/in`. */
function sessionsNamed(clauses: Condition[][]): string[] | null {
  const ids = new Set<string>();
  for (const clause of clauses) {
    const c = clause.find((c) => c.field === "sessionId" && (c.op === "eq" || c.op === "in"));
    if (!c) return null;
    for (const id of Array.isArray(c.value) ? c.value : [c.value]) ids.add(id as string);
  }
  return [...ids];
}
