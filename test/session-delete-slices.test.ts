/**
 * A session's purge and deletion reach the records that left memory (read back from the store) without
 * holding the server: they are read in slices, other requests answered between them, and the rows go
 * on the store's writer thread. A session of 200,000 finished tasks held every other request for over
 * three seconds, long enough for its workers to take the server for lost.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import { encodePayload } from "../src/client/payload.js";
import type { Server } from "../src/daemons/server.js";
import { ErrorCode, type ZgridError } from "../src/protocol/errors.js";
import { SCAN_SLICE } from "../src/scheduler/listing.js";
import type { Store } from "../src/store/store.js";
import { Op } from "../src/store/write-ops.js";
import { startServer, waitFor } from "./helpers.js";

/** Enough finished tasks (each with its payload and output) for several slices of each kind. */
const TASKS = 3 * SCAN_SLICE;

describe("purging and deleting a session of many tasks", { timeout: 180_000 }, () => {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  /**
   * A server on `store` with a session of TASKS cancelled tasks (finished, no worker needed), a client,
   * and another client that asks the server something over and over until `stop()`: `answered()` says
   * how many it was answered so far.
   */
  async function cancelledSession(store: "sqlite" | "memory") {
    const { server, info } = await startServer({ store });
    cleanup.push(() => server.shutdown());
    const c = await connect(info.url, { timeoutMs: 60_000 });
    cleanup.push(() => c.close());
    const other = await connect(info.url, { timeoutMs: 60_000 });
    cleanup.push(() => other.close());
    const sessionId = await c.createSession({ applicationName: "hello" });
    await c.submitTasks(sessionId, new Array(TASKS).fill({ payload: encodePayload("noop") }));
    await c.cancelSession(sessionId);
    let answered = 0;
    let busy = true;
    let pings: Promise<void> | null = null;
    return {
      server,
      c,
      sessionId,
      answered: () => answered,
      ping(): void {
        pings = (async () => {
          while (busy) {
            await other.request("noop", {});
            answered++;
          }
        })();
      },
      async stop(): Promise<void> {
        busy = false;
        await pings;
      },
    };
  }

  /** The session's tasks and results are gone, and counted out. */
  async function gone(server: Server, c: ZgridClient, sessionId: string): Promise<void> {
    assert.equal((await c.countTasks()).CANCELLED, 0, "the deleted tasks are counted out");
    assert.equal((await c.listResults({ filter: { sessionId } })).total, 0);
    assert.equal(server.scheduler.results.size, 0);
  }

  it("reads its stored records in slices, answering other requests meanwhile, and deletes them off the server's thread", async () => {
    const g = await cancelledSession("sqlite");
    const { server, c, sessionId } = g;
    await waitFor(
      () => server.scheduler.tasks.size === 0 && server.scheduler.results.size === 0,
      60_000,
      "the finished records to leave memory",
    );

    // What the other client had been answered when the first and the last stored record were read.
    const store: Store = server.scheduler.store;
    const reads: [number, number][] = [];
    const watched = <T>(read: Iterable<T>): Iterable<T> => {
      const span: [number, number] = [-1, -1];
      reads.push(span);
      return (function* () {
        for (const record of read) {
          if (span[0] < 0) span[0] = g.answered();
          span[1] = g.answered();
          yield record;
        }
      })();
    };
    const { scanTasks, scanResults } = store;
    store.scanTasks = (...args) => watched(scanTasks.apply(store, args));
    store.scanResults = (...args) => watched(scanResults.apply(store, args));
    // Operations the store commits on the server's own thread.
    const inline: unknown[] = [];
    const backend = store as unknown as { runInline: (ops: unknown[][]) => void };
    const runInline = backend.runInline;
    backend.runInline = (ops) => {
      for (const op of ops) inline.push(op[0]);
      runInline(ops);
    };
    g.ping();
    try {
      const { purgedResults } = await c.purgeSession(sessionId);
      assert.equal(purgedResults, TASKS, "every payload (the outputs were aborted)");
      const removed = (await c.deleteSession(sessionId)) as { removed: { tasks: number; results: number } };
      assert.deepEqual(removed.removed, { tasks: TASKS, results: 2 * TASKS });
    } finally {
      await g.stop();
      store.scanTasks = scanTasks;
      store.scanResults = scanResults;
      backend.runInline = runInline;
    }

    // The purge's read of the results, then the deletion's of the tasks and of the results.
    assert.equal(reads.length, 3);
    for (const [first, last] of reads) {
      assert.ok(
        last > first,
        `other requests answered while the stored records were read: ${first}, ${last}`,
      );
    }
    assert.ok(!inline.includes(Op.DeleteSession), "the session's rows were deleted on the server's thread");
    await gone(server, c, sessionId);
  });

  it("with --store memory, walks the records in memory in slices too; a second change meanwhile is refused", async () => {
    const g = await cancelledSession("memory");
    const { server, c, sessionId } = g;
    // What the other client had been answered when the deletion visited its first and last result.
    const span: [number, number] = [-1, -1];
    const results = server.scheduler.results;
    const values = results.values;
    results.values = function* () {
      for (const r of values.call(results)) {
        if (r.sessionId === sessionId) {
          if (span[0] < 0) span[0] = g.answered();
          span[1] = g.answered();
        }
        yield r;
      }
    };
    g.ping();
    try {
      const deleting = c.deleteSession(sessionId) as Promise<{ removed: { tasks: number; results: number } }>;
      // Asked while the first deletion goes on (the first slice is under way by the time this is read).
      const again = await c.deleteSession(sessionId).then(
        () => null,
        (err: ZgridError) => err,
      );
      assert.equal(again?.code, ErrorCode.FAILED_PRECONDITION, String(again));
      assert.match(again.message, /being changed by another request/);
      assert.deepEqual((await deleting).removed, { tasks: TASKS, results: 2 * TASKS });
    } finally {
      await g.stop();
      results.values = values;
    }
    assert.ok(span[1] > span[0], `other requests answered while the results were walked: ${span.join(", ")}`);
    await gone(server, c, sessionId);
    assert.equal(server.scheduler.resultCount, 0, "each result counted out once");
  });
});
