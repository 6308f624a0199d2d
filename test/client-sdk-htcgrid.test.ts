/**
 * HtcGridConnector (seed 003) against a real server and a real worker process running
 * examples/apps/htcgrid.js: send → get_results with finished, failed and cancelled tasks in the seed's
 * shapes (outputs included), timeouts leaving unfinished tasks out, cancel_sessions counts by state.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import { HtcGridConnector } from "../src/client/htc-grid.js";
import type { Server } from "../src/daemons/server.js";
import { ZgridError } from "../src/protocol/errors.js";
import { EXAMPLE_APPS, startServer, waitFor, type Proc, spawnWorker } from "./helpers.js";

const KEYS = [
  "finished",
  "finished_OUTPUT",
  "failed",
  "failed_OUTPUT",
  "cancelled",
  "cancelled_OUTPUT",
  "metadata",
];

describe("HtcGridConnector with a real worker", () => {
  let server: Server;
  let client: ZgridClient;
  let worker: Proc;
  const grids: HtcGridConnector[] = [];
  const connector = (config: Record<string, unknown> = {}): HtcGridConnector => {
    const g = new HtcGridConnector({
      grid_url: server.info!.url,
      dynamodb_results_pull_interval_sec: 0.5,
      ...config,
    });
    grids.push(g);
    return g;
  };

  before(async () => {
    ({ server } = await startServer({ heartbeatMs: 200 }));
    client = await connect(server.info!.url, { timeoutMs: 10_000 });
    // Two slots and no prefetch: exactly two tasks run at a time, the others stay queued.
    worker = await spawnWorker(server, EXAMPLE_APPS, 2, ["--prefetch", "0"]);
  });
  after(async () => {
    await Promise.all(grids.map((g) => g.close()));
    await worker.stop();
    await client.close();
    await server.shutdown();
  });

  it("send → get_results: finished with their outputs, failed with their errors, in order", async () => {
    const grid = connector({ task_timeout_sec: 30, priority: 3, region: "ignored", s3_bucket: "ignored" });
    await grid.authenticate();
    const submission = await grid.send([
      { values: [1, 2, 3] },
      { values: [4] },
      { fail: "told to fail" },
      { label: "no values" },
    ]);
    assert.deepEqual(Object.keys(submission).sort(), ["session_id", "task_ids"]);
    assert.equal(submission.task_ids.length, 4);
    const info = await client.getTask(submission.task_ids[0]);
    assert.equal(info.sessionId, submission.session_id);
    assert.equal(info.options.applicationName, "htcgrid");
    assert.equal(info.options.maxDuration, 30_000);
    assert.equal(info.options.priority, 3);

    const r = await grid.getResults(submission, 20);
    assert.deepEqual(Object.keys(r).sort(), [...KEYS].sort());
    const [t0, t1, t2, t3] = submission.task_ids;
    assert.deepEqual(r.finished, [t0, t1, t3]);
    assert.deepEqual(r.finished_OUTPUT, [
      { ok: true, input: { values: [1, 2, 3] }, count: 3, sum: 6 },
      { ok: true, input: { values: [4] }, count: 1, sum: 4 },
      { ok: true, input: { label: "no values" } },
    ]);
    assert.deepEqual(r.failed, [t2]);
    assert.match(r.failed_OUTPUT[0], /told to fail/);
    assert.deepEqual(r.cancelled, []);
    assert.deepEqual(r.cancelled_OUTPUT, []);
    assert.deepEqual(r.metadata, { tasks_in_response: 4 });

    // Another connector, which never saw the submission, gets the same answer (HTC-Grid's alias name).
    const other = connector();
    assert.deepEqual(await other.get_results(submission, 5), r);
  });

  it("get_results leaves out what is not final by the timeout; cancel_sessions counts by state", async () => {
    const grid = connector();
    const slow = await grid.send(Array.from({ length: 5 }, (_, i) => ({ sleep_ms: 20_000, i })));
    await waitFor(
      async () => (await client.countTasks({ sessionId: slow.session_id })).PROCESSING === 2,
      10_000,
      "two tasks processing",
    );
    const started = Date.now();
    const early = await grid.getResults(slow, 0.3);
    const elapsed = Date.now() - started;
    // The tasks sleep 20 s: 10 s tells a return at the timeout from one at their end.
    assert.ok(elapsed >= 250 && elapsed < 10_000, `get_results returned after ${elapsed} ms`);
    assert.deepEqual(early.metadata, { tasks_in_response: 0 });
    assert.deepEqual([early.finished, early.failed, early.cancelled], [[], [], []]);

    const counts = await grid.cancelSessions([slow.session_id]);
    assert.deepEqual(counts, {
      [slow.session_id]: {
        cancelled_pending: 3,
        cancelled_processing: 2,
        cancelled_retrying: 0,
        total_cancelled_tasks: 5,
      },
    });
    const after = await grid.getResults(slow, 10);
    assert.deepEqual(after.cancelled, slow.task_ids);
    assert.equal(after.cancelled_OUTPUT.length, 5);
    for (const text of after.cancelled_OUTPUT) assert.match(text, /cancelled/);
    assert.deepEqual(after.metadata, { tasks_in_response: 5 });
    assert.deepEqual([after.finished, after.failed], [[], []]);

    // A session cannot be cancelled twice; the error names it.
    await assert.rejects(
      grid.cancel_sessions([slow.session_id]),
      (err: ZgridError) => err instanceof ZgridError && err.message.includes(slow.session_id),
    );
  });

  it("authenticate checks the token; a config token wins over the URL's", async () => {
    const wrong = server.info!.url.replace(/token=[^&]*/, "token=wrong");
    const bad = connector({ grid_url: wrong });
    await assert.rejects(bad.authenticate(), (err: ZgridError) => err.code === "UNAUTHENTICATED");
    const good = connector({ grid_url: wrong, token: "test-token" });
    await good.authenticate();
    await assert.rejects(good.send([]), /non-empty list/);
    await assert.rejects(good.send([{ n: BigInt(1) }]), /task 0 is not JSON-serialisable/);
  });
});
