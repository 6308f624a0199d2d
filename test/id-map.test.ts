/**
 * The tables of tasks and results by id (issue 12, a compact task table): an id this process made names
 * its record's slot, so a lookup hashes nothing; an id made elsewhere (a record of an earlier start) is
 * found all the same, and the table answers as the Map it replaces did.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { IdMap } from "../src/scheduler/id-map.js";
import { counterOf, IdGenerator } from "../src/scheduler/ids.js";

interface Rec {
  id: string;
  n: number;
}

/** The pages a map holds (a private member): they follow what it holds, not what it held. */
const pagesOf = (m: IdMap<Rec>): number => pagesIn(m).size;
/** Pages that keep an array of slots. */
const densePagesOf = (m: IdMap<Rec>): number =>
  [...pagesIn(m).values()].filter((p) => p.slots !== null).length;
const pagesIn = (m: IdMap<Rec>) =>
  (m as unknown as { pages: Map<number, { slots: unknown[] | null }> }).pages;

describe("IdMap", () => {
  it("finds, replaces and removes records by their ids, this process's and others'", () => {
    const gen = new IdGenerator();
    const m = new IdMap<Rec>(gen, "t");
    const own = Array.from({ length: 10_000 }, (_, n) => ({ id: gen.next("t"), n }));
    const foreign = ["t0123456789a0", "tzzzzzzzzzz1", "r" + gen.head("t").slice(1) + "5", "x"].map(
      (id, n) => ({
        id,
        n: -n - 1,
      }),
    );
    for (const r of [...own, ...foreign]) m.set(r.id, r);
    assert.equal(m.size, own.length + foreign.length);
    for (const r of [...own, ...foreign]) assert.equal(m.get(r.id), r, r.id);
    // Not ids of ours though they begin like them: a leading zero, an upper-case digit, too long.
    const head = gen.head("t");
    for (const id of [`${head}05`, `${head}A`, `${head}${"1".repeat(11)}`, head, `${head}-1`]) {
      assert.equal(m.get(id), undefined, id);
      assert.equal(m.has(id), false, id);
      assert.equal(m.delete(id), false, id);
    }
    // A result's id names no task, though its counter may be a task's.
    assert.equal(m.get(gen.next("r")), undefined);

    const again = { id: own[7].id, n: 70 };
    m.set(again.id, again);
    assert.equal(m.size, own.length + foreign.length, "a record replaced is counted once");
    assert.equal(m.get(own[7].id), again);

    assert.equal(m.delete(own[8].id), true);
    assert.equal(m.delete(own[8].id), false, "removed once");
    assert.equal(m.delete(foreign[0].id), true);
    assert.equal(m.has(own[8].id), false);
    assert.equal(m.get(foreign[0].id), undefined);
    assert.equal(m.size, own.length + foreign.length - 2);
  });

  it("lists the records of other ids first, then this process's in the order they were made", () => {
    const gen = new IdGenerator();
    const m = new IdMap<Rec>(gen, "r");
    const own = Array.from({ length: 9_000 }, (_, n) => ({ id: gen.next("r"), n }));
    const foreign = [{ id: "r-from-before", n: -1 }];
    // Set out of order: the listing is in id order all the same.
    for (let i = own.length - 1; i >= 0; i--) m.set(own[i].id, own[i]);
    m.set(foreign[0].id, foreign[0]);
    const ids = [...foreign, ...own].map((r) => r.id);
    assert.deepEqual([...m.keys()], ids);
    assert.deepEqual(
      [...m].map(([id]) => id),
      ids,
    );
    assert.deepEqual(
      [...m.values()].map((r) => r.id),
      ids,
    );

    // Removed while a listing is under way: not visited after; the listing goes on.
    const seen: number[] = [];
    for (const r of m.values()) {
      seen.push(r.n);
      if (r.n === 10) for (let k = 11; k < 5_000; k++) m.delete(own[k].id);
    }
    assert.deepEqual(seen, [-1, ...own.slice(0, 11).map((r) => r.n), ...own.slice(5_000).map((r) => r.n)]);
  });

  it("holds memory for what it holds: a page goes once its last record left, a page of a few keeps no slots", () => {
    const gen = new IdGenerator();
    const m = new IdMap<Rec>(gen, "t");
    const recs = Array.from({ length: 20_000 }, (_, n) => ({ id: gen.next("t"), n }));
    for (const r of recs) m.set(r.id, r);
    assert.equal(pagesOf(m), 5, "4,096 records a page");
    assert.equal(densePagesOf(m), 5);
    // Of each page but the newest, one record in 100 stays (a long task, a shared payload): those pages
    // keep no array of 4,096 slots; every record is still found, and listed in order.
    const stay = recs.filter((r) => r.n % 100 === 0 || r.n >= 16_384);
    const listing = m.values();
    const seen = [listing.next().value!.n];
    for (const r of recs) if (r.n % 100 !== 0 && r.n < 16_384) m.delete(r.id);
    for (const r of listing) seen.push(r.n);
    assert.deepEqual(seen, [0, ...stay.slice(1).map((r) => r.n)], "a listing under way goes on in order");
    assert.equal(m.size, stay.length);
    assert.equal(pagesOf(m), 5);
    assert.equal(densePagesOf(m), 1, "only the newest page keeps its slots");
    for (const r of recs) assert.equal(m.get(r.id), stay.includes(r) ? r : undefined, r.id);
    // A record that comes back to a page of older ids (read back from the store) does not make it dense.
    m.set(recs[1].id, recs[1]);
    assert.equal(m.get(recs[1].id), recs[1]);
    assert.equal(densePagesOf(m), 1);
    // All leave: no page stays.
    for (const r of recs) m.delete(r.id);
    assert.equal(m.size, 0);
    assert.equal(pagesOf(m), 0);
    assert.deepEqual([...m.values()], []);
    // A page of older ids, first made by a record read back, and a newer one made after it.
    const old = { id: recs[5].id, n: 5 };
    m.set(old.id, old);
    assert.equal(densePagesOf(m), 0);
    const next = { id: gen.next("t"), n: 20_000 };
    m.set(next.id, next);
    assert.deepEqual(
      [...m.values()].map((r) => r.n),
      [5, 20_000],
    );
  });
});

describe("IdMap pages", () => {
  it("a few records keep no slots; a page that fills keeps slots; a listing goes on through both forms", () => {
    const gen = new IdGenerator();
    const m = new IdMap<Rec>(gen, "t");
    const recs = Array.from({ length: 9_000 }, (_, n) => ({ id: gen.next("t"), n }));
    // A worker's few tasks in hand, from pages far apart: no array of 4,096 slots for them.
    for (const n of [0, 5_000, 8_999]) m.set(recs[n].id, recs[n]);
    assert.equal(pagesOf(m), 3);
    assert.equal(densePagesOf(m), 0);
    // The first page fills while a listing waits in it: the listing goes on, in order, through it.
    const listing = m.values();
    assert.equal(listing.next().value!.n, 0);
    for (let n = 1; n < 4_096; n++) m.set(recs[n].id, recs[n]);
    assert.equal(densePagesOf(m), 1, "a page that fills keeps slots");
    const rest = [...listing].map((r) => r.n);
    assert.deepEqual(rest, [...Array.from({ length: 4_095 }, (_, i) => i + 1), 5_000, 8_999]);
    for (const n of [0, 1, 4_095, 5_000, 8_999]) assert.equal(m.get(recs[n].id), recs[n]);
  });
});

describe("IdGenerator", () => {
  it("counts each kind apart, and reads an id's counter back", () => {
    const gen = new IdGenerator();
    const t = [gen.next("t"), gen.next("t")];
    const r = gen.next("r");
    const head = gen.head("t");
    assert.ok(t[0].startsWith(head) && r.startsWith(gen.head("r")));
    assert.deepEqual(
      t.map((id) => counterOf(head, id)),
      [0, 1],
    );
    assert.equal(counterOf(gen.head("r"), r), 0);
    assert.equal(counterOf(head, r), -1);
    for (let i = 2; i < 100_000; i++) gen.next("t");
    assert.equal(counterOf(head, gen.next("t")), 100_000);
    assert.equal(counterOf(head, new IdGenerator().next("t")), -1, "another process start's id");
  });
});
