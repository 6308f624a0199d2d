import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { CommandMap } from "../protocol/command-map.js";
import type { ServerContext } from "./context.js";

const COMMANDS_DIR = fileURLToPath(new URL("../commands/", import.meta.url));

/** A command module: what a line of server-modules.cfg names. */
export interface CommandModule {
  register(map: ReturnType<CommandMap["scoped"]>, server: ServerContext): void;
}

/** Raised at start when server-modules.cfg names a module that cannot be loaded. */
export class ModuleLoadError extends Error {
  override readonly name = "ModuleLoadError";
}

export interface ModuleLine {
  line: number;
  spec: string;
  path: string;
}

/**
 * Reads server-modules.cfg: one module a line, `#` starts a comment. A bare name is a module of
 * src/commands/; anything with a slash or a .js suffix is a path, relative to the cfg file.
 */
export function readModulesCfg(cfgPath: string): ModuleLine[] {
  let text: string;
  try {
    text = readFileSync(cfgPath, "utf8");
  } catch (err) {
    throw new ModuleLoadError(`cannot read the modules file ${cfgPath}: ${(err as Error).message}`);
  }
  const out: ModuleLine[] = [];
  text.split("\n").forEach((raw, i) => {
    const spec = raw.replace(/#.*/, "").trim();
    if (!spec) return;
    const isPath = spec.includes("/") || spec.endsWith(".js");
    const path = isPath
      ? isAbsolute(spec)
        ? spec
        : resolve(dirname(cfgPath), spec)
      : resolve(COMMANDS_DIR, `${spec}.js`);
    out.push({ line: i + 1, spec, path });
  });
  return out;
}

/** Loads every module of the cfg into `map`; the first one that fails stops the start with a clear message. */
export async function loadModules(
  cfgPath: string,
  map: CommandMap,
  server: ServerContext,
): Promise<string[]> {
  const loaded: string[] = [];
  for (const { line, spec, path } of readModulesCfg(cfgPath)) {
    const where = `${cfgPath} line ${line}`;
    if (!existsSync(path)) {
      throw new ModuleLoadError(`${where}: module "${spec}" not found (looked for ${path})`);
    }
    let mod: Partial<CommandModule>;
    try {
      mod = (await import(pathToFileURL(path).href)) as Partial<CommandModule>;
    } catch (err) {
      throw new ModuleLoadError(`${where}: module "${spec}" failed to load: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (typeof mod.register !== "function") {
      throw new ModuleLoadError(
        `${where}: module "${spec}" (${path}) does not export a register(map, server) function`,
      );
    }
    try {
      mod.register(map.scoped(spec), server);
    } catch (err) {
      throw new ModuleLoadError(`${where}: module "${spec}" failed to register: ${(err as Error).message}`, {
        cause: err,
      });
    }
    loaded.push(spec);
  }
  return loaded;
}
