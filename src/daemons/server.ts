import { randomBytes } from "node:crypto";
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type Server as HttpServer } from "node:http";
import { hostname } from "node:os";
import { rmSync, writeFileSync, renameSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createLogger, type Logger } from "../log.js";
import { GridMetrics } from "../metrics/grid-metrics.js";
import { RequestMetrics } from "../metrics/request-metrics.js";
import { Scheduler } from "../scheduler/scheduler.js";
import { openStore, type Store } from "../store/index.js";
import { PgStore } from "../store/pg-store.js";
import { TokenCheck, resolveToken } from "./auth.js";
import { UserDirectory, readUsersFile } from "./users.js";
import type { ServerConfig } from "./config.js";
import { VERSION, type Endpoints, type SecuritySummary, type ServerContext } from "./context.js";
import type { Daemon } from "./daemon.js";
import { DefaultDaemon } from "./default-daemon.js";
import { IntegrationDaemon } from "./integration-daemon.js";
import { MetricsDaemon } from "./metrics-daemon.js";
import { StatusThread } from "./status-thread.js";
import { READ_ONLY_COMMANDS } from "./roles.js";
import { serverStatus } from "../commands/status.js";
import { WorkerEndpoint } from "./worker-endpoint.js";
import { curveKeyPair } from "zeromq";
import { loadServerKeys, readAllowList, requireCurve, type CurveKeys } from "./curve.js";
import { ZapThread, type AllowLists } from "./zap-thread.js";

const CLI_MAIN = fileURLToPath(new URL("../cli/main.js", import.meta.url));

/** What a started server tells the world: the connection-info file's content (design §1). */
export interface ConnectionInfo {
  host: string;
  port: number;
  url: string;
  workerUrl: string;
  metricsUrl: string | null;
  statusUrl: string | null;
  pid: number;
  version: string;
  dataDir: string;
  /** Where the state lives: the SQLite file, or "memory". */
  store: string;
}

/** How many keys each allow-list file lists; null: no such file (any key). */
interface ListedKeys {
  clients: number | null;
  workers: number | null;
}

/**
 * One zgrid server: the daemons `--daemons` names, the worker endpoint, the scheduler, and their start
 * and graceful stop (Arkouda's ServerDaemon set, in one process).
 */
export class Server implements ServerContext {
  readonly metrics = new RequestMetrics();
  readonly scheduler: Scheduler;
  readonly store: Store;
  /** Why this server stopped itself: another took its PostgreSQL database (it exits 1). */
  fenced: string | null = null;
  readonly log: Logger;
  readonly startedAt = new Date();
  readonly version = VERSION;
  readonly instance = randomBytes(8).toString("hex");
  readonly authEnabled: boolean;
  readonly token: string | null;
  /** The worker endpoint's token (never the client token), null with --no-auth. */
  readonly workerToken: string | null;
  /** The users of --users-file, null without one (the server token is then everyone's, an admin's). */
  readonly users: UserDirectory | null;
  private readonly daemons: Daemon[] = [];
  private readonly defaultDaemon: DefaultDaemon;
  private readonly metricsDaemon: MetricsDaemon | null = null;
  private readonly statusDaemon: StatusThread | null = null;
  private readonly workerEndpoint: WorkerEndpoint;
  /** With `--curve`: the server's key pair (its public key is the URLs' serverKey). */
  readonly curveKeys: CurveKeys | null = null;
  /**
   * With `--curve`: the key pair of this process's own clients (the dashboard) and of its local workers,
   * let in whatever the allow-lists say: they are the server's own.
   */
  readonly internalCurveKeys: CurveKeys | null = null;
  private readonly zap: ZapThread | null = null;
  /** How many keys the allow-list files in force list (null: no such file), for `getconfig`. */
  private listedKeys: ListedKeys = { clients: null, workers: null };
  /** INTEGRATION (`--integration kubernetes|etcd`): registers the endpoints, deregisters at shutdown. */
  readonly integration: IntegrationDaemon | null;
  private http: HttpServer | null = null;
  private localWorkers: ChildProcess[] = [];
  private stopping: Promise<void> | null = null;
  private resolveClosed!: () => void;
  /** Resolves once the server has shut down. */
  readonly closed = new Promise<void>((resolve) => (this.resolveClosed = resolve));
  info: ConnectionInfo | null = null;

  constructor(
    readonly config: ServerConfig,
    log?: Logger,
  ) {
    this.log = log ?? createLogger(config.logLevel);
    this.token = config.noAuth ? null : resolveToken(config.token, config.dataDir).token;
    this.authEnabled = this.token !== null;
    // A users file that cannot be used stops the start: the error names the file and the line.
    const users = config.usersFile === undefined ? null : readUsersFile(config.usersFile);
    this.users = users === null ? null : new UserDirectory(users);
    const auth = new TokenCheck(this.token, this.users);
    const common = {
      host: config.host,
      auth,
      maxFrameBytes: config.maxFrameBytes,
      metrics: this.metrics,
      log: this.log,
    };
    this.store = openStore(config.store, config.dataDir, this.log, config.pgUrl);
    // Another server owns the database now: this one's state is stale, and clients given both URLs must
    // find the new owner, so it stops (exit 1).
    if (this.store instanceof PgStore)
      this.store.onFenced = (why) => {
        this.fenced = why;
        setImmediate(() => void this.shutdown());
      };
    // After the store: it explains a data dir that cannot be written.
    // Workers have a token of their own (design §3.3): a client's token must not make it a worker, which
    // reads every session's payloads. Generated beside the server token unless --worker-token gives it.
    this.workerToken = config.noAuth
      ? null
      : resolveToken(config.workerToken, config.dataDir, "worker-token").token;
    const workerAuth = new TokenCheck(this.workerToken);
    if (config.curve) {
      requireCurve();
      this.curveKeys = loadServerKeys(config.dataDir);
      this.internalCurveKeys = curveKeyPair();
      const { lists, listed } = this.readAllowLists();
      this.listedKeys = listed;
      this.zap = new ZapThread(lists, this.log, config.logLevel);
    }
    const curveSecretKey = this.curveKeys?.secretKey;
    this.scheduler = new Scheduler({
      log: this.log,
      maxBatch: config.maxBatch,
      store: this.store,
      resultCacheBytes: config.resultCacheMb * 2 ** 20,
      maxMemoryResultBytes: config.memoryStoreMb * 2 ** 20,
      // A worker notices a restarted server within a heartbeat or three and says READY again.
      orphanGraceMs: 4 * config.heartbeatMs,
    });
    new GridMetrics(this.metrics.registry, this.scheduler, this.store);
    this.defaultDaemon = new DefaultDaemon({
      ...common,
      curveSecretKey,
      port: config.port,
      // Clients' requests that may change state wait while the store is far behind: commits stay of a
      // bounded size. Reads are answered meanwhile.
      backpressure: () => this.store.backlogged(),
      readOnly: READ_ONLY_COMMANDS,
    });
    this.daemons.push(this.defaultDaemon);
    if (config.daemons.includes("metrics")) {
      this.metricsDaemon = new MetricsDaemon({ ...common, curveSecretKey, port: config.metricsPort });
      this.daemons.push(this.metricsDaemon);
    }
    if (config.daemons.includes("status")) {
      this.statusDaemon = new StatusThread({
        config,
        token: this.token,
        users,
        curveSecretKey,
        version: this.version,
        instance: this.instance,
        metrics: this.metrics,
        log: this.log,
        status: () => serverStatus(this),
        endpoints: () => this.endpoints(),
        security: () => this.security(),
        requestShutdown: (user) => this.requestShutdown(user),
      });
      this.daemons.push(this.statusDaemon);
    }
    this.integration = IntegrationDaemon.fromConfig(config, this.log);
    this.workerEndpoint = new WorkerEndpoint({
      host: config.host,
      port: config.workerPort,
      auth: workerAuth,
      heartbeatMs: config.heartbeatMs,
      maxFrameBytes: config.maxFrameBytes,
      scheduler: this.scheduler,
      log: this.log,
      curveSecretKey,
    });
  }

  /**
   * The `--curve-clients` and `--curve-workers` lists as read now, with this process's own keys added to
   * each list there is, and how many keys each file lists; throws a sentence naming the file and line
   * of a mistake.
   */
  private readAllowLists(): { lists: AllowLists; listed: ListedKeys } {
    // The server's own key too: whoever holds its secret key is the server already, and a probe beside
    // it (a container's HEALTHCHECK) can use that pair from the data dir.
    const own = [this.internalCurveKeys!.publicKey, this.curveKeys!.publicKey];
    const clients = this.config.curveClients === undefined ? null : readAllowList(this.config.curveClients);
    const workers = this.config.curveWorkers === undefined ? null : readAllowList(this.config.curveWorkers);
    return {
      lists: {
        clients: clients && [...clients, ...own],
        workers: workers && [...workers, ...own],
      },
      listed: { clients: clients?.length ?? null, workers: workers?.length ?? null },
    };
  }

  /**
   * SIGHUP: reads the allow-lists again; connections made from now on are judged by them (those already
   * made stay). A list with a mistake is not used: the ones in force stay, and the error is logged.
   */
  reloadCurveAllowLists(): boolean {
    if (!this.zap) return false;
    let lists: AllowLists;
    try {
      ({ lists, listed: this.listedKeys } = this.readAllowLists());
    } catch (err) {
      this.log.error(`${(err as Error).message}: the allow-lists in force stay`);
      return false;
    }
    this.zap.setLists(lists);
    this.statusDaemon?.securityChanged();
    this.log.info(
      { clients: lists.clients?.length ?? "any", workers: lists.workers?.length ?? "any" },
      "CurveZMQ allow-lists read again",
    );
    return true;
  }

  /**
   * Loads the command modules, binds every socket, writes the connection-info file. `beforeAnnounce`
   * runs once the sockets are bound and before that file appears (the CLI records the token in
   * ~/.zgrid/tokens.txt there), so whoever waits for the file can rely on what it did.
   */
  async start(beforeAnnounce?: (info: ConnectionInfo) => void): Promise<ConnectionInfo> {
    const loadStarted = Date.now();
    const recovered = this.scheduler.restore(this.store.load());
    if (recovered.tasks > 0) {
      this.log.info(
        { ...recovered, ms: Date.now() - loadStarted, store: this.store.stats().location },
        "state recovered from the store",
      );
    }
    const modules = await this.defaultDaemon.registerCommands(this);
    this.metricsDaemon?.registerCommands(this);
    try {
      // Before any Curve socket binds: a handshake with no handler to ask fails (zapEnforceDomain).
      await this.zap?.start();
      for (const d of this.daemons) await d.start();
      await this.workerEndpoint.start();
      if (this.config.prometheusPort !== undefined) await this.startPrometheus(this.config.prometheusPort);
      this.statusDaemon?.announce();
    } catch (err) {
      await this.closeSockets();
      await this.store.close();
      throw err;
    }
    if (!this.authEnabled)
      this.log.warn("authentication is OFF (--no-auth): anyone who reaches these ports can use the grid");
    const ep = this.endpoints();
    const urlHost =
      this.config.host === "0.0.0.0" || this.config.host === "*" ? hostname() : this.config.host;
    const withToken = (port: number, token = this.token): string => {
      const q = new URLSearchParams();
      if (token) q.set("token", token);
      if (this.curveKeys) q.set("serverKey", this.curveKeys.publicKey);
      const query = q.toString();
      return `tcp://${urlHost}:${port}${query ? `?${query}` : ""}`;
    };
    this.info = {
      host: urlHost,
      port: ep.port,
      url: withToken(ep.port),
      workerUrl: withToken(ep.workerPort, this.workerToken),
      metricsUrl: ep.metricsPort === null ? null : withToken(ep.metricsPort),
      statusUrl: ep.statusPort === null ? null : withToken(ep.statusPort),
      pid: process.pid,
      version: this.version,
      dataDir: this.config.dataDir,
      store: this.store.stats().location,
    };
    // Registered before the connection-info file appears; a failure is logged, never fatal.
    await this.integration?.start(ep, this.info);
    beforeAnnounce?.(this.info);
    if (this.config.connectionInfo) {
      const tmp = `${this.config.connectionInfo}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(this.info, null, 2) + "\n", { mode: 0o600 });
      renameSync(tmp, this.config.connectionInfo);
    }
    this.log.info({ ...ep, modules, store: this.config.store }, "zgrid server started");
    if (this.config.localWorkers > 0) this.startLocalWorkers(this.config.localWorkers);
    return this.info;
  }

  endpoints(): Endpoints {
    return {
      host: this.config.host,
      port: this.defaultDaemon.port,
      workerPort: this.workerEndpoint.port,
      metricsPort: this.metricsDaemon?.port ?? null,
      statusPort: this.statusDaemon?.port ?? null,
    };
  }

  security(): SecuritySummary {
    return {
      curve: this.curveKeys !== null,
      curveClientKeys: this.listedKeys.clients,
      curveWorkerKeys: this.listedKeys.workers,
      usersFile: this.users !== null,
      users: this.users?.size ?? null,
    };
  }

  daemonRequests(): Record<string, number> {
    return Object.fromEntries(this.daemons.map((d) => [d.name, d.requests]));
  }

  /**
   * Reads the users file again (SIGHUP): the new users take effect on every daemon at once. A file
   * that cannot be used is logged, and the users read before are kept. False when nothing changed.
   */
  reloadUsers(): boolean {
    const file = this.config.usersFile;
    if (file === undefined || this.users === null) {
      this.log.info("SIGHUP: no --users-file to read again");
      return false;
    }
    let users;
    try {
      users = readUsersFile(file);
    } catch (err) {
      this.log.error(
        { err: (err as Error).message, users: this.users.size },
        "the users file was not read again: the users before stay in force",
      );
      return false;
    }
    this.users.replace(users);
    this.statusDaemon?.replaceUsers(users);
    this.statusDaemon?.securityChanged();
    this.log.info({ file, users: users.length }, "users file read again");
    return true;
  }

  requestShutdown(user: string): void {
    this.log.info({ user }, "shutdown requested");
    setImmediate(() => void this.shutdown());
  }

  /** Graceful: stop accepting, answer what is in flight, stop workers, close sockets, remove the info file. */
  shutdown(): Promise<void> {
    this.stopping ??= (async () => {
      await this.integration?.stop();
      await Promise.all(this.daemons.map((d) => d.stop()));
      await this.stopLocalWorkers();
      await this.workerEndpoint.stop();
      await this.zap?.stop();
      await this.closeHttp();
      await this.store.close();
      if (this.config.connectionInfo) rmSync(this.config.connectionInfo, { force: true });
      this.log.info("zgrid server stopped");
      this.log.flush?.();
      this.resolveClosed();
    })();
    return this.stopping;
  }

  private async closeSockets(): Promise<void> {
    await Promise.allSettled([
      ...this.daemons.map((d) => d.stop(0)),
      this.workerEndpoint.stop(),
      this.closeHttp(),
    ]);
    await this.zap?.stop();
  }

  private closeHttp(): Promise<void> {
    const http = this.http;
    this.http = null;
    if (!http) return Promise.resolve();
    return new Promise((resolve) => http.close(() => resolve()));
  }

  private startPrometheus(port: number): Promise<void> {
    const http = createServer((req, res) => {
      if (req.url !== "/metrics" && !req.url?.startsWith("/metrics?")) {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found: scrape /metrics\n");
        return;
      }
      this.metrics.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": this.metrics.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { "content-type": "text/plain" }).end(err.message),
      );
    });
    this.http = http;
    return new Promise((resolve, reject) => {
      http.once("error", (err) => reject(new Error(`cannot serve /metrics on port ${port}: ${err.message}`)));
      http.listen(port, this.config.host, () => resolve());
    });
  }

  get prometheusPort(): number | null {
    const addr = this.http?.address();
    return addr && typeof addr === "object" ? addr.port : null;
  }

  /** Worker hosts started as child processes beside the server: the laptop setup. */
  private startLocalWorkers(n: number): void {
    // The URL (with the worker token) goes through the environment: a command line is readable by
    // every local user (ps).
    const env: NodeJS.ProcessEnv = { ...process.env, ZGRID_WORKER_URL: this.info!.workerUrl };
    if (this.internalCurveKeys) {
      env.ZGRID_CURVE_PUBLIC_KEY = this.internalCurveKeys.publicKey;
      env.ZGRID_CURVE_SECRET_KEY = this.internalCurveKeys.secretKey;
    }
    for (let i = 0; i < n; i++) {
      const args = [
        CLI_MAIN,
        "worker",
        "--app-path",
        this.config.appPath,
        "--log-level",
        this.config.logLevel,
      ];
      if (this.config.slots) args.push("--slots", String(this.config.slots));
      const child = spawn(process.execPath, args, { env, stdio: ["ignore", "inherit", "inherit"] });
      child.on("exit", (code, signal) => {
        if (!this.stopping) this.log.warn({ pid: child.pid, code, signal }, "local worker exited");
      });
      this.localWorkers.push(child);
    }
  }

  private async stopLocalWorkers(): Promise<void> {
    await Promise.all(
      this.localWorkers.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
            child.once("exit", () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill("SIGTERM");
          }),
      ),
    );
    this.localWorkers = [];
  }
}
