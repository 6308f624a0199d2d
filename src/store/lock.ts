import {
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";

/** Refusal to use a data dir another live server holds. */
export class DataDirLockedError extends Error {
  override readonly name = "DataDirLockedError";
}

/**
 * How long an attempt waits for the lock. Not 0: SQLite takes a shared lock before the exclusive one,
 * so two processes that try at the same moment can each see the other's shared lock and, without a
 * wait, both give up. With a wait, the one that reached the exclusive step waits (holding the pending
 * lock) while the other backs off, releasing its shared lock: exactly one wins. A start refused because
 * a server runs takes this long.
 */
const BUSY_TIMEOUT_MS = 500;

/**
 * The locks this process holds, by lock file (realpath): so that it never opens one of them again, and
 * so that a connection stays referenced (a garbage-collected one is closed, which drops its lock) even
 * if the unlock function is dropped.
 */
const held = new Map<string, Database.Database>();

/** The pid in `<dataDir>/server.lock.pid`, for the message only: a pid never decides anything. */
function ownerPid(pidFile: string): number | null {
  try {
    const text = readFileSync(pidFile, "utf8").trim();
    return /^[1-9]\d*$/.test(text) ? Number(text) : null;
  } catch {
    return null;
  }
}

function lockedError(dataDir: string, pid: number | null): DataDirLockedError {
  return new DataDirLockedError(
    `the data dir ${dataDir} is in use by another zgrid server${pid === null ? "" : ` (pid ${pid})`}; ` +
      "stop it, or start this one with another --data-dir",
  );
}

/**
 * One server per data dir: an exclusive lock on `<dataDir>/server.lock`, held for the server's lifetime
 * on an open file and released by the kernel when the process ends, however it ends (a server killed
 * with -9, a container's pid 1 that crashed). The file is an empty SQLite database, locked by SQLite
 * (POSIX fcntl locks) with a `BEGIN EXCLUSIVE` transaction that stays open; nothing is ever written to
 * it, so it stays empty. A second process gets SQLITE_BUSY after BUSY_TIMEOUT_MS.
 *
 * fcntl locks belong to the process, and closing any descriptor of the file drops them all: only
 * SQLite (which tracks its descriptors per file and keeps them open while a lock is held) opens the
 * file while this process may hold it, never `fs`. The owner's pid is written to
 * `<dataDir>/server.lock.pid` for the refusal message only.
 *
 * An earlier zgrid wrote its pid into `server.lock` (a non-empty file); such a file is emptied in
 * place (same inode, so racing starts all lock the same file) and then locked like any other.
 *
 * Returns the unlock function: it releases the lock and closes the file (idempotent).
 */
export function lockDataDir(dataDir: string): () => void {
  const file = join(dataDir, "server.lock");
  const pidFile = join(dataDir, "server.lock.pid");
  const key = join(realpathSync(dataDir), "server.lock");
  if (held.has(key)) throw lockedError(dataDir, process.pid);

  // A lock file we hold is empty and not opened here: a non-empty one is an old pid file (or junk).
  let size = 0;
  try {
    size = statSync(file).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  if (size > 0) truncateSync(file, 0);

  let db: Database.Database;
  try {
    db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
  } catch (err) {
    throw new Error(`cannot lock the data dir ${dataDir} (${file}): ${(err as Error).message}`, {
      cause: err,
    });
  }
  try {
    db.pragma("journal_mode = MEMORY");
    db.exec("BEGIN EXCLUSIVE");
  } catch (err) {
    db.close();
    if (String((err as { code?: unknown }).code).startsWith("SQLITE_BUSY")) {
      throw lockedError(dataDir, ownerPid(pidFile));
    }
    throw new Error(`cannot lock the data dir ${dataDir} (${file}): ${(err as Error).message}`, {
      cause: err,
    });
  }
  held.set(key, db);
  try {
    const tmp = `${pidFile}.${process.pid}.tmp`;
    writeFileSync(tmp, `${process.pid}\n`);
    renameSync(tmp, pidFile);
  } catch {
    /* the pid is for messages only */
  }

  let locked = true;
  return () => {
    if (!locked) return;
    locked = false;
    if (ownerPid(pidFile) === process.pid) rmSync(pidFile, { force: true });
    try {
      db.close();
    } finally {
      held.delete(key);
    }
  };
}
