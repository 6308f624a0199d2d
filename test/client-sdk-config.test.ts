/**
 * loadClientConfig (seed 000's configuration): a JSON file, the environment over it, explicit overrides
 * over both; defaults; and errors that name the setting and where it was read. No server needed.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadClientConfig } from "../src/client/config.js";
import { HtcGridConnector } from "../src/client/htc-grid.js";
import { SessionService } from "../src/client/session-service.js";
import { ZgridError } from "../src/protocol/errors.js";
import { removeDir, tempDir } from "./helpers.js";

// Z85 keys of 40 characters (the shape zeromq's curveKeyPair() returns).
const PUB = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
const SEC = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6";
const SERVER_KEY = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";

describe("loadClientConfig", () => {
  let dir: string;
  let file: string;
  const write = (name: string, content: unknown): string => {
    const path = join(dir, name);
    writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
    return path;
  };

  before(() => {
    dir = tempDir();
    file = write("client.json", {
      endpoint: "tcp://file-host:5555",
      token: "file-token",
      timeoutMs: 1000,
      curveServerKey: SERVER_KEY,
      curveKeyPair: { publicKey: PUB, secretKey: SEC },
      applicationName: "from-file",
      applicationVersion: "1.0",
      taskOptions: { priority: 4, partitionId: "file-partition" },
    });
  });
  after(() => removeDir(dir));

  it("reads the file, with the defaults maxRetries 2 and priority 1 when unset", () => {
    const p = loadClientConfig({ file: write("min.json", { endpoint: "tcp://h:1" }), env: {} });
    assert.deepEqual(p, {
      configuration: { endpoint: "tcp://h:1" },
      taskOptions: { maxRetries: 2, priority: 1 },
    });
    const full = loadClientConfig({ file, env: {} });
    assert.deepEqual(full.configuration, {
      endpoint: "tcp://file-host:5555",
      token: "file-token",
      timeoutMs: 1000,
      curveServerKey: SERVER_KEY,
      curveKeyPair: { publicKey: PUB, secretKey: SEC },
    });
    assert.deepEqual(full.taskOptions, {
      maxRetries: 2,
      priority: 4,
      partitionId: "file-partition",
      applicationName: "from-file",
      applicationVersion: "1.0",
    });
  });

  it("the environment overrides the file, explicit overrides win over both", () => {
    const env = {
      ZGRID_CLIENT_CONFIG: file,
      ZGRID_URL: "tcp://env-host:6000",
      ZGRID_TOKEN: "env-token",
      ZGRID_TIMEOUT_MS: "2500",
      ZGRID_MAX_RETRIES: "7",
      ZGRID_PRIORITY: "9",
      ZGRID_APPLICATION_NAME: "from-env",
      ZGRID_APPLICATION_NAMESPACE: "ns",
      ZGRID_APPLICATION_SERVICE: "svc",
      ZGRID_PARTITION_ID: "env-partition",
      ZGRID_MAX_DURATION_MS: "60000",
      ZGRID_APPLICATION_VERSION: "", // empty: unset, the file's stays
    };
    const p = loadClientConfig({ env });
    assert.equal(p.configuration.endpoint, "tcp://env-host:6000");
    assert.equal(p.configuration.token, "env-token");
    assert.equal(p.configuration.timeoutMs, 2500);
    assert.deepEqual(p.taskOptions, {
      maxRetries: 7,
      priority: 9,
      maxDuration: 60000,
      partitionId: "env-partition",
      applicationName: "from-env",
      applicationVersion: "1.0",
      applicationNamespace: "ns",
      applicationService: "svc",
    });
    const o = loadClientConfig({
      env,
      overrides: {
        endpoint: "tcp://override:7000",
        priority: 0,
        taskOptions: { applicationName: "explicit" },
      },
    });
    assert.equal(o.configuration.endpoint, "tcp://override:7000");
    assert.equal(o.configuration.token, "env-token");
    assert.equal(o.taskOptions.priority, 0);
    assert.equal(o.taskOptions.applicationName, "explicit");
    assert.equal(o.taskOptions.maxRetries, 7);
    // An explicit file wins over ZGRID_CLIENT_CONFIG.
    const other = write("other.json", { endpoint: "tcp://other:1", applicationName: "other" });
    assert.equal(
      loadClientConfig({ file: other, env: { ZGRID_CLIENT_CONFIG: file } }).taskOptions.applicationName,
      "other",
    );
  });

  it("a token inside a URL of a higher layer wins over a lone token of a lower one, and not the reverse", () => {
    const f = write("tok.json", { token: "file-token", endpoint: "tcp://h:1" });
    const urlWins = loadClientConfig({ file: f, env: { ZGRID_URL: "tcp://h:2?token=url-token" } });
    assert.equal(urlWins.configuration.endpoint, "tcp://h:2?token=url-token");
    assert.equal(urlWins.configuration.token, undefined);
    const tokenWins = loadClientConfig({
      file: write("url.json", { endpoint: "tcp://h:1?token=url-token" }),
      env: { ZGRID_TOKEN: "env-token" },
    });
    assert.equal(tokenWins.configuration.token, "env-token");
  });

  it("carries the CurveZMQ keys from the environment, both or neither", () => {
    const p = loadClientConfig({
      env: {
        ZGRID_URL: "tcp://h:1",
        ZGRID_CURVE_SERVER_KEY: SERVER_KEY,
        ZGRID_CURVE_PUBLIC_KEY: PUB,
        ZGRID_CURVE_SECRET_KEY: SEC,
      },
    });
    assert.equal(p.configuration.curveServerKey, SERVER_KEY);
    assert.deepEqual(p.configuration.curveKeyPair, { publicKey: PUB, secretKey: SEC });
    assert.throws(
      () => loadClientConfig({ env: { ZGRID_URL: "tcp://h:1", ZGRID_CURVE_PUBLIC_KEY: PUB } }),
      /curveKeyPair needs both ZGRID_CURVE_PUBLIC_KEY and ZGRID_CURVE_SECRET_KEY/,
    );
  });

  it("errors name the setting and where it was read", () => {
    const cases: [Parameters<typeof loadClientConfig>[0], RegExp][] = [
      [
        { env: { ZGRID_URL: "tcp://h:1", ZGRID_MAX_RETRIES: "x" } },
        /^maxRetries must be an integer ≥ 0 \(from environment ZGRID_MAX_RETRIES="x"\)$/,
      ],
      [
        { env: { ZGRID_URL: "tcp://h:1", ZGRID_PRIORITY: "-1" } },
        /^priority must be an integer from 0 to 1000000 \(from environment ZGRID_PRIORITY="-1"\)$/,
      ],
      [
        { env: { ZGRID_URL: "tcp://h:1", ZGRID_TIMEOUT_MS: "0" } },
        /^timeoutMs must be an integer ≥ 1 \(from environment ZGRID_TIMEOUT_MS="0"\)$/,
      ],
      [
        { env: { ZGRID_URL: "http://h:1" } },
        /^endpoint must be a zgrid URL.*\(from environment ZGRID_URL="http:\/\/h:1"\)$/,
      ],
      [{ env: {} }, /^endpoint is not set: set ZGRID_URL, put "endpoint" in the config file/],
      [
        { env: { ZGRID_URL: "tcp://h:1", ZGRID_CURVE_SERVER_KEY: "short" } },
        /^curveServerKey must be a CurveZMQ key: 40 characters of Z85 \(from environment/,
      ],
      [
        { env: { ZGRID_URL: "tcp://h:1" }, overrides: { maxRetries: 1.5 } },
        /^maxRetries must be an integer ≥ 0 \(from overrides: maxRetries = 1.5\)$/,
      ],
    ];
    for (const [options, message] of cases) {
      assert.throws(
        () => loadClientConfig(options),
        (err: unknown) =>
          err instanceof ZgridError && err.code === "INVALID_ARGUMENT" && message.test(err.message),
        `expected ${message}`,
      );
    }
    const badFile = write("bad.json", { endpoint: "tcp://h:1", maxRetries: "three" });
    assert.throws(
      () => loadClientConfig({ file: badFile, env: {} }),
      new RegExp(`maxRetries must be an integer ≥ 0 \\(from file ${badFile}: maxRetries = "three"\\)$`),
    );
    const typo = write("typo.json", { endpoint: "tcp://h:1", maxRetry: 3 });
    assert.throws(
      () => loadClientConfig({ file: typo, env: {} }),
      /unknown setting "maxRetry" \(from file .*typo\.json\)/,
    );
    const nestedTypo = write("nested.json", { endpoint: "tcp://h:1", taskOptions: { token: "x" } });
    assert.throws(
      () => loadClientConfig({ file: nestedTypo, env: {} }),
      /unknown task option "token" in taskOptions/,
    );
    const twice = write("twice.json", { endpoint: "tcp://h:1", priority: 1, taskOptions: { priority: 2 } });
    assert.throws(() => loadClientConfig({ file: twice, env: {} }), /priority is given twice/);
    const notJson = write("broken.json", "{ endpoint: ");
    assert.throws(
      () => loadClientConfig({ env: { ZGRID_CLIENT_CONFIG: notJson } }),
      /the client config file .*broken\.json \(named by ZGRID_CLIENT_CONFIG\) is not valid JSON/,
    );
    assert.throws(
      () => loadClientConfig({ file: join(dir, "missing.json"), env: {} }),
      /cannot read the client config file .*missing\.json \(given as file\)/,
    );
    // Secrets are never echoed.
    assert.throws(
      () =>
        loadClientConfig({ env: { ZGRID_URL: "tcp://h:1" }, overrides: { token: 42 as unknown as string } }),
      (err: Error) => /token must be a non-empty string \(from overrides: token = "…"\)/.test(err.message),
    );
  });

  it("SessionService.fromConfig builds a service from the same sources (no request sent)", async () => {
    const service = SessionService.fromConfig({
      env: { ZGRID_URL: "tcp://127.0.0.1:1?token=t", ZGRID_TIMEOUT_MS: "300" },
    });
    assert.equal(service.client.address.endpoint, "tcp://127.0.0.1:1");
    // Nothing listens on port 1: the session cannot be created, within ZGRID_TIMEOUT_MS.
    const started = Date.now();
    await assert.rejects(service.getSessionId(), (err: ZgridError) => err.code === "TIMEOUT");
    assert.ok(Date.now() - started < 3000);
    await service.close();
    assert.throws(() => SessionService.fromConfig({ env: { ZGRID_PRIORITY: "high" } }), /priority must be/);
  });

  it("HtcGridConnector checks its config: AWS keys ignored, malformed known keys rejected", async () => {
    // HTC-Grid's AWS-only keys (client_config_data), with values that would mean something if read.
    const aws = {
      region: "eu-west-1",
      grid_storage_service: "REDIS",
      s3_bucket: "b",
      redis_url: "tcp://redis-host:6379",
      public_api_gateway_url: "tcp://public-gw:5555?token=gw-token",
      private_api_gateway_url: "tcp://private-gw:5555",
      api_gateway_key: "gw-key",
      user_pool_id: "pool",
      cognito_userpool_client_id: "cognito-client",
      username: "aws-user",
      password: "aws-password",
      task_input_passed_via_external_storage: 1,
    };
    /** What a connector was configured with: its connection's and its tasks' settings. */
    const settings = (grid: HtcGridConnector): Record<string, unknown> => {
      const conn = grid.client as unknown as {
        address: unknown;
        token?: string;
        user: string;
        timeoutMs: number;
      };
      const own = grid as unknown as { taskOptions: unknown; pullIntervalMs: number };
      return {
        method: grid.method,
        address: conn.address,
        token: conn.token,
        user: conn.user,
        timeoutMs: conn.timeoutMs,
        taskOptions: own.taskOptions,
        pullIntervalMs: own.pullIntervalMs,
      };
    };
    const known = {
      grid_url: "tcp://127.0.0.1:1?token=t",
      application_name: "app",
      method: "compute",
      partition_id: "p",
      priority: 3,
      max_retries: 1,
      task_timeout_sec: 2,
      dynamodb_results_pull_interval_sec: 0.5,
      request_timeout_ms: 700,
      user: "me",
    };
    const minimal = { grid_url: "tcp://127.0.0.1:1?token=t" };
    const grids = [known, minimal].flatMap((config) => [
      new HtcGridConnector(config),
      new HtcGridConnector({ ...aws, ...config }),
    ]);
    try {
      const [plain, withAws, plainMinimal, minimalWithAws] = grids.map(settings);
      assert.deepEqual(withAws, plain, "the AWS keys change nothing beside the known keys");
      assert.deepEqual(minimalWithAws, plainMinimal, "the AWS keys change nothing of the defaults");
      // The baselines are what the known keys and the defaults say, so the comparisons have substance.
      assert.deepEqual(plain, {
        method: "compute",
        address: {
          endpoint: "tcp://127.0.0.1:1",
          endpoints: ["tcp://127.0.0.1:1"],
          host: "127.0.0.1",
          port: 1,
          token: "t",
        },
        token: "t",
        user: "me",
        timeoutMs: 700,
        taskOptions: {
          maxRetries: 1,
          priority: 3,
          applicationName: "app",
          partitionId: "p",
          maxDuration: 2000,
        },
        pullIntervalMs: 500,
      });
      assert.equal(plainMinimal.method, "run");
      assert.deepEqual(plainMinimal.taskOptions, { maxRetries: 2, priority: 1, applicationName: "htcgrid" });
      assert.equal(plainMinimal.pullIntervalMs, 10_000);
      assert.equal(plainMinimal.timeoutMs, 30_000);
    } finally {
      await Promise.all(grids.map((g) => g.close()));
    }
    assert.throws(
      () => new HtcGridConnector({ grid_url: "tcp://127.0.0.1:1", max_retries: -1 }),
      /max_retries must be an integer ≥ 0/,
    );
    const saved = process.env.ZGRID_URL;
    delete process.env.ZGRID_URL;
    try {
      assert.throws(() => new HtcGridConnector({ region: "x" }), /no server URL/);
    } finally {
      if (saved !== undefined) process.env.ZGRID_URL = saved;
    }
  });
});
