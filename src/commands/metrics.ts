import { cpus, freemem, hostname, loadavg, totalmem } from "node:os";
import type { ServerContext } from "../daemons/context.js";
import { METRIC_CATEGORIES, type Metric, type MetricCategory } from "../metrics/request-metrics.js";
import type { CommandRegistrar } from "../protocol/command-map.js";
import { describeValue } from "../protocol/describe.js";
import { invalidArgument } from "../protocol/errors.js";

export const MODULE = "MetricsMsg";

function gauge(name: string, category: MetricCategory, value: number): Metric {
  return { name, category, scope: "GLOBAL", timestamp: new Date().toISOString(), value };
}

function categoryMetrics(server: ServerContext, category: MetricCategory): Metric[] {
  switch (category) {
    case "NUM_REQUESTS":
    case "AVG_RESPONSE_TIME":
    case "TOTAL_RESPONSE_TIME":
    case "NUM_ERRORS":
      return server.metrics.requestMetrics(category);
    case "TOTAL_MEMORY_USED": {
      const m = process.memoryUsage();
      return [
        gauge("rss", category, m.rss),
        gauge("heapUsed", category, m.heapUsed),
        gauge("heapTotal", category, m.heapTotal),
        gauge("external", category, m.external),
      ];
    }
    case "SYSTEM":
      return [
        gauge("cpuCount", category, cpus().length),
        gauge("loadAverage1m", category, loadavg()[0]),
        gauge("memoryTotal", category, totalmem()),
        gauge("memoryFree", category, freemem()),
      ];
    case "SERVER":
      return [
        gauge("uptimeSeconds", category, (Date.now() - server.startedAt.getTime()) / 1000),
        gauge("pid", category, process.pid),
      ];
    case "SERVER_INFO": {
      const ep = server.endpoints();
      const out = [gauge("port", category, ep.port), gauge("workerPort", category, ep.workerPort)];
      if (ep.metricsPort !== null) out.push(gauge("metricsPort", category, ep.metricsPort));
      if (ep.statusPort !== null) out.push(gauge("statusPort", category, ep.statusPort));
      return out.map((m) => ({ ...m, host: hostname(), version: server.version }));
    }
    case "TASKS": {
      const summary = server.scheduler.views.summary();
      const out = Object.entries(summary.tasksByStatus).map(([status, n]) => gauge(status, category, n));
      for (const p of server.scheduler.views.partitions())
        out.push(gauge(`queue.${p.partitionId}`, category, p.queued));
      out.push(
        gauge("workers", category, summary.workers),
        gauge("workerSlots", category, summary.slots),
        gauge("workerBusySlots", category, summary.busySlots),
      );
      return out;
    }
    case "ALL":
      return METRIC_CATEGORIES.filter((c) => c !== "ALL").flatMap((c) => categoryMetrics(server, c));
  }
}

/** The METRICS daemon's commands. */
export function registerMetrics(map: CommandRegistrar, server: ServerContext): void {
  map.register("metrics", (req) => {
    const raw = req.args.category ?? "ALL";
    const category = typeof raw === "string" ? raw.toUpperCase() : raw;
    if (typeof category !== "string" || !(METRIC_CATEGORIES as readonly string[]).includes(category)) {
      throw invalidArgument(
        `unknown metrics category ${describeValue(raw)}: expected one of ${METRIC_CATEGORIES.join(", ")}`,
      );
    }
    return { msg: categoryMetrics(server, category as MetricCategory) };
  });
  map.register("prometheus", async () => ({ msg: await server.metrics.registry.metrics() }));
}
