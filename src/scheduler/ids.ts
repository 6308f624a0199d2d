import { randomBytes } from "node:crypto";

/**
 * Ids that are cheap on the hot path: a random prefix per process start and a counter. Unique across
 * restarts because the prefix changes; short, so a million of them cost little memory.
 */
export class IdGenerator {
  private readonly prefix: string;
  private counter = 0;

  constructor() {
    this.prefix = randomBytes(5).toString("hex");
  }

  next(kind: string): string {
    const id = `${kind}${this.prefix}${(this.counter++).toString(36)}`;
    // Reading a character flattens the concatenation, which the garbage collector then drops: a flat
    // id costs about 34 bytes instead of 57 (a million queued tasks hold two million ids).
    id.charCodeAt(0);
    return id;
  }
}

/** Characters of an id's tail read as a base-36 number by IdList: a counter's last digits. */
const TAIL = 4;

/** The tail of `id` as a number, or -1 if it is not TAIL lowercase base-36 digits. */
function tailOf(id: string): number {
  if (id.length <= TAIL) return -1;
  let v = 0;
  for (let i = id.length - TAIL; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c >= 48 && c <= 57) v = v * 36 + (c - 48);
    else if (c >= 97 && c <= 122) v = v * 36 + (c - 87);
    else return -1;
  }
  return v;
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
