import { accessSync, chmodSync, constants, existsSync, mkdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { Worker } from "node:worker_threads";
import Database from "better-sqlite3";
import type { Logger } from "../log.js";
import { decode, encode } from "../protocol/codec.js";
import { ErrorCode, ZgridError } from "../protocol/errors.js";
import type { Result } from "../scheduler/model.js";
import { operationCount, type CommitRows, type ResultDoc } from "./commit-encoder.js";
import { lockDataDir } from "./lock.js";
import {
  failedCommit,
  Op,
  operationsRunner,
  type CommitReply,
  type CommitRequest,
  type WriterInput,
} from "./write-ops.js";
import { DATA_CHUNK_BYTES, SqlStore, stopThread, type Row } from "./sql-store.js";
import { StoreOpenError } from "./store.js";

export { StoreOpenError };

/** Bumped when the schema changes; a database from a newer zgrid is refused. */
/**
 * 2: a result's small data is in its row's `data` column (kept when the row is rewritten without it),
 * no longer inside its doc (1), so that the server can drop it from memory once committed.
 */
export const SCHEMA_VERSION = 2;
// Fields added to the docs since (a task's and a result's createdBy, a task's parentTaskId, an attempt's
// queuedAt and dispatchedAt) need no new version: a doc is a msgpack map, an older row loads without
// them and Scheduler.restore fills them in (upgradeTask), and an older zgrid ignores them.
/** A commit of at most this many operations is made on the server's thread, not sent to the writer. */
const INLINE_COMMIT_OPS = 64;
/**
 * An operation whose statements may touch any number of rows (a session's deletion removes all of its
 * tasks, results and data: over a second for 200,000 tasks): its commit goes to the writer thread
 * however few operations it has.
 */
const isLarge = (op: readonly unknown[]): boolean => op[0] === Op.DeleteSession;
/** Statements kept prepared for the reads (SqlStore.all), by their text. */
const STATEMENTS = 64;

/**
 * The embedded store: one SQLite file in WAL mode in the data dir. Commits (SqlStore) are made
 * by a writer thread (sqlite-writer.ts) with a connection of its own: the statements and fsync of a
 * large commit never hold the event loop. A small one (at most INLINE_COMMIT_OPS changes: one task
 * submitted or ended) is made on this thread, where it costs less than the round trip to the writer.
 * This thread keeps a connection of its own to load the state at start and to read stored data.
 */
export class SqliteStore extends SqlStore {
  readonly name = "sqlite";
  readonly file: string;
  private readonly db: Database.Database;
  private readonly unlock: () => void;
  private readonly dir: string;
  private readonly writeDataStmt: Database.Statement;
  /** Runs a small commit's operations on this thread's connection. */
  private readonly runInline: (ops: unknown[][]) => void;
  private readonly statements = new Map<string, Database.Statement>();
  private writer!: Worker;

  constructor(dataDir: string, log?: Logger) {
    super(log);
    const dir = resolve(dataDir);
    try {
      // The store holds every client's data: the dir and its files are the owner's alone.
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      accessSync(dir, constants.W_OK);
    } catch (err) {
      throw new StoreOpenError(
        `the data dir ${dir} is not writable (${(err as Error).message}): choose another with --data-dir`,
      );
    }
    this.dir = dir;
    this.unlock = lockDataDir(dir);
    this.file = join(dir, "zgrid.db");
    try {
      this.db = new Database(this.file);
      this.db.pragma("journal_mode = WAL");
      // FULL: in WAL mode every commit is fsynced before it returns, so an acknowledgement survives a
      // power loss (design §8); NORMAL would sync only at checkpoints. Group commit keeps it fast.
      this.db.pragma("synchronous = FULL");
      if (this.db.pragma("synchronous", { simple: true }) !== 2)
        throw new StoreOpenError(`SQLite refused synchronous = FULL on ${this.file}`);
      this.migrate();
      for (const f of [this.file, `${this.file}-wal`, `${this.file}-shm`]) {
        if (existsSync(f)) chmodSync(f, 0o600);
      }
    } catch (err) {
      this.unlock();
      if (err instanceof StoreOpenError) throw err;
      throw new StoreOpenError(`cannot open the store ${this.file}: ${(err as Error).message}`);
    }
    this.writeDataStmt = this.db.prepare(
      "INSERT OR REPLACE INTO result_data (result_id, off, bytes) VALUES (?, ?, ?)",
    );
    this.runInline = operationsRunner(this.db);
    this.startWriter();
  }

  protected query(sql: string, params: readonly unknown[] = []): Row[] {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      this.statements.set(sql, stmt);
      if (this.statements.size > STATEMENTS) this.statements.delete(this.statements.keys().next().value!);
    }
    return stmt.all(...params) as Row[];
  }

  private startWriter(): void {
    const input: WriterInput = { file: this.file };
    this.writer = new Worker(new URL("./sqlite-writer.js", import.meta.url), { workerData: input });
    this.writer.unref();
    this.writer.on("message", (reply: CommitReply) => {
      this.writerCommit = null;
      this.writer.unref();
      this.committed(reply);
    });
    this.writer.on("error", (err) => {
      // The writer died (it could not open the file, say): the commit in flight failed; the next
      // attempt starts another writer.
      this.log?.error({ err }, "the store's writer thread failed");
      this.writer.unref();
      const id = this.writerCommit;
      this.writerCommit = null;
      if (id !== null)
        this.committed({
          id,
          ok: false,
          code: "",
          message: `the writer thread failed: ${err.message}`,
        });
      if (!this.closed) this.startWriter();
    });
  }
  /** Schema 1 → 2: small data moves from the result's doc (`inline`) to its row's `data` column. */
  private moveInlineData(): void {
    const columns = this.db.prepare("PRAGMA table_info(results)").all() as { name: string }[];
    if (!columns.some((c) => c.name === "data")) this.db.exec("ALTER TABLE results ADD COLUMN data BLOB");
    const rows = this.db.prepare("SELECT id, doc FROM results").all() as { id: string; doc: Buffer }[];
    const update = this.db.prepare("UPDATE results SET doc = ?, data = ? WHERE id = ?");
    this.db.transaction(() => {
      for (const row of rows) {
        const doc = decode(row.doc) as ResultDoc & { inline?: Uint8Array };
        if (doc.inline === undefined) continue;
        const data = Buffer.from(doc.inline.buffer, doc.inline.byteOffset, doc.inline.byteLength);
        delete doc.inline;
        doc.stored = true;
        update.run(encode(doc), data, row.id);
      }
    })();
  }

  private migrate(): void {
    this.db.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    const row = this.db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as
      { value: string } | undefined;
    const version = row ? Number(row.value) : 0;
    if (version > SCHEMA_VERSION) {
      throw new StoreOpenError(
        `the store ${this.file} was written by a newer zgrid (schema ${version}, this one knows ${SCHEMA_VERSION}): upgrade zgrid or use another --data-dir`,
      );
    }
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, doc BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS results (id TEXT PRIMARY KEY, session_id TEXT NOT NULL, status TEXT NOT NULL, doc BLOB NOT NULL, data BLOB);
      CREATE INDEX IF NOT EXISTS results_session ON results (session_id);
      CREATE TABLE IF NOT EXISTS result_data (result_id TEXT NOT NULL, off INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (result_id, off));
      CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, session_id TEXT NOT NULL, seq INTEGER NOT NULL, status TEXT NOT NULL, doc BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS task_options (id INTEGER PRIMARY KEY, doc BLOB NOT NULL);
      CREATE INDEX IF NOT EXISTS tasks_session ON tasks (session_id);
      CREATE TABLE IF NOT EXISTS requests (key TEXT PRIMARY KEY, at INTEGER NOT NULL, session_id TEXT NOT NULL, first_seq INTEGER NOT NULL, count INTEGER NOT NULL, first_task_id TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS requests_at ON requests (at);
    `);
    if (version === 1) this.moveInlineData();
    this.db
      .prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)")
      .run(String(SCHEMA_VERSION));
  }

  /** The id of the commit sent to the writer thread and not answered yet. */
  private writerCommit: number | null = null;

  protected send(id: number, rows: CommitRows, nowChunked: readonly Result[], dataBytes: number): void {
    if (nowChunked.length > 0) {
      // Large data is written here, on this thread's connection, before the rows that say it is
      // stored: handing it to the writer would copy it (a 1 GB result held twice). Its own fsynced
      // transaction; a crash before the writer's commit leaves only rows no result names.
      try {
        this.db.transaction(() => {
          for (const r of nowChunked) {
            const data = r.data!;
            for (let off = 0; off < data.length || off === 0; off += DATA_CHUNK_BYTES) {
              this.writeDataStmt.run(r.id, off, data.subarray(off, off + DATA_CHUNK_BYTES));
              if (data.length === 0) break;
            }
          }
        })();
      } catch (err) {
        this.committed(failedCommit(id, err));
        return;
      }
    }
    if (operationCount(rows) <= INLINE_COMMIT_OPS && !rows.after.some(isLarge)) {
      // A small commit (one task submitted or ended, a session changed) is made here: the round trip
      // to the writer thread would cost more than the statements (the fsync is the same).
      const t0 = performance.now();
      try {
        // The same message the writer thread reads, read here.
        this.runInline(decode(this.encoder.encode(rows, dataBytes)) as unknown[][]);
      } catch (err) {
        this.committed(failedCommit(id, err));
        return;
      }
      this.committed({ id, ok: true, ms: performance.now() - t0 });
      return;
    }
    // Memory of the commit's own, moved to the writer rather than cloned.
    const packed = this.encoder.encode(rows, dataBytes);
    const req: CommitRequest = { id, ops: packed };
    // Referenced while a commit is in flight: the process waits for its answer, not longer.
    this.writerCommit = id;
    this.writer.ref();
    this.writer.postMessage(req, [packed.buffer as ArrayBuffer]);
  }

  /** A failed commit as the error a client gets: a full disk is a limit, not a bug. */
  protected commitError(code: string, why: string): ZgridError {
    if (code === "SQLITE_FULL" || code.startsWith("SQLITE_IOERR") || /disk is full|ENOSPC/.test(why)) {
      return new ZgridError(
        ErrorCode.RESOURCE_EXHAUSTED,
        `the store's disk is full (${why}): nothing of this request was kept; free space in ${this.dir}`,
      );
    }
    return new ZgridError(
      ErrorCode.INTERNAL,
      `the store could not commit (${why}): nothing of this request was kept`,
    );
  }

  /** The file (the path it was opened with). */
  get location(): string {
    return this.file;
  }
  protected readonly durability = "fsync";

  protected sizeBytes(): number {
    let size = 0;
    for (const f of [this.file, `${this.file}-wal`]) {
      try {
        size += statSync(f).size;
      } catch {
        /* not there yet */
      }
    }
    return size;
  }

  protected async closeBackend(): Promise<void> {
    await stopThread(this.writer);
    this.db.close();
    this.unlock();
  }
}
