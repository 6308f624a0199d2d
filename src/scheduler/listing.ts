import { ErrorCode, ZgridError, invalidArgument } from "../protocol/errors.js";
import { isPlainObject } from "../protocol/codec.js";

/** `filter`, `sort {field, direction}`, `page`, `pageSize` of a list command (design §4). */
export interface ListQuery {
  filter: Record<string, unknown>;
  sortField: string | null;
  descending: boolean;
  page: number;
  pageSize: number;
}

export const MAX_PAGE_SIZE = 10_000;
/** The most values one filter of a list may name. */
export const MAX_FILTER_VALUES = 10_000;

export function parseListQuery(
  args: Record<string, unknown>,
  filterKeys: readonly string[],
  sortFields: readonly string[],
): ListQuery {
  const filter = args.filter ?? {};
  if (!isPlainObject(filter)) throw invalidArgument(`filter must be a map`);
  for (const key of Object.keys(filter)) {
    if (!filterKeys.includes(key))
      throw invalidArgument(`unknown filter "${key}": known are ${filterKeys.join(", ")}`);
    const value = filter[key];
    if (Array.isArray(value) && value.length > MAX_FILTER_VALUES) {
      throw new ZgridError(
        ErrorCode.RESOURCE_EXHAUSTED,
        `filter ${key} lists ${value.length} values, more than ${MAX_FILTER_VALUES}: list in several requests`,
      );
    }
  }
  let sortField: string | null = null;
  let descending = false;
  if (args.sort !== undefined && args.sort !== null) {
    if (!isPlainObject(args.sort) || typeof args.sort.field !== "string") {
      throw invalidArgument(`sort must be a map {field, direction}`);
    }
    if (!sortFields.includes(args.sort.field)) {
      throw invalidArgument(`cannot sort by "${args.sort.field}": sortable are ${sortFields.join(", ")}`);
    }
    sortField = args.sort.field;
    const dir = args.sort.direction ?? "asc";
    if (dir !== "asc" && dir !== "desc" && dir !== "ASC" && dir !== "DESC") {
      throw invalidArgument(`sort.direction must be "asc" or "desc"`);
    }
    descending = dir.toLowerCase() === "desc";
  }
  const page = args.page ?? 0;
  const pageSize = args.pageSize ?? 100;
  if (typeof page !== "number" || !Number.isInteger(page) || page < 0)
    throw invalidArgument(`page must be an integer ≥ 0`);
  if (
    typeof pageSize !== "number" ||
    !Number.isInteger(pageSize) ||
    pageSize < 1 ||
    pageSize > MAX_PAGE_SIZE
  ) {
    throw invalidArgument(`pageSize must be an integer from 1 to ${MAX_PAGE_SIZE}`);
  }
  return { filter, sortField, descending, page, pageSize };
}

/** Matches a value against a filter entry: a scalar means equal, a list means one of. */
/** Long filter lists as sets, made once per list: a list of N ids costs O(1) per item, not O(N). */
const setOf = new WeakMap<unknown[], Set<unknown>>();

export function matches(value: unknown, wanted: unknown): boolean {
  if (!Array.isArray(wanted)) return value === wanted;
  if (wanted.length <= 16) return wanted.includes(value);
  let set = setOf.get(wanted);
  if (!set) setOf.set(wanted, (set = new Set(wanted)));
  return set.has(value);
}

/** Sorts (stable, by the field of the view) and cuts one page. */
export function pageOf<T>(
  items: T[],
  q: ListQuery,
  view: (item: T) => Record<string, unknown>,
): { items: Record<string, unknown>[]; total: number } {
  let views = items.map(view);
  if (q.sortField) {
    const f = q.sortField;
    const sign = q.descending ? -1 : 1;
    views = views
      .map((v, i) => ({ v, i }))
      .sort((a, b) => {
        const x = a.v[f] as number | string | null;
        const y = b.v[f] as number | string | null;
        if (x === y) return a.i - b.i;
        if (x === null) return 1;
        if (y === null) return -1;
        return (x < y ? -1 : 1) * sign;
      })
      .map(({ v }) => v);
  }
  const start = q.page * q.pageSize;
  return { items: views.slice(start, start + q.pageSize), total: views.length };
}
