import type { ZgridClient } from "../client/client.js";
import type { SessionInfo } from "../client/types.js";

/** One partition as the dashboard shows it. */
export interface PartitionView {
  partitionId: string;
  queued: number;
  workers: number;
  slots: number;
  /** Completed tasks per second since the snapshot before; null when unknown (first one, no STATUS daemon). */
  throughput: number | null;
}

export interface SessionView {
  sessionId: string;
  status: string;
  createdAt: number;
  taskCount: number;
  /** Tasks by status (tasks.count for the session); empty when it could not be read. */
  counts: Record<string, number>;
}

export interface WorkerView {
  workerId: string;
  partitions: string[];
  slots: number;
  busy: number;
  host: string;
  pid: number;
  /** Milliseconds since its last heartbeat, by the dashboard's clock. */
  heartbeatAgeMs: number;
}

/** One point of the charts: per partition, completed tasks per second and queue length. */
export interface HistoryPoint {
  at: number;
  throughput: Record<string, number>;
  queued: Record<string, number>;
}

/** What `/events` pushes and `/api/snapshot` answers. */
export interface DashboardSnapshot {
  at: number;
  /** Set when the last refresh failed (the numbers are then those of the last good one, if any). */
  error?: string;
  version?: string;
  uptimeSeconds?: number;
  tasksByStatus: Record<string, number>;
  /** Completed tasks per second, every partition together; null on the first snapshot. */
  throughput: number | null;
  partitions: PartitionView[];
  sessions: SessionView[];
  sessionsTotal: number;
  workers: WorkerView[];
  workersTotal: number;
  history: HistoryPoint[];
}

/** What `getstatus` returns, as far as the dashboard reads it. */
interface StatusReply {
  version?: string;
  uptimeSeconds?: number;
  scheduler?: { tasksByPartition?: Record<string, Record<string, number>> };
}

export interface SnapshotOptions {
  /** Sessions shown (the most recent), each costing one tasks.count a refresh. */
  sessions?: number;
  /** Workers shown. */
  workers?: number;
  /** Partitions charted (those with the longest queues). */
  partitions?: number;
  /** Chart points kept. */
  historyPoints?: number;
}

/**
 * Reads the grid through the commands any client uses: `tasks.count`, `partitions.list`, `workers.list`,
 * `sessions.list` (+ `tasks.count` per shown session) on DEFAULT, and `getstatus` on STATUS when the
 * server runs one (its per-partition counts give the per-partition throughput). Keeps the chart history.
 */
export class SnapshotReader {
  private previous: { at: number; completed: number; byPartition: Record<string, number> | null } | null =
    null;
  private readonly history: HistoryPoint[] = [];
  private readonly opts: Required<SnapshotOptions>;

  constructor(
    private readonly client: ZgridClient,
    private readonly statusClient: ZgridClient | null,
    options: SnapshotOptions = {},
  ) {
    this.opts = { sessions: 8, workers: 50, partitions: 12, historyPoints: 120, ...options };
  }

  async read(): Promise<DashboardSnapshot> {
    const [tasksByStatus, partitions, workers, sessions, status] = await Promise.all([
      this.client.countTasks() as Promise<Record<string, number>>,
      this.client.listPartitions(),
      this.client.listWorkers(),
      this.client.listSessions({
        sort: { field: "createdAt", direction: "desc" },
        pageSize: this.opts.sessions,
      }),
      this.statusClient ? (this.statusClient.getStatus() as Promise<StatusReply>) : Promise.resolve(null),
    ]);
    const at = Date.now();
    const shown = sessions.items.slice(0, this.opts.sessions);
    const counts = await Promise.all(
      shown.map((s) => this.client.countTasks({ sessionId: s.sessionId }).catch(() => ({}))),
    );

    const completed = tasksByStatus.COMPLETED ?? 0;
    const byPartition = status?.scheduler?.tasksByPartition
      ? Object.fromEntries(
          Object.entries(status.scheduler.tasksByPartition).map(([p, c]) => [p, c.COMPLETED ?? 0]),
        )
      : null;
    const prev = this.previous;
    const seconds = prev && at > prev.at ? (at - prev.at) / 1000 : 0;
    const rate = (now: number, before: number | undefined): number | null =>
      seconds > 0 && before !== undefined ? Math.max(0, now - before) / seconds : null;
    this.previous = { at, completed, byPartition };

    const partitionViews: PartitionView[] = partitions.items
      .map((p) => ({
        partitionId: p.partitionId,
        queued: p.queued,
        workers: p.workers,
        slots: p.slots,
        throughput: byPartition
          ? rate(
              byPartition[p.partitionId] ?? 0,
              prev?.byPartition ? (prev.byPartition[p.partitionId] ?? 0) : undefined,
            )
          : null,
      }))
      .sort((a, b) => b.queued - a.queued || a.partitionId.localeCompare(b.partitionId));

    const charted = partitionViews.slice(0, this.opts.partitions);
    const total = rate(completed, prev?.completed);
    if (total !== null) {
      const throughput: Record<string, number> = {};
      const queued: Record<string, number> = {};
      for (const p of charted) {
        queued[p.partitionId] = p.queued;
        if (p.throughput !== null) throughput[p.partitionId] = round(p.throughput);
      }
      // Without STATUS the only throughput known is the whole grid's.
      if (!byPartition) throughput["(all)"] = round(total);
      this.history.push({ at, throughput, queued });
      if (this.history.length > this.opts.historyPoints) this.history.shift();
    }

    return {
      at,
      version: status?.version,
      uptimeSeconds: status?.uptimeSeconds,
      tasksByStatus,
      throughput: total === null ? null : round(total),
      partitions: partitionViews.map((p) => ({
        ...p,
        throughput: p.throughput === null ? null : round(p.throughput),
      })),
      sessions: shown.map((s: SessionInfo, i) => ({
        sessionId: s.sessionId,
        status: s.status,
        createdAt: s.createdAt,
        taskCount: s.taskCount,
        counts: Object.fromEntries(
          Object.entries(counts[i] as Record<string, number>).filter(([, n]) => n > 0),
        ),
      })),
      sessionsTotal: sessions.total,
      workers: [...workers.items]
        .sort((a, b) => a.workerId.localeCompare(b.workerId))
        .slice(0, this.opts.workers)
        .map((w) => ({
          workerId: w.workerId,
          partitions: w.partitions,
          slots: w.slots,
          busy: w.busy,
          host: w.host,
          pid: w.pid,
          heartbeatAgeMs: Math.max(0, at - w.lastHeartbeat),
        })),
      workersTotal: workers.total,
      history: [...this.history],
    };
  }
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
