import { registerBuiltins } from "../commands/builtins.js";
import { registerMetrics, MODULE } from "../commands/metrics.js";
import type { ServerContext } from "./context.js";
import { ServerDaemon, type DaemonOptions } from "./daemon.js";

/** The METRICS daemon: its own port so that scraping never waits behind client commands. */
export class MetricsDaemon extends ServerDaemon {
  constructor(opts: Omit<DaemonOptions, "name">) {
    super({ ...opts, name: "METRICS" });
  }

  registerCommands(server: ServerContext): void {
    registerBuiltins(this.commands.scoped("BuiltIns"), server, this.name, this.commands);
    registerMetrics(this.commands.scoped(MODULE), server);
  }
}
