import { parseArgs, type ParseArgsConfig } from "node:util";

/** A command-line mistake: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

export type ParsedArgs = {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
};

/** parseArgs that turns its exceptions into UsageErrors. */
export function parse(
  argv: string[],
  options: NonNullable<ParseArgsConfig["options"]>,
  allowPositionals = false,
): ParsedArgs {
  try {
    const r = parseArgs({
      args: argv,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals,
      strict: true,
    });
    return r as ParsedArgs;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function intFlag(
  value: unknown,
  flag: string,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== "string" || !/^-?\d+$/.test(value) || n < min || n > max) {
    throw new UsageError(`${flag} must be an integer from ${min} to ${max}, not ${JSON.stringify(value)}`);
  }
  return n;
}

/** Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate a mistyped word was most likely meant to be: the closest within a third of its length
 * (at least one edit), or the only one it begins; undefined when none is close.
 */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(w.length / 3)) + 1;
  for (const c of candidates) {
    const dist = distance(w, c);
    if (dist < bestDistance) [best, bestDistance] = [c, dist];
  }
  if (best) return best;
  const prefixed = candidates.filter((c) => w.length >= 2 && c.startsWith(w));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

/** "did you mean X?" for a mistyped word, or "" when nothing is close. */
export function didYouMean(word: string, candidates: readonly string[]): string {
  const s = suggest(word, candidates);
  return s ? `: did you mean "${s}"?` : "";
}
