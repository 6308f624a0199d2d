/**
 * A server's memory follows its live work, not its history (issue 18 item 1): on the SQLite store, task
 * outputs leave memory once committed (a bounded cache keeps recent ones) and are read back from the
 * store; the memory store counts the data it holds and refuses more past its cap.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import Database from "better-sqlite3";
import { connect, type ZgridClient } from "../src/client/client.js";
import { decodeOutput, encodePayload } from "../src/client/payload.js";
import { Server } from "../src/daemons/server.js";
import type { ZgridError } from "../src/protocol/errors.js";
import { decode, encode } from "../src/protocol/codec.js";
import { EXAMPLE_APPS, removeDir, spawnWorker, tempDir, testConfig, waitFor, type Proc } from "./helpers.js";
import { BothStores } from "./postgres.js";
import type { ServerConfig } from "../src/daemons/config.js";

/** An application whose method name is the size of the output it returns: small payloads, big outputs. */
function sizedApp(): string {
  const dir = tempDir("zgrid-sized-app-");
  writeFileSync(
    join(dir, "sized.js"),
    "export function createService() { return {}; }\n" +
      "export function call(service, session, method) { return new Uint8Array(Number(method)).fill(7); }\n",
  );
  return dir;
}

describe("result data in memory", { timeout: 180_000 }, () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c();
  });
  const started = async (server: Server): Promise<ZgridClient> => {
    const info = await server.start();
    cleanup.push(() => server.shutdown());
    const c = await connect(info.url, { timeoutMs: 60_000 });
    cleanup.push(() => c.close());
    return c;
  };
  /** A server on `config` (its data dir removed at the end), a client, a worker host, an "echo" session. */
  const echoGrid = async (config: ServerConfig) => {
    cleanup.push(() => removeDir(config.dataDir));
    const a = new Server(config);
    const c = await started(a);
    const worker: Proc = await spawnWorker(a, EXAMPLE_APPS, 2);
    cleanup.push(() => worker.stop());
    const sessionId = await c.createSession({ applicationName: "echo" });
    return { a, c, worker, sessionId };
  };

  it("SQLite: outputs leave memory once stored, past a small cache they are read from the store, and a restart gives them back", async () => {
    const config = testConfig({ resultCacheMb: 1 });
    const { a, c, worker, sessionId } = await echoGrid(config);
    const value = (i: number) => `${i}:`.padEnd(10_000, "x");
    const tasks = await c.submitTasks(
      sessionId,
      Array.from({ length: 300 }, (_, i) => ({ payload: encodePayload("echo", [value(i)]) })),
    );
    const outputs = tasks.map((t) => t.expectedOutputIds[0]);
    await c.waitResults(outputs, { timeoutMs: 60_000 });
    // 300 outputs of 10 KB: 3 MB, three times the cache.
    await waitFor(
      () => outputs.every((id) => (a.scheduler.results.get(id)?.data ?? null) === null),
      30_000,
      "every output out of the server's memory once stored",
    );
    assert.ok(a.scheduler.cache.bytes > 0, "recent outputs are cached");
    assert.ok(a.scheduler.cache.bytes <= 2 ** 20, `the cache holds ${a.scheduler.cache.bytes} bytes`);
    // The outputs past the cache are read a few hundred a query, not one (or two) a result: a wait for
    // 10,000 of them on PostgreSQL held the server's event loop for 20 s, one round trip after another.
    const readsBefore = a.scheduler.store.stats().reads;
    const { data } = await c.waitResultsData(outputs, { timeoutMs: 60_000 });
    const reads = a.scheduler.store.stats().reads - readsBefore;
    assert.ok(reads <= 3, `the wait for 300 outputs, most of them past the cache, took ${reads} queries`);
    outputs.forEach((id, i) => assert.equal(decodeOutput(data.get(id)!), value(i), id));
    for (const i of [0, 150, 299]) assert.equal(decodeOutput(await c.downloadResult(outputs[i])), value(i));
    await worker.stop();
    await c.close();
    await a.shutdown();

    const b = new Server(config);
    const c2 = await started(b);
    for (const i of [0, 299]) assert.equal(decodeOutput(await c2.downloadResult(outputs[i])), value(i));
    assert.ok(
      outputs.every((id) => (b.scheduler.results.get(id)?.data ?? null) === null),
      "a restart loads no output into memory",
    );
  });

  it("SQLite: a wait for outputs whose records left memory, their data still in the cache of recent outputs, reads nothing from the store", async () => {
    const { a, c, sessionId } = await echoGrid(testConfig());
    const n = 200;
    const tasks = await c.submitTasks(
      sessionId,
      Array.from({ length: n }, (_, i) => ({ payload: encodePayload("echo", [`out ${i}`]) })),
    );
    const outputs = tasks.map((t) => t.expectedOutputIds[0]);
    await c.waitResults(outputs, { timeoutMs: 60_000 });
    // A client that submits faster than its waits reach the server asks for outputs like these.
    await waitFor(
      () => outputs.every((id) => !a.scheduler.results.has(id)),
      30_000,
      "the outputs' records out of the server's memory (2 s after their commit)",
    );
    assert.ok(
      outputs.every((id) => a.scheduler.cache.has(id)),
      "their data is in the cache",
    );
    const reads = async <T>(what: string, most: number, run: () => Promise<T>): Promise<T> => {
      const before = a.scheduler.store.stats().reads;
      const answer = await run();
      const took = a.scheduler.store.stats().reads - before;
      assert.ok(took <= most, `${what} took ${took} queries of the store`);
      return answer;
    };
    const plain = await reads("a wait", 0, () => c.waitResults(outputs));
    assert.ok(outputs.every((id) => plain.statuses[id] === "COMPLETED"));
    const columns = await reads("a wait with data (columns)", 0, () => c.waitResultsData(outputs));
    outputs.forEach((id, i) => assert.equal(decodeOutput(columns.data.get(id)!), `out ${i}`, id));
    const maps = await reads("a wait with data (maps)", 0, () =>
      c.request<{ statuses: Record<string, string>; data: Record<string, number> }>("results.wait", {
        resultIds: outputs,
        withData: true,
      }),
    );
    outputs.forEach((id, i) => {
      assert.equal(maps.msg.statuses[id], "COMPLETED");
      assert.equal(decodeOutput(maps.blobs[maps.msg.data[id]]), `out ${i}`, id);
    });

    // One whose data was deleted is DELETED; one past the cache is read from the store (both reads
    // batched); the others still come from the cache.
    await c.deleteResultsData([outputs[0]]);
    a.scheduler.cache.delete(outputs[1]);
    const mixed = await reads("a wait naming one output past the cache", 2, () =>
      c.waitResultsData(outputs.slice(0, 3)),
    );
    assert.deepEqual(
      outputs.slice(0, 3).map((id) => mixed.statuses[id]),
      ["DELETED", "COMPLETED", "COMPLETED"],
    );
    assert.equal(mixed.data.has(outputs[0]), false);
    assert.equal(decodeOutput(mixed.data.get(outputs[1])!), "out 1");
    assert.equal(decodeOutput(mixed.data.get(outputs[2])!), "out 2");
  });

  const stores = new BothStores();
  after(() => stores.stop());
  for (const kind of stores.kinds)
    it(
      `${kind}: a submission naming many results that left memory, and commands naming many finished tasks or results, read them a few hundred a query`,
      { skip: stores.skip(kind) },
      async () => {
        const config = testConfig(await stores.settings(kind));
        cleanup.push(() => removeDir(config.dataDir));
        const a = new Server(config);
        const c = await started(a);
        const sessionId = await c.createSession({ applicationName: "echo" });
        const n = 300;
        const payloads = await c.createResults(
          sessionId,
          Array.from({ length: n }, (_, i) => ({ name: `p${i}`, data: encodePayload("echo", [`v${i}`]) })),
        );
        const inputs = await c.createResults(
          sessionId,
          Array.from({ length: n }, (_, i) => ({ name: `d${i}`, data: Buffer.from(`input ${i}`) })),
        );
        const ids = [...payloads, ...inputs].map((r) => r.resultId);
        await waitFor(
          () => ids.every((id) => !a.scheduler.results.has(id)),
          30_000,
          "the client's results out of the server's memory once stored",
        );
        // Each was read alone, twice (to check it, then to keep it in memory for its task): 10,000 tasks
        // naming results that left memory would hold a PostgreSQL server's event loop for tens of seconds.
        const readsBefore = a.scheduler.store.stats().reads;
        const tasks = await c.submitTasks(
          sessionId,
          payloads.map((p, i) => ({ payloadId: p.resultId, dataDependencies: [inputs[i].resultId] })),
        );
        const reads = a.scheduler.store.stats().reads - readsBefore;
        assert.ok(reads <= 4, `a submission naming ${ids.length} stored results took ${reads} queries`);
        const worker: Proc = await spawnWorker(a, EXAMPLE_APPS, 2);
        cleanup.push(() => worker.stop());
        const outputs = tasks.map((t) => t.expectedOutputIds[0]);
        const { data } = await c.waitResultsData(outputs, { timeoutMs: 60_000 });
        outputs.forEach((id, i) => assert.equal(decodeOutput(data.get(id)!), `v${i}`, id));

        // Finished, the tasks and their outputs leave memory too: the commands that name many of them read
        // them a few hundred a query as well.
        const taskIds = tasks.map((t) => t.taskId);
        await waitFor(
          () =>
            taskIds.every((id) => !a.scheduler.tasks.has(id)) &&
            outputs.every((id) => !a.scheduler.results.has(id)),
          30_000,
          "the finished tasks and their outputs out of the server's memory",
        );
        const queries = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
          const before = a.scheduler.store.stats().reads;
          const answer = await run();
          const n = a.scheduler.store.stats().reads - before;
          assert.ok(n <= 4, `${what} of ${taskIds.length} finished records took ${n} queries`);
          return answer;
        };
        const owners = await queries("results.getOwnerTaskId", () => c.getOwnerTaskIds(outputs));
        outputs.forEach((id, i) => assert.equal(owners[id], taskIds[i]));
        const named = await queries("tasks.getResultIds", () => c.getResultIds(taskIds));
        taskIds.forEach((id, i) => assert.deepEqual(named[id], [outputs[i]]));
        const blobs = await queries("results.download", () => c.downloadResults(outputs));
        blobs.forEach((b, i) => assert.equal(decodeOutput(b), `v${i}`));
      },
    );

  it("memory store: result data past --memory-store-mb is refused with RESOURCE_EXHAUSTED, and a task whose output does not fit ends ERROR saying why", async () => {
    const server = new Server(testConfig({ store: "memory", memoryStoreMb: 1 }));
    const c = await started(server);
    const apps = sizedApp();
    cleanup.push(() => removeDir(apps));
    const worker = await spawnWorker(server, apps, 1);
    cleanup.push(() => worker.stop());
    const sessionId = await c.createSession({ applicationName: "sized" });
    await c.createResults(sessionId, [{ name: "fits", data: Buffer.alloc(600_000) }]);
    await assert.rejects(
      c.createResults(sessionId, [{ name: "too much", data: Buffer.alloc(600_000) }]),
      (err: ZgridError) => err.code === "RESOURCE_EXHAUSTED" && /--memory-store-mb/.test(err.message),
    );
    await assert.rejects(
      c.submitTasks(sessionId, [{ payload: Buffer.alloc(600_000) }]),
      (err: ZgridError) => err.code === "RESOURCE_EXHAUSTED",
    );
    const [fits, big] = await c.submitTasks(sessionId, [
      { payload: encodePayload("100000") },
      { payload: encodePayload("600000") },
    ]);
    await c.waitResults([fits.expectedOutputIds[0], big.expectedOutputIds[0]], { timeoutMs: 60_000 });
    assert.equal((await c.getTask(fits.taskId)).status, "COMPLETED");
    const failed = await c.getTask(big.taskId);
    assert.equal(failed.status, "ERROR");
    assert.match(failed.error ?? "", /memory store holds .* MiB of result data and may hold 1\.0 MiB/);
    // What is held is counted; a purge frees it.
    assert.ok(server.scheduler.resultBytes >= 700_000 && server.scheduler.resultBytes < 2 ** 20);
  });

  it("opens a store of schema 1, whose small data was in the result's doc", async () => {
    const config = testConfig();
    cleanup.push(() => removeDir(config.dataDir));
    const a = new Server(config);
    const c = await started(a);
    const sessionId = await c.createSession({});
    const [small] = await c.createResults(sessionId, [
      { name: "small", data: Buffer.from("kept in the doc") },
    ]);
    await c.close();
    await a.shutdown();
    // Back to schema 1: the data in the doc's `inline`, no data column.
    const db = new Database(join(config.dataDir, "zgrid.db"));
    const row = db.prepare("SELECT doc, data FROM results WHERE id = ?").get(small.resultId) as {
      doc: Buffer;
      data: Buffer;
    };
    const doc = decode(row.doc) as Record<string, unknown>;
    delete doc.stored;
    db.prepare("UPDATE results SET doc = ? WHERE id = ?").run(
      encode({ ...doc, inline: row.data }),
      small.resultId,
    );
    db.exec("ALTER TABLE results DROP COLUMN data");
    db.prepare("UPDATE meta SET value = '1' WHERE key = 'schema_version'").run();
    db.close();

    const b = new Server(config);
    const c2 = await started(b);
    assert.equal((await c2.downloadResult(small.resultId)).toString(), "kept in the doc");
  });
});
