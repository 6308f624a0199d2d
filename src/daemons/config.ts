import { fileURLToPath } from "node:url";
import { ConfigError, type OptionSpec, type OptionValues } from "../config/options.js";
import { SA_CA_FILE, SA_TOKEN_FILE } from "../integration/kubernetes.js";

export const PACKAGE_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const DEFAULT_MODULES_CFG = fileURLToPath(new URL("../../../server-modules.cfg", import.meta.url));
export const DEFAULT_APP_PATH = fileURLToPath(new URL("../../../examples/apps", import.meta.url));

export const DAEMON_TYPES = ["default", "metrics", "status", "integration"] as const;
export type DaemonType = (typeof DAEMON_TYPES)[number];
export const INTEGRATION_KINDS = ["kubernetes", "etcd"] as const;
export type IntegrationKind = (typeof INTEGRATION_KINDS)[number];

/** Every `zgrid server` option (design §1–§3, §8): flag, ZGRID_* variable and config-file key. */
export const SERVER_OPTIONS: readonly OptionSpec[] = [
  { key: "config", flag: "--config", env: "ZGRID_CONFIG", type: "string", help: "JSON config file" },
  {
    key: "host",
    flag: "--host",
    env: "ZGRID_HOST",
    type: "string",
    default: "127.0.0.1",
    help: "address to bind",
  },
  {
    key: "port",
    flag: "--port",
    env: "ZGRID_PORT",
    type: "int",
    default: 5555,
    min: 0,
    max: 65535,
    help: "DEFAULT daemon port (0: any free port)",
  },
  {
    key: "workerPort",
    flag: "--worker-port",
    env: "ZGRID_WORKER_PORT",
    type: "int",
    default: 5558,
    min: 0,
    max: 65535,
    help: "worker endpoint port",
  },
  {
    key: "metricsPort",
    flag: "--metrics-port",
    env: "ZGRID_METRICS_PORT",
    type: "int",
    default: 5556,
    min: 0,
    max: 65535,
    help: "METRICS daemon port",
  },
  {
    key: "statusPort",
    flag: "--status-port",
    env: "ZGRID_STATUS_PORT",
    type: "int",
    default: 5557,
    min: 0,
    max: 65535,
    help: "STATUS daemon port",
  },
  {
    key: "daemons",
    flag: "--daemons",
    env: "ZGRID_DAEMONS",
    type: "list",
    default: ["default", "metrics", "status"],
    help: "daemons to run",
  },
  {
    key: "token",
    flag: "--token",
    env: "ZGRID_SERVER_TOKEN",
    type: "string",
    help: "access token (else <data-dir>/token, else generated)",
  },
  {
    key: "workerToken",
    flag: "--worker-token",
    env: "ZGRID_WORKER_TOKEN",
    type: "string",
    help: "token workers present (else <data-dir>/worker-token, else generated: never the client token)",
  },
  {
    key: "noAuth",
    flag: "--no-auth",
    env: "ZGRID_NO_AUTH",
    type: "bool",
    default: false,
    help: "accept requests without a token",
  },
  {
    key: "usersFile",
    flag: "--users-file",
    env: "ZGRID_USERS_FILE",
    type: "string",
    help: "users, roles and their tokens (NAME ROLE token=... a line, mode 0600); re-read on SIGHUP",
  },
  {
    key: "noTokensFile",
    flag: "--no-tokens-file",
    env: "ZGRID_NO_TOKENS_FILE",
    type: "bool",
    default: false,
    help: "do not record the client token in ~/.zgrid/tokens.txt (host:port,token[,serverKey] a line, mode 0600)",
  },
  {
    key: "curve",
    flag: "--curve",
    env: "ZGRID_CURVE",
    type: "bool",
    default: false,
    help: "CurveZMQ on every socket: the key pair is <data-dir>/curve-server.key, its public key goes in the URLs as serverKey=",
  },
  {
    key: "curveClients",
    flag: "--curve-clients",
    env: "ZGRID_CURVE_CLIENTS",
    type: "string",
    help: "with --curve: the client public keys let in, one a line (re-read on SIGHUP; default: any key, the token still applies)",
  },
  {
    key: "curveWorkers",
    flag: "--curve-workers",
    env: "ZGRID_CURVE_WORKERS",
    type: "string",
    help: "with --curve: the worker public keys let in, one a line (re-read on SIGHUP; default: any key, the worker token still applies)",
  },
  {
    key: "dataDir",
    flag: "--data-dir",
    env: "ZGRID_DATA_DIR",
    type: "string",
    default: "./.zgrid",
    help: "where the token and the store live",
  },
  {
    key: "store",
    flag: "--store",
    env: "ZGRID_STORE",
    type: "string",
    default: "sqlite",
    help: "state store: sqlite (embedded, in the data dir), postgres (--pg-url) or memory (nothing survives a restart)",
  },
  {
    key: "pgUrl",
    flag: "--pg-url",
    env: "ZGRID_PG_URL",
    type: "string",
    help: "with --store postgres: the database, postgres://USER:PASSWORD@HOST:PORT/DB (PostgreSQL 15 or later)",
  },
  {
    key: "standby",
    flag: "--standby",
    env: "ZGRID_STANDBY",
    type: "bool",
    default: false,
    help: "with --store postgres: while another server owns the database, wait (ports not bound) and take over when it stops",
  },
  {
    key: "connectionInfo",
    flag: "--connection-info",
    env: "ZGRID_SERVER_CONNECTION_INFO",
    type: "string",
    help: "write the endpoints to this JSON file",
  },
  {
    key: "modules",
    flag: "--modules",
    env: "ZGRID_MODULES",
    type: "string",
    default: DEFAULT_MODULES_CFG,
    help: "server-modules.cfg to load",
  },
  {
    key: "maxFrameBytes",
    flag: "--max-frame-bytes",
    env: "ZGRID_MAX_FRAME_BYTES",
    type: "int",
    default: 64 * 1024 * 1024,
    min: 1024,
    help: "largest frame accepted",
  },
  {
    key: "maxBatch",
    flag: "--max-batch",
    env: "ZGRID_MAX_BATCH",
    type: "int",
    default: 100_000,
    min: 1,
    help: "most tasks or results in one request",
  },
  {
    key: "resultCacheMb",
    flag: "--result-cache-mb",
    env: "ZGRID_RESULT_CACHE_MB",
    type: "int",
    default: 64,
    min: 0,
    help: "recent task outputs kept in memory once stored, MiB (older: read from the store)",
  },
  {
    key: "memoryStoreMb",
    flag: "--memory-store-mb",
    env: "ZGRID_MEMORY_STORE_MB",
    type: "int",
    default: 4096,
    min: 1,
    help: "with --store memory: the most result data held, MiB (more: RESOURCE_EXHAUSTED)",
  },
  {
    key: "prometheusPort",
    flag: "--prometheus-port",
    env: "ZGRID_PROMETHEUS_PORT",
    type: "int",
    min: 0,
    max: 65535,
    help: "serve /metrics over HTTP on this port",
  },
  {
    key: "dashboardPort",
    flag: "--dashboard-port",
    env: "ZGRID_DASHBOARD_PORT",
    type: "int",
    min: 0,
    max: 65535,
    help: "serve the web dashboard on this port (docs/dashboard.md)",
  },
  {
    key: "dashboardHost",
    flag: "--dashboard-host",
    env: "ZGRID_DASHBOARD_HOST",
    type: "string",
    default: "127.0.0.1",
    help: "address the dashboard binds",
  },
  {
    key: "heartbeatMs",
    flag: "--heartbeat-ms",
    env: "ZGRID_HEARTBEAT_MS",
    type: "int",
    default: 1000,
    min: 50,
    help: "worker heartbeat interval (three missed: dead)",
  },
  {
    key: "livenessMs",
    flag: "--liveness-ms",
    env: "ZGRID_LIVENESS_MS",
    type: "int",
    default: 30_000,
    min: 2000,
    help: "ruok answers UNAVAILABLE once the scheduler's loop has been stuck this long",
  },
  {
    key: "localWorkers",
    flag: "--local-workers",
    env: "ZGRID_LOCAL_WORKERS",
    type: "int",
    default: 0,
    min: 0,
    max: 256,
    help: "worker hosts to start beside the server",
  },
  {
    key: "slots",
    flag: "--slots",
    env: "ZGRID_SLOTS",
    type: "int",
    min: 1,
    max: 1024,
    help: "slots of each local worker (default: CPU count)",
  },
  {
    key: "appPath",
    flag: "--app-path",
    env: "ZGRID_APP_PATH",
    type: "string",
    default: DEFAULT_APP_PATH,
    help: "application modules of local workers",
  },
  {
    key: "integration",
    flag: "--integration",
    env: "ZGRID_INTEGRATION",
    type: "string",
    help: "INTEGRATION daemon: register the endpoints with kubernetes or etcd",
  },
  {
    key: "integrationName",
    flag: "--integration-name",
    env: "ZGRID_INTEGRATION_NAME",
    type: "string",
    help: "name registered (default: HOSTNAME-PORT)",
  },
  {
    key: "etcdEndpoints",
    flag: "--etcd-endpoints",
    env: "ZGRID_ETCD_ENDPOINTS",
    type: "list",
    default: ["http://127.0.0.1:2379"],
    help: "etcd client URLs (comma-separated)",
  },
  {
    key: "etcdLeaseTtl",
    flag: "--etcd-lease-ttl",
    env: "ZGRID_ETCD_LEASE_TTL",
    type: "int",
    default: 10,
    min: 1,
    max: 3600,
    help: "seconds the etcd key outlives a crashed server",
  },
  {
    key: "k8sApiServer",
    flag: "--k8s-api-server",
    env: "ZGRID_K8S_API_SERVER",
    type: "string",
    default: "https://kubernetes.default.svc",
    help: "Kubernetes API server URL",
  },
  {
    key: "k8sNamespace",
    flag: "--k8s-namespace",
    env: "ZGRID_K8S_NAMESPACE",
    type: "string",
    help: "namespace of the Service (default: the pod's, else default)",
  },
  {
    key: "k8sTokenFile",
    flag: "--k8s-token-file",
    env: "ZGRID_K8S_TOKEN_FILE",
    type: "string",
    default: SA_TOKEN_FILE,
    help: "service-account token",
  },
  {
    key: "k8sCaFile",
    flag: "--k8s-ca-file",
    env: "ZGRID_K8S_CA_FILE",
    type: "string",
    default: SA_CA_FILE,
    help: "CA certificate of the API server",
  },
  {
    key: "k8sServiceName",
    flag: "--k8s-service-name",
    env: "ZGRID_K8S_SERVICE_NAME",
    type: "string",
    default: "zgrid",
    help: "name of the Service (and Endpoints)",
  },
  {
    key: "k8sExternal",
    flag: "--k8s-external",
    env: "ZGRID_K8S_EXTERNAL",
    type: "bool",
    help: "also create Endpoints with this host's IP (default: true unless KUBERNETES_SERVICE_HOST is set)",
  },
  {
    key: "logLevel",
    flag: "--log-level",
    env: "ZGRID_LOG_LEVEL",
    type: "string",
    default: "info",
    help: "trace, debug, info, warn, error",
  },
];

export interface ServerConfig {
  host: string;
  port: number;
  workerPort: number;
  metricsPort: number;
  statusPort: number;
  daemons: DaemonType[];
  token?: string;
  workerToken?: string;
  noAuth: boolean;
  /** Users and roles (design §3.3); without it the server token is an admin's. */
  usersFile?: string;
  /** `zgrid server` records its client token in ~/.zgrid/tokens.txt unless this is set. */
  noTokensFile: boolean;
  /** CurveZMQ on every socket (design §3.3). */
  curve: boolean;
  /** Allow-list files of client and worker public keys (with `curve`). */
  curveClients?: string;
  curveWorkers?: string;
  dataDir: string;
  store: "sqlite" | "memory" | "postgres";
  /** The database of `--store postgres`. */
  pgUrl?: string;
  /** With `--store postgres`: wait while another server owns the database, then take over. */
  standby: boolean;
  connectionInfo?: string;
  modules: string;
  maxFrameBytes: number;
  maxBatch: number;
  resultCacheMb: number;
  memoryStoreMb: number;
  prometheusPort?: number;
  dashboardPort?: number;
  dashboardHost: string;
  heartbeatMs: number;
  livenessMs: number;
  localWorkers: number;
  slots?: number;
  appPath: string;
  logLevel: string;
  integration?: IntegrationKind;
  integrationName?: string;
  etcdEndpoints: string[];
  etcdLeaseTtl: number;
  k8sApiServer: string;
  k8sNamespace?: string;
  k8sTokenFile: string;
  k8sCaFile: string;
  k8sServiceName: string;
  k8sExternal?: boolean;
}

const LOG_LEVELS = new Set(["trace", "debug", "info", "warn", "error", "fatal", "silent"]);

/** Checks what the option types cannot: daemon names, store, log level. */
export function toServerConfig(values: OptionValues): ServerConfig {
  const daemons = values.daemons as string[];
  for (const d of daemons) {
    if (!(DAEMON_TYPES as readonly string[]).includes(d)) {
      throw new ConfigError(
        `unknown daemon "${d}" in --daemons: expected some of ${DAEMON_TYPES.join(", ")}`,
      );
    }
  }
  if (values.usersFile !== undefined && values.noAuth === true) {
    throw new ConfigError(`--users-file needs authentication: drop --no-auth`);
  }
  if (!daemons.includes("default")) throw new ConfigError(`--daemons must include "default"`);
  if (values.store !== "memory" && values.store !== "sqlite" && values.store !== "postgres") {
    throw new ConfigError(
      `unknown store "${String(values.store)}" for --store: expected sqlite, postgres or memory`,
    );
  }
  if (values.store === "postgres" && !values.pgUrl) {
    throw new ConfigError(`--store postgres needs --pg-url postgres://USER:PASSWORD@HOST:PORT/DB`);
  }
  if (values.standby === true && values.store !== "postgres") {
    throw new ConfigError(
      `--standby waits for the owner of a PostgreSQL database: it needs --store postgres`,
    );
  }
  if (values.pgUrl !== undefined && !/^postgres(ql)?:\/\//.test(String(values.pgUrl))) {
    throw new ConfigError(
      `--pg-url must start with postgres:// (got "${String(values.pgUrl).slice(0, 40)}")`,
    );
  }
  if (!LOG_LEVELS.has(String(values.logLevel))) {
    throw new ConfigError(`unknown log level "${String(values.logLevel)}" for --log-level`);
  }
  const integration = values.integration as string | undefined;
  if (integration !== undefined && !(INTEGRATION_KINDS as readonly string[]).includes(integration)) {
    throw new ConfigError(
      `unknown integration "${integration}" for --integration: expected ${INTEGRATION_KINDS.join(" or ")}`,
    );
  }
  if (daemons.includes("integration") && integration === undefined) {
    throw new ConfigError(`--daemons integration needs --integration ${INTEGRATION_KINDS.join("|")}`);
  }
  if (!values.curve && (values.curveClients !== undefined || values.curveWorkers !== undefined)) {
    throw new ConfigError(`--curve-clients and --curve-workers list CurveZMQ keys: they need --curve`);
  }
  for (const url of (values.etcdEndpoints as string[] | undefined) ?? []) {
    if (!/^https?:\/\/[^/]+/.test(url)) {
      throw new ConfigError(`invalid etcd endpoint "${url}" in --etcd-endpoints: expected http://HOST:PORT`);
    }
  }
  if (values.k8sApiServer !== undefined && !/^https?:\/\/[^/]+/.test(String(values.k8sApiServer))) {
    throw new ConfigError(
      `invalid --k8s-api-server "${String(values.k8sApiServer)}": expected https://HOST[:PORT]`,
    );
  }
  return { ...(values as unknown as ServerConfig), daemons: daemons as DaemonType[] };
}

/** A config with defaults for everything not given: what tests and embedders start from. */
export function serverConfig(overrides: Partial<ServerConfig> = {}): ServerConfig {
  const defaults: OptionValues = {};
  for (const s of SERVER_OPTIONS) defaults[s.key] = s.default;
  return { ...toServerConfig(defaults), ...overrides };
}
