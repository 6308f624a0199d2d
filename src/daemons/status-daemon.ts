import { registerBuiltins } from "../commands/builtins.js";
import { registerStatus, MODULE } from "../commands/status.js";
import type { ServerContext } from "./context.js";
import { ServerDaemon, type DaemonOptions } from "./daemon.js";

/** The STATUS daemon: `ruok`, `getstatus`, `getmemstatus` on a port of their own (Arkouda issue 2658). */
export class StatusDaemon extends ServerDaemon {
  constructor(opts: Omit<DaemonOptions, "name">) {
    super({ ...opts, name: "STATUS" });
  }

  registerCommands(server: ServerContext): void {
    registerBuiltins(this.commands.scoped("BuiltIns"), server, this.name, this.commands);
    registerStatus(this.commands.scoped(MODULE), server);
  }
}
