/**
 * Text that fits a terminal's width without cutting a word: prose wraps at its separators, tables lose
 * their least wanted columns, and what must still be shortened ends at a word with " …".
 */

import { escapeControls } from "../protocol/describe.js";

/** Shortens `text` to at most `max` characters at a word, marking the cut with " …". */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  if (max < 2) return "…".slice(0, max);
  const cut = text.lastIndexOf(" ", max - 2);
  const kept = cut > 0 ? text.slice(0, cut).replace(/[\s,;]+$/, "") : "";
  return kept.trim() ? `${kept} …` : "…";
}

/**
 * Wraps a line at `sep` (", " between figures, "  " between columns of counts) into lines of at most
 * `width`; the following lines are indented two more spaces. A piece too long for a line of its own
 * wraps at spaces, and a single word too long is clipped.
 */
export function wrap(text: string, width: number, sep = ", "): string[] {
  if (text.length <= width) return [text];
  const lead = /^\s*/.exec(text)![0];
  const next = lead + "  ";
  const mark = sep.trimEnd(); // what stays at the end of a piece: "," of ", ", nothing of "  "
  const joiner = sep.slice(mark.length);
  const parts = text.slice(lead.length).split(sep);
  const lines: string[] = [];
  let line = "";
  const push = (): void => {
    if (line) lines.push(line);
    line = "";
  };
  parts.forEach((p, i) => {
    const piece = i < parts.length - 1 ? p + mark : p;
    const start = lines.length === 0 && !line ? lead : next;
    if (line && (line + joiner + piece).length <= width) {
      line += joiner + piece;
      return;
    }
    push();
    if ((start + piece).length <= width) line = start + piece;
    else if (sep !== " ") {
      const sub = wrap(start + piece, width, " ");
      lines.push(...sub.slice(0, -1));
      line = sub.at(-1)!;
    } else line = clip(start + piece, width);
  });
  push();
  return lines;
}

/**
 * A table (first row: the headers) in at most `width` characters, each line starting with `indent`:
 * when it is too wide, the last column is shortened at words if it keeps at least 12 characters, else
 * a column goes, those of `dropFirst` (indexes) first, then from the right; the first column stays.
 */
export function fitTable(
  cells: string[][],
  width: number,
  indent = "  ",
  dropFirst: number[] = [],
): string[] {
  // Names a client or a worker gave, their control characters written out (see table()).
  const rows = cells.map((r) => r.map(escapeControls));
  let cols = rows[0]!.map((_, i) => i);
  const toDrop = [...dropFirst];
  for (;;) {
    const widths = cols.map((c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
    const total = indent.length + widths.reduce((a, b) => a + b, 0) + 2 * (cols.length - 1);
    const room = width - (total - widths.at(-1)!);
    if (total <= width || room >= Math.max(12, rows[0]![cols.at(-1)!]!.length) || cols.length === 1) {
      return rows.map((r) =>
        clip(
          indent +
            cols
              .map((c, i) =>
                i === cols.length - 1 ? clip(r[c] ?? "", room) : (r[c] ?? "").padEnd(widths[i]!),
              )
              .join("  ")
              .trimEnd(),
          width,
        ),
      );
    }
    const drop = toDrop.length > 0 ? toDrop.shift()! : cols.at(-1)!;
    if (drop !== 0) cols = cols.filter((c) => c !== drop);
  }
}
