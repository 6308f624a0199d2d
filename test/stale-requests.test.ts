/**
 * A request a client gave up on is not done later, and a submission sent twice is done once (issue 13
 * item 9): requests carry a deadline on the server's clock, and `tasks.submit` a `requestKey`.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pack, unpack } from "msgpackr";
import { Dealer } from "zeromq";
import { connect, type ZgridClient } from "../src/client/client.js";
import { encodePayload } from "../src/client/payload.js";
import { Server } from "../src/daemons/server.js";
import { removeDir, spawnServer, testConfig, waitFor, type Proc } from "./helpers.js";

describe("stale and repeated requests", () => {
  let proc: Proc;
  let dir: string;
  let url: string;
  let client: ZgridClient;

  before(async () => {
    const s = await spawnServer(["--store", "memory", "--token", "stale"]);
    proc = s.proc;
    dir = s.dir;
    url = s.info.url;
    client = await connect(url, { timeoutMs: 30_000 });
  });
  after(async () => {
    await client.close();
    proc.child.kill("SIGCONT");
    await proc.stop();
    removeDir(dir);
  });

  it("a submission read after its client's timeout (the server was stopped) creates nothing", async () => {
    const sessionId = await client.createSession({ applicationName: "hello", partitionId: "nobody" });
    const impatient = await connect(url, { timeoutMs: 1000 });
    try {
      await impatient.call("ruok"); // learns the server's clock
      proc.child.kill("SIGSTOP");
      await assert.rejects(
        impatient.submitTasks(sessionId, [{ payload: encodePayload("noop") }]),
        (err: Error & { code?: string }) => err.code === "TIMEOUT",
      );
    } finally {
      proc.child.kill("SIGCONT");
    }
    // The server reads the request now, after its deadline: refused, nothing created.
    await waitFor(async () => (await impatient.call("ruok").catch(() => null)) === "imok", 30_000, "ruok");
    await impatient.close();
    const counts = await client.countTasks({ sessionId });
    assert.equal(
      Object.values(counts).reduce((a, b) => a + b, 0),
      0,
      `tasks: ${JSON.stringify(counts)}`,
    );
  });

  it("the same requestKey twice: one submission, the same answer", async () => {
    const sessionId = await client.createSession({ applicationName: "hello", partitionId: "nobody" });
    const defs = [{ payload: encodePayload("noop") }, { payload: encodePayload("noop") }];
    const [a, b] = await Promise.all([
      client.submitTasks(sessionId, defs, undefined, { requestKey: "k-1" }),
      client.submitTasks(sessionId, defs, undefined, { requestKey: "k-1" }),
    ]);
    const again = await client.submitTasks(sessionId, defs, undefined, { requestKey: "k-1" });
    assert.deepEqual(b, a);
    assert.deepEqual(again, a);
    assert.equal((await client.countTasks({ sessionId })).SUBMITTED, 2);
    // Another key, or none: another submission. The key reused for another size: refused.
    await client.submitTasks(sessionId, defs, undefined, { requestKey: "k-2" });
    await client.submitTasks(sessionId, defs);
    assert.equal((await client.countTasks({ sessionId })).SUBMITTED, 6);
    await assert.rejects(
      client.submitTasks(sessionId, [defs[0]], undefined, { requestKey: "k-1" }),
      /requestKey "k-1" was used for a submission of another size/,
    );
    assert.equal((await client.countTasks({ sessionId })).SUBMITTED, 6);
  });

  it("a deadline far out of a date's range is refused with a sentence, and the server keeps serving", async () => {
    const raw = new Dealer({ linger: 0, receiveTimeout: 10_000 });
    raw.connect(url.split("?")[0]);
    try {
      for (const deadline of [-1e300, -Infinity, 1]) {
        await raw.send([Buffer.alloc(0), pack({ v: 1, id: 7, cmd: "ruok", token: "stale", deadline })]);
        const [, header] = await raw.receive();
        const h = unpack(header) as { code?: string; msg: string };
        assert.equal(h.code, "UNAVAILABLE", JSON.stringify(h));
        assert.match(h.msg, /after its deadline/);
      }
      assert.equal(await client.call("ruok"), "imok");
    } finally {
      raw.close();
    }
  });
});

describe("a keyed submission across a restart", () => {
  it("is done once: the server keeps its key in the store with its tasks", async () => {
    const config = testConfig();
    const first = new Server(config);
    const c1 = await connect((await first.start()).url);
    const sessionId = await c1.createSession({ applicationName: "hello", partitionId: "nobody" });
    const defs = Array.from({ length: 3 }, () => ({ payload: encodePayload("noop") }));
    const answer = await c1.submitTasks(sessionId, defs, undefined, { requestKey: "across" });
    const unkeyed = await c1.submitTasks(sessionId, defs);
    await c1.close();
    await first.shutdown();

    const second = new Server(config);
    const c2 = await connect((await second.start()).url);
    try {
      // The client resends after the restart (it never saw the answer): the first answer, nothing new.
      const again = await c2.submitTasks(sessionId, defs, undefined, { requestKey: "across" });
      assert.deepEqual(again, answer);
      assert.equal((await c2.countTasks({ sessionId })).SUBMITTED, answer.length + unkeyed.length);
      await assert.rejects(
        c2.submitTasks(sessionId, [defs[0]], undefined, { requestKey: "across" }),
        /requestKey "across" was used for a submission of another size/,
      );
      // Another key is another submission.
      await c2.submitTasks(sessionId, defs, undefined, { requestKey: "other" });
      assert.equal((await c2.countTasks({ sessionId })).SUBMITTED, 9);
    } finally {
      await c2.close();
      await second.shutdown();
      removeDir(config.dataDir);
    }
  });
});
