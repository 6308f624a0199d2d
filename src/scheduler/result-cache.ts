/**
 * Recent outputs kept in memory after the store has them (issue 18 item 1): a wait that is about to
 * download an output finds it here; older ones are read back from the store. Bounded in bytes, least
 * recently used first out.
 */
export class ResultCache {
  private readonly entries = new Map<string, Buffer>();
  private total = 0;

  constructor(readonly capBytes: number) {}

  /** Bytes held. */
  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.entries.size;
  }

  get(id: string): Buffer | undefined {
    const data = this.entries.get(id);
    if (data === undefined) return undefined;
    // Most recently used last: the Map's order is the eviction order.
    this.entries.delete(id);
    this.entries.set(id, data);
    return data;
  }

  /** Keeps `data` if it fits the cap at all, evicting the least recently used as needed. */
  put(id: string, data: Buffer): void {
    this.delete(id);
    if (data.length > this.capBytes) return;
    this.entries.set(id, data);
    this.total += data.length;
    for (const [oldest, old] of this.entries) {
      if (this.total <= this.capBytes) break;
      this.entries.delete(oldest);
      this.total -= old.length;
    }
  }

  delete(id: string): void {
    const data = this.entries.get(id);
    if (data === undefined) return;
    this.entries.delete(id);
    this.total -= data.length;
  }
}
