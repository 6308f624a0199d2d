/**
 * Only workers are workers (issue 14 item 7, design §3.3): the worker endpoint takes its own token,
 * generated beside the server token and kept across restarts, never the client token.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { pack, unpack } from "msgpackr";
import { Dealer } from "zeromq";
import { connect } from "../src/client/client.js";
import { encodePayload } from "../src/client/payload.js";
import {
  EXAMPLE_APPS,
  FIXTURE_APPS,
  removeDir,
  runCli,
  spawnServer,
  spawnWorker,
  startServer,
  tempDir,
  waitFor,
} from "./helpers.js";

const EMPTY = Buffer.alloc(0);

async function ready(workerUrl: string, token: string): Promise<Record<string, unknown>> {
  const s = new Dealer({ linger: 0, receiveTimeout: 5000 });
  s.connect(workerUrl.split("?")[0]);
  try {
    await s.send([
      EMPTY,
      pack({ t: "READY", v: 1, token, workerId: "w-test", partitions: ["p"], slots: 1, prefetch: 0 }),
    ]);
    const frames = await s.receive();
    return unpack(frames[1]) as Record<string, unknown>;
  } finally {
    s.close();
  }
}

describe("the worker token", () => {
  it("is not the client token by default: a client's token is refused at the worker endpoint", async () => {
    const { proc, info, dir } = await spawnServer([], { ZGRID_SERVER_TOKEN: "client-token" });
    try {
      const workerToken = new URL(info.workerUrl.replace("tcp:", "http:")).searchParams.get("token")!;
      assert.ok(workerToken.length >= 32, "a generated worker token");
      assert.notEqual(workerToken, "client-token");
      assert.equal(
        readFileSync(join(dir, "worker-token"), "utf8").trim(),
        workerToken,
        "kept in the data dir",
      );
      assert.equal((await ready(info.workerUrl, "client-token")).code, "UNAUTHENTICATED");
      assert.equal((await ready(info.workerUrl, workerToken)).t, "WELCOME");
    } finally {
      await proc.stop();
      removeDir(dir);
    }
  });

  it("is the same after a restart, and a worker given the printed worker URL runs tasks", async () => {
    const dataDir = tempDir();
    let { server } = await startServer({ dataDir, token: "t1" });
    const first = server.info!.workerUrl;
    await server.shutdown();
    ({ server } = await startServer({ dataDir, token: "t1" }));
    try {
      assert.equal(server.info!.workerUrl.split("?")[1], first.split("?")[1]);
      const worker = await spawnWorker(server, EXAMPLE_APPS, 1);
      try {
        const hello = await runCli(["hello", "-e", server.info!.url, "-n", "4"]);
        assert.match(hello.stdout, /Result : 6\b/, hello.stderr);
      } finally {
        await worker.stop();
      }
    } finally {
      await server.shutdown();
      removeDir(dataDir);
    }
  });
});

describe("a worker's id", () => {
  it("cannot be taken over by another connection while its worker is alive", async () => {
    const { server } = await startServer({ heartbeatMs: 200 });
    const worker = await spawnWorker(server, FIXTURE_APPS, 1);
    const client = await connect(server.info!.url, { timeoutMs: 30_000 });
    const impostor = new Dealer({ linger: 0, receiveTimeout: 1500 });
    try {
      const workerId = [...server.scheduler.workers.keys()][0]!;
      const sessionId = await client.createSession({ applicationName: "testapp", maxRetries: 0 });
      const [t] = await client.submitTasks(sessionId, [{ payload: encodePayload("sleep", [1500]) }]);
      await waitFor(
        async () => (await client.getTask(t.taskId)).status === "PROCESSING",
        10_000,
        "processing",
      );
      impostor.connect(server.info!.workerUrl.split("?")[0]);
      await impostor.send([
        EMPTY,
        pack({
          t: "READY",
          v: 1,
          token: server.workerToken,
          workerId,
          partitions: ["default"],
          slots: 1,
          prefetch: 0,
          held: [t.taskId],
        }),
      ]);
      // No WELCOME for the impostor (checked over 1.5 s), and the task stays with its worker.
      await assert.rejects(impostor.receive(), /timed out|not possible/i);
      await client.waitResults(t.expectedOutputIds, { timeoutMs: 30_000 });
      const info = await client.getTask(t.taskId);
      assert.equal(info.status, "COMPLETED");
      assert.equal(info.attempts.length, 1);
    } finally {
      impostor.close();
      await client.close();
      await worker.stop();
      await server.shutdown();
    }
  });

  it("taken by a new process of the same worker: what the old one held and the new one does not is retried", async () => {
    const { server } = await startServer({ heartbeatMs: 200, store: "memory" });
    const client = await connect(server.info!.url, { timeoutMs: 30_000 });
    const endpoint = server.info!.workerUrl.split("?")[0];
    const readyMsg = pack({
      t: "READY",
      v: 1,
      token: server.workerToken,
      workerId: "w-restarted",
      partitions: ["default"],
      slots: 1,
      prefetch: 0,
      held: [],
    });
    const first = new Dealer({ linger: 0 });
    const second = new Dealer({ linger: 0 });
    const got: string[] = [];
    let welcomed = false;
    const reading = (async () => {
      for await (const [, header] of second) {
        const m = unpack(header) as { t: string; tasks?: { taskId: string; attempt: number }[] };
        if (m.t === "WELCOME") welcomed = true;
        if (m.t === "TASKS") for (const t of m.tasks!) got.push(`${t.taskId}#${t.attempt}`);
      }
    })().catch(() => {});
    try {
      first.connect(endpoint);
      await first.send([EMPTY, readyMsg]);
      await waitFor(() => server.scheduler.workers.has("w-restarted"), 10_000, "the first process to join");
      const sessionId = await client.createSession({ applicationName: "testapp", maxRetries: 2 });
      const [t] = await client.submitTasks(sessionId, [{ payload: encodePayload("noop") }]);
      await waitFor(
        () => server.scheduler.workers.get("w-restarted")!.inflight.has(t.taskId),
        10_000,
        "the task on the first process",
      );
      // The process dies holding it; a new one with the same id joins before the heartbeat timeout and
      // says READY each interval, as the worker host does, holding nothing.
      first.close();
      second.connect(endpoint);
      await waitFor(
        async () => {
          if (!welcomed) await second.send([EMPTY, readyMsg]);
          return got.includes(`${t.taskId}#2`);
        },
        15_000,
        "the task given again to the new process, as its second attempt",
      );
      const info = await client.getTask(t.taskId);
      assert.equal(info.attempts.length, 2);
      assert.equal(info.attempts[0]!.status, "LOST");
    } finally {
      first.close();
      second.close();
      await reading;
      await client.close();
      await server.shutdown();
    }
  });
});
