/**
 * The wire protocol as a foreign client sees it (design §3): raw ZeroMQ sockets and hand-made msgpack,
 * malformed input, authentication on every daemon, many requests in flight, a REQ client.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pack, unpack } from "msgpackr";
import { Dealer, Request } from "zeromq";
import { connect, type ZgridClient } from "../src/client/client.js";
import { ZgridError } from "../src/protocol/errors.js";
import type { Server, ConnectionInfo } from "../src/daemons/server.js";
import { ROOT, startServer } from "./helpers.js";

const TOKEN = "test-token";
const EMPTY = Buffer.alloc(0);
const ECHO_CFG = join(ROOT, "test/fixtures/modules/with-echo.cfg");

interface ReplyHeader {
  v: number;
  id: number | null;
  msgType: string;
  msg: unknown;
  code?: string;
  user?: string;
  now?: number;
}

/** A raw DEALER: sends frames as given, reads one reply (bounded by receiveTimeout). */
class RawDealer {
  readonly socket = new Dealer({ linger: 0, receiveTimeout: 5000 });
  constructor(port: number) {
    this.socket.connect(`tcp://127.0.0.1:${port}`);
  }
  async roundTrip(frames: Buffer[]): Promise<{ header: ReplyHeader; frames: Buffer[] }> {
    await this.socket.send(frames);
    const reply = await this.socket.receive();
    assert.equal(reply[0].length, 0, "a reply starts with the empty delimiter");
    return { header: unpack(reply[1]) as ReplyHeader, frames: reply };
  }
  request(
    header: Record<string, unknown>,
    blobs: Buffer[] = [],
  ): Promise<{ header: ReplyHeader; frames: Buffer[] }> {
    return this.roundTrip([EMPTY, pack(header), ...blobs]);
  }
  /** ruok with a fresh id: the daemon still answers. */
  async assertAlive(id: number): Promise<void> {
    const { header } = await this.request({ v: 1, id, cmd: "ruok", token: TOKEN });
    assert.deepEqual(
      { id: header.id, msgType: header.msgType, msg: header.msg },
      { id, msgType: "NORMAL", msg: "imok" },
    );
  }
  close(): void {
    this.socket.close();
  }
}

function assertError(header: ReplyHeader, code: string, id: number | null): void {
  assert.equal(header.v, 1);
  assert.equal(header.msgType, "ERROR", `expected an ERROR reply, got ${JSON.stringify(header)}`);
  assert.equal(header.code, code, `expected ${code}, got ${JSON.stringify(header)}`);
  assert.equal(header.id, id);
  assert.equal(typeof header.msg, "string");
  assert.ok((header.msg as string).length > 10, "the error message is a sentence");
}

describe("malformed input on a raw DEALER", () => {
  let server: Server;
  let info: ConnectionInfo;
  let raw: RawDealer;
  let nextId = 1000;

  before(async () => {
    ({ server, info } = await startServer({ maxFrameBytes: 4096 }));
    raw = new RawDealer(info.port);
  });
  after(async () => {
    raw.close();
    await server.shutdown();
  });

  it("a garbage frame without the empty delimiter: BAD_REQUEST, id null", async () => {
    const { header } = await raw.roundTrip([Buffer.from("garbage without delimiter")]);
    assertError(header, "BAD_REQUEST", null);
    await raw.assertAlive(nextId++);
  });

  it("a non-empty delimiter before a good header: BAD_REQUEST", async () => {
    const { header } = await raw.roundTrip([
      Buffer.from("x"),
      pack({ v: 1, id: 5, cmd: "ruok", token: TOKEN }),
    ]);
    assertError(header, "BAD_REQUEST", null);
    await raw.assertAlive(nextId++);
  });

  it("a delimiter and no header: BAD_REQUEST", async () => {
    const { header } = await raw.roundTrip([EMPTY]);
    assertError(header, "BAD_REQUEST", null);
    await raw.assertAlive(nextId++);
  });

  for (const [what, bytes] of [
    ["text", Buffer.from("hello, this is not msgpack")],
    ["a truncated map", Buffer.from([0x82, 0xa1, 0x76])],
    ["the never-used byte 0xc1", Buffer.from([0xc1])],
  ] as const) {
    it(`a header that is not msgpack (${what}): BAD_REQUEST, id null`, async () => {
      const { header } = await raw.roundTrip([EMPTY, bytes]);
      assertError(header, "BAD_REQUEST", null);
      await raw.assertAlive(nextId++);
    });
  }

  for (const [what, value] of [
    ["an array", [1, "ruok"]],
    ["a string", "ruok"],
    ["a number", 42],
    ["nil", null],
  ] as const) {
    it(`a msgpack header that is ${what}, not a map: BAD_REQUEST, id null`, async () => {
      const { header } = await raw.roundTrip([EMPTY, pack(value)]);
      assertError(header, "BAD_REQUEST", null);
      assert.match(header.msg as string, /map/);
      await raw.assertAlive(nextId++);
    });
  }

  it("a header without cmd: BAD_REQUEST with the id echoed", async () => {
    const { header } = await raw.request({ v: 1, id: 7, token: TOKEN });
    assertError(header, "BAD_REQUEST", 7);
    assert.match(header.msg as string, /cmd/);
    await raw.assertAlive(nextId++);
  });

  it("an empty cmd: BAD_REQUEST with the id echoed", async () => {
    const { header } = await raw.request({ v: 1, id: 17, cmd: "", token: TOKEN });
    assertError(header, "BAD_REQUEST", 17);
    await raw.assertAlive(nextId++);
  });

  for (const v of [2, 0, "1", undefined]) {
    it(`a wrong protocol version v=${JSON.stringify(v)}: BAD_REQUEST with the id echoed`, async () => {
      const { header } = await raw.request({ v, id: 8, cmd: "ruok", token: TOKEN });
      assertError(header, "BAD_REQUEST", 8);
      assert.match(header.msg as string, /version/);
      await raw.assertAlive(nextId++);
    });
  }

  it("an id that is not an integer is answered with id null", async () => {
    const { header } = await raw.request({ v: 1, id: "abc", cmd: "nosuch", token: TOKEN });
    assertError(header, "UNKNOWN_COMMAND", null);
    await raw.assertAlive(nextId++);
  });

  it("an oversized blob: RESOURCE_EXHAUSTED with the id echoed", async () => {
    const { header } = await raw.request({ v: 1, id: 9, cmd: "ruok", token: TOKEN }, [Buffer.alloc(5000, 1)]);
    assertError(header, "RESOURCE_EXHAUSTED", 9);
    assert.match(header.msg as string, /4096/);
    await raw.assertAlive(nextId++);
  });

  it("an oversized header: RESOURCE_EXHAUSTED, id null (the header is not read)", async () => {
    const { header } = await raw.request({ v: 1, id: 10, cmd: "ruok", token: TOKEN, pad: "x".repeat(5000) });
    assertError(header, "RESOURCE_EXHAUSTED", null);
    await raw.assertAlive(nextId++);
  });

  it("a blob just under the limit is accepted", async () => {
    const { header } = await raw.request({ v: 1, id: 11, cmd: "ruok", token: TOKEN }, [
      Buffer.alloc(4096, 1),
    ]);
    assert.equal(header.msgType, "NORMAL");
    assert.equal(header.msg, "imok");
  });

  it("an unknown command: UNKNOWN_COMMAND with the id echoed", async () => {
    const { header } = await raw.request({ v: 1, id: 12, cmd: "no.such.command", token: TOKEN });
    assertError(header, "UNKNOWN_COMMAND", 12);
    assert.match(header.msg as string, /no\.such\.command/);
    await raw.assertAlive(nextId++);
  });

  for (const args of [[1, 2], "x", 5, Buffer.from("blob")]) {
    it(`args that are not a map (${typeof args === "object" ? args.constructor.name : typeof args}): INVALID_ARGUMENT`, async () => {
      const { header } = await raw.request({ v: 1, id: 13, cmd: "ruok", token: TOKEN, args });
      assertError(header, "INVALID_ARGUMENT", 13);
      await raw.assertAlive(nextId++);
    });
  }

  it("a command's own argument check: INVALID_ARGUMENT naming the argument", async () => {
    const { header } = await raw.request({ v: 1, id: 14, cmd: "sessions.get", token: TOKEN, args: {} });
    assertError(header, "INVALID_ARGUMENT", 14);
    assert.match(header.msg as string, /sessionId/);
  });

  it("NOT_FOUND for an id that does not exist", async () => {
    const { header } = await raw.request({
      v: 1,
      id: 15,
      cmd: "sessions.get",
      token: TOKEN,
      args: { sessionId: "no-such-session" },
    });
    assertError(header, "NOT_FOUND", 15);
  });

  it("an error that repeats an id with control characters escapes them: no terminal sequence, no new line", async () => {
    const sessionId = "s\u001b[2J\u001b[31mforged\nERROR everything\u0000\u007f\u0085";
    const { header } = await raw.request({
      v: 1,
      id: 16,
      cmd: "sessions.get",
      token: TOKEN,
      args: { sessionId },
    });
    assertError(header, "NOT_FOUND", 16);
    const msg = header.msg as string;
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(msg, /[\u0000-\u001f\u007f-\u009f]/, JSON.stringify(msg));
    assert.ok(msg.includes("s\\x1b[2J\\x1b[31mforged\\nERROR everything\\x00\\x7f\\x85"), msg);
  });

  it("a reply echoes the user and carries only v, id, msgType, msg, now, user", async () => {
    const before = Date.now();
    const { header, frames } = await raw.request({ v: 1, id: 16, cmd: "noop", token: TOKEN, user: "zoe" });
    const { now, ...rest } = header;
    assert.deepEqual(rest, { v: 1, id: 16, msgType: "NORMAL", msg: "noop", user: "zoe" });
    assert.ok(
      now !== undefined && now >= before && now <= Date.now(),
      `now ${now} is the server's clock at the reply`,
    );
    assert.equal(frames.length, 2, "no blobs");
  });

  it("a burst of garbage leaves the daemon serving", async () => {
    const junk = [
      [Buffer.from([0xff])],
      [EMPTY, Buffer.from([0xff, 0x00])],
      [EMPTY, pack({ v: 1 })],
      [EMPTY, pack({ v: 1, id: -1, cmd: 5 })],
      [EMPTY, pack({ v: 1, id: 2 ** 40, cmd: "x".repeat(1000), token: TOKEN })],
    ];
    for (const frames of junk) {
      const { header } = await raw.roundTrip(frames);
      assert.equal(header.msgType, "ERROR");
    }
    await raw.assertAlive(nextId++);
  });
});

describe("authentication on every daemon", () => {
  let server: Server;
  let info: ConnectionInfo;

  before(async () => {
    ({ server, info } = await startServer());
  });
  after(() => server.shutdown());

  const ports = (): Record<string, number> => ({
    DEFAULT: info.port,
    METRICS: Number(new URL(info.metricsUrl!).port),
    STATUS: Number(new URL(info.statusUrl!).port),
  });

  for (const daemon of ["DEFAULT", "METRICS", "STATUS"]) {
    it(`${daemon}: wrong and missing tokens get UNAUTHENTICATED, then the daemon still answers`, async () => {
      const raw = new RawDealer(ports()[daemon]);
      try {
        const wrong = await raw.request({ v: 1, id: 1, cmd: "ruok", token: "not-the-token" });
        assertError(wrong.header, "UNAUTHENTICATED", 1);
        const missing = await raw.request({ v: 1, id: 2, cmd: "ruok" });
        assertError(missing.header, "UNAUTHENTICATED", 2);
        assert.match(missing.header.msg as string, /token/);
        const nonString = await raw.request({ v: 1, id: 3, cmd: "ruok", token: 12345 });
        assertError(nonString.header, "UNAUTHENTICATED", 3);
        const prefix = await raw.request({ v: 1, id: 4, cmd: "ruok", token: TOKEN.slice(0, -1) });
        assertError(prefix.header, "UNAUTHENTICATED", 4);
        // An unauthenticated unknown command is refused for the token, not for the command.
        const unknown = await raw.request({ v: 1, id: 5, cmd: "no.such", token: "bad" });
        assertError(unknown.header, "UNAUTHENTICATED", 5);
        await raw.assertAlive(6);
      } finally {
        raw.close();
      }
    });
  }

  it("an unauthenticated shutdown does nothing", async () => {
    const raw = new RawDealer(info.port);
    try {
      const { header } = await raw.request({ v: 1, id: 1, cmd: "shutdown", token: "bad" });
      assertError(header, "UNAUTHENTICATED", 1);
      await new Promise((r) => setTimeout(r, 50));
      await raw.assertAlive(2);
    } finally {
      raw.close();
    }
  });

  it("the client library surfaces UNAUTHENTICATED as a ZgridError", async () => {
    const client = await connect(`tcp://127.0.0.1:${info.port}`, { token: "wrong", timeoutMs: 5000 });
    try {
      await assert.rejects(
        client.ruok(),
        (err: unknown) => err instanceof ZgridError && err.code === "UNAUTHENTICATED",
      );
    } finally {
      await client.close();
    }
  });
});

describe("--no-auth", () => {
  let server: Server;
  let info: ConnectionInfo;

  before(async () => {
    ({ server, info } = await startServer({ noAuth: true }));
  });
  after(() => server.shutdown());

  it("accepts tokenless requests on every daemon and says auth is off", async () => {
    assert.ok(!info.url.includes("token="), "no token in the connect URL");
    for (const url of [info.url, info.metricsUrl!, info.statusUrl!]) {
      const raw = new RawDealer(Number(new URL(url).port));
      try {
        const { header } = await raw.request({ v: 1, id: 1, cmd: "ruok" });
        assert.equal(header.msg, "imok");
        const withAnyToken = await raw.request({ v: 1, id: 2, cmd: "ruok", token: "whatever" });
        assert.equal(withAnyToken.header.msg, "imok");
        const config = await raw.request({ v: 1, id: 3, cmd: "getconfig" });
        assert.equal((config.header.msg as { authEnabled: boolean }).authEnabled, false);
      } finally {
        raw.close();
      }
    }
  });
});

describe("many requests in flight on one DEALER", () => {
  let server: Server;
  let info: ConnectionInfo;
  let client: ZgridClient;

  before(async () => {
    ({ server, info } = await startServer({ modules: ECHO_CFG }));
    client = await connect(info.url, { timeoutMs: 10_000 });
  });
  after(async () => {
    await client.close();
    await server.shutdown();
  });

  it("500 concurrent requests are each answered with their own reply", async () => {
    const n = 500;
    const replies = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        client.request<{ value: number }>("custom.echo", { value: i }, [Buffer.from(`blob-${i}`)]),
      ),
    );
    assert.equal(replies.length, n);
    replies.forEach((r, i) => {
      assert.equal(r.msg.value, i);
      assert.equal(r.blobs.length, 1);
      assert.equal(r.blobs[0].toString(), `blob-${i}`);
    });
  });

  it("500 concurrent noops, slow and fast mixed, all resolve", async () => {
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < 500; i++) {
      calls.push(i % 50 === 0 ? client.call("custom.sleep", { ms: 20 }) : client.noop());
    }
    const answers = await Promise.all(calls);
    answers.forEach((a, i) => assert.deepEqual(a, i % 50 === 0 ? { slept: 20 } : "noop"));
  });

  it("500 raw requests pipelined on one DEALER get every id back exactly once", async () => {
    const raw = new Dealer({ linger: 0, receiveTimeout: 5000 });
    raw.connect(info.url.replace(/\?.*/, ""));
    try {
      const n = 500;
      const sending = (async () => {
        for (let i = 0; i < n; i++) {
          await raw.send([
            EMPTY,
            pack({ v: 1, id: 10_000 + i, cmd: "custom.echo", token: TOKEN, args: { value: i } }),
          ]);
        }
      })();
      const seen = new Map<number, number>();
      for (let k = 0; k < n; k++) {
        const [, h] = await raw.receive();
        const header = unpack(h) as ReplyHeader;
        assert.equal(header.msgType, "NORMAL");
        seen.set(header.id!, (header.msg as { value: number }).value);
      }
      await sending;
      assert.equal(seen.size, n);
      for (const [id, value] of seen) assert.equal(id - 10_000, value);
    } finally {
      raw.close();
    }
  });
});

describe("a raw REQ client", () => {
  let server: Server;
  let info: ConnectionInfo;

  before(async () => {
    ({ server, info } = await startServer());
  });
  after(() => server.shutdown());

  it("gets imok for ruok, UNAUTHENTICATED for a bad token, and answers after it", async () => {
    const req = new Request({ linger: 0, receiveTimeout: 5000 });
    req.connect(`tcp://127.0.0.1:${info.port}`);
    try {
      const ask = async (header: Record<string, unknown>): Promise<ReplyHeader> => {
        await req.send(pack(header)); // REQ adds the empty delimiter itself
        const frames = await req.receive();
        assert.equal(frames.length, 1, "REQ strips the delimiter: one header frame");
        return unpack(frames[0]) as ReplyHeader;
      };
      const ok = await ask({ v: 1, id: 1, cmd: "ruok", token: TOKEN });
      assert.deepEqual(
        { id: ok.id, msgType: ok.msgType, msg: ok.msg },
        { id: 1, msgType: "NORMAL", msg: "imok" },
      );
      const bad = await ask({ v: 1, id: 2, cmd: "ruok", token: "bad" });
      assertError(bad, "UNAUTHENTICATED", 2);
      const unknown = await ask({ v: 1, id: 3, cmd: "nope", token: TOKEN });
      assertError(unknown, "UNKNOWN_COMMAND", 3);
      const config = await ask({ v: 1, id: 4, cmd: "getconfig", token: TOKEN });
      assert.equal((config.msg as { port: number }).port, info.port);
      const again = await ask({ v: 1, id: 5, cmd: "ruok", token: TOKEN });
      assert.equal(again.msg, "imok");
    } finally {
      req.close();
    }
  });

  it("a REQ client can send blobs after the header", async () => {
    const req = new Request({ linger: 0, receiveTimeout: 5000 });
    req.connect(`tcp://127.0.0.1:${info.port}`);
    try {
      const token = TOKEN;
      await req.send([pack({ v: 1, id: 1, cmd: "sessions.create", token })]);
      const session = unpack((await req.receive())[0]) as ReplyHeader;
      const sessionId = (session.msg as { sessionId: string }).sessionId;
      await req.send([
        pack({
          v: 1,
          id: 2,
          cmd: "results.create",
          token,
          args: { sessionId, results: [{ name: "a", data: 0 }] },
        }),
        Buffer.from("payload bytes"),
      ]);
      const created = unpack((await req.receive())[0]) as ReplyHeader;
      const [{ resultId, status }] = created.msg as { resultId: string; status: string }[];
      assert.equal(status, "COMPLETED");
      await req.send(pack({ v: 1, id: 3, cmd: "results.download", token, args: { resultId } }));
      const [header, blob] = await req.receive();
      assert.equal((unpack(header) as ReplyHeader).msgType, "NORMAL");
      assert.equal(blob.toString(), "payload bytes");
    } finally {
      req.close();
    }
  });
});

describe("a client that goes away with requests in flight", () => {
  /** Resolves when `p` does, rejects if it takes longer than `ms`. */
  async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        p,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  // The daemon's only peer leaves while its requests run, so their replies have nowhere to go. A ROUTER
  // with `mandatory` and no peer is never writable: a send that waited for it would block the daemon's
  // send queue for good, and with it every later reply and the shutdown.
  it("its replies are dropped and the server still shuts down promptly", async () => {
    const { server, info } = await startServer({ modules: ECHO_CFG });
    const leaving = await connect(info.url, { timeoutMs: 5000 });
    const pending = [leaving.call("custom.sleep", { ms: 100 }), leaving.call("custom.sleep", { ms: 150 })];
    for (const p of pending) p.catch(() => {});
    assert.equal(await leaving.ruok(), "imok");
    await leaving.close();
    await new Promise((r) => setTimeout(r, 300)); // both replies were sent to nobody
    const shutdown = server.shutdown();
    try {
      await within(shutdown, 3000, "the shutdown");
    } catch (err) {
      // Close the wedged sockets by hand so that this test process can still end, then fail.
      for (const d of (server as unknown as { daemons: { socket: { close(): void } }[] }).daemons)
        d.socket.close();
      await shutdown;
      throw err;
    }
  });

  it("the next client is served normally", async (t) => {
    const { server, info } = await startServer({ modules: ECHO_CFG });
    t.after(() => server.shutdown());
    for (let round = 0; round < 3; round++) {
      const raw = new Dealer({ linger: 0 });
      raw.connect(`tcp://127.0.0.1:${info.port}`);
      await raw.send([EMPTY, pack({ v: 1, id: round, cmd: "custom.sleep", token: TOKEN, args: { ms: 50 } })]);
      raw.close();
      await new Promise((r) => setTimeout(r, 120));
    }
    const next = await connect(info.url, { timeoutMs: 2000 });
    t.after(() => next.close());
    assert.equal(await next.ruok(), "imok");
    const many = await Promise.all(
      Array.from({ length: 20 }, (_, i) => next.call<{ value: number }>("custom.echo", { value: i })),
    );
    assert.deepEqual(
      many.map((m) => m.value),
      Array.from({ length: 20 }, (_, i) => i),
    );
  });
});
