import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { logLinesDropped, logWriteErrors } from "../log.js";
import { LabelHistogram } from "./label-histogram.js";
import type { Scheduler } from "../scheduler/scheduler.js";
import { TASK_STATUSES, type Task } from "../scheduler/model.js";
import { SqlStore } from "../store/sql-store.js";
import type { Store } from "../store/index.js";

/**
 * The grid's own series (design §9), in the server's registry: gauges read from the scheduler at scrape
 * time, task durations observed as tasks end, SQLite commit latency observed as commits happen.
 */
export class GridMetrics {
  /** By application: a finished task costs one lookup and a few comparisons. */
  private readonly durations: LabelHistogram;

  constructor(registry: Registry, scheduler: Scheduler, store: Store) {
    const registers = [registry];
    new Gauge({
      name: "zgrid_tasks",
      help: "Tasks known to the server, by partition and status.",
      labelNames: ["partition", "status"],
      registers,
      collect() {
        // Reset so a partition whose tasks are all gone (its sessions deleted) leaves no stale series.
        this.reset();
        for (const [partition, counts] of Object.entries(scheduler.views.tasksByPartition())) {
          for (const status of TASK_STATUSES) this.set({ partition, status }, counts[status]);
        }
      },
    });
    new Gauge({
      name: "zgrid_queue_length",
      help: "Tasks no slot runs yet (queued, or prefetched by a worker and not started), by partition: what an autoscaler reads.",
      labelNames: ["partition"],
      registers,
      collect() {
        this.reset();
        for (const p of scheduler.views.partitions()) this.set({ partition: p.partitionId }, p.queued);
      },
    });
    new Gauge({
      name: "zgrid_workers_connected",
      help: "Worker hosts connected.",
      registers,
      collect() {
        this.set(scheduler.workers.size);
      },
    });
    new Gauge({
      name: "zgrid_worker_slots",
      help: "Task slots of the connected worker hosts.",
      registers,
      collect() {
        let slots = 0;
        for (const w of scheduler.workers.values()) slots += w.slots;
        this.set(slots);
      },
    });
    new Gauge({
      name: "zgrid_worker_busy_slots",
      help: "Task slots of the connected worker hosts that run a task (prefetched tasks not counted).",
      registers,
      collect() {
        this.set(scheduler.views.busySlots());
      },
    });
    new Gauge({
      name: "zgrid_results",
      help: "Results known to the server (any status), in memory or in the store.",
      registers,
      collect() {
        this.set(scheduler.resultCount);
      },
    });
    new Gauge({
      name: "zgrid_results_in_memory",
      help: "Result records held in memory: those live work names or owns, finished ones until committed.",
      registers,
      collect() {
        this.set(scheduler.results.size);
      },
    });
    new Gauge({
      name: "zgrid_tasks_in_memory",
      help: "Task records held in memory: the unfinished ones, finished ones until their end is committed.",
      registers,
      collect() {
        this.set(scheduler.tasks.size);
      },
    });
    new Gauge({
      name: "zgrid_result_bytes",
      help: "Bytes of data held by COMPLETED results, in memory or in the store.",
      registers,
      collect() {
        this.set(scheduler.resultBytes);
      },
    });
    new Gauge({
      name: "zgrid_result_cache_bytes",
      help: "Bytes of recent task outputs kept in memory once the store has them (--result-cache-mb).",
      registers,
      collect() {
        this.set(scheduler.cache.bytes);
      },
    });
    new Gauge({
      name: "zgrid_store_pending_writes",
      help: "Changes reported to the store and not yet committed.",
      registers,
      collect() {
        this.set(store.stats().pendingWrites);
      },
    });
    counterOfTotal(
      registry,
      "zgrid_store_reads_total",
      "Queries the server read its store with (records and data that left memory); its event loop waits for each.",
      () => store.stats().reads,
    );
    counterOfTotal(
      registry,
      "zgrid_log_lines_dropped_total",
      "Log lines lost because stderr did not take them (a redirected log on a full disk): more than 8 MiB waited.",
      logLinesDropped,
    );
    counterOfTotal(
      registry,
      "zgrid_log_write_errors_total",
      "Times writing the log to stderr failed (ENOSPC, say); what waits is written once it takes writes again.",
      logWriteErrors,
    );
    counterOfTotal(
      registry,
      "zgrid_store_backlog_waits_total",
      "Times a client's request waited for a store commit before it was read: more changes were waiting for the next commit than one commit takes.",
      () => store.stats().backlogWaits,
    );
    this.durations = new LabelHistogram(
      "zgrid_task_duration_seconds",
      "Run time of tasks that ended COMPLETED, ERROR or TIMEOUT (start of the last attempt to the end), by application.",
      "application",
      [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800],
      registers,
    );
    scheduler.onTaskEnd = (task) => this.taskEnded(task);
    const commits = new Histogram({
      name: "zgrid_store_commit_seconds",
      help: "Latency of the store's SQLite commits (one transaction each).",
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
      registers,
    });
    if (store instanceof SqlStore) store.onCommit = (ms) => commits.observe(ms / 1000);
  }

  private taskEnded(task: Task): void {
    const attempts = task.attempts;
    if (attempts.length === 0) return;
    const started = attempts[attempts.length - 1].startedAt;
    this.durations
      .labels(task.options.applicationName)
      .observe(Math.max(0, ((task.endedAt ?? Date.now()) - started) / 1000));
  }
}

/** A counter of a running total kept elsewhere (the store, the log: `total`), brought up to it at each scrape. */
function counterOfTotal(registry: Registry, name: string, help: string, total: () => number): void {
  let counted = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = total();
      this.inc(now - counted);
      counted = now;
    },
  });
}
