import { registerBuiltins } from "../commands/builtins.js";
import type { ServerContext } from "./context.js";
import { ServerDaemon, type DaemonOptions } from "./daemon.js";
import { loadModules } from "./modules.js";

/** The DEFAULT daemon: built-ins plus every command module server-modules.cfg names. */
export class DefaultDaemon extends ServerDaemon {
  constructor(opts: Omit<DaemonOptions, "name">) {
    super({ ...opts, name: "DEFAULT" });
  }

  async registerCommands(server: ServerContext): Promise<string[]> {
    registerBuiltins(this.commands.scoped("BuiltIns"), server, this.name, this.commands);
    return loadModules(server.config.modules, this.commands, server);
  }
}
