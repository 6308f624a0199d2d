/**
 * Frames from a stranger (no token) that once killed the server process: a header whose `v` cannot be
 * printed (a 64-bit BigInt, a deeply nested value). Every daemon answers BAD_REQUEST and keeps serving.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pack, unpack } from "msgpackr";
import { Dealer } from "zeromq";
import { connect, type ZgridClient } from "../src/client/client.js";
import type { ConnectionInfo, Server } from "../src/daemons/server.js";
import type { ZgridError } from "../src/protocol/errors.js";
import { encodePayload } from "../src/client/payload.js";
import {
  EXAMPLE_APPS,
  removeDir,
  spawnCli,
  spawnServer,
  startServer,
  waitFor,
  type Proc,
} from "./helpers.js";

const EMPTY = Buffer.alloc(0);

/** `{v: <BigInt 1>}` as msgpackr's 0x42 extension: 6 bytes. */
const BIGINT_V = Buffer.from("81a176d44201", "hex");

/** `{v: [[[…]]]}` nested `depth` arrays deep, then `cmd` and `id`. */
function deeplyNestedV(depth: number): Buffer {
  const open = Buffer.alloc(depth, 0x91); // fixarray of 1
  const tail = pack(1);
  // map of 3: "v" → nested, "id" → 7, "cmd" → "ruok"
  return Buffer.concat([
    Buffer.from([0x83, 0xa1, 0x76]),
    open,
    tail,
    Buffer.from([0xa2, 0x69, 0x64, 0x07]),
    Buffer.from([0xa3, 0x63, 0x6d, 0x64]),
    pack("ruok"),
  ]);
}

const portOf = (url: string | null): number => Number(new URL(url!.replace("tcp:", "http:")).port);

/** A request whose "XQXQ" placeholder becomes a BigInt (msgpackr's 0x42 extension). */
function withBigInt(header: Record<string, unknown>): Buffer {
  const packed = pack(header);
  const at = packed.indexOf(Buffer.from("a458515851", "hex"));
  assert.ok(at > 0);
  return Buffer.concat([packed.subarray(0, at), Buffer.from("d44201", "hex"), packed.subarray(at + 5)]);
}

async function roundTrip(port: number, frames: Buffer[]): Promise<Record<string, unknown>> {
  const s = new Dealer({ linger: 0, receiveTimeout: 5000 });
  s.connect(`tcp://127.0.0.1:${port}`);
  try {
    await s.send(frames);
    const reply = await s.receive();
    return unpack(reply[reply[0].length === 0 ? 1 : 0]) as Record<string, unknown>;
  } finally {
    s.close();
  }
}

describe("frames a stranger sends to kill the server", () => {
  let proc: Proc;
  let info: ConnectionInfo;
  let dir: string;

  before(async () => {
    ({ proc, info, dir } = await spawnServer([], { ZGRID_SERVER_TOKEN: "test-token" }));
  });
  after(async () => {
    await proc.stop();
    removeDir(dir);
  });

  const ports = (): [string, number][] => [
    ["DEFAULT", info.port],
    ["METRICS", portOf(info.metricsUrl)],
    ["STATUS", portOf(info.statusUrl)],
  ];

  it("a BigInt v is BAD_REQUEST on every daemon, and the server lives", async () => {
    for (const [daemon, port] of ports()) {
      const h = await roundTrip(port, [EMPTY, BIGINT_V]);
      assert.equal(h.msgType, "ERROR", `${daemon}: ${JSON.stringify(h)}`);
      assert.equal(h.code, "BAD_REQUEST", daemon);
      assert.match(String(h.msg), /protocol version/, daemon);
    }
    assert.equal(proc.child.exitCode, null, `the server exited: ${proc.stderr().slice(-500)}`);
    const ok = await roundTrip(info.port, [EMPTY, pack({ v: 1, id: 1, cmd: "ruok", token: "test-token" })]);
    assert.equal(ok.msg, "imok");
  });

  it("a v nested 4,000 deep is BAD_REQUEST on every daemon, and the server lives", async () => {
    for (const [daemon, port] of ports()) {
      const h = await roundTrip(port, [EMPTY, deeplyNestedV(4000)]);
      assert.equal(h.msgType, "ERROR", `${daemon}: ${JSON.stringify(h)}`);
      assert.equal(h.code, "BAD_REQUEST", daemon);
    }
    assert.equal(proc.child.exitCode, null, `the server exited: ${proc.stderr().slice(-500)}`);
  });

  it("the worker endpoint rejects a READY with a BigInt v and lives", async () => {
    const port = portOf(info.workerUrl);
    const ready = Buffer.concat([
      Buffer.from([0x82, 0xa1, 0x74]),
      pack("READY"),
      Buffer.from([0xa1, 0x76, 0xd4, 0x42, 0x01]),
    ]);
    const h = await roundTrip(port, [EMPTY, ready]);
    assert.equal(h.t, "REJECT", JSON.stringify(h));
    assert.equal(proc.child.exitCode, null, `the server exited: ${proc.stderr().slice(-500)}`);
    const ok = await roundTrip(info.port, [EMPTY, pack({ v: 1, id: 2, cmd: "ruok", token: "test-token" })]);
    assert.equal(ok.msg, "imok");
  });

  it("the worker endpoint rejects a READY whose apps are not a bounded list of short names", async () => {
    const port = portOf(info.workerUrl);
    const token = new URL(info.workerUrl!.replace("tcp:", "http:")).searchParams.get("token");
    const ready = (apps: unknown) =>
      pack({ t: "READY", v: 1, token, workerId: "w-apps", partitions: ["default"], slots: 1, apps });
    for (const apps of [
      "hello",
      [1, 2],
      ["x".repeat(257)],
      Array.from({ length: 10_001 }, (_, i) => `app${i}`),
    ]) {
      const h = await roundTrip(port, [EMPTY, ready(apps)]);
      assert.equal(h.t, "REJECT", JSON.stringify(h).slice(0, 200));
      assert.equal(h.code, "INVALID_ARGUMENT");
      assert.match(String(h.msg), /apps must be a list of at most 10000 application names/);
    }
    const welcomed = await roundTrip(port, [EMPTY, ready(["hello", "hello.2"])]);
    assert.equal(welcomed.t, "WELCOME", JSON.stringify(welcomed));
    assert.equal(proc.child.exitCode, null, `the server exited: ${proc.stderr().slice(-500)}`);
  });

  it("the worker endpoint's error texts write out the control characters of the ids a worker names", async () => {
    const token = new URL(info.workerUrl!.replace("tcp:", "http:")).searchParams.get("token");
    const s = new Dealer({ linger: 0, receiveTimeout: 5000 });
    s.connect(`tcp://127.0.0.1:${portOf(info.workerUrl)}`);
    const next = async (): Promise<Record<string, unknown>> => {
      const reply = await s.receive();
      return unpack(reply[reply[0].length === 0 ? 1 : 0]) as Record<string, unknown>;
    };
    try {
      await s.send([
        EMPTY,
        pack({ t: "READY", v: 1, token, workerId: "w-esc", partitions: ["none"], slots: 1 }),
      ]);
      assert.equal((await next()).t, "WELCOME");
      const id = "x\u001b[2J\nforged line";
      await s.send([EMPTY, pack({ t: "FETCH", rid: 1, resultIds: [id] })]);
      const data = await next();
      const [fetched] = data.results as { error?: string }[];
      await s.send([EMPTY, pack({ t: "AGENT", rid: 2, op: "getData", taskId: id, args: { resultIds: [] } })]);
      const agent = await next();
      assert.equal(agent.ok, false);
      for (const error of [String(fetched.error), String(agent.error)]) {
        assert.ok(error.includes("x\\x1b[2J\\nforged line"), `the id written out: ${JSON.stringify(error)}`);
        // eslint-disable-next-line no-control-regex
        assert.doesNotMatch(error, /[\u0000-\u001f]/, "no control character is sent");
      }
    } finally {
      s.close();
    }
    assert.equal(proc.child.exitCode, null, `the server exited: ${proc.stderr().slice(-500)}`);
  });

  it("commands that echo a bad argument answer INVALID_ARGUMENT, not INTERNAL, for a BigInt", async () => {
    const cases: [number, Record<string, unknown>][] = [
      [portOf(info.metricsUrl), { cmd: "metrics", args: { category: "XQXQ" } }],
      [info.port, { cmd: "results.list", args: { filter: { status: ["XQXQ"] } } }],
      [info.port, { cmd: "tasks.list", args: { filter: { status: ["XQXQ"] } } }],
      [info.port, { cmd: "sessions.list", args: { filter: { status: ["XQXQ"] } } }],
    ];
    for (const [port, req] of cases) {
      const h = await roundTrip(port, [EMPTY, withBigInt({ v: 1, id: 9, token: "test-token", ...req })]);
      assert.equal(h.code, "INVALID_ARGUMENT", `${String(req.cmd)}: ${JSON.stringify(h)}`);
      assert.match(String(h.msg), /1n/, String(req.cmd));
    }
    assert.equal(proc.child.exitCode, null);
  });
});

describe("a frame far over the limit", () => {
  let proc: Proc;
  let info: ConnectionInfo;
  let dir: string;

  before(async () => {
    ({ proc, info, dir } = await spawnServer(["--max-frame-bytes", "4096"], {
      ZGRID_SERVER_TOKEN: "test-token",
    }));
  });
  after(async () => {
    await proc.stop();
    removeDir(dir);
  });

  it("is refused at receipt: never buffered, its sender disconnected; others are served", async () => {
    // Just over the limit: read, and answered with a sentence.
    const near = await roundTrip(info.port, [
      EMPTY,
      pack({ v: 1, id: 1, cmd: "ruok", token: "test-token" }),
      Buffer.alloc(5000),
    ]);
    assert.equal(near.code, "RESOURCE_EXHAUSTED");
    // Far over it (1 MiB against 4 KiB): ZeroMQ drops the connection before the frame is assembled,
    // so no reply comes (checked over a 1.5 s window).
    const s = new Dealer({ linger: 0, receiveTimeout: 1500 });
    s.connect(`tcp://127.0.0.1:${info.port}`);
    try {
      await s.send([
        EMPTY,
        pack({ v: 1, id: 2, cmd: "ruok", token: "test-token" }),
        Buffer.alloc(1024 * 1024),
      ]);
      await assert.rejects(s.receive(), /timed out|not possible/i);
    } finally {
      s.close();
    }
    const ok = await roundTrip(info.port, [EMPTY, pack({ v: 1, id: 3, cmd: "ruok", token: "test-token" })]);
    assert.equal(ok.msg, "imok");
  });

  it("on the worker endpoint too; a worker is told the limit, and a task whose output is over it ends ERROR", async () => {
    const port = portOf(info.workerUrl);
    const token = new URL(info.workerUrl!.replace("tcp:", "http:")).searchParams.get("token");
    const ready = pack({ t: "READY", v: 1, token, workerId: "w-limit", partitions: ["none"], slots: 1 });
    const s = new Dealer({ linger: 0, receiveTimeout: 1500 });
    s.connect(`tcp://127.0.0.1:${port}`);
    try {
      await s.send([EMPTY, ready, Buffer.alloc(1024 * 1024)]);
      await assert.rejects(s.receive(), /timed out|not possible/i);
    } finally {
      s.close();
    }
    const welcome = await roundTrip(port, [EMPTY, ready]);
    assert.equal(welcome.t, "WELCOME", JSON.stringify(welcome));
    assert.equal(welcome.maxFrameBytes, 4096);

    const worker = spawnCli([
      "worker",
      "--connect",
      info.workerUrl!,
      "--app-path",
      EXAMPLE_APPS,
      "--slots",
      "1",
    ]);
    const client = await connect(info.url, { timeoutMs: 30_000 });
    try {
      const sessionId = await client.createSession({ applicationName: "hello" });
      const [small, big] = await client.submitTasks(sessionId, [
        { payload: encodePayload("bytes", [1000]) },
        { payload: encodePayload("bytes", [10_000]) },
      ]);
      await client.waitResults([small.expectedOutputIds[0], big.expectedOutputIds[0]], { timeoutMs: 30_000 });
      assert.equal((await client.getTask(small.taskId)).status, "COMPLETED");
      const t = await client.getTask(big.taskId);
      assert.equal(t.status, "ERROR");
      assert.match(t.error ?? "", /output of \d+ bytes is over the server's frame limit of 4096 bytes/);
    } finally {
      await client.close();
      await worker.stop();
    }
  });
});

describe("metric labels from strangers", () => {
  let proc: Proc;
  let info: ConnectionInfo;
  let dir: string;

  before(async () => {
    ({ proc, info, dir } = await spawnServer([], { ZGRID_SERVER_TOKEN: "test-token" }));
  });
  after(async () => {
    await proc.stop();
    removeDir(dir);
  });

  it("made-up users and command names of unauthenticated requests mint no Prometheus series", async () => {
    const s = new Dealer({ linger: 0, receiveTimeout: 5000 });
    s.connect(`tcp://127.0.0.1:${info.port}`);
    try {
      for (let i = 0; i < 30; i++) {
        // A bad version, a missing token: each from a new "user", the second with a new command name.
        await s.send([EMPTY, pack({ v: 2, id: i, cmd: "ruok", user: `stranger-v-${i}` })]);
        await s.receive();
        await s.send([EMPTY, pack({ v: 1, id: i, cmd: `made-up-${i}`, user: `stranger-t-${i}` })]);
        await s.receive();
      }
    } finally {
      s.close();
    }
    const text = (
      await roundTrip(portOf(info.metricsUrl), [
        EMPTY,
        pack({ v: 1, id: 1, cmd: "prometheus", token: "test-token" }),
      ])
    ).msg as string;
    assert.ok(text.includes("zgrid_requests_total"), "the exposition has request counts");
    assert.doesNotMatch(text, /stranger-|made-up-/);
  });
});

describe("values that are not plain msgpack", () => {
  let server: Server;
  let client: ZgridClient;

  before(async () => {
    ({ server } = await startServer({ heartbeatMs: 200, token: "test-token" }));
    client = await connect(server.info!.url, { timeoutMs: 15_000 });
  });
  after(async () => {
    await client.close();
    await server.shutdown();
  });

  it("task options that are a Date or hold one are INVALID_ARGUMENT", async () => {
    const sessionId = await client.createSession({});
    const payload = Buffer.from("p");
    for (const taskOptions of [{ options: new Date(0) }, { options: { when: new Date(0) } }, new Date(0)]) {
      await assert.rejects(
        client.request("tasks.submit", { sessionId, taskOptions, tasks: [{ payload: 0 }] }, [payload]),
        (err: ZgridError) => err.code === "INVALID_ARGUMENT",
        JSON.stringify(taskOptions),
      );
    }
    await assert.rejects(
      client.request("sessions.create", { defaultTaskOptions: { options: new Date(0) } }),
      (err: ZgridError) => err.code === "INVALID_ARGUMENT",
    );
  });

  it("a DONE naming an output frame it does not carry fails the attempt; no other frame becomes the output", async () => {
    const sessionId = await client.createSession({ partitionId: "raw", maxRetries: 0 });
    const [t] = await client.submitTasks(sessionId, [{ payload: Buffer.from("p") }]);
    const worker = new Dealer({ linger: 0, receiveTimeout: 5000 });
    worker.connect(server.info!.workerUrl.split("?")[0]);
    try {
      const token = new URL(server.info!.workerUrl.replace("tcp:", "http:")).searchParams.get("token");
      const send = (msg: Record<string, unknown>) => worker.send([EMPTY, pack(msg)]);
      await send({ t: "READY", v: 1, token, workerId: "raw-1", partitions: ["raw"], slots: 1, prefetch: 0 });
      let tasks: { taskId: string }[] = [];
      for (let i = 0; i < 20 && tasks.length === 0; i++) {
        const frames = await worker.receive();
        const h = unpack(frames[1]) as { t: string; tasks?: { taskId: string }[] };
        if (h.t === "TASKS") tasks = h.tasks!;
      }
      assert.equal(tasks[0]?.taskId, t.taskId);
      await send({ t: "DONE", results: [{ taskId: t.taskId, status: "COMPLETED", output: -3 }] });
      await waitFor(
        async () => (await client.getTask(t.taskId)).status === "ERROR",
        10_000,
        "the task to fail",
      );
      const info = await client.getTask(t.taskId);
      assert.match(info.attempts[0]!.error ?? "", /output frame -3/);
      assert.equal((await client.getResult(t.expectedOutputIds[0])).status, "ABORTED");
    } finally {
      worker.close();
    }
  });
});

describe("a worker that goes quiet about a task", () => {
  let server: Server;
  let client: ZgridClient;

  before(async () => {
    ({ server } = await startServer({ heartbeatMs: 200, token: "test-token" }));
    client = await connect(server.info!.url, { timeoutMs: 15_000 });
  });
  after(async () => {
    await client.close();
    await server.shutdown();
  });

  it("has its task ended TIMEOUT by the server after maxDuration and a grace, and is told to drop it", async () => {
    const sessionId = await client.createSession({ partitionId: "quiet", maxRetries: 0, maxDuration: 300 });
    const [t] = await client.submitTasks(sessionId, [{ payload: Buffer.from("p") }]);
    const worker = new Dealer({ linger: 0, receiveTimeout: 250 });
    worker.connect(server.info!.workerUrl.split("?")[0]);
    try {
      const token = server.workerToken;
      const send = (msg: Record<string, unknown>) => worker.send([EMPTY, pack(msg)]);
      await send({
        t: "READY",
        v: 1,
        token,
        workerId: "quiet-1",
        partitions: ["quiet"],
        slots: 1,
        prefetch: 0,
      });
      let cancelled: string[] = [];
      // Alive (heartbeats) and running the task (STARTED), but it never reports it: bounded in time.
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline && cancelled.length === 0) {
        await send({ t: "HEARTBEAT" });
        const frames = await worker.receive().catch(() => null);
        if (!frames) continue;
        const h = unpack(frames[1]) as { t: string; tasks?: { taskId: string }[]; taskIds?: string[] };
        if (h.t === "TASKS") await send({ t: "STARTED", taskIds: h.tasks!.map((x) => x.taskId) });
        if (h.t === "CANCEL") cancelled = h.taskIds!;
      }
      assert.deepEqual(cancelled, [t.taskId], "the server told the worker to drop the task");
      const info = await client.getTask(t.taskId);
      assert.equal(info.status, "TIMEOUT");
      assert.match(info.error ?? "", /maxDuration 300 ms exceeded/);
      assert.ok(server.scheduler.workers.has("quiet-1"), "the worker itself is not declared dead");
    } finally {
      worker.close();
    }
  });
});
