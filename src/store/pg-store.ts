import { setTimeout as sleep } from "node:timers/promises";
import { MessageChannel, type MessagePort, Worker, receiveMessageOnPort } from "node:worker_threads";
import pg from "pg";
import type { Logger } from "../log.js";
import { ErrorCode, ZgridError } from "../protocol/errors.js";
import type { Result } from "../scheduler/model.js";
import type { PgAnswer, PgChunk, PgNotice, PgRead, PgThreadInput } from "./pg-thread.js";
import type { CommitRows } from "./commit-encoder.js";
import { DATA_CHUNK_BYTES, SqlStore, stopThread, type Row } from "./sql-store.js";
import { StoreOpenError } from "./store.js";
import { Op, type CommitReply, type CommitRequest } from "./write-ops.js";

/** The advisory lock of a zgrid database: one key for every zgrid server of it. */
export const LEADER_LOCK = 0x7a67726964; // "zgrid"
/** How often a standby asks whether the database's owner is gone. */
const STANDBY_POLL_MS = 100;

/** The longest a read of the database may hold the server's thread. */
const READ_MS = 5_000;
/**
 * Ids a query of records without their data names at most: one array parameter, planned once. In
 * lists of 500 parameters, as SQLite's, the 100,000 payloads of a failover's load took 2 s (0.7 s now).
 * A query of records with their data (up to 16 KiB each in the row) names 500, as SQLite's.
 */
const IDS_A_QUERY = 10_000;
/** The longest ANALYZE of a table before a load may take (it samples 30,000 rows, whatever the size). */
const ANALYZE_MS = 30_000;
/** The longest the server waits for the database at start. */
const OPEN_MS = 15_000;
/**
 * The most bytes of result data one read asks the database for. node-postgres receives bytea as hex
 * text: a read of a whole 8 MiB range grew its receive buffer by doubling to 16 MiB and made a string of
 * 16 MiB, and the store's thread held about 150 MB through a download; pieces of 1 MiB keep that to a
 * few megabytes, for 8 round trips a range.
 */
const READ_PIECE_BYTES = 1024 * 1024;

/**
 * The PostgreSQL store (design §8, issue 16): the schema and the write path of SqlStore, on a database
 * that several zgrid servers may share, one of them owning it at a time (an advisory lock). Its
 * connections live on a thread of their own (pg-thread.ts): commits are sent there and answered
 * later, like SQLite's writer thread; a read (a stored record, a scan slice, result data) waits for
 * its answer on this thread, at most READ_MS, since the scheduler reads in the middle of a command.
 * Records in memory are served without the database: while it is unreachable, the server keeps
 * answering from memory, and a change is refused (UNAVAILABLE) until a commit gets through again.
 */
export class PgStore extends SqlStore {
  readonly name = "postgres";
  private readonly thread: Worker;
  private readonly port: MessagePort;
  private readonly flag: Int32Array;
  private nextRead = 1;
  /** Bytes of the database, as last read by the thread. */
  private lastSize = 0;
  /** What a commit means: "fsync" unless the database's settings say otherwise. */
  protected readonly durability: "fsync" | "none";
  /** The URL without its password. */
  readonly location: string;
  /** The commit sent and not answered yet. */
  private sent: number | null = null;
  protected override readonly readPieceBytes = READ_PIECE_BYTES;
  /** Set when another server took the database: this one writes no more. */
  private fenced: string | null = null;
  /** Called once another server took the database: this one must stop serving (its state is stale). */
  onFenced: ((why: string) => void) | null = null;
  /** The large data of the commit in flight, by result id: its chunks are sent as asked for. */
  private readonly chunks = new Map<string, Buffer>();
  /** Where a chunk asked for is copied for the store's thread to read (made at the first). */
  private chunkArea: SharedArrayBuffer | null = null;

  constructor(url: string, log?: Logger) {
    super(log);
    this.location = redact(url);
    const signal = new SharedArrayBuffer(4);
    this.flag = new Int32Array(signal);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const input: PgThreadInput = { url, signal, port: port2 };
    this.thread = new Worker(new URL("./pg-thread.js", import.meta.url), {
      workerData: input,
      transferList: [port2],
    });
    this.thread.unref();
    this.thread.on("message", (msg: CommitReply | PgNotice) => {
      if ("kind" in msg) {
        if (msg.kind === "size") this.lastSize = msg.bytes;
        else if (msg.kind === "chunk") {
          // Copied into the memory this thread shares with the store's (a view of the data would be
          // sent with the whole data under it, and a buffer made a chunk would be 8 MiB allocated here
          // and freed there, chunk after chunk). The thread asks for a chunk only once it has written
          // the one before, so the area holds one chunk at a time.
          const data = this.chunks.get(msg.resultId);
          let bytes: Uint8Array | null = null;
          if (data) {
            this.chunkArea ??= new SharedArrayBuffer(DATA_CHUNK_BYTES);
            bytes = new Uint8Array(this.chunkArea, 0, msg.length);
            bytes.set(data.subarray(msg.offset, msg.offset + msg.length));
          }
          const reply: PgChunk = { kind: "chunk", seq: msg.seq, bytes };
          this.thread.postMessage(reply);
        } else {
          this.fenced = msg.message;
          this.log?.fatal({ why: msg.message }, "the PostgreSQL store was taken by another server");
          this.onFenced?.(msg.message);
        }
        return;
      }
      this.sent = null;
      this.chunks.clear();
      this.thread.unref();
      this.committed(msg);
    });
    this.thread.on("error", (err) => {
      this.log?.error({ err }, "the PostgreSQL store's thread failed");
      const id = this.sent;
      this.sent = null;
      if (id !== null)
        this.committed({ id, ok: false, code: "", message: `the store's thread failed: ${err.message}` });
    });
    let settings: Row;
    try {
      settings = this.call({ kind: "open" }, OPEN_MS)[0];
    } catch (err) {
      void this.thread.terminate();
      const e = err as ZgridError;
      throw new StoreOpenError(`cannot open the PostgreSQL store ${this.location}: ${e.message}`);
    }
    const durable = settings.fsync === "on" && settings.synchronous_commit !== "off";
    this.durability = durable ? "fsync" : "none";
    if (!durable)
      this.log?.warn(
        { fsync: settings.fsync, synchronous_commit: settings.synchronous_commit },
        "PostgreSQL does not flush each commit to disk: an acknowledged change may be lost in a crash",
      );
  }

  /** A read: waits on this thread for the store thread's answer (at most `ms`). */
  private call(req: Omit<PgRead, "id">, ms = READ_MS): Row[] {
    const id = this.nextRead++;
    Atomics.store(this.flag, 0, 0);
    this.port.postMessage({ ...req, id });
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0 || Atomics.wait(this.flag, 0, 0, left) === "timed-out") {
        throw new ZgridError(
          ErrorCode.UNAVAILABLE,
          `the PostgreSQL store ${this.location} did not answer within ${ms} ms`,
        );
      }
      // Answers of reads that timed out may come first: they are dropped.
      for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port)) {
        const answer = m.message as PgAnswer;
        if (answer.id !== id) continue;
        if (answer.ok) return answer.rows;
        throw this.readError(answer.code, answer.message);
      }
      Atomics.store(this.flag, 0, 0);
    }
  }

  /** An error the thread answered: "UNREACHABLE" is its code for a connection lost or never made. */
  private readError(code: string, message: string): ZgridError {
    if (code === "UNREACHABLE")
      return new ZgridError(
        ErrorCode.UNAVAILABLE,
        `the PostgreSQL store ${this.location} is unreachable (${message})`,
      );
    return new ZgridError(ErrorCode.INTERNAL, `the PostgreSQL store failed (${message})`);
  }

  protected query(sql: string, params: readonly unknown[] = []): Row[] {
    const values = withoutNul(params);
    if (values === null) return [];
    const rows = this.call({ kind: "query", sql, params: values });
    // bytea values crossed from the thread as plain Uint8Arrays (a message keeps no Buffer): Buffers
    // again, views of the same bytes, as SQLite's rows give (readData copies them with Buffer.copy).
    for (const row of rows)
      for (const key in row) {
        const v = row[key];
        if (v instanceof Uint8Array && !Buffer.isBuffer(v))
          row[key] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      }
    return rows;
  }

  protected override idsAQuery(withData: boolean): number {
    return withData ? super.idsAQuery(withData) : IDS_A_QUERY;
  }

  protected override oneOf(
    column: string,
    ids: readonly string[],
  ): [sql: string, params: readonly unknown[]] {
    return [`${column} = ANY(?::text[])`, [ids]];
  }

  /**
   * The load reads tasks and results in slices of rowid order. Right after a burst of writes (a
   * failover, a restart) autovacuum has not analyzed the tables yet; planned with no statistics, each
   * slice of unfinished results sorted every result after it: 1.5 s for 100,000 queued tasks, against
   * 0.5 s once analyzed. Tables changed by more than a tenth since their last analysis (autovacuum's
   * own rule) are analyzed first; a failure only costs the load its speed.
   */
  protected override beforeLoad(): void {
    const started = Date.now();
    try {
      const stale = this.all(
        "SELECT relname FROM pg_stat_user_tables WHERE relid IN ('tasks'::regclass, 'results'::regclass) AND n_mod_since_analyze > 50 + n_live_tup / 10",
      ).map((r) => String(r.relname));
      for (const table of stale)
        this.call({ kind: "query", sql: `ANALYZE ${table}`, params: [] }, ANALYZE_MS);
      if (stale.length > 0)
        this.log?.info({ tables: stale, ms: Date.now() - started }, "statistics refreshed before the load");
    } catch (err) {
      this.log?.warn({ err: (err as Error).message }, "the tables could not be analyzed before the load");
    }
  }

  protected send(id: number, rows: CommitRows, chunked: readonly Result[], dataBytes: number): void {
    if (this.fenced !== null) {
      queueMicrotask(() => this.committed({ id, ok: false, code: "FENCED", message: this.fenced! }));
      return;
    }
    // Large data goes in chunk rows of the same transaction, which the store's thread asks for one at
    // a time as it writes them (a copy of one chunk at a time, not of the whole: a 1 GB result is not
    // held twice).
    this.chunks.clear();
    for (const r of chunked) {
      const data = r.data!;
      this.chunks.set(r.id, data);
      for (let off = 0; off < data.length || off === 0; off += DATA_CHUNK_BYTES) {
        rows.after.push([Op.Data, r.id, off, Math.min(DATA_CHUNK_BYTES, data.length - off)]);
        if (data.length === 0) break;
      }
    }
    const packed = this.encoder.encode(rows, dataBytes);
    const req: CommitRequest = { id, ops: packed };
    this.sent = id;
    this.thread.ref();
    this.thread.postMessage(req, [packed.buffer as ArrayBuffer]);
  }

  protected commitError(code: string, why: string): ZgridError {
    if (code === "FENCED" || code === "LOCKED")
      return new ZgridError(ErrorCode.UNAVAILABLE, `${why}: nothing of this request was kept`);
    if (code === "53100")
      return new ZgridError(
        ErrorCode.RESOURCE_EXHAUSTED,
        `the PostgreSQL store's disk is full (${why}): nothing of this request was kept`,
      );
    const e = this.readError(code, why);
    return new ZgridError(e.code, `${e.message}: nothing of this request was kept`);
  }

  protected sizeBytes(): number {
    return this.lastSize;
  }

  protected async closeBackend(): Promise<void> {
    await stopThread(this.thread);
    this.port.close();
  }
}

/**
 * A read's parameters as PostgreSQL takes them. A text value cannot hold a NUL byte there (the statement
 * fails: "invalid byte sequence"), so no stored id or name has one: an id with one, from a client, names
 * nothing. It is left out of a list of ids; as a value of its own it matches no row (null: none).
 */
function withoutNul(params: readonly unknown[]): unknown[] | null {
  const out = new Array<unknown>(params.length);
  for (let i = 0; i < params.length; i++) {
    const p = params[i];
    if (typeof p === "string" && p.includes("\u0000")) return null;
    out[i] =
      Array.isArray(p) && p.some((v) => typeof v === "string" && v.includes("\u0000"))
        ? p.filter((v) => typeof v !== "string" || !v.includes("\u0000"))
        : p;
  }
  return out;
}

/** A PostgreSQL URL without its password, to print. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(a URL that does not parse)";
  }
}

/**
 * A standby's wait (`zgrid server --standby`): resolves true once no server owns the database at
 * `url` (its lock is free; the caller then takes it, and may find another standby was quicker), false
 * when `signal` aborts first. `waiting` is told why, each time that changes.
 */
export async function waitForFreeDatabase(
  url: string,
  signal: AbortSignal,
  waiting: (why: string) => void,
): Promise<boolean> {
  let last = "";
  // One connection asked again and again (a new one each time would cost the database a process), with
  // a bound on each question so that a database cut off from this host is noticed.
  let c: pg.Client | null = null;
  try {
    while (!signal.aborted) {
      let why: string;
      try {
        if (c === null) {
          c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000, query_timeout: 3_000 });
          c.on("error", () => {});
          await c.connect();
        }
        const got = await c.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [LEADER_LOCK]);
        if (got.rows[0].ok) {
          await c.query("SELECT pg_advisory_unlock($1)", [LEADER_LOCK]);
          return true;
        }
        why = "another zgrid server owns the database";
      } catch (err) {
        why = `the database does not answer (${(err as Error).message})`;
        await c?.end().catch(() => {});
        c = null;
      }
      if (why !== last) waiting(why);
      last = why;
      await sleep(STANDBY_POLL_MS, undefined, { signal }).catch(() => {});
    }
    return false;
  } finally {
    await c?.end().catch(() => {});
  }
}
