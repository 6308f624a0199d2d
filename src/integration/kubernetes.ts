import { existsSync, readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import type { Logger } from "../log.js";
import { IntegrationError, type Registrar, type RegistrarDeps, type ServiceRecord } from "./types.js";

export const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
export const SA_TOKEN_FILE = `${SA_DIR}/token`;
export const SA_CA_FILE = `${SA_DIR}/ca.crt`;
export const SA_NAMESPACE_FILE = `${SA_DIR}/namespace`;

export interface KubernetesOptions {
  /** API server URL: https://kubernetes.default.svc in a pod; http:// is accepted (tests, kubectl proxy). */
  apiServer: string;
  namespace: string;
  tokenFile: string;
  caFile: string;
  serviceName: string;
  /** Create an Endpoints object pointing at this host's IP (the server runs outside the cluster). */
  external: boolean;
}

/** The namespace a pod runs in (the service-account file), else "default". */
export function defaultNamespace(file = SA_NAMESPACE_FILE): string {
  try {
    const ns = readFileSync(file, "utf8").trim();
    return ns || "default";
  } catch {
    return "default";
  }
}

/** Outside a cluster unless the kubelet set KUBERNETES_SERVICE_HOST. */
export function defaultExternal(env: NodeJS.ProcessEnv = process.env): boolean {
  return !env.KUBERNETES_SERVICE_HOST;
}

/** The IP the Endpoints object points at: the bound address when specific, else the first external IPv4. */
export function hostIp(bindHost: string): string {
  if (isIP(bindHost) && bindHost !== "0.0.0.0" && bindHost !== "::") return bindHost;
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return "127.0.0.1";
}

interface Reply {
  status: number;
  body: string;
}

/**
 * Registers the server with Kubernetes through the API server, authenticated by a service-account
 * token and trusting its CA: a Service for the client, metrics, worker and status ports, and, when the
 * server runs outside the cluster, an Endpoints object of the same name pointing at this host. Both
 * are deleted at shutdown. An object left over by a crashed server is replaced.
 */
export class KubernetesRegistrar implements Registrar {
  readonly kind = "kubernetes";
  readonly target: string;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly ca: Buffer | undefined;
  /** What it made, with the uid the API server gave each (null: it gave none). */
  private created: { kind: "services" | "endpoints"; uid: string | null }[] = [];

  constructor(
    private readonly opts: KubernetesOptions,
    deps: RegistrarDeps,
  ) {
    this.target = opts.apiServer;
    this.log = deps.log;
    this.timeoutMs = deps.requestTimeoutMs ?? 5000;
    let url: URL;
    try {
      url = new URL(opts.apiServer);
    } catch {
      throw new IntegrationError(
        `invalid --k8s-api-server "${opts.apiServer}"`,
        "give a URL such as https://kubernetes.default.svc",
      );
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new IntegrationError(
        `invalid --k8s-api-server "${opts.apiServer}"`,
        "use an https:// (or http://) URL",
      );
    }
    this.ca = url.protocol === "https:" && existsSync(opts.caFile) ? readFileSync(opts.caFile) : undefined;
    if (url.protocol === "https:" && !this.ca) {
      this.log.warn(
        { caFile: opts.caFile },
        "no Kubernetes CA file: trusting the system CAs for the API server",
      );
    }
  }

  private path(kind: "services" | "endpoints", name?: string): string {
    const ns = encodeURIComponent(this.opts.namespace);
    return `/api/v1/namespaces/${ns}/${kind}${name ? "/" + encodeURIComponent(name) : ""}`;
  }

  async register(record: ServiceRecord): Promise<void> {
    const ports: { name: string; port: number }[] = [{ name: "client", port: record.port }];
    if (record.metricsPort !== null) ports.push({ name: "metrics", port: record.metricsPort });
    ports.push({ name: "worker", port: record.workerPort });
    if (record.statusPort !== null) ports.push({ name: "status", port: record.statusPort });
    const name = this.opts.serviceName;
    const labels = { "app.kubernetes.io/name": "zgrid", "app.kubernetes.io/instance": record.name };
    const service = {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name, namespace: this.opts.namespace, labels },
      spec: {
        ports: ports.map((p) => ({ ...p, protocol: "TCP", port: p.port, targetPort: p.port })),
        // Outside the cluster the Endpoints object below says where the server is; inside, the
        // Service selects the server's pod by its app label.
        ...(this.opts.external ? {} : { selector: { app: name } }),
      },
    };
    await this.create("services", name, service);
    if (this.opts.external) {
      const ip = hostIp(record.bindHost);
      if (ip.startsWith("127.")) {
        this.log.warn(
          { ip },
          "the Endpoints object points at a loopback address: bind --host to a routable address",
        );
      }
      const endpoints = {
        apiVersion: "v1",
        kind: "Endpoints",
        metadata: { name, namespace: this.opts.namespace, labels },
        subsets: [{ addresses: [{ ip }], ports: ports.map((p) => ({ ...p, protocol: "TCP" })) }],
      };
      await this.create("endpoints", name, endpoints);
    }
  }

  private async create(kind: "services" | "endpoints", name: string, body: unknown): Promise<void> {
    let r = await this.send("POST", this.path(kind), body);
    if (r.status === 409) {
      // Left over by a server that crashed: replace it.
      this.log.warn(
        { kind, name, namespace: this.opts.namespace },
        "Kubernetes object already exists: replacing it",
      );
      const d = await this.send("DELETE", this.path(kind, name));
      if (d.status >= 300 && d.status !== 404) throw this.failure("DELETE", kind, d);
      r = await this.send("POST", this.path(kind), body);
    }
    if (r.status >= 300) throw this.failure("POST", kind, r);
    let uid: string | null = null;
    try {
      uid = (JSON.parse(r.body) as { metadata?: { uid?: string } }).metadata?.uid ?? null;
    } catch {
      // no uid: the delete at shutdown names none
    }
    this.created.push({ kind, uid });
  }

  async deregister(): Promise<void> {
    const created = this.created.reverse();
    this.created = [];
    const errors: string[] = [];
    for (const { kind, uid } of created) {
      try {
        // Only the object this server made: one another server replaced since (a standby of the same
        // PostgreSQL store that took over, registering under the same name) has another uid and stays.
        const options = uid ? { kind: "DeleteOptions", apiVersion: "v1", preconditions: { uid } } : undefined;
        const r = await this.send("DELETE", this.path(kind, this.opts.serviceName), options);
        if (r.status === 409) {
          this.log.warn(
            { kind, name: this.opts.serviceName, namespace: this.opts.namespace },
            "another server replaced this Kubernetes object: left to it",
          );
          continue;
        }
        if (r.status >= 300 && r.status !== 404) errors.push(this.failure("DELETE", kind, r).message);
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    if (errors.length > 0) {
      throw new IntegrationError(
        errors.join("; "),
        `delete Service/Endpoints ${this.opts.namespace}/${this.opts.serviceName} by hand (kubectl delete)`,
      );
    }
  }

  private failure(verb: string, kind: string, r: Reply): IntegrationError {
    let message = r.body.slice(0, 300);
    try {
      message = String((JSON.parse(r.body) as { message?: string }).message ?? message);
    } catch {
      // not JSON: keep the text
    }
    const hint =
      r.status === 401
        ? `the API server rejected the token: check --k8s-token-file (${this.opts.tokenFile})`
        : r.status === 403
          ? `the service account may not ${verb === "POST" ? "create" : "delete"} ${kind} in namespace ${this.opts.namespace}: grant it in a Role`
          : r.status === 404
            ? `check --k8s-namespace (${this.opts.namespace}) and --k8s-api-server`
            : "check the API server's health and logs";
    return new IntegrationError(`Kubernetes ${verb} ${kind} answered ${r.status}: ${message}`, hint);
  }

  private token(): string {
    try {
      return readFileSync(this.opts.tokenFile, "utf8").trim();
    } catch (err) {
      throw new IntegrationError(
        `cannot read the service-account token: ${(err as Error).message}`,
        "check --k8s-token-file (in a pod: automountServiceAccountToken)",
      );
    }
  }

  /** One bounded request to the API server; the token is read each time (it rotates). */
  private send(method: string, path: string, body?: unknown): Promise<Reply> {
    const token = this.token();
    const url = new URL(path, this.opts.apiServer);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string | number> = {
      authorization: `Bearer ${token}`,
      accept: "application/json",
    };
    if (payload !== undefined) {
      headers["content-type"] = "application/json";
      headers["content-length"] = Buffer.byteLength(payload);
    }
    const request = url.protocol === "https:" ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        { method, headers, timeout: this.timeoutMs, ...(this.ca ? { ca: this.ca } : {}) },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (text += d));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on("error", (err) =>
        reject(
          new IntegrationError(
            `cannot reach the Kubernetes API server ${this.opts.apiServer}: ${err.message}`,
            "check --k8s-api-server, the network, and --k8s-ca-file",
          ),
        ),
      );
      req.end(payload);
    });
  }
}
