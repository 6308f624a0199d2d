import type { Logger } from "../log.js";
import { MemoryStore } from "./memory-store.js";
import { SqliteStore } from "./sqlite-store.js";
import type { Store } from "./store.js";

export type { Store, LoadedState, StoreStats } from "./store.js";
export { StoreOpenError } from "./sqlite-store.js";
export { DataDirLockedError } from "./lock.js";

export const STORE_NAMES = ["sqlite", "memory"] as const;

/** The store `--store` names, opened in `dataDir`. */
export function openStore(name: string, dataDir: string, log?: Logger): Store {
  return name === "memory" ? new MemoryStore() : new SqliteStore(dataDir, log);
}
