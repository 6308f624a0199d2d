/**
 * The answers of keyed submissions are kept for ten minutes as runs of ids (IdList), not as three strings
 * a task: whatever the ids, a list gives back exactly what it was made of, and ids made one after the
 * other by the server take a few runs (issue 18 item 2: a million finished tasks within 150 MB).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { IdGenerator, IdList } from "../src/scheduler/ids.js";

/** The memory an IdList takes, roughly: its runs' numbers and prefixes, or its plain strings. */
function heldStrings(list: IdList): number {
  const l = list as unknown as { plain: string[] | null; prefixes: string[] };
  return l.plain ? l.plain.length : l.prefixes.length;
}

describe("IdList", () => {
  it("gives back the ids of a submission, kept as a few runs", () => {
    const gen = new IdGenerator();
    const tasks: string[] = [];
    const outputs: string[] = [];
    for (let i = 0; i < 100_000; i++) {
      outputs.push(gen.next("r"));
      tasks.push(gen.next("t"));
    }
    const t = IdList.of(tasks);
    const o = IdList.of(outputs);
    assert.deepEqual(t.toArray(), tasks);
    assert.deepEqual(o.toArray(), outputs);
    assert.equal(t.length, 100_000);
    assert.ok(heldStrings(t) < 10, `${heldStrings(t)} runs for 100,000 task ids`);
    assert.ok(heldStrings(o) < 10, `${heldStrings(o)} runs for 100,000 output ids`);
  });

  it("gives back any list as it was: repeats, steps, odd ids, the empty list", () => {
    const cases: string[][] = [
      [],
      ["p"],
      ["same", "same", "same"],
      ["rabc0000", "rabc0000", "rabc0000", "rabc0001"],
      ["rabc0005", "rabc0003", "rabc0001"],
      ["rabc000z", "rabc0010", "rabc0011", "rabc0013"],
      ["rabczzzz", "rabd0000"],
      ["X-12", "AB", "rabc0001", "rabc0002", "Rabc0003", "rabc0004", "é1234", "abcd"],
      ["rab", "rab", "rabc0001"],
    ];
    for (const ids of cases) assert.deepEqual(IdList.of(ids).toArray(), ids, JSON.stringify(ids));
  });

  it("keeps ids that make no runs as they are", () => {
    const ids = Array.from({ length: 1000 }, (_, i) => `client-${(i * 7919) % 1000}-x`);
    const list = IdList.of(ids);
    assert.deepEqual(list.toArray(), ids);
    assert.ok(heldStrings(list) <= 1000);
  });
});
