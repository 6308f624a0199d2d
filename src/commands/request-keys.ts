import { OldestFirst } from "../scheduler/oldest-first.js";

/**
 * Answers of keyed requests (`tasks.submit {requestKey}`), kept for a while: a request sent again with the
 * same key (a client that timed out and retried, a copy delivered late) gets the first answer, and is not
 * done twice. Bounded in time, in keys and in the tasks the kept answers name.
 */
export class RequestKeys<T> {
  private readonly entries = new Map<
    string,
    { at: number; answer: Promise<T>; weight: number; size: number }
  >();
  private readonly oldest = new OldestFirst(this.entries);
  private weight = 0;

  constructor(
    readonly ttlMs = 10 * 60_000,
    private readonly maxKeys = 100_000,
    private readonly maxWeight = 1_000_000,
  ) {}

  /** How many keys are kept. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * The answer of the request first made with `key`, or that of `work()` if there was none. `size`
   * describes the request (its task count): a key reused for a request of another size is refused by
   * `mismatch`. A failed answer is not kept: the request may be made again.
   */
  run(key: string, size: number, work: () => Promise<T>, mismatch: () => Error): Promise<T> {
    const now = Date.now();
    this.expire(now);
    const hit = this.entries.get(key);
    if (hit) return hit.size === size ? hit.answer : Promise.reject(mismatch());
    const answer = work();
    const entry = { at: now, answer, weight: Math.max(1, size), size };
    this.entries.set(key, entry);
    this.weight += entry.weight;
    answer.catch(() => {
      if (this.entries.get(key) !== entry) return;
      this.entries.delete(key);
      this.weight -= entry.weight;
    });
    return answer;
  }

  /** Takes back an answer kept before a restart (the store's), made at `at`; call in order of `at`. */
  seed(key: string, at: number, answer: T, size: number): void {
    if (this.entries.has(key)) return;
    const entry = { at, answer: Promise.resolve(answer), weight: Math.max(1, size), size };
    this.entries.set(key, entry);
    this.weight += entry.weight;
    this.expire(Date.now());
  }

  /** Drops the oldest entries past their time, or past the bounds. */
  private expire(now: number): void {
    for (let head = this.oldest.peek(); head !== undefined; head = this.oldest.peek()) {
      const e = head[1];
      if (e.at > now - this.ttlMs && this.entries.size < this.maxKeys && this.weight <= this.maxWeight) break;
      this.oldest.shift();
      this.weight -= e.weight;
    }
  }
}
