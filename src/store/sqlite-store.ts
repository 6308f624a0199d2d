import { accessSync, chmodSync, constants, existsSync, mkdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import Database from "better-sqlite3";
import type { Logger } from "../log.js";
import { decode, encode } from "../protocol/codec.js";
import { ErrorCode, ZgridError, failedPrecondition } from "../protocol/errors.js";
import type { Result, Session, Task, TaskOptions } from "../scheduler/model.js";
import { lockDataDir } from "./lock.js";
import type { LoadedState, Store, StoreStats } from "./store.js";

/** Bumped when the schema changes; a database from a newer zgrid is refused. */
export const SCHEMA_VERSION = 1;
/** Result data is stored in rows of this size, and read back by range. */
export const DATA_CHUNK_BYTES = 8 * 1024 * 1024;
/** Data up to this size is kept in the result's row, larger data in chunk rows. */
const INLINE_DATA_BYTES = 16 * 1024;
/** Flush after this many milliseconds, or at once past FLUSH_RECORDS changes. */
const FLUSH_MS = 2;
const FLUSH_RECORDS = 20_000;
/** After a failed commit, try again this often (the disk may have room again). */
const RETRY_MS = 500;

/** A start-up problem with the store: printed as a sentence, the server exits non-zero. */
export class StoreOpenError extends Error {
  override readonly name = "StoreOpenError";
}

type Row = Record<string, unknown>;

/**
 * The embedded store: one SQLite file in WAL mode in the data dir. Changes reported by the scheduler
 * are collected (a changed object is written once however often it changed) and committed in one
 * transaction every few milliseconds.
 */
export class SqliteStore implements Store {
  readonly name = "sqlite";
  readonly file: string;
  private readonly db: Database.Database;
  private readonly unlock: () => void;
  private dirtySessions = new Set<Session>();
  private dirtyResults = new Set<Result>();
  private dirtyTasks = new Set<Task>();
  private deletes: (() => void)[] = [];
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private timer: NodeJS.Timeout | null = null;
  private immediate = false;
  /** Ids of the task-options objects already written (shared by the tasks of a submission). */
  private readonly optionIds = new WeakMap<TaskOptions, number>();
  private nextOptionId = 1;
  private closed = false;
  /** Why the last commit failed, until one succeeds: the store is unhealthy meanwhile. */
  private failure: string | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly dir: string;
  private readonly stmt: Record<string, Database.Statement>;
  /** Called after each successful commit with its latency in milliseconds (the metrics' histogram). */
  onCommit: ((ms: number) => void) | null = null;

  constructor(
    dataDir: string,
    private readonly log?: Logger,
  ) {
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
    this.stmt = {
      session: this.db.prepare("INSERT OR REPLACE INTO sessions (id, doc) VALUES (?, ?)"),
      result: this.db.prepare(
        "INSERT OR REPLACE INTO results (id, session_id, status, doc) VALUES (?, ?, ?, ?)",
      ),
      data: this.db.prepare("INSERT OR REPLACE INTO result_data (result_id, off, bytes) VALUES (?, ?, ?)"),
      task: this.db.prepare(
        "INSERT OR REPLACE INTO tasks (id, session_id, seq, status, doc) VALUES (?, ?, ?, ?, ?)",
      ),
      readData: this.db.prepare(
        "SELECT off, bytes FROM result_data WHERE result_id = ? AND off + length(bytes) > ? AND off < ? ORDER BY off",
      ),
      deleteData: this.db.prepare("DELETE FROM result_data WHERE result_id = ?"),
      options: this.db.prepare("INSERT OR REPLACE INTO task_options (id, doc) VALUES (?, ?)"),
      // Written with a retry after a failed commit: a transaction that proves the disk takes writes again.
      probe: this.db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_write_check', ?)"),
    };
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
      CREATE TABLE IF NOT EXISTS results (id TEXT PRIMARY KEY, session_id TEXT NOT NULL, status TEXT NOT NULL, doc BLOB NOT NULL);
      CREATE INDEX IF NOT EXISTS results_session ON results (session_id);
      CREATE TABLE IF NOT EXISTS result_data (result_id TEXT NOT NULL, off INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (result_id, off));
      CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, session_id TEXT NOT NULL, seq INTEGER NOT NULL, status TEXT NOT NULL, doc BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS task_options (id INTEGER PRIMARY KEY, doc BLOB NOT NULL);
      CREATE INDEX IF NOT EXISTS tasks_session ON tasks (session_id);
    `);
    this.db
      .prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)")
      .run(String(SCHEMA_VERSION));
  }

  load(): LoadedState {
    const sessions = (this.db.prepare("SELECT doc FROM sessions").all() as Row[]).map(
      (r) => decode(r.doc as Buffer) as Session,
    );
    const results = (this.db.prepare("SELECT doc FROM results").all() as Row[]).map((r) => {
      const res = decode(r.doc as Buffer) as Result & { inline?: Uint8Array };
      res.data = res.inline
        ? Buffer.from(res.inline.buffer, res.inline.byteOffset, res.inline.byteLength)
        : null;
      delete res.inline;
      return res;
    });
    const options = new Map<number, TaskOptions>();
    for (const r of this.db.prepare("SELECT id, doc FROM task_options").all() as Row[]) {
      const o = decode(r.doc as Buffer) as TaskOptions;
      options.set(r.id as number, o);
      this.optionIds.set(o, r.id as number);
      this.nextOptionId = Math.max(this.nextOptionId, (r.id as number) + 1);
    }
    const tasks = (this.db.prepare("SELECT doc FROM tasks ORDER BY seq").all() as Row[]).map((r) => {
      const t = decode(r.doc as Buffer) as Task & { o?: number };
      if (t.o !== undefined) {
        t.options = options.get(t.o)!;
        delete t.o;
      }
      return t;
    });
    return { sessions, results, tasks };
  }

  session(s: Session): void {
    this.dirtySessions.add(s);
    this.schedule();
  }
  result(r: Result): void {
    this.dirtyResults.add(r);
    this.schedule();
  }
  task(t: Task): void {
    this.dirtyTasks.add(t);
    this.schedule();
  }
  deleteSession(sessionId: string): void {
    this.deletes.push(() => {
      this.db
        .prepare("DELETE FROM result_data WHERE result_id IN (SELECT id FROM results WHERE session_id = ?)")
        .run(sessionId);
      this.db.prepare("DELETE FROM results WHERE session_id = ?").run(sessionId);
      this.db.prepare("DELETE FROM tasks WHERE session_id = ?").run(sessionId);
      this.db.prepare("DELETE FROM sessions WHERE id = ?").run(sessionId);
    });
    this.schedule();
  }
  deleteResultData(resultId: string): void {
    this.deletes.push(() => this.stmt.deleteData.run(resultId));
    this.schedule();
  }

  readData(resultId: string, offset: number, length: number): Buffer {
    const rows = this.stmt.readData.all(resultId, offset, offset + length) as {
      off: number;
      bytes: Buffer;
    }[];
    if (rows.length === 0 && length > 0) throw failedPrecondition(`result ${resultId} has no stored data`);
    const out = Buffer.allocUnsafe(length);
    let filled = 0;
    for (const { off, bytes } of rows) {
      const from = Math.max(0, offset - off);
      const to = Math.min(bytes.length, offset + length - off);
      bytes.copy(out, off + from - offset, from, to);
      filled += to - from;
    }
    return filled === length ? out : out.subarray(0, filled);
  }

  private get pending(): number {
    return this.dirtySessions.size + this.dirtyResults.size + this.dirtyTasks.size + this.deletes.length;
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.pending >= FLUSH_RECORDS) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      setImmediate(() => this.commit());
      return;
    }
    this.timer ??= setTimeout(() => this.commit(), FLUSH_MS);
  }

  /**
   * Someone waits for an acknowledgement: commit at the end of this event-loop turn rather than after
   * the timer, so everything that arrived in the same turn shares one transaction (group commit).
   */
  flush(): Promise<void> {
    if (this.pending === 0 && this.waiters.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (!this.immediate) {
        this.immediate = true;
        setImmediate(() => {
          this.immediate = false;
          this.commit();
        });
      }
    });
  }

  /** One transaction with every change reported since the last one. */
  private commit(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const waiters = this.waiters;
    this.waiters = [];
    if (this.pending === 0 && this.failure === null) {
      for (const w of waiters) w.resolve();
      return;
    }
    const sessions = this.dirtySessions;
    const results = this.dirtyResults;
    const tasks = this.dirtyTasks;
    const deletes = this.deletes;
    this.dirtySessions = new Set();
    this.dirtyResults = new Set();
    this.dirtyTasks = new Set();
    this.deletes = [];
    // What the transaction sets in memory, undone if it fails: nothing may claim to be on disk that is not.
    const newOptions: TaskOptions[] = [];
    const firstOptionId = this.nextOptionId;
    const nowStored: Result[] = [];
    const started = performance.now();
    try {
      this.db.transaction(() => {
        for (const s of sessions) this.stmt.session.run(s.id, encode(s));
        for (const r of results) {
          const { data, ...meta } = r;
          if (data && data.length <= INLINE_DATA_BYTES) {
            // Small data rides in the result's own row: one write instead of two.
            (meta as Row).inline = data;
          } else if (data && !r.stored) {
            for (let off = 0; off < data.length || off === 0; off += DATA_CHUNK_BYTES) {
              this.stmt.data.run(r.id, off, data.subarray(off, off + DATA_CHUNK_BYTES));
              if (data.length === 0) break;
            }
            nowStored.push(r);
            meta.stored = true;
          }
          this.stmt.result.run(r.id, r.sessionId, r.status, encode(meta));
        }
        for (const t of tasks) {
          // Options are shared by many tasks: written once, referenced by id.
          let o = this.optionIds.get(t.options);
          if (o === undefined) {
            o = this.nextOptionId++;
            this.optionIds.set(t.options, o);
            newOptions.push(t.options);
            this.stmt.options.run(o, encode(t.options));
          }
          const { options: _options, remainingDeps: _deps, ...rest } = t;
          this.stmt.task.run(t.id, t.sessionId, t.seq, t.status, encode({ ...rest, o }));
        }
        for (const d of deletes) d();
        if (this.failure !== null) this.stmt.probe.run(String(Date.now()));
      })();
    } catch (err) {
      // Nothing was committed: undo what the transaction set in memory, keep the changes for the next
      // try, and tell the waiters why.
      for (const o of newOptions) this.optionIds.delete(o);
      this.nextOptionId = firstOptionId;
      for (const s of sessions) this.dirtySessions.add(s);
      for (const r of results) this.dirtyResults.add(r);
      for (const t of tasks) this.dirtyTasks.add(t);
      this.deletes.unshift(...deletes);
      const e = this.commitError(err);
      if (this.failure === null) this.log?.error({ err }, "store commit failed: retrying every 500 ms");
      this.failure = e.message;
      this.retryTimer ??= setTimeout(() => {
        this.retryTimer = null;
        if (!this.closed) this.commit();
      }, RETRY_MS);
      for (const w of waiters) w.reject(e);
      return;
    }
    for (const r of nowStored) r.stored = true;
    if (this.failure !== null) this.log?.info({ after: this.failure }, "store commits again");
    this.failure = null;
    this.onCommit?.(performance.now() - started);
    for (const w of waiters) w.resolve();
  }

  /** A failed commit as the error a client gets: a full disk is a limit, not a bug. */
  private commitError(err: unknown): ZgridError {
    const code = (err as { code?: string }).code ?? "";
    const why = (err as Error).message;
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

  /**
   * Forgets changes not yet committed to records that are being withdrawn (a refused submission), so
   * that a later commit does not write them.
   */
  discard(tasks: readonly Task[], results: readonly Result[]): void {
    for (const t of tasks) this.dirtyTasks.delete(t);
    for (const r of results) this.dirtyResults.delete(r);
  }

  stats(): StoreStats {
    let size = 0;
    for (const f of [this.file, `${this.file}-wal`]) {
      try {
        size += statSync(f).size;
      } catch {
        /* not there yet */
      }
    }
    return {
      name: this.name,
      sizeBytes: size,
      pendingWrites: this.pending,
      location: this.file,
      durability: "fsync",
      ...(this.failure === null ? {} : { failure: this.failure }),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.commit();
    this.closed = true;
    this.db.close();
    this.unlock();
  }
}
