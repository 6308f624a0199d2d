import type { DashboardSnapshot, SnapshotReader } from "./snapshot.js";

/**
 * One poll loop for every viewer: reads a snapshot every `intervalMs` while anyone watches, hands it to
 * `onSnapshot`, and never has two reads in flight. A failed read keeps the last good numbers, marked with
 * the error.
 */
export class SnapshotPoller {
  latest: DashboardSnapshot | null = null;
  private watchers = 0;
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<DashboardSnapshot> | null = null;
  private closed = false;

  constructor(
    private readonly reader: SnapshotReader,
    private readonly intervalMs: number,
    private readonly onSnapshot: (snap: DashboardSnapshot) => void,
  ) {}

  /** A viewer arrived: the loop runs while there is at least one. */
  watch(): void {
    this.watchers++;
    if (this.watchers === 1 && !this.closed) this.tick();
  }

  unwatch(): void {
    this.watchers = Math.max(0, this.watchers - 1);
    if (this.watchers === 0 && this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  /** The latest snapshot if it is younger than the interval, else a new one (shared with a read in flight). */
  async fresh(): Promise<DashboardSnapshot> {
    if (this.latest && !this.latest.error && Date.now() - this.latest.at < this.intervalMs)
      return this.latest;
    return this.read();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private read(): Promise<DashboardSnapshot> {
    this.inFlight ??= this.reader
      .read()
      .catch((err: Error): DashboardSnapshot => {
        const last = this.latest;
        return {
          ...(last ?? {
            tasksByStatus: {},
            throughput: null,
            partitions: [],
            sessions: [],
            sessionsTotal: 0,
            workers: [],
            workersTotal: 0,
            history: [],
          }),
          at: Date.now(),
          error: `refresh failed: ${err.message}`,
        };
      })
      .then((snap) => {
        this.latest = snap;
        return snap;
      })
      .finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  private tick(): void {
    this.timer = null;
    void this.read().then((snap) => {
      if (this.closed) return;
      this.onSnapshot(snap);
      if (this.watchers > 0 && !this.timer) this.timer = setTimeout(() => this.tick(), this.intervalMs);
    });
  }
}
