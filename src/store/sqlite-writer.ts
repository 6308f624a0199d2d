/**
 * The SQLite store's writer (design §8, §11): a worker thread that owns the connection commits are made
 * on, so that statements and the fsync of each commit never hold the server's event loop. The store
 * sends one message per commit: every change, encoded as one msgpack list of operations (WriteOp); the
 * writer runs them in one transaction and answers when it is on disk, or why it is not.
 */
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import { collectGarbage } from "../gc.js";
import { decode } from "../protocol/codec.js";
import {
  failedCommit,
  operationsRunner,
  type CommitReply,
  type CommitRequest,
  type WriterInput,
} from "./write-ops.js";

/** Bytes of operations committed since the last full collection that make one worth it when idle. */
const IDLE_GC_BYTES = 16 * 2 ** 20;
/** How long without a commit is idle. */
const IDLE_GC_MS = 1000;

function main(): void {
  const { file } = workerData as WriterInput;
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  // FULL: in WAL mode every commit is fsynced before it returns (design §8).
  db.pragma("synchronous = FULL");
  const run = operationsRunner(db);
  // After a burst of commits, once none has come for a while, this thread's garbage goes (see gc.ts).
  let opsSinceGc = 0;
  let idle: NodeJS.Timeout | null = null;
  const collectIfIdle = (): void => {
    idle = null;
    opsSinceGc = 0;
    collectGarbage();
  };
  parentPort!.on("message", (req: CommitRequest | "close") => {
    if (idle) clearTimeout(idle);
    idle = null;
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
      reply = failedCommit(req.id, err);
    }
    parentPort!.postMessage(reply);
    opsSinceGc += req.ops.length;
    if (opsSinceGc >= IDLE_GC_BYTES) idle = setTimeout(collectIfIdle, IDLE_GC_MS);
  });
}

main();
