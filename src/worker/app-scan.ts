import { readdirSync, statSync } from "node:fs";
import { MAX_APP_NAME_CHARS, MAX_WORKER_APPS } from "../protocol/worker-messages.js";

/**
 * The applications a worker can load, told to the server in READY (and APPS when they change) so that
 * it is sent only tasks it can run: the stems of the `.js` files in its app path (`NAME` for `NAME.js`,
 * `NAME.VERSION` for `NAME.VERSION.js`, the names the app loader looks for).
 */
export class AppScanner {
  private mtimeMs = -1;
  private apps: string[] | null = [];

  constructor(private readonly dir: string) {}

  /**
   * The apps now, or undefined when the directory did not change since the last call (its mtime moves
   * when a file is added, removed or renamed). null: more files than READY may list; the worker then
   * says nothing and takes any task. A directory that cannot be read holds no apps (yet).
   */
  scan(): string[] | null | undefined {
    let mtimeMs: number;
    try {
      mtimeMs = statSync(this.dir).mtimeMs;
    } catch {
      mtimeMs = 0;
    }
    if (mtimeMs === this.mtimeMs) return undefined;
    this.mtimeMs = mtimeMs;
    const before = this.apps;
    this.apps = listApps(this.dir);
    return sameList(before, this.apps) && before !== null ? undefined : this.apps;
  }

  /** The apps of the last scan (scanning first if there was none). */
  current(): string[] | null {
    if (this.mtimeMs === -1) this.scan();
    return this.apps;
  }
}

function listApps(dir: string): string[] | null {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const apps = names
    .filter((n) => n.endsWith(".js") && !n.startsWith(".") && n.length - 3 <= MAX_APP_NAME_CHARS)
    .map((n) => n.slice(0, -3))
    .sort();
  return apps.length > MAX_WORKER_APPS ? null : apps;
}

function sameList(a: string[] | null, b: string[] | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
