/**
 * A short, safe rendering of a value a peer sent, for an error message: never throws (BigInt, cycles,
 * deep nesting, huge strings) and never echoes more than a few dozen characters back.
 */
export function describeValue(value: unknown, max = 40): string {
  switch (typeof value) {
    case "string": {
      const s = value.length > max ? `${value.slice(0, max)}…` : value;
      return JSON.stringify(s);
    }
    case "number":
    case "boolean":
      return String(value);
    case "bigint":
      return `${value}n`;
    case "undefined":
      return "nothing";
    case "object":
      if (value === null) return "null";
      if (Array.isArray(value)) return `a list of ${value.length}`;
      if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `${value.byteLength} bytes`;
      {
        const proto: unknown = Object.getPrototypeOf(value);
        return proto === Object.prototype || proto === null
          ? "a map"
          : `a ${(value as object).constructor?.name ?? "value"}`;
      }
    default:
      return `a ${typeof value}`;
  }
}

// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/g;

function escapeControl(c: string): string {
  if (c === "\n") return "\\n";
  if (c === "\t") return "\\t";
  if (c === "\r") return "\\r";
  return `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
}

/**
 * An error message with its control characters (C0, DEL, C1) written out as escapes (`\x1b`, `\n`):
 * a message repeats ids and names a peer gave, and one printed as given could move a terminal's cursor,
 * clear it, or forge a line of its own in a log.
 */
export function escapeControls(message: string): string {
  return message.replace(CONTROL_CHARACTERS, escapeControl);
}
