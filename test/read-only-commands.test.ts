/**
 * The commands answered while the store is backlogged (roles.READ_ONLY_COMMANDS): each domain command
 * there (module.name) is one the DEFAULT daemon answers (the built-ins are shared with the other
 * daemons: getstatus is STATUS's, prometheus METRICS'), and none of them may change what the store keeps. A name misspelled there
 * would only wait with the writers; a writer listed there would grow a commit past its bound.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import type { Server } from "../src/daemons/server.js";
import { READ_ONLY_COMMANDS } from "../src/daemons/roles.js";
import { startServer } from "./helpers.js";

/** Verbs of commands that change state: none may be read-only. */
const WRITES =
  /submit|create|upload|cancel|delete|close|purge|pause|resume|stop|import|shutdown|retry|register/i;

describe("READ_ONLY_COMMANDS", () => {
  let server: Server;
  let client: ZgridClient;
  before(async () => {
    ({ server } = await startServer({ store: "memory" }));
    client = await connect(server.info!.url, { timeoutMs: 30_000 });
  });
  after(async () => {
    await client.close();
    await server.shutdown();
  });

  it("names only domain commands the DEFAULT daemon answers, and none that changes state", async () => {
    const map = await client.getCmdMap();
    for (const cmd of READ_ONLY_COMMANDS) {
      if (cmd.includes(".")) assert.ok(cmd in map, `${cmd} is not a command of the DEFAULT daemon`);
      assert.doesNotMatch(cmd, WRITES, `${cmd} changes state`);
    }
    // And the other way: the commands left out that read only are few (a new reader belongs in the list).
    const writers = Object.keys(map).filter((cmd) => !READ_ONLY_COMMANDS.has(cmd));
    assert.ok(writers.includes("tasks.submit") && writers.includes("results.upload"));
  });
});
