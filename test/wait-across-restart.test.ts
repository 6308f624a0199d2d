/**
 * Clients do not hang across a server restart (issue 13 item 8): a wait without a timeout, sent to a
 * server that is then killed with SIGKILL and started again on the same data dir and ports, returns
 * once the results are COMPLETED on the new server; a subscription goes on with the new server.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { connect } from "../src/client/client.js";
import { encodePayload } from "../src/client/payload.js";
import {
  EXAMPLE_APPS,
  freePorts,
  serverArgsOn,
  removeDir,
  spawnCli,
  tempDir,
  waitFor,
  type Proc,
} from "./helpers.js";

describe("a client across a server restart", () => {
  it(
    "waitResults and waitResultsData without a timeout return after kill -9 and a restart",
    { timeout: 180_000 },
    async () => {
      const dir = tempDir();
      const ports = await freePorts(4);
      const args = serverArgsOn(ports, dir, "restart", "restart-worker");
      const url = `tcp://127.0.0.1:${ports[0]}?token=restart`;
      let server: Proc = spawnCli(args);
      const worker = spawnCli([
        "worker",
        "--connect",
        `tcp://127.0.0.1:${ports[1]}?token=restart-worker`,
        "--app-path",
        EXAMPLE_APPS,
        "--slots",
        "1",
        "--log-level",
        "warn",
      ]);
      const client = await connect(url, { timeoutMs: 30_000 });
      try {
        await waitFor(
          async () => (await client.listWorkers().catch(() => ({ total: 0 }))).total === 1,
          30_000,
          "the worker",
        );
        const sessionId = await client.createSession({ applicationName: "hello" });
        // Two tasks of 3 s, one after the other on one slot: they end after the restart.
        const ts = await client.submitTasks(sessionId, [
          { payload: encodePayload("sleep", [3000]) },
          { payload: encodePayload("sleep", [3000]) },
        ]);
        const outputs = ts.map((t) => t.expectedOutputIds[0]);
        const events: { type: string; taskId?: string }[] = [];
        const sub = await client.subscribe(
          sessionId,
          (e) => events.push(e as { type: string; taskId?: string }),
          {
            eventTypes: ["newTask"],
          },
        );
        let done = 0;
        const waiting = client.waitResults(outputs).then((r) => {
          done++;
          return r;
        });
        const waitingData = client.waitResultsData(outputs).then((r) => {
          done++;
          return r;
        });
        await waitFor(
          async () => (await client.getTask(ts[0].taskId)).status === "PROCESSING",
          30_000,
          "the first task running",
        );
        server.child.kill("SIGKILL");
        await waitFor(
          () => server.child.exitCode !== null || server.child.signalCode !== null,
          10_000,
          "the kill",
        );
        server = spawnCli(args);
        // Bounded: a wait lost with the first server is asked again within a round (10 s) and its slack.
        await waitFor(() => done === 2, 90_000, "both waits to return after the restart");
        const r = await waiting;
        assert.equal(r.timedOut, false);
        assert.deepEqual(
          outputs.map((id) => r.statuses[id]),
          ["COMPLETED", "COMPLETED"],
        );
        const d = await waitingData;
        assert.equal(d.data.size, 2);
        // The subscription was renewed on the new server: a task submitted now is seen.
        const [late] = await client.submitTasks(sessionId, [{ payload: encodePayload("noop") }]);
        await waitFor(
          () => events.some((e) => e.type === "newTask" && e.taskId === late.taskId),
          30_000,
          "the new server's newTask event on the old subscription",
        );
        await sub.close();
      } finally {
        await client.close();
        await worker.stop();
        await server.stop();
        removeDir(dir);
      }
    },
  );
});
