import { isPlainObject } from "../protocol/codec.js";
import { invalidArgument } from "../protocol/errors.js";
import type { NewResult, TaskSubmission } from "./scheduler.js";
import { parseTaskOptions } from "./task-options.js";

/** Reading tasks and results of a request (client command or worker agent call) into scheduler input. */

function idList(raw: Record<string, unknown>, key: string, where: string): string[] | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string"))
    throw invalidArgument(`${where}.${key} must be a list of ids`);
  return v as string[];
}

/** One task of tasks.submit, type-checked; the scheduler checks that the ids exist. */
export function parseSubmission(raw: unknown, i: number, blobs: Buffer[]): TaskSubmission {
  const where = `tasks[${i}]`;
  if (!isPlainObject(raw))
    throw invalidArgument(
      `${where} must be a map {payloadId, expectedOutputIds, dataDependencies?, taskOptions?}`,
    );
  const sub: TaskSubmission = {};
  if (raw.payloadId !== undefined) {
    if (typeof raw.payloadId !== "string") throw invalidArgument(`${where}.payloadId must be a result id`);
    sub.payloadId = raw.payloadId;
  } else if (raw.payload !== undefined) {
    if (
      typeof raw.payload !== "number" ||
      !Number.isInteger(raw.payload) ||
      raw.payload < 0 ||
      raw.payload >= blobs.length
    ) {
      throw invalidArgument(
        `${where}.payload must be the index of a blob of this request (it has ${blobs.length})`,
      );
    }
    sub.payload = blobs[raw.payload];
  } else {
    throw invalidArgument(`${where} needs a payloadId (or an inline payload blob index)`);
  }
  sub.expectedOutputIds = idList(raw, "expectedOutputIds", where);
  sub.dataDependencies = idList(raw, "dataDependencies", where);
  if (raw.outputCount !== undefined) {
    if (
      typeof raw.outputCount !== "number" ||
      !Number.isInteger(raw.outputCount) ||
      raw.outputCount < 0 ||
      raw.outputCount > 1000
    ) {
      throw invalidArgument(`${where}.outputCount must be an integer from 0 to 1000`);
    }
    sub.outputCount = raw.outputCount;
  }
  if (raw.taskOptions !== undefined)
    sub.taskOptions = parseTaskOptions(raw.taskOptions, `${where}.taskOptions`);
  return sub;
}

/** One `{name, data?: blob index}` of results.create or the agent's createResults. */
export function parseNewResult(raw: unknown, i: number, blobs: Buffer[]): NewResult {
  if (!isPlainObject(raw)) throw invalidArgument(`results[${i}] must be a map {name, data?}`);
  const name = raw.name ?? "";
  if (typeof name !== "string") throw invalidArgument(`results[${i}].name must be a string`);
  if (raw.data === undefined || raw.data === null) return { name };
  if (
    typeof raw.data !== "number" ||
    !Number.isInteger(raw.data) ||
    raw.data < 0 ||
    raw.data >= blobs.length
  ) {
    throw invalidArgument(
      `results[${i}].data must be the index of a blob of this request (it has ${blobs.length})`,
    );
  }
  return { name, data: blobs[raw.data] };
}
