/**
 * A commit as one msgpack message, written in one pass (design §11: the store writes batches): a list of
 * operations (write-ops.ts), each a list of strings, numbers, nulls and bytes, whose record documents
 * are msgpack bins holding the msgpack map of the record's fields. The results and tasks of a commit
 * (nearly all of its operations) are written from the records themselves: no document object, no
 * operation list and no bytes of their own are made for them, and their field names are encoded once.
 * The writer thread reads the message; a small commit made on the server's thread reads it back too.
 *
 * What this writes decodes as the general encoder's output does (`decode` of the message, then of each
 * document): plain maps whose undefined fields are left out, strings, numbers (integers of up to 32 bits
 * as integers, others as float64), booleans, null, bytes and lists. A value of another kind (none is in a
 * record today) is written by the general encoder and its bytes copied in.
 */
import { encode } from "../protocol/codec.js";
import type { Result, Task } from "../scheduler/model.js";
import { Op } from "./write-ops.js";

/**
 * A result's row: everything but its data (in the row's `data` column when small, else in chunk rows),
 * and `stored: true` once its data is in the store.
 */
export type ResultDoc = Omit<Result, "data">;

/** What a commit writes, in this order: `before`, the results, the tasks, `after`. */
export interface CommitRows {
  /** Operations written first (sessions, task option sets); a document in one is any plain object. */
  before: unknown[][];
  results: ReadonlySet<Result>;
  /** Per result, in order: the data its row takes (null: the row keeps what it has). */
  resultData: (Uint8Array | null)[];
  /** Per result, in order: its data is in the store once this commits (its document says `stored`). */
  resultStored: boolean[];
  tasks: ReadonlySet<Task>;
  /** Per task, in order: the id of its options' row. */
  taskOptions: number[];
  /** Operations written last (deletions, a probe, data chunks). */
  after: unknown[][];
}

/** How many operations a commit makes. */
export function operationCount(rows: CommitRows): number {
  return rows.before.length + rows.results.size + rows.tasks.size + rows.after.length;
}

/** Memory the first commit of an encoder starts in, per operation, before it has measured any. */
const FIRST_BYTES_PER_OP = 256;
/** A message in memory more than this many times its size (and MIN_BYTES) is copied into its own. */
const WASTE = 1.5;
/** The smallest memory a message starts in. */
const MIN_BYTES = 64 * 1024;

/** A field name as msgpack bytes. */
const key = (name: string): Uint8Array => Uint8Array.from(encode(name));
const R = {
  id: key("id"),
  sessionId: key("sessionId"),
  name: key("name"),
  status: key("status"),
  ownerTaskId: key("ownerTaskId"),
  createdBy: key("createdBy"),
  size: key("size"),
  createdAt: key("createdAt"),
  completedAt: key("completedAt"),
  stored: key("stored"),
};
const T = {
  id: R.id,
  sessionId: R.sessionId,
  payloadId: key("payloadId"),
  expectedOutputIds: key("expectedOutputIds"),
  dataDependencies: key("dataDependencies"),
  status: R.status,
  seq: key("seq"),
  createdAt: R.createdAt,
  submittedAt: key("submittedAt"),
  startedAt: key("startedAt"),
  endedAt: key("endedAt"),
  createdBy: R.createdBy,
  parentTaskId: key("parentTaskId"),
  error: key("error"),
  attempts: key("attempts"),
  workerId: key("workerId"),
  o: key("o"),
};

export class CommitEncoder {
  private buf: Buffer = Buffer.alloc(0);
  private view: DataView = new DataView(new ArrayBuffer(0));
  private pos = 0;
  /** Bytes an operation took in the last commit, data aside: how much memory the next one starts in. */
  private bytesPerOp = FIRST_BYTES_PER_OP;

  /**
   * The message of a commit, in memory of its own (its ArrayBuffer may move to another thread).
   * `dataBytes`: the bytes of result data it carries, which the estimate of its size adds.
   */
  encode(rows: CommitRows, dataBytes: number): Uint8Array {
    const count = operationCount(rows);
    // A quarter more than measured: the message rarely outgrows its memory (growing copies it).
    const estimate = dataBytes + Math.ceil(count * this.bytesPerOp * 1.25);
    this.buf = Buffer.allocUnsafeSlow(Math.max(MIN_BYTES, estimate));
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
    this.pos = 0;
    this.array(count);
    for (const op of rows.before) this.operation(op);
    let i = 0;
    for (const r of rows.results) {
      this.result(r, rows.resultStored[i], rows.resultData[i]);
      i++;
    }
    i = 0;
    for (const t of rows.tasks) this.task(t, rows.taskOptions[i++]);
    for (const op of rows.after) this.operation(op);
    // Commits alternate between kinds of records of different sizes (tasks submitted, tasks ended with
    // their attempts): the estimate follows the larger of recent ones, and forgets them slowly.
    if (count > 0) this.bytesPerOp = Math.max(16, (this.pos - dataBytes) / count, 0.9 * this.bytesPerOp);
    let out = new Uint8Array(this.buf.buffer, this.buf.byteOffset, this.pos);
    // Memory far larger than the message (an estimate too high) is not what moves with it: a copy.
    if (this.buf.length > WASTE * this.pos + MIN_BYTES) {
      out = new Uint8Array(new ArrayBuffer(this.pos));
      out.set(new Uint8Array(this.buf.buffer, this.buf.byteOffset, this.pos));
    }
    // The message is the caller's: nothing more is written into its memory.
    this.buf = Buffer.alloc(0);
    this.view = new DataView(new ArrayBuffer(0));
    return out;
  }

  /** An operation given as a list; an object in it that is not bytes is a document. */
  private operation(op: readonly unknown[]): void {
    this.array(op.length);
    for (const v of op) {
      if (typeof v === "object" && v !== null && !(v instanceof Uint8Array)) this.document(v);
      else this.value(v);
    }
  }

  /** [Op.Result, id, sessionId, status, doc, data | null]; the document is a ResultDoc. */
  private result(r: Result, stored: boolean, data: Uint8Array | null): void {
    this.array(6);
    this.number(Op.Result);
    this.string(r.id);
    this.string(r.sessionId);
    this.string(r.status);
    const at = this.openDocument();
    let n = 0;
    n += this.field(R.id, r.id);
    n += this.field(R.sessionId, r.sessionId);
    n += this.field(R.name, r.name);
    n += this.field(R.status, r.status);
    n += this.field(R.ownerTaskId, r.ownerTaskId);
    n += this.field(R.createdBy, r.createdBy);
    n += this.field(R.size, r.size);
    n += this.field(R.createdAt, r.createdAt);
    n += this.field(R.completedAt, r.completedAt);
    if (stored) n += this.field(R.stored, true);
    this.closeDocument(at, n);
    if (data) this.bytes(data);
    else this.nil();
  }

  /**
   * [Op.Task, id, sessionId, seq, status, doc]; the document is the task without its options (the id of
   * their row instead, `o`) and remainingDeps.
   */
  private task(t: Task, o: number): void {
    this.array(6);
    this.number(Op.Task);
    this.string(t.id);
    this.string(t.sessionId);
    this.value(t.seq);
    this.string(t.status);
    const at = this.openDocument();
    let n = 0;
    n += this.field(T.id, t.id);
    n += this.field(T.sessionId, t.sessionId);
    n += this.field(T.payloadId, t.payloadId);
    n += this.field(T.expectedOutputIds, t.expectedOutputIds);
    n += this.field(T.dataDependencies, t.dataDependencies);
    n += this.field(T.status, t.status);
    n += this.field(T.seq, t.seq);
    n += this.field(T.createdAt, t.createdAt);
    n += this.field(T.submittedAt, t.submittedAt);
    n += this.field(T.startedAt, t.startedAt);
    n += this.field(T.endedAt, t.endedAt);
    n += this.field(T.createdBy, t.createdBy);
    n += this.field(T.parentTaskId, t.parentTaskId);
    n += this.field(T.error, t.error);
    n += this.field(T.attempts, t.attempts);
    n += this.field(T.workerId, t.workerId);
    n += this.field(T.o, o);
    this.closeDocument(at, n);
  }

  /** Starts a document: a bin and a map of 16-bit size, both lengths written by closeDocument. */
  private openDocument(): number {
    this.room(8);
    const at = this.pos;
    this.buf[at] = 0xc6;
    this.buf[at + 5] = 0xde;
    this.pos += 8;
    return at;
  }

  private closeDocument(at: number, fields: number): void {
    this.view.setUint32(at + 1, this.pos - at - 5);
    this.view.setUint16(at + 6, fields);
  }

  /** A field of a document, left out (0) when undefined, as the general encoder leaves it out. */
  private field(name: Uint8Array, v: unknown): number {
    if (v === undefined) return 0;
    const n = name.length;
    this.room(n);
    const b = this.buf;
    const at = this.pos;
    for (let i = 0; i < n; i++) b[at + i] = name[i];
    this.pos = at + n;
    this.value(v);
    return 1;
  }

  /** A record: a bin of its msgpack map, its length written once the map is. */
  private document(doc: object): void {
    this.room(5);
    const at = this.pos;
    this.buf[at] = 0xc6;
    this.pos += 5;
    this.value(doc);
    this.view.setUint32(at + 1, this.pos - at - 5);
  }

  private value(v: unknown): void {
    switch (typeof v) {
      case "string":
        return this.string(v);
      case "number":
        return this.number(v);
      case "boolean":
        this.room(1);
        this.buf[this.pos++] = v ? 0xc3 : 0xc2;
        return;
      case "undefined":
        return this.nil();
      case "object":
        if (v === null) return this.nil();
        if (Array.isArray(v)) {
          this.array(v.length);
          for (const x of v as unknown[]) this.value(x);
          return;
        }
        if (v instanceof Uint8Array) return this.bytes(v);
        if (Object.getPrototypeOf(v) === Object.prototype) return this.map(v as Record<string, unknown>);
    }
    this.raw(encode(v));
  }

  /** A plain object's fields, those undefined left out (as the general encoder's skipValues). */
  private map(o: Record<string, unknown>): void {
    let n = 0;
    for (const k in o) if (o[k] !== undefined) n++;
    this.room(3);
    if (n < 16) this.buf[this.pos++] = 0x80 | n;
    else if (n < 0x10000) {
      this.buf[this.pos] = 0xde;
      this.view.setUint16(this.pos + 1, n);
      this.pos += 3;
    } else return this.raw(encode(o));
    for (const k in o) {
      const x = o[k];
      if (x === undefined) continue;
      this.string(k);
      this.value(x);
    }
  }

  private array(n: number): void {
    this.room(5);
    if (n < 16) this.buf[this.pos++] = 0x90 | n;
    else if (n < 0x10000) {
      this.buf[this.pos] = 0xdc;
      this.view.setUint16(this.pos + 1, n);
      this.pos += 3;
    } else {
      this.buf[this.pos] = 0xdd;
      this.view.setUint32(this.pos + 1, n);
      this.pos += 5;
    }
  }

  private string(s: string): void {
    const n = s.length;
    this.room(5 + 3 * n);
    const b = this.buf;
    if (n < 32) {
      // Most strings (ids, statuses, names) are short and ASCII: one byte a character, written here.
      const start = this.pos + 1;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        b[start + i] = c;
      }
      if (i === n) {
        b[this.pos] = 0xa0 | n;
        this.pos = start + n;
        return;
      }
    }
    // Written after room for the longest header, then moved back if the header is shorter.
    const start = this.pos + 5;
    const len = b.write(s, start);
    let header: number;
    if (len < 32) {
      b[this.pos] = 0xa0 | len;
      header = 1;
    } else if (len < 0x100) {
      b[this.pos] = 0xd9;
      b[this.pos + 1] = len;
      header = 2;
    } else if (len < 0x10000) {
      b[this.pos] = 0xda;
      this.view.setUint16(this.pos + 1, len);
      header = 3;
    } else {
      b[this.pos] = 0xdb;
      this.view.setUint32(this.pos + 1, len);
      header = 5;
    }
    if (header < 5) b.copyWithin(this.pos + header, start, start + len);
    this.pos += header + len;
  }

  private number(v: number): void {
    this.room(9);
    const b = this.buf;
    if (Number.isInteger(v) && !Object.is(v, -0)) {
      if (v >= 0) {
        if (v < 0x80) {
          b[this.pos++] = v;
          return;
        }
        if (v < 0x100) {
          b[this.pos] = 0xcc;
          b[this.pos + 1] = v;
          this.pos += 2;
          return;
        }
        if (v < 0x10000) {
          b[this.pos] = 0xcd;
          this.view.setUint16(this.pos + 1, v);
          this.pos += 3;
          return;
        }
        if (v <= 0xffffffff) {
          b[this.pos] = 0xce;
          this.view.setUint32(this.pos + 1, v);
          this.pos += 5;
          return;
        }
      } else if (v >= -32) {
        b[this.pos++] = v & 0xff;
        return;
      } else if (v >= -0x80000000) {
        b[this.pos] = 0xd2;
        this.view.setInt32(this.pos + 1, v);
        this.pos += 5;
        return;
      }
    }
    b[this.pos] = 0xcb;
    this.view.setFloat64(this.pos + 1, v);
    this.pos += 9;
  }

  private nil(): void {
    this.room(1);
    this.buf[this.pos++] = 0xc0;
  }

  private bytes(data: Uint8Array): void {
    this.room(5 + data.length);
    this.buf[this.pos] = 0xc6;
    this.view.setUint32(this.pos + 1, data.length);
    this.buf.set(data, this.pos + 5);
    this.pos += 5 + data.length;
  }

  /** A value already encoded (self-delimiting msgpack), copied in. */
  private raw(encoded: Uint8Array): void {
    this.room(encoded.length);
    this.buf.set(encoded, this.pos);
    this.pos += encoded.length;
  }

  /** Makes room for `n` more bytes: a message that outgrows its memory moves to twice as much. */
  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(2 * this.buf.length, this.pos + n, MIN_BYTES));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
    this.view = new DataView(grown.buffer, grown.byteOffset, grown.length);
  }
}
