/**
 * Requests that cost the server far more than they cost the client (issue 14 item 5): each is capped
 * and answered RESOURCE_EXHAUSTED (or INVALID_ARGUMENT), and the server goes on serving.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import { MAX_SUBSCRIPTIONS_PER_PEER } from "../src/commands/events.js";
import type { Server } from "../src/daemons/server.js";
import { ZgridError } from "../src/protocol/errors.js";
import { MAX_FILTER_VALUES } from "../src/scheduler/listing.js";
import { startServer } from "./helpers.js";

const code = (want: string) => (err: unknown) => {
  assert.ok(err instanceof ZgridError, String(err));
  assert.equal(err.code, want, err.message);
  return true;
};

describe("requests that amplify", () => {
  let server: Server;
  let client: ZgridClient;
  let sessionId: string;

  before(async () => {
    ({ server } = await startServer({ maxFrameBytes: 64 * 1024 }));
    client = await connect(server.info!.url, { timeoutMs: 30_000 });
    sessionId = await client.createSession({ partitionId: "nobody" });
  });
  after(async () => {
    await client.close();
    await server.shutdown();
  });

  it("subscriptions per connection are capped", async () => {
    const subs = [];
    for (let i = 0; i < MAX_SUBSCRIPTIONS_PER_PEER; i++)
      subs.push(await client.subscribe(sessionId, () => {}));
    await assert.rejects(
      client.subscribe(sessionId, () => {}),
      code("RESOURCE_EXHAUSTED"),
    );
    await subs[0].close();
    const again = await client.subscribe(sessionId, () => {});
    for (const s of [again, ...subs.slice(1)]) await s.close();
  });

  it("a download lists each result once and carries a bounded reply", async () => {
    const big = Buffer.alloc(60 * 1024, 1);
    const created = await client.createResults(
      sessionId,
      Array.from({ length: 6 }, (_, i) => ({ name: `r${i}`, data: big })),
    );
    const ids = created.map((r) => r.resultId);
    await assert.rejects(
      client.request("results.download", { resultIds: [ids[0], ids[0]] }),
      code("INVALID_ARGUMENT"),
    );
    // 6 × 60 KiB is past 4 × the 64 KiB frame limit.
    await assert.rejects(client.request("results.download", { resultIds: ids }), code("RESOURCE_EXHAUSTED"));
    const three = await client.downloadResults(ids.slice(0, 3));
    assert.equal(three.length, 3);
  });

  it("a list filter names at most MAX_FILTER_VALUES ids", async () => {
    const many = Array.from({ length: MAX_FILTER_VALUES + 1 }, (_, i) => `s${i}`);
    await assert.rejects(client.listTasks({ filter: { sessionId: many } }), code("RESOURCE_EXHAUSTED"));
    const some = await client.listTasks({ filter: { sessionId: many.slice(0, MAX_FILTER_VALUES) } });
    assert.equal(some.total, 0);
  });

  it("chunked uploads announced and never finished are capped, and replaced when restarted", async () => {
    const [r1, r2] = await client.createResults(sessionId, [{ name: "a" }, { name: "b" }]);
    const chunk = Buffer.alloc(1024, 2);
    // 3 GiB announced and started: allocated at once, so a second 3 GiB cannot also be.
    await client.request("results.upload", { resultId: r1.resultId, offset: 0, size: 3 * 2 ** 30 }, [chunk]);
    await assert.rejects(
      client.request("results.upload", { resultId: r2.resultId, offset: 0, size: 3 * 2 ** 30 }, [chunk]),
      code("RESOURCE_EXHAUSTED"),
    );
    // Restarting the first upload small frees the 3 GiB: the second fits now.
    await client.request("results.upload", { resultId: r1.resultId, offset: 0, size: 1024 }, [chunk]);
    const done = (await client.request("results.upload", { resultId: r2.resultId, offset: 0, size: 1024 }, [
      chunk,
    ])) as { msg: { status: string } };
    assert.equal(done.msg.status, "COMPLETED");
  });
});
