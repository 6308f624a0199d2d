/**
 * The SQLite store's writer (design §8, §11): a worker thread that owns the connection commits are made
 * on, so that statements and the fsync of each commit never hold the server's event loop. The store
 * sends one message per commit: every change, encoded as one msgpack list of operations (WriteOp); the
 * writer runs them in one transaction and answers when it is on disk, or why it is not.
 */
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import { decode } from "../protocol/codec.js";
import { Op, type CommitReply, type CommitRequest, type WriterInput } from "./write-ops.js";

function main(): void {
  const { file } = workerData as WriterInput;
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  // FULL: in WAL mode every commit is fsynced before it returns (design §8).
  db.pragma("synchronous = FULL");
  const stmt = {
    session: db.prepare("INSERT OR REPLACE INTO sessions (id, doc) VALUES (?, ?)"),
    result: db.prepare("INSERT OR REPLACE INTO results (id, session_id, status, doc) VALUES (?, ?, ?, ?)"),
    task: db.prepare(
      "INSERT OR REPLACE INTO tasks (id, session_id, seq, status, doc) VALUES (?, ?, ?, ?, ?)",
    ),
    options: db.prepare("INSERT OR REPLACE INTO task_options (id, doc) VALUES (?, ?)"),
    deleteData: db.prepare("DELETE FROM result_data WHERE result_id = ?"),
    deleteSessionData: db.prepare(
      "DELETE FROM result_data WHERE result_id IN (SELECT id FROM results WHERE session_id = ?)",
    ),
    deleteSessionResults: db.prepare("DELETE FROM results WHERE session_id = ?"),
    deleteSessionTasks: db.prepare("DELETE FROM tasks WHERE session_id = ?"),
    deleteSession: db.prepare("DELETE FROM sessions WHERE id = ?"),
    // Written with a retry after a failed commit: a transaction that proves the disk takes writes again.
    probe: db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_write_check', ?)"),
  };
  const run = db.transaction((ops: unknown[][]) => {
    for (const op of ops) {
      switch (op[0]) {
        case Op.Session:
          stmt.session.run(op[1], op[2]);
          break;
        case Op.Result:
          stmt.result.run(op[1], op[2], op[3], op[4]);
          break;
        case Op.Options:
          stmt.options.run(op[1], op[2]);
          break;
        case Op.Task:
          stmt.task.run(op[1], op[2], op[3], op[4], op[5]);
          break;
        case Op.DeleteSession:
          stmt.deleteSessionData.run(op[1]);
          stmt.deleteSessionResults.run(op[1]);
          stmt.deleteSessionTasks.run(op[1]);
          stmt.deleteSession.run(op[1]);
          break;
        case Op.DeleteData:
          stmt.deleteData.run(op[1]);
          break;
        case Op.Probe:
          stmt.probe.run(op[1]);
          break;
        default:
          throw new Error(`unknown store operation ${String(op[0])}`);
      }
    }
  });
  parentPort!.on("message", (req: CommitRequest | "close") => {
    if (req === "close") {
      db.close();
      parentPort!.close();
      return;
    }
    const started = performance.now();
    let reply: CommitReply;
    try {
      run(decode(req.ops) as unknown[][]);
      reply = { id: req.id, ok: true, ms: performance.now() - started };
    } catch (err) {
      const e = err as { code?: unknown; message?: unknown };
      reply = {
        id: req.id,
        ok: false,
        code: typeof e.code === "string" ? e.code : "",
        message: typeof e.message === "string" ? e.message : String(err),
      };
    }
    parentPort!.postMessage(reply);
  });
}

main();
