import { OldestFirst } from "./oldest-first.js";

/**
 * What an entry costs beside its data: the map's slot, the id, the Buffer and its ArrayBuffer. Counted,
 * so that a million tiny outputs do not fit in a cap meant for their bytes (issue 18 item 2).
 */
const ENTRY_BYTES = 400;

/**
 * Slack a kept buffer's memory may have beyond twice its data: a small Buffer is a view into one of
 * Node's shared pool slabs (Buffer.poolSize, 8 KiB), and copying it would land in another.
 */
const POOL_BYTES = 8192;

const cost = (data: Buffer): number => data.length + ENTRY_BYTES;

/**
 * Recent outputs kept in memory after the store has them (issue 18 item 1): a wait that is about to
 * download an output finds it here; older ones are read back from the store. Bounded in bytes (each
 * entry's overhead counted), least recently used first out.
 */
export class ResultCache {
  private readonly entries = new Map<string, Buffer>();
  private readonly lru = new OldestFirst(this.entries);
  private total = 0;

  constructor(readonly capBytes: number) {}

  /** Bytes held, with ENTRY_BYTES an entry for its overhead. */
  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Whether `id` is kept (its place in the eviction order unchanged). */
  has(id: string): boolean {
    return this.entries.has(id);
  }

  get(id: string): Buffer | undefined {
    const data = this.entries.get(id);
    if (data === undefined) return undefined;
    // Most recently used last: the Map's order is the eviction order.
    this.entries.delete(id);
    this.entries.set(id, data);
    return data;
  }

  /**
   * Keeps `data` if it fits the cap at all, evicting the least recently used as needed. A view into a
   * much larger buffer (an output sliced from a worker's message of many) is copied: kept as it is, it
   * would hold the whole message in memory, uncounted.
   */
  put(id: string, data: Buffer): void {
    this.delete(id);
    if (cost(data) > this.capBytes) return;
    if (data.buffer.byteLength > 2 * data.length + POOL_BYTES) data = Buffer.from(data);
    this.entries.set(id, data);
    this.total += cost(data);
    while (this.total > this.capBytes) {
      const [, old] = this.lru.shift()!;
      this.total -= cost(old);
    }
  }

  delete(id: string): void {
    const data = this.entries.get(id);
    if (data === undefined) return;
    this.entries.delete(id);
    this.total -= cost(data);
  }
}
