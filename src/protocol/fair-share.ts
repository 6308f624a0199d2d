/**
 * A socket that always has a message ready keeps a `for await` loop running in microtasks, and the
 * event loop never turns: other sockets, timers and heartbeats starve (the STATUS daemon stopped
 * answering while clients submitted at full speed). A loop calls `pause()` after each message; once
 * it has run `sliceMs` without a break, the returned promise lets the event loop turn once.
 */
export class FairShare {
  private sliceStart = performance.now();

  constructor(private readonly sliceMs = 2) {}

  /** Null while the slice lasts (no cost); else a promise that resolves on the next turn. */
  pause(): Promise<void> | null {
    if (performance.now() - this.sliceStart < this.sliceMs) return null;
    return new Promise((resolve) =>
      setImmediate(() => {
        this.sliceStart = performance.now();
        resolve();
      }),
    );
  }
}
