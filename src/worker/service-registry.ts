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

/**
 * The services of one executor thread: one per (application, version, namespace, service name), created on
 * first use, moved from session to session (leaveSession, then enterSession), torn down at stop.
 */
export class ServiceRegistry {
  private readonly entries = new Map<string, ServiceEntry>();
  // The hot path runs many tasks of the same service in a row: remember the last one to skip the key.
  private last: { options: ThreadApp; entry: ServiceEntry } | undefined;

  constructor(
    private readonly loader: AppLoader,
    private readonly log: LifecycleLog,
  ) {}

  /** The service a task runs on, created if this thread has none yet. Throws what loading/creation threw. */
  async serviceFor(options: ThreadApp): Promise<ServiceEntry> {
    const last = this.last;
    if (last && sameApp(last.options, options)) return last.entry;
    const app = await this.loader.load(options.applicationName, options.applicationVersion);
    const namespace = options.applicationNamespace ?? "";
    const serviceName = options.applicationService ?? "";
    const key = `${app.path}\0${namespace}\0${serviceName}`;
    let entry = this.entries.get(key);
    if (!entry) {
      const service: unknown = await app.module.createService(serviceName, namespace);
      entry = { app, service, namespace, serviceName, sessionId: undefined, session: undefined };
      this.entries.set(key, entry);
    }
    this.last = { options, entry };
    return entry;
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
