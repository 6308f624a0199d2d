/**
 * The client core (design §2, §7): URL and token resolution, ZGRID_URL, timeouts, error codes, close().
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect } from "../src/client/client.js";
import { parseServerUrl, withPort } from "../src/client/url.js";
import type { ConnectionInfo, Server } from "../src/daemons/server.js";
import { ErrorCode, ZgridError } from "../src/protocol/errors.js";
import { freePort, removeDir, startServer, tempDir } from "./helpers.js";

function isCode(code: string): (err: unknown) => boolean {
  return (err: unknown) => err instanceof ZgridError && err.code === code;
}

/** Runs `fn` with environment variables set, then puts them back as they were. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(vars)) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** A CurveZMQ public key in Z85, with a "+" and a "%" in it. */
const KEY = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf+";

describe("parseServerUrl", () => {
  let dir: string;
  let tokens: string;

  before(() => {
    dir = tempDir();
    tokens = join(dir, "tokens.txt");
    writeFileSync(
      tokens,
      [
        "127.0.0.1:5555,first-token",
        "otherhost:5555,other-token",
        "127.0.0.1:6000,six-token",
        "  127.0.0.1:5555,latest-token  ",
        "garbage line without comma",
        "",
      ].join("\n"),
    );
  });
  after(() => removeDir(dir));

  it("takes the token from the URL first", () => {
    const a = parseServerUrl("tcp://127.0.0.1:5555?token=url-token", tokens);
    assert.deepEqual(a, {
      endpoint: "tcp://127.0.0.1:5555",
      endpoints: ["tcp://127.0.0.1:5555"],
      host: "127.0.0.1",
      port: 5555,
      token: "url-token",
    });
  });

  it("without a token in the URL, reads the tokens file (host:port,token, the last match wins)", () => {
    assert.equal(parseServerUrl("tcp://127.0.0.1:5555", tokens).token, "latest-token");
    assert.equal(parseServerUrl("tcp://127.0.0.1:6000/", tokens).token, "six-token");
    assert.equal(parseServerUrl("tcp://otherhost:5555", tokens).token, "other-token");
    assert.equal(parseServerUrl("tcp://127.0.0.1:7000", tokens).token, undefined, "no line for this address");
    assert.equal(parseServerUrl("tcp://127.0.0.1:5555", join(dir, "absent.txt")).token, undefined);
  });

  it("reads serverKey, trims spaces, accepts IPv6 hosts", () => {
    const a = parseServerUrl(
      `  tcp://example.org:1234?token=t&serverKey=${encodeURIComponent(KEY)}  `,
      tokens,
    );
    assert.deepEqual(a, {
      endpoint: "tcp://example.org:1234",
      endpoints: ["tcp://example.org:1234"],
      host: "example.org",
      port: 1234,
      token: "t",
      serverKey: KEY,
    });
    // Pasted unencoded, its "+" became a space: read back as "+". Not a Z85 key: a usage error.
    assert.equal(parseServerUrl(`tcp://h:1?serverKey=${KEY.replaceAll("%", "%25")}`, tokens).serverKey, KEY);
    assert.throws(
      () => parseServerUrl("tcp://h:1?serverKey=KEY", tokens),
      /serverKey .* is not a CurveZMQ public key/,
    );
    assert.equal(parseServerUrl("tcp://[::1]:5555?token=x", tokens).endpoint, "tcp://[::1]:5555");
  });

  it("rejects what is not a zgrid URL with INVALID_ARGUMENT", () => {
    for (const bad of [
      "",
      "127.0.0.1:5555",
      "http://127.0.0.1:5555",
      "tcp://127.0.0.1",
      "tcp://h:0",
      "tcp://h:99999",
      "tcp://h:12ab",
    ]) {
      assert.throws(() => parseServerUrl(bad, tokens), isCode(ErrorCode.INVALID_ARGUMENT), bad);
    }
  });

  it("withPort keeps host, token and server key", () => {
    const a = parseServerUrl(`tcp://h:1?token=a b&serverKey=${encodeURIComponent(KEY)}`, tokens);
    const url = withPort(a, 2);
    assert.deepEqual(parseServerUrl(url, tokens), {
      ...a,
      endpoint: "tcp://h:2",
      endpoints: ["tcp://h:2"],
      port: 2,
    });
  });

  it("takes several servers (an owner and its standbys), each checked; the token goes with all", () => {
    const a = parseServerUrl("tcp://a:5555,b:6000,[::1]:7000?token=t", tokens);
    assert.deepEqual(a.endpoints, ["tcp://a:5555", "tcp://b:6000", "tcp://[::1]:7000"]);
    assert.equal(a.endpoint, "tcp://a:5555");
    assert.equal(a.token, "t");
    assert.throws(() => parseServerUrl("tcp://a:5555,b?token=t", tokens), isCode(ErrorCode.INVALID_ARGUMENT));
    assert.throws(() => parseServerUrl("tcp://a:5555,b:0?token=t", tokens), /port 0 .* out of range/);
  });
});

describe("connect()", () => {
  let server: Server;
  let info: ConnectionInfo;

  before(async () => {
    ({ server, info } = await startServer());
  });
  after(() => server.shutdown());

  it("uses the token of the URL; the token option overrides it", async (t) => {
    const c = await connect(info.url, { timeoutMs: 5000 });
    const overridden = await connect(info.url, { token: "wrong", timeoutMs: 5000 });
    t.after(() => Promise.all([c.close(), overridden.close()]));
    assert.equal(await c.ruok(), "imok");
    await assert.rejects(overridden.ruok(), isCode("UNAUTHENTICATED"));
  });

  it("reads ~/.zgrid/tokens.txt when the URL has no token", async () => {
    const home = tempDir();
    try {
      mkdirSync(join(home, ".zgrid"));
      writeFileSync(join(home, ".zgrid", "tokens.txt"), `127.0.0.1:${info.port},test-token\n`);
      await withEnv({ HOME: home }, async () => {
        const c = await connect(`tcp://127.0.0.1:${info.port}`, { timeoutMs: 5000 });
        try {
          assert.equal(c.address.token, "test-token");
          assert.equal(await c.ruok(), "imok");
        } finally {
          await c.close();
        }
      });
      // Without the file's line: no token, refused.
      await withEnv({ HOME: tempDir() }, async () => {
        const c = await connect(`tcp://127.0.0.1:${info.port}`, { timeoutMs: 5000 });
        try {
          assert.equal(c.address.token, undefined);
          await assert.rejects(c.ruok(), isCode("UNAUTHENTICATED"));
        } finally {
          await c.close();
        }
      });
    } finally {
      removeDir(home);
    }
  });

  it("reads ZGRID_URL when given no URL, and says so when there is none", async () => {
    await withEnv({ ZGRID_URL: info.url }, async () => {
      const c = await connect(undefined, { timeoutMs: 5000 });
      try {
        assert.equal(c.address.port, info.port);
        assert.equal(await c.ruok(), "imok");
      } finally {
        await c.close();
      }
    });
    await withEnv({ ZGRID_URL: undefined }, async () => {
      await assert.rejects(connect(), (err: unknown) => {
        assert.ok(err instanceof ZgridError);
        assert.equal(err.code, "INVALID_ARGUMENT");
        assert.match(err.message, /ZGRID_URL/);
        return true;
      });
    });
  });

  it("reports the user it is given, else the OS user", async (t) => {
    const named = await connect(info.url, { user: "named-user", timeoutMs: 5000 });
    const plain = await connect(info.url, { timeoutMs: 5000 });
    t.after(() => Promise.all([named.close(), plain.close()]));
    assert.match(await named.hello(), /as user named-user$/);
    const expected = process.env.USER ?? process.env.USERNAME;
    if (expected) assert.match(await plain.hello(), new RegExp(`as user ${expected}$`));
    else assert.match(await plain.hello(), /as user \S+$/);
  });

  it("an ERROR reply rejects with a ZgridError carrying the protocol code and the server's sentence", async (t) => {
    const c = await connect(info.url, { timeoutMs: 5000 });
    t.after(() => c.close());
    await assert.rejects(c.call("no.such.command"), (err: unknown) => {
      assert.ok(err instanceof ZgridError);
      assert.ok(err instanceof Error);
      assert.equal(err.name, "ZgridError");
      assert.equal(err.code, "UNKNOWN_COMMAND");
      assert.match(err.message, /no\.such\.command/);
      return true;
    });
    await assert.rejects(c.getSession("nope"), isCode("NOT_FOUND"));
    await assert.rejects(c.call("sessions.get", { sessionId: 5 }), isCode("INVALID_ARGUMENT"));
    assert.equal(await c.ruok(), "imok", "the connection is still usable");
  });
});

describe("timeouts and close()", () => {
  it("a request to a port nobody listens on rejects with TIMEOUT after the per-request timeout", async (t) => {
    const port = await freePort();
    const c = await connect(`tcp://127.0.0.1:${port}?token=x`, { timeoutMs: 300 });
    t.after(() => c.close());
    const started = Date.now();
    await assert.rejects(c.ruok(), (err: unknown) => {
      assert.ok(err instanceof ZgridError);
      assert.equal(err.code, "TIMEOUT");
      assert.match(err.message, new RegExp(`ruok.*127\\.0\\.0\\.1:${port}.*300 ms`));
      return true;
    });
    const elapsed = Date.now() - started;
    // Not before the 300 ms; the upper bound is generous for a loaded machine.
    assert.ok(elapsed >= 280 && elapsed < 5000, `timed out after ${elapsed} ms`);
  });

  it("a per-request timeout overrides the connection's", async (t) => {
    const port = await freePort();
    const c = await connect(`tcp://127.0.0.1:${port}?token=x`, { timeoutMs: 60_000 });
    t.after(() => c.close());
    const started = Date.now();
    await assert.rejects(c.call("ruok", undefined, undefined, { timeoutMs: 100 }), (err: unknown) => {
      assert.ok(err instanceof ZgridError);
      assert.equal(err.code, "TIMEOUT");
      assert.match(err.message, /ruok.* 100 ms/);
      return true;
    });
    // About 100 ms: the bound is generous for a loaded machine, and far below the connection's 60 s.
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 10_000, `timed out after ${elapsed} ms`);
  });

  it("close() rejects pending requests with UNAVAILABLE; later requests reject too", async () => {
    const port = await freePort();
    const c = await connect(`tcp://127.0.0.1:${port}?token=x`, { timeoutMs: 60_000 });
    const pending = [c.ruok(), c.noop(), c.call("getconfig")];
    const settled = Promise.allSettled(pending);
    const started = Date.now();
    await c.close();
    const results = await settled;
    // Expected at once: the bound is generous for a loaded machine, and far below the 60 s timeout.
    assert.ok(Date.now() - started < 10_000, "close() does not wait for the timeout");
    for (const r of results) {
      assert.equal(r.status, "rejected");
      assert.ok(isCode("UNAVAILABLE")((r as PromiseRejectedResult).reason));
    }
    await assert.rejects(c.ruok(), isCode("UNAVAILABLE"));
    await c.close(); // twice is harmless
  });

  it("close() of a live connection with a request in flight rejects it and returns", async (t) => {
    const { server, info } = await startServer();
    t.after(() => server.shutdown());
    const c = await connect(info.url, { timeoutMs: 10_000 });
    const sessionId = await c.createSession();
    const [r] = await c.createResults(sessionId, [{ name: "never" }]);
    // The server would hold it 60 s (and then answer, not reject): close() ends it first.
    const waiting = c.waitResults([r.resultId], { timeoutMs: 60_000 });
    assert.equal(await c.ruok(), "imok");
    const started = Date.now();
    // Handled before close() rejects it, as any caller must (else it is an unhandled rejection).
    const rejected = assert.rejects(waiting, isCode("UNAVAILABLE"));
    await c.close();
    await rejected;
    // Expected at once: the bound is generous for a loaded machine, and far below the server's 60 s.
    assert.ok(Date.now() - started < 10_000, "rejected by close(), not left to the server");
    // The result comes, so the server ends its wait now (its answer has no one to go to) and can stop.
    const other = await connect(info.url, { timeoutMs: 10_000 });
    t.after(() => other.close());
    await other.uploadResult(r.resultId, Buffer.from("at last"));
  });
});
