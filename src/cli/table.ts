import { escapeControls } from "../protocol/describe.js";

/**
 * A plain text table: a header row, columns padded to their widest cell. Cells hold names and errors
 * clients and tasks gave: their control characters are written out (`\x1b`, `\n`), so that none moves
 * the terminal's cursor, clears it, or starts a line of its own.
 */
export function table(headers: string[], cells: string[][]): string {
  const rows = cells.map((r) => r.map(escapeControls));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

export function time(ms: number | null | undefined): string {
  return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "-";
}
