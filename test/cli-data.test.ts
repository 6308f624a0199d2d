import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import { encodePayload } from "../src/client/payload.js";
import type { Server } from "../src/daemons/server.js";
import { runCli, spawnCli, startServer, waitFor } from "./helpers.js";

/** C0 (but the new line), DEL and C1 characters. */
// eslint-disable-next-line no-control-regex
const CONTROLS_BUT_NEW_LINE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

describe("zgrid sessions|tasks|results|events", () => {
  let server: Server;
  let client: ZgridClient;
  let sessionId: string;
  let taskIds: string[];

  before(async () => {
    ({ server } = await startServer());
    client = await connect(server.info!.url);
    sessionId = await client.createSession({ partitionId: "nobody" });
    taskIds = (
      await client.submitTasks(
        sessionId,
        Array.from({ length: 3 }, () => ({ payload: encodePayload("noop") })),
      )
    ).map((t) => t.taskId);
  });
  after(async () => {
    await client.close();
    await server.shutdown();
  });

  it("lists as JSON that parses and as a table", async () => {
    const url = server.info!.url;
    const json = await runCli(["tasks", "list", "--url", url, "--session", sessionId, "--json"]);
    assert.equal(json.code, 0, json.stderr);
    const page = JSON.parse(json.stdout) as { items: { taskId: string }[]; total: number };
    assert.equal(page.total, 3);
    assert.deepEqual(page.items.map((t) => t.taskId).sort(), [...taskIds].sort());
    const tableOut = await runCli(["tasks", "list", "--session", sessionId, "--status", "submitted"], {
      ZGRID_URL: url,
    });
    assert.equal(tableOut.code, 0, tableOut.stderr);
    assert.match(tableOut.stdout, /^TASK\s+STATUS\s+PARTITION/m);
    assert.match(tableOut.stdout, /3 of 3 tasks/);
    const sessions = JSON.parse((await runCli(["sessions", "list", "--url", url, "--json"])).stdout) as {
      total: number;
    };
    assert.ok(sessions.total >= 1);
    const results = await runCli(["results", "list", "--url", url, "--session", sessionId, "--json"]);
    assert.equal((JSON.parse(results.stdout) as { total: number }).total, 6);
    const get = JSON.parse((await runCli(["tasks", "get", taskIds[0], "--url", url, "--json"])).stdout) as {
      status: string;
    };
    assert.equal(get.status, "SUBMITTED");
  });

  it("cancels by id, and exits 1 on a server error and 2 on a usage error", async () => {
    const url = server.info!.url;
    const r = await runCli(["tasks", "cancel", taskIds[0], "--url", url, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { cancelled: { SUBMITTED: 1 } });
    const missing = await runCli(["tasks", "get", "nope", "--url", url]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /NOT_FOUND/);
    assert.equal((await runCli(["tasks", "frobnicate", "--url", url])).code, 2);
  });

  it("writes out the control characters of names a client gave: tables and events never drive the terminal", async () => {
    const url = server.info!.url;
    const evil = "x\u001b[2J\u001b]0;pwned\u0007\nforged line";
    const s = await client.createSession({ partitionId: "nobody" });
    const [r] = await client.createResults(s, [{ name: evil }]);
    const escaped = "x\\x1b[2J\\x1b]0;pwned\\x07\\nforged line";
    const list = await runCli(["results", "list", "--url", url, "--session", s]);
    assert.equal(list.code, 0, list.stderr);
    assert.ok(list.stdout.includes(escaped), list.stdout);
    assert.doesNotMatch(list.stdout, CONTROLS_BUT_NEW_LINE, "no control character but new lines");
    assert.doesNotMatch(list.stdout, /^forged line/m, "no line of the name's own");
    const p = spawnCli(["events", "--url", url, "--session", s]);
    try {
      await waitFor(() => p.stdout().includes(r.resultId), 10_000, "the result's event");
      assert.ok(p.stdout().includes(escaped), p.stdout());
      assert.doesNotMatch(p.stdout(), CONTROLS_BUT_NEW_LINE, p.stdout());
    } finally {
      p.child.kill("SIGINT");
      await p.exited;
    }
  });

  it("watches a session's events live", async () => {
    const p = spawnCli(["events", "--url", server.info!.url, "--session", sessionId, "--json"]);
    try {
      await waitFor(
        () =>
          p
            .stdout()
            .split("\n")
            .filter((l) => l.includes('"newTask"')).length === 3,
        10_000,
        "snapshot",
      );
      await client.cancelSession(sessionId);
      await waitFor(() => p.stdout().includes('"CANCELLED"'), 10_000, "a live update");
      const lines = p.stdout().trim().split("\n");
      for (const line of lines) assert.ok(JSON.parse(line).type);
    } finally {
      p.child.kill("SIGINT");
      await p.exited;
    }
  });
});
