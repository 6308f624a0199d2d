import { counterOf, type IdGenerator } from "./ids.js";

/** Records a page holds: ids whose counters differ only in their last 12 bits share one page. */
const PAGE_BITS = 12;
const PAGE_SIZE = 1 << PAGE_BITS;
/**
 * A page keeps its records in a Map of its own until it holds DENSE_FROM of them, then in an array of
 * 4,096 slots until it holds fewer than SPARSE_BELOW: a few records that stay while their neighbours
 * leave (a payload queued tasks share, a long task), or a worker's few tasks in hand, keep no 32 KB of
 * slots each. The gap between the two keeps a page from changing back and forth at every change.
 */
const DENSE_FROM = PAGE_SIZE / 16;
const SPARSE_BELOW = PAGE_SIZE / 64;

/** One page: its slots while dense, else its records by slot. */
interface Page<V> {
  slots: (V | undefined)[] | null;
  sparse: Map<number, V> | null;
  count: number;
}

/**
 * The records of one kind by id (the tasks, or the results, in memory), without hashing the ids this
 * process makes: such an id names its record's slot, its counter (counterOf), in pages of 4,096 slots
 * made on first use and dropped once empty (a page of a few records keeps them in a small Map). Ids
 * made elsewhere (records a store kept from an earlier start) go to a Map. A task's submission,
 * dispatch and end looked each of its records up in a Map of hundreds of thousands of string keys, a
 * cache miss each; consecutive ids are neighbours here.
 *
 * What the scheduler uses of a Map. Iteration visits the values of other ids first, then this process's
 * in id order (the order they were made in); a value removed meanwhile is not visited, one added
 * meanwhile may not be.
 */
export class IdMap<V> {
  private readonly pages = new Map<number, Page<V>>();
  private readonly others = new Map<string, V>();
  /** Records in pages. */
  private paged = 0;
  /** The page looked up last, and its number: lookups come in runs of neighbours. */
  private lastPage: Page<V> | undefined;
  private lastPageNo = -1;
  /** What the ids of this map's kind that this process makes begin with. */
  private readonly head: string;

  constructor(ids: IdGenerator, kind: string) {
    this.head = ids.head(kind);
  }

  get size(): number {
    return this.paged + this.others.size;
  }

  get(id: string): V | undefined {
    const h = counterOf(this.head, id);
    if (h < 0) return this.others.get(id);
    const page = this.page(Math.floor(h / PAGE_SIZE));
    if (page === undefined) return undefined;
    return page.slots !== null ? page.slots[h % PAGE_SIZE] : page.sparse!.get(h % PAGE_SIZE);
  }

  has(id: string): boolean {
    return this.get(id) !== undefined;
  }

  set(id: string, value: V): this {
    const h = counterOf(this.head, id);
    if (h < 0) {
      this.others.set(id, value);
      return this;
    }
    const no = Math.floor(h / PAGE_SIZE);
    const at = h % PAGE_SIZE;
    let page = this.page(no);
    if (page === undefined) {
      page = { slots: null, sparse: new Map(), count: 0 };
      this.pages.set(no, page);
      this.lastPage = page;
      this.lastPageNo = no;
    }
    if (page.slots !== null) {
      if (page.slots[at] === undefined) {
        page.count++;
        this.paged++;
      }
      page.slots[at] = value;
    } else {
      const sparse = page.sparse!;
      if (!sparse.has(at)) {
        page.count++;
        this.paged++;
      }
      sparse.set(at, value);
      if (page.count >= DENSE_FROM) thicken(page);
    }
    return this;
  }

  delete(id: string): boolean {
    const h = counterOf(this.head, id);
    if (h < 0) return this.others.delete(id);
    const no = Math.floor(h / PAGE_SIZE);
    const page = this.page(no);
    if (page === undefined) return false;
    const at = h % PAGE_SIZE;
    if (page.slots !== null) {
      if (page.slots[at] === undefined) return false;
      page.slots[at] = undefined;
    } else if (!page.sparse!.delete(at)) return false;
    this.paged--;
    if (--page.count === 0) {
      this.pages.delete(no);
      if (this.lastPage === page) {
        this.lastPage = undefined;
        this.lastPageNo = -1;
      }
    } else if (page.slots !== null && page.count < SPARSE_BELOW) thin(page);
    return true;
  }

  *values(): Generator<V> {
    yield* this.others.values();
    yield* this.inPages((_, v) => v);
  }

  *keys(): Generator<string> {
    for (const [id] of this.entries()) yield id;
  }

  *entries(): Generator<[string, V]> {
    yield* this.others.entries();
    yield* this.inPages((counter, v): [string, V] => [this.head + counter.toString(36), v]);
  }

  [Symbol.iterator](): Generator<[string, V]> {
    return this.entries();
  }

  /** `out` of each value in pages and its counter, in counter order. */
  private *inPages<T>(out: (counter: number, value: V) => T): Generator<T> {
    for (const no of [...this.pages.keys()].sort((a, b) => a - b)) {
      const page = this.pages.get(no);
      if (page === undefined) continue;
      const first = no * PAGE_SIZE;
      // Read through the page as it is at each step: it may change form while a listing waits.
      let i = 0;
      while (i < PAGE_SIZE) {
        if (page.slots !== null) {
          const v = page.slots[i++];
          if (v !== undefined) yield out(first + i - 1, v);
          continue;
        }
        const ats = [...page.sparse!.keys()].filter((at) => at >= i).sort((a, b) => a - b);
        let k = 0;
        for (; k < ats.length && page.slots === null; k++) {
          const v = page.sparse!.get(ats[k]);
          if (v !== undefined) yield out(first + ats[k], v);
        }
        if (page.slots === null) break;
        // It turned dense after giving ats[k - 1]: on from the slot after.
        i = ats[k - 1] + 1;
      }
    }
  }

  private page(no: number): Page<V> | undefined {
    if (no === this.lastPageNo) return this.lastPage;
    const page = this.pages.get(no);
    if (page !== undefined) {
      this.lastPage = page;
      this.lastPageNo = no;
    }
    return page;
  }
}

/** A dense page keeps its records by slot in a Map from now on. */
function thin<V>(page: Page<V>): void {
  const slots = page.slots!;
  const sparse = new Map<number, V>();
  for (let at = 0; at < PAGE_SIZE; at++) {
    const v = slots[at];
    if (v !== undefined) sparse.set(at, v);
  }
  page.sparse = sparse;
  page.slots = null;
}

/** A sparse page keeps its records in an array of slots from now on. */
function thicken<V>(page: Page<V>): void {
  const slots = new Array<V | undefined>(PAGE_SIZE);
  for (const [at, v] of page.sparse!) slots[at] = v;
  page.slots = slots;
  page.sparse = null;
}
