/**
 * Bounded maps that drop their oldest entries read them through one live iterator (OldestFirst), not a
 * loop that starts over at every insertion and walks the slots deleted before it: the result cache
 * stalled the server for seconds that way once full (600,000 puts: 31 s before, under 1 s after).
 * These tests pin what the maps must still do: drop the oldest first, in order, across deletions,
 * re-insertions and rehashes.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RequestKeys } from "../src/commands/request-keys.js";
import { OldestFirst } from "../src/scheduler/oldest-first.js";
import { ResultCache } from "../src/scheduler/result-cache.js";

describe("OldestFirst", () => {
  it("gives entries oldest first, skips deleted ones, and sees re-set and new ones at the end", () => {
    const map = new Map<string, number>();
    const oldest = new OldestFirst(map);
    assert.equal(oldest.peek(), undefined);
    for (let i = 0; i < 5; i++) map.set(`k${i}`, i);
    assert.deepEqual(oldest.peek(), ["k0", 0]);
    assert.deepEqual(oldest.peek(), ["k0", 0], "peek leaves it");
    assert.deepEqual(oldest.shift(), ["k0", 0]);
    assert.equal(map.has("k0"), false);
    map.delete("k1"); // deleted elsewhere
    map.delete("k2");
    map.set("k2", 20); // set again: now the newest
    assert.deepEqual(oldest.shift(), ["k3", 3]);
    assert.deepEqual(oldest.peek(), ["k4", 4]);
    map.delete("k4"); // the held entry goes elsewhere: the next one comes
    assert.deepEqual(oldest.peek(), ["k2", 20]);
    assert.deepEqual(oldest.shift(), ["k2", 20]);
    assert.equal(oldest.shift(), undefined, "empty");
    map.set("late", 99); // after the iterator ended
    assert.deepEqual(oldest.shift(), ["late", 99]);
  });

  it("keeps the order through many rehashes (a bounded FIFO of 1,000 over 100,000 insertions)", () => {
    const map = new Map<number, number>();
    const oldest = new OldestFirst(map);
    for (let i = 0; i < 100_000; i++) {
      map.set(i, i);
      if (map.size > 1000) assert.equal(oldest.shift()![0], i - 1000);
    }
    assert.equal(map.size, 1000);
    assert.deepEqual([...map.keys()].slice(0, 2), [99_000, 99_001]);
  });
});

describe("ResultCache", () => {
  it("evicts the least recently used first, and counts each entry's overhead against its cap", () => {
    const data = Buffer.alloc(100);
    // 400 bytes of overhead an entry (ENTRY_BYTES): three entries fit in 1,500 bytes.
    const cache = new ResultCache(1500);
    cache.put("a", data);
    cache.put("b", data);
    cache.put("c", data);
    assert.equal(cache.size, 3);
    assert.ok(cache.get("a"), "a is now the most recently used");
    cache.put("d", data);
    assert.equal(cache.get("b"), undefined, "b was the least recently used");
    assert.ok(cache.get("a"));
    assert.ok(cache.get("c"));
    assert.ok(cache.get("d"));
    assert.equal(cache.bytes, 3 * 500);
    for (let i = 0; i < 50_000; i++) cache.put(`r${i}`, data);
    assert.equal(cache.size, 3);
    assert.ok(cache.get("r49999") && cache.get("r49998") && cache.get("r49997"));
    cache.put("big", Buffer.alloc(2000));
    assert.equal(cache.get("big"), undefined, "larger than the cap: not kept");
    assert.equal(cache.size, 3);
  });
});

describe("RequestKeys", () => {
  it("answers a key again, and forgets the oldest keys past its bounds", async () => {
    const keys = new RequestKeys<number>({ ttlMs: 60_000, maxKeys: 3, maxWeight: 1_000_000 });
    let runs = 0;
    const work = (n: number) => () => Promise.resolve((runs++, n));
    const mismatch = () => new Error("mismatch");
    assert.equal(await keys.run("a", 1, work(1), mismatch), 1);
    assert.equal(await keys.run("a", 1, work(9), mismatch), 1, "the first answer");
    await keys.run("b", 1, work(2), mismatch);
    await keys.run("c", 1, work(3), mismatch);
    await keys.run("d", 1, work(4), mismatch); // a goes: a call first makes room below 3 keys
    assert.equal(keys.size, 3);
    assert.equal(await keys.run("d", 1, work(8), mismatch), 4, "d is kept (b goes to make room)");
    assert.equal(await keys.run("c", 1, work(8), mismatch), 3, "c is kept");
    assert.equal(await keys.run("a", 1, work(5), mismatch), 5, "a was forgotten: done again");
    assert.equal(runs, 5);
    await assert.rejects(keys.run("d", 2, work(0), mismatch), /mismatch/);
  });
});
