import type { AppLoader, LoadedApplication } from "./app-loader.js";
import { sameApp, type ThreadApp } from "./executor-messages.js";

/** One service of an executor thread and the session it is in. */
export interface ServiceEntry {
  readonly app: LoadedApplication;
  readonly service: unknown;
  readonly namespace: string;
  readonly serviceName: string;
  /** The session the service is in (entered and not left), if any. */
  sessionId: string | undefined;
  session: unknown;
}

/** Reports a lifecycle failure that has no task to fail (leaveSession, destroyService). */
export type LifecycleLog = (msg: string, err: unknown) => void;

// When watching, the edition each session began with on this thread, for this many recently used sessions.
const PINNED_SESSIONS = 1024;

/**
 * The services of one executor thread: one per (application, version, namespace, service name), created on
 * first use, moved from session to session (leaveSession, then enterSession), torn down at stop.
 *
 * When the loader watches the files (`--watch`), a session keeps the edition of the module its first task
 * on this thread ran: a session new to the thread gets the file as it is now, and a changed file gets a
 * service of its own, created from the new edition; services of older editions stay until stop.
 */
export class ServiceRegistry {
  private readonly entries = new Map<string, ServiceEntry>();
  // The hot path runs many tasks of the same service in a row: remember the last one to skip the key.
  private last: { options: ThreadApp; sessionId: string; entry: ServiceEntry } | undefined;
  // Watching only: session and application → the edition that session runs here. Least recently used first.
  private readonly pinned = new Map<string, LoadedApplication>();

  constructor(
    private readonly loader: AppLoader,
    private readonly log: LifecycleLog,
  ) {}

  /**
   * The service a task of `sessionId` runs on, created if this thread has none yet. Throws what
   * loading/creation threw.
   */
  async serviceFor(options: ThreadApp, sessionId: string): Promise<ServiceEntry> {
    const last = this.last;
    if (last && sameApp(last.options, options) && (last.sessionId === sessionId || !this.loader.watching))
      return last.entry;
    const app = await this.appFor(options, sessionId);
    const namespace = options.applicationNamespace ?? "";
    const serviceName = options.applicationService ?? "";
    const key = `${app.path}\0${app.revision}\0${namespace}\0${serviceName}`;
    let entry = this.entries.get(key);
    if (!entry) {
      const service: unknown = await app.module.createService(serviceName, namespace);
      entry = { app, service, namespace, serviceName, sessionId: undefined, session: undefined };
      this.entries.set(key, entry);
    }
    this.last = { options, sessionId, entry };
    return entry;
  }

  private async appFor(options: ThreadApp, sessionId: string): Promise<LoadedApplication> {
    const { applicationName: name, applicationVersion: version } = options;
    if (!this.loader.watching) return this.loader.load(name, version);
    const key = `${sessionId}\0${name ?? ""}\0${version ?? ""}`;
    let app = this.pinned.get(key);
    if (app) {
      this.pinned.delete(key); // most recently used last: a long session is not forgotten while it runs
    } else {
      app = await this.loader.load(name, version);
      if (this.pinned.size >= PINNED_SESSIONS) this.pinned.delete(this.pinned.keys().next().value!);
    }
    this.pinned.set(key, app);
    return app;
  }

  /** Puts the service in `sessionId`, leaving the session it was in. Returns the session to pass to call. */
  async enter(entry: ServiceEntry, sessionId: string): Promise<unknown> {
    if (entry.sessionId === sessionId) return entry.session;
    await this.leave(entry);
    const enterSession = entry.app.module.enterSession;
    const session: unknown = enterSession ? await enterSession(entry.service, sessionId) : undefined;
    entry.session = session ?? { sessionId };
    entry.sessionId = sessionId;
    return entry.session;
  }

  /** At stop: leaveSession for every service in a session, then destroyService for every service. */
  async shutdown(): Promise<void> {
    for (const entry of this.entries.values()) await this.leave(entry);
    for (const entry of this.entries.values()) {
      const destroyService = entry.app.module.destroyService;
      try {
        if (destroyService) await destroyService(entry.service);
      } catch (err) {
        this.log(`destroyService of application ${entry.app.path} failed`, err);
      }
    }
    this.entries.clear();
    this.pinned.clear();
    this.last = undefined;
  }

  private async leave(entry: ServiceEntry): Promise<void> {
    if (entry.sessionId === undefined) return;
    const { session } = entry;
    entry.sessionId = undefined;
    entry.session = undefined;
    const leaveSession = entry.app.module.leaveSession;
    try {
      if (leaveSession) await leaveSession(entry.service, session);
    } catch (err) {
      // The next session must still be entered: a failing leaveSession is logged, not fatal.
      this.log(`leaveSession of application ${entry.app.path} failed`, err);
    }
  }
}
