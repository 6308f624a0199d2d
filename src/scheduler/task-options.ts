import { isPlainObject } from "../protocol/codec.js";
import { invalidArgument } from "../protocol/errors.js";
import { DEFAULT_TASK_OPTIONS, type TaskOptions } from "./model.js";

const STRING_KEYS = [
  "partitionId",
  "applicationName",
  "applicationVersion",
  "applicationNamespace",
  "applicationService",
  "engineType",
] as const;

/**
 * Reads a task-options map from a request, checking every field; unknown keys are an error so that a
 * typo (`maxRetry`) is not silently ignored.
 */
export function parseTaskOptions(raw: unknown, where: string): Partial<TaskOptions> {
  if (raw === undefined || raw === null) return {};
  if (!isPlainObject(raw)) throw invalidArgument(`${where} must be a map`);
  const out: Partial<TaskOptions> = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (value === undefined || value === null) continue;
    switch (key) {
      case "maxDuration":
      case "maxRetries":
        if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 1e9) {
          throw invalidArgument(
            `${where}.${key} must be a non-negative integer${key === "maxDuration" ? " (milliseconds)" : ""}`,
          );
        }
        out[key] = value;
        break;
      case "priority":
        if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 1_000_000) {
          throw invalidArgument(`${where}.priority must be an integer from 0 to 1000000`);
        }
        out.priority = value;
        break;
      case "options":
        // A plain map only: a Date, Set, RegExp or extension value would be stored and sent back to
        // every client and worker, which may not read it.
        if (!isPlainObject(value)) throw invalidArgument(`${where}.options must be a map of strings`);
        for (const v of Object.values(value as Record<string, unknown>)) {
          if (typeof v !== "string") throw invalidArgument(`${where}.options must be a map of strings`);
        }
        out.options = value as Record<string, string>;
        break;
      default:
        if (!(STRING_KEYS as readonly string[]).includes(key)) {
          throw invalidArgument(
            `${where} has an unknown option "${key}": known are maxDuration, maxRetries, priority, options, ${STRING_KEYS.join(", ")}`,
          );
        }
        if (typeof value !== "string") throw invalidArgument(`${where}.${key} must be a string`);
        (out as Record<string, string>)[key] = value;
    }
  }
  if (out.partitionId === "") delete out.partitionId;
  return out;
}

/** Session defaults → submission → task (design §5). */
export function mergeTaskOptions(...layers: Partial<TaskOptions>[]): TaskOptions {
  const merged: TaskOptions = { ...DEFAULT_TASK_OPTIONS };
  for (const layer of layers) {
    for (const key of Object.keys(layer) as (keyof TaskOptions)[]) {
      const v = layer[key];
      if (v !== undefined) (merged as unknown as Record<string, unknown>)[key] = v;
    }
  }
  return merged;
}
