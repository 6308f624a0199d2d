import type { Result, Session, Task } from "../scheduler/model.js";

/** A start-up problem with the store: printed as a sentence, the server exits non-zero. */
export class StoreOpenError extends Error {
  override readonly name = "StoreOpenError";
}

/**
 * What a store gives back at start, for the scheduler to rebuild its state: every session, and the live
 * work only (unfinished tasks and the results they name or own, CREATED results); finished records stay
 * in the store, summed up in `finished` and `storedResultBytes` (issue 18 item 2).
 */
export interface LoadedState {
  sessions: Session[];
  results: Result[];
  /** In submission order (seq). */
  tasks: Task[];
  /** Keyed submissions kept (`tasks.submit {requestKey}`), oldest first. */
  requests?: KeptRequest[];
  /** Finished tasks left in the store, counted by session, partition and status. */
  finished?: FinishedCount[];
  /** The next seq: one past the highest of any task kept. */
  nextSeq?: number;
  /** Results kept (those of deleted sessions aside), in memory or not. */
  resultCount?: number;
  /** Bytes of the COMPLETED results left in the store. */
  storedResultBytes?: number;
  /** Finished tasks of the kept requests (their answers), in seq order. */
  requestTasks?: Task[];
}

/** How many finished tasks of a session, in a partition, have a status (LoadedState.finished). */
export interface FinishedCount {
  sessionId: string;
  partitionId: string;
  status: Task["status"];
  count: number;
}

/**
 * A keyed submission (`tasks.submit {requestKey}`), kept so that a resend after a restart gets the first
 * answer: the tasks it made are those of `count` consecutive seqs from `firstSeq`, the first being
 * `firstTaskId` (a check: seqs of withdrawn tasks may be used again after a restart).
 */
export interface KeptRequest {
  key: string;
  at: number;
  sessionId: string;
  firstSeq: number;
  count: number;
  firstTaskId: string;
}

export interface StoreStats {
  name: string;
  /** Bytes on disk (0 for memory). */
  sizeBytes: number;
  /** Records changed but not yet committed. */
  pendingWrites: number;
  /**
   * Queries the server has read the store with since it started (records and data that left memory):
   * its thread waits for each.
   */
  reads: number;
  /** Where the data lives ("memory" for the memory store). */
  location: string;
  /**
   * What an acknowledgement means: "fsync" (each commit is on disk, surviving a power loss, before the
   * reply) or "none" (kept in memory only).
   */
  durability: "fsync" | "none";
  /** Times a client's request waited for a commit before it was read (Store.backlogged). */
  backlogWaits: number;
  /** Why the last commit failed, while commits fail (a full disk): the store is unhealthy. */
  failure?: string;
}

/**
 * Where the scheduler writes through (design §8). The scheduler keeps its hot state in memory and
 * tells the store what changed; the store groups the changes into transactions off the hot path.
 * `flush()` resolves once everything reported so far is committed: a command is acknowledged after it.
 */
/** What {@link Store.getResults} found. */
export interface StoredResults {
  results: Map<string, Result>;
  data: Map<string, Buffer>;
}

export interface Store {
  readonly name: string;
  /** Result data lives in memory only (the memory store): it cannot leave memory, so it is capped. */
  readonly keepsData: boolean;
  /** Set by the scheduler: results whose data a commit has just put on disk. */
  onStored: ((results: readonly Result[]) => void) | null;
  /**
   * Set by the scheduler: records a commit has just put on disk as they are in memory (a durable store
   * only): finished ones may leave memory now.
   */
  onCommitted: ((tasks: Iterable<Task>, results: Iterable<Result>) => void) | null;
  /** Whether a change to this record waits for a commit (it must stay in memory until then). */
  isDirty(record: Task | Result): boolean;
  /** A task as stored (a copy), undefined when the store has none (the memory store never has). */
  getTask(id: string): Task | undefined;
  /** As getTask for many ids, read a few hundred a query: the ones found, by id. */
  getTasks(ids: readonly string[]): Map<string, Task>;
  /** A result as stored (a copy, without its data), undefined when the store has none. */
  getResult(id: string): Result | undefined;
  /**
   * As getResult for many ids, read a few hundred a query (one round trip each to a database server,
   * not one a result): the ones found, and with `withData` the data kept in their own row (small data;
   * larger data is read with readData).
   */
  getResults(ids: readonly string[], withData: boolean): StoredResults;
  /**
   * The stored tasks of the sessions named (all, with null) whose id `skip` does not take, as copies, read
   * in slices of a few thousand rows: the iteration holds no statement open between slices.
   */
  scanTasks(sessionIds: readonly string[] | null, skip: (id: string) => boolean): Iterable<Task>;
  /** As scanTasks, for results. */
  scanResults(sessionIds: readonly string[] | null, skip: (id: string) => boolean): Iterable<Result>;
  load(): LoadedState;
  session(s: Session): void;
  result(r: Result): void;
  task(t: Task): void;
  deleteSession(sessionId: string): void;
  /** Keeps a keyed submission, in the commit of its tasks; forgets those kept before `expireBefore`. */
  keepRequest(request: KeptRequest, expireBefore: number): void;
  /** Drops the stored data of a result (purge). */
  deleteResultData(resultId: string): void;
  /**
   * A stored COMPLETED result that is not in memory becomes DELETED, its data dropped (the purge of a
   * session whose results left memory).
   */
  deleteStoredResult(resultId: string): void;
  /**
   * Forgets uncommitted changes to withdrawn records (a submission whose commit was refused, a staged
   * upload or session change the store refused).
   */
  discard(tasks: readonly Task[], results: readonly Result[], sessions?: readonly Session[]): void;
  /** Reads `length` bytes of a stored result's data from `offset`. */
  readData(resultId: string, offset: number, length: number): Buffer;
  flush(): Promise<void>;
  /** Something a client may be waiting for changed (a task ended): commit without the usual delay. */
  commitSoon(): void;
  /**
   * While a commit is under way and more changes than the store takes in one commit wait for the next:
   * a promise that resolves once the commit under way ends (whether it succeeded or not). Else null, and
   * while commits fail. The server reads no new request from clients until then, so that a burst of
   * submissions does not pile up in memory into one commit that takes the event loop for a second to
   * encode and the database for seconds to write.
   */
  backlogged(): Promise<void> | null;
  stats(): StoreStats;
  close(): Promise<void>;
}
