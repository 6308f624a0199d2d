import { ErrorCode, ZgridError, failedPrecondition, invalidArgument } from "../protocol/errors.js";
import { FINAL_TASK_STATUSES, type Result } from "./model.js";
import type { Scheduler } from "./scheduler.js";
import type { NewResult } from "./types.js";

/**
 * Result data (ArmoniK's Results service): results a client creates, its uploads (committed before
 * anything sees them), downloads whole or by range from memory, the cache of recent outputs or the
 * store, and the deletion of data. A store that keeps data in memory holds at most
 * `maxMemoryResultBytes`; more is refused with a sentence. A result's statuses and what they set off
 * (waiters woken, dependents queued) are the scheduler's (completeResult, abortResult).
 */
export class ResultData {
  /** Results whose upload is being committed (uploadResultDurably): one at a time each. */
  readonly uploading = new Set<string>();

  constructor(private readonly s: Scheduler) {}

  /** A client's results.create; `createdBy`: the client's user. */
  createResults(sessionId: string, items: NewResult[], createdBy = "client"): Result[] {
    const session = this.s.session(sessionId);
    this.s.requireOpen(session);
    this.s.requireBatch(items.length, "results");
    let bytes = 0;
    for (const item of items) bytes += item.data?.length ?? 0;
    this.checkDataRoom(bytes);
    const by = this.s.user(createdBy);
    return items.map((item) => this.s.newResult(sessionId, item.name, by, item.data));
  }

  /** Takes back results whose creation the store refused (see withdrawTasks). */
  withdrawResults(results: readonly Result[]): void {
    this.s.store.discard([], results);
    for (const r of results) {
      if (r.status === "COMPLETED") this.s.resultBytes -= r.size;
      this.s.results.delete(r.id);
      this.s.resultCount--;
    }
  }

  /** Throws unless a client may upload data for this result now. */
  checkUploadable(resultId: string): Result {
    const r = this.s.result(resultId);
    if (r.status !== "CREATED") {
      throw failedPrecondition(`result ${resultId} is ${r.status}: only a CREATED result takes data`);
    }
    if (r.ownerTaskId !== null) {
      const owner = this.s.tasks.get(r.ownerTaskId);
      if (owner && !FINAL_TASK_STATUSES.has(owner.status)) {
        throw failedPrecondition(
          `result ${resultId} is an expected output of task ${owner.id}, which will produce it`,
        );
      }
    }
    return r;
  }

  /** Why the memory store takes no more data: what it holds, its cap, what to do. */
  memoryFull(bytes: number): string {
    const mb = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
    return `the ${this.s.store.name} store holds ${mb(this.s.resultBytes)} of result data and may hold ${mb(this.s.maxMemoryResultBytes)} (--memory-store-mb): ${mb(bytes)} more do not fit; purge or delete finished sessions, or use the SQLite store`;
  }

  /** Refuses `bytes` of new result data that a store keeping data in memory has no room for. */
  checkDataRoom(bytes: number): void {
    if (bytes > 0 && this.s.resultBytes + bytes > this.s.maxMemoryResultBytes)
      throw new ZgridError(ErrorCode.RESOURCE_EXHAUSTED, this.memoryFull(bytes));
  }

  /** A client's upload: allowed for a result no task is due to produce. */
  uploadResult(resultId: string, data: Buffer): Result {
    const r = this.checkUploadable(resultId);
    this.checkDataRoom(data.length);
    this.s.completeResult(r, data);
    return r;
  }

  /**
   * A client's upload, durable before anything sees it: the completed result is committed first, and
   * only then completed in memory (its waiters answered, its dependents queued). A commit the store
   * refuses changes nothing (issue 13 item 3). One upload of a result at a time.
   */
  async uploadResultDurably(resultId: string, data: Buffer): Promise<Result> {
    const r = this.checkUploadable(resultId);
    this.checkDataRoom(data.length);
    if (this.uploading.has(resultId))
      throw failedPrecondition(`an upload of result ${resultId} is under way: wait for its answer`);
    const staged: Result = { ...r, status: "COMPLETED", data, size: data.length, completedAt: Date.now() };
    this.uploading.add(resultId);
    try {
      this.s.store.result(staged);
      try {
        await this.s.store.flush();
      } catch (err) {
        this.s.store.discard([], [staged]);
        throw err;
      }
      // The data is on disk already: completing the result rewrites its row, not its data.
      r.stored = staged.stored;
      // The staged copy stays listed with its commit until its records leave memory (2 s): without
      // its data, so that the data goes when the result does, not up to 2 s after.
      staged.data = null;
      return this.uploadResult(resultId, data);
    } finally {
      this.uploading.delete(resultId);
    }
  }

  /** A range of a COMPLETED result's data, from memory or from the store. */
  resultRange(resultId: string, offset: number, length: number): { data: Buffer; size: number } {
    const r = this.s.result(resultId);
    if (r.status !== "COMPLETED") {
      throw failedPrecondition(
        `result ${resultId} is ${r.status}: its data can be downloaded once it is COMPLETED`,
      );
    }
    const end = Math.min(r.size, offset + length);
    if (offset > r.size)
      throw invalidArgument(`offset ${offset} is past the end of result ${resultId} (${r.size} bytes)`);
    const held = r.data ?? this.s.cache.get(r.id);
    const data = held ? held.subarray(offset, end) : this.s.store.readData(r.id, offset, end - offset);
    return { data, size: r.size };
  }

  /** A COMPLETED result's data: from memory, from the cache of recent outputs, or from the store. */
  resultData(resultId: string): Buffer {
    return this.dataOf(this.s.result(resultId));
  }

  /** As resultData, for a result record in hand (of result() or findResults()). */
  dataOf(r: Result): Buffer {
    const resultId = r.id;
    if (r.status === "COMPLETED") {
      const held = r.data ?? this.s.cache.get(r.id);
      if (held) return held;
      if (r.stored) return this.s.store.readData(r.id, 0, r.size);
    }
    if (r.status === "DELETED")
      throw failedPrecondition(
        `result ${resultId} is DELETED: its data was deleted (results.deleteData, or a purge)`,
      );
    throw failedPrecondition(
      `result ${resultId} is ${r.status}: its data can be downloaded once it is COMPLETED`,
    );
  }

  /**
   * The store has committed these results' data: task outputs leave the server's memory for the cache
   * of recent outputs (bounded), so that memory follows live work, not history (issue 18 item 1). Data
   * a client gave (payloads, inputs) stays while its session lives: tasks read it when dispatched.
   */
  dataStored(results: readonly Result[]): void {
    for (const r of results) {
      if (r.ownerTaskId === null || r.status !== "COMPLETED" || !r.data || !r.stored) continue;
      this.s.cache.put(r.id, r.data);
      r.data = null;
    }
  }

  /**
   * `results.deleteData` (ArmoniK's DeleteResultsData): the data of COMPLETED results leaves memory, the
   * cache and the store; the results stay, DELETED, so that a download or a task that needs one says
   * why. Committed before it takes effect (a refused commit changes nothing); a restart finishes it.
   */
  async deleteResultsData(resultIds: string[]): Promise<string[]> {
    this.s.requireBatch(resultIds.length, "results");
    const targets = resultIds.map((id) => this.s.result(id));
    for (const r of targets) {
      if (r.status !== "COMPLETED" && r.status !== "DELETED")
        throw failedPrecondition(
          `result ${r.id} is ${r.status}: only the data of a COMPLETED result can be deleted`,
        );
    }
    const live = [...new Set(targets.filter((r) => r.status === "COMPLETED"))];
    const staged: Result[] = live.map((r) => ({ ...r, data: null, status: "DELETED" }));
    for (const s of staged) this.s.store.result(s);
    try {
      await this.s.store.flush();
    } catch (err) {
      this.s.store.discard([], staged);
      throw err;
    }
    const deleted: string[] = [];
    for (const r of live) {
      if (r.status !== "COMPLETED") continue;
      this.s.resultBytes -= r.size;
      this.dropResultData(r);
      this.s.events.resultStatus(r);
      deleted.push(r.id);
    }
    return deleted;
  }

  /** A COMPLETED result's data deleted, its metadata kept (DELETED). */
  dropResultData(r: Result): void {
    r.data = null;
    this.s.cache.delete(r.id);
    r.status = "DELETED";
    r.stored = false;
    this.s.store.result(r);
    this.s.store.deleteResultData(r.id);
  }
}
