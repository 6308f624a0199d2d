/**
 * A user mistake about where to connect gets a sentence, the right exit code and no stack trace
 * (issue 14 item 12): a malformed URL is a usage error (exit 2); a worker given a client port, or a
 * client given the worker endpoint, says which kind of port it reached instead of waiting forever.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect } from "../src/client/client.js";
import type { Server } from "../src/daemons/server.js";
import { EXAMPLE_APPS, runCli, startServer } from "./helpers.js";

describe("connecting to the wrong place", () => {
  let server: Server;

  before(async () => {
    ({ server } = await startServer({ store: "memory" }));
  });
  after(async () => {
    await server.shutdown();
  });

  it("a malformed URL is a usage error: exit 2, a sentence, no stack trace", async () => {
    for (const args of [
      ["ruok", "--url", "tcp://127.0.0.1:notaport"],
      ["status", "--url", "tcp://127.0.0.1:70000?token=x"],
      ["worker", "--connect", "http//nowhere", "--app-path", EXAMPLE_APPS],
      ["worker", "--connect", "tcp://127.0.0.1:0?token=x", "--app-path", EXAMPLE_APPS],
    ]) {
      const r = await runCli(args, {}, 60_000);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /URL|port/, args.join(" "));
      assert.doesNotMatch(r.stderr, /^\s+at /m, `${args.join(" ")} printed a stack trace`);
    }
  });

  it("a worker given a client port says so and exits 1", async () => {
    const r = await runCli(["worker", "--connect", server.info!.url, "--app-path", EXAMPLE_APPS], {}, 60_000);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /client port of the zgrid server, not its worker endpoint/);
    assert.doesNotMatch(r.stderr, /^\s+at /m, "a sentence, not a stack trace");
  });

  it("a worker with a wrong token says the server rejected it, without a stack trace", async () => {
    const url = server.info!.workerUrl.replace(/token=[^&]*/, "token=wrong");
    const r = await runCli(["worker", "--connect", url, "--app-path", EXAMPLE_APPS], {}, 60_000);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /rejected this worker.*\[UNAUTHENTICATED\]/);
    assert.doesNotMatch(r.stderr, /^\s+at /m, "a sentence, not a stack trace");
  });

  it("a client given the worker endpoint says so at once, not after its timeout", async () => {
    const client = await connect(server.info!.workerUrl, { timeoutMs: 120_000 });
    try {
      await assert.rejects(client.call("ruok"), (err: Error & { code?: string }) => {
        assert.equal(err.code, "INVALID_ARGUMENT");
        assert.match(err.message, /is a zgrid worker endpoint, not a client port/);
        return true;
      });
    } finally {
      await client.close();
    }
  });
});
