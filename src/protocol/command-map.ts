/** Who sent a request: its user, role, and whether the name comes from the users file. */
export interface RequestCaller {
  readonly user: string;
  readonly role: string;
  /** Sessions it creates are recorded as its own (false: the name is only claimed; they are admins'). */
  readonly verified: boolean;
}

/** What a command handler sees of one request. */
export interface CommandRequest {
  readonly cmd: string;
  readonly args: Record<string, unknown>;
  readonly blobs: Buffer[];
  readonly user: string;
  readonly caller: RequestCaller;
  /** The daemon that received the request ("DEFAULT", "METRICS", ...). */
  readonly daemon: string;
  /** Opaque id of the peer connection (ROUTER identity, hex). */
  readonly peer: string;
  /**
   * Push an EVENT frame to this peer, tagged with this request's id. `gone` runs when the peer turns out
   * to be disconnected. False when the daemon is closed.
   */
  push(event: unknown, gone?: () => void): boolean;
}

/** A handler's answer. `msg` goes in the reply header, `blobs` as frames after it. */
export interface CommandReply {
  msg: unknown;
  blobs?: Buffer[];
  msgType?: "NORMAL" | "WARNING";
}

export type CommandHandler = (req: CommandRequest) => CommandReply | Promise<CommandReply>;

/** A command map entry: the handler and the module that registered it (answered by `getCmdMap`). */
export interface CommandEntry {
  handler: CommandHandler;
  module: string;
}

/** What a command module's `register(map, server)` receives as `map`. */
export interface CommandRegistrar {
  register(cmd: string, handler: CommandHandler): void;
}

/**
 * The commands one daemon answers, filled by the built-ins and by the modules `server-modules.cfg` names
 * (Arkouda's CommandMap).
 */
export class CommandMap {
  private readonly entries = new Map<string, CommandEntry>();

  register(cmd: string, handler: CommandHandler, module: string): void {
    const existing = this.entries.get(cmd);
    if (existing && existing.module !== module) {
      throw new Error(`command "${cmd}" is registered twice: by ${existing.module} and by ${module}`);
    }
    this.entries.set(cmd, { handler, module });
  }

  /** The registrar handed to one module: what it registers is recorded under its name. */
  scoped(module: string): CommandRegistrar {
    return { register: (cmd, handler) => this.register(cmd, handler, module) };
  }

  get(cmd: string): CommandEntry | undefined {
    return this.entries.get(cmd);
  }

  has(cmd: string): boolean {
    return this.entries.has(cmd);
  }

  /** command → module, as `getCmdMap` returns it. */
  toRecord(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [cmd, entry] of [...this.entries].sort(([a], [b]) => a.localeCompare(b)))
      out[cmd] = entry.module;
    return out;
  }
}
