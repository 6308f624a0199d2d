import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

let collect: (() => void) | null | undefined;

/**
 * A full garbage collection of this thread's heap, once a burst of work has left memory and the
 * thread is idle. V8 collects only when it allocates, so an idle server would otherwise keep the
 * garbage of its last burst (and the RSS of it) until its next one. Node gives `gc` only to a process
 * started with --expose-gc; the flag set now exposes it to a new context, whose `gc` collects the
 * whole heap. Returns false where that is refused (nothing is collected then).
 */
export function collectGarbage(): boolean {
  if (collect === undefined) {
    try {
      setFlagsFromString("--expose-gc");
      collect = runInNewContext("gc") as () => void;
    } catch {
      collect = null;
    }
  }
  if (!collect) return false;
  compacting(collect);
  // A second collection, once the first has settled, frees what the first could not (as V8's own
  // memory reducer does).
  setTimeout(() => collect && compacting(collect), 1000).unref();
  return true;
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
