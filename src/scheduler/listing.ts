import { invalidArgument } from "../protocol/errors.js";
import { isPlainObject } from "../protocol/codec.js";
import { compileFilter, fieldOf, type CompiledFilter, type FieldSet } from "./filter.js";

export { MAX_FILTER_VALUES } from "./filter.js";

/** `filter`, `sort {field, direction}`, `page`, `pageSize` of a list command (design §4). */
export interface ListQuery<T> {
  filter: CompiledFilter<T>;
  /** The sort field's value of a record, or null: the order records are held in (submission order). */
  sortKey: ((item: T) => unknown) | null;
  descending: boolean;
  page: number;
  pageSize: number;
}

export const MAX_PAGE_SIZE = 10_000;
/** Records a scan checks between two yields to the event loop: a few milliseconds of work at most. */
export const SCAN_SLICE = 4096;

export function parseListQuery<T>(args: Record<string, unknown>, fields: FieldSet<T>): ListQuery<T> {
  const filter = compileFilter(args.filter, fields);
  let sortKey: ListQuery<T>["sortKey"] = null;
  let descending = false;
  if (args.sort !== undefined && args.sort !== null) {
    if (!isPlainObject(args.sort) || typeof args.sort.field !== "string") {
      throw invalidArgument(`sort must be a map {field, direction}`);
    }
    const def = fieldOf(fields, args.sort.field);
    if (!def || def.kind === "list") {
      const sortable = [...fields.fields].filter(([, d]) => d.kind !== "list").map(([name]) => name);
      if (fields.dynamic) sortable.push(`${fields.dynamic.prefix}KEY`);
      throw invalidArgument(`cannot sort by "${args.sort.field}": sortable are ${sortable.join(", ")}`);
    }
    sortKey = def.get;
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
  return { filter, sortKey, descending, page, pageSize };
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Visits the records of `source` that match, in slices of SCAN_SLICE records with a yield to the event
 * loop between slices, so a filter over a million records never stalls the requests behind it. The
 * records may change between slices: a list is not a snapshot. `visit` returning false stops the scan.
 */
export async function scan<T>(
  source: Iterable<T>,
  matches: (item: T) => boolean,
  visit: (item: T) => boolean | void,
): Promise<void> {
  let n = 0;
  for (const item of source) {
    if (matches(item) && visit(item) === false) return;
    if (++n % SCAN_SLICE === 0) await yieldToLoop();
  }
}

/** An item with its place in the scan: equal sort keys keep scan order (a stable sort). */
interface Ranked<T> {
  item: T;
  key: unknown;
  at: number;
}

/** Orders by key, unset values (null) last in either direction, then by scan order. */
function comparer<T>(descending: boolean): (a: Ranked<T>, b: Ranked<T>) => number {
  const sign = descending ? -1 : 1;
  return (a, b) => {
    const x = a.key;
    const y = b.key;
    if (x !== y) {
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      if ((x as number) < (y as number)) return -sign;
      if ((x as number) > (y as number)) return sign;
    }
    return a.at - b.at;
  };
}

/**
 * One page of the matching records of `source` and how many match, in bounded memory: unsorted, only
 * the page is kept; sorted, a heap of the first (page + 1) × pageSize in sort order, never a sort of all.
 * Equal sort keys keep `order` (else the order of the scan).
 */
export async function listPage<T>(
  source: Iterable<T>,
  q: ListQuery<T>,
  view: (item: T) => Record<string, unknown>,
  order?: (item: T) => number,
): Promise<{ items: Record<string, unknown>[]; total: number }> {
  const start = q.page * q.pageSize;
  const end = start + q.pageSize;
  let total = 0;
  const sortKey = q.sortKey;
  if (!sortKey) {
    const page: T[] = [];
    await scan(source, q.filter.matches, (item) => {
      if (total >= start && total < end) page.push(item);
      total++;
    });
    return { items: page.map(view), total };
  }
  const heap = new MaxHeap<Ranked<T>>(comparer(q.descending));
  await scan(source, q.filter.matches, (item) => {
    heap.offer({ item, key: sortKey(item), at: order ? order(item) : total }, end);
    total++;
  });
  // The heap holds the first `end` in order, the last of them on top: the page is its top pageSize.
  const page: T[] = [];
  while (heap.size > start) page.push(heap.pop()!.item);
  page.reverse();
  return { items: page.map(view), total };
}

/** A binary heap with the greatest element (by `cmp`) on top. */
class MaxHeap<T> {
  private readonly a: T[] = [];
  constructor(private readonly cmp: (x: T, y: T) => number) {}

  get size(): number {
    return this.a.length;
  }

  /** Adds `x` while fewer than `cap` are held, else takes it instead of the top when it is smaller. */
  offer(x: T, cap: number): void {
    const a = this.a;
    if (a.length < cap) {
      a.push(x);
      this.up(a.length - 1);
    } else if (cap > 0 && this.cmp(x, a[0]) < 0) {
      a[0] = x;
      this.down(0);
    }
  }

  pop(): T | undefined {
    const a = this.a;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      this.down(0);
    }
    return top;
  }

  private up(i: number): void {
    const a = this.a;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.cmp(a[i], a[p]) <= 0) return;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }

  private down(i: number): void {
    const a = this.a;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && this.cmp(a[l], a[m]) > 0) m = l;
      if (r < a.length && this.cmp(a[r], a[m]) > 0) m = r;
      if (m === i) return;
      [a[i], a[m]] = [a[m], a[i]];
      i = m;
    }
  }
}
