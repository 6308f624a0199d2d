import { isPlainObject } from "./codec.js";
import { invalidArgument } from "./errors.js";

/** Argument readers for command handlers: each throws INVALID_ARGUMENT naming the argument. */
export function str(args: Record<string, unknown>, name: string): string {
  const v = args[name];
  if (typeof v !== "string" || v.length === 0)
    throw invalidArgument(`argument "${name}" must be a non-empty string`);
  return v;
}

export function optStr(args: Record<string, unknown>, name: string): string | undefined {
  const v = args[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw invalidArgument(`argument "${name}" must be a string`);
  return v;
}

export function optInt(
  args: Record<string, unknown>,
  name: string,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const v = args[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw invalidArgument(`argument "${name}" must be an integer between ${min} and ${max}`);
  }
  return v;
}

export function optBool(args: Record<string, unknown>, name: string): boolean | undefined {
  const v = args[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") throw invalidArgument(`argument "${name}" must be a boolean`);
  return v;
}

export function strList(args: Record<string, unknown>, name: string, optional = false): string[] {
  const v = args[name];
  if ((v === undefined || v === null) && optional) return [];
  if (!Array.isArray(v)) throw invalidArgument(`argument "${name}" must be a list of strings`);
  for (const item of v) {
    if (typeof item !== "string") throw invalidArgument(`argument "${name}" must be a list of strings`);
  }
  return v as string[];
}

export function list(args: Record<string, unknown>, name: string): unknown[] {
  const v = args[name];
  if (!Array.isArray(v)) throw invalidArgument(`argument "${name}" must be a list`);
  return v;
}

export function optMap(args: Record<string, unknown>, name: string): Record<string, unknown> | undefined {
  const v = args[name];
  if (v === undefined || v === null) return undefined;
  if (!isPlainObject(v)) {
    throw invalidArgument(`argument "${name}" must be a map`);
  }
  return v as Record<string, unknown>;
}
