import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** native/idle-memory (idle_memory.cc), which `npm install` builds (native/build.mjs). */
interface IdleMemoryAddon {
  lowMemory(): void;
  /** Absent from an addon built before it was added. */
  memoryPressure?: () => void;
  /** Absent where the C library is not glibc. */
  trim?: () => boolean;
}

let addon: IdleMemoryAddon | null | undefined;
let collect: ((options?: { type: "minor" | "major" }) => void) | null | undefined;

function idleMemoryAddon(): IdleMemoryAddon | null {
  if (addon === undefined) {
    try {
      // dist/src/gc.js is two levels under the package's root.
      const path = new URL("../../native/idle-memory/build/Release/idle_memory.node", import.meta.url);
      addon = createRequire(import.meta.url)(fileURLToPath(path)) as IdleMemoryAddon;
    } catch {
      addon = null;
    }
  }
  return addon;
}

/**
 * Gives back the memory of a burst of work once it has left and the thread is idle (the scheduler, and
 * the store's writer thread, call it). V8 collects only when it allocates, so an idle server would keep
 * the garbage of its last burst, and the RSS of it, until its next one:
 *
 * - With native/idle-memory: V8's LowMemoryNotification (full collections that compact every page and
 *   shrink the young generation, which grows to 32 MiB a thread under load), then glibc's
 *   malloc_trim(0): free() gives back only the top of each malloc heap, and the large buffers of
 *   batches and commits leave the heaps fragmented (an idle server that had run a million tasks held
 *   120 MB more than it needed without it).
 * - Without it (not built): a compacting full collection through `gc`, which Node gives
 *   only to a process started with --expose-gc; the flag set now exposes it to a new context. The young
 *   generation keeps its size and the C allocator its pages.
 *
 * A second round follows 1 s later, once the first has settled (finalizers have run and released
 * what they hold), as V8's own memory reducer does. Returns false where nothing can be collected.
 */
export function collectGarbage(): boolean {
  const full = fullCollection();
  if (!full) return false;
  full();
  setTimeout(() => {
    full();
    releaseFreeMemory();
  }, 1000).unref();
  return true;
}

function fullCollection(): (() => void) | null {
  const native = idleMemoryAddon();
  if (native) return () => native.lowMemory();
  const gc = exposedGc();
  return gc ? () => compacting(() => gc()) : null;
}

/** V8's `gc`, which Node gives only to a process started with --expose-gc: set now, in a new context. */
function exposedGc(): ((options?: { type: "minor" | "major" }) => void) | null {
  if (collect === undefined) {
    try {
      setFlagsFromString("--expose-gc");
      collect = runInNewContext("gc") as (options?: { type: "minor" | "major" }) => void;
    } catch {
      collect = null;
    }
  }
  return collect;
}

/**
 * Gives back the heap a burst of submissions grew but no longer uses, while the records it created stay
 * (queued tasks): V8 keeps the pages it grew to for the burst's garbage, so that a server holding a
 * million queued tasks kept 886-925 MB of RSS for a heap of 510 MB. A memory-pressure notification
 * (native/idle-memory) makes V8 collect once and release its empty pages, a pause of about 50 ms at a
 * million queued tasks; lowMemory() took 1.1 s there. malloc_trim follows once it has settled. Without
 * the addon nothing is done (a full collection through `gc` would not give the pages back): false.
 */
export function shrinkHeap(): boolean {
  const native = idleMemoryAddon();
  if (!native?.memoryPressure) return false;
  native.memoryPressure();
  setTimeout(() => releaseFreeMemory(), 1000).unref();
  return true;
}

/**
 * A young-generation collection (a few milliseconds): frees the large buffers a transfer of result
 * data just dropped (a chunk received and copied, a range sent). V8 frees them only once tens of
 * megabytes of them have piled up, through a full collection that runs late on a busy machine. Does
 * nothing where `gc` cannot be had.
 */
export function collectYoungGarbage(): void {
  exposedGc()?.({ type: "minor" });
}

/**
 * A full collection, for a thread whose heap is small (a store's thread: a few megabytes, collected in
 * a few milliseconds): frees the buffers of a chunk it just wrote, which lived through the write long
 * enough to leave the young generation. Does nothing where `gc` cannot be had.
 */
export function collectSmallHeap(): void {
  exposedGc()?.({ type: "major" });
}

/** Bytes of result data that pass through a thread between two of its collections (perDataBytes). */
const DATA_BYTES_PER_COLLECTION = 8 * 1024 * 1024;

/**
 * Counts the bytes of result data that pass through this thread (a chunk received or written, a range
 * read or sent) and runs `collect` once per 8 MiB of them: V8 would let tens of such buffers wait for a
 * collection that runs late on a busy machine, and a flood of small chunks must not ask for one each.
 */
export function perDataBytes(collect: () => void): (bytes: number) => void {
  let since = 0;
  return (bytes) => {
    since += bytes;
    if (since < DATA_BYTES_PER_COLLECTION) return;
    since = 0;
    collect();
  };
}

/** Whether native/idle-memory was built and loads here. */
export function hasIdleMemoryAddon(): boolean {
  return idleMemoryAddon() !== null;
}

/**
 * glibc's malloc_trim(0) through native/idle-memory: null where it cannot be called (the addon was not
 * built, or the C library is not glibc), else whether memory was released.
 */
export function releaseFreeMemory(): boolean | null {
  const trim = idleMemoryAddon()?.trim;
  return trim ? trim() : null;
}

/**
 * Runs `gc` with every page compacted: by default a full collection moves only the emptiest pages, and
 * an idle heap left fragmented by a burst keeps most of its pages (heapTotal 108 MB for 44 MB used).
 */
function compacting(gc: () => void): void {
  setFlagsFromString("--compact-on-every-full-gc");
  try {
    gc();
  } finally {
    setFlagsFromString("--no-compact-on-every-full-gc");
  }
}
