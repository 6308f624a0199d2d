import { failedPrecondition } from "../protocol/errors.js";
import type { Result, Task } from "../scheduler/model.js";
import type { LoadedState, Store, StoreStats, StoredResults } from "./store.js";

/**
 * `--store memory`: the scheduler's own maps are the only copy, finished records included; nothing
 * survives a restart.
 */
export class MemoryStore implements Store {
  readonly name = "memory";
  readonly keepsData = true;
  onStored: ((results: readonly Result[]) => void) | null = null;
  /** Never called: with no disk to read them back from, records stay in memory (docs/protocol.md). */
  onCommitted: ((tasks: Iterable<Task>, results: Iterable<Result>) => void) | null = null;
  private static readonly done = Promise.resolve();

  load(): LoadedState {
    return { sessions: [], results: [], tasks: [] };
  }
  session(): void {}
  result(): void {}
  task(): void {}
  deleteSession(): void {}
  deleteResultData(): void {}
  deleteStoredResult(): void {}
  isDirty(): boolean {
    return false;
  }
  getTask(): Task | undefined {
    return undefined;
  }
  getTasks(): Map<string, Task> {
    return new Map();
  }
  getResult(): Result | undefined {
    return undefined;
  }
  getResults(): StoredResults {
    return { results: new Map(), data: new Map() };
  }
  scanTasks(): Iterable<Task> {
    return [];
  }
  scanResults(): Iterable<Result> {
    return [];
  }
  keepRequest(): void {}
  readData(resultId: string): Buffer {
    throw failedPrecondition(`result ${resultId} has no data in memory`);
  }
  flush(): Promise<void> {
    return MemoryStore.done;
  }
  discard(): void {}
  commitSoon(): void {}
  backlogged(): null {
    return null;
  }
  stats(): StoreStats {
    return {
      name: this.name,
      sizeBytes: 0,
      pendingWrites: 0,
      reads: 0,
      backlogWaits: 0,
      location: "memory",
      durability: "none",
    };
  }
  async close(): Promise<void> {}
}
