import type { Logger } from "../log.js";
import { IntegrationError, type Registrar, type RegistrarDeps, type ServiceRecord } from "./types.js";

export interface EtcdOptions {
  /** Client URLs of the etcd cluster, e.g. http://127.0.0.1:2379; tried in turn. */
  endpoints: string[];
  /** Lease TTL in seconds: how long the key outlives a crashed server. */
  leaseTtl: number;
  /** The key prefix; the key is `<prefix><name>`. */
  prefix?: string;
}

export const ETCD_PREFIX = "/zgrid/servers/";

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");

/**
 * Registers the server in etcd v3 through its JSON gRPC gateway (etcd ≥ 3.4: /v3/...): puts
 * `/zgrid/servers/<name>` → JSON of the URLs, attached to a lease kept alive every TTL/3; deletes the
 * key and revokes the lease at shutdown. After a crash the lease expires and etcd drops the key.
 *
 * Another server may take the key: a standby that became the owner of a PostgreSQL store registers
 * under the same name. The server it replaced (cut off, fenced, stopping) then leaves the key alone: it
 * registers again after a lost lease only where no key is, and deletes the key at shutdown only while
 * it still holds its own record (both as etcd transactions).
 */
export class EtcdRegistrar implements Registrar {
  readonly kind = "etcd";
  readonly target: string;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly prefix: string;
  private current = 0;
  private key: string | null = null;
  private value = "";
  private leaseId: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private keepaliveFailing = false;
  private stopped = false;
  /** Another server holds the key now: this one does not register again. */
  private superseded = false;

  constructor(
    private readonly opts: EtcdOptions,
    deps: RegistrarDeps,
  ) {
    if (opts.endpoints.length === 0) throw new IntegrationError("no etcd endpoint", "set --etcd-endpoints");
    this.target = opts.endpoints.join(",");
    this.log = deps.log;
    this.timeoutMs = deps.requestTimeoutMs ?? 5000;
    this.prefix = opts.prefix ?? ETCD_PREFIX;
  }

  get registeredKey(): string | null {
    return this.key;
  }

  async register(record: ServiceRecord): Promise<void> {
    this.stopped = false;
    this.superseded = false;
    this.key = `${this.prefix}${record.name}`;
    this.value = JSON.stringify({
      name: record.name,
      host: record.host,
      url: record.url,
      workerUrl: record.workerUrl,
      metricsUrl: record.metricsUrl,
      statusUrl: record.statusUrl,
      pid: record.pid,
      version: record.version,
    });
    try {
      await this.putWithLease();
    } finally {
      // Even when etcd is down at start, keep trying: the key appears once etcd answers.
      this.startKeepalive();
    }
  }

  /**
   * Puts the key on a new lease; `onlyIfAbsent` (registering again): only where no key is, else false
   * and this server stops registering (another holds the name).
   */
  private async putWithLease(onlyIfAbsent = false): Promise<boolean> {
    const grant = (await this.call("/v3/lease/grant", { TTL: this.opts.leaseTtl })) as { ID?: string };
    if (!grant.ID) throw new IntegrationError("etcd granted no lease", "check the etcd server's logs");
    this.leaseId = grant.ID;
    const put = { key: b64(this.key!), value: b64(this.value), lease: grant.ID };
    if (!onlyIfAbsent) {
      await this.call("/v3/kv/put", put);
      return true;
    }
    const txn = (await this.call("/v3/kv/txn", {
      compare: [{ key: put.key, target: "CREATE", result: "EQUAL", createRevision: "0" }],
      success: [{ requestPut: put }],
    })) as { succeeded?: boolean };
    if (txn.succeeded) return true;
    this.superseded = true;
    await this.call("/v3/lease/revoke", { ID: grant.ID }).catch(() => {});
    this.leaseId = null;
    return false;
  }

  private startKeepalive(): void {
    if (this.timer || this.stopped) return;
    const every = Math.max(300, Math.floor((this.opts.leaseTtl * 1000) / 3));
    this.timer = setInterval(() => void this.keepalive(), every);
    this.timer.unref();
  }

  private keepaliveRunning = false;

  private async keepalive(): Promise<void> {
    if (this.keepaliveRunning || this.stopped || this.superseded) return;
    this.keepaliveRunning = true;
    try {
      let alive = false;
      if (this.leaseId) {
        const r = (await this.call("/v3/lease/keepalive", { ID: this.leaseId })) as {
          result?: { TTL?: string };
        };
        alive = Number(r.result?.TTL ?? 0) > 0;
      }
      if (!alive && !this.stopped) {
        // The lease expired (etcd restarted, or was unreachable longer than the TTL): register again,
        // unless another server registered under this name meanwhile.
        if (await this.putWithLease(true))
          this.log.warn({ key: this.key, etcd: this.target }, "etcd lease was lost: registered again");
        else
          this.log.warn(
            { key: this.key, etcd: this.target },
            "etcd lease was lost and another server holds the key now: this one no longer registers",
          );
      }
      if (this.keepaliveFailing)
        this.log.info({ key: this.key, etcd: this.target }, "etcd registration restored");
      this.keepaliveFailing = false;
    } catch (err) {
      if (!this.keepaliveFailing) {
        const hint = err instanceof IntegrationError ? err.hint : "check that etcd is running";
        this.log.error(
          { key: this.key, etcd: this.target, err: (err as Error).message, hint },
          "etcd keepalive failed: the registration will expire; retrying",
        );
      }
      this.keepaliveFailing = true;
    } finally {
      this.keepaliveRunning = false;
    }
  }

  async deregister(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (!this.key) return;
    const errors: string[] = [];
    try {
      // Only this server's own record: another that took the name keeps it.
      await this.call("/v3/kv/txn", {
        compare: [{ key: b64(this.key), target: "VALUE", result: "EQUAL", value: b64(this.value) }],
        success: [{ requestDeleteRange: { key: b64(this.key) } }],
      });
    } catch (err) {
      errors.push((err as Error).message);
    }
    if (this.leaseId) {
      try {
        await this.call("/v3/lease/revoke", { ID: this.leaseId });
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    const key = this.key;
    this.key = null;
    this.leaseId = null;
    if (errors.length > 0) {
      throw new IntegrationError(
        `cannot remove ${key} from etcd: ${errors.join("; ")}`,
        `the key expires with its lease within ${this.opts.leaseTtl} s; check that etcd at ${this.target} is reachable`,
      );
    }
  }

  /** POSTs to the gateway, trying each endpoint in turn from the last one that answered. */
  private async call(path: string, body: unknown): Promise<unknown> {
    const n = this.opts.endpoints.length;
    const failures: string[] = [];
    for (let i = 0; i < n; i++) {
      const idx = (this.current + i) % n;
      const base = this.opts.endpoints[idx]!.replace(/\/+$/, "");
      let res: Response;
      try {
        res = await fetch(base + path, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (err) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        failures.push(`${base}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
        continue;
      }
      const text = await res.text();
      let parsed: unknown;
      try {
        parsed = text ? JSON.parse(text.split("\n")[0]!) : {};
      } catch {
        parsed = { error: text.slice(0, 200) };
      }
      const error = (parsed as { error?: unknown; message?: unknown }).error;
      if (!res.ok || (typeof error === "string" && !(parsed as { result?: unknown }).result)) {
        throw new IntegrationError(
          `etcd ${base}${path} answered ${res.status}: ${typeof error === "string" ? error : text.slice(0, 200)}`,
          "check the etcd server's version (3.4 or later, JSON gateway on its client URL) and its logs",
        );
      }
      this.current = idx;
      return parsed;
    }
    throw new IntegrationError(
      `cannot reach etcd (${failures.join("; ")})`,
      `check that etcd runs and --etcd-endpoints (${this.target}) names its client URLs`,
    );
  }
}
