import { Packr } from "msgpackr";

/** Protocol version carried in every header as `v`. */
export const PROTOCOL_VERSION = 1;

// Plain maps in, plain objects out; no msgpackr record extension so any msgpack library can read us.
// skipValues drops undefined properties as JSON does (missing from msgpackr's typings).
const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: "number",
  encodeUndefinedAsNil: true,
  skipValues: [undefined],
} as ConstructorParameters<typeof Packr>[0]);

/**
 * msgpackr writes every message into one buffer that it reuses and only ever grows, up to 1 GiB: a single
 * large message (a commit of 100,000 records is tens of MB) would stay resident for the process's life.
 * After one, encoding starts again in a small buffer; the large one lives as long as its message.
 */
const LARGE_MESSAGE = 1 << 20;
const FRESH_BUFFER = 64 * 1024;

export function encode(value: unknown): Buffer {
  const out = packr.pack(value);
  if (out.length > LARGE_MESSAGE) packr.useBuffer(Buffer.allocUnsafeSlow(FRESH_BUFFER));
  return out;
}

/** A message of one nil: what decode reads after a large message so that the decoder lets it go. */
const NIL = new Uint8Array([0xc0]);

/**
 * msgpackr keeps a DataView of the last buffer it read until it reads another: after a large message
 * (the SQLite writer's commits, tens of MB) that memory stayed while the process was idle. A large
 * message is followed by a read of one nil, which the decoder keeps instead.
 */
export function decode(buf: Uint8Array): unknown {
  try {
    return packr.unpack(buf);
  } finally {
    if (buf.length > LARGE_MESSAGE) packr.unpack(NIL);
  }
}

export type MsgType = "NORMAL" | "WARNING" | "ERROR" | "EVENT";

export interface RequestHeader {
  v: number;
  id: number | null;
  cmd: string;
  token?: string;
  user?: string;
  args?: Record<string, unknown>;
}

export interface ReplyHeader {
  v: number;
  id: number | null;
  msgType: MsgType;
  msg: unknown;
  /** The server's clock at the reply (ms since the epoch): what a request's `deadline` is measured on. */
  now?: number;
  user?: string;
  code?: string;
}

/** A msgpack map as decoded: a plain object (not an array, a blob, a Date or an extension value). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
