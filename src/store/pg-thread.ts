/**
 * The PostgreSQL store's thread (pg-store.ts): it holds the store's two connections, which node-postgres
 * drives asynchronously, so that the server's thread can wait for a read (Atomics.wait) while this one
 * runs it. The writer's connection holds the advisory lock that makes one server the owner of the
 * database; every commit goes through it, so a server whose connection (and lock) was lost writes
 * nothing until it holds the lock again, and never if another server owned the database meanwhile.
 */
import { type MessagePort, parentPort, workerData } from "node:worker_threads";
import pg from "pg";
import { collectSmallHeap, perDataBytes } from "../gc.js";
import { decode } from "../protocol/codec.js";
import { LEADER_LOCK } from "./pg-store.js";
import { Op, type CommitReply, type CommitRequest } from "./write-ops.js";

/** What the store gives this thread at start. */
export interface PgThreadInput {
  url: string;
  /** signal[0] is set to the id of a read once its answer is on `port`. */
  signal: SharedArrayBuffer;
  port: MessagePort;
}

/** A read, answered on the port: rows, or an error. */
export interface PgRead {
  id: number;
  kind: "open" | "query";
  sql?: string;
  params?: unknown[];
}

export type PgAnswer =
  | { id: number; ok: true; rows: Record<string, unknown>[] }
  | { id: number; ok: false; code: string; message: string };

/** Messages of this thread to the store besides commit replies. */
export type PgNotice =
  | { kind: "size"; bytes: number }
  | { kind: "fenced"; message: string }
  /** The bytes of a chunk of a large result, for the commit being written (answered with a PgChunk). */
  | { kind: "chunk"; seq: number; resultId: string; offset: number; length: number };

/**
 * A chunk's bytes, from the store (null: it has no such data any more): a view of memory shared with the
 * store, valid until the next chunk is asked for (node-postgres has copied them by then).
 */
export interface PgChunk {
  kind: "chunk";
  seq: number;
  bytes: Uint8Array | null;
}

/** Bumped when the schema changes; a database from a newer zgrid is refused. */
export const PG_SCHEMA_VERSION = 1;
/** How long to wait for a connection. */
const CONNECT_MS = 3_000;
/**
 * TCP keepalive of the store's connections, both ends: seconds idle, seconds between probes, probes; and
 * how long sent data may stay unacknowledged. A peer whose kernel acknowledges nothing for about 3 s is
 * taken for cut off (clients and workers drop a silent server after 3 s too): an owner cut off from the
 * database loses it within 3 s and a standby serves within 5 s (4.0-4.2 s in the link-cut test, 6.1-6.4
 * s with 2 s + 3 probes and 5 s). A busy process does not trip it: its kernel acknowledges for it.
 */
const KEEPALIVE_IDLE_S = 1;
const KEEPALIVE_INTERVAL_S = 1;
const KEEPALIVE_COUNT = 2;
const USER_TIMEOUT_MS = 3_000;
/** How often the database's size is read for getstatus. */
const SIZE_MS = 5_000;

const { url, signal, port } = workerData as PgThreadInput;
const flag = new Int32Array(signal);
// Integers come back as numbers (bigint columns hold seqs, times and counts, all below 2^53).
pg.types.setTypeParser(20, Number);
pg.types.setTypeParser(1700, Number);

let reader: pg.Client | null = null;
let writer: pg.Client | null = null;
/** The owner count this server got when it took the database (meta 'epoch'): a fencing token. */
let epoch = 0;
/** Set once another server owned the database: this one never writes again. */
let fenced: string | null = null;
let closing = false;

async function connect(): Promise<pg.Client> {
  const c = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: CONNECT_MS,
    // This side's probes of an idle connection to a server gone silent (a network cut).
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_IDLE_S * 1000,
    // The server's side of this session's socket: when this host is cut off from the database, the
    // server ends the session after about KEEPALIVE_IDLE_S + KEEPALIVE_COUNT × KEEPALIVE_INTERVAL_S
    // seconds when the connection was idle (keepalive probes), or USER_TIMEOUT_MS when it was sending
    // (unacknowledged data), and the owner's lock is free for a standby. The operating system's
    // defaults are 2 hours and about 15 minutes.
    options: [
      `-c tcp_keepalives_idle=${KEEPALIVE_IDLE_S}`,
      `-c tcp_keepalives_interval=${KEEPALIVE_INTERVAL_S}`,
      `-c tcp_keepalives_count=${KEEPALIVE_COUNT}`,
      `-c tcp_user_timeout=${USER_TIMEOUT_MS}`,
    ].join(" "),
  });
  // An error on an idle connection (the server went away): the next use reconnects.
  c.on("error", () => {
    if (reader === c) reader = null;
    if (writer === c) writer = null;
  });
  try {
    await c.connect();
  } catch (err) {
    c.end().catch(() => {});
    throw err;
  }
  return c;
}

async function readerClient(): Promise<pg.Client> {
  reader ??= await connect();
  return reader;
}

/** A connection that holds the lock, with the epoch this server owns; else an error (fenced or taken). */
async function writerClient(): Promise<pg.Client> {
  if (fenced !== null) throw Object.assign(new Error(fenced), { code: "FENCED" });
  if (writer) return writer;
  const c = await connect();
  try {
    const got = await c.query("SELECT pg_try_advisory_lock($1) AS ok", [LEADER_LOCK]);
    if (!got.rows[0].ok) {
      const why = await holder(c);
      if (epoch !== 0) fence(`${why}: this one writes no more; restart it to serve again`);
      throw Object.assign(new Error(why), { code: "LOCKED" });
    }
    if (epoch !== 0) {
      // A reconnection: the database must be as this server left it.
      const now = await c.query("SELECT value FROM meta WHERE key = 'epoch'");
      if (Number(now.rows[0]?.value) !== epoch)
        fence(
          "another zgrid server owned the database while this one was cut off: this one writes no more; restart it to serve again",
        );
    }
  } catch (err) {
    c.end().catch(() => {});
    throw err;
  }
  writer = c;
  return c;
}

/** This server lost the database to another: it never writes again (the store is told). */
function fence(why: string): never {
  fenced = why;
  parentPort!.postMessage({ kind: "fenced", message: why } satisfies PgNotice);
  throw Object.assign(new Error(why), { code: "FENCED" });
}

/** A sentence naming the server that holds the lock. */
async function holder(c: pg.Client): Promise<string> {
  const r = await c.query(
    "SELECT a.client_addr::text AS addr, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = $1",
    [LEADER_LOCK],
  );
  const who = r.rows[0] as { addr: string | null; pid: number } | undefined;
  return `another zgrid server owns this database${who ? ` (its connection: ${who.addr ?? "local"}, backend pid ${who.pid})` : ""}`;
}

/**
 * How full PostgreSQL fills a page of each table on insert (percent). A task's row is written when it is
 * submitted and again, with a larger document, when it ends; an output's row likewise when it completes.
 * With room in its page, the row's new version goes there and no index changes (a HOT update); in a full
 * page it goes elsewhere and each of the table's three indexes takes a new entry. The room is used by
 * those versions, and the old ones are pruned away, so the tables take about the space they took before.
 * 50,000 no-op tasks: 11,300 tasks/s with full pages (0 % HOT), 13,100 with these (100 %).
 */
const FILLFACTOR: Record<string, number> = { results: 60, tasks: 40 };

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS sessions (id text PRIMARY KEY, doc bytea NOT NULL);
  CREATE TABLE IF NOT EXISTS results (rowid bigint GENERATED ALWAYS AS IDENTITY, id text PRIMARY KEY, session_id text NOT NULL, status text NOT NULL, doc bytea NOT NULL, data bytea) WITH (fillfactor = ${FILLFACTOR.results});
  CREATE INDEX IF NOT EXISTS results_rowid ON results (rowid);
  CREATE INDEX IF NOT EXISTS results_session ON results (session_id, rowid);
  CREATE TABLE IF NOT EXISTS result_data (result_id text NOT NULL, off bigint NOT NULL, bytes bytea NOT NULL, PRIMARY KEY (result_id, off));
  CREATE TABLE IF NOT EXISTS tasks (rowid bigint GENERATED ALWAYS AS IDENTITY, id text PRIMARY KEY, session_id text NOT NULL, seq bigint NOT NULL, status text NOT NULL, doc bytea NOT NULL) WITH (fillfactor = ${FILLFACTOR.tasks});
  CREATE INDEX IF NOT EXISTS tasks_rowid ON tasks (rowid);
  CREATE INDEX IF NOT EXISTS tasks_session ON tasks (session_id, rowid);
  CREATE TABLE IF NOT EXISTS task_options (id bigint PRIMARY KEY, doc bytea NOT NULL);
  CREATE TABLE IF NOT EXISTS requests (key bytea PRIMARY KEY, at bigint NOT NULL, session_id text NOT NULL, first_seq bigint NOT NULL, count bigint NOT NULL, first_task_id text NOT NULL);
  CREATE INDEX IF NOT EXISTS requests_at ON requests (at);
`;

/**
 * Takes the database: the lock, the schema (made or checked), a new epoch. Answers rows of what the
 * store must know: the durability settings.
 */
async function open(): Promise<Record<string, unknown>[]> {
  const c = await writerClient();
  await c.query("CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL)");
  const v = await c.query("SELECT value FROM meta WHERE key = 'schema_version'");
  const version = v.rows.length ? Number(v.rows[0].value) : 0;
  if (version > PG_SCHEMA_VERSION) {
    throw Object.assign(
      new Error(
        `the database was written by a newer zgrid (schema ${version}, this one knows ${PG_SCHEMA_VERSION}): upgrade zgrid or use another database`,
      ),
      { code: "NEWER" },
    );
  }
  await c.query("BEGIN");
  try {
    await c.query(SCHEMA);
    await fillFactors(c);
    await c.query(COMMIT_FUNCTION);
    await c.query(
      "INSERT INTO meta (key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      [String(PG_SCHEMA_VERSION)],
    );
    const e = await c.query(
      "INSERT INTO meta (key, value) VALUES ('epoch', '1') ON CONFLICT (key) DO UPDATE SET value = (meta.value::bigint + 1)::text RETURNING value",
    );
    await c.query("COMMIT");
    epoch = Number(e.rows[0].value);
  } catch (err) {
    await c.query("ROLLBACK").catch(() => {});
    throw err;
  }
  const settings = await c.query(
    "SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS synchronous_commit, current_setting('server_version_num')::int AS version",
  );
  timer = setInterval(() => void readSize(), SIZE_MS);
  timer.unref();
  void readSize();
  return settings.rows;
}

/**
 * Tables made by a zgrid of before FILLFACTOR get it (pages filled from now on leave the room). Only
 * where it differs: ALTER TABLE waits for a vacuum of the table to end, which a start need not.
 */
async function fillFactors(c: pg.Client): Promise<void> {
  for (const [table, percent] of Object.entries(FILLFACTOR)) {
    const setting = `fillfactor=${percent}`;
    const r = await c.query("SELECT reloptions FROM pg_class WHERE oid = $1::regclass", [table]);
    const options = (r.rows[0]?.reloptions ?? []) as string[];
    if (!options.includes(setting)) await c.query(`ALTER TABLE ${table} SET (${setting})`);
  }
}

let timer: NodeJS.Timeout | null = null;

async function readSize(): Promise<void> {
  try {
    const c = await readerClient();
    const r = await c.query("SELECT pg_database_size(current_database()) AS n");
    parentPort!.postMessage({ kind: "size", bytes: Number(r.rows[0].n) } satisfies PgNotice);
  } catch {
    /* unreachable now: the next try tells */
  }
}

/** `?` placeholders as PostgreSQL's `$n` (the store's SQL has no `?` inside a literal). */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/**
 * Result data read or written here: a full collection per 8 MiB of it frees node-postgres's copies of
 * it (this thread's heap is small: milliseconds), not once tens of them wait for one.
 */
const collectPast = perDataBytes(collectSmallHeap);

port.on("message", (req: PgRead) => {
  void (async () => {
    let answer: PgAnswer;
    try {
      const rows =
        req.kind === "open"
          ? await open()
          : (await (await readerClient()).query(numbered(req.sql!), req.params)).rows;
      answer = { id: req.id, ok: true, rows };
    } catch (err) {
      const e = err as { code?: unknown; message?: unknown };
      const lost = isConnectionError(err);
      if (req.kind === "query" && lost) {
        reader?.end().catch(() => {});
        reader = null;
      }
      answer = {
        id: req.id,
        ok: false,
        // A connection that broke has no code of its own ("Connection terminated"): it is unreachable.
        code: lost ? "UNREACHABLE" : typeof e.code === "string" ? e.code : "",
        message: typeof e.message === "string" ? e.message : String(err),
      };
    }
    const moved = answer.ok ? ownBuffers(answer.rows) : [];
    // Counted before they move: a buffer moved is detached here, of length 0.
    let bytes = 0;
    for (const b of moved) bytes += b.byteLength;
    port.postMessage(answer, moved);
    Atomics.store(flag, 0, req.id);
    Atomics.notify(flag, 0);
    // A read of large data (a range of a result): the buffers node-postgres read it through go soon.
    collectPast(bytes);
  })();
});

/** Data of at least this size in a read's rows is moved to the server's thread, not copied. */
const MOVE_BYTES = 64 * 1024;

/**
 * The memory of the large byte values of `rows` that is theirs alone (not a slice of a shared pool): it
 * moves with the answer, so a read of result data is not held twice (here and in the server's thread).
 */
function ownBuffers(rows: Record<string, unknown>[]): ArrayBuffer[] {
  const moved = new Set<ArrayBuffer>(); // a memory listed twice would fail the whole answer
  for (const row of rows)
    for (const v of Object.values(row))
      if (v instanceof Uint8Array && v.byteLength >= MOVE_BYTES && v.byteLength === v.buffer.byteLength)
        moved.add(v.buffer as ArrayBuffer);
  return [...moved];
}

/** An error of the connection (it is gone or never came), not of the statement. */
function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && /^(08|57P0)/.test(code)) return true;
  if (typeof code === "string" && /^E[A-Z]+$/.test(code)) return true; // ECONNREFUSED, ETIMEDOUT, ...
  return /Connection terminated|timeout expired|connection error|Client has encountered a connection error|not queryable/i.test(
    String((err as { message?: unknown }).message),
  );
}

type Batch = unknown[][];

/** Upserts of many rows in one statement each: unnest of one array a column. */
const UPSERT = {
  [Op.Session]:
    "INSERT INTO sessions (id, doc) SELECT * FROM unnest($1::text[], $2::bytea[]) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
  [Op.Result]:
    "INSERT INTO results (id, session_id, status, doc, data) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bytea[]) ON CONFLICT (id) DO UPDATE SET session_id = excluded.session_id, status = excluded.status, doc = excluded.doc, data = COALESCE(excluded.data, results.data)",
  [Op.Options]:
    "INSERT INTO task_options (id, doc) SELECT * FROM unnest($1::bigint[], $2::bytea[]) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
  [Op.Task]:
    "INSERT INTO tasks (id, session_id, seq, status, doc) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bytea[]) ON CONFLICT (id) DO UPDATE SET session_id = excluded.session_id, seq = excluded.seq, status = excluded.status, doc = excluded.doc",
} as const;

/** The statements of the other operations, run one by one in order, with how many parameters each takes. */
const SINGLE: Record<number, [sql: string, arity: number][]> = Object.fromEntries(
  Object.entries({
    [Op.DeleteSession]: [
      "DELETE FROM result_data WHERE result_id IN (SELECT id FROM results WHERE session_id = $1)",
      "DELETE FROM results WHERE session_id = $1",
      "DELETE FROM tasks WHERE session_id = $1",
      "DELETE FROM sessions WHERE id = $1",
      "DELETE FROM requests WHERE session_id = $1",
    ],
    [Op.Request]: [
      "INSERT INTO requests (key, at, session_id, first_seq, count, first_task_id) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key) DO UPDATE SET at = excluded.at, session_id = excluded.session_id, first_seq = excluded.first_seq, count = excluded.count, first_task_id = excluded.first_task_id",
    ],
    [Op.ExpireRequests]: ["DELETE FROM requests WHERE at < $1"],
    [Op.DeleteData]: [
      "DELETE FROM result_data WHERE result_id = $1",
      "UPDATE results SET data = NULL WHERE id = $1",
    ],
    [Op.MarkDeleted]: [
      "DELETE FROM result_data WHERE result_id = $1",
      "UPDATE results SET status = 'DELETED', data = NULL WHERE id = $1 AND status = 'COMPLETED'",
    ],
    [Op.Data]: [
      "INSERT INTO result_data (result_id, off, bytes) VALUES ($1, $2, $3) ON CONFLICT (result_id, off) DO UPDATE SET bytes = excluded.bytes",
    ],
    [Op.Probe]: [
      "INSERT INTO meta (key, value) VALUES ('last_write_check', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    ],
  }).map(([op, list]) => [op, list.map((sql) => [sql, new Set(sql.match(/\$\d+/g)).size])]),
);

/**
 * The hot path's commit in one statement, one round trip (a transaction of BEGIN, a statement a kind and
 * COMMIT took six): the upserts of every kind, then the keyed submissions' records, the expired ones
 * forgotten first. An absent kind is an empty array. The bytes of every record (docs, inline data) come
 * as one binary `blob` and, for each bytes column, arrays of 1-based offsets and lengths into it (-1: SQL
 * NULL): node-postgres would send a bytea[] as text, each value hex-encoded and parsed again.
 */
const COMMIT_FUNCTION = `
  CREATE OR REPLACE FUNCTION zgrid_commit(
    blob bytea,
    s_id text[], s_doc_at int[], s_doc_len int[],
    r_id text[], r_session text[], r_status text[], r_doc_at int[], r_doc_len int[], r_data_at int[], r_data_len int[],
    o_id bigint[], o_doc_at int[], o_doc_len int[],
    t_id text[], t_session text[], t_seq bigint[], t_status text[], t_doc_at int[], t_doc_len int[],
    expire_before bigint,
    q_key bytea[], q_at bigint[], q_session text[], q_first_seq bigint[], q_count bigint[], q_first_task text[]
  ) RETURNS void LANGUAGE plpgsql AS $$
  BEGIN
    IF cardinality(s_id) > 0 THEN
      INSERT INTO sessions (id, doc)
        SELECT id, substring(blob FROM a FOR n) FROM unnest(s_id, s_doc_at, s_doc_len) AS u(id, a, n)
        ON CONFLICT (id) DO UPDATE SET doc = excluded.doc;
    END IF;
    IF cardinality(r_id) > 0 THEN
      INSERT INTO results (id, session_id, status, doc, data)
        SELECT id, session_id, status, substring(blob FROM a FOR n),
               CASE WHEN dn < 0 THEN NULL ELSE substring(blob FROM da FOR dn) END
        FROM unnest(r_id, r_session, r_status, r_doc_at, r_doc_len, r_data_at, r_data_len)
          AS u(id, session_id, status, a, n, da, dn)
        ON CONFLICT (id) DO UPDATE SET session_id = excluded.session_id, status = excluded.status, doc = excluded.doc, data = COALESCE(excluded.data, results.data);
    END IF;
    IF cardinality(o_id) > 0 THEN
      INSERT INTO task_options (id, doc)
        SELECT id, substring(blob FROM a FOR n) FROM unnest(o_id, o_doc_at, o_doc_len) AS u(id, a, n)
        ON CONFLICT (id) DO UPDATE SET doc = excluded.doc;
    END IF;
    IF cardinality(t_id) > 0 THEN
      INSERT INTO tasks (id, session_id, seq, status, doc)
        SELECT id, session_id, seq, status, substring(blob FROM a FOR n)
        FROM unnest(t_id, t_session, t_seq, t_status, t_doc_at, t_doc_len) AS u(id, session_id, seq, status, a, n)
        ON CONFLICT (id) DO UPDATE SET session_id = excluded.session_id, seq = excluded.seq, status = excluded.status, doc = excluded.doc;
    END IF;
    IF expire_before IS NOT NULL THEN
      DELETE FROM requests WHERE at < expire_before;
    END IF;
    IF cardinality(q_key) > 0 THEN
      INSERT INTO requests (key, at, session_id, first_seq, count, first_task_id)
        SELECT * FROM unnest(q_key, q_at, q_session, q_first_seq, q_count, q_first_task)
        ON CONFLICT (key) DO UPDATE SET at = excluded.at, session_id = excluded.session_id, first_seq = excluded.first_seq, count = excluded.count, first_task_id = excluded.first_task_id;
    END IF;
  END $$;
`;

/** The columns of each kind of upsert, in zgrid_commit's order; true: a bytes column (in the blob). */
const COLUMNS: [kind: number, bytes: boolean[]][] = [
  [Op.Session, [false, true]],
  [Op.Result, [false, false, false, true, true]],
  [Op.Options, [false, true]],
  [Op.Task, [false, false, false, false, true]],
];
const REQUEST_COLUMNS = 6;

/** zgrid_commit's arguments: the blob of every bytes value, then each kind's columns. */
function commitArguments(
  columns: Map<number, unknown[][]>,
  requests: Iterable<unknown[]>,
  expireBefore: number | null,
): unknown[] {
  const parts: Buffer[] = [];
  let at = 1;
  const args: unknown[] = [null];
  for (const [kind, isBytes] of COLUMNS) {
    const cols = columns.get(kind)!;
    isBytes.forEach((b, c) => {
      if (!b) {
        args.push(cols[c]);
        return;
      }
      const values = cols[c] as (Buffer | null | undefined)[];
      const offsets = new Array<number>(values.length);
      const lengths = new Array<number>(values.length);
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        offsets[i] = at;
        if (v == null) {
          lengths[i] = -1;
          continue;
        }
        lengths[i] = v.length;
        parts.push(v);
        at += v.length;
      }
      args.push(offsets, lengths);
    });
  }
  args[0] = Buffer.concat(parts, at - 1);
  args.push(expireBefore);
  const q: unknown[][] = Array.from({ length: REQUEST_COLUMNS }, () => []);
  for (const op of requests) {
    // A request's key holds a NUL (session and key), which a text column refuses: it is bytea here.
    q[0].push(Buffer.from(op[1] as string));
    for (let i = 2; i <= REQUEST_COLUMNS; i++) q[i - 1].push(op[i]);
  }
  args.push(...q);
  return args;
}

/** Runs a commit's operations in one transaction on the writer's connection. */
async function runCommit(ops: Batch): Promise<void> {
  const c = await writerClient();
  const columns = new Map<number, unknown[][]>();
  for (const [kind, isBytes] of COLUMNS)
    columns.set(
      kind,
      isBytes.map(() => []),
    );
  const rest: Batch = [];
  // Keyed submissions: the newest record of each key (a statement may touch a row once).
  const requests = new Map<string, unknown[]>();
  let expireBefore: number | null = null;
  let simple = true;
  for (const op of ops) {
    const kind = op[0] as number;
    const cols = columns.get(kind);
    if (cols) {
      for (let i = 1; i < op.length; i++) cols[i - 1].push(bytes(op[i]));
      continue;
    }
    rest.push(op);
    if (kind === Op.Request) requests.set(op[1] as string, op);
    else if (kind === Op.ExpireRequests) expireBefore = Math.max(expireBefore ?? 0, op[1] as number);
    else simple = false;
  }
  if (simple) {
    // The hot path: upserts and keyed submissions only, one statement (its own transaction).
    const values = commitArguments(columns, requests.values(), expireBefore);
    const text = `SELECT zgrid_commit(${values.map((_, i) => `$${i + 1}`).join(", ")})`;
    await c.query({ name: "zgrid_commit", text, values });
    return;
  }
  await c.query("BEGIN");
  try {
    for (const [kind] of COLUMNS) {
      const cols = columns.get(kind)!;
      if (cols[0].length > 0) await c.query(UPSERT[kind as keyof typeof UPSERT], cols);
    }
    for (const op of rest) {
      const statements = SINGLE[op[0] as number];
      if (!statements) throw new Error(`unknown store operation ${String(op[0])}`);
      const params = op.slice(1).map(bytes);
      if (op[0] === Op.Data)
        params[2] = await chunk(params[0] as string, params[1] as number, params[2] as number);
      if (op[0] === Op.Request) params[0] = Buffer.from(params[0] as string);
      for (const [sql, arity] of statements) await c.query(sql, params.slice(0, arity));
      // A chunk written: its bytes and node-postgres's copies of them go soon (collectPast).
      if (op[0] === Op.Data) collectPast((params[2] as Buffer).length);
    }
    await c.query("COMMIT");
  } catch (err) {
    await c.query("ROLLBACK").catch(() => {});
    throw err;
  }
}

/** A msgpack byte array as the Buffer node-postgres sends as bytea. */
function bytes(v: unknown): unknown {
  return v instanceof Uint8Array && !Buffer.isBuffer(v)
    ? Buffer.from(v.buffer, v.byteOffset, v.byteLength)
    : v;
}

/** Chunks asked of the store and not answered yet, by their seq. */
const asked = new Map<number, (bytes: Uint8Array | null) => void>();
let nextAsk = 1;

/** The bytes of a chunk of a large result in the commit being written, asked of the store. */
async function chunk(resultId: string, offset: number, length: number): Promise<Buffer> {
  const seq = nextAsk++;
  const bytes = await new Promise<Uint8Array | null>((resolve) => {
    asked.set(seq, resolve);
    parentPort!.postMessage({ kind: "chunk", seq, resultId, offset, length } satisfies PgNotice);
  });
  if (bytes === null) throw new Error(`the data of result ${resultId} is no longer there to store`);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

parentPort!.on("message", (msg: CommitRequest | PgChunk | "close") => {
  if (typeof msg === "object" && "kind" in msg) {
    const resolve = asked.get(msg.seq);
    asked.delete(msg.seq);
    resolve?.(msg.bytes);
    return;
  }
  if (msg === "close") {
    closing = true;
    if (timer) clearInterval(timer);
    void Promise.allSettled([reader?.end(), writer?.end()]).then(() => process.exit(0));
    return;
  }
  if (closing) return;
  void (async () => {
    const t0 = performance.now();
    let reply: CommitReply;
    try {
      await runCommit(decode(msg.ops) as Batch);
      reply = { id: msg.id, ok: true, ms: performance.now() - t0 };
    } catch (err) {
      const lost = isConnectionError(err);
      if (lost) {
        writer?.end().catch(() => {});
        writer = null;
      }
      const e = err as { code?: unknown; message?: unknown };
      reply = {
        id: msg.id,
        ok: false,
        code: lost ? "UNREACHABLE" : typeof e.code === "string" ? e.code : "",
        message: typeof e.message === "string" ? e.message : String(err),
      };
    }
    parentPort!.postMessage(reply);
  })();
});
