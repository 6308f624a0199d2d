import type { Store } from "../store/store.js";
import type { TaskStatus } from "./model.js";
import type { TaskTable } from "./task-table.js";
import type { AppSet } from "./task-queue.js";
import type { SchedulerSummary } from "./types.js";

/**
 * What the grid looks like, for administrators, metrics and health checks: partitions and their
 * backlog, applications, workers, counts, health. Reads the task table and the store; changes nothing.
 */
export class GridViews {
  constructor(
    private readonly table: TaskTable,
    private readonly store: Store,
    /** Results clients can see, in memory or in the store (the scheduler's running count). */
    private readonly resultCount: () => number,
  ) {}

  /** Each partition with its backlog (`queued`: see backlog()), what an autoscaler must see. */
  partitions(): { partitionId: string; queued: number; workers: number; slots: number }[] {
    const out = new Map<string, { partitionId: string; queued: number; workers: number; slots: number }>();
    const get = (p: string) => {
      let e = out.get(p);
      if (!e) out.set(p, (e = { partitionId: p, queued: 0, workers: 0, slots: 0 }));
      return e;
    };
    for (const [p, q] of this.table.queues) get(p).queued = this.table.backlog(p, q);
    for (const w of this.table.workers.values()) {
      for (const p of w.partitions) {
        const e = get(p);
        e.workers++;
        e.slots += w.slots;
      }
    }
    for (const s of this.table.sessions.values()) for (const p of s.partitionIds) get(p);
    return [...out.values()].sort((a, b) => a.partitionId.localeCompare(b.partitionId));
  }

  applications(): { applicationName: string; applicationVersion: string; tasks: number }[] {
    const out = new Map<string, { applicationName: string; applicationVersion: string; tasks: number }>();
    for (const t of this.table.tasks.values()) {
      const key = `${t.options.applicationName}\u0000${t.options.applicationVersion}`;
      let e = out.get(key);
      if (!e)
        out.set(
          key,
          (e = {
            applicationName: t.options.applicationName,
            applicationVersion: t.options.applicationVersion,
            tasks: 0,
          }),
        );
      e.tasks++;
    }
    return [...out.values()];
  }

  workerList(): Record<string, unknown>[] {
    return [...this.table.workers.values()].map((w) => ({
      workerId: w.id,
      partitions: w.partitions,
      slots: w.slots,
      capacity: w.capacity,
      busy: this.table.busySlots(w),
      inflight: w.inflight.size,
      // null: it did not say, and takes tasks of any application.
      apps: w.apps === null ? null : [...w.apps].sort(),
      host: w.host,
      pid: w.pid,
      connectedAt: w.connectedAt,
      lastHeartbeat: w.lastHeartbeat,
    }));
  }

  /**
   * Applications whose tasks wait in a partition that has workers, none of which has the application:
   * they wait until such a worker joins (design §6), and health() says so.
   */
  unservedApplications(): {
    partitionId: string;
    applicationName: string;
    applicationVersion: string;
    queued: number;
  }[] {
    const out: {
      partitionId: string;
      applicationName: string;
      applicationVersion: string;
      queued: number;
    }[] = [];
    for (const [p, q] of this.table.queues) {
      if (q.size === 0) continue;
      const serving: AppSet[] = [];
      for (const w of this.table.workers.values()) if (w.partitions.includes(p)) serving.push(w.apps);
      if (serving.length === 0) continue;
      for (const a of q.unserved(serving))
        out.push({
          partitionId: p,
          applicationName: a.applicationName,
          applicationVersion: a.applicationVersion,
          queued: a.size,
        });
    }
    return out;
  }

  /**
   * HEALTHY; DEGRADED when tasks wait in a partition no worker serves, or for an application no worker
   * of their partition has; UNHEALTHY when the store cannot commit (a full disk): nothing new can be
   * acknowledged.
   */
  health(): { status: "HEALTHY" | "DEGRADED" | "UNHEALTHY"; checks: Record<string, string> } {
    const starving = this.partitions().filter((p) => p.queued > 0 && p.workers === 0);
    const appless = this.unservedApplications().filter(
      (a) => !starving.some((p) => p.partitionId === a.partitionId),
    );
    const store = this.store.stats();
    const checks: Record<string, string> = {
      store:
        store.failure === undefined
          ? `ok (${this.store.name}, ${store.pendingWrites} pending writes)`
          : `failing: ${store.failure}`,
      queue:
        starving.length === 0
          ? "ok"
          : `tasks wait in partitions no worker serves: ${starving.map((p) => p.partitionId).join(", ")}`,
      workers: `${this.table.workers.size} connected`,
    };
    if (appless.length > 0) {
      checks.applications = `tasks wait for applications no worker of their partition has: ${appless
        .slice(0, 10)
        .map(
          (a) =>
            `${a.applicationName}${a.applicationVersion ? ` ${a.applicationVersion}` : ""} (${a.partitionId}, ${a.queued} queued)`,
        )
        .join(", ")}`;
    }
    const status =
      store.failure !== undefined
        ? "UNHEALTHY"
        : starving.length === 0 && appless.length === 0
          ? "HEALTHY"
          : "DEGRADED";
    return { status, checks };
  }

  /** Each partition that holds tasks with its counts by status (for a scrape). */
  tasksByPartition(): Record<string, Record<TaskStatus, number>> {
    return this.table.counts.byPartition();
  }

  /** Slots of all the workers that run a task (prefetched tasks not counted). */
  busySlots(): number {
    let busy = 0;
    for (const w of this.table.workers.values()) busy += this.table.busySlots(w);
    return busy;
  }

  summary(): SchedulerSummary {
    const queued: Record<string, number> = {};
    for (const [p, q] of this.table.queues) queued[p] = this.table.backlog(p, q);
    let slots = 0;
    for (const w of this.table.workers.values()) slots += w.slots;
    let tasks = 0;
    for (const n of Object.values(this.table.counts.totals())) tasks += n;
    return {
      sessions: this.table.sessions.size,
      results: this.resultCount(),
      tasks,
      tasksInMemory: this.table.tasks.size,
      resultsInMemory: this.table.results.size,
      tasksByStatus: this.table.counts.totals(),
      tasksByPartition: this.table.counts.byPartition(),
      queued,
      workers: this.table.workers.size,
      slots,
      busySlots: this.busySlots(),
      store: this.store.stats(),
    };
  }
}
