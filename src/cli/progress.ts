/** What one progress line shows. */
export interface ProgressState {
  label: string;
  total: number;
  done: number;
  failed: number;
  /** Tasks on a worker's slot (PROCESSING), not those a worker holds in advance. */
  running: number;
  /** Seconds since the submission began: the same clock as the final summary's. */
  elapsedS: number;
  /** Counting tasks sent to the server (a long submission), not tasks ending: "N sent", no failed or running. */
  sending?: boolean;
}

/** Tasks ended per second: one formula for the live line and the final summary, so they agree. */
export function tasksPerSecond(finished: number, seconds: number): string {
  return seconds > 0 ? (finished / seconds).toFixed(0) : "0";
}

/** The figures of a progress line, most wanted first. */
function statParts(s: ProgressState): { parts: string[]; dropOrder: string[] } {
  const finished = s.done + s.failed;
  const rate = s.elapsedS > 0 ? finished / s.elapsedS : 0;
  const eta = rate > 0 && finished < s.total ? `ETA ${((s.total - finished) / rate).toFixed(0)}s` : "";
  const perSecond = `${tasksPerSecond(finished, s.elapsedS)}/s`;
  const failed = `${s.failed} failed`;
  if (s.sending)
    return { parts: [`${s.done} sent`, perSecond, ...(eta ? [eta] : [])], dropOrder: [eta, perSecond] };
  const parts = [`${s.done} done`, failed, `${s.running} running`, perSecond, ...(eta ? [eta] : [])];
  // What goes first when the line is too long; a failure count that is not 0 stays.
  return { parts, dropOrder: [eta, perSecond, ...(s.failed === 0 ? [failed] : [])] };
}

/** The figures as one text: the plain lines written to a pipe or a file. */
export function progressStats(s: ProgressState): string {
  return statParts(s).parts.join(", ");
}

/**
 * One line of progress no longer than `columns - 1` (a line that fills the last column makes some
 * terminals wrap, and the next \r then redraws on a new line). The bar shrinks first, then goes; then
 * the ETA, the rate and a failed count of 0; what is left is cut at a word.
 */
export function progressLine(s: ProgressState, columns: number): string {
  const max = Math.max(10, columns - 1);
  const finished = s.done + s.failed;
  const pct = String(s.total > 0 ? Math.floor((finished / s.total) * 100) : 100).padStart(3);
  const { parts, dropOrder } = statParts(s);
  const withBar = (width: number): string => {
    const filled = s.total > 0 ? Math.min(width, Math.round((finished / s.total) * width)) : width;
    return `${s.label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${pct}% ${parts.join(", ")}`;
  };
  const room = max - withBar(0).length;
  if (room >= 10) return withBar(Math.min(30, room));
  const stats = [...parts];
  const plain = (): string => `${s.label} ${pct}% ${stats.join(", ")}`;
  for (const drop of dropOrder) {
    if (plain().length <= max) break;
    stats.splice(stats.indexOf(drop), 1);
  }
  const line = plain();
  if (line.length <= max) return line;
  const cut = line.lastIndexOf(" ", max);
  return line.slice(0, cut > 0 ? cut : max).replace(/,$/, "");
}

/**
 * Progress of a long wait: a bar redrawn in place on a terminal, sized to its width; a plain line every
 * few seconds when the output is a pipe or a file.
 */
export class Progress {
  /** When the last plain line was written (not on a terminal). */
  private lastLine = 0;
  private readonly tty: boolean;
  private drawn = false;

  constructor(
    private readonly total: number,
    private readonly label: string,
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly lineEveryMs = 2000,
    /** When the work began (the summary's clock), so that both rates agree. */
    private readonly started = Date.now(),
    /** Progress of a submission: tasks sent (ProgressState.sending). */
    private readonly sending = false,
  ) {
    this.tty = Boolean(out.isTTY);
  }

  update(done: number, failed = 0, running = 0, elapsedS = (Date.now() - this.started) / 1000): void {
    if (!this.tty) {
      // A plain line every few seconds; the line of the end is finish()'s, written once.
      const now = Date.now();
      if (now - this.lastLine < this.lineEveryMs || done + failed >= this.total) return;
      this.lastLine = now;
    }
    this.write({ label: this.label, total: this.total, done, failed, running, elapsedS });
  }

  /** The last line, with the summary's elapsed time; on a terminal, ends the line redrawn. */
  finish(done: number, failed = 0, elapsedS = (Date.now() - this.started) / 1000): void {
    this.write({ label: this.label, total: this.total, done, failed, running: 0, elapsedS });
    this.end();
  }

  private write(s: ProgressState): void {
    s.sending = this.sending;
    if (this.tty) {
      // The width now: a resized terminal gets a line of its new width at the next redraw.
      this.out.write(`\r${progressLine(s, this.out.columns || 80)}\x1b[K`);
      this.drawn = true;
    } else this.out.write(`${s.label}: ${s.done + s.failed}/${s.total} (${progressStats(s)})\n`);
  }

  /** A line of its own between progress lines (on a terminal, over the bar, which the next update redraws). */
  note(text: string): void {
    this.out.write(this.tty && this.drawn ? `\r${text}\x1b[K\n` : `${text}\n`);
    this.drawn = false;
  }

  /** Leaves the line redrawn (Ctrl+C, an error): what is printed next starts on a line of its own. */
  end(): void {
    if (this.tty && this.drawn) this.out.write("\n");
    this.drawn = false;
  }
}
