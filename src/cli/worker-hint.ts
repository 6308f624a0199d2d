import type { ZgridClient } from "../client/client.js";
import { escapeControls } from "../protocol/describe.js";

/** How long a wait lasts before the server is asked why (ms), and how often then. */
const HINT_AFTER_MS = 2000;
const HINT_EVERY_MS = 1000;

/**
 * Tasks no worker can take wait in silence: once a wait has lasted `afterMs`, this asks the server's
 * health every second, and once it says that tasks wait for a worker (none serves their partition, or
 * none of the partition's has their application), `say` hears it once, with how to start one. The wait
 * goes on. Returns what stops the watch.
 */
export function watchForIdleTasks(
  client: ZgridClient,
  say: (line: string) => void,
  afterMs = HINT_AFTER_MS,
): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  const check = async (): Promise<void> => {
    timer = null;
    const health = await client.health().catch(() => null);
    if (stopped) return;
    const why: string[] = [];
    if (health && health.checks.queue !== "ok") why.push(health.checks.queue);
    if (health?.checks.applications) why.push(health.checks.applications);
    if (why.length > 0) {
      stopped = true;
      say(
        `waiting: ${escapeControls(why.join("; "))}. Start a worker that serves them: zgrid worker --connect URL ` +
          `--app-path DIR [--partition P] (URL: the "workers" URL zgrid server printed)`,
      );
      return;
    }
    timer = setTimeout(() => void check(), HINT_EVERY_MS).unref();
  };
  timer = setTimeout(() => void check(), afterMs).unref();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
