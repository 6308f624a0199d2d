/**
 * INTEGRATION `etcd` (design §9) against a real etcd (Debian etcd-server) started here on free ports:
 * the key `/zgrid/servers/<name>` with a lease kept alive, deleted at shutdown, gone after a kill -9
 * once the lease expires; a registration failure is logged and the server keeps serving.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { serverConfigFrom } from "../src/cli/server-cmd.js";
import { connect } from "../src/client/client.js";
import { Server } from "../src/daemons/server.js";
import { EtcdRegistrar } from "../src/integration/etcd.js";
import type { ServiceRecord } from "../src/integration/types.js";
import { freePort, type Proc, removeDir, spawnServer, tempDir, testConfig, waitFor } from "./helpers.js";

const ETCD = "/usr/bin/etcd";
const b64 = (s: string): string => Buffer.from(s).toString("base64");

/** A pino logger that keeps every record, to check what the server logged. */
function capturingLogger(): { log: pino.Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split("\n"))
        if (line) records.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: "info" }, stream), records };
}

class Etcd {
  child: ChildProcess | null = null;
  url = "";
  dir = tempDir("zgrid-etcd-");
  private log = "";

  async start(): Promise<void> {
    const client = await freePort();
    const peer = await freePort();
    this.url = `http://127.0.0.1:${client}`;
    const peerUrl = `http://127.0.0.1:${peer}`;
    this.child = spawn(
      ETCD,
      [
        "--data-dir",
        join(this.dir, "data"),
        "--listen-client-urls",
        this.url,
        "--advertise-client-urls",
        this.url,
        "--listen-peer-urls",
        peerUrl,
        "--initial-advertise-peer-urls",
        peerUrl,
        "--initial-cluster",
        `default=${peerUrl}`,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    this.child.stderr!.on("data", (d: Buffer) => (this.log = (this.log + d.toString()).slice(-4000)));
    await waitFor(
      async () => {
        if (this.child!.exitCode !== null) throw new Error(`etcd exited: ${this.log}`);
        try {
          const r = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(1000) });
          return r.ok;
        } catch {
          return false;
        }
      },
      15_000,
      "etcd to answer /health",
    );
  }

  async get(key: string): Promise<{ value: string; lease?: string } | null> {
    const r = await fetch(`${this.url}/v3/kv/range`, {
      method: "POST",
      body: JSON.stringify({ key: b64(key) }),
      signal: AbortSignal.timeout(3000),
    });
    const body = (await r.json()) as { kvs?: { value: string; lease?: string }[] };
    const kv = body.kvs?.[0];
    return kv ? { value: Buffer.from(kv.value, "base64").toString(), lease: kv.lease } : null;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      child.kill("SIGTERM");
      await exited;
      clearTimeout(timer);
    }
    removeDir(this.dir);
  }
}

describe("INTEGRATION etcd", { skip: existsSync(ETCD) ? false : `${ETCD} is not installed` }, () => {
  const etcd = new Etcd();
  const servers: Server[] = [];
  const procs: Proc[] = [];
  const dirs: string[] = [];

  before(async () => {
    await etcd.start();
  });

  after(async () => {
    for (const p of procs) {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
      await p.exited;
    }
    for (const s of servers) await s.shutdown();
    await etcd.stop();
    for (const d of dirs) removeDir(d);
  });

  it("puts /zgrid/servers/<name> with a lease at start and deletes it at shutdown", async () => {
    const { log, records } = capturingLogger();
    const config = testConfig({
      integration: "etcd",
      integrationName: "grid-a",
      etcdEndpoints: [etcd.url],
      etcdLeaseTtl: 5,
    });
    const server = new Server(config, log);
    servers.push(server);
    const info = await server.start();
    const kv = await etcd.get("/zgrid/servers/grid-a");
    assert.ok(kv, "the key is there once start() resolves");
    assert.ok(kv.lease && kv.lease !== "0", "the key is attached to a lease");
    const value = JSON.parse(kv.value) as Record<string, unknown>;
    assert.equal(value.name, "grid-a");
    assert.equal(value.url, `tcp://127.0.0.1:${info.port}`, "registered without the token");
    assert.equal(value.metricsUrl, info.metricsUrl!.replace(/\?token=.*/, ""));
    assert.equal(value.statusUrl, info.statusUrl!.replace(/\?token=.*/, ""));
    assert.equal(value.workerUrl, info.workerUrl.replace(/\?token=.*/, ""));
    assert.ok(!kv.value.includes("test-token"), "no token in etcd");
    assert.ok(records.some((r) => r.msg === "registered with etcd"));
    await server.shutdown();
    assert.equal(await etcd.get("/zgrid/servers/grid-a"), null, "deleted at shutdown");
    assert.ok(records.some((r) => r.msg === "deregistered from etcd"));
  });

  it("logs a failure to reach etcd with what to check, and keeps serving", async () => {
    const { log, records } = capturingLogger();
    const deadPort = await freePort();
    const config = testConfig({
      integration: "etcd",
      integrationName: "grid-down",
      etcdEndpoints: [`http://127.0.0.1:${deadPort}`],
    });
    const server = new Server(config, log);
    servers.push(server);
    const info = await server.start();
    const err = records.find((r) => r.level === 50 && String(r.msg).includes("cannot register with etcd"));
    assert.ok(err, `an error is logged: ${JSON.stringify(records)}`);
    assert.match(String(err.err), /cannot reach etcd/);
    assert.match(String(err.hint), /--etcd-endpoints/);
    const client = await connect(info.url, { user: "tester", timeoutMs: 5000 });
    try {
      assert.equal(await client.ruok(), "imok", "the grid keeps serving");
    } finally {
      await client.close();
    }
    await server.shutdown();
  });

  it("keeps the lease alive past its TTL, and the key disappears within the TTL after kill -9", async () => {
    const { proc, dir } = await spawnServer([
      "--integration",
      "etcd",
      "--integration-name",
      "grid-killed",
      "--etcd-endpoints",
      etcd.url,
      "--etcd-lease-ttl",
      "2",
      "--store",
      "memory",
    ]);
    procs.push(proc);
    dirs.push(dir);
    assert.ok(await etcd.get("/zgrid/servers/grid-killed"), "registered by the child server");
    // Longer than the TTL: the keepalive keeps the key.
    await new Promise((r) => setTimeout(r, 3000));
    assert.ok(await etcd.get("/zgrid/servers/grid-killed"), "still there after 3 s (TTL 2 s): kept alive");
    proc.child.kill("SIGKILL");
    await proc.exited;
    const killedAt = Date.now();
    await waitFor(
      async () => (await etcd.get("/zgrid/servers/grid-killed")) === null,
      8000,
      "the lease to expire",
    );
    // etcd may round the TTL up to its minimum and check leases every 500 ms: allow some slack.
    assert.ok(Date.now() - killedAt < 6000, `gone ${Date.now() - killedAt} ms after the kill`);
  });

  it("a server whose key another took (a standby became the owner) neither registers again over it nor deletes it", async () => {
    const record = (pid: number): ServiceRecord => ({
      name: "grid-ha",
      bindHost: "127.0.0.1",
      host: "127.0.0.1",
      port: 1000 + pid,
      workerPort: 2000 + pid,
      metricsPort: null,
      statusPort: null,
      url: `tcp://127.0.0.1:${1000 + pid}`,
      workerUrl: `tcp://127.0.0.1:${2000 + pid}`,
      metricsUrl: null,
      statusUrl: null,
      pid,
      version: "test",
    });
    const old = capturingLogger();
    const oldOwner = new EtcdRegistrar({ endpoints: [etcd.url], leaseTtl: 1 }, { log: old.log });
    const newOwner = new EtcdRegistrar(
      { endpoints: [etcd.url], leaseTtl: 5 },
      { log: pino({ level: "silent" }) },
    );
    try {
      await oldOwner.register(record(1));
      assert.equal(JSON.parse((await etcd.get("/zgrid/servers/grid-ha"))!.value).pid, 1);
      await newOwner.register(record(2));
      const taken = await etcd.get("/zgrid/servers/grid-ha");
      assert.equal(JSON.parse(taken!.value).pid, 2, "the new owner's registration replaces the old one's");
      // The old owner's lease ends (as when it was cut off from etcd longer than its TTL): its keepalive
      // finds the key another's and leaves it.
      await fetch(`${etcd.url}/v3/lease/revoke`, {
        method: "POST",
        body: JSON.stringify({ ID: (oldOwner as unknown as { leaseId: string }).leaseId }),
      });
      await waitFor(
        async () =>
          old.records.some((r) => String(r.msg).includes("another server holds")) ||
          JSON.parse((await etcd.get("/zgrid/servers/grid-ha"))?.value ?? "{}").pid !== 2,
        10_000,
        "the old owner's keepalive",
      );
      assert.equal(JSON.parse((await etcd.get("/zgrid/servers/grid-ha"))!.value).pid, 2, "not taken back");
      await oldOwner.deregister();
      assert.equal(
        JSON.parse((await etcd.get("/zgrid/servers/grid-ha"))!.value).pid,
        2,
        "the old owner's shutdown leaves the new owner's key",
      );
      await newOwner.deregister();
      assert.equal(await etcd.get("/zgrid/servers/grid-ha"), null, "the owner's own shutdown deletes it");
    } finally {
      await oldOwner.deregister().catch(() => {});
      await newOwner.deregister().catch(() => {});
    }
  });

  it("a graceful SIGTERM of the child deletes the key", async () => {
    const { proc, dir } = await spawnServer(["--integration-name", "grid-term", "--store", "memory"], {
      ZGRID_INTEGRATION: "etcd",
      ZGRID_ETCD_ENDPOINTS: etcd.url,
    });
    procs.push(proc);
    dirs.push(dir);
    assert.ok(await etcd.get("/zgrid/servers/grid-term"), "registered (configured through the environment)");
    await proc.stop();
    assert.equal(await etcd.get("/zgrid/servers/grid-term"), null, "deleted at shutdown");
  });
});

describe("INTEGRATION options: flag, env, config file", () => {
  const dir = tempDir();
  after(() => removeDir(dir));

  it("defaults, and precedence flag > env > file", () => {
    const none = serverConfigFrom([], {});
    assert.ok(none);
    assert.equal(none.integration, undefined);
    assert.deepEqual(none.etcdEndpoints, ["http://127.0.0.1:2379"]);
    assert.equal(none.etcdLeaseTtl, 10);
    assert.equal(none.k8sApiServer, "https://kubernetes.default.svc");
    assert.equal(none.k8sServiceName, "zgrid");
    assert.equal(none.k8sTokenFile, "/var/run/secrets/kubernetes.io/serviceaccount/token");
    assert.equal(none.k8sCaFile, "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt");
    mkdirSync(dir, { recursive: true });
    const file = join(dir, "config.json");
    writeFileSync(
      file,
      JSON.stringify({
        integration: "kubernetes",
        etcdLeaseTtl: 30,
        k8sNamespace: "grid",
        k8sExternal: false,
      }),
    );
    const fromFile = serverConfigFrom(["--config", file], {});
    assert.equal(fromFile!.integration, "kubernetes");
    assert.equal(fromFile!.etcdLeaseTtl, 30);
    assert.equal(fromFile!.k8sNamespace, "grid");
    assert.equal(fromFile!.k8sExternal, false);
    const fromEnv = serverConfigFrom(["--config", file], {
      ZGRID_INTEGRATION: "etcd",
      ZGRID_ETCD_LEASE_TTL: "7",
      ZGRID_ETCD_ENDPOINTS: "http://10.0.0.1:2379,http://10.0.0.2:2379",
    });
    assert.equal(fromEnv!.integration, "etcd");
    assert.equal(fromEnv!.etcdLeaseTtl, 7);
    assert.deepEqual(fromEnv!.etcdEndpoints, ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]);
    const fromFlag = serverConfigFrom(["--config", file, "--etcd-lease-ttl", "3", "--k8s-external"], {
      ZGRID_ETCD_LEASE_TTL: "7",
    });
    assert.equal(fromFlag!.etcdLeaseTtl, 3);
    assert.equal(fromFlag!.k8sExternal, true);
  });

  it("rejects an unknown integration, a bad URL, and --daemons integration without --integration", () => {
    assert.throws(() => serverConfigFrom(["--integration", "consul"], {}), /unknown integration "consul"/);
    assert.throws(
      () => serverConfigFrom(["--etcd-endpoints", "127.0.0.1:2379"], {}),
      /invalid etcd endpoint/,
    );
    assert.throws(() => serverConfigFrom(["--k8s-api-server", "kubernetes"], {}), /invalid --k8s-api-server/);
    assert.throws(
      () => serverConfigFrom(["--daemons", "default,integration"], {}),
      /--daemons integration needs --integration/,
    );
    assert.throws(() => serverConfigFrom(["--etcd-lease-ttl", "0"], {}), /at least 1/);
  });
});
