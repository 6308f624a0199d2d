/** What the durable stores and their writer threads (sqlite-writer.ts, pg-thread.ts) say to each other. */
import type Database from "better-sqlite3";

/** Operations of a commit, in the order they run. Docs are msgpack, as stored. */
export const Op = {
  /** [Op.Session, id, doc] */
  Session: 0,
  /** [Op.Result, id, sessionId, status, doc, data | null] (null: the row keeps the data it has) */
  Result: 1,
  /** [Op.Options, id, doc] (large result data is written by the store's own thread) */
  Options: 3,
  /** [Op.Task, id, sessionId, seq, status, doc] */
  Task: 4,
  /** [Op.DeleteSession, sessionId]: its data, results, tasks and itself */
  DeleteSession: 5,
  /** [Op.DeleteData, resultId] */
  DeleteData: 6,
  /** [Op.Probe, value]: a write that proves the disk takes writes again */
  Probe: 7,
  /** [Op.Request, key, at, sessionId, firstSeq, count, firstTaskId]: a keyed submission (KeptRequest) */
  Request: 8,
  /** [Op.ExpireRequests, before]: forgets keyed submissions kept before that time */
  ExpireRequests: 9,
  /** [Op.MarkDeleted, resultId]: a COMPLETED result's row says DELETED (its status column), its data goes */
  MarkDeleted: 10,
  /** [Op.Data, resultId, offset, bytes]: a chunk of a large result's data (PostgreSQL store) */
  Data: 11,
} as const;

export interface WriterInput {
  file: string;
}

/** A commit: `ops` is the msgpack encoding of its list of operations. */
export interface CommitRequest {
  id: number;
  ops: Uint8Array;
}

/** Done and on disk (fsynced), with its latency; or not at all, with SQLite's error code and message. */
export type CommitReply =
  { id: number; ok: true; ms: number } | { id: number; ok: false; code: string; message: string };

/**
 * Rows of one kind (results, tasks) a multi-row statement writes: SQLite parses, binds and steps one
 * statement for them, not one each. Replaying the commits of the throughput bench, a row took 2.9 µs
 * this way against 3.8 µs a statement each.
 */
export const ROWS_A_STATEMENT = 32;

/**
 * The upsert of a task's or a result's row: its columns in the order its operation names them (after
 * the op code). A row is rewritten in place: its session (and a task's seq) never change, so the
 * statement leaves the indexed columns alone and SQLite touches no index (INSERT OR REPLACE deleted the
 * row and inserted it again, under a new rowid, rewriting every index entry).
 */
interface Upsert {
  table: string;
  columns: readonly string[];
  update: string;
}

const RESULT_ROW: Upsert = {
  table: "results",
  columns: ["id", "session_id", "status", "doc", "data"],
  update: "status = excluded.status, doc = excluded.doc, data = COALESCE(excluded.data, results.data)",
};
const TASK_ROW: Upsert = {
  table: "tasks",
  columns: ["id", "session_id", "seq", "status", "doc"],
  update: "status = excluded.status, doc = excluded.doc",
};

/** `u` of `rows` rows: a row named twice in it is written, then updated, as by two statements. */
function upsertSql(u: Upsert, rows: number): string {
  const row = `(${u.columns.map(() => "?").join(", ")})`;
  const values = new Array<string>(rows).fill(row).join(", ");
  return `INSERT INTO ${u.table} (${u.columns.join(", ")}) VALUES ${values} ON CONFLICT (id) DO UPDATE SET ${u.update}`;
}

/**
 * Consecutive rows of one kind, written ROWS_A_STATEMENT at a time by one statement; fewer, at the end
 * of a run of them, one statement each.
 */
class RowBatch {
  private readonly params: unknown[] = [];
  private readonly one: Database.Statement;
  private readonly many: Database.Statement;
  private readonly columns: number;

  constructor(db: Database.Database, upsert: Upsert) {
    this.one = db.prepare(upsertSql(upsert, 1));
    this.many = db.prepare(upsertSql(upsert, ROWS_A_STATEMENT));
    this.columns = upsert.columns.length;
  }

  /** Adds the row of `op` (its columns follow its op code); written once the batch is full. */
  add(op: unknown[]): void {
    const p = this.params;
    for (let i = 1; i <= this.columns; i++) p.push(op[i] ?? null);
    if (p.length === this.columns * ROWS_A_STATEMENT) this.flush();
  }

  /** Writes what the batch holds. */
  flush(): void {
    const p = this.params;
    if (p.length === this.columns * ROWS_A_STATEMENT) this.many.run(p);
    else for (let at = 0; at < p.length; at += this.columns) this.one.run(p.slice(at, at + this.columns));
    p.length = 0;
  }

  /** Forgets what the batch holds (its transaction failed). */
  clear(): void {
    this.params.length = 0;
  }
}

/** A function that runs a commit's operations on `db` in one transaction (it throws if that fails). */
export function operationsRunner(db: Database.Database): (ops: unknown[][]) => void {
  const results = new RowBatch(db, RESULT_ROW);
  const tasks = new RowBatch(db, TASK_ROW);
  const stmt = {
    session: db.prepare("INSERT OR REPLACE INTO sessions (id, doc) VALUES (?, ?)"),
    clearRowData: db.prepare("UPDATE results SET data = NULL WHERE id = ?"),
    options: db.prepare("INSERT OR REPLACE INTO task_options (id, doc) VALUES (?, ?)"),
    deleteData: db.prepare("DELETE FROM result_data WHERE result_id = ?"),
    deleteSessionData: db.prepare(
      "DELETE FROM result_data WHERE result_id IN (SELECT id FROM results WHERE session_id = ?)",
    ),
    deleteSessionResults: db.prepare("DELETE FROM results WHERE session_id = ?"),
    deleteSessionTasks: db.prepare("DELETE FROM tasks WHERE session_id = ?"),
    deleteSession: db.prepare("DELETE FROM sessions WHERE id = ?"),
    deleteSessionRequests: db.prepare("DELETE FROM requests WHERE session_id = ?"),
    request: db.prepare(
      "INSERT OR REPLACE INTO requests (key, at, session_id, first_seq, count, first_task_id) VALUES (?, ?, ?, ?, ?, ?)",
    ),
    expireRequests: db.prepare("DELETE FROM requests WHERE at < ?"),
    markDeleted: db.prepare(
      "UPDATE results SET status = 'DELETED', data = NULL WHERE id = ? AND status = 'COMPLETED'",
    ),
    // Written with a retry after a failed commit: a transaction that proves the disk takes writes again.
    probe: db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_write_check', ?)"),
  };
  const transaction = db.transaction((ops: unknown[][]) => {
    for (const op of ops) {
      // Rows of one kind in a row are written together; any other operation comes after them, in order.
      if (op[0] === Op.Result) {
        tasks.flush();
        results.add(op);
        continue;
      }
      if (op[0] === Op.Task) {
        results.flush();
        tasks.add(op);
        continue;
      }
      results.flush();
      tasks.flush();
      switch (op[0]) {
        case Op.Session:
          stmt.session.run(op[1], op[2]);
          break;
        case Op.Options:
          stmt.options.run(op[1], op[2]);
          break;
        case Op.DeleteSession:
          stmt.deleteSessionData.run(op[1]);
          stmt.deleteSessionResults.run(op[1]);
          stmt.deleteSessionTasks.run(op[1]);
          stmt.deleteSession.run(op[1]);
          stmt.deleteSessionRequests.run(op[1]);
          break;
        case Op.Request:
          stmt.request.run(op[1], op[2], op[3], op[4], op[5], op[6]);
          break;
        case Op.ExpireRequests:
          stmt.expireRequests.run(op[1]);
          break;
        case Op.DeleteData:
          stmt.deleteData.run(op[1]);
          stmt.clearRowData.run(op[1]);
          break;
        case Op.MarkDeleted:
          stmt.deleteData.run(op[1]);
          stmt.markDeleted.run(op[1]);
          break;
        case Op.Probe:
          stmt.probe.run(op[1]);
          break;
        default:
          throw new Error(`unknown store operation ${String(op[0])}`);
      }
    }
    results.flush();
    tasks.flush();
  });
  return (ops) => {
    try {
      transaction(ops);
    } catch (err) {
      // Rolled back: rows gathered and not written are not the next commit's.
      results.clear();
      tasks.clear();
      throw err;
    }
  };
}

/** The reply for a commit that threw: SQLite's code (e.g. SQLITE_FULL) and message, nothing more. */
export function failedCommit(id: number, err: unknown): CommitReply {
  const e = err as { code?: unknown; message?: unknown };
  return {
    id,
    ok: false,
    code: typeof e.code === "string" ? e.code : "",
    message: typeof e.message === "string" ? e.message : String(err),
  };
}
