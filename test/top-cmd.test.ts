/**
 * `zgrid top`: one snapshot (--once, or stdout not a terminal) of a server in this process with queued
 * tasks in a partition no worker serves and one worker host on another partition.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, encodePayload, type ZgridClient } from "../src/client/index.js";
import type { ConnectionInfo, Server } from "../src/daemons/server.js";
import { renderTop, type TopSnapshot } from "../src/cli/top-cmd.js";
import {
  EXAMPLE_APPS,
  removeDir,
  runCli,
  spawnCli,
  startServer,
  tempDir,
  waitFor,
  type Proc,
} from "./helpers.js";

describe("zgrid top", { concurrency: true }, () => {
  let server: Server;
  let info: ConnectionInfo;
  let client: ZgridClient;
  let worker: Proc;
  let dir: string;
  let infoFile: string;
  let sessionId: string;

  before(async () => {
    dir = tempDir();
    infoFile = join(dir, "connection.json");
    ({ server, info } = await startServer({ connectionInfo: infoFile }));
    client = await connect(info.url);
    sessionId = await client.createSession({ applicationName: "hello", partitionId: "top-queue" });
    await client.submitTasks(
      sessionId,
      Array.from({ length: 7 }, () => ({ payload: encodePayload("noop") })),
    );
    worker = spawnCli([
      "worker",
      "--connect",
      info.workerUrl,
      "--app-path",
      EXAMPLE_APPS,
      "--slots",
      "2",
      "--partition",
      "top-workers",
    ]);
    await waitFor(async () => (await client.listWorkers()).total === 1, 15_000, "the worker to connect");
  });
  after(async () => {
    await worker?.stop();
    await client?.close();
    await server?.shutdown();
    removeDir(dir);
  });

  it("--once --url prints the header, tasks by status, the queue, workers and sessions", async () => {
    const r = await runCli(["top", "--once", "--url", info.url]);
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout;
    assert.match(out, /^zgrid \S+ at 127\.0\.0\.1:\d+, up \d+/);
    assert.match(out, /sessions 1, tasks 7, workers 1, slots 0\/2 busy/);
    assert.match(out, /\nTASKS\n {2}.*SUBMITTED 7/);
    assert.match(out, /\nTHROUGHPUT\n {2}completed - tasks\/s \(needs two refreshes\)/);
    assert.match(out, /\nQUEUE\n {2}PARTITION\s+QUEUED\n(?: {2}.*\n)*? {2}top-queue\s+7\n/);
    assert.match(
      out,
      /\nWORKERS \(1\)\n {2}ID\s+PARTITIONS\s+BUSY\/SLOTS\s+HEARTBEAT\s+HOST\n {2}\S+\s+top-workers\s+0\/2\s+\d+\.\ds\s/,
    );
    assert.match(
      out,
      new RegExp(
        `\\nSESSIONS \\(1 most recent of 1\\)\\n.*\\n {2}${sessionId}\\s+RUNNING\\s+7\\s+\\S+\\s+SUBMITTED 7`,
      ),
    );
    assert.ok(!out.includes("\x1b["), "no escape sequences when the output is not a terminal");
  });

  it("without --once, on a pipe, prints one snapshot and exits 0 (found through --connection-info)", async () => {
    const r = await runCli(["top", "--connection-info", infoFile, "--interval", "200"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.match(/^zgrid /gm)?.length, 1);
    assert.match(r.stdout, /top-queue\s+7/);
  });

  it("rejects a bad --interval with exit 2 and prints --help", async () => {
    const bad = await runCli(["top", "--once", "--url", info.url, "--interval", "5"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--interval/);
    const help = await runCli(["top", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /zgrid top \[--url URL/);
  });

  it("computes throughput from COMPLETED between two snapshots", () => {
    const base = (at: number, completed: number): TopSnapshot => ({
      at,
      status: { uptimeSeconds: 10, scheduler: { tasksByStatus: { COMPLETED: completed } } },
      workers: [],
      workersTotal: 0,
      sessions: [],
      sessionsTotal: 0,
    });
    const text = renderTop(base(3000, 500), base(1000, 100));
    assert.match(text, /completed 200\.0 tasks\/s over the last 2\.0s; average since start 50\.0 tasks\/s/);
  });
});
