/**
 * HTC-Grid's client API (seed 003) on zgrid: send a list of JSON objects, get their outputs by outcome,
 * cancel a session.
 *
 *   node dist/examples/clients/htc-grid.js [URL]
 *
 * URL defaults to ZGRID_URL. The tasks run the "htcgrid" application (examples/apps/htcgrid.js), whose
 * run(task) sums task.values, sleeps task.sleep_ms, or fails with task.fail. Exits 0 when every outcome
 * is the expected one.
 * Imports "zgrid/client" as your own project does (in this repo, Node resolves the package by its own name).
 */
import { HtcGridConnector } from "zgrid/client";

// ---- The connector takes HTC-Grid's client_config_data; AWS-only keys are ignored ----------------
const gridConnector = new HtcGridConnector({
  grid_url: process.argv[2] ?? process.env.ZGRID_URL,
  application_name: "htcgrid",
  dynamodb_results_pull_interval_sec: 1,
  task_timeout_sec: 60,
  region: "eu-west-1", // ignored
});

let ok = true;
const expect = (cond: boolean, what: string) => {
  if (!cond) {
    ok = false;
    console.log(`UNEXPECTED: ${what}`);
  }
};

try {
  // ---- authenticate(): the token is checked with a round trip ------------------------------------
  await gridConnector.authenticate();

  // ---- send(): one session, one task per object ------------------------------------------------------
  const tasks = [{ values: [1, 2, 3] }, { values: [10, 20] }, { fail: "this task was told to fail" }];
  const submission = await gridConnector.send(tasks);
  console.log(`session ${submission.session_id}: ${submission.task_ids.length} tasks sent`);

  // ---- get_results(): blocks until every task is final or the timeout passes ------------------------
  const results = await gridConnector.getResults(submission, 30);
  console.log(JSON.stringify(results, null, 2));
  const sums = results.finished_OUTPUT.map((o) => (o as { sum: number }).sum);
  expect(results.metadata.tasks_in_response === 3, "3 tasks in the response");
  expect(JSON.stringify(sums) === "[6,30]", "finished outputs 6 and 30");
  expect(results.failed.length === 1 && /told to fail/.test(results.failed_OUTPUT[0]), "one failure");

  // ---- cancel_sessions(): tasks still queued or running are cancelled ------------------------------
  const slow = await gridConnector.send(Array.from({ length: 4 }, () => ({ sleep_ms: 60_000 })));
  const early = await gridConnector.getResults(slow, 0.2);
  console.log(`after 0.2 s: ${early.metadata.tasks_in_response} of 4 slow tasks final`);
  const counts = await gridConnector.cancelSessions([slow.session_id]);
  console.log(JSON.stringify(counts, null, 2));
  expect(counts[slow.session_id].total_cancelled_tasks === 4, "4 tasks cancelled");
  const after = await gridConnector.getResults(slow, 10);
  expect(after.cancelled.length === 4, "4 cancelled tasks reported");

  console.log(ok ? "all outcomes as expected" : "UNEXPECTED outcomes");
  process.exitCode = ok ? 0 : 1;
} finally {
  await gridConnector.close();
}
