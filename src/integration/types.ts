import type { Logger } from "../log.js";

/** What a server registers with an external system: its name and endpoints (tokens never included). */
export interface ServiceRecord {
  name: string;
  /** The address the sockets are bound to (as configured, e.g. 127.0.0.1 or 0.0.0.0). */
  bindHost: string;
  /** The host name clients use in URLs. */
  host: string;
  port: number;
  workerPort: number;
  metricsPort: number | null;
  statusPort: number | null;
  url: string;
  workerUrl: string;
  metricsUrl: string | null;
  statusUrl: string | null;
  pid: number;
  version: string;
}

/** One external system the INTEGRATION daemon registers with (Arkouda's ExternalIntegrationServerDaemon). */
export interface Registrar {
  /** "etcd" or "kubernetes". */
  readonly kind: string;
  /** Where it registers, for logs: the etcd endpoints, the API server. */
  readonly target: string;
  /** Registers the server; rejects with an {@link IntegrationError} that says what to check. */
  register(record: ServiceRecord): Promise<void>;
  /** Removes the registration; safe to call when nothing was registered. */
  deregister(): Promise<void>;
}

/** A registration failure, with what the operator should check. */
export class IntegrationError extends Error {
  override readonly name = "IntegrationError";
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

export interface RegistrarDeps {
  log: Logger;
  /** Bound on every single request, in ms. */
  requestTimeoutMs?: number;
}
