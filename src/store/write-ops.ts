/** What the SQLite store and its writer thread (sqlite-writer.ts) say to each other. */

/** Operations of a commit, in the order they run. Docs are msgpack, as stored. */
export const Op = {
  /** [Op.Session, id, doc] */
  Session: 0,
  /** [Op.Result, id, sessionId, status, doc] */
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
