/**
 * `zgrid worker --watch`: an application module rewritten on disk is what new sessions run, while a
 * session that already ran on the old module keeps it. Without --watch the module loaded first stays.
 * Real server, real worker processes, a real file rewritten between tasks.
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import { decodeOutput, encodePayload } from "../src/client/payload.js";
import type { Server } from "../src/daemons/server.js";
import { removeDir, runCli, spawnWorker, startServer, tempDir, type Proc } from "./helpers.js";

/** An app whose `which()` says which edition of the file it is (the editions differ in length too). */
function edition(text: string): string {
  return `import { ServiceBase, defineService } from "zgrid/worker";
class Which extends ServiceBase {
  which() {
    return ${JSON.stringify(text)};
  }
}
export const { createService, enterSession, call, leaveSession, destroyService } = defineService(
  () => new Which(),
);
`;
}

/** Runs one `which()` task in `sessionId` and returns its output (or the task's error). */
async function which(client: ZgridClient, sessionId: string): Promise<unknown> {
  const [task] = await client.submitTasks(sessionId, [{ payload: encodePayload("which", []) }]);
  const outputId = task.expectedOutputIds[0];
  const { statuses, data } = await client.waitResultsData([outputId], { timeoutMs: 20_000 });
  if (statuses[outputId] !== "COMPLETED")
    return `not completed: ${(await client.getTask(task.taskId)).error}`;
  return decodeOutput(data.get(outputId)!);
}

describe("zgrid worker --watch", () => {
  let dir: string;
  let server: Server;
  let client: ZgridClient;
  const workers: Proc[] = [];

  before(async () => {
    dir = tempDir("zgrid-watch-");
    for (const sub of ["watched", "plain"]) {
      mkdirSync(join(dir, sub));
      writeFileSync(join(dir, sub, "which.js"), edition("first"));
    }
    ({ server } = await startServer({ heartbeatMs: 200 }));
    client = await connect(server.info!.url, { timeoutMs: 20_000 });
    // One slot each: every task of a worker runs on the same thread, the one that loaded the module.
    workers.push(await spawnWorker(server, join(dir, "watched"), 1, ["--watch", "--partition", "watched"]));
    workers.push(await spawnWorker(server, join(dir, "plain"), 1, ["--partition", "plain"]));
  });

  after(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await client?.close();
    await server?.shutdown();
    removeDir(dir);
  });

  const session = (partition: string) =>
    client.createSession({ applicationName: "which", partitionId: partition, maxRetries: 0 }, [partition]);

  it("with --watch, new sessions run the rewritten module; a running session keeps its own", async () => {
    const old = await session("watched");
    assert.equal(await which(client, old), "first");
    writeFileSync(join(dir, "watched/which.js"), edition("second edition"));
    const fresh = await session("watched");
    assert.equal(await which(client, fresh), "second edition");
    assert.equal(await which(client, old), "first", "the session that began on the first edition keeps it");
    writeFileSync(join(dir, "watched/which.js"), edition("third edition, longer"));
    assert.equal(await which(client, await session("watched")), "third edition, longer");
    assert.equal(await which(client, fresh), "second edition");
  });

  it("without --watch, the module first loaded stays until the worker restarts", async () => {
    assert.equal(await which(client, await session("plain")), "first");
    writeFileSync(join(dir, "plain/which.js"), edition("second edition"));
    assert.equal(await which(client, await session("plain")), "first");
  });

  it("zgrid worker --help has a line for --watch", async () => {
    const r = await runCli(["worker", "--help"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\s+--watch\s+new sessions run an app module's file as it is now/m);
  });
});
