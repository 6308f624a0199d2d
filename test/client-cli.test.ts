/**
 * The admin commands of the zgrid CLI (design §7): ruok, status, metrics, shutdown, each finding the
 * server by --url, ZGRID_URL or --connection-info; usage errors exit 2. Each test spawns CLI processes and
 * waits for them, so the tests of a suite run concurrently. A CLI run is killed after 60 s: a bound on a
 * hang, generous for a loaded machine.
 */
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { ConnectionInfo, Server } from "../src/daemons/server.js";
import { removeDir, runCli, startServer, tempDir, waitFor } from "./helpers.js";

type Mode = "--url" | "ZGRID_URL" | "--connection-info";
const MODES: Mode[] = ["--url", "ZGRID_URL", "--connection-info"];

/** The arguments and environment that point a CLI command at the server in each mode. */
function target(
  mode: Mode,
  info: ConnectionInfo,
  infoFile: string,
): { args: string[]; env: NodeJS.ProcessEnv } {
  switch (mode) {
    case "--url":
      return { args: ["--url", info.url], env: {} };
    case "ZGRID_URL":
      return { args: [], env: { ZGRID_URL: info.url } };
    case "--connection-info":
      return { args: ["--connection-info", infoFile], env: {} };
  }
}

describe("zgrid ruok, status, metrics against a running server", { concurrency: true }, () => {
  let server: Server;
  let info: ConnectionInfo;
  let dir: string;
  let infoFile: string;

  before(async () => {
    dir = tempDir();
    infoFile = join(dir, "connection.json");
    ({ server, info } = await startServer({ connectionInfo: infoFile }));
    assert.ok(existsSync(infoFile));
  });
  after(async () => {
    await server.shutdown();
    removeDir(dir);
  });

  for (const mode of MODES) {
    it(`with ${mode}: ruok, status, metrics --category NUM_REQUESTS, metrics --prometheus`, async () => {
      const { args, env } = target(mode, info, infoFile);
      const [ruok, status] = await Promise.all([
        runCli(["ruok", ...args], env, 60_000),
        runCli(["status", ...args], env, 60_000),
      ]);
      // After the others, so that their requests (ruok among them) are counted.
      const metrics = await runCli(["metrics", "--category", "NUM_REQUESTS", ...args], env, 60_000);
      const prometheus = await runCli(["metrics", "--prometheus", ...args], env, 60_000);

      assert.equal(ruok.code, 0, ruok.stderr);
      assert.equal(ruok.stdout, "imok\n");

      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, new RegExp(`^zgrid ${info.version.replace(/\./g, "\\.")}, up \\d+`));
      assert.match(status.stdout, /^daemons: +default, metrics, status$/m);
      assert.match(status.stdout, /^requests: +\d+ \(DEFAULT \d+, METRICS \d+, STATUS \d+\)$/m);

      assert.equal(metrics.code, 0, metrics.stderr);
      const items = JSON.parse(metrics.stdout) as {
        name: string;
        category: string;
        scope: string;
        value: number;
      }[];
      for (const m of items) assert.equal(m.category, "NUM_REQUESTS");
      const ruoks = items.find((m) => m.scope === "REQUEST" && m.name === "ruok");
      assert.ok(ruoks && ruoks.value >= 1, `ruok counted before the metrics were asked: ${metrics.stdout}`);
      const total = items.find((m) => m.scope === "GLOBAL" && m.name === "total");
      assert.ok(total && total.value > 0, "a GLOBAL total of the requests so far");

      assert.equal(prometheus.code, 0, prometheus.stderr);
      assert.match(prometheus.stdout, /^# HELP zgrid_requests_total /m);
      assert.match(prometheus.stdout, /^# TYPE zgrid_requests_total counter$/m);
      assert.match(prometheus.stdout, /^zgrid_requests_total\{[^}]*command="ruok"[^}]*\} \d+$/m);
    });
  }

  it("status --json; errors of the server exit 1 with its message and code", async () => {
    const [json, category, token] = await Promise.all([
      runCli(["status", "--json", "--connection-info", infoFile], {}, 60_000),
      runCli(["metrics", "--category", "BOGUS", "--url", info.url], {}, 60_000),
      runCli(["status", "--url", `tcp://127.0.0.1:${info.port}?token=wrong`], {}, 60_000),
    ]);
    assert.equal(json.code, 0, json.stderr);
    const s = JSON.parse(json.stdout) as { version: string; endpoints: { port: number } };
    assert.equal(s.version, info.version);
    assert.equal(s.endpoints.port, info.port);
    assert.equal(category.code, 1);
    assert.match(category.stderr, /unknown metrics category "BOGUS".*\[INVALID_ARGUMENT\]/);
    assert.equal(token.code, 1);
    assert.match(token.stderr, /UNAUTHENTICATED/);
  });
});

describe("zgrid shutdown", { concurrency: true }, () => {
  for (const mode of MODES) {
    it(`with ${mode}: the server stops and removes its connection-info file`, async () => {
      const dir = tempDir();
      const infoFile = join(dir, "connection.json");
      const { server, info } = await startServer({ connectionInfo: infoFile });
      let closed = false;
      void server.closed.then(() => (closed = true));
      try {
        const { args, env } = target(mode, info, infoFile);
        const r = await runCli(["shutdown", ...args], env, 60_000);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, "shutting down\n");
        await waitFor(() => closed, 20_000, "the server to close");
        assert.ok(!existsSync(infoFile), "the connection-info file is removed");
      } finally {
        await server.shutdown();
        removeDir(dir);
      }
    });
  }
});

describe("usage errors exit 2", { concurrency: true }, () => {
  it("an unknown command, bad flags, no server given, an unreadable connection-info file", async () => {
    const dir = tempDir();
    try {
      const noUrl = { ZGRID_URL: "", ZGRID_SERVER_CONNECTION_INFO: "" };
      const runs = await Promise.all([
        runCli(["no-such-command"], {}, 60_000),
        runCli(["ruok", "--bogus"], {}, 60_000),
        runCli(["metrics", "--category"], {}, 60_000),
        runCli(["status", "extra-positional", "--url", "tcp://127.0.0.1:1?token=x"], {}, 60_000),
        runCli(["ruok", "--timeout", "soon", "--url", "tcp://127.0.0.1:1?token=x"], {}, 60_000),
        runCli(["status"], noUrl, 60_000),
        runCli(["shutdown", "--connection-info", join(dir, "absent.json")], noUrl, 60_000),
        runCli([], {}, 60_000),
      ]);
      const patterns = [
        /unknown command "no-such-command"/,
        /zgrid ruok: .*--bogus/,
        /zgrid metrics: .*--category/,
        /zgrid status: .*extra-positional/,
        /--timeout must be an integer from 1 to/,
        /where is the server\?/,
        /cannot read the connection-info file/,
        /Usage: zgrid <command>/,
      ];
      runs.forEach((r, i) => {
        assert.equal(r.code, 2, `case ${i}: ${r.stderr}`);
        assert.match(i === 7 ? r.stdout : r.stderr, patterns[i], `case ${i}`);
      });
    } finally {
      removeDir(dir);
    }
  });

  it("--help exits 0 and prints the command's usage", async () => {
    const metrics = await runCli(["metrics", "--help"], {}, 60_000);
    assert.equal(metrics.code, 0);
    assert.match(metrics.stdout, /^zgrid metrics /);
    assert.match(metrics.stdout, /--prometheus/);
  });

  it("a server that does not answer: ruok exits 1 after its --timeout", async () => {
    const dir = tempDir();
    try {
      // Port 1 on 127.0.0.1: nothing listens there.
      const dead = "tcp://127.0.0.1:1?token=x";
      const infoFile = join(dir, "dead.json");
      writeFileSync(infoFile, JSON.stringify({ url: dead, metricsUrl: dead, statusUrl: dead }));
      const started = Date.now();
      const r = await runCli(["ruok", "--timeout", "300", "--connection-info", infoFile], {}, 60_000);
      const elapsed = Date.now() - started;
      assert.equal(r.code, 1);
      assert.match(r.stderr, /no zgrid server answers at 127\.0\.0\.1:1 within/);
      // STATUS first, then DEFAULT in what is left of the 300 ms (at least 200 ms), plus the start of
      // node, which took 8.9 s on a loaded CI machine. Without --timeout the tests' ZGRID_TIMEOUT_MS
      // (30 s) would apply to each daemon: 20 s tells the two apart.
      assert.ok(elapsed >= 300 && elapsed < 20_000, `exited after ${elapsed} ms`);
    } finally {
      removeDir(dir);
    }
  });
});
