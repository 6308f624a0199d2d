/**
 * Start and stop of the server (design §1–§3): `shutdown`, SIGTERM and SIGINT on a `zgrid server` child
 * process, requests in flight during shutdown, server-modules.cfg, configuration precedence, token sources.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pack, unpack } from "msgpackr";
import { Dealer } from "zeromq";
import { connect, type ZgridClient } from "../src/client/client.js";
import { serverConfigFrom } from "../src/cli/server-cmd.js";
import { ConfigError } from "../src/config/options.js";
import { TokenCheck, generateToken, resolveToken } from "../src/daemons/auth.js";
import { DEFAULT_MODULES_CFG } from "../src/daemons/config.js";
import { ServerDaemon } from "../src/daemons/daemon.js";
import { ModuleLoadError, readModulesCfg } from "../src/daemons/modules.js";
import { Server } from "../src/daemons/server.js";
import { createLogger } from "../src/log.js";
import { RequestMetrics } from "../src/metrics/request-metrics.js";
import type { FrameSocket } from "../src/protocol/send-queue.js";
import { ZgridError } from "../src/protocol/errors.js";
import {
  ROOT,
  holdsOver,
  removeDir,
  runCli,
  spawnServer,
  startServer,
  tempDir,
  testConfig,
  waitFor,
} from "./helpers.js";

const MODULES = join(ROOT, "test/fixtures/modules");
/** Every port free, so that a server that starts by mistake never takes a default port. */
const FREE_PORTS = ["--port", "0", "--worker-port", "0", "--metrics-port", "0", "--status-port", "0"];

function isCode(code: string): (err: unknown) => boolean {
  return (err: unknown) => err instanceof ZgridError && err.code === code;
}

/** Resolves with the exit of a spawned process, or rejects after `ms`. */
async function exitWithin(
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
  ms: number,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the process did not exit within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A session and a CREATED result nothing will ever complete: something to wait on. */
async function pendingResult(client: ZgridClient): Promise<string> {
  const sessionId = await client.createSession();
  const [created] = await client.createResults(sessionId, [{ name: "never" }]);
  assert.equal(created.status, "CREATED");
  return created.resultId;
}

describe("stopping a zgrid server child process", { concurrency: true }, () => {
  it("the shutdown command: in-flight requests are answered, exit 0, connection-info file removed", async (t) => {
    const { proc, info, infoFile, dir } = await spawnServer();
    t.after(async () => {
      await proc.stop();
      removeDir(dir);
    });
    assert.ok(existsSync(infoFile));
    const written = JSON.parse(readFileSync(infoFile, "utf8")) as Record<string, unknown>;
    for (const k of ["host", "port", "url", "workerUrl", "metricsUrl", "statusUrl", "pid", "version"]) {
      assert.ok(written[k] !== undefined && written[k] !== null, `connection info has ${k}`);
    }
    assert.equal(written.pid, proc.child.pid);
    const client = await connect(info.url, { timeoutMs: 8000 });
    try {
      const resultId = await pendingResult(client);
      const started = Date.now();
      const waiting = client.waitResults([resultId], { timeoutMs: 1000 });
      assert.equal(await client.ruok(), "imok"); // the wait has reached the server
      assert.equal(await client.shutdown(), "shutting down");
      const answer = await waiting;
      assert.deepEqual(answer, { timedOut: true, statuses: { [resultId]: "CREATED" } });
      assert.ok(Date.now() - started >= 900, "the wait ran its course during the shutdown");
      const { code, signal } = await exitWithin(proc.exited, 10_000);
      assert.equal(signal, null);
      assert.equal(code, 0, proc.stderr());
      assert.ok(!existsSync(infoFile), "the connection-info file is removed");
      assert.match(proc.stdout(), /server is ready/);
    } finally {
      await client.close();
    }
  });

  it("SIGTERM: a request in flight is answered, exit 0, connection-info file removed", async (t) => {
    const { proc, info, infoFile, dir } = await spawnServer();
    t.after(async () => {
      await proc.stop();
      removeDir(dir);
    });
    const client = await connect(info.url, { timeoutMs: 8000 });
    try {
      const resultId = await pendingResult(client);
      const waiting = client.waitResults([resultId], { timeoutMs: 600 });
      assert.equal(await client.ruok(), "imok");
      proc.child.kill("SIGTERM");
      assert.equal((await waiting).timedOut, true);
      const { code, signal } = await exitWithin(proc.exited, 10_000);
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, proc.stderr());
      assert.ok(!existsSync(infoFile));
      assert.match(proc.stderr(), /SIGTERM/);
    } finally {
      await client.close();
    }
  });

  it("SIGINT: exit 0, connection-info file removed; the generated token is in <data-dir>/token", async (t) => {
    const { proc, info, infoFile, dir } = await spawnServer();
    t.after(async () => {
      await proc.stop();
      removeDir(dir);
    });
    const token = new URL(info.url).searchParams.get("token");
    assert.match(token ?? "", /^[A-Za-z0-9]{32}$/, "a generated token: 32 characters");
    const lines = readFileSync(join(dir, "token"), "utf8").trim().split("\n");
    assert.equal(lines[lines.length - 1], token);
    proc.child.kill("SIGINT");
    const { code, signal } = await exitWithin(proc.exited, 10_000);
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, proc.stderr());
    assert.ok(!existsSync(infoFile));
    assert.match(proc.stderr(), /SIGINT/);
  });
});

describe("a daemon's stop with requests in flight", () => {
  it("answers slow requests, refuses new ones with UNAVAILABLE, answers the rest with UNAVAILABLE after the grace", async () => {
    const daemon = new ServerDaemon({
      name: "TEST",
      host: "127.0.0.1",
      port: 0,
      auth: new TokenCheck("tok"),
      maxFrameBytes: 1 << 20,
      metrics: new RequestMetrics(),
      log: createLogger("silent"),
    });
    daemon.commands.register("ruok", () => ({ msg: "imok" }), "test");
    daemon.commands.register("hang", () => new Promise(() => {}), "test");
    daemon.commands.register(
      "slow",
      () => new Promise((resolve) => setTimeout(() => resolve({ msg: "done" }), 150)),
      "test",
    );
    await daemon.start();
    const client = await connect(`tcp://127.0.0.1:${daemon.port}?token=tok`, { timeoutMs: 5000 });
    try {
      const hang = client.call("hang");
      const slow = client.call("slow");
      hang.catch(() => {});
      slow.catch(() => {});
      assert.equal(await client.call("ruok"), "imok"); // both are in flight now
      const started = Date.now();
      const stopping = daemon.stop(500);
      await assert.rejects(client.call("ruok"), isCode("UNAVAILABLE"), "a new request during the stop");
      assert.equal(await slow, "done");
      await assert.rejects(hang, isCode("UNAVAILABLE"));
      const waited = Date.now() - started;
      assert.ok(
        waited >= 450 && waited < 3000,
        `the hanging request was answered at the grace end (${waited} ms)`,
      );
      await stopping;
    } finally {
      await client.close();
      await daemon.stop(0);
    }
  });
});

describe("a worker that leaves", () => {
  it("does not wedge the worker endpoint: heartbeats to it are dropped, the server shuts down promptly", async () => {
    const heartbeatMs = 200;
    const { server, info } = await startServer({ heartbeatMs });
    const endpoint = (
      server as unknown as {
        workerEndpoint: {
          socket: FrameSocket & { close(): void };
          out: { socket: FrameSocket };
          identityOf: Map<string, Buffer>;
        };
      }
    ).workerEndpoint;
    /** Shuts the server down; false if that took longer than 3 s (then its socket is closed by hand). */
    const shutdownPromptly = async (): Promise<boolean> => {
      const shutdown = server.shutdown();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), 3000)));
      const prompt = await Promise.race([shutdown.then(() => true), late]);
      clearTimeout(timer);
      if (!prompt) {
        // Close the wedged socket by hand so that this test process can still end.
        endpoint.socket.close();
        await shutdown;
      }
      return prompt;
    };

    // Every message the endpoint's send queue hands to the socket: to whom, its type, and how the send
    // ended ("sent", or the code of the error that dropped it) after how long.
    const sends: { to: string; t: string; outcome: string; ms: number }[] = [];
    const recordSends = (socket: FrameSocket): FrameSocket => ({
      async send(frames: Buffer[]): Promise<void> {
        const entry = {
          to: frames[0].toString("hex"),
          t: (unpack(frames[2]) as { t: string }).t,
          outcome: "pending",
          ms: -1,
        };
        sends.push(entry);
        const started = Date.now();
        try {
          await socket.send(frames);
          entry.outcome = "sent";
        } catch (err) {
          entry.outcome = (err as { code?: string }).code ?? String(err);
          throw err;
        } finally {
          entry.ms = Date.now() - started;
        }
      },
    });
    const dealers: Dealer[] = [];
    /** A worker by hand: READY, and the first answer. */
    const join = async (workerId: string): Promise<Dealer> => {
      const dealer = new Dealer({ linger: 0, receiveTimeout: 5000 });
      dealers.push(dealer);
      dealer.connect(info.workerUrl.replace(/\?.*/, ""));
      await dealer.send([
        Buffer.alloc(0),
        pack({
          t: "READY",
          v: 1,
          token: server.workerToken,
          workerId,
          partitions: ["default"],
          slots: 1,
          prefetch: 0,
        }),
      ]);
      const [, welcome] = await dealer.receive();
      assert.equal((unpack(welcome) as { t: string }).t, "WELCOME", `${workerId} welcomed`);
      return dealer;
    };
    /** The type of the next message to a worker by hand (which waits 5 s at most). */
    const nextMessage = async (dealer: Dealer, who: string): Promise<string> => {
      try {
        return (unpack((await dealer.receive())[1]) as { t: string }).t;
      } catch (err) {
        throw new Error(`no message reached ${who} within 5000 ms`, { cause: err });
      }
    };

    let failure: unknown;
    try {
      assert.equal(endpoint.out.socket, endpoint.socket, "the endpoint sends through its queue");
      endpoint.out.socket = recordSends(endpoint.out.socket);
      const leaving = await join("w-leaving");
      const leavingId = endpoint.identityOf.get("w-leaving")!.toString("hex");
      // While it is there, heartbeats reach it.
      assert.equal(await nextMessage(leaving, "w-leaving"), "HEARTBEAT");
      leaving.close();
      // Gone: heartbeats to it still go out (it is judged dead only after three silent intervals), and
      // each is dropped at once, not left waiting for a peer that will never read it.
      const droppedHeartbeat = () =>
        sends.find(
          (e) => e.to === leavingId && e.t === "HEARTBEAT" && e.outcome !== "sent" && e.outcome !== "pending",
        );
      await waitFor(() => droppedHeartbeat() !== undefined, 5000, "a heartbeat to the gone worker dropped");
      assert.match(droppedHeartbeat()!.outcome, /^(EHOSTUNREACH|EAGAIN)$/);
      // Then it is forgotten, and nothing more is sent to it.
      await waitFor(() => !server.scheduler.workers.has("w-leaving"), 10 * heartbeatMs, "w-leaving removed");
      const toLeaving = sends.filter((e) => e.to === leavingId).length;
      // The endpoint is not wedged: a worker that joins now is welcomed and gets its heartbeats; over
      // that window nothing went to the gone one.
      const newcomer = await join("w-newcomer");
      const twoBeats = (async () => {
        for (let beats = 0; beats < 2;) {
          if ((await nextMessage(newcomer, "w-newcomer")) !== "HEARTBEAT") continue;
          beats++;
          await newcomer.send([Buffer.alloc(0), pack({ t: "HEARTBEAT" })]);
        }
      })();
      await holdsOver(() => sends.filter((e) => e.to === leavingId).length === toLeaving, {
        until: twoBeats,
        what: "no message to the gone worker",
      });
      for (const e of sends.filter((x) => x.to === leavingId)) {
        assert.notEqual(e.outcome, "pending", `a ${e.t} to the gone worker never settled`);
        assert.ok(e.ms < 1000, `a ${e.t} to the gone worker took ${e.ms} ms to settle (${e.outcome})`);
      }
    } catch (err) {
      failure = err;
    } finally {
      for (const d of dealers) if (!d.closed) d.close();
    }
    // Stop the server before failing, or this test process would never end.
    const prompt = await shutdownPromptly();
    if (failure !== undefined) throw failure;
    assert.ok(prompt, "the shutdown took longer than 3000 ms");
  });
});

describe("server-modules.cfg", () => {
  it("reads one module a line, ignoring comments and blank lines; paths are relative to the cfg", () => {
    const lines = readModulesCfg(join(MODULES, "with-echo.cfg"));
    assert.deepEqual(
      lines.map(({ line, spec }) => ({ line, spec })),
      [
        { line: 3, spec: "sessions" },
        { line: 4, spec: "results" },
        { line: 7, spec: "./echo-module.js" },
      ],
    );
    assert.equal(lines[2].path, join(MODULES, "echo-module.js"));
    const shipped = readModulesCfg(DEFAULT_MODULES_CFG).map((l) => l.spec);
    for (const m of ["sessions", "results", "tasks"])
      assert.ok(shipped.includes(m), `the shipped cfg loads ${m}`);
  });

  it("a cfg without the tasks and results modules: their commands are UNKNOWN_COMMAND, the others work", async (t) => {
    const { server, info } = await startServer({ modules: join(MODULES, "sessions-only.cfg") });
    t.after(() => server.shutdown());
    const client = await connect(info.url, { timeoutMs: 5000 });
    t.after(() => client.close());
    const sessionId = await client.createSession();
    assert.equal((await client.getSession(sessionId)).status, "RUNNING");
    await assert.rejects(client.submitTasks(sessionId, [{ payloadId: "x" }]), isCode("UNKNOWN_COMMAND"));
    await assert.rejects(client.createResults(sessionId, [{ name: "a" }]), isCode("UNKNOWN_COMMAND"));
    assert.equal(await client.ruok(), "imok");
    const map = await client.getCmdMap();
    assert.equal(map["sessions.create"], "sessions");
    assert.equal(map["tasks.submit"], undefined);
    assert.ok(!Object.keys(map).some((c) => c.startsWith("tasks.") || c.startsWith("results.")));
  });

  it("a user module by path: its commands work and getCmdMap shows them under its cfg name", async (t) => {
    const { server, info } = await startServer({ modules: join(MODULES, "with-echo.cfg") });
    t.after(() => server.shutdown());
    const client = await connect(info.url, { user: "echoer", timeoutMs: 5000 });
    t.after(() => client.close());
    const reply = await client.request("custom.echo", { value: { nested: [1, "two"] } }, [Buffer.from("b0")]);
    assert.deepEqual(reply.msg, {
      value: { nested: [1, "two"] },
      user: "echoer",
      daemon: "DEFAULT",
      version: info.version,
    });
    assert.deepEqual(
      reply.blobs.map((b) => b.toString()),
      ["b0"],
    );
    const map = await client.getCmdMap();
    assert.equal(map["custom.echo"], "./echo-module.js");
    assert.equal(map["custom.sleep"], "./echo-module.js");
    assert.equal(map["results.create"], "results");
    assert.equal(map["tasks.submit"], undefined, "the commented-out module is not loaded");
    assert.equal(map.ruok, "BuiltIns");
  });

  it("a cfg naming a missing module or a module without register() stops the start with a clear message", async () => {
    for (const [cfg, pattern] of [
      ["missing-module.cfg", /missing-module\.cfg line 2: module "no-such-module" not found/],
      [
        "no-register.cfg",
        /no-register\.cfg line 2: module "\.\/no-register\.js" .*does not export a register/,
      ],
    ] as const) {
      const server = new Server(testConfig({ modules: join(MODULES, cfg) }), createLogger("silent"));
      try {
        await assert.rejects(server.start(), (err: unknown) => {
          assert.ok(err instanceof ModuleLoadError);
          assert.match((err as Error).message, pattern);
          return true;
        });
      } finally {
        await server.shutdown();
      }
    }
  });

  it("zgrid server with a missing module exits non-zero at start, naming the module", async () => {
    const dir = tempDir();
    try {
      const info = join(dir, "info.json");
      const r = await runCli(
        [
          "server",
          ...FREE_PORTS,
          "--data-dir",
          dir,
          "--connection-info",
          info,
          "--modules",
          join(MODULES, "missing-module.cfg"),
        ],
        {},
        15_000,
      );
      assert.notEqual(r.code, 0);
      assert.notEqual(r.code, null, "it exited by itself");
      assert.match(r.stderr, /cannot start/);
      assert.match(r.stderr, /no-such-module/);
      assert.match(r.stderr, /line 2/);
      assert.ok(!existsSync(info), "no connection-info file");
    } finally {
      removeDir(dir);
    }
  });
});

describe("configuration of zgrid server: flag > env > --config file > default", () => {
  let dir: string;
  let cfgFile: string;

  before(() => {
    dir = tempDir();
    cfgFile = join(dir, "server.json");
    writeFileSync(
      cfgFile,
      JSON.stringify({
        port: 6001,
        metricsPort: 6002,
        statusPort: 6003,
        maxBatch: 111,
        logLevel: "warn",
        daemons: ["default"],
      }),
    );
  });
  after(() => removeDir(dir));

  it("defaults", () => {
    const c = serverConfigFrom([], {})!;
    assert.equal(c.port, 5555);
    assert.equal(c.metricsPort, 5556);
    assert.equal(c.statusPort, 5557);
    assert.equal(c.workerPort, 5558);
    assert.equal(c.host, "127.0.0.1");
    assert.deepEqual(c.daemons, ["default", "metrics", "status"]);
    assert.equal(c.noAuth, false);
    assert.equal(c.token, undefined);
    assert.equal(c.modules, DEFAULT_MODULES_CFG);
  });

  it("the file beats the default, the environment beats the file, the flag beats the environment", () => {
    const c = serverConfigFrom(["--config", cfgFile, "--port", "7001"], {
      ZGRID_PORT: "8001",
      ZGRID_METRICS_PORT: "8002",
    })!;
    assert.equal(c.port, 7001, "flag > env > file");
    assert.equal(c.metricsPort, 8002, "env > file");
    assert.equal(c.statusPort, 6003, "file > default");
    assert.equal(c.workerPort, 5558, "default");
    assert.equal(c.maxBatch, 111);
    assert.equal(c.logLevel, "warn");
    assert.deepEqual(c.daemons, ["default"]);
  });

  it("ZGRID_CONFIG names the file too; --config beats it", () => {
    const other = join(dir, "other.json");
    writeFileSync(other, JSON.stringify({ port: 6101 }));
    assert.equal(serverConfigFrom([], { ZGRID_CONFIG: cfgFile })!.port, 6001);
    assert.equal(serverConfigFrom(["--config", other], { ZGRID_CONFIG: cfgFile })!.port, 6101);
  });

  it("types: lists, booleans, integers from flags and environment", () => {
    const c = serverConfigFrom(["--daemons", "default,status", "--no-auth"], {
      ZGRID_MAX_FRAME_BYTES: "4096",
      ZGRID_PROMETHEUS_PORT: "0",
    })!;
    assert.deepEqual(c.daemons, ["default", "status"]);
    assert.equal(c.noAuth, true);
    assert.equal(c.maxFrameBytes, 4096);
    assert.equal(c.prometheusPort, 0);
    assert.equal(serverConfigFrom([], { ZGRID_NO_AUTH: "true" })!.noAuth, true);
    assert.equal(serverConfigFrom([], { ZGRID_NO_AUTH: "0" })!.noAuth, false);
    assert.equal(serverConfigFrom(["--help"], {}), null);
  });

  it("bad values name the setting and where the value came from", () => {
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ heartbeatMs: "often" }));
    const unknownKey = join(dir, "unknown.json");
    writeFileSync(unknownKey, JSON.stringify({ prot: 1 }));
    const notJson = join(dir, "not.json");
    writeFileSync(notJson, "{ port: ");
    const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [["--port", "abc"], {}, /--port \(from the command line\): expected an integer/],
      [["--port", "70000"], {}, /--port .*at most 65535/],
      [[], { ZGRID_STATUS_PORT: "-1" }, /--status-port \(from environment ZGRID_STATUS_PORT\).*at least 0/],
      [[], { ZGRID_NO_AUTH: "maybe" }, /--no-auth \(from environment ZGRID_NO_AUTH\)/],
      [
        ["--config", bad],
        {},
        new RegExp(`--heartbeat-ms \\(from config file ${bad.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}\\)`),
      ],
      [["--config", unknownKey], {}, /unknown setting "prot"/],
      [["--config", notJson], {}, /not valid JSON/],
      [["--config", join(dir, "absent.json")], {}, /cannot read config file/],
      [["--daemons", "default,bogus"], {}, /unknown daemon "bogus"/],
      [[], { ZGRID_DAEMONS: "metrics" }, /must include "default"/],
      [["--store", "mysql"], {}, /unknown store "mysql" for --store: expected sqlite, postgres or memory/],
      [["--store", "postgres"], {}, /--store postgres needs --pg-url/],
      [["--pg-url", "mysql://h/db"], {}, /--pg-url must start with postgres:\/\//],
      [["--log-level", "loud"], {}, /unknown log level "loud"/],
      [["--max-frame-bytes", "10"], {}, /--max-frame-bytes .*at least 1024/],
    ];
    for (const [argv, env, pattern] of cases) {
      assert.throws(
        () => serverConfigFrom(argv, env),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError, `${argv.join(" ")} ${JSON.stringify(env)}: ${String(err)}`);
          assert.match((err as Error).message, pattern);
          return true;
        },
      );
    }
    assert.throws(() => serverConfigFrom(["--bogus-flag"], {}), /bogus-flag/);
  });

  it("a spawned zgrid server applies the same precedence", async (t) => {
    const file = join(dir, "spawned.json");
    writeFileSync(
      file,
      JSON.stringify({ maxBatch: 111, maxFrameBytes: 50_000, heartbeatMs: 300, token: "file-token" }),
    );
    // spawnServer passes --heartbeat-ms 200 on the command line.
    const {
      proc,
      info,
      dir: dataDir,
    } = await spawnServer(["--config", file], {
      ZGRID_MAX_BATCH: "222",
      ZGRID_SERVER_TOKEN: "env-token",
    });
    t.after(async () => {
      await proc.stop();
      removeDir(dataDir);
    });
    assert.equal(new URL(info.url).searchParams.get("token"), "env-token", "env > file");
    const client = await connect(info.url, { timeoutMs: 5000 });
    t.after(() => client.close());
    const config = await client.getConfig();
    assert.equal(config.maxBatch, 222, "env > file");
    assert.equal(config.maxFrameBytes, 50_000, "file > default");
    assert.equal(config.heartbeatMs, 200, "flag > file");
    assert.equal(config.store, "sqlite", "default");
  });

  it("a spawned zgrid server with a bad value exits 2 naming the setting and its source", async () => {
    const bad = join(dir, "bad-port.json");
    writeFileSync(bad, JSON.stringify({ maxBatch: "lots" }));
    const runs = await Promise.all([
      runCli(["server", ...FREE_PORTS, "--data-dir", dir, "--port", "abc"], {}, 15_000),
      runCli(["server", ...FREE_PORTS, "--data-dir", dir], { ZGRID_HEARTBEAT_MS: "10" }, 15_000),
      runCli(["server", ...FREE_PORTS, "--data-dir", dir, "--config", bad], {}, 15_000),
      runCli(["server", ...FREE_PORTS, "--data-dir", dir, "--no-such-flag"], {}, 15_000),
    ]);
    const patterns = [
      /--port \(from the command line\)/,
      /--heartbeat-ms \(from environment ZGRID_HEARTBEAT_MS\): must be at least 50/,
      /--max-batch \(from config file .*bad-port\.json\)/,
      /no-such-flag/,
    ];
    runs.forEach((r, i) => {
      assert.equal(r.code, 2, `run ${i}: ${r.stderr}`);
      assert.match(r.stderr, patterns[i]);
      assert.match(r.stderr, /^zgrid server: /);
      assert.doesNotMatch(r.stdout, /server is ready/);
    });
  });
});

describe("token sources", () => {
  it("resolveToken: given, else the last line of <data-dir>/token, else generated and appended", () => {
    const dir = tempDir();
    try {
      assert.equal(resolveToken("given", dir).token, "given");
      assert.ok(!existsSync(join(dir, "token")), "a given token writes nothing");
      const first = resolveToken(undefined, dir);
      assert.match(first.token, /^[A-Za-z0-9]{32}$/);
      assert.match(first.source, /generated/);
      assert.equal(readFileSync(join(dir, "token"), "utf8"), first.token + "\n");
      assert.equal(
        resolveToken(undefined, dir).token,
        first.token,
        "read back from the file, not regenerated",
      );
      writeFileSync(join(dir, "token"), `${first.token}\nsecond-token\n\n`, { flag: "w" });
      assert.equal(resolveToken(undefined, dir).token, "second-token", "the last non-empty line");
    } finally {
      removeDir(dir);
    }
  });

  it("generated tokens are 32 characters and differ", () => {
    const tokens = new Set(Array.from({ length: 50 }, () => generateToken()));
    assert.equal(tokens.size, 50);
    for (const t of tokens) assert.match(t, /^[A-Za-z0-9]{32}$/);
  });

  it("--token beats ZGRID_SERVER_TOKEN", () => {
    assert.equal(
      serverConfigFrom(["--token", "flag-token"], { ZGRID_SERVER_TOKEN: "env-token" })!.token,
      "flag-token",
    );
    assert.equal(serverConfigFrom([], { ZGRID_SERVER_TOKEN: "env-token" })!.token, "env-token");
  });

  it("a server without a token uses <data-dir>/token, and accepts only that token", async (t) => {
    const dir = tempDir();
    writeFileSync(join(dir, "token"), "old-token\nfile-token\n");
    const { server, info } = await startServer({ token: undefined, dataDir: dir });
    t.after(async () => {
      await server.shutdown();
      removeDir(dir);
    });
    assert.equal(server.token, "file-token");
    assert.equal(new URL(info.url).searchParams.get("token"), "file-token");
    const good = await connect(`tcp://127.0.0.1:${info.port}?token=file-token`, { timeoutMs: 5000 });
    const old = await connect(`tcp://127.0.0.1:${info.port}?token=old-token`, { timeoutMs: 5000 });
    t.after(() => Promise.all([good.close(), old.close()]));
    assert.equal(await good.ruok(), "imok");
    await assert.rejects(old.ruok(), isCode("UNAUTHENTICATED"));
  });
});
