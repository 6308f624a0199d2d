/**
 * An idle server gives back the memory of its last burst (issue 18 item 2): `npm install` builds
 * native/idle-memory; collectGarbage() (src/gc.ts) runs V8's LowMemoryNotification through it, which
 * shrinks the young generation as well as the old, and releaseFreeMemory() calls glibc's malloc_trim, on
 * the main thread and on the store's writer thread. Where the C library is not glibc (no malloc_trim),
 * these tests skip saying so.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { releaseFreeMemory } from "../src/gc.js";
import { ROOT } from "./helpers.js";

const glibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header
  .glibcVersionRuntime;
const SKIP =
  process.platform === "linux" && glibc ? false : "not Linux with glibc: native/idle-memory is not built";
const GC = join(ROOT, "dist/src/gc.js");

/**
 * In a process of its own: 2,000 buffers of 64 KiB, each followed by a small one that stays, are freed.
 * free() cannot give their pages back (the small ones pin every gap); malloc_trim can.
 */
const FRAGMENTED = `
import { readFileSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { releaseFreeMemory } from ${JSON.stringify(GC)};
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc");
const rssMb = () => Number(/VmRSS:\\s+(\\d+)/.exec(readFileSync("/proc/self/status", "utf8"))[1]) / 1024;
let big = [];
const pins = [];
for (let i = 0; i < 2000; i++) {
  big.push(Buffer.allocUnsafeSlow(64 * 1024).fill(1));
  pins.push(Buffer.allocUnsafeSlow(256).fill(2));
}
const full = rssMb();
big = null;
gc();
gc();
const freed = rssMb();
const released = releaseFreeMemory();
const trimmed = rssMb();
console.log(JSON.stringify({ full, freed, released, trimmed, pins: pins.length }));
`;

/**
 * In a process of its own: 1,000,000 small objects kept for a while make the young generation grow;
 * once they are dropped, collectGarbage() must give its pages back, not only empty them.
 */
const YOUNG = `
import { getHeapSpaceStatistics } from "node:v8";
import { collectGarbage } from ${JSON.stringify(GC)};
const newSpaceMb = () => getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size / 2 ** 20;
let kept = [];
for (let round = 0; round < 5; round++) for (let i = 0; i < 200_000; i++) kept.push({ i, s: "x" + i });
const grown = newSpaceMb();
kept = null;
const collected = collectGarbage();
console.log(JSON.stringify({ grown, collected, after: newSpaceMb() }));
`;

/**
 * In a process of its own: 300,000 records stay (queued tasks), 1,500,000 more are built and dropped (a
 * burst's garbage, old enough to have grown the old generation). shrinkHeap() must give the grown pages
 * back while the records stay; it works through V8's incremental marking, so the heap is polled, 10 s
 * at most.
 */
const BURST = `
import { getHeapStatistics } from "node:v8";
import { setTimeout as sleep } from "node:timers/promises";
import { shrinkHeap } from ${JSON.stringify(GC)};
const heapMb = () => getHeapStatistics().total_heap_size / 2 ** 20;
const kept = [];
for (let i = 0; i < 300_000; i++) kept.push({ i, s: "k" + i });
let garbage = [];
for (let i = 0; i < 1_500_000; i++) garbage.push({ i, s: "g" + i });
garbage = null;
const grown = heapMb();
const shrunk = shrinkHeap();
let after = heapMb();
for (let i = 0; i < 200 && after > grown / 2; i++) {
  await sleep(50);
  after = heapMb();
}
console.log(JSON.stringify({ grown, shrunk, after, kept: kept.length }));
`;

/** Runs `script` (an ES module) in a node process of its own; what it printed, as JSON. */
function runAlone<T>(script: string): T {
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
}

describe("native/idle-memory", { skip: SKIP }, () => {
  it("is built by npm install and answers on this thread", () => {
    const r = releaseFreeMemory();
    assert.equal(typeof r, "boolean", "null: native/idle-memory/build/Release/idle_memory.node is missing");
  });

  it("answers on a worker thread too (the SQLite writer calls it)", async () => {
    const w = new Worker(
      `import(${JSON.stringify(GC)}).then((m) => require("node:worker_threads").parentPort.postMessage(m.releaseFreeMemory()));`,
      { eval: true },
    );
    const answer = await new Promise((resolve, reject) => {
      w.once("message", resolve);
      w.once("error", reject);
    });
    await w.terminate();
    assert.equal(typeof answer, "boolean");
  });

  it("an idle collection shrinks the young generation a burst made grow", () => {
    const m = runAlone<{ grown: number; collected: boolean; after: number }>(YOUNG);
    assert.ok(m.grown >= 8, `the young generation did not grow (${m.grown} MiB): nothing to show`);
    assert.equal(m.collected, true);
    assert.ok(m.after <= m.grown / 4, `still ${m.after} MiB of ${m.grown} after the collection`);
  });

  it("shrinks the heap a burst grew while its live records stay (memoryPressure)", () => {
    const m = runAlone<{ grown: number; shrunk: boolean; after: number; kept: number }>(BURST);
    assert.ok(m.grown >= 100, `the heap did not grow (${m.grown} MiB): nothing to show`);
    assert.equal(m.shrunk, true, "the addon has no memoryPressure: rebuild it (npm install)");
    assert.equal(m.kept, 300_000);
    assert.ok(
      m.after <= m.grown / 2,
      `the heap is still ${Math.round(m.after)} of ${Math.round(m.grown)} MiB`,
    );
  });

  it("gives back freed pages that free() kept", () => {
    const m = runAlone<{ full: number; freed: number; released: boolean; trimmed: number }>(FRAGMENTED);
    // 125 MiB were allocated and freed: free() kept them (the gaps are pinned), malloc_trim did not.
    assert.ok(m.full - m.freed < 60, `free() alone gave back ${m.full - m.freed} MiB: nothing to show`);
    assert.equal(m.released, true);
    assert.ok(
      m.freed - m.trimmed > 80,
      `malloc_trim gave back only ${m.freed - m.trimmed} MiB: ${JSON.stringify(m)}`,
    );
  });
});
