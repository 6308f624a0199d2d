import { randomBytes } from "node:crypto";

/**
 * Ids that are cheap on the hot path: the kind's letter, a random prefix per process start and a counter
 * of that kind. Unique across restarts because the prefix changes; short, so a million of them cost
 * little memory. An id this generator made names its counter (counterOf): the IdMap of its kind finds
 * its record by it, without hashing the id.
 */
export class IdGenerator {
  private readonly prefix: string;
  private readonly counters = new Map<string, { next: number; head: string }>();

  constructor() {
    this.prefix = randomBytes(5).toString("hex");
  }

  next(kind: string): string {
    const c = this.counter(kind);
    const id = c.head + (c.next++).toString(36);
    // Reading a character flattens the concatenation, which the garbage collector then drops: a flat
    // id costs about 34 bytes instead of 57 (a million queued tasks hold two million ids).
    id.charCodeAt(0);
    return id;
  }

  /** What every id of `kind` this generator makes begins with (counterOf reads the rest). */
  head(kind: string): string {
    return this.counter(kind).head;
  }

  private counter(kind: string): { next: number; head: string } {
    let c = this.counters.get(kind);
    if (c === undefined) {
      c = { next: 0, head: kind + this.prefix };
      this.counters.set(kind, c);
    }
    return c;
  }
}

/** Base-36 digits of a counter counterOf reads: 36^10 is within a double's exact integers. */
const MAX_COUNTER_DIGITS = 10;

/**
 * The counter `id` was made with, if it is an id that begins with `head` (IdGenerator.head) as that
 * generator writes them; else -1 (an id of another kind, of another process start, or not of this form:
 * a tail with a leading zero, say).
 */
export function counterOf(head: string, id: string): number {
  const n = id.length - head.length;
  if (n < 1 || n > MAX_COUNTER_DIGITS || !id.startsWith(head)) return -1;
  // toString(36) writes no leading zero: "0" alone is counter 0, "01" no id of ours.
  if (n > 1 && id.charCodeAt(head.length) === 48) return -1;
  return base36(id, head.length);
}

/** The characters of `s` from `from` on as a base-36 number, or -1 if one is not a lowercase digit. */
function base36(s: string, from: number): number {
  let v = 0;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) v = v * 36 + (c - 48);
    else if (c >= 97 && c <= 122) v = v * 36 + (c - 87);
    else return -1;
  }
  return v;
}

/** Characters of an id's tail read as a base-36 number by IdList: a counter's last digits. */
const TAIL = 4;

/** The tail of `id` as a number, or -1 if it is not TAIL lowercase base-36 digits. */
function tailOf(id: string): number {
  return id.length <= TAIL ? -1 : base36(id, id.length - TAIL);
}

/**
 * A list of ids held in little memory: ids made one after the other by an IdGenerator share a prefix and
 * count up by a constant step, so a run of them is kept as (prefix, first value, step, count); an id
 * repeated is a run of step 0. Lists that do not shape into runs are kept as they are. What the answers of
 * keyed submissions keep for ten minutes (a million tasks' ids: a few runs, not three million strings).
 */
export class IdList {
  private constructor(
    readonly length: number,
    private readonly plain: readonly string[] | null,
    private readonly prefixes: string[],
    /** Per run: first tail value (-1 for a run of one id repeated), step, count. */
    private readonly runs: number[],
  ) {}

  static of(ids: readonly string[]): IdList {
    const prefixes: string[] = [];
    const runs: number[] = [];
    let prefix = "";
    let next = 0;
    let r = -3; // index of the current run's (first, step, count) in `runs`
    for (const id of ids) {
      const v = tailOf(id);
      if (r >= 0) {
        const count = runs[r + 2];
        if (runs[r] < 0) {
          if (id === prefix) {
            runs[r + 2]++;
            continue;
          }
        } else if (v >= 0 && id.length === prefix.length + TAIL && id.startsWith(prefix)) {
          if (count === 1 && v > runs[r]) {
            runs[r + 1] = v - runs[r];
            runs[r + 2] = 2;
            next = v + runs[r + 1];
            continue;
          }
          if (v === next) {
            runs[r + 2]++;
            next += runs[r + 1];
            continue;
          }
        }
      }
      if (prefixes.length * 2 > ids.length) return new IdList(ids.length, ids.slice(), [], []);
      prefix = v < 0 ? id : id.slice(0, id.length - TAIL);
      prefixes.push(prefix);
      runs.push(v, 0, 1);
      r = runs.length - 3;
      next = v;
    }
    return new IdList(ids.length, null, prefixes, runs);
  }

  /** The ids, in order. */
  toArray(): string[] {
    if (this.plain) return this.plain.slice();
    const out = new Array<string>(this.length);
    let at = 0;
    for (let k = 0; k < this.prefixes.length; k++) {
      const prefix = this.prefixes[k];
      const [first, step, count] = this.runs.slice(3 * k, 3 * k + 3);
      for (let i = 0; i < count; i++)
        out[at++] = first < 0 ? prefix : prefix + (first + step * i).toString(36).padStart(TAIL, "0");
    }
    return out;
  }
}
