/**
 * Bad input to a range download (`results.download {resultId, offset, length}`) gets a clear error and
 * nothing else happens: the server keeps answering, and the data is still there, whole.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import type { ConnectionInfo, Server } from "../src/daemons/server.js";
import { ZgridError } from "../src/protocol/errors.js";
import { removeDir, startServer } from "./helpers.js";

const MAX_FRAME = 1024 * 1024;

describe("range downloads", { timeout: 60_000 }, () => {
  let server: Server;
  let info: ConnectionInfo;
  let c: ZgridClient;
  let resultId: string;
  const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));

  before(async () => {
    ({ server, info } = await startServer({ maxFrameBytes: MAX_FRAME }));
    c = await connect(info.url, { timeoutMs: 10_000 });
    const sessionId = await c.createSession({});
    [{ resultId }] = await c.createResults(sessionId, [{ name: "data", data }]);
  });
  after(async () => {
    await c.close();
    await server.shutdown();
    removeDir(server.config.dataDir);
  });

  const range = (args: Record<string, unknown>) => c.request("results.download", { resultId, ...args });
  const refused = async (args: Record<string, unknown>, code: string, message: RegExp) => {
    await assert.rejects(
      range(args),
      (err: unknown) => err instanceof ZgridError && err.code === code && message.test(err.message),
      JSON.stringify(args),
    );
  };

  it("answers a range inside the data, one cut at its end, and an empty one at its end", async () => {
    const inside = await range({ offset: 10, length: 20 });
    assert.deepEqual(inside.msg, { resultId, offset: 10, size: 1000, length: 20 });
    assert.ok(inside.blobs[0].equals(data.subarray(10, 30)));
    const cut = await range({ offset: 990, length: 100 });
    assert.equal((cut.msg as { length: number }).length, 10);
    assert.ok(cut.blobs[0].equals(data.subarray(990)));
    const atEnd = await range({ offset: 1000, length: 10 });
    assert.equal((atEnd.msg as { length: number }).length, 0);
    assert.equal(atEnd.blobs[0]?.length ?? 0, 0);
  });

  it("refuses a bad offset or length, an unknown result and a wrong token, and keeps serving", async () => {
    await refused({ offset: -1 }, "INVALID_ARGUMENT", /offset/);
    await refused({ offset: "10" }, "INVALID_ARGUMENT", /offset/);
    await refused({ offset: 1.5 }, "INVALID_ARGUMENT", /offset/);
    await refused({ offset: 1001 }, "INVALID_ARGUMENT", /past the end of result .* \(1000 bytes\)/);
    await refused({ offset: 0, length: MAX_FRAME + 1 }, "INVALID_ARGUMENT", /length/);
    await refused({ offset: 0, length: -1 }, "INVALID_ARGUMENT", /length/);
    await assert.rejects(
      c.request("results.download", { resultId: "r-no-such-result", offset: 0 }),
      (err: unknown) => err instanceof ZgridError && err.code === "NOT_FOUND",
    );
    const stranger = await connect(info.url, { token: "wrong", timeoutMs: 10_000 });
    try {
      await assert.rejects(
        stranger.request("results.download", { resultId, offset: 0 }),
        (err: unknown) => err instanceof ZgridError && err.code === "UNAUTHENTICATED",
      );
    } finally {
      await stranger.close();
    }
    // Nothing else happened: the server answers, and the data is whole.
    assert.equal(await c.ruok(), "imok");
    assert.ok((await c.downloadResult(resultId)).equals(data));
  });
});
