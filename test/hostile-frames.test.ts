/**
 * Frames from a stranger (no token) that once killed the server process: a header whose `v` cannot be
 * printed (a 64-bit BigInt, a deeply nested value). Every daemon answers BAD_REQUEST and keeps serving.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pack, unpack } from "msgpackr";
import { Dealer } from "zeromq";
import type { ConnectionInfo } from "../src/daemons/server.js";
import { removeDir, spawnServer, type Proc } from "./helpers.js";

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
