import { readFileSync } from "node:fs";

/**
 * Options that have a flag, an environment variable and a key in a JSON config file, resolved with the
 * design's precedence: flag > env > file > default (design §2).
 */
export type OptionType = "string" | "int" | "bool" | "list";

export interface OptionSpec {
  /** camelCase key, used in the config file and in the resolved object. */
  key: string;
  /** --kebab-case flag. */
  flag: string;
  short?: string;
  env: string;
  type: OptionType;
  default?: string | number | boolean | string[];
  help: string;
  min?: number;
  max?: number;
}

export type OptionValues = Record<string, string | number | boolean | string[] | undefined>;

/** A setting that could not be read: names the setting and where its value came from. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

const TRUE = new Set(["1", "true", "yes", "on"]);
const FALSE = new Set(["0", "false", "no", "off", ""]);

function convert(spec: OptionSpec, raw: unknown, where: string): string | number | boolean | string[] {
  const fail = (what: string): never => {
    throw new ConfigError(`invalid value ${JSON.stringify(raw)} for ${spec.flag} (from ${where}): ${what}`);
  };
  switch (spec.type) {
    case "string":
      if (typeof raw !== "string" || raw === "") fail("expected a non-empty string");
      return raw as string;
    case "int": {
      const n =
        typeof raw === "number"
          ? raw
          : typeof raw === "string" && /^-?\d+$/.test(raw.trim())
            ? Number(raw)
            : NaN;
      if (!Number.isInteger(n)) fail("expected an integer");
      if (spec.min !== undefined && n < spec.min) fail(`must be at least ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) fail(`must be at most ${spec.max}`);
      return n;
    }
    case "bool":
      if (typeof raw === "boolean") return raw;
      if (typeof raw === "string" && TRUE.has(raw.toLowerCase())) return true;
      if (typeof raw === "string" && FALSE.has(raw.toLowerCase())) return false;
      return fail("expected true or false");
    case "list":
      if (Array.isArray(raw) && raw.every((x) => typeof x === "string")) return raw as string[];
      if (typeof raw === "string") {
        return raw
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean);
      }
      return fail("expected a comma-separated list");
  }
}

export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path} must hold a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

/**
 * Resolves every option of `specs`. `flags` are the values parsed from the command line (by key);
 * `file` is the parsed config file or undefined; unknown keys in the file are an error.
 */
export function resolveOptions(
  specs: readonly OptionSpec[],
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  file?: { path: string; values: Record<string, unknown> },
): OptionValues {
  const out: OptionValues = {};
  if (file) {
    const known = new Set(specs.map((s) => s.key));
    for (const key of Object.keys(file.values)) {
      if (!known.has(key)) throw new ConfigError(`config file ${file.path}: unknown setting "${key}"`);
    }
  }
  for (const spec of specs) {
    if (flags[spec.key] !== undefined) out[spec.key] = convert(spec, flags[spec.key], `the command line`);
    else if (env[spec.env] !== undefined)
      out[spec.key] = convert(spec, env[spec.env], `environment ${spec.env}`);
    else if (file && file.values[spec.key] !== undefined)
      out[spec.key] = convert(spec, file.values[spec.key], `config file ${file.path}`);
    else out[spec.key] = spec.default;
  }
  return out;
}

/** The `parseArgs` options for a set of specs (bools are flags; --no-X is handled by the caller). */
export function parseArgsOptions(
  specs: readonly OptionSpec[],
): Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }> {
  const out: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const spec of specs) {
    const name = spec.flag.replace(/^--/, "");
    out[name] = {
      type: spec.type === "bool" ? "boolean" : "string",
      ...(spec.short ? { short: spec.short } : {}),
    };
  }
  return out;
}

/** Maps parseArgs values (by flag name) back to keys. */
export function flagsToKeys(
  specs: readonly OptionSpec[],
  values: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const spec of specs) {
    const v = values[spec.flag.replace(/^--/, "")];
    if (v !== undefined) out[spec.key] = v;
  }
  return out;
}

/** Help text lines for a set of specs. */
export function optionsHelp(specs: readonly OptionSpec[]): string {
  const rows = specs.map((s) => {
    const left = `  ${s.short ? `-${s.short}, ` : ""}${s.flag}${s.type === "bool" ? "" : " " + s.key.replace(/[A-Z]/g, (c) => "_" + c).toUpperCase()}`;
    const def = s.default === undefined || s.default === false ? "" : ` (default ${String(s.default)})`;
    return [left, `${s.help}${def} [${s.env}]`];
  });
  const width = Math.min(40, Math.max(...rows.map(([l]) => l.length)) + 2);
  return rows
    .map(([l, r]) => (l.length >= width ? `${l}\n${" ".repeat(width)}${r}` : l.padEnd(width) + r))
    .join("\n");
}
