import { OldestFirst } from "../scheduler/oldest-first.js";

/**
 * Answers of keyed requests (`tasks.submit {requestKey}`), kept for a while: a request sent again with the
 * same key (a client that timed out and retried, a copy delivered late) gets the first answer, and is not
 * done twice. Bounded in time, in keys and in the tasks the kept answers name.
 */
export class RequestKeys<T, K = T> {
  private readonly entries = new Map<
    string,
    { at: number; answer: Promise<K>; weight: number; size: number }
  >();
  private readonly oldest = new OldestFirst(this.entries);
  private weight = 0;

  readonly ttlMs: number;
  private readonly maxKeys: number;
  private readonly maxWeight: number;
  private readonly keep: (answer: T) => K;
  private readonly restore: (kept: K) => T;

  /**
   * Kept for `ttlMs`, at most `maxKeys` keys and answers naming `maxWeight` tasks in all. `keep` turns an
   * answer into what is kept of it (smaller), `restore` turns that back into the answer a resend gets.
   */
  constructor(
    opts: {
      ttlMs?: number;
      maxKeys?: number;
      maxWeight?: number;
      keep?: (answer: T) => K;
      restore?: (kept: K) => T;
    } = {},
  ) {
    this.ttlMs = opts.ttlMs ?? 10 * 60_000;
    this.maxKeys = opts.maxKeys ?? 100_000;
    this.maxWeight = opts.maxWeight ?? 1_000_000;
    this.keep = opts.keep ?? ((a) => a as unknown as K);
    this.restore = opts.restore ?? ((k) => k as unknown as T);
  }

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
    if (hit) return hit.size === size ? hit.answer.then(this.restore) : Promise.reject(mismatch());
    const answer = work();
    // What is kept is made after the reply has gone (keep() walks every id of the answer).
    const kept = answer.then(
      (a) =>
        new Promise<K>((resolve, reject) =>
          setImmediate(() => {
            try {
              resolve(this.keep(a));
            } catch (err) {
              reject(err as Error);
            }
          }),
        ),
    );
    const entry = { at: now, answer: kept, weight: Math.max(1, size), size };
    this.entries.set(key, entry);
    this.weight += entry.weight;
    entry.answer.catch(() => {
      if (this.entries.get(key) !== entry) return;
      this.entries.delete(key);
      this.weight -= entry.weight;
    });
    return answer;
  }

  /** Takes back an answer kept before a restart (the store's), made at `at`; call in order of `at`. */
  seed(key: string, at: number, answer: T, size: number): void {
    if (this.entries.has(key)) return;
    const entry = { at, answer: Promise.resolve(this.keep(answer)), weight: Math.max(1, size), size };
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
