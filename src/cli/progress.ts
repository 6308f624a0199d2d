/**
 * Progress of a long wait: a bar redrawn in place on a terminal, a plain line every few seconds when
 * the output is a pipe or a file.
 */
export class Progress {
  private readonly started = Date.now();
  private lastLine = 0;
  private readonly tty: boolean;

  constructor(
    private readonly total: number,
    private readonly label: string,
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly lineEveryMs = 2000,
  ) {
    this.tty = Boolean(out.isTTY);
  }

  update(done: number, failed = 0, running = 0): void {
    const now = Date.now();
    const finished = done + failed;
    const elapsed = (now - this.started) / 1000;
    const rate = elapsed > 0 ? finished / elapsed : 0;
    const eta = rate > 0 && finished < this.total ? (this.total - finished) / rate : 0;
    const stats = `${done} done, ${failed} failed, ${running} running, ${rate.toFixed(0)}/s${eta > 0 ? `, ETA ${eta.toFixed(0)}s` : ""}`;
    if (this.tty) {
      const width = 30;
      const filled = this.total > 0 ? Math.round((finished / this.total) * width) : width;
      const pct = this.total > 0 ? Math.floor((finished / this.total) * 100) : 100;
      this.out.write(
        `\r${this.label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${String(pct).padStart(3)}% ${stats}\x1b[K`,
      );
    } else if (now - this.lastLine >= this.lineEveryMs || finished >= this.total) {
      this.lastLine = now;
      this.out.write(`${this.label}: ${finished}/${this.total} (${stats})\n`);
    }
  }

  finish(done: number, failed = 0): void {
    this.update(done, failed, 0);
    if (this.tty) this.out.write("\n");
  }
}
