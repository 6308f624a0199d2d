import { counterOf, type IdGenerator } from "./ids.js";

/** Records a page holds: ids whose counters differ only in their last 12 bits share one page. */
const PAGE_BITS = 12;
const PAGE_SIZE = 1 << PAGE_BITS;
/**
 * A page that holds fewer records than this, and is not the newest, keeps them in a Map of its own: a
 * few records that stay (a payload that queued tasks share, a long task) keep no 32 KB of slots each.
 */
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
 * made on first use and dropped once empty. Ids made elsewhere (records a store kept from an earlier
 * start) go to a Map. A task's submission, dispatch and end looked each of its records up in a Map of
 * hundreds of thousands of string keys, a cache miss each; consecutive ids are neighbours here.
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
  /** The page of the newest ids: it stays dense. -1 before the first. */
  private newest = -1;
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
      // A page of newer ids is dense; one of older ids (a record read back from the store) is not.
      page =
        no > this.newest
          ? { slots: new Array<V | undefined>(PAGE_SIZE), sparse: null, count: 0 }
          : { slots: null, sparse: new Map(), count: 0 };
      this.pages.set(no, page);
      this.lastPage = page;
      this.lastPageNo = no;
      if (no > this.newest) {
        const before = this.pages.get(this.newest);
        this.newest = no;
        if (before !== undefined) this.thin(before);
      }
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
    } else if (no !== this.newest) this.thin(page);
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
      // Read through the page as it is at each step: it may turn sparse while a listing waits.
      let i = 0;
      for (; page.slots !== null && i < PAGE_SIZE; i++) {
        const v = page.slots[i];
        if (v !== undefined) yield out(first + i, v);
      }
      if (page.slots !== null) continue;
      for (const at of [...page.sparse!.keys()].sort((a, b) => a - b)) {
        if (at < i) continue;
        const v = page.sparse!.get(at);
        if (v !== undefined) yield out(first + at, v);
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

  /** A dense page that holds few records keeps them by slot in a Map from now on. */
  private thin(page: Page<V>): void {
    const slots = page.slots;
    if (slots === null || page.count >= SPARSE_BELOW) return;
    const sparse = new Map<number, V>();
    for (let at = 0; at < PAGE_SIZE; at++) {
      const v = slots[at];
      if (v !== undefined) sparse.set(at, v);
    }
    page.sparse = sparse;
    page.slots = null;
  }
}
