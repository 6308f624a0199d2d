import type { Worker } from "node:worker_threads";
import type { Logger } from "../log.js";
import { decode } from "../protocol/codec.js";
import { type ZgridError, failedPrecondition } from "../protocol/errors.js";
import {
  DEFAULT_TASK_OPTIONS,
  FINAL_TASK_STATUSES,
  type Result,
  type Session,
  type Task,
  type TaskOptions,
} from "../scheduler/model.js";
import type { FinishedCount, KeptRequest, LoadedState, Store, StoreStats, StoredResults } from "./store.js";
import { Op, type CommitReply } from "./write-ops.js";
import { CommitEncoder, type CommitRows } from "./commit-encoder.js";

/** Flush after this many milliseconds, or at once past FLUSH_RECORDS changes. */
const FLUSH_MS = 2;
const FLUSH_RECORDS = 20_000;
/** After a failed commit, try again this often (the disk or the database may take writes again). */
const RETRY_MS = 500;
/**
 * Changes waiting for the next commit past which clients' requests wait for the commit under way
 * (backlogged). A burst of 200,000 tasks on PostgreSQL made commits of 180,000 tasks and as many
 * results: 0.5-0.9 s to encode on the server's thread, heartbeats up to 3 s late, 10,900-12,300 tasks/s;
 * with this bound 15,200-15,700 (and 50,000 tasks: 12,300-12,900 tasks/s before, 19,000-21,600 with
 * it). The commit under way is not counted: one large submission delays no other request, a burst
 * does. SQLite's commits, faster, rarely reach it.
 */
const BACKLOG_RECORDS = 20_000;
/** Data up to this size is kept in the result's row, larger data in chunk rows. */
const INLINE_DATA_BYTES = 16 * 1024;
/** Result data is stored in rows of this size, and read back by range. */
export const DATA_CHUNK_BYTES = 8 * 1024 * 1024;
/** Rows a scan of stored records reads at a time (one statement each, none held open between). */
const SCAN_ROWS = 4096;
/** Ids a query of records by id names at most (SqlStore.idsAQuery, unless the backend says more). */
const IDS_A_QUERY = 500;
/** Task options kept decoded for stored tasks read back. */
const OPTIONS_CACHE = 1024;

/** A row as the database gives it: integers as numbers, blobs as Buffers, `has` truthy or not. */
export type Row = Record<string, unknown>;

/** A commit sent and not answered yet: what to undo if it fails, whom to tell. */
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
 * What the durable stores (SQLite, PostgreSQL) share: one schema, the reads, and the write path.
 * Changes reported by the scheduler are collected (a changed object is written once however often it
 * changed) and committed in one transaction every few milliseconds. One commit is in flight at a time;
 * what changes meanwhile goes into the next one (group commit). A failed commit changes nothing in
 * memory: its records stay dirty and it is tried again every RETRY_MS. A backend says how a commit's
 * operations reach its database (`send`, answered by `committed`), what a failure means to a client
 * (`commitError`), and how a query is read (`all`, synchronous: the scheduler reads stored records
 * in the middle of a command). Its SQL is the common part of SQLite's and PostgreSQL's: `?`
 * placeholders, a `rowid` column to scan by, quoted aliases.
 */
export abstract class SqlStore implements Store {
  abstract readonly name: string;
  readonly keepsData = false;
  /** Results whose data a commit has just put on disk: the server may drop it from memory now. */
  onStored: ((results: readonly Result[]) => void) | null = null;
  onCommitted: ((tasks: Iterable<Task>, results: Iterable<Result>) => void) | null = null;
  /** Called after each successful commit with its latency in milliseconds (the metrics' histogram). */
  onCommit: ((ms: number) => void) | null = null;
  private dirtySessions = new Set<Session>();
  private dirtyResults = new Set<Result>();
  private dirtyTasks = new Set<Task>();
  private deletes: unknown[][] = [];
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private timer: NodeJS.Timeout | null = null;
  private immediate = false;
  /** Ids of the task-options objects already written (shared by the tasks of a submission). */
  protected readonly optionIds = new WeakMap<TaskOptions, number>();
  protected nextOptionId = 1;
  protected closed = false;
  /** Why the last commit failed, until one succeeds: the store is unhealthy meanwhile. */
  protected failure: string | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private inflight: InFlight | null = null;
  private nextCommitId = 1;
  /** close() waits here for the commit in flight. */
  private idleWaiters: (() => void)[] = [];
  /** Task options read back lately, by the id of their row. */
  private readonly optionsCache = new Map<number, TaskOptions>();

  /** Writes a commit's operations as the message its backend's thread reads. */
  protected readonly encoder = new CommitEncoder();

  constructor(protected readonly log?: Logger) {}

  /**
   * Hands a commit's operations to the database, as one transaction; `chunked` are the results whose
   * data is larger than INLINE_DATA_BYTES (their Op.Result rows carry none). The backend answers with
   * `committed(reply)`, at once or later. `dataBytes`: the bytes of result data the rows carry.
   */
  protected abstract send(id: number, rows: CommitRows, chunked: readonly Result[], dataBytes: number): void;
  /** A failed commit as the error a client gets. */
  protected abstract commitError(code: string, why: string): ZgridError;
  /** Stops the backend once everything reported was committed (or a commit failed). */
  protected abstract closeBackend(): Promise<void>;

  /** The rows of a query, read at once (`?` placeholders). */
  protected abstract query(sql: string, params?: readonly unknown[]): Row[];
  /** Where the data lives (a file, a URL without its password). */
  abstract readonly location: string;
  /** What a commit means (StoreStats.durability). */
  protected abstract readonly durability: StoreStats["durability"];
  /** Bytes the store takes now. */
  protected abstract sizeBytes(): number;
  /** Ids a query of records by id names at most, with their data or without. */
  protected idsAQuery(_withData: boolean): number {
    return IDS_A_QUERY;
  }

  /** The condition that `column` is one of `ids`, and its parameters: `IN (?, ?, …)`. */
  protected oneOf(column: string, ids: readonly string[]): [sql: string, params: readonly unknown[]] {
    return [`${column} IN (${ids.map(() => "?").join(", ")})`, ids];
  }

  /** Called before load() reads: the backend may get ready for its scans (PostgreSQL's statistics). */
  protected beforeLoad(): void {}

  stats(): StoreStats {
    return {
      name: this.name,
      sizeBytes: this.sizeBytes(),
      pendingWrites: this.pendingWrites,
      reads: this.reads,
      backlogWaits: this.backlogWaits,
      location: this.location,
      durability: this.durability,
      ...(this.failure === null ? {} : { failure: this.failure }),
    };
  }

  /** Queries read so far (StoreStats.reads). */
  private reads = 0;
  /** Changes waiting for the next commit past which clients wait (BACKLOG_RECORDS; tests set less). */
  backlogRecords = BACKLOG_RECORDS;
  /** How long changes nobody waits for gather before their commit (FLUSH_MS; tests set more). */
  flushDelayMs = FLUSH_MS;
  private backlogWaits = 0;

  backlogged(): Promise<void> | null {
    if (this.inflight === null || this.failure !== null || this.pending <= this.backlogRecords) return null;
    this.backlogWaits++;
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** The rows of a query, counted (StoreStats.reads). */
  protected all(sql: string, params?: readonly unknown[]): Row[] {
    this.reads++;
    return this.query(sql, params);
  }

  private get(sql: string, params?: readonly unknown[]): Row | undefined {
    return this.all(sql, params)[0];
  }

  /**
   * Every session and the live work: unfinished tasks, the results they name or own, CREATED results,
   * and what a crash left half done (DELETED results with data, COMPLETED results of PURGED sessions).
   * Finished tasks are read once, in slices, to be counted; they are not kept (issue 18 item 2).
   */
  load(): LoadedState {
    this.beforeLoad();
    const sessions = this.all("SELECT doc FROM sessions").map((r) => decode(r.doc as Buffer) as Session);
    const statusOf = new Map(sessions.map((s) => [s.id, s.status]));
    this.nextOptionId = Number(this.get("SELECT max(id) AS m FROM task_options")?.m ?? 0) + 1;
    const requests = this.all(
      'SELECT key, at, session_id AS "sessionId", first_seq AS "firstSeq", count, first_task_id AS "firstTaskId" FROM requests ORDER BY at',
    ).map((r) => ({ ...r, key: String(r.key) }) as unknown as KeptRequest); // bytea in PostgreSQL
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
    const taskRows = this.slices("SELECT rowid, session_id, seq, status, doc FROM tasks WHERE rowid > ?");
    for (const row of taskRows) {
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
      this.slices(
        "SELECT rowid, session_id, status, doc, data IS NOT NULL AS has FROM results WHERE rowid > ? AND (status = 'CREATED' OR (status = 'DELETED' AND (data IS NOT NULL OR id IN (SELECT result_id FROM result_data))))",
      ),
    );
    for (const s of sessions) {
      if (s.status !== "PURGED") continue;
      keep(
        this.all(
          "SELECT session_id, status, doc, data IS NOT NULL AS has FROM results WHERE session_id = ? AND status = 'COMPLETED'",
          [s.id],
        ),
      );
    }
    // What the live tasks name or own, whatever its status: read idsAQuery() at a time (a round trip
    // each to PostgreSQL, not one a result).
    const wanted = new Set<string>();
    for (const t of tasks) {
      for (const id of [t.payloadId, ...t.dataDependencies, ...t.expectedOutputIds])
        if (!results.has(id)) wanted.add(id);
    }
    for (const r of this.getResults([...wanted], false).results.values()) results.set(r.id, r);
    let storedResultBytes = 0;
    const sums = [
      "SELECT COALESCE(SUM(length(data)), 0) AS n FROM results WHERE status = 'COMPLETED'",
      "SELECT COALESCE(SUM(length(bytes)), 0) AS n FROM result_data",
    ];
    for (const q of sums) storedResultBytes += Number(this.get(q)!.n);
    for (const r of results.values()) if (r.status === "COMPLETED" && r.stored) storedResultBytes -= r.size;
    let resultCount = Number(this.get("SELECT count(*) AS n FROM results")!.n);
    for (const s of sessions)
      if (s.status === "DELETED")
        resultCount -= Number(this.get("SELECT count(*) AS n FROM results WHERE session_id = ?", [s.id])!.n);
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

  /**
   * The rows of a query whose first placeholder is the rowid to start after (`WHERE rowid > ?`), in
   * rowid order, SCAN_ROWS at a time: no statement stays open between slices. `params` follow it.
   */
  private *slices(sql: string, params: readonly unknown[] = []): Generator<Row> {
    let after = 0;
    for (;;) {
      const rows = this.all(`${sql} ORDER BY rowid LIMIT ${SCAN_ROWS}`, [after, ...params]);
      for (const row of rows) {
        after = Number(row.rowid);
        yield row;
      }
      if (rows.length < SCAN_ROWS) return;
    }
  }

  /** The options of a stored task, by the id its row names (a few recent ones kept, not all). */
  private optionsById(id: number): TaskOptions {
    let o = this.optionsCache.get(id);
    if (o) {
      this.optionsCache.delete(id);
      this.optionsCache.set(id, o);
      return o;
    }
    const row = this.get("SELECT doc FROM task_options WHERE id = ?", [id]);
    o = row ? (decode(row.doc as Buffer) as TaskOptions) : { ...DEFAULT_TASK_OPTIONS, options: {} };
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
    const row = this.get("SELECT doc FROM tasks WHERE id = ?", [id]);
    return row ? this.storedTask(row.doc as Buffer) : undefined;
  }

  getTasks(ids: readonly string[]): Map<string, Task> {
    const found = new Map<string, Task>();
    for (const row of this.rowsOf("SELECT doc FROM tasks", ids, this.idsAQuery(false))) {
      const t = this.storedTask(row.doc as Buffer);
      found.set(t.id, t);
    }
    return found;
  }

  getResult(id: string): Result | undefined {
    const row = this.get("SELECT status, doc, data IS NOT NULL AS has FROM results WHERE id = ?", [id]);
    return row ? resultFromRow(row) : undefined;
  }

  getResults(ids: readonly string[], withData: boolean): StoredResults {
    const found: StoredResults = { results: new Map(), data: new Map() };
    const select = `SELECT status, doc, data IS NOT NULL AS has${withData ? ", data" : ""} FROM results`;
    for (const row of this.rowsOf(select, ids, this.idsAQuery(withData))) {
      const r = resultFromRow(row);
      found.results.set(r.id, r);
      const data = row.data as Buffer | null | undefined;
      if (data != null && r.status === "COMPLETED" && data.length === r.size) found.data.set(r.id, data);
    }
    return found;
  }

  /** The rows of `select` whose id is one of `ids`, read `n` ids a query. */
  private *rowsOf(select: string, ids: readonly string[], n: number): Generator<Row> {
    for (let i = 0; i < ids.length; i += n) {
      const [where, params] = this.oneOf("id", ids.slice(i, i + n));
      yield* this.all(`${select} WHERE ${where}`, params);
    }
  }

  *scanTasks(sessionIds: readonly string[] | null, skip: (id: string) => boolean): Generator<Task> {
    for (const row of this.scanRows("SELECT rowid, id, doc FROM tasks", sessionIds, skip))
      yield this.storedTask(row.doc as Buffer);
  }

  *scanResults(sessionIds: readonly string[] | null, skip: (id: string) => boolean): Generator<Result> {
    const sql = "SELECT rowid, id, status, doc, data IS NOT NULL AS has FROM results";
    for (const row of this.scanRows(sql, sessionIds, skip)) yield resultFromRow(row);
  }

  /** The rows of `select` of every session (null) or of each session named whose id `skip` does not take. */
  private *scanRows(
    select: string,
    sessionIds: readonly string[] | null,
    skip: (id: string) => boolean,
  ): Generator<Row> {
    const rows =
      sessionIds === null
        ? [this.slices(`${select} WHERE rowid > ?`)]
        : [...new Set(sessionIds)].map((id) =>
            this.slices(`${select} WHERE rowid > ? AND session_id = ?`, [id]),
          );
    for (const slice of rows) for (const row of slice) if (!skip(row.id as string)) yield row;
  }

  /** Reads `length` bytes of a stored result's data from `offset`. */
  readData(resultId: string, offset: number, length: number): Buffer {
    // Only the bytes asked for leave the database: a read of 64 KB takes no 8 MB chunk. A long range is
    // read a piece at a time (readPieceBytes), each copied into the one buffer returned.
    const end = offset + length;
    let out: Buffer | null = null;
    let filled = 0;
    for (let from = offset; from < end; from += this.readPieceBytes) {
      const to = Math.min(end, from + this.readPieceBytes);
      const rows = this.all(
        "SELECT off, substr(bytes, CAST(CASE WHEN off < ? THEN ? - off + 1 ELSE 1 END AS INTEGER), CAST(? - CASE WHEN off < ? THEN ? ELSE off END AS INTEGER)) AS bytes FROM result_data WHERE result_id = ? AND off + length(bytes) > ? AND off < ? ORDER BY off",
        [from, from, to, from, from, resultId, from, to],
      ) as { off: number; bytes: Buffer }[];
      if (rows.length === 0) {
        if (from > offset) break; // past the end of the data
        // Small data: in the result's own row.
        const row = this.get("SELECT data FROM results WHERE id = ?", [resultId]) as
          { data: Buffer | null } | undefined;
        if (row?.data) return row.data.subarray(offset, offset + length);
        if (length > 0) throw failedPrecondition(`result ${resultId} has no stored data`);
        break;
      }
      out ??= Buffer.allocUnsafe(length);
      let got = 0;
      for (const { off, bytes } of rows) {
        bytes.copy(out, Math.max(Number(off), from) - offset);
        got += bytes.length;
      }
      filled += got;
      if (got < to - from) break; // the data ends in this piece
    }
    if (out === null) return Buffer.alloc(0);
    return filled === length ? out : out.subarray(0, filled);
  }

  /**
   * The most bytes of result data one query reads (readData). No limit here: SQLite gives its bytes
   * as they are. The PostgreSQL store sets one.
   */
  protected readonly readPieceBytes: number = Number.MAX_SAFE_INTEGER;

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

  private get pending(): number {
    return this.dirtySessions.size + this.dirtyResults.size + this.dirtyTasks.size + this.deletes.length;
  }

  /** Records changed and not committed yet, the commit in flight included (StoreStats.pendingWrites). */
  protected get pendingWrites(): number {
    const f = this.inflight;
    return this.pending + (f ? f.sessions.size + f.results.size + f.tasks.size + f.deletes.length : 0);
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.pending >= FLUSH_RECORDS) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      // Once a turn, not once a change: a 100,000-task submission made 280,000 of them.
      this.commitNextTurn();
      return;
    }
    this.timer ??= setTimeout(() => this.commit(), this.flushDelayMs);
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
      this.commitNextTurn();
    });
  }

  /**
   * Changes a client may be waiting for (a task ended): committed at the end of this event-loop turn
   * rather than after the timer, so that the wait for its outputs, arriving a moment later, finds them
   * on disk or on their way. With a commit under way they go when it ends, as every change does.
   */
  commitSoon(): void {
    if (this.pending > 0 && !this.inflight && !this.closed) this.commitNextTurn();
  }

  private commitNextTurn(): void {
    if (this.immediate) return;
    this.immediate = true;
    setImmediate(() => {
      this.immediate = false;
      this.commit();
    });
  }

  /**
   * Sends every change reported since the last commit to the backend, as one transaction; with one in
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
    // Results and tasks are written from their records by the backend's CommitEncoder; what this commit
    // decides of each (its row's data, its options' row) is kept beside them, in their order.
    const rows: CommitRows = {
      before: [],
      results,
      resultData: new Array(results.size),
      resultStored: new Array(results.size),
      tasks,
      taskOptions: new Array(tasks.size),
      after: deletes.slice(),
    };
    let dataBytes = 0;
    for (const s of sessions) rows.before.push([Op.Session, s.id, s]);
    let i = 0;
    for (const r of results) {
      const data = r.data;
      let rowData: Buffer | null = null;
      let stored = r.stored === true;
      if (data && !r.stored) {
        // Small data rides in the result's own row (one write instead of two), larger data in chunk
        // rows; a row rewritten later without data keeps what it has.
        if (data.length <= INLINE_DATA_BYTES) {
          rowData = data;
          dataBytes += data.length;
        } else nowChunked.push(r);
        nowStored.push(r);
        stored = true;
      }
      rows.resultData[i] = rowData;
      rows.resultStored[i] = stored;
      i++;
    }
    i = 0;
    for (const t of tasks) {
      // Options are shared by many tasks: written once, referenced by id.
      let o = this.optionIds.get(t.options);
      if (o === undefined) {
        o = this.nextOptionId++;
        this.optionIds.set(t.options, o);
        newOptions.push(t.options);
        rows.before.push([Op.Options, o, t.options]);
      }
      rows.taskOptions[i++] = o;
    }
    if (this.failure !== null) rows.after.push([Op.Probe, String(Date.now())]);
    const id = this.nextCommitId++;
    this.inflight = {
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
    this.send(id, rows, nowChunked, dataBytes);
  }

  /** The backend's answer to the commit in flight. */
  protected committed(reply: CommitReply): void {
    const f = this.inflight;
    if (!f || f.id !== reply.id) return;
    this.inflight = null;
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
        this.log?.error({ err: reply.message }, `store commit failed: retrying every ${RETRY_MS} ms`);
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

  /**
   * Forgets changes not yet committed to records that are being withdrawn (a refused submission), so
   * that a later commit does not write them.
   */
  discard(tasks: readonly Task[], results: readonly Result[], sessions: readonly Session[] = []): void {
    for (const t of tasks) this.dirtyTasks.delete(t);
    for (const r of results) this.dirtyResults.delete(r);
    for (const s of sessions) this.dirtySessions.delete(s);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    // Whatever was reported is committed before the backend stops (a failure is logged, as always).
    while (this.inflight || this.pending > 0) {
      if (!this.inflight) this.commit();
      if (this.inflight) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      if (this.failure !== null) break;
    }
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.closeBackend();
  }
}

/** Asks a store's thread to close (it answers "close" by ending its connections) and waits for its exit. */
export async function stopThread(thread: Worker): Promise<void> {
  const exited = new Promise<void>((resolve) => thread.once("exit", () => resolve()));
  thread.ref();
  thread.postMessage("close");
  await exited;
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
