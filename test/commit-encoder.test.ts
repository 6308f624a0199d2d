import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decode, encode } from "../src/protocol/codec.js";
import type { Attempt, Result, Task } from "../src/scheduler/model.js";
import { DEFAULT_TASK_OPTIONS } from "../src/scheduler/model.js";
import { CommitEncoder, type CommitRows } from "../src/store/commit-encoder.js";
import { Op } from "../src/store/write-ops.js";

/** A message's operations, each document decoded, bytes as Buffers: comparable with deepEqual. */
function readBack(message: Uint8Array, documentAt: (op: unknown[]) => number): unknown[][] {
  return (decode(message) as unknown[][]).map((op) =>
    op.map((v, j) =>
      j === documentAt(op) ? decode(v as Uint8Array) : v instanceof Uint8Array ? Buffer.from(v) : v,
    ),
  );
}

/** Where an operation of these tests has its document (-1: none). */
function documentIndex(op: unknown[]): number {
  switch (op[0]) {
    case Op.Session:
    case Op.Options:
      return 2;
    case Op.Result:
      return 4;
    case Op.Task:
      return 5;
    default:
      return -1;
  }
}

/** What the general encoder makes of a value, read back. */
const general = (v: unknown): unknown => decode(encode(v));

/** A result's stored document: every field but its data, and `stored` once its data is stored. */
function resultDoc(r: Result, stored: boolean): Record<string, unknown> {
  const { data: _data, stored: _stored, ...doc } = r;
  return stored ? { ...doc, stored: true } : doc;
}

/** A task's stored document: every field but its options (their row's id instead) and remainingDeps. */
function taskDoc(t: Task, o: number): Record<string, unknown> {
  const { options: _options, remainingDeps: _deps, ...doc } = t;
  return { ...doc, o };
}

/**
 * What the message of `rows` must read back as: its operations in order, each document as the general
 * encoder writes it, bytes as Buffers, undefined as null.
 */
function expected(rows: CommitRows): unknown[][] {
  const value = (v: unknown, document: boolean): unknown =>
    document ? general(v) : v instanceof Uint8Array ? Buffer.from(v) : (v ?? null);
  const list = (op: unknown[]): unknown[] => op.map((v, j) => value(v, j === documentIndex(op)));
  const ops = rows.before.map(list);
  [...rows.results].forEach((r, i) =>
    ops.push(
      list([Op.Result, r.id, r.sessionId, r.status, resultDoc(r, rows.resultStored[i]), rows.resultData[i]]),
    ),
  );
  [...rows.tasks].forEach((t, i) =>
    ops.push(list([Op.Task, t.id, t.sessionId, t.seq, t.status, taskDoc(t, rows.taskOptions[i])])),
  );
  return ops.concat(rows.after.map(list));
}

const NUMBERS = [
  0,
  1,
  127,
  128,
  255,
  256,
  65_535,
  65_536,
  2 ** 32 - 1,
  2 ** 32,
  Date.now(),
  2 ** 53 - 1,
  -1,
  -32,
  -33,
  -(2 ** 31),
  -(2 ** 31) - 1,
  1.5,
  -0.25,
  1e300,
  Infinity,
  -Infinity,
];
const STRINGS = [
  "",
  "a",
  "x".repeat(31),
  "x".repeat(32),
  "x".repeat(255),
  "x".repeat(256),
  "x".repeat(70_000),
  "é",
  "tâche 🚀 終わり",
  "é".repeat(20),
  "🚀".repeat(100),
];

function attempt(n: number, error: string | null): Attempt {
  return {
    number: n,
    workerId: "w1",
    queuedAt: 1_733_500_000_000,
    dispatchedAt: 1_733_500_000_001,
    startedAt: 1_733_500_000_002,
    endedAt: n === 1 ? 1_733_500_000_009 : null,
    status: n === 1 ? "FAILED" : null,
    error,
  };
}

function task(i: number, over: Partial<Task> = {}): Task {
  return {
    id: `tab12cd34ef${i}`,
    sessionId: "sab12cd34ef0",
    payloadId: `rab12cd34ef${i}`,
    expectedOutputIds: [`rab12cd34eg${i}`],
    dataDependencies: [],
    options: DEFAULT_TASK_OPTIONS,
    status: "COMPLETED",
    seq: i,
    createdAt: 1_733_500_000_000,
    submittedAt: 1_733_500_000_000,
    startedAt: null,
    endedAt: 1_733_500_000_009,
    createdBy: "anonymous",
    parentTaskId: null,
    error: null,
    attempts: [],
    remainingDeps: 0,
    workerId: null,
    ...over,
  };
}

function result(i: number, over: Partial<Result> = {}): Result {
  return {
    id: `rab12cd34eg${i}`,
    sessionId: "sab12cd34ef0",
    name: "output",
    status: "COMPLETED",
    ownerTaskId: `tab12cd34ef${i}`,
    createdBy: "anonymous",
    data: null,
    size: 4,
    createdAt: 1_733_500_000_000,
    completedAt: 1_733_500_000_009,
    ...over,
  };
}

describe("CommitEncoder", () => {
  it("writes results and tasks from their records as their documents read, beside every other operation", () => {
    const tasks = [
      task(0),
      task(1, {
        expectedOutputIds: ["r1", "r2", "r3"],
        dataDependencies: ["d1", "d2"],
        status: "RETRIED",
        error: "boom: ✗ ".repeat(20),
        attempts: [attempt(1, "the worker was lost 🚑"), attempt(2, null)],
        workerId: "vm-1-abc",
        parentTaskId: "tparent",
        startedAt: 1_733_500_000_002,
        seq: 2 ** 40,
      }),
      // A record kept by an older zgrid may lack a field: left out, as the general encoder leaves it.
      task(2, { createdBy: undefined as unknown as string, submittedAt: null }),
    ];
    const results = [
      result(0),
      result(1, { status: "CREATED", ownerTaskId: null, createdBy: null, size: 0, completedAt: null }),
      result(2, { name: "é-payload", stored: true }),
      result(3, { createdBy: undefined as unknown as string }),
    ];
    const session = {
      id: "sab12cd34ef0",
      status: "RUNNING",
      defaultTaskOptions: { ...DEFAULT_TASK_OPTIONS },
    };
    const rows: CommitRows = {
      before: [
        [Op.Session, session.id, session],
        [Op.Options, 7, { ...DEFAULT_TASK_OPTIONS, options: { clé: "valeur", "": "" } }],
        // Every kind of value, in a document of no record's shape and as operation values.
        [
          Op.Options,
          8,
          {
            numbers: NUMBERS,
            strings: STRINGS,
            flags: [true, false],
            nested: { list: [[1, [2]], []], none: null, gone: undefined },
            wide: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i])),
            empty: {},
            // Not plain: written by the general encoder.
            when: new Date(0),
            map: new Map([["a", 1]]),
          },
        ],
      ],
      results: new Set(results),
      resultData: [Buffer.from([0xc4, 2, 1, 2]), null, null, Buffer.alloc(0)],
      resultStored: [true, false, true, true],
      tasks: new Set(tasks),
      taskOptions: [7, 7, 8],
      after: [
        [Op.Request, "key\u0000with nul", 17, "s", 0, 2 ** 40, "t0"],
        ...NUMBERS.map((n) => [Op.ExpireRequests, n]),
        ...STRINGS.map((s) => [Op.DeleteData, s]),
        [Op.Probe, undefined, true, false],
      ],
    };
    const back = readBack(new CommitEncoder().encode(rows, 4), documentIndex);
    const want = expected(rows);
    assert.equal(back.length, want.length);
    back.forEach((op, i) => assert.deepEqual(op, want[i], `operation ${i}`));
    // A field a record lacks is left out; `stored` is in a result's document only when its data is.
    const docs = back.filter((op) => op[0] === Op.Task).map((op) => op[5] as object);
    assert.equal(docs.length, 3);
    assert.equal(Object.hasOwn(docs[2], "createdBy"), false);
    const stored = back.filter((op) => op[0] === Op.Result).map((op) => (op[4] as Result).stored);
    assert.deepEqual(stored, [true, undefined, true, true]);
    // -0 and NaN survive (deepEqual tells -0 from 0).
    const empty = {
      results: new Set<Result>(),
      tasks: new Set<Task>(),
      resultData: [],
      resultStored: [],
      taskOptions: [],
    };
    const [[, negZero, nan]] = decode(
      new CommitEncoder().encode({ ...empty, before: [], after: [[Op.Probe, -0, NaN]] }, 0),
    ) as unknown[][];
    assert.ok(Object.is(negZero, -0));
    assert.ok(Number.isNaN(nan));
  });

  it("gives each message memory of its own, about its size, that moves to another thread", () => {
    const encoder = new CommitEncoder();
    const rowsOf = (n: number): CommitRows => ({
      before: [],
      results: new Set(),
      resultData: [],
      resultStored: [],
      tasks: new Set(Array.from({ length: n }, (_, i) => task(i, { error: "n".repeat(i % 50) }))),
      taskOptions: new Array<number>(n).fill(1),
      after: [],
    });
    // The first grows from its estimate; the next ones start in what the last measured.
    for (const n of [50_000, 0, 1, 50_000, 20_000]) {
      const m = encoder.encode(rowsOf(n), 0);
      const limit = 1.5 * m.length + 64 * 1024;
      assert.ok(m.buffer.byteLength <= limit, `${m.buffer.byteLength} bytes for a message of ${m.length}`);
      const moved = structuredClone(m, { transfer: [m.buffer as ArrayBuffer] });
      assert.equal(m.length, 0, "moved away");
      const back = decode(moved) as unknown[][];
      assert.equal(back.length, n);
      if (n > 0) {
        const last = back[n - 1];
        assert.equal(last[1], `tab12cd34ef${n - 1}`);
        assert.equal((decode(last[5] as Uint8Array) as Task).error, "n".repeat((n - 1) % 50));
      }
    }
  });
});
