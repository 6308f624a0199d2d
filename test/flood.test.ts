/**
 * Floods (issue 14 item 2): a peer that sends and never reads must not grow the server's memory without
 * bound. Replies waiting for a peer are capped (the socket's send high-water mark), as are the requests
 * a peer has in flight; what goes past a cap is dropped or refused, counted by a metric, and logged.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pack, unpack } from "msgpackr";
import { Dealer } from "zeromq";
import { connect, type ZgridClient } from "../src/client/client.js";
import { procStatusMb, removeDir, spawnServer, waitFor, type Proc } from "./helpers.js";

const TOKEN = "flood-token";
const EMPTY = Buffer.alloc(0);

describe("a peer that floods and never reads", { timeout: 180_000 }, () => {
  let proc: Proc;
  let dir: string;
  let url: string;
  let client: ZgridClient;
  let metrics: ZgridClient;

  before(async () => {
    const s = await spawnServer(["--store", "memory", "--token", TOKEN]);
    proc = s.proc;
    dir = s.dir;
    url = s.info.url;
    client = await connect(url, { timeoutMs: 30_000 });
    metrics = await connect(s.info.metricsUrl!, { timeoutMs: 30_000 });
  });
  after(async () => {
    await client.close();
    await metrics.close();
    await proc.stop();
    removeDir(dir);
  });

  it("costs the server bounded memory, and the server keeps answering others", async () => {
    const pid = proc.child.pid!;
    // getCmdMap answers ~1 KB for a request of ~60 bytes: 240,000 unread replies would be ~230 MB,
    // twenty-four times what a peer may have waiting (PEER_SEND_HWM, 10,000 messages). RSS grew 36-48 MB
    // here for 120,000-250,000 of them, most of it whatever the count (once 83 MB for 160,000, on a
    // busy machine: the bound, half of what they would hold, was 80 MB then).
    const request = pack({ v: 1, id: 1, cmd: "getCmdMap", token: TOKEN, args: {} });
    const reply = await client.getCmdMap();
    const replyBytes = Buffer.byteLength(JSON.stringify(reply));
    assert.ok(replyBytes > 800, `the reply is ${replyBytes} bytes`);
    const N = 240_000;
    const before = procStatusMb(pid, "VmRSS");
    const flooder = new Dealer({ linger: 0, sendHighWaterMark: 0 });
    flooder.connect(url.split("?")[0]);
    try {
      for (let i = 0; i < N; i++) await flooder.send([EMPTY, request]);
      // The server has read them all once its count of answered getCmdMap requests says so.
      const answered = async () => {
        const m =
          /^zgrid_requests_total\{daemon="DEFAULT",command="getCmdMap",user="anonymous"\} (\d+)/m.exec(
            await metrics.prometheus(),
          );
        return m ? Number(m[1]) : 0;
      };
      await waitFor(async () => (await answered()) >= N, 120_000, "the server to read the flood");
      const growth = procStatusMb(pid, "VmRSS") - before;
      assert.ok(
        growth < (N * replyBytes) / 2 ** 20 / 2,
        `RSS grew ${growth.toFixed(0)} MB for ${N} unread replies of ${replyBytes} bytes`,
      );
      assert.equal(await client.ruok(), "imok");
      const text = await metrics.prometheus();
      const dropped = /^zgrid_replies_dropped_total\{daemon="DEFAULT"\} (\d+)/m.exec(text);
      assert.ok(dropped && Number(dropped[1]) > 0, "dropped replies are counted");
      assert.match(proc.stderr() + proc.stdout(), /replies to a peer that does not read them are dropped/);
    } finally {
      flooder.close();
    }
  });

  it("refuses requests past the in-flight cap of one peer with RESOURCE_EXHAUSTED", async () => {
    // results.wait on a result that never completes holds a request open: one peer may hold so many.
    const sessionId = await client.createSession({ partitionId: "nobody" });
    const [r] = await client.createResults(sessionId, [{ name: "never" }]);
    const peer = new Dealer({ linger: 0, receiveTimeout: 30_000 });
    peer.connect(url.split("?")[0]);
    try {
      const cap = 1000;
      for (let i = 0; i <= cap; i++) {
        await peer.send([
          EMPTY,
          pack({
            v: 1,
            id: i,
            cmd: "results.wait",
            token: TOKEN,
            args: { resultIds: [r.resultId], timeoutMs: 60_000 },
          }),
        ]);
      }
      // The one past the cap is answered at once; the others wait.
      const [, header] = await peer.receive();
      const h = unpack(header) as { id: number; code: string; msg: string };
      assert.equal(h.id, cap, JSON.stringify(h));
      assert.equal(h.code, "RESOURCE_EXHAUSTED");
      assert.match(h.msg, /1000 requests in flight/);
      assert.equal(await client.ruok(), "imok");
    } finally {
      peer.close();
    }
  });
});
