/**
 * What holds memory holds what it counts (issue 18 item 2: a million finished tasks within 150 MB of an
 * empty server): the result cache does not keep a whole worker message for a one-byte output, and the
 * encoder does not keep the buffer of its largest message for the life of the process.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setImmediate as nextTurn } from "node:timers/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { decode, encode } from "../src/protocol/codec.js";
import { ResultCache } from "../src/scheduler/result-cache.js";

describe("ResultCache keeps what it counts", () => {
  it("copies an output that is a view into a much larger message", () => {
    const cache = new ResultCache(1 << 20);
    const message = Buffer.alloc(256 * 1024, 7);
    cache.put("small", message.subarray(100, 110));
    const kept = cache.get("small")!;
    assert.deepEqual([...kept], new Array(10).fill(7));
    assert.ok(kept.buffer.byteLength < 64 * 1024, "not the whole message's memory");
    const whole = Buffer.alloc(100_000);
    cache.put("whole", whole);
    assert.equal(cache.get("whole")!.buffer, whole.buffer, "a buffer of its own is kept as it is");
  });
});

describe("encode after a large message", () => {
  it("goes back to a small buffer, and every message still decodes", () => {
    const big = {
      rows: Array.from({ length: 100_000 }, (_, i) => ({ id: `t${i}`, doc: Buffer.alloc(40, i) })),
    };
    const a = encode(big);
    assert.ok(a.length > 4 << 20);
    const small = encode({ hello: "world" });
    assert.ok(small.buffer.byteLength <= 1 << 20, `a small message sits in ${small.buffer.byteLength} bytes`);
    assert.deepEqual(decode(small), { hello: "world" });
    const back = decode(a) as typeof big;
    assert.equal(back.rows.length, 100_000);
    assert.equal(back.rows[99_999].id, "t99999");
    for (let i = 0; i < 1000; i++) assert.deepEqual(decode(encode({ i })), { i });
  });
});

/** Decodes a message of 100,000 rows in memory of its own; what is left to reach that memory. */
function readLargeMessage(): WeakRef<ArrayBufferLike> {
  const rows = Array.from({ length: 100_000 }, (_, i) => ({ id: `t${i}`, status: "SUBMITTED" }));
  const message = Buffer.from(encode({ rows }));
  assert.ok(message.length > 2 << 20 && message.byteOffset === 0);
  const back = decode(message) as { rows: { id: string }[] };
  assert.equal(back.rows[99_999].id, "t99999");
  return new WeakRef(message.buffer);
}

describe("decode of a large message", () => {
  it("does not keep the message once read (the SQLite writer held its last commit, 25 MB)", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const read = readLargeMessage();
    // A WeakRef holds its target until the turn ends; bounded: a few collections.
    for (let i = 0; i < 5 && read.deref() !== undefined; i++) {
      await nextTurn();
      gc();
    }
    assert.equal(read.deref(), undefined, "the decoder still holds the message it read last");
    assert.deepEqual(decode(encode({ after: true })), { after: true });
  });
});
