/**
 * A Map read oldest entry first across many calls, for bounded maps that drop their oldest entries
 * (caches, kept answers). A `for (… of map)` that starts over at each call walks again over every slot
 * deleted since the map was last rehashed: V8 keeps those slots until then, so a full map that drops
 * one entry per insertion costs O(deleted) per insertion, and a cache of 100,000 entries stalled the
 * server for seconds. This keeps one live iterator instead (a Map iterator survives deletions and
 * rehashes), so each slot is passed once.
 *
 * Entries behind the iterator are all gone (taken by `shift`) or held by `peek`; an entry deleted and
 * set again goes to the end, ahead of it. `peek` holds an entry across calls: between a `peek` and the
 * next call, the map must not set that key again with the same value (it would no longer be oldest).
 */
export class OldestFirst<K, V> {
  private it: IterableIterator<[K, V]>;
  private held: [K, V] | undefined;

  constructor(private readonly map: Map<K, V>) {
    this.it = map.entries();
  }

  /** The oldest entry, left in the map; undefined when the map is empty. */
  peek(): [K, V] | undefined {
    if (this.held !== undefined) {
      if (this.map.get(this.held[0]) === this.held[1]) return this.held;
      this.held = undefined;
    }
    let next = this.it.next();
    if (next.done) {
      // An iterator that has ended stays ended: a new one sees what was set since.
      this.it = this.map.entries();
      next = this.it.next();
      if (next.done) return undefined;
    }
    this.held = next.value;
    return this.held;
  }

  /** Takes the oldest entry out of the map; undefined when it is empty. */
  shift(): [K, V] | undefined {
    const entry = this.peek();
    if (entry !== undefined) {
      this.map.delete(entry[0]);
      this.held = undefined;
    }
    return entry;
  }
}
