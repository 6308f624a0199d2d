import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { ApplicationModule } from "./app-module.js";
import { ApplicationError } from "./errors.js";

/** An application module found and imported, with where it came from (for messages). */
export interface LoadedApplication {
  readonly name: string;
  readonly version: string;
  readonly path: string;
  readonly module: ApplicationModule;
}

/**
 * Finds and imports application modules: `DIR/NAME.VER.js`, else `DIR/NAME.js` (the seed 000 rule).
 * One per executor thread; modules are cached for the thread's life. Every failure is an
 * {@link ApplicationError}: a missing or broken application does not get better by retrying the task.
 */
export class AppLoader {
  private readonly dir: string;
  private readonly cache = new Map<string, Promise<LoadedApplication>>();

  constructor(appPath: string) {
    this.dir = resolve(appPath);
  }

  load(name: string | undefined, version: string | undefined): Promise<LoadedApplication> {
    const ver = version ?? "";
    const key = `${name ?? ""}\0${ver}`;
    let loaded = this.cache.get(key);
    if (!loaded) {
      loaded = this.import(name, ver);
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

  private async import(name: string | undefined, version: string): Promise<LoadedApplication> {
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
    let ns: Record<string, unknown>;
    try {
      ns = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
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
    return { name, version, path, module: mod as unknown as ApplicationModule };
  }
}
