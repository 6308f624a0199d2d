import { accessSync, chmodSync, constants, existsSync, mkdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { Worker } from "node:worker_threads";
import Database from "better-sqlite3";
import type { Logger } from "../log.js";
import { decode, encode, encodeOwned } from "../protocol/codec.js";
import { ErrorCode, ZgridError, failedPrecondition } from "../protocol/errors.js";
import {
  DEFAULT_TASK_OPTIONS,
  FINAL_TASK_STATUSES,
  type Result,
  type Session,
  type Task,
  type TaskOptions,
} from "../scheduler/model.js";
import { lockDataDir } from "./lock.js";
import {
  Op,
  failedCommit,
  operationsRunner,
  type CommitReply,
  type CommitRequest,
  type WriterInput,
} from "./write-ops.js";
import type { FinishedCount, KeptRequest, LoadedState, Store, StoreStats } from "./store.js";

/** Bumped when the schema changes; a database from a newer zgrid is refused. */
/**
 * 2: a result's small data is in its row's `data` column (kept when the row is rewritten without it),
 * no longer inside its doc (1), so that the server can drop it from memory once committed.
 */
export const SCHEMA_VERSION = 2;
// Fields added to the docs since (a task's and a result's createdBy, a task's parentTaskId, an attempt's
// queuedAt and dispatchedAt) need no new version: a doc is a msgpack map, an older row loads without
// them and Scheduler.restore fills them in (upgradeTask), and an older zgrid ignores them.
/** Result data is stored in rows of this size, and read back by range. */
export const DATA_CHUNK_BYTES = 8 * 1024 * 1024;
/** Data up to this size is kept in the result's row, larger data in chunk rows. */
const INLINE_DATA_BYTES = 16 * 1024;
/** Flush after this many milliseconds, or at once past FLUSH_RECORDS changes. */
const FLUSH_MS = 2;
const FLUSH_RECORDS = 20_000;
/** A commit of at most this many operations is made on the server's thread, not sent to the writer. */
const INLINE_COMMIT_OPS = 64;
/** Rows a scan of stored records reads at a time (one statement each, none held open between). */
const SCAN_ROWS = 4096;
/** Task options kept decoded for stored tasks read back. */
const OPTIONS_CACHE = 1024;
/** After a failed commit, try again this often (the disk may have room again). */
const RETRY_MS = 500;

/** A start-up problem with the store: printed as a sentence, the server exits non-zero. */
export class StoreOpenError extends Error {
  override readonly name = "StoreOpenError";
}

type Row = Record<string, unknown>;

/** A commit sent to the writer and not answered yet: what to undo if it fails, whom to tell. */
interface InFlight {
  id: number;
  sessions: Set<Session>;
  results: Set<Result>;
  tasks: Set<Task>;
  deletes: unknown[][];
  newOptions: TaskOptions[];
  firstOptionId: number;
  nowStored: Result[];
  waiters: { resolve: () => void; reject: (e: Error) => void }[];
}

/**
 * The embedded store: one SQLite file in WAL mode in the data dir. Changes reported by the scheduler
 * are collected (a changed object is written once however often it changed) and committed in one
 * transaction every few milliseconds, by a writer thread (sqlite-writer.ts) with a connection of its
 * own: the statements and fsync of a large commit never hold the event loop. A small one (at most
 * INLINE_COMMIT_OPS changes: one task submitted or ended) is made on this thread, where it costs less
 * than the round trip to the writer. One commit is in flight at a time; what changes meanwhile goes
 * into the next one (group commit). This thread keeps a connection of
 * its own to load the state at start and to read stored data.
 */
export class SqliteStore implements Store {
  readonly name = "sqlite";
  readonly file: string;
  private readonly db: Database.Database;
  private readonly unlock: () => void;
  private dirtySessions = new Set<Session>();
  private dirtyResults = new Set<Result>();
  private dirtyTasks = new Set<Task>();
  private deletes: unknown[][] = [];
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
  private readonly readDataStmt: Database.Statement;
  private readonly writeDataStmt: Database.Statement;
  private readonly readRowDataStmt: Database.Statement;
  /** Runs a small commit's operations on this thread's connection. */
  private readonly runInline: (ops: unknown[][]) => void;
  private writer!: Worker;
  private inflight: InFlight | null = null;
  private nextCommitId = 1;
  /** close() waits here for the commit in flight. */
  private idleWaiters: (() => void)[] = [];
  /** Called after each successful commit with its latency in milliseconds (the metrics' histogram). */
  onCommit: ((ms: number) => void) | null = null;
  readonly keepsData = false;
  /** Results whose data a commit has just put on disk: the server may drop it from memory now. */
  onStored: ((results: readonly Result[]) => void) | null = null;
  onCommitted: ((tasks: Iterable<Task>, results: Iterable<Result>) => void) | null = null;
  /** Task options read back lately, by the id of their row. */
  private readonly optionsCache = new Map<number, TaskOptions>();
  private readonly readOptionsStmt: Database.Statement;
  private readonly getTaskStmt: Database.Statement;
  private readonly getResultStmt: Database.Statement;
  private readonly scanTasksStmt: Database.Statement;
  private readonly scanSessionTasksStmt: Database.Statement;
  private readonly scanResultsStmt: Database.Statement;
  private readonly scanSessionResultsStmt: Database.Statement;

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
    this.readDataStmt = this.db.prepare(
      "SELECT off, bytes FROM result_data WHERE result_id = ? AND off + length(bytes) > ? AND off < ? ORDER BY off",
    );
    this.readRowDataStmt = this.db.prepare("SELECT data FROM results WHERE id = ?");
    this.writeDataStmt = this.db.prepare(
      "INSERT OR REPLACE INTO result_data (result_id, off, bytes) VALUES (?, ?, ?)",
    );
    this.readOptionsStmt = this.db.prepare("SELECT doc FROM task_options WHERE id = ?");
    this.getTaskStmt = this.db.prepare("SELECT doc FROM tasks WHERE id = ?");
    this.getResultStmt = this.db.prepare(
      "SELECT status, doc, data IS NOT NULL AS has FROM results WHERE id = ?",
    );
    this.scanTasksStmt = this.db.prepare(
      "SELECT rowid, id, doc FROM tasks WHERE rowid > ? ORDER BY rowid LIMIT ?",
    );
    this.scanSessionTasksStmt = this.db.prepare(
      "SELECT rowid, id, doc FROM tasks WHERE session_id = ? AND rowid > ? ORDER BY rowid LIMIT ?",
    );
    this.scanResultsStmt = this.db.prepare(
      "SELECT rowid, id, status, doc, data IS NOT NULL AS has FROM results WHERE rowid > ? ORDER BY rowid LIMIT ?",
    );
    this.scanSessionResultsStmt = this.db.prepare(
      "SELECT rowid, id, status, doc, data IS NOT NULL AS has FROM results WHERE session_id = ? AND rowid > ? ORDER BY rowid LIMIT ?",
    );
    this.runInline = operationsRunner(this.db);
    this.startWriter();
  }

  private startWriter(): void {
    const input: WriterInput = { file: this.file };
    this.writer = new Worker(new URL("./sqlite-writer.js", import.meta.url), { workerData: input });
    this.writer.unref();
    this.writer.on("message", (reply: CommitReply) => this.committed(reply));
    this.writer.on("error", (err) => {
      // The writer died (it could not open the file, say): the commit in flight failed; the next
      // attempt starts another writer.
      this.log?.error({ err }, "the store's writer thread failed");
      const f = this.inflight;
      if (f)
        this.committed({
          id: f.id,
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

  /**
   * Every session and the live work: unfinished tasks, the results they name or own, CREATED results,
   * and what a crash left half done (DELETED results with data, COMPLETED results of PURGED sessions).
   * Finished tasks are read once, in a streaming pass, to be counted; they are not kept (issue 18 item 2).
   */
  load(): LoadedState {
    const sessions = (this.db.prepare("SELECT doc FROM sessions").all() as Row[]).map(
      (r) => decode(r.doc as Buffer) as Session,
    );
    const statusOf = new Map(sessions.map((s) => [s.id, s.status]));
    this.nextOptionId =
      ((this.db.prepare("SELECT max(id) AS m FROM task_options").get() as { m: number | null }).m ?? 0) + 1;
    const requests = (
      this.db
        .prepare(
          "SELECT key, at, session_id AS sessionId, first_seq AS firstSeq, count, first_task_id AS firstTaskId FROM requests ORDER BY at",
        )
        .all() as KeptRequest[]
    ).map((r) => ({ ...r }));
    const ranges = requests
      .map((r) => [r.firstSeq, r.firstSeq + r.count] as const)
      .sort((a, b) => a[0] - b[0]);
    const inRequest = (seq: number): boolean => {
      let lo = 0;
      let hi = ranges.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (ranges[mid][1] <= seq) lo = mid + 1;
        else hi = mid;
      }
      return lo < ranges.length && ranges[lo][0] <= seq;
    };
    const tasks: Task[] = [];
    const requestTasks: Task[] = [];
    const finished = new Map<string, FinishedCount>();
    let nextSeq = 0;
    for (const row of this.db
      .prepare("SELECT session_id, seq, status, doc FROM tasks")
      .iterate() as Iterable<Row>) {
      const seq = row.seq as number;
      if (seq >= nextSeq) nextSeq = seq + 1;
      const sessionStatus = statusOf.get(row.session_id as string);
      // A deleted session's rows are removed by the scheduler at start (restore).
      if (sessionStatus === "DELETED" || sessionStatus === undefined) continue;
      const t = this.taskFromDoc(row.doc as Buffer);
      const o = (t as Task & { o?: number }).o;
      delete (t as Task & { o?: number }).o;
      if (!FINAL_TASK_STATUSES.has(t.status)) {
        if (o !== undefined) this.optionIds.set(t.options, o);
        tasks.push(t);
        continue;
      }
      const key = `${t.sessionId}\u0000${t.options.partitionId}\u0000${t.status}`;
      const n = finished.get(key);
      if (n) n.count++;
      else
        finished.set(key, {
          sessionId: t.sessionId,
          partitionId: t.options.partitionId,
          status: t.status,
          count: 1,
        });
      if (inRequest(seq)) requestTasks.push(t);
    }
    tasks.sort((a, b) => a.seq - b.seq);
    requestTasks.sort((a, b) => a.seq - b.seq);
    // Data stays in the store: read back when asked for (a restart does not load every output).
    const results = new Map<string, Result>();
    const keep = (rows: Iterable<Row>): void => {
      for (const row of rows) {
        const sessionStatus = statusOf.get(row.session_id as string);
        if (sessionStatus === "DELETED" || sessionStatus === undefined) continue;
        const r = resultFromRow(row);
        results.set(r.id, r);
      }
    };
    keep(
      this.db
        .prepare(
          "SELECT session_id, status, doc, data IS NOT NULL AS has FROM results WHERE status = 'CREATED' OR (status = 'DELETED' AND (data IS NOT NULL OR id IN (SELECT result_id FROM result_data)))",
        )
        .iterate() as Iterable<Row>,
    );
    const purged = this.db.prepare(
      "SELECT session_id, status, doc, data IS NOT NULL AS has FROM results WHERE session_id = ? AND status = 'COMPLETED'",
    );
    for (const s of sessions) if (s.status === "PURGED") keep(purged.all(s.id) as Row[]);
    // What the live tasks name or own, whatever its status.
    for (const t of tasks) {
      for (const id of [t.payloadId, ...t.dataDependencies, ...t.expectedOutputIds]) {
        if (results.has(id)) continue;
        const r = this.getResult(id);
        if (r) results.set(id, r);
      }
    }
    let storedResultBytes = 0;
    const sums = [
      "SELECT COALESCE(SUM(length(data)), 0) AS n FROM results WHERE status = 'COMPLETED'",
      "SELECT COALESCE(SUM(length(bytes)), 0) AS n FROM result_data",
    ];
    for (const q of sums) storedResultBytes += (this.db.prepare(q).get() as { n: number }).n;
    for (const r of results.values()) if (r.status === "COMPLETED" && r.stored) storedResultBytes -= r.size;
    let resultCount = (this.db.prepare("SELECT count(*) AS n FROM results").get() as { n: number }).n;
    const ofSession = this.db.prepare("SELECT count(*) AS n FROM results WHERE session_id = ?");
    for (const s of sessions)
      if (s.status === "DELETED") resultCount -= (ofSession.get(s.id) as { n: number }).n;
    return {
      sessions,
      results: [...results.values()],
      tasks,
      requests,
      finished: [...finished.values()],
      nextSeq,
      storedResultBytes: Math.max(0, storedResultBytes),
      resultCount,
      requestTasks,
    };
  }

  /** The options of a stored task, by the id its row names (a few recent ones kept, not all). */
  private optionsById(id: number): TaskOptions {
    let o = this.optionsCache.get(id);
    if (o) {
      this.optionsCache.delete(id);
      this.optionsCache.set(id, o);
      return o;
    }
    const row = this.readOptionsStmt.get(id) as { doc: Buffer } | undefined;
    o = row ? (decode(row.doc) as TaskOptions) : { ...DEFAULT_TASK_OPTIONS, options: {} };
    this.optionsCache.set(id, o);
    if (this.optionsCache.size > OPTIONS_CACHE)
      this.optionsCache.delete(this.optionsCache.keys().next().value!);
    return o;
  }

  /** A task from its row's doc, its options resolved (the id of their row left on it as `o`). */
  private taskFromDoc(doc: Buffer): Task {
    const t = decode(doc) as Task & { o?: number };
    if (t.o !== undefined) t.options = this.optionsById(t.o);
    t.remainingDeps = 0;
    return t;
  }

  /** A stored task as clients see it: its options resolved, nothing of the row's own left on it. */
  private storedTask(doc: Buffer): Task {
    const t = this.taskFromDoc(doc);
    delete (t as Task & { o?: number }).o;
    return t;
  }

  getTask(id: string): Task | undefined {
    const row = this.getTaskStmt.get(id) as { doc: Buffer } | undefined;
    return row ? this.storedTask(row.doc) : undefined;
  }

  getResult(id: string): Result | undefined {
    const row = this.getResultStmt.get(id) as Row | undefined;
    return row ? resultFromRow(row) : undefined;
  }

  *scanTasks(sessionIds: readonly string[] | null, skip: (id: string) => boolean): Generator<Task> {
    for (const row of this.scanRows(this.scanTasksStmt, this.scanSessionTasksStmt, sessionIds, skip))
      yield this.storedTask(row.doc as Buffer);
  }

  *scanResults(sessionIds: readonly string[] | null, skip: (id: string) => boolean): Generator<Result> {
    for (const row of this.scanRows(this.scanResultsStmt, this.scanSessionResultsStmt, sessionIds, skip))
      yield resultFromRow(row);
  }

  /**
   * The rows of `all` (every session) or of `bySession` (each session named) whose id `skip` does not
   * take, by rowid, SCAN_ROWS at a time: no statement stays open between slices.
   */
  private *scanRows(
    all: Database.Statement,
    bySession: Database.Statement,
    sessionIds: readonly string[] | null,
    skip: (id: string) => boolean,
  ): Generator<Row> {
    for (const sessionId of sessionIds === null ? [null] : new Set(sessionIds)) {
      let after = 0;
      for (;;) {
        const rows = (
          sessionId === null ? all.all(after, SCAN_ROWS) : bySession.all(sessionId, after, SCAN_ROWS)
        ) as Row[];
        for (const row of rows) {
          after = row.rowid as number;
          if (!skip(row.id as string)) yield row;
        }
        if (rows.length < SCAN_ROWS) break;
      }
    }
  }

  isDirty(record: Task | Result): boolean {
    const f = this.inflight;
    if ("payloadId" in record) return this.dirtyTasks.has(record) || (f !== null && f.tasks.has(record));
    return this.dirtyResults.has(record) || (f !== null && f.results.has(record));
  }

  deleteStoredResult(resultId: string): void {
    this.deletes.push([Op.MarkDeleted, resultId]);
    this.schedule();
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
    this.deletes.push([Op.DeleteSession, sessionId]);
    this.schedule();
  }
  keepRequest(r: KeptRequest, expireBefore: number): void {
    this.deletes.push([Op.ExpireRequests, expireBefore]);
    this.deletes.push([Op.Request, r.key, r.at, r.sessionId, r.firstSeq, r.count, r.firstTaskId]);
    this.schedule();
  }

  deleteResultData(resultId: string): void {
    this.deletes.push([Op.DeleteData, resultId]);
    this.schedule();
  }

  readData(resultId: string, offset: number, length: number): Buffer {
    const rows = this.readDataStmt.all(resultId, offset, offset + length) as {
      off: number;
      bytes: Buffer;
    }[];
    if (rows.length === 0) {
      // Small data: in the result's own row.
      const row = this.readRowDataStmt.get(resultId) as { data: Buffer | null } | undefined;
      if (row?.data) return row.data.subarray(offset, offset + length);
      if (length > 0) throw failedPrecondition(`result ${resultId} has no stored data`);
    }
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
    if (this.pending === 0 && this.waiters.length === 0) {
      // Nothing new: what was reported so far is committed, or in the commit in flight.
      const f = this.inflight;
      if (!f) return Promise.resolve();
      return new Promise((resolve, reject) => f.waiters.push({ resolve, reject }));
    }
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

  /**
   * Sends every change reported since the last commit to the writer, as one transaction; with one in
   * flight already, they go when it is answered.
   */
  private commit(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.inflight || this.closed) return;
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
    // What the commit sets in memory, undone if it fails: nothing may claim to be on disk that is not.
    const newOptions: TaskOptions[] = [];
    const firstOptionId = this.nextOptionId;
    const nowStored: Result[] = [];
    const nowChunked: Result[] = [];
    const ops: unknown[][] = [];
    for (const s of sessions) ops.push([Op.Session, s.id, encode(s)]);
    for (const r of results) {
      const data = r.data;
      let rowData: Buffer | null = null;
      const doc: ResultDoc = {
        id: r.id,
        sessionId: r.sessionId,
        name: r.name,
        status: r.status,
        ownerTaskId: r.ownerTaskId,
        createdBy: r.createdBy,
        size: r.size,
        createdAt: r.createdAt,
        completedAt: r.completedAt,
      };
      if (r.stored) doc.stored = true;
      if (data && !r.stored) {
        // Small data rides in the result's own row (one write instead of two), larger data in chunk
        // rows; a row rewritten later without data keeps what it has.
        if (data.length <= INLINE_DATA_BYTES) rowData = data;
        else nowChunked.push(r);
        nowStored.push(r);
        doc.stored = true;
      }
      ops.push([Op.Result, r.id, r.sessionId, r.status, encode(doc), rowData]);
    }
    for (const t of tasks) {
      // Options are shared by many tasks: written once, referenced by id.
      let o = this.optionIds.get(t.options);
      if (o === undefined) {
        o = this.nextOptionId++;
        this.optionIds.set(t.options, o);
        newOptions.push(t.options);
        ops.push([Op.Options, o, encode(t.options)]);
      }
      const doc: TaskDoc = {
        id: t.id,
        sessionId: t.sessionId,
        payloadId: t.payloadId,
        expectedOutputIds: t.expectedOutputIds,
        dataDependencies: t.dataDependencies,
        status: t.status,
        seq: t.seq,
        createdAt: t.createdAt,
        submittedAt: t.submittedAt,
        startedAt: t.startedAt,
        endedAt: t.endedAt,
        createdBy: t.createdBy,
        parentTaskId: t.parentTaskId,
        error: t.error,
        attempts: t.attempts,
        workerId: t.workerId,
        o,
      };
      ops.push([Op.Task, t.id, t.sessionId, t.seq, t.status, encode(doc)]);
    }
    for (const d of deletes) ops.push(d);
    if (this.failure !== null) ops.push([Op.Probe, String(Date.now())]);
    const id = this.nextCommitId++;
    const inflight: InFlight = {
      id,
      sessions,
      results,
      tasks,
      deletes,
      newOptions,
      firstOptionId,
      nowStored,
      waiters,
    };
    this.inflight = inflight;
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
    if (ops.length <= INLINE_COMMIT_OPS) {
      // A small commit (one task submitted or ended, a session changed) is made here: the round trip
      // to the writer thread would cost more than the statements (the fsync is the same).
      const t0 = performance.now();
      try {
        this.runInline(ops);
      } catch (err) {
        this.committed(failedCommit(id, err));
        return;
      }
      this.committed({ id, ok: true, ms: performance.now() - t0 });
      return;
    }
    // Memory of the commit's own, moved to the writer rather than cloned.
    const packed = encodeOwned(ops);
    const req: CommitRequest = { id, ops: packed };
    // Referenced while a commit is in flight: the process waits for its answer, not longer.
    this.writer.ref();
    this.writer.postMessage(req, [packed.buffer as ArrayBuffer]);
  }

  /** The writer's answer to the commit in flight. */
  private committed(reply: CommitReply): void {
    const f = this.inflight;
    if (!f || f.id !== reply.id) return;
    this.inflight = null;
    this.writer.unref();
    if (reply.ok) {
      for (const r of f.nowStored) r.stored = true;
      if (this.failure !== null) this.log?.info({ after: this.failure }, "store commits again");
      this.failure = null;
      this.onCommit?.(reply.ms);
      if (f.nowStored.length > 0) this.onStored?.(f.nowStored);
      this.onCommitted?.(f.tasks, f.results);
      for (const w of f.waiters) w.resolve();
    } else {
      // Nothing was committed: undo what the commit set in memory, keep the changes for the next try
      // (before what changed since, which is newer), and tell the waiters why.
      for (const o of f.newOptions) this.optionIds.delete(o);
      if (this.nextOptionId === f.firstOptionId + f.newOptions.length) this.nextOptionId = f.firstOptionId;
      for (const s of f.sessions) this.dirtySessions.add(s);
      for (const r of f.results) this.dirtyResults.add(r);
      for (const t of f.tasks) this.dirtyTasks.add(t);
      this.deletes.unshift(...f.deletes);
      const e = this.commitError(reply.code, reply.message);
      if (this.failure === null)
        this.log?.error({ err: reply.message }, "store commit failed: retrying every 500 ms");
      this.failure = e.message;
      this.retryTimer ??= setTimeout(() => {
        this.retryTimer = null;
        if (!this.closed) this.commit();
      }, RETRY_MS);
      for (const w of f.waiters) w.reject(e);
    }
    const idle = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of idle) w();
    // What changed while this commit was in flight goes now, in one transaction.
    if (this.pending > 0 || this.waiters.length > 0) {
      if (reply.ok) this.commit();
      else for (const w of this.waiters.splice(0)) w.reject(this.commitError(reply.code, reply.message));
    }
  }

  /** A failed commit as the error a client gets: a full disk is a limit, not a bug. */
  private commitError(code: string, why: string): ZgridError {
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
  discard(tasks: readonly Task[], results: readonly Result[], sessions: readonly Session[] = []): void {
    for (const t of tasks) this.dirtyTasks.delete(t);
    for (const r of results) this.dirtyResults.delete(r);
    for (const s of sessions) this.dirtySessions.delete(s);
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
      pendingWrites:
        this.pending +
        (this.inflight
          ? this.inflight.sessions.size +
            this.inflight.results.size +
            this.inflight.tasks.size +
            this.inflight.deletes.length
          : 0),
      location: this.file,
      durability: "fsync",
      ...(this.failure === null ? {} : { failure: this.failure }),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    // Whatever was reported goes to disk before the writer stops (a failure is logged, as always).
    while (this.inflight || this.pending > 0) {
      if (!this.inflight) this.commit();
      if (this.inflight) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      if (this.failure !== null) break;
    }
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const exited = new Promise<void>((resolve) => this.writer.once("exit", () => resolve()));
    this.writer.ref();
    this.writer.postMessage("close");
    await exited;
    this.db.close();
    this.unlock();
  }
}

/**
 * A result from its row. The row's status column is the truth: a purge marks a row DELETED without
 * rewriting its doc (Op.MarkDeleted), and its data is gone then.
 */
function resultFromRow(row: Row): Result {
  const r = decode(row.doc as Buffer) as Result;
  r.data = null;
  if (row.has) r.stored = true;
  r.createdBy ??= null;
  if (row.status !== r.status) {
    r.status = row.status as Result["status"];
    if (r.status === "DELETED") r.stored = false;
  }
  return r;
}

/** A result's row: everything but its data (in the row's `data` column when small, else in chunk rows). */
type ResultDoc = Omit<Result, "data">;
/** A task's row: everything but its options, referenced by the id of their own row (`o`). */
type TaskDoc = Omit<Task, "options" | "remainingDeps"> & { o: number };
