/**
 * INTEGRATION `kubernetes` (design §9) against a STAND-IN Kubernetes API server defined here (plain
 * HTTP on 127.0.0.1, not a real cluster): it records every request and checks paths, verbs, bodies and
 * the bearer token; the server creates a Service (and Endpoints when external) at start and deletes
 * them at shutdown; an API failure is logged with what to check and the grid keeps serving.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { createServer, type Server as HttpServer } from "node:http";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, beforeEach, describe, it } from "node:test";
import { pino } from "pino";
import { connect } from "../src/client/client.js";
import { Server } from "../src/daemons/server.js";
import { removeDir, tempDir, testConfig } from "./helpers.js";

interface Seen {
  method: string;
  path: string;
  auth: string | undefined;
  body: Record<string, unknown> | null;
}

/** Stand-in Kubernetes API server: records requests, answers as `respond` says (default: 201/200). */
class StandInApiServer {
  readonly seen: Seen[] = [];
  respond: (req: Seen) => number = (r) => (r.method === "POST" ? 201 : 200);
  /** The body of a success, when not the request's own. */
  reply: ((req: Seen) => Record<string, unknown> | undefined) | null = null;
  private http: HttpServer | null = null;
  url = "";

  async start(): Promise<void> {
    this.http = createServer((req, res) => {
      let text = "";
      req.on("data", (d: Buffer) => (text += d.toString()));
      req.on("end", () => {
        const seen: Seen = {
          method: req.method ?? "",
          path: req.url ?? "",
          auth: req.headers.authorization,
          body: text ? (JSON.parse(text) as Record<string, unknown>) : null,
        };
        this.seen.push(seen);
        const status = this.respond(seen);
        const body =
          status < 300
            ? (this.reply?.(seen) ?? seen.body ?? { kind: "Status", status: "Success" })
            : { kind: "Status", status: "Failure", message: `stand-in says ${status}`, code: status };
        res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
      });
    });
    await new Promise<void>((resolve) => this.http!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.http.address() as { port: number }).port}`;
  }

  stop(): Promise<void> {
    const http = this.http;
    if (!http) return Promise.resolve();
    http.closeAllConnections();
    return new Promise((resolve) => http.close(() => resolve()));
  }
}

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

type Port = { name: string; port: number; targetPort?: number; protocol: string };

describe("INTEGRATION kubernetes (stand-in API server)", () => {
  const api = new StandInApiServer();
  const dir = tempDir();
  const tokenFile = join(dir, "token");
  const servers: Server[] = [];

  before(async () => {
    writeFileSync(tokenFile, "sa-token-123\n");
    await api.start();
  });
  beforeEach(() => {
    api.seen.length = 0;
    api.respond = (r) => (r.method === "POST" ? 201 : 200);
    api.reply = null;
  });
  after(async () => {
    for (const s of servers) await s.shutdown();
    await api.stop();
    removeDir(dir);
  });

  function k8sServer(overrides: Parameters<typeof testConfig>[0] = {}) {
    const { log, records } = capturingLogger();
    const config = testConfig({
      integration: "kubernetes",
      k8sApiServer: api.url,
      k8sNamespace: "grid-ns",
      k8sTokenFile: tokenFile,
      k8sCaFile: join(dir, "no-ca.crt"),
      ...overrides,
    });
    const server = new Server(config, log);
    servers.push(server);
    return { server, records };
  }

  it("external: creates a Service and Endpoints at start, deletes both at shutdown", async () => {
    const { server, records } = k8sServer({ k8sExternal: true, k8sServiceName: "zgrid-test" });
    const info = await server.start();
    const ep = server.endpoints();
    assert.deepEqual(
      api.seen.map((s) => `${s.method} ${s.path}`),
      ["POST /api/v1/namespaces/grid-ns/services", "POST /api/v1/namespaces/grid-ns/endpoints"],
    );
    for (const s of api.seen) assert.equal(s.auth, "Bearer sa-token-123");
    const svc = api.seen[0]!.body as {
      kind: string;
      metadata: { name: string; namespace: string };
      spec: { ports: Port[]; selector?: unknown };
    };
    assert.equal(svc.kind, "Service");
    assert.equal(svc.metadata.name, "zgrid-test");
    assert.equal(svc.metadata.namespace, "grid-ns");
    assert.equal(svc.spec.selector, undefined, "no selector: the Endpoints object says where the server is");
    const byName = new Map(svc.spec.ports.map((p) => [p.name, p]));
    assert.equal(byName.get("client")?.port, info.port, "client: the DEFAULT port");
    assert.equal(byName.get("client")?.targetPort, info.port);
    assert.equal(byName.get("metrics")?.port, ep.metricsPort);
    const eps = api.seen[1]!.body as {
      kind: string;
      metadata: { name: string };
      subsets: { addresses: { ip: string }[]; ports: Port[] }[];
    };
    assert.equal(eps.kind, "Endpoints");
    assert.equal(eps.metadata.name, "zgrid-test");
    assert.deepEqual(eps.subsets[0]!.addresses, [{ ip: "127.0.0.1" }], "the bound host's IP");
    const epPorts = new Map(eps.subsets[0]!.ports.map((p) => [p.name, p.port]));
    assert.equal(epPorts.get("client"), info.port);
    assert.equal(epPorts.get("metrics"), ep.metricsPort);
    assert.ok(records.some((r) => r.msg === "registered with kubernetes"));

    api.seen.length = 0;
    await server.shutdown();
    assert.deepEqual(api.seen.map((s) => `${s.method} ${s.path}`).sort(), [
      "DELETE /api/v1/namespaces/grid-ns/endpoints/zgrid-test",
      "DELETE /api/v1/namespaces/grid-ns/services/zgrid-test",
    ]);
    for (const s of api.seen) assert.equal(s.auth, "Bearer sa-token-123");
  });

  it("at shutdown, deletes only the objects it made: one another server replaced (a standby that took over) stays", async () => {
    // The API server gives each object it creates a uid; the deletes name it as a precondition.
    let uids = 0;
    api.reply = (r) =>
      r.method === "POST" && r.body
        ? { ...r.body, metadata: { ...(r.body.metadata as object), uid: `uid-${++uids}` } }
        : undefined;
    const { server, records } = k8sServer({ k8sExternal: true, k8sServiceName: "zgrid-ha" });
    await server.start();
    // Another server replaced the Endpoints object (new uid): a delete naming the old one is refused.
    api.respond = (r) =>
      r.method === "DELETE" && r.path.endsWith("/endpoints/zgrid-ha") ? 409 : r.method === "POST" ? 201 : 200;
    api.seen.length = 0;
    await server.shutdown();
    const deletes = api.seen.filter((s) => s.method === "DELETE");
    assert.equal(deletes.length, 2);
    const preconditions = deletes.map(
      (d) => (d.body as { preconditions?: { uid?: string } } | null)?.preconditions?.uid,
    );
    assert.deepEqual(preconditions.sort(), ["uid-1", "uid-2"], "each delete names the object it made");
    assert.ok(
      !records.some((r) => r.level === 50),
      `no error: ${JSON.stringify(records.filter((r) => r.level === 50))}`,
    );
    assert.ok(records.some((r) => String(r.msg).includes("another server replaced")));
  });

  it("inside the cluster: a Service with a selector, no Endpoints", async () => {
    const { server } = k8sServer({ k8sExternal: false });
    await server.start();
    assert.deepEqual(
      api.seen.map((s) => `${s.method} ${s.path}`),
      ["POST /api/v1/namespaces/grid-ns/services"],
    );
    const svc = api.seen[0]!.body as { metadata: { name: string }; spec: { selector?: unknown } };
    assert.equal(svc.metadata.name, "zgrid", "default --k8s-service-name");
    assert.deepEqual(svc.spec.selector, { app: "zgrid" });
    api.seen.length = 0;
    await server.shutdown();
    assert.deepEqual(
      api.seen.map((s) => `${s.method} ${s.path}`),
      ["DELETE /api/v1/namespaces/grid-ns/services/zgrid"],
    );
  });

  it("replaces a Service left over by a crashed server (409)", async () => {
    let first = true;
    api.respond = (r) => {
      if (r.method === "POST" && r.path.endsWith("/services") && first) {
        first = false;
        return 409;
      }
      return r.method === "POST" ? 201 : 200;
    };
    const { server, records } = k8sServer({ k8sExternal: false });
    await server.start();
    assert.deepEqual(
      api.seen.map((s) => `${s.method} ${s.path}`),
      [
        "POST /api/v1/namespaces/grid-ns/services",
        "DELETE /api/v1/namespaces/grid-ns/services/zgrid",
        "POST /api/v1/namespaces/grid-ns/services",
      ],
    );
    assert.ok(records.some((r) => r.msg === "registered with kubernetes"));
    await server.shutdown();
  });

  it("an API server error (500) is logged with what to check; the grid keeps serving", async () => {
    api.respond = () => 500;
    const { server, records } = k8sServer({ k8sExternal: true });
    const info = await server.start();
    const err = records.find(
      (r) => r.level === 50 && String(r.msg).includes("cannot register with kubernetes"),
    );
    assert.ok(err, `an error is logged: ${JSON.stringify(records)}`);
    assert.match(String(err.err), /POST services answered 500: stand-in says 500/);
    assert.match(String(err.hint), /API server/);
    const client = await connect(info.url, { user: "tester", timeoutMs: 5000 });
    try {
      assert.equal(await client.ruok(), "imok", "the grid keeps serving");
    } finally {
      await client.close();
    }
    api.seen.length = 0;
    await server.shutdown();
    assert.deepEqual(api.seen, [], "nothing created, nothing to delete");
  });

  it("a rejected token (401) names the token file", async () => {
    api.respond = () => 401;
    const { server, records } = k8sServer();
    await server.start();
    const err = records.find((r) => r.level === 50);
    assert.ok(err);
    assert.match(String(err.hint), /--k8s-token-file/);
    await server.shutdown();
  });

  it("an unreachable API server is logged and the server still starts", async () => {
    const { server, records } = k8sServer({ k8sApiServer: "http://127.0.0.1:1" });
    await server.start();
    const err = records.find((r) => r.level === 50);
    assert.ok(err);
    assert.match(String(err.err), /cannot reach the Kubernetes API server/);
    await server.shutdown();
  });
});
