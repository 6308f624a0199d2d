/**
 * A reply of success means the change is durable (design §8): the server is killed right after it
 * answers a mutating command (ZGRID_FAULT_KILL_AFTER_REPLY), restarted on the same data dir, and the
 * acknowledged change is there. Issue 13 item 4 (tasks.cancel was flushed before it was made).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import { encodePayload } from "../src/client/payload.js";
import { ANY_PORTS, removeDir, spawnCli, tempDir, waitFor, type Proc } from "./helpers.js";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

async function serverOn(dir: string, env: NodeJS.ProcessEnv): Promise<{ proc: Proc; url: string }> {
  const infoFile = join(dir, "connection.json");
  rmSync(infoFile, { force: true });
  const proc = spawnCli(
    ["server", ...ANY_PORTS, "--data-dir", dir, "--connection-info", infoFile, "--token", "t"],
    env,
  );
  await waitFor(() => existsSync(infoFile) || proc.child.exitCode !== null, 15_000, "the server to start");
  if (!existsSync(infoFile)) throw new Error(`the server did not start: ${proc.stderr()}`);
  return { proc, url: (JSON.parse(readFileSync(infoFile, "utf8")) as { url: string }).url };
}

/**
 * Prepares state on a server that dies right after replying to `cmd` (`prepare` must not send it), runs
 * `act` there, then checks the state on a second start. Preparing on that server too spares a start and
 * a stop a case: the prepared state is acknowledged before `act` as much as on a server of its own.
 */
async function survivesCrashAfterReply<T>(
  cmd: string,
  prepare: (c: ZgridClient) => Promise<T>,
  act: (c: ZgridClient, state: T) => Promise<unknown>,
  check: (c: ZgridClient, state: T) => Promise<void>,
): Promise<void> {
  const dir = tempDir();
  let proc: Proc | undefined;
  try {
    let s = await serverOn(dir, { ZGRID_FAULT_KILL_AFTER_REPLY: cmd });
    proc = s.proc;
    let client = await connect(s.url, { timeoutMs: 15_000 });
    const state = await prepare(client);
    assert.equal(
      proc.child.signalCode ?? proc.child.exitCode,
      null,
      `the server died before ${cmd} was sent`,
    );
    await act(client, state); // acknowledged
    const { signal } = await proc.exited;
    assert.equal(signal, "SIGKILL", `the server was to die after replying to ${cmd}`);
    await client.close();

    s = await serverOn(dir, {});
    proc = s.proc;
    client = await connect(s.url, { timeoutMs: 15_000 });
    await check(client, state);
    await client.close();
  } finally {
    await proc?.stop();
    removeDir(dir);
  }
}

/** A session whose tasks wait in a partition no worker serves. */
async function queuedTasks(c: ZgridClient): Promise<{ sessionId: string; taskIds: string[] }> {
  const sessionId = await c.createSession({ partitionId: "nobody" });
  const tasks = await c.submitTasks(sessionId, [
    { payload: encodePayload("noop") },
    { payload: encodePayload("noop") },
  ]);
  return { sessionId, taskIds: tasks.map((t) => t.taskId) };
}

describe("a crash right after an acknowledgement", { timeout: 120_000 }, () => {
  it("keeps an acknowledged tasks.cancel", async () => {
    await survivesCrashAfterReply(
      "tasks.cancel",
      queuedTasks,
      (c, s) => c.cancelTasks([s.taskIds[0]]),
      async (c, s) => {
        assert.equal((await c.getTask(s.taskIds[0])).status, "CANCELLED");
        assert.equal((await c.getTask(s.taskIds[1])).status, "SUBMITTED");
      },
    );
  });

  it("keeps an acknowledged tasks.submit", async () => {
    await survivesCrashAfterReply(
      "tasks.submit",
      async (c) => ({ sessionId: await c.createSession({ partitionId: "nobody" }) }),
      async (c, s) => {
        const [t] = await c.submitTasks(s.sessionId, [{ payload: encodePayload("noop") }]);
        Object.assign(s, { taskId: t.taskId });
      },
      async (c, s) => {
        const taskId = (s as { taskId?: string }).taskId!;
        assert.equal((await c.getTask(taskId)).status, "SUBMITTED");
      },
    );
  });

  it("keeps an acknowledged sessions.pause and sessions.close", async () => {
    for (const cmd of ["sessions.pause", "sessions.close"]) {
      await survivesCrashAfterReply(
        cmd,
        queuedTasks,
        (c, s) => (cmd === "sessions.pause" ? c.pauseSession(s.sessionId) : c.closeSession(s.sessionId)),
        async (c, s) => {
          const want = cmd === "sessions.pause" ? "PAUSED" : "CLOSED";
          assert.equal((await c.getSession(s.sessionId)).status, want, cmd);
        },
      );
    }
  });

  it("keeps an acknowledged results.upload", async () => {
    await survivesCrashAfterReply(
      "results.upload",
      async (c) => {
        const sessionId = await c.createSession({});
        const [r] = await c.createResults(sessionId, [{ name: "in" }]);
        return { resultId: r.resultId };
      },
      (c, s) => c.uploadResult(s.resultId, Buffer.from("kept")),
      async (c, s) => {
        assert.equal((await c.getResult(s.resultId)).status, "COMPLETED");
        const data = await c.downloadResult(s.resultId);
        assert.equal(Buffer.from(data).toString(), "kept");
      },
    );
  });

  it("keeps every other acknowledged session and result change", async () => {
    type S = { sessionId: string; taskIds: string[]; made?: string };
    const cases: [
      string,
      (c: ZgridClient, s: S) => Promise<unknown>,
      (c: ZgridClient, s: S) => Promise<void>,
    ][] = [
      [
        "sessions.create",
        async (c, s) => (s.made = await c.createSession({ partitionId: "nobody" })),
        async (c, s) => assert.equal((await c.getSession(s.made!)).status, "RUNNING"),
      ],
      [
        "results.create",
        async (c, s) =>
          (s.made = (
            await c.createResults(s.sessionId, [{ name: "r", data: Buffer.from("v") }])
          )[0].resultId),
        async (c, s) => assert.equal(Buffer.from(await c.downloadResult(s.made!)).toString(), "v"),
      ],
      [
        "sessions.resume",
        async (c, s) => c.resumeSession(s.sessionId),
        async (c, s) => {
          assert.equal((await c.getSession(s.sessionId)).status, "RUNNING");
          assert.equal((await c.countTasks({ sessionId: s.sessionId })).SUBMITTED, 2);
        },
      ],
      [
        "sessions.cancel",
        async (c, s) => c.cancelSession(s.sessionId),
        async (c, s) => {
          assert.equal((await c.getSession(s.sessionId)).status, "CANCELLED");
          assert.equal((await c.countTasks({ sessionId: s.sessionId })).CANCELLED, 2);
        },
      ],
      [
        "sessions.stopSubmission",
        async (c, s) => c.stopSubmission(s.sessionId),
        async (c, s) => assert.equal((await c.getSession(s.sessionId)).submissionStopped, true),
      ],
      [
        "sessions.purge",
        async (c, s) => c.purgeSession(s.sessionId),
        async (c, s) => assert.equal((await c.getSession(s.sessionId)).status, "PURGED"),
      ],
      [
        "sessions.delete",
        async (c, s) => c.deleteSession(s.sessionId),
        async (c, s) => await assert.rejects(c.getSession(s.sessionId), /does not exist/),
      ],
    ];
    for (const [cmd, act, check] of cases) {
      await survivesCrashAfterReply(
        cmd,
        async (c) => {
          // sessions.create needs nothing before it, and its server dies at the first one.
          if (cmd === "sessions.create") return { sessionId: "", taskIds: [] };
          const s: S = await queuedTasks(c);
          // Each command from a state it is allowed in.
          if (cmd === "sessions.resume") await c.pauseSession(s.sessionId);
          if (cmd === "sessions.purge") await c.closeSession(s.sessionId);
          return s;
        },
        act,
        check,
      );
    }
  });
});
