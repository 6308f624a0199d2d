/**
 * The dashboard's HTTP side, without a browser: a server in this process with queued tasks in a
 * partition no worker serves, a Dashboard on a free port of 127.0.0.1 with small limits. Every endpoint
 * refuses a wrong token; the event stream delivers snapshots; bodies and viewers are capped. Then the
 * two ways to run it from the CLI: `zgrid dashboard --url` and `zgrid server --dashboard-port 0`.
 */
import assert from "node:assert/strict";
import { request, type IncomingMessage } from "node:http";
import { connect as netConnect } from "node:net";
import { after, before, describe, it } from "node:test";
import { connect, encodePayload, type ZgridClient } from "../src/client/index.js";
import type { ConnectionInfo, Server } from "../src/daemons/server.js";
import { Dashboard, type DashboardSnapshot } from "../src/dashboard/index.js";
import { removeDir, spawnCli, spawnServer, startServer, waitFor } from "./helpers.js";

const TOKEN = "test-token";

interface Answer {
  status: number;
  headers: IncomingMessage["headers"];
  body: string;
}

/** One HTTP request to 127.0.0.1, its whole answer; bounded by 10 s. */
function http(
  base: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, base), { method, headers: options.headers, timeout: 10_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on("error", reject);
    req.end(options.body);
  });
}

/** An open event stream: its status, the snapshots received so far, and close(). */
interface Stream {
  status: number;
  snapshots: DashboardSnapshot[];
  /** The names of every event received. */
  events: string[];
  ended: boolean;
  close(): void;
}

function openStream(base: string, headers: Record<string, string>): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const req = request(new URL("/events", base), { headers }, (res) => {
      const stream: Stream = {
        status: res.statusCode!,
        snapshots: [],
        events: [],
        ended: false,
        close: () => req.destroy(),
      };
      res.on("end", () => (stream.ended = true));
      let buffer = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        buffer += d;
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = /^data: (.*)$/m.exec(event);
          const name = /^event: (.*)$/m.exec(event);
          if (name) stream.events.push(name[1]!);
          if (/^event: snapshot$/m.test(event) && data)
            stream.snapshots.push(JSON.parse(data[1]) as DashboardSnapshot);
        }
      });
      res.on("error", () => {});
      resolve(stream);
    });
    req.on("error", reject);
    req.end();
  });
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
const JSON_TYPE = { "content-type": "application/json" };

describe("dashboard over HTTP", () => {
  let server: Server;
  let info: ConnectionInfo;
  let client: ZgridClient;
  let dashboard: Dashboard;
  let base: string;
  let sessionId: string;

  before(async () => {
    ({ server, info } = await startServer({ token: TOKEN }));
    client = await connect(info.url);
    sessionId = await client.createSession({ applicationName: "hello", partitionId: "dash-queue" });
    await client.submitTasks(
      sessionId,
      Array.from({ length: 5 }, () => ({ payload: encodePayload("noop") })),
    );
    dashboard = await Dashboard.start({
      url: info.url,
      statusUrl: info.statusUrl,
      intervalMs: 200,
      maxClients: 2,
      maxBodyBytes: 1024,
    });
    base = dashboard.url;
  });
  after(async () => {
    await dashboard?.close();
    await client?.close();
    await server?.shutdown();
    removeDir(server.config.dataDir);
  });

  it("listens on 127.0.0.1 and serves the page, which holds no data, to anyone", async () => {
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await http(base, "GET", "/");
    assert.equal(page.status, 200);
    assert.match(page.headers["content-type"]!, /^text\/html/);
    assert.match(String(page.headers["content-security-policy"]), /script-src 'self'/);
    assert.ok(page.body.includes('id="tasks-by-status"'));
    assert.ok(!page.body.includes(sessionId), "no session id in the page itself");
    const js = await http(base, "GET", "/app.js");
    assert.equal(js.status, 200);
    assert.match(js.headers["content-type"]!, /^text\/javascript/);
  });

  it("answers 401 and no data on every endpoint without the token, with a wrong one, or a made-up cookie", async () => {
    const endpoints: [string, string, string?][] = [
      ["GET", "/events"],
      ["GET", "/api/snapshot"],
      ["GET", `/api/tasks?sessionId=${sessionId}`],
      ["GET", "/api/task?taskId=x"],
      ["POST", "/api/sessions/cancel", JSON.stringify({ sessionId })],
      ["GET", "/api/no-such-thing"],
    ];
    const wrongs: Record<string, string>[] = [
      {},
      bearer("wrong-token"),
      bearer(TOKEN + "x"),
      { authorization: TOKEN },
      { cookie: "zgrid_dashboard=made-up" },
    ];
    for (const [method, path, body] of endpoints) {
      for (const headers of wrongs) {
        const r = await http(base, method, path, { headers: { ...JSON_TYPE, ...headers }, body });
        assert.equal(r.status, 401, `${method} ${path} with ${JSON.stringify(headers)}`);
        assert.ok(!r.body.includes(sessionId) && !r.body.includes("SUBMITTED"), r.body);
        assert.ok(!r.body.includes(TOKEN), "the token is never echoed");
      }
    }
    const login = await http(base, "POST", "/login", {
      headers: JSON_TYPE,
      body: JSON.stringify({ token: "wrong" }),
    });
    assert.equal(login.status, 401);
    assert.equal(login.headers["set-cookie"], undefined);
    assert.equal((await client.getSession(sessionId)).status, "RUNNING", "nothing was cancelled");
  });

  it("answers 400 to a request target that is not a URL, and serves on", async () => {
    const raw = await new Promise<string>((resolve, reject) => {
      let got = "";
      const socket = netConnect(dashboard.port, "127.0.0.1", () =>
        socket.write("GET //[not-a-host HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
      );
      socket.setEncoding("utf8");
      socket.on("data", (d: string) => (got += d));
      socket.on("end", () => resolve(got));
      socket.on("error", reject);
      socket.setTimeout(10_000, () => socket.destroy(new Error("no answer")));
    });
    assert.match(raw, /^HTTP\/1\.1 400 [^]*not a request target/);
    assert.equal((await http(base, "GET", "/api/snapshot", { headers: bearer(TOKEN) })).status, 200);
  });

  it("answers the grid's numbers to the token, as Bearer or as the cookie POST /login sets", async () => {
    const counts = await client.countTasks();
    const r = await http(base, "GET", "/api/snapshot", { headers: bearer(TOKEN) });
    assert.equal(r.status, 200, r.body);
    const snap = JSON.parse(r.body) as DashboardSnapshot;
    assert.equal(snap.tasksByStatus.SUBMITTED, counts.SUBMITTED);
    assert.equal(snap.tasksByStatus.SUBMITTED, 5);
    const partition = snap.partitions.find((p) => p.partitionId === "dash-queue");
    assert.deepEqual(
      { queued: partition?.queued, workers: partition?.workers, slots: partition?.slots },
      { queued: 5, workers: 0, slots: 0 },
    );
    const session = snap.sessions.find((s) => s.sessionId === sessionId);
    assert.deepEqual(session?.counts, { SUBMITTED: 5 });

    const login = await http(base, "POST", "/login", {
      headers: JSON_TYPE,
      body: JSON.stringify({ token: TOKEN }),
    });
    assert.equal(login.status, 204);
    const setCookie = String(login.headers["set-cookie"]);
    assert.match(setCookie, /^zgrid_dashboard=[\w-]{20,}; Path=\/; HttpOnly; SameSite=Strict/);
    assert.ok(!setCookie.includes(TOKEN), "the cookie is not the token");
    const cookie = setCookie.split(";")[0]!;
    const withCookie = await http(base, "GET", "/api/snapshot", { headers: { cookie } });
    assert.equal(withCookie.status, 200);

    const stream = await openStream(base, { cookie });
    try {
      assert.equal(stream.status, 200);
      await waitFor(() => stream.snapshots.length >= 1, 10_000, "a snapshot to the logged-in stream");
      const logout = await http(base, "POST", "/logout", { headers: { cookie } });
      assert.equal(logout.status, 204);
      await waitFor(() => stream.ended, 10_000, "the stream to end at logout");
      assert.equal(stream.events[stream.events.length - 1], "unauthorized");
    } finally {
      stream.close();
    }
    assert.equal((await http(base, "GET", "/api/snapshot", { headers: { cookie } })).status, 401);
  });

  it("shows a task's attempts and cancels a session through the JSON endpoints", async () => {
    const tasks = await http(base, "GET", `/api/tasks?sessionId=${sessionId}`, { headers: bearer(TOKEN) });
    assert.equal(tasks.status, 200);
    const list = JSON.parse(tasks.body) as { items: { taskId: string }[]; total: number };
    assert.equal(list.total, 5);
    const task = await http(base, "GET", `/api/task?taskId=${list.items[0]!.taskId}`, {
      headers: bearer(TOKEN),
    });
    assert.equal(task.status, 200);
    assert.ok(Array.isArray((JSON.parse(task.body) as { attempts: unknown }).attempts));
    const missing = await http(base, "GET", "/api/task?taskId=no-such-task", { headers: bearer(TOKEN) });
    assert.equal(missing.status, 404, missing.body);
    const noId = await http(base, "GET", "/api/task", { headers: bearer(TOKEN) });
    assert.equal(noId.status, 400);

    const other = await client.createSession({ applicationName: "hello", partitionId: "dash-queue" });
    await client.submitTasks(other, [{ payload: encodePayload("noop") }]);
    const plain = await http(base, "POST", "/api/sessions/cancel", {
      headers: { ...bearer(TOKEN), "content-type": "text/plain" },
      body: JSON.stringify({ sessionId: other }),
    });
    assert.equal(plain.status, 415, "a body that is not application/json is refused (no plain forms)");
    const r = await http(base, "POST", "/api/sessions/cancel", {
      headers: { ...bearer(TOKEN), ...JSON_TYPE },
      body: JSON.stringify({ sessionId: other }),
    });
    assert.equal(r.status, 200, r.body);
    assert.equal((await client.getSession(other)).status, "CANCELLED");
    const again = await http(base, "POST", "/api/sessions/cancel", {
      headers: { ...bearer(TOKEN), ...JSON_TYPE },
      body: JSON.stringify({ sessionId: "no-such-session" }),
    });
    assert.equal(again.status, 404, again.body);
  });

  it("refuses a request body past the cap with 413, before and after logging in", async () => {
    const big = JSON.stringify({ token: "x".repeat(2048) });
    const login = await http(base, "POST", "/login", { headers: JSON_TYPE, body: big });
    assert.equal(login.status, 413);
    const cancel = await http(base, "POST", "/api/sessions/cancel", {
      headers: { ...bearer(TOKEN), ...JSON_TYPE },
      body: JSON.stringify({ sessionId, padding: "x".repeat(2048) }),
    });
    assert.equal(cancel.status, 413);
    assert.equal((await client.getSession(sessionId)).status, "RUNNING");
  });

  it("pushes snapshots on /events, at most maxClients streams at once", async () => {
    const a = await openStream(base, bearer(TOKEN));
    const b = await openStream(base, bearer(TOKEN));
    try {
      assert.equal(a.status, 200);
      assert.equal(b.status, 200);
      // Snapshots keep coming (three, each newer), read once for both streams; a later one has a
      // throughput (0: nothing runs).
      await waitFor(() => a.snapshots.length >= 3 && b.snapshots.length >= 3, 15_000, "three snapshots");
      const times = a.snapshots.map((s) => s.at);
      assert.ok(times[2]! > times[1]! && times[1]! > times[0]!, `pushed snapshots are new ones: ${times}`);
      assert.ok(
        b.snapshots.some((s) => a.snapshots.some((t) => t.at === s.at && t.at !== times[0])),
        "one poll loop: both streams got the same snapshots",
      );
      const last = a.snapshots[a.snapshots.length - 1]!;
      assert.equal(last.tasksByStatus.SUBMITTED, (await client.countTasks()).SUBMITTED);
      assert.equal(last.throughput, 0);
      assert.ok(last.history.length >= 1);
      assert.equal(last.workersTotal, 0);

      const third = await http(base, "GET", "/events", { headers: bearer(TOKEN) });
      assert.equal(third.status, 503, "a third viewer is refused");
      assert.equal(dashboard.viewerCount, 2);

      a.close();
      await waitFor(() => dashboard.viewerCount === 1, 10_000, "the closed stream to be forgotten");
      const c = await openStream(base, bearer(TOKEN));
      try {
        assert.equal(c.status, 200);
        await waitFor(() => c.snapshots.length >= 1, 10_000, "a snapshot on the new stream");
      } finally {
        c.close();
      }
    } finally {
      a.close();
      b.close();
    }
  });
});

describe("dashboard from the CLI", () => {
  it("zgrid dashboard --url serves the grid's numbers to its token only, and never prints the token", async () => {
    const { server, info } = await startServer({ token: TOKEN });
    const dash = spawnCli(["dashboard", "--url", info.url, "--port", "0"]);
    try {
      await waitFor(
        () =>
          /zgrid dashboard at http:\/\/127\.0\.0\.1:\d+\//.test(dash.stdout()) ||
          dash.child.exitCode !== null,
        15_000,
        "the dashboard's address",
      );
      const base = /zgrid dashboard at (http:\/\/\S+\/)/.exec(dash.stdout())?.[1];
      assert.ok(base, dash.stdout() + dash.stderr());
      assert.ok(!dash.stdout().includes(TOKEN) && !dash.stderr().includes(TOKEN), "the token is not printed");
      assert.equal((await http(base, "GET", "/api/snapshot")).status, 401);
      const r = await http(base, "GET", "/api/snapshot", { headers: bearer(TOKEN) });
      assert.equal(r.status, 200);
      assert.equal((JSON.parse(r.body) as DashboardSnapshot).sessionsTotal, 0);
    } finally {
      await dash.stop();
      await server.shutdown();
      removeDir(server.config.dataDir);
    }
    assert.equal((await dash.exited).code, 0, dash.stderr());
  });

  it("zgrid server --dashboard-port 0 prints the dashboard's address without the token", async () => {
    const { proc, dir } = await spawnServer(["--dashboard-port", "0", "--store", "memory", "--token", TOKEN]);
    try {
      await waitFor(() => /dashboard: +http:/.test(proc.stdout()), 15_000, "the dashboard line");
      const line = /dashboard: +(.*)/.exec(proc.stdout())![1]!;
      assert.ok(!line.includes(TOKEN), line);
      const base = /^(http:\/\/127\.0\.0\.1:\d+\/)/.exec(line)![1]!;
      assert.equal((await http(base, "GET", "/api/snapshot", { headers: bearer("nope") })).status, 401);
      assert.equal((await http(base, "GET", "/api/snapshot", { headers: bearer(TOKEN) })).status, 200);
    } finally {
      await proc.stop();
      removeDir(dir);
    }
    assert.equal((await proc.exited).code, 0, proc.stderr());
  });
});

describe("dashboard of a grid without authentication", () => {
  it("zgrid server --no-auth --dashboard-port 0: the dashboard is open too, and says so", async () => {
    const { proc, dir } = await spawnServer(["--dashboard-port", "0", "--store", "memory", "--no-auth"]);
    try {
      await waitFor(() => /dashboard: +http:/.test(proc.stdout()), 15_000, "the dashboard line");
      const line = /dashboard: +(.*)/.exec(proc.stdout())![1]!;
      assert.match(line, /no login: the grid runs without authentication/);
      const base = /^(http:\/\/127\.0\.0\.1:\d+\/)/.exec(line)![1]!;
      const r = await http(base, "GET", "/api/snapshot");
      assert.equal(r.status, 200, r.body);
      assert.equal((JSON.parse(r.body) as DashboardSnapshot).error, undefined);
    } finally {
      await proc.stop();
      removeDir(dir);
    }
  });
});

describe("dashboard with a viewer that does not read", () => {
  it("drops the viewer once maxPendingBytes wait for it, instead of buffering without bound", async () => {
    const { server, info } = await startServer({ token: TOKEN });
    const client = await connect(info.url);
    // Long partition names make big snapshots (their chart history), so the socket's buffers fill soon.
    for (let i = 0; i < 12; i++) await client.createSession({}, [`partition-${i}-${"x".repeat(100)}`]);
    const logged: string[] = [];
    const dashboard = await Dashboard.start({
      url: info.url,
      statusUrl: info.statusUrl,
      intervalMs: 20,
      maxPendingBytes: 64 * 1024,
      log: (m) => logged.push(m),
    });
    const socket = netConnect(dashboard.port, "127.0.0.1", () =>
      socket.write(`GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`),
    );
    socket.pause(); // never reads a byte
    socket.on("error", () => {});
    try {
      await waitFor(() => dashboard.viewerCount === 1, 10_000, "the viewer to be counted");
      await waitFor(
        () => logged.some((m) => /dropped a viewer \d+ bytes behind/.test(m)),
        60_000,
        "the dashboard to drop the viewer that does not read",
      );
      await waitFor(() => dashboard.viewerCount === 0, 10_000, "the viewer to be forgotten");
      const r = await http(dashboard.url, "GET", "/api/snapshot", { headers: bearer(TOKEN) });
      assert.equal(r.status, 200, "the dashboard serves on");
      assert.equal((JSON.parse(r.body) as DashboardSnapshot).partitions.length, 12);
    } finally {
      socket.destroy();
      await dashboard.close();
      await client.close();
      await server.shutdown();
      removeDir(server.config.dataDir);
    }
  });
});

describe("dashboard with a URL the grid refuses", () => {
  it("does not start, and says why", async () => {
    const { server, info } = await startServer({ token: TOKEN });
    try {
      await assert.rejects(
        Dashboard.start({ url: info.url.replace(TOKEN, "not-the-token") }),
        /the dashboard cannot read the grid: .*token/i,
      );
    } finally {
      await server.shutdown();
      removeDir(server.config.dataDir);
    }
  });
});
