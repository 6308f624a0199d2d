import type { Logger } from "../log.js";
import { MemoryStore } from "./memory-store.js";
import { PgStore } from "./pg-store.js";
import { SqliteStore } from "./sqlite-store.js";
import type { Store } from "./store.js";

export type { Store, LoadedState, StoreStats } from "./store.js";
export { StoreOpenError } from "./store.js";
export { DataDirLockedError } from "./lock.js";

export const STORE_NAMES = ["sqlite", "postgres", "memory"] as const;

/** The store `--store` names: SQLite in `dataDir`, PostgreSQL at `pgUrl`, or memory. */
export function openStore(name: string, dataDir: string, log?: Logger, pgUrl?: string): Store {
  if (name === "memory") return new MemoryStore();
  if (name === "postgres") return new PgStore(pgUrl!, log);
  return new SqliteStore(dataDir, log);
}
