import { registerBuiltins, type BuiltinsContext } from "../commands/builtins.js";
import { registerStatus, MODULE, type StatusSource } from "../commands/status.js";
import { ErrorCode, ZgridError } from "../protocol/errors.js";
import { ServerDaemon, type DaemonOptions } from "./daemon.js";

/** What the STATUS daemon needs beyond the built-ins' view of the server. */
export interface StatusDaemonSource extends StatusSource {
  /** Null while the scheduler's event loop answers; else why the server is not ok. */
  stalled(): Promise<string | null>;
}

/**
 * The STATUS daemon: `ruok`, `getstatus`, `getmemstatus` on a port of their own (Arkouda issue 2658).
 * It runs on a thread of its own (see StatusThread), so it answers while the scheduler's loop is busy.
 */
export class StatusDaemon extends ServerDaemon {
  constructor(opts: Omit<DaemonOptions, "name">) {
    super({ ...opts, name: "STATUS" });
  }

  registerCommands(server: BuiltinsContext, source: StatusDaemonSource): void {
    registerBuiltins(this.commands.scoped("BuiltIns"), server, this.name, this.commands, {
      ruok: async () => {
        const why = await source.stalled();
        if (why !== null) throw new ZgridError(ErrorCode.UNAVAILABLE, why);
        return { msg: "imok" };
      },
      // This thread's heap says nothing of the grid: report the scheduler thread's figures.
      getmemstatus: async () => ({ msg: (await source.status()).memory }),
    });
    registerStatus(this.commands.scoped(MODULE), source);
  }
}
