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
