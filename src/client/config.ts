import { readFileSync } from "node:fs";
import { ErrorCode, ZgridError } from "../protocol/errors.js";
import type { ClientConfiguration, CurveKeyPair, Properties } from "./session-service.js";
import type { TaskOptions } from "./types.js";
import { parseServerUrl } from "./url.js";

/**
 * Every setting {@link loadClientConfig} knows, as a flat object: the shape of the JSON config file and
 * of its `overrides`. The task options may also be given nested, under `taskOptions`.
 */
export interface ClientSettings {
  /** The server URL, `tcp://HOST:PORT[?token=TOKEN]`. Environment: `ZGRID_URL`. */
  endpoint?: string;
  /** The server token; wins over a token in `endpoint` read from a lower layer. Environment: `ZGRID_TOKEN`. */
  token?: string;
  /** Reported to the server as the request's user (metrics per user); default: the OS user. */
  user?: string;
  /** Per-request timeout in milliseconds (default 30,000). Environment: `ZGRID_TIMEOUT_MS`. */
  timeoutMs?: number;
  /**
   * The server's CurveZMQ public key (Z85, 40 characters). Environment: `ZGRID_CURVE_SERVER_KEY`.
   * Overrides the URL's `serverKey=`; the connection is then encrypted (a server with `--curve`).
   */
  curveServerKey?: string;
  /**
   * This client's CurveZMQ key pair (Z85). Environment: `ZGRID_CURVE_PUBLIC_KEY` and
   * `ZGRID_CURVE_SECRET_KEY`, both or neither. Default: a new pair per connection.
   */
  curveKeyPair?: CurveKeyPair;
  /** Default 2. Environment: `ZGRID_MAX_RETRIES`. */
  maxRetries?: number;
  /** Default 1; higher runs first within a partition. Environment: `ZGRID_PRIORITY`. */
  priority?: number;
  /** Milliseconds a task may run; 0: no limit. Environment: `ZGRID_MAX_DURATION_MS`. */
  maxDuration?: number;
  /** Environment: `ZGRID_PARTITION_ID`. */
  partitionId?: string;
  /** The application module the tasks run (`NAME.js` on the workers). Environment: `ZGRID_APPLICATION_NAME`. */
  applicationName?: string;
  /** Environment: `ZGRID_APPLICATION_VERSION`. */
  applicationVersion?: string;
  /** Environment: `ZGRID_APPLICATION_NAMESPACE`. */
  applicationNamespace?: string;
  /** Environment: `ZGRID_APPLICATION_SERVICE`. */
  applicationService?: string;
  engineType?: string;
  /** Free-form string options passed to the tasks. */
  options?: Record<string, string>;
  /** The task options above, nested; a key may not be given both flat and nested. */
  taskOptions?: TaskOptions;
}

/** Where {@link loadClientConfig} reads from. */
export interface LoadClientConfigOptions {
  /** A JSON config file; default: the file named by `ZGRID_CLIENT_CONFIG`, else none. */
  file?: string;
  /** The environment to read (default `process.env`). */
  env?: Record<string, string | undefined>;
  /** Settings that win over the file and the environment. */
  overrides?: ClientSettings;
}

type Kind = "url" | "string" | "secret" | "int" | "curveKey" | "keyPair" | "stringMap";

interface Spec {
  key: keyof ClientSettings;
  kind: Kind;
  env?: string;
  min?: number;
  max?: number;
  task?: boolean;
}

const SPECS: Spec[] = [
  { key: "endpoint", kind: "url", env: "ZGRID_URL" },
  { key: "token", kind: "secret", env: "ZGRID_TOKEN" },
  { key: "user", kind: "string" },
  { key: "timeoutMs", kind: "int", env: "ZGRID_TIMEOUT_MS", min: 1, max: 2_147_483_647 },
  { key: "curveServerKey", kind: "curveKey", env: "ZGRID_CURVE_SERVER_KEY" },
  { key: "curveKeyPair", kind: "keyPair" },
  { key: "maxRetries", kind: "int", env: "ZGRID_MAX_RETRIES", min: 0, max: 1_000_000_000, task: true },
  { key: "priority", kind: "int", env: "ZGRID_PRIORITY", min: 0, max: 1_000_000, task: true },
  { key: "maxDuration", kind: "int", env: "ZGRID_MAX_DURATION_MS", min: 0, max: 1_000_000_000, task: true },
  { key: "partitionId", kind: "string", env: "ZGRID_PARTITION_ID", task: true },
  { key: "applicationName", kind: "string", env: "ZGRID_APPLICATION_NAME", task: true },
  { key: "applicationVersion", kind: "string", env: "ZGRID_APPLICATION_VERSION", task: true },
  { key: "applicationNamespace", kind: "string", env: "ZGRID_APPLICATION_NAMESPACE", task: true },
  { key: "applicationService", kind: "string", env: "ZGRID_APPLICATION_SERVICE", task: true },
  { key: "engineType", kind: "string", task: true },
  { key: "options", kind: "stringMap", task: true },
];

const BY_KEY = new Map(SPECS.map((s) => [s.key as string, s]));
const Z85 = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

/** Task option defaults of a session (seed 000): maxRetries 2, priority 1. */
export const DEFAULT_SESSION_TASK_OPTIONS = { maxRetries: 2, priority: 1 } as const;

/** Layers, lowest precedence first. */
const Rank = { File: 1, Env: 2, Override: 3 } as const;
type Rank = (typeof Rank)[keyof typeof Rank];

interface Found {
  value: unknown;
  rank: Rank;
}

function fail(message: string): never {
  throw new ZgridError(ErrorCode.INVALID_ARGUMENT, message);
}

function shown(spec: Spec | undefined, value: unknown): string {
  if (spec?.kind === "secret") return '"…"';
  if (spec?.kind === "keyPair" && value && typeof value === "object")
    return JSON.stringify({ ...(value as object), secretKey: "…" });
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Checks one value; `where` says where it was read, for the error. */
function check(spec: Spec, value: unknown, where: string): unknown {
  const bad = (what: string): never => fail(`${spec.key} must be ${what} (from ${where})`);
  switch (spec.kind) {
    case "url":
      if (typeof value !== "string" || value.trim() === "") bad("a zgrid URL, tcp://HOST:PORT?token=TOKEN");
      try {
        parseServerUrl(value as string, "");
      } catch (err) {
        bad(`a zgrid URL, tcp://HOST:PORT?token=TOKEN: ${(err as Error).message}`);
      }
      return (value as string).trim();
    case "string":
    case "secret":
      if (typeof value !== "string" || value === "") bad("a non-empty string");
      return value;
    case "int": {
      const n = typeof value === "string" && /^\s*-?\d+\s*$/.test(value) ? Number(value) : value;
      const range =
        spec.max !== undefined && spec.max < 1_000_000_000
          ? `an integer from ${spec.min} to ${spec.max}`
          : `an integer ≥ ${spec.min}`;
      if (typeof n !== "number" || !Number.isInteger(n) || n < spec.min! || n > spec.max!) bad(range);
      return n;
    }
    case "curveKey":
      if (typeof value !== "string" || !Z85.test(value)) bad("a CurveZMQ key: 40 characters of Z85");
      return value;
    case "keyPair": {
      const pair = value as Record<string, unknown> | null;
      if (
        !pair ||
        typeof pair !== "object" ||
        typeof pair.publicKey !== "string" ||
        typeof pair.secretKey !== "string" ||
        !Z85.test(pair.publicKey) ||
        !Z85.test(pair.secretKey) ||
        Object.keys(pair).some((k) => k !== "publicKey" && k !== "secretKey")
      ) {
        bad("{ publicKey, secretKey }, two CurveZMQ keys of 40 Z85 characters");
      }
      return { publicKey: pair!.publicKey, secretKey: pair!.secretKey };
    }
    case "stringMap":
      if (
        !value ||
        typeof value !== "object" ||
        Array.isArray(value) ||
        Object.values(value).some((v) => typeof v !== "string")
      ) {
        bad("a map of strings");
      }
      return { ...(value as Record<string, string>) };
  }
}

/** Reads one layer given as an object (the file's content or the overrides). */
function readObject(
  raw: unknown,
  layer: string,
  rank: Rank,
  into: Map<string, Found>,
  allowNested = true,
): void {
  if (raw === undefined) return;
  if (!raw || typeof raw !== "object" || Array.isArray(raw))
    fail(`${layer} must be a JSON object of settings, not ${shown(undefined, raw)}`);
  const seen = new Set<string>();
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (key.startsWith("$") || key.startsWith("//")) continue; // "$schema", "//": comments
    if (value === undefined) continue;
    if (key === "taskOptions" && allowNested) {
      if (!value || typeof value !== "object" || Array.isArray(value))
        fail(`taskOptions must be a map of task options (from ${layer})`);
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        const spec = BY_KEY.get(k);
        if (!spec?.task)
          fail(
            `unknown task option "${k}" in taskOptions (from ${layer}): known are ${SPECS.filter(
              (s) => s.task,
            )
              .map((s) => s.key)
              .join(", ")}`,
          );
        if (v === undefined) continue;
        if (seen.has(k)) fail(`${k} is given twice, flat and under taskOptions (from ${layer})`);
        seen.add(k);
        into.set(k, { value: check(spec, v, `${layer}: taskOptions.${k} = ${shown(spec, v)}`), rank });
      }
      continue;
    }
    const spec = BY_KEY.get(key);
    if (!spec)
      fail(
        `unknown setting "${key}" (from ${layer}): known are ${SPECS.map((s) => s.key).join(", ")}, taskOptions`,
      );
    if (seen.has(key)) fail(`${key} is given twice, flat and under taskOptions (from ${layer})`);
    seen.add(key);
    into.set(key, { value: check(spec, value, `${layer}: ${key} = ${shown(spec, value)}`), rank });
  }
}

function readFile(path: string, via: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    fail(`cannot read the client config file ${path} (${via}): ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    fail(`the client config file ${path} (${via}) is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * Reads a client's configuration the way ArmoniK's SDK does (seed 000): a JSON file, then environment
 * variables, which override the file, then explicit `overrides`, which override both. Returns the
 * {@link Properties} a {@link SessionService} takes: the connection settings, and the session's default
 * task options (maxRetries 2 and priority 1 unless set).
 *
 * | setting | environment | file / overrides key |
 * |---|---|---|
 * | server URL (required) | `ZGRID_URL` | `endpoint` |
 * | token | `ZGRID_TOKEN` | `token` |
 * | request timeout, ms | `ZGRID_TIMEOUT_MS` | `timeoutMs` |
 * | CurveZMQ server key | `ZGRID_CURVE_SERVER_KEY` | `curveServerKey` |
 * | CurveZMQ client keys | `ZGRID_CURVE_PUBLIC_KEY`, `ZGRID_CURVE_SECRET_KEY` | `curveKeyPair {publicKey, secretKey}` |
 * | task options | `ZGRID_MAX_RETRIES`, `ZGRID_PRIORITY`, `ZGRID_MAX_DURATION_MS`, `ZGRID_PARTITION_ID`, `ZGRID_APPLICATION_NAME`, `ZGRID_APPLICATION_VERSION`, `ZGRID_APPLICATION_NAMESPACE`, `ZGRID_APPLICATION_SERVICE` | `maxRetries`, `priority`, `maxDuration`, `partitionId`, `applicationName`, … (flat, or nested under `taskOptions`) |
 *
 * The file is `options.file`, else the one `ZGRID_CLIENT_CONFIG` names, else none. An empty environment
 * variable counts as unset. A token given on its own wins over a token inside the URL when its layer is
 * at least as high; a URL from a higher layer keeps its own token.
 *
 * With a server key (here or as the URL's `serverKey=`), the connection uses CurveZMQ with the key
 * pair given, else a new one (which a server with `--curve-clients` refuses).
 *
 * @throws ZgridError `INVALID_ARGUMENT` for a missing endpoint, an unreadable or malformed file, an
 * unknown key, or a malformed value; the message names the setting and where it was read, e.g.
 * `maxRetries must be an integer ≥ 0 (from environment ZGRID_MAX_RETRIES="x")`.
 *
 * @example
 * // client.json: { "endpoint": "tcp://grid:5555", "applicationName": "hello", "maxRetries": 5 }
 * // shell: ZGRID_TOKEN=secret ZGRID_PRIORITY=3 node app.js
 * const properties = loadClientConfig({ file: "client.json", overrides: { timeoutMs: 10_000 } });
 * const service = new SessionService(properties);
 */
export function loadClientConfig(options: LoadClientConfigOptions = {}): Properties {
  const env = options.env ?? process.env;
  const found = new Map<string, Found>();

  const envFile = env.ZGRID_CLIENT_CONFIG || undefined;
  const file = options.file ?? envFile;
  if (file !== undefined) {
    const via = options.file !== undefined ? "given as file" : "named by ZGRID_CLIENT_CONFIG";
    readObject(readFile(file, via), `file ${file}`, Rank.File, found);
  }

  for (const spec of SPECS) {
    if (!spec.env) continue;
    const raw = env[spec.env];
    if (raw === undefined || raw === "") continue;
    const where = `environment ${spec.env}=${spec.kind === "secret" ? '"…"' : JSON.stringify(raw)}`;
    found.set(spec.key, { value: check(spec, raw, where), rank: Rank.Env });
  }
  const pub = env.ZGRID_CURVE_PUBLIC_KEY || undefined;
  const sec = env.ZGRID_CURVE_SECRET_KEY || undefined;
  if (pub !== undefined || sec !== undefined) {
    if (pub === undefined || sec === undefined)
      fail(
        `curveKeyPair needs both ZGRID_CURVE_PUBLIC_KEY and ZGRID_CURVE_SECRET_KEY (from environment: only ${pub ? "ZGRID_CURVE_PUBLIC_KEY" : "ZGRID_CURVE_SECRET_KEY"} is set)`,
      );
    found.set("curveKeyPair", {
      value: check(
        BY_KEY.get("curveKeyPair")!,
        { publicKey: pub, secretKey: sec },
        `environment ZGRID_CURVE_PUBLIC_KEY=${JSON.stringify(pub)}, ZGRID_CURVE_SECRET_KEY="…"`,
      ),
      rank: Rank.Env,
    });
  }

  readObject(options.overrides, "overrides", Rank.Override, found);

  const endpoint = found.get("endpoint");
  if (!endpoint) {
    fail(
      `endpoint is not set: set ZGRID_URL, put "endpoint" in the config file (ZGRID_CLIENT_CONFIG), or pass it in overrides`,
    );
  }
  const configuration: ClientConfiguration = { endpoint: endpoint.value as string };
  const token = found.get("token");
  if (token) {
    const urlHasToken = parseServerUrl(configuration.endpoint, "").token !== undefined;
    if (!(urlHasToken && endpoint.rank > token.rank)) configuration.token = token.value as string;
  }
  for (const key of ["user", "timeoutMs", "curveServerKey", "curveKeyPair"] as const) {
    const f = found.get(key);
    if (f) (configuration as unknown as Record<string, unknown>)[key] = f.value;
  }
  const taskOptions: TaskOptions = { ...DEFAULT_SESSION_TASK_OPTIONS };
  for (const spec of SPECS) {
    const f = spec.task ? found.get(spec.key) : undefined;
    if (f) (taskOptions as Record<string, unknown>)[spec.key] = f.value;
  }
  return { configuration, taskOptions };
}
