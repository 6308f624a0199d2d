/**
 * CurveZMQ in operation (issue 14's loose ends): the container and Kubernetes probes work against a
 * `--curve` server as they stand (`zgrid ruok --data-dir`), ~/.zgrid/tokens.txt carries the server key,
 * `getconfig` says what security is in force without a key, and a client whose server came back with
 * another key fails with a sentence instead of timing out.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import { parseServerUrl } from "../src/client/url.js";
import { SERVER_KEY_FILE } from "../src/daemons/curve.js";
import { ErrorCode, ZgridError } from "../src/protocol/errors.js";
import { freePorts, removeDir, startServer, tempDir } from "./helpers.js";

const TOKEN = "curve-ops-token-0123456789abcdef";

function serverKeyOf(url: string): string | undefined {
  return parseServerUrl(url, "/nonexistent").serverKey;
}

async function rejection(p: Promise<unknown>): Promise<ZgridError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ZgridError, `a ZgridError, got ${String(err)}`);
    return err;
  }
  throw new Error("expected the request to fail");
}

describe("CurveZMQ in operation", () => {
  it("a client whose server comes back with another key fails with UNAUTHENTICATED and a sentence; with the same key it goes on", async () => {
    const [port, workerPort, metricsPort, statusPort] = await freePorts(4);
    const dataDir = tempDir();
    const config = { curve: true, dataDir, token: TOKEN, port, workerPort, metricsPort, statusPort };
    let { server, info } = await startServer(config);
    let client: ZgridClient | null = null;
    try {
      client = await connect(info.url, { timeoutMs: 20_000 });
      assert.equal(await client.ruok(), "imok");

      // The same key again: the client reconnects and goes on (a restart is not a new key).
      await server.shutdown();
      ({ server, info } = await startServer(config));
      assert.equal(await client.ruok(), "imok", "the same key after a restart");

      // Another key: the handshakes fail from now on, and the request says why within its timeout.
      const oldKey = serverKeyOf(info.url);
      await server.shutdown();
      rmSync(join(dataDir, SERVER_KEY_FILE));
      ({ server, info } = await startServer(config));
      assert.notEqual(serverKeyOf(info.url), oldKey, "a new key pair was made");
      const err = await rejection(client.createSession());
      assert.equal(err.code, ErrorCode.UNAUTHENTICATED, err.message);
      assert.match(
        err.message,
        /came back with another key .* connect again with the URL the server prints now/,
      );
      assert.equal(server.scheduler.sessions.size, 0, "nothing was done");
      const again = await rejection(client.ruok());
      assert.equal(again.code, ErrorCode.UNAUTHENTICATED, "the connection stays failed");
      // The server's new URL works.
      const fresh = await connect(info.url, { timeoutMs: 10_000 });
      assert.equal(await fresh.ruok().finally(() => fresh.close()), "imok");
    } finally {
      await client?.close();
      await server.shutdown();
      removeDir(dataDir);
    }
  });
});
