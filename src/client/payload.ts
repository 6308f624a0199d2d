import { pack, unpack } from "msgpackr";
import { encode } from "../protocol/codec.js";

/**
 * The payload of a task run by a ServiceBase application: which method, and its arguments serialized
 * by msgpackr (an array is spread as the method's arguments).
 */
export function encodePayload(method: string, args: unknown[] | unknown = []): Buffer {
  return encode({ method, args: pack(args) });
}

/** Decodes what a ServiceBase method returned (msgpackr); an empty output is `null`. */
export function decodeOutput<T = unknown>(data: Uint8Array): T {
  if (data.length === 0) return null as T;
  return unpack(data) as T;
}
