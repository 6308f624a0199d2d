import { existsSync, statSync } from "node:fs";
import * as nodeModule from "node:module";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { ApplicationModule } from "./app-module.js";
import { ApplicationError } from "./errors.js";

/** An application module found and imported, with where it came from (for messages). */
export interface LoadedApplication {
  readonly name: string;
  readonly version: string;
  readonly path: string;
  /** Which edition of the file was imported (modification time and size); "" when not watching. */
  readonly revision: string;
  readonly module: ApplicationModule;
}

export interface AppLoaderOptions {
  /**
   * Look at the file again on every {@link AppLoader.load}: a file changed since it was imported is
   * imported again (`zgrid worker --watch`). ES modules cannot be unloaded: every edition stays in memory.
   */
  watch?: boolean;
}

/**
 * Finds and imports application modules: `DIR/NAME.VER.js`, else `DIR/NAME.js` (the seed 000 rule).
 * One per executor thread; modules are cached for the thread's life, or, when watching, for as long as
 * their file is unchanged. Every failure is an {@link ApplicationError}: a missing or broken application
 * does not get better by retrying the task.
 */
export class AppLoader {
  private readonly dir: string;
  private readonly watch: boolean;
  private readonly cache = new Map<string, Promise<LoadedApplication>>();

  constructor(appPath: string, options: AppLoaderOptions = {}) {
    this.dir = resolve(appPath);
    this.watch = options.watch ?? false;
  }

  /** Whether {@link load} looks at the files again each time (`--watch`). */
  get watching(): boolean {
    return this.watch;
  }

  load(name: string | undefined, version: string | undefined): Promise<LoadedApplication> {
    const ver = version ?? "";
    if (this.watch) return this.loadCurrent(name, ver);
    const key = `${name ?? ""}\0${ver}`;
    let loaded = this.cache.get(key);
    if (!loaded) {
      loaded = this.locate(name, ver).then((path) => this.import(name!, ver, path, ""));
      // Forget failures: the application may be deployed or fixed while the worker runs.
      loaded.catch(() => this.cache.delete(key));
      this.cache.set(key, loaded);
    }
    return loaded;
  }

  /** The files looked for, in order of preference. */
  candidates(name: string, version: string): string[] {
    const plain = join(this.dir, `${name}.js`);
    return version ? [join(this.dir, `${name}.${version}.js`), plain] : [plain];
  }

  /** The module as its file is now: imported again, under a new URL, if the file changed. */
  private async loadCurrent(name: string | undefined, version: string): Promise<LoadedApplication> {
    const path = await this.locate(name, version);
    let revision: string;
    try {
      const stat = statSync(path);
      revision = `${stat.mtimeMs}-${stat.size}`;
    } catch (err) {
      throw new ApplicationError(`application module ${path} cannot be read: ${String(err)}`, { cause: err });
    }
    const key = `${path}\0${revision}`;
    let loaded = this.cache.get(key);
    if (!loaded) {
      loaded = this.import(name!, version, path, revision);
      loaded.catch(() => this.cache.delete(key));
      this.cache.set(key, loaded);
    }
    return loaded;
  }

  /** The file a task's application runs: `DIR/NAME.VER.js`, else `DIR/NAME.js`. */
  private async locate(name: string | undefined, version: string): Promise<string> {
    if (!name) {
      throw new ApplicationError("the task names no application: set the applicationName task option");
    }
    // Names are file name parts, never paths: a task must not load code from outside the app directory.
    for (const [what, value] of [
      ["name", name],
      ["version", version],
    ]) {
      if (/[/\\\0]/.test(value)) throw new ApplicationError(`invalid application ${what} "${value}"`);
    }
    const files = this.candidates(name, version);
    const path = files.find((f) => existsSync(f));
    if (!path) {
      const what = version ? `application "${name}" version "${version}"` : `application "${name}"`;
      throw new ApplicationError(`${what} not found: looked for ${files.join(" and ")}`);
    }
    return path;
  }

  private async import(
    name: string,
    version: string,
    path: string,
    revision: string,
  ): Promise<LoadedApplication> {
    provideZgrid(path);
    // A new URL is a new module: how an edited file is imported again (the old edition stays loaded).
    const url = pathToFileURL(path).href + (revision ? `?v=${encodeURIComponent(revision)}` : "");
    let ns: Record<string, unknown>;
    try {
      ns = (await import(url)) as Record<string, unknown>;
    } catch (err) {
      throw new ApplicationError(`application module ${path} failed to load: ${String(err)}`, { cause: err });
    }
    // Also accept `export default defineService(...)`.
    const mod =
      typeof ns.createService === "function" ? ns : (ns.default as Record<string, unknown> | undefined);
    if (!mod || typeof mod.createService !== "function") {
      throw new ApplicationError(
        `application module ${path} does not export createService(serviceName, serviceNamespace)`,
      );
    }
    return { name, version, path, revision, module: mod as unknown as ApplicationModule };
  }
}

let zgridProvided = false;

/**
 * Apps outside this package import "zgrid/worker" as the README shows: where Node finds no zgrid from
 * the app's file, a resolve hook gives them this one (only as a fallback: an installed zgrid wins).
 * Hooks are per thread and each costs a thread of its own, so a thread registers it only when an app
 * needs it.
 */
function provideZgrid(appFile: string): void {
  if (zgridProvided || typeof nodeModule.register !== "function") return;
  try {
    nodeModule.createRequire(appFile).resolve("zgrid/worker");
    return;
  } catch {
    // Not found from there: fall back to this copy.
  }
  zgridProvided = true;
  nodeModule.register("./zgrid-resolve-hook.js", import.meta.url);
}
