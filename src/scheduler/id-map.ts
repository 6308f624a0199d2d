import { counterOf, type IdGenerator } from "./ids.js";

/** Records a page holds: ids whose counters differ only in their last 12 bits share one page. */
const PAGE_BITS = 12;
const PAGE_SIZE = 1 << PAGE_BITS;

interface Page<V> {
  readonly slots: (V | undefined)[];
  count: number;
}

/**
 * The records of one kind by id (the tasks, or the results, in memory), without hashing the ids this
 * process makes: such an id names its record's slot, its counter (counterOf), in pages of
 * 4,096 slots made on first use and dropped once empty. Ids made elsewhere (records a store kept from
 * an earlier start) go to a Map. A task's submission, dispatch and end looked each of its records up in a
 * Map of hundreds of thousands of string keys, a cache miss each; consecutive ids are neighbours here.
 *
 * What the scheduler uses of a Map: a record's key is its own id. Iteration (values, entries) visits
 * the records of other ids first, then this process's in id order (the order they were made in); a
 * record removed meanwhile is not visited, one added to a page not yet visited is.
 */
export class IdMap<V extends { readonly id: string }> {
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
    return this.page(Math.floor(h / PAGE_SIZE))?.slots[h % PAGE_SIZE];
  }

  has(id: string): boolean {
    return this.get(id) !== undefined;
  }

  /** `value` under `id`, which must be its own id. */
  set(id: string, value: V): this {
    const h = counterOf(this.head, id);
    if (h < 0) {
      this.others.set(id, value);
      return this;
    }
    const no = Math.floor(h / PAGE_SIZE);
    let page = this.page(no);
    if (page === undefined) {
      page = { slots: new Array<V | undefined>(PAGE_SIZE), count: 0 };
      this.pages.set(no, page);
      this.lastPage = page;
      this.lastPageNo = no;
    }
    const at = h % PAGE_SIZE;
    if (page.slots[at] === undefined) {
      page.count++;
      this.paged++;
    }
    page.slots[at] = value;
    return this;
  }

  delete(id: string): boolean {
    const h = counterOf(this.head, id);
    if (h < 0) return this.others.delete(id);
    const no = Math.floor(h / PAGE_SIZE);
    const page = this.page(no);
    const at = h % PAGE_SIZE;
    if (page === undefined || page.slots[at] === undefined) return false;
    page.slots[at] = undefined;
    this.paged--;
    if (--page.count === 0) {
      this.pages.delete(no);
      if (this.lastPage === page) {
        this.lastPage = undefined;
        this.lastPageNo = -1;
      }
    }
    return true;
  }

  *values(): Generator<V> {
    yield* this.others.values();
    for (const no of [...this.pages.keys()].sort((a, b) => a - b)) {
      const page = this.pages.get(no);
      if (page === undefined) continue;
      const slots = page.slots;
      for (let i = 0; i < PAGE_SIZE; i++) {
        const v = slots[i];
        if (v !== undefined) yield v;
      }
    }
  }

  *keys(): Generator<string> {
    for (const v of this.values()) yield v.id;
  }

  *entries(): Generator<[string, V]> {
    for (const v of this.values()) yield [v.id, v];
  }

  [Symbol.iterator](): Generator<[string, V]> {
    return this.entries();
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
