import { hostname } from "node:os";
import { EtcdRegistrar } from "../integration/etcd.js";
import { KubernetesRegistrar, defaultExternal, defaultNamespace } from "../integration/kubernetes.js";
import { IntegrationError, type Registrar, type ServiceRecord } from "../integration/types.js";
import type { Logger } from "../log.js";
import type { ServerConfig } from "./config.js";
import type { Endpoints } from "./context.js";

/** The connection info fields the INTEGRATION daemon registers (see ConnectionInfo in server.ts). */
export interface RegisteredInfo {
  host: string;
  url: string;
  workerUrl: string;
  metricsUrl: string | null;
  statusUrl: string | null;
  pid: number;
  version: string;
}

/** Bound on each of register() and deregister(), so neither can hold up start or shutdown. */
const STEP_TIMEOUT_MS = 10_000;

/** A URL without its token: the registration is readable by whoever reads etcd or the API server. */
function withoutToken(url: string): string;
function withoutToken(url: string | null): string | null;
function withoutToken(url: string | null): string | null {
  return url === null ? null : url.replace(/\?token=[^&]*$/, "").replace(/([?&])token=[^&]*&?/, "$1");
}

/** The registrar `--integration` names, from the server's configuration. */
export function createRegistrar(config: ServerConfig, log: Logger, env = process.env): Registrar | null {
  switch (config.integration) {
    case undefined:
      return null;
    case "etcd":
      return new EtcdRegistrar({ endpoints: config.etcdEndpoints, leaseTtl: config.etcdLeaseTtl }, { log });
    case "kubernetes":
      return new KubernetesRegistrar(
        {
          apiServer: config.k8sApiServer,
          namespace: config.k8sNamespace ?? defaultNamespace(),
          tokenFile: config.k8sTokenFile,
          caFile: config.k8sCaFile,
          serviceName: config.k8sServiceName,
          external: config.k8sExternal ?? defaultExternal(env),
        },
        { log },
      );
  }
}

function bounded<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new IntegrationError(`${what} took more than ${STEP_TIMEOUT_MS} ms`, "check the network")),
      STEP_TIMEOUT_MS,
    );
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The INTEGRATION daemon (Arkouda's ExternalIntegrationServerDaemon): registers the server's endpoints
 * with Kubernetes or etcd once they are bound, deregisters them at shutdown. It has no socket of its
 * own, and its failures are logged, with what to check, without taking the grid down.
 */
export class IntegrationDaemon {
  readonly name = "INTEGRATION";
  private registered = false;
  private record: ServiceRecord | null = null;

  constructor(
    readonly registrar: Registrar,
    private readonly config: ServerConfig,
    private readonly log: Logger,
  ) {}

  static fromConfig(config: ServerConfig, log: Logger): IntegrationDaemon | null {
    let registrar: Registrar | null;
    try {
      registrar = createRegistrar(config, log);
    } catch (err) {
      const hint = err instanceof IntegrationError ? err.hint : undefined;
      log.error(
        { integration: config.integration, err: (err as Error).message, hint },
        "INTEGRATION disabled",
      );
      return null;
    }
    return registrar ? new IntegrationDaemon(registrar, config, log) : null;
  }

  /** The name registered: --integration-name, else HOSTNAME-PORT. */
  registeredName(ep: Endpoints): string {
    return this.config.integrationName ?? `${hostname()}-${ep.port}`;
  }

  /** Registers; never throws: a failure is logged as an error and the server keeps serving. */
  async start(ep: Endpoints, info: RegisteredInfo): Promise<boolean> {
    this.record = {
      name: this.registeredName(ep),
      bindHost: ep.host,
      host: info.host,
      port: ep.port,
      workerPort: ep.workerPort,
      metricsPort: ep.metricsPort,
      statusPort: ep.statusPort,
      url: withoutToken(info.url),
      workerUrl: withoutToken(info.workerUrl),
      metricsUrl: withoutToken(info.metricsUrl),
      statusUrl: withoutToken(info.statusUrl),
      pid: info.pid,
      version: info.version,
    };
    const where = { integration: this.registrar.kind, target: this.registrar.target, name: this.record.name };
    try {
      await bounded(this.registrar.register(this.record), `registration with ${this.registrar.kind}`);
      this.registered = true;
      this.log.info(where, `registered with ${this.registrar.kind}`);
      return true;
    } catch (err) {
      const hint = err instanceof IntegrationError ? err.hint : undefined;
      this.log.error(
        { ...where, err: (err as Error).message, hint },
        `INTEGRATION: cannot register with ${this.registrar.kind}; the server keeps serving without it`,
      );
      return false;
    }
  }

  /** Deregisters; never throws. */
  async stop(): Promise<void> {
    if (!this.record) return;
    const where = { integration: this.registrar.kind, target: this.registrar.target, name: this.record.name };
    try {
      await bounded(this.registrar.deregister(), `deregistration from ${this.registrar.kind}`);
      if (this.registered) this.log.info(where, `deregistered from ${this.registrar.kind}`);
    } catch (err) {
      const hint = err instanceof IntegrationError ? err.hint : undefined;
      this.log.error({ ...where, err: (err as Error).message, hint }, `INTEGRATION: cannot deregister`);
    }
    this.record = null;
    this.registered = false;
  }
}
