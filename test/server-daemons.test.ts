/**
 * The daemons of one server (design §1, §3.4, §9): every built-in on DEFAULT, METRICS and STATUS, the
 * METRICS and STATUS commands, request metrics in Arkouda's shape and in Prometheus text, getstatus.
 */
import assert from "node:assert/strict";
import { after, before, describe, it, type TestContext } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import type { ServerConfig } from "../src/daemons/config.js";
import type { ConnectionInfo, Server } from "../src/daemons/server.js";
import { ZgridError } from "../src/protocol/errors.js";
import { freePort, startServer, waitFor } from "./helpers.js";

type DaemonName = "DEFAULT" | "METRICS" | "STATUS";
const DAEMONS: DaemonName[] = ["DEFAULT", "METRICS", "STATUS"];
const BUILTINS = [
  "connect",
  "disconnect",
  "ruok",
  "noop",
  "getconfig",
  "getCmdMap",
  "getmemused",
  "getmemstatus",
  "shutdown",
];

interface MetricItem {
  name: string;
  category: string;
  scope: string;
  timestamp: string;
  value: number;
  user?: string;
}

function urlOf(info: ConnectionInfo, daemon: DaemonName): string {
  return daemon === "DEFAULT" ? info.url : daemon === "METRICS" ? info.metricsUrl! : info.statusUrl!;
}

function connectTo(info: ConnectionInfo, daemon: DaemonName, user = "tester"): Promise<ZgridClient> {
  return connect(urlOf(info, daemon), { user, timeoutMs: 5000 });
}

/** A sample of the Prometheus text exposition: metric name, labels, value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

// Values as Go's ParseFloat reads them (what Prometheus uses): NaN and Inf in any case (prom-client
// writes "Nan").
const SAMPLE_LINE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})? (-?(?:\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\.\d+)|[Nn][Aa][Nn]|[+-][Ii][Nn][Ff])(?: -?\d+)?$/;
const HELP_LINE = /^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/;
const TYPE_LINE = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/;

/**
 * Parses the exposition strictly: every line is HELP, TYPE, a sample, or empty (the format ignores empty
 * lines; prom-client separates metric families with one); throws on anything else.
 */
function parseExposition(text: string): {
  samples: Sample[];
  types: Map<string, string>;
  helps: Set<string>;
} {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const lines = text.split("\n");
  assert.equal(lines[lines.length - 1], "", "the exposition ends with a newline");
  for (const line of lines.slice(0, -1)) {
    if (line === "") continue;
    if (line.startsWith("#")) {
      const type = TYPE_LINE.exec(line);
      if (type) {
        types.set(type[1], type[2]);
        continue;
      }
      assert.match(line, HELP_LINE, `not a HELP or TYPE line: ${line}`);
      helps.add(line.split(" ")[2]);
      continue;
    }
    const m = SAMPLE_LINE.exec(line);
    assert.ok(m, `not an exposition sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"/g))
      labels[k] = v;
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return { samples, types, helps };
}

function sampleValue(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (found.length === 0) return undefined;
  return found.reduce((sum, s) => sum + s.value, 0);
}

describe("built-ins on every daemon", () => {
  let server: Server;
  let info: ConnectionInfo;
  const clients = new Map<DaemonName, ZgridClient>();

  before(async () => {
    ({ server, info } = await startServer());
    for (const d of DAEMONS) clients.set(d, await connectTo(info, d, "builtin-user"));
  });
  after(async () => {
    for (const c of clients.values()) await c.close();
    await server.shutdown();
  });

  for (const daemon of DAEMONS) {
    it(`${daemon}: connect, disconnect, ruok, noop`, async () => {
      const c = clients.get(daemon)!;
      const hello = await c.hello();
      assert.match(hello, new RegExp(`${daemon} daemon`));
      assert.match(hello, /as user builtin-user/);
      assert.match(hello, /zgrid 0\.1\.0/);
      assert.match(await c.disconnect(), /builtin-user/);
      assert.equal(await c.ruok(), "imok");
      assert.equal(await c.noop(), "noop");
    });

    it(`${daemon}: getconfig names the daemon, the ports, the limits and the versions`, async () => {
      const config = await clients.get(daemon)!.getConfig();
      assert.equal(config.daemon, daemon);
      assert.equal(config.version, info.version);
      assert.equal(config.port, info.port);
      assert.equal(config.metricsPort, Number(new URL(info.metricsUrl!).port));
      assert.equal(config.statusPort, Number(new URL(info.statusUrl!).port));
      assert.equal(config.workerPort, Number(new URL(info.workerUrl).port));
      assert.deepEqual(config.daemons, ["default", "metrics", "status"]);
      assert.equal(config.store, "sqlite");
      assert.equal(config.authEnabled, true);
      assert.equal(config.maxFrameBytes, server.config.maxFrameBytes);
      assert.equal(config.maxBatch, server.config.maxBatch);
      assert.equal(config.nodeVersion, process.versions.node);
      assert.equal(typeof config.zmqVersion, "string");
      assert.equal(typeof config.hostname, "string");
      assert.ok(!JSON.stringify(config).includes("test-token"), "getconfig never reveals the token");
    });

    it(`${daemon}: getCmdMap answers command → module`, async () => {
      const map = await clients.get(daemon)!.getCmdMap();
      for (const b of BUILTINS) assert.equal(map[b], "BuiltIns", `${b} on ${daemon}`);
      if (daemon === "DEFAULT") {
        assert.equal(map["sessions.create"], "sessions");
        assert.equal(map["results.wait"], "results");
        assert.equal(map["tasks.submit"], "tasks");
        assert.equal(map.metrics, undefined);
        assert.equal(map.getstatus, undefined);
      } else if (daemon === "METRICS") {
        assert.equal(map.metrics, "MetricsMsg");
        assert.equal(map.prometheus, "MetricsMsg");
        assert.equal(map["sessions.create"], undefined);
        assert.equal(map.getstatus, undefined);
      } else {
        assert.equal(map.getstatus, "StatusMsg");
        assert.equal(map.metrics, undefined);
        assert.equal(map["tasks.submit"], undefined);
      }
      for (const [cmd, module] of Object.entries(map)) {
        assert.equal(typeof module, "string", `module of ${cmd}`);
      }
    });

    it(`${daemon}: getmemused and getmemstatus`, async () => {
      const c = clients.get(daemon)!;
      const used = await c.getMemUsed();
      assert.ok(Number.isInteger(used) && used > 1_000_000, `getmemused ${used}`);
      const status = await c.getMemStatus();
      for (const k of ["rss", "heapUsed", "heapTotal", "external", "arrayBuffers"]) {
        assert.equal(typeof status[k], "number", k);
        assert.ok(status[k] >= 0, k);
      }
      assert.ok(status.heapUsed <= status.heapTotal);
    });
  }

  it("commands of one daemon are UNKNOWN_COMMAND on the others", async () => {
    const isUnknown = (err: unknown): boolean => err instanceof ZgridError && err.code === "UNKNOWN_COMMAND";
    await assert.rejects(clients.get("DEFAULT")!.metrics("ALL"), isUnknown);
    await assert.rejects(clients.get("DEFAULT")!.getStatus(), isUnknown);
    await assert.rejects(clients.get("STATUS")!.prometheus(), isUnknown);
    await assert.rejects(clients.get("METRICS")!.getStatus(), isUnknown);
    await assert.rejects(clients.get("METRICS")!.call("sessions.create"), isUnknown);
    await assert.rejects(clients.get("STATUS")!.call("sessions.create"), isUnknown);
  });

  it("METRICS: metrics answers every category, prometheus answers text", async () => {
    const c = clients.get("METRICS")!;
    for (const category of [
      "ALL",
      "NUM_REQUESTS",
      "AVG_RESPONSE_TIME",
      "TOTAL_RESPONSE_TIME",
      "TOTAL_MEMORY_USED",
      "SYSTEM",
      "SERVER",
      "SERVER_INFO",
      "NUM_ERRORS",
      "TASKS",
    ]) {
      const items = (await c.metrics(category)) as unknown as MetricItem[];
      assert.ok(items.length > 0, `${category} has metrics`);
      for (const m of items) {
        assert.equal(typeof m.name, "string");
        assert.ok(["GLOBAL", "REQUEST", "USER"].includes(m.scope), m.scope);
        assert.equal(typeof m.value, "number");
        assert.ok(!Number.isNaN(Date.parse(m.timestamp)));
        if (category !== "ALL") assert.equal(m.category, category);
        if (m.scope === "USER") assert.equal(typeof m.user, "string");
      }
    }
    const all = (await c.metrics("ALL")) as unknown as MetricItem[];
    assert.ok(new Set(all.map((m) => m.category)).size >= 9, "ALL spans the categories");
    const info = (await c.metrics("server_info")) as unknown as MetricItem[];
    assert.equal(info.find((m) => m.name === "port")?.value, server.endpoints().port, "lower case works too");
    await assert.rejects(
      c.metrics("NOPE"),
      (err: unknown) =>
        err instanceof ZgridError && err.code === "INVALID_ARGUMENT" && /NUM_REQUESTS/.test(err.message),
    );
    const text = await c.prometheus();
    assert.match(text, /^# HELP /m);
    assert.match(text, /zgrid_requests_total/);
  });

  it("STATUS: getstatus reports uptime, daemons, version, request counts", async () => {
    const c = clients.get("STATUS")!;
    const s1 = await c.getStatus();
    assert.equal(s1.status, "RUNNING");
    assert.equal(s1.version, info.version);
    assert.deepEqual(s1.daemons, ["default", "metrics", "status"]);
    assert.equal(typeof s1.uptimeSeconds, "number");
    assert.ok((s1.uptimeSeconds as number) >= 0);
    assert.ok(!Number.isNaN(Date.parse(s1.startedAt as string)));
    const endpoints = s1.endpoints as Record<string, number>;
    assert.equal(endpoints.port, info.port);
    const requests = s1.requests as { total: number; byDaemon: Record<string, number> };
    assert.deepEqual(Object.keys(requests.byDaemon).sort(), ["DEFAULT", "METRICS", "STATUS"]);
    await new Promise((r) => setTimeout(r, 30));
    const s2 = await c.getStatus();
    assert.ok((s2.uptimeSeconds as number) > (s1.uptimeSeconds as number), "uptime grows");
    const r2 = s2.requests as { total: number; byDaemon: Record<string, number> };
    assert.equal(
      r2.byDaemon.STATUS,
      requests.byDaemon.STATUS + 1,
      "the STATUS daemon counted one more request",
    );
    assert.equal(r2.total, requests.total + 1);
    assert.equal(typeof (s2.scheduler as Record<string, unknown>).tasks, "number");
  });
});

describe("request metrics match the requests made", () => {
  // Each test counts on a server of its own: no request of another test is in its counts.
  async function ownServer(
    t: TestContext,
    overrides: Partial<ServerConfig> = {},
  ): Promise<{ server: Server; info: ConnectionInfo }> {
    const started = await startServer(overrides);
    t.after(() => started.server.shutdown());
    return started;
  }

  // alice on DEFAULT: noop ×3, ruok ×2, an unknown command ×1 (UNKNOWN_COMMAND).
  // bob on STATUS: ruok ×4, then a noop with a wrong token (UNAUTHENTICATED).
  async function makeRequests(info: ConnectionInfo): Promise<void> {
    const alice = await connectTo(info, "DEFAULT", "alice");
    const bob = await connectTo(info, "STATUS", "bob");
    const badBob = await connect(info.statusUrl!, { user: "bob", token: "wrong", timeoutMs: 5000 });
    try {
      for (let i = 0; i < 3; i++) await alice.noop();
      for (let i = 0; i < 2; i++) await alice.ruok();
      await assert.rejects(
        alice.call("no.such.cmd"),
        (e: unknown) => (e as ZgridError).code === "UNKNOWN_COMMAND",
      );
      for (let i = 0; i < 4; i++) await bob.ruok();
      await assert.rejects(badBob.noop(), (e: unknown) => (e as ZgridError).code === "UNAUTHENTICATED");
    } finally {
      await Promise.all([alice.close(), bob.close(), badBob.close()]);
    }
  }

  function pick(items: MetricItem[], scope: string, name: string, user?: string): number | undefined {
    return items.find((m) => m.scope === scope && m.name === name && m.user === user)?.value;
  }

  it("metrics NUM_REQUESTS and NUM_ERRORS, per command and per user; prometheus and /metrics agree", async (t) => {
    const prometheusPort = await freePort();
    const { info } = await ownServer(t, { prometheusPort });
    await makeRequests(info);
    const carol = await connectTo(info, "METRICS", "carol");
    try {
      // This first metrics request is counted only after its own reply.
      const requests = (await carol.metrics("NUM_REQUESTS")) as unknown as MetricItem[];
      assert.equal(pick(requests, "GLOBAL", "total"), 11);
      assert.equal(pick(requests, "REQUEST", "noop"), 3);
      assert.equal(pick(requests, "REQUEST", "<unauthenticated>"), 1, "a bad token is counted apart");
      assert.equal(pick(requests, "REQUEST", "ruok"), 6);
      assert.equal(pick(requests, "REQUEST", "no.such.cmd"), 1);
      assert.equal(pick(requests, "REQUEST", "metrics"), undefined);
      assert.equal(pick(requests, "USER", "noop", "alice"), 3);
      assert.equal(pick(requests, "USER", "ruok", "alice"), 2);
      assert.equal(pick(requests, "USER", "no.such.cmd", "alice"), 1);
      assert.equal(pick(requests, "USER", "total", "alice"), 6);
      assert.equal(pick(requests, "USER", "ruok", "bob"), 4);
      assert.equal(pick(requests, "USER", "noop", "bob"), undefined, "not labelled with a stranger's name");
      assert.equal(pick(requests, "USER", "total", "bob"), 4);
      assert.equal(pick(requests, "USER", "<unauthenticated>", "anonymous"), 1);
      assert.equal(pick(requests, "USER", "total", "carol"), undefined);
      for (const m of requests) assert.equal(m.category, "NUM_REQUESTS");

      const errors = (await carol.metrics("NUM_ERRORS")) as unknown as MetricItem[];
      assert.equal(pick(errors, "GLOBAL", "total"), 2);
      assert.equal(pick(errors, "REQUEST", "no.such.cmd"), 1);
      assert.equal(pick(errors, "REQUEST", "noop"), 0);
      assert.equal(pick(errors, "REQUEST", "<unauthenticated>"), 1);
      assert.equal(pick(errors, "REQUEST", "ruok"), 0);
      assert.equal(
        pick(errors, "REQUEST", "metrics"),
        0,
        "the first metrics request is counted now, without error",
      );
      assert.equal(pick(errors, "USER", "no.such.cmd", "alice"), 1);
      assert.equal(pick(errors, "USER", "total", "alice"), 1);
      assert.equal(pick(errors, "USER", "<unauthenticated>", "anonymous"), 1);
      assert.equal(pick(errors, "USER", "total", "carol"), 0);

      const avg = (await carol.metrics("AVG_RESPONSE_TIME")) as unknown as MetricItem[];
      const total = (await carol.metrics("TOTAL_RESPONSE_TIME")) as unknown as MetricItem[];
      const avgRuok = pick(avg, "REQUEST", "ruok")!;
      const totalRuok = pick(total, "REQUEST", "ruok")!;
      assert.ok(avgRuok > 0 && avgRuok < 1, `average ruok time ${avgRuok} s`);
      assert.ok(Math.abs(totalRuok / 6 - avgRuok) < 1e-9, "average = total / count");

      // Prometheus text over the METRICS daemon: strict parse, then the same counts.
      const text = await carol.prometheus();
      const { samples, types, helps } = parseExposition(text);
      assert.equal(types.get("zgrid_requests_total"), "counter");
      assert.ok(helps.has("zgrid_requests_total"), "HELP line for zgrid_requests_total");
      assert.equal(types.get("zgrid_request_errors_total"), "counter");
      assert.equal(types.get("zgrid_request_duration_seconds"), "histogram");
      const req = (labels: Record<string, string>): number | undefined =>
        sampleValue(samples, "zgrid_requests_total", labels);
      assert.equal(req({ daemon: "DEFAULT", command: "noop", user: "alice" }), 3);
      assert.equal(req({ daemon: "DEFAULT", command: "ruok", user: "alice" }), 2);
      assert.equal(req({ daemon: "DEFAULT", command: "no.such.cmd", user: "alice" }), 1);
      assert.equal(req({ daemon: "STATUS", command: "ruok", user: "bob" }), 4);
      assert.equal(req({ daemon: "STATUS", command: "<unauthenticated>", user: "anonymous" }), 1);
      assert.equal(req({ daemon: "METRICS", command: "metrics", user: "carol" }), 4);
      assert.equal(req({}), 11 + 4, "nothing else was counted");
      const err = (labels: Record<string, string>): number | undefined =>
        sampleValue(samples, "zgrid_request_errors_total", labels);
      assert.equal(err({ command: "no.such.cmd", user: "alice", code: "UNKNOWN_COMMAND" }), 1);
      assert.equal(
        err({ daemon: "STATUS", command: "<unauthenticated>", user: "anonymous", code: "UNAUTHENTICATED" }),
        1,
      );
      assert.equal(err({}), 2);
      assert.equal(
        sampleValue(samples, "zgrid_request_duration_seconds_count", { daemon: "STATUS", command: "ruok" }),
        4,
      );
      assert.equal(
        sampleValue(samples, "zgrid_request_duration_seconds_bucket", {
          daemon: "DEFAULT",
          command: "noop",
          le: "+Inf",
        }),
        3,
      );

      // The same series over HTTP, for a Prometheus server.
      const res = await fetch(`http://127.0.0.1:${prometheusPort}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /text\/plain/);
      const http = parseExposition(await res.text());
      assert.equal(http.types.get("zgrid_requests_total"), "counter");
      const reqHttp = (labels: Record<string, string>): number | undefined =>
        sampleValue(http.samples, "zgrid_requests_total", labels);
      assert.equal(reqHttp({ daemon: "DEFAULT", command: "noop", user: "alice" }), 3);
      assert.equal(reqHttp({ daemon: "STATUS", command: "ruok", user: "bob" }), 4);
      assert.equal(reqHttp({ daemon: "METRICS", command: "prometheus", user: "carol" }), 1);
      assert.equal(reqHttp({}), 11 + 4 + 1);
      const notFound = await fetch(`http://127.0.0.1:${prometheusPort}/other`);
      assert.equal(notFound.status, 404);
      await notFound.text();
    } finally {
      await carol.close();
    }
  });

  it("getstatus counts every authenticated request per daemon", async (t) => {
    const { info } = await ownServer(t);
    await makeRequests(info);
    const carol = await connectTo(info, "METRICS", "carol");
    try {
      await carol.metrics("NUM_REQUESTS");
      await carol.metrics("NUM_ERRORS");
      await carol.prometheus();
    } finally {
      await carol.close();
    }
    const status = await connectTo(info, "STATUS", "dave");
    try {
      const s = (await status.getStatus()) as {
        requests: { total: number; byDaemon: Record<string, number> };
      };
      // DEFAULT: alice's 6. STATUS: bob's 4 (his bad-token request is not authenticated) + this one.
      // METRICS: carol's 3. total: every answered request, errors included (this one is not answered yet).
      assert.deepEqual(s.requests.byDaemon, { DEFAULT: 6, METRICS: 3, STATUS: 5 });
      assert.equal(s.requests.total, 11 + 3);
    } finally {
      await status.close();
    }
  });
});

describe("shutdown on every daemon", () => {
  for (const daemon of DAEMONS) {
    it(`shutdown sent to ${daemon} stops the whole server`, async () => {
      const { server, info } = await startServer();
      const c = await connectTo(info, daemon);
      try {
        assert.equal(await c.shutdown(), "shutting down");
        let closed = false;
        void server.closed.then(() => (closed = true));
        await waitFor(() => closed, 8000, "the server to close");
        await assert.rejects(
          c.call("ruok", undefined, undefined, { timeoutMs: 300 }),
          (e: unknown) => (e as ZgridError).code === "TIMEOUT",
        );
      } finally {
        await c.close();
        await server.shutdown();
      }
    });
  }
});
