import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { openStore } from "../src/store/index.js";
import { Op, ROWS_A_STATEMENT, operationsRunner } from "../src/store/write-ops.js";
import { tempDir } from "./helpers.js";

/** A SQLite file with the store's schema (made by opening and closing the store), open on its own. */
async function storeFile(): Promise<Database.Database> {
  const dir = tempDir();
  await openStore("sqlite", dir).close();
  return new Database(join(dir, "zgrid.db"));
}

const resultOp = (id: string, status: string, data: Buffer | null, session: string | null = "s1") => [
  Op.Result,
  id,
  session,
  status,
  Buffer.from(`doc of ${id} ${status}`),
  data,
];
const taskOp = (id: string, seq: number, status: string) => [
  Op.Task,
  id,
  "s1",
  seq,
  status,
  Buffer.from(`doc of ${id} ${status}`),
];

describe("the SQLite store's operations runner", () => {
  it("writes runs of rows many a statement, in order: a row named twice ends as its last operation says", async () => {
    const db = await storeFile();
    try {
      const run = operationsRunner(db);
      const n = 2 * ROWS_A_STATEMENT + 5; // two full statements and a tail, of each kind
      const ops: unknown[][] = [];
      for (let i = 0; i < n; i++) ops.push(resultOp(`r${i}`, "CREATED", null));
      // r1 twice in one run (within one multi-row statement): created, then completed with its data.
      ops.push(resultOp("r1", "COMPLETED", Buffer.from("one")));
      ops.push([Op.Options, 1, Buffer.from("options")]);
      for (let i = 0; i < n; i++) ops.push(taskOp(`t${i}`, i, "SUBMITTED"));
      ops.push(taskOp("t3", 3, "COMPLETED"));
      // Rewritten without data: the row keeps what it has.
      ops.push(resultOp("r1", "COMPLETED", null));
      run(ops);
      // A later commit rewrites rows in place, a run of them at a time.
      const again: unknown[][] = [];
      for (let i = 0; i < ROWS_A_STATEMENT; i++) again.push(taskOp(`t${i}`, i, "COMPLETED"));
      run(again);

      const count = (table: string) =>
        (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
      assert.equal(count("results"), n);
      assert.equal(count("tasks"), n);
      assert.equal(count("task_options"), 1);
      const r1 = db.prepare("SELECT status, doc, data FROM results WHERE id = 'r1'").get() as {
        status: string;
        doc: Buffer;
        data: Buffer | null;
      };
      assert.equal(r1.status, "COMPLETED");
      assert.equal(r1.doc.toString(), "doc of r1 COMPLETED");
      assert.equal(r1.data?.toString(), "one", "a row rewritten without data keeps its data");
      const statuses = db.prepare("SELECT id, status, seq FROM tasks ORDER BY seq").all() as {
        id: string;
        status: string;
        seq: number;
      }[];
      statuses.forEach((t, i) => {
        assert.equal(t.id, `t${i}`);
        assert.equal(t.status, i < ROWS_A_STATEMENT ? "COMPLETED" : "SUBMITTED", t.id);
      });
    } finally {
      db.close();
    }
  });

  it("writes nothing of a commit that fails, and nothing of it with the next one", async () => {
    const db = await storeFile();
    try {
      const run = operationsRunner(db);
      const ops: unknown[][] = [];
      for (let i = 0; i < ROWS_A_STATEMENT; i++) ops.push(resultOp(`bad${i}`, "CREATED", null));
      // A row the schema refuses (no session), in the middle of a full statement's rows.
      ops[ROWS_A_STATEMENT >> 1] = resultOp("nosession", "CREATED", null, null);
      assert.throws(() => run(ops), /NOT NULL/);
      // A commit that fails in a tail of rows written one a statement.
      assert.throws(() => run([resultOp("a", "CREATED", null), resultOp("b", "CREATED", null, null)]));
      run([resultOp("good", "CREATED", null)]);
      const ids = db.prepare("SELECT id FROM results").all() as { id: string }[];
      assert.deepEqual(
        ids.map((r) => r.id),
        ["good"],
      );
    } finally {
      db.close();
    }
  });
});
