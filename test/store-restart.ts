/**
 * What a restart of the server keeps, as a suite run on each store: SQLite (store.test.ts) and
 * PostgreSQL (store-postgres-restart.test.ts), files of their own so that they run side by side.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import Database from "better-sqlite3";
import pg from "pg";
import { decode, encode } from "../src/protocol/codec.js";
import { connect, type ZgridClient } from "../src/client/client.js";
import { downloadLarge, uploadLarge } from "../src/client/large-data.js";
import { decodeOutput, encodePayload } from "../src/client/payload.js";
import type { ServerConfig } from "../src/daemons/config.js";
import { Server } from "../src/daemons/server.js";
import {
  EXAMPLE_APPS,
  FIXTURE_APPS,
  freePorts,
  serverArgsOn,
  type Proc,
  spawnCli,
  spawnServer,
  procStatusMb,
  resetPeak,
  tempDir,
  testConfig,
  waitFor,
} from "./helpers.js";
import { newDatabase, postgresUnavailable, startPostgres, type TestPostgres } from "./postgres.js";

/** A store the shared tests run on: SQLite in a data dir, or a database of a throw-away PostgreSQL. */
export interface Backend {
  name: string;
  /** Why this machine cannot run it (the tests skip, saying so), or false. */
  skip: string | false;
  /** A new, empty store: what a server config needs to use it. */
  fresh(): Promise<Partial<ServerConfig>>;
  /** The `zgrid server` arguments of a store `fresh` gave. */
  args(store: Partial<ServerConfig>): string[];
  /** Runs SQL (`?` placeholders) on a store `fresh` gave, the server stopped or not: the rows. */
  query(store: Partial<ServerConfig>, sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
}

export const sqlite: Backend = {
  name: "SQLite",
  skip: false,
  fresh: () => Promise.resolve({ dataDir: tempDir() }),
  args: (store) => ["--data-dir", store.dataDir!],
  query: (store, sql, params = []) => {
    const db = new Database(join(store.dataDir!, "zgrid.db"));
    try {
      const stmt = db.prepare(sql);
      return Promise.resolve(
        stmt.reader ? (stmt.all(...params) as Record<string, unknown>[]) : (stmt.run(...params), []),
      );
    } finally {
      db.close();
    }
  },
};

let cluster: TestPostgres | null = null;
export const postgres: Backend = {
  name: "PostgreSQL",
  skip: postgresUnavailable() ?? false,
  fresh: async () => {
    cluster ??= await startPostgres();
    return { store: "postgres", pgUrl: await newDatabase(cluster), dataDir: tempDir() };
  },
  args: (store) => ["--store", "postgres", "--pg-url", store.pgUrl!, "--data-dir", store.dataDir!],
  query: async (store, sql, params = []) => {
    const client = new pg.Client({ connectionString: store.pgUrl });
    await client.connect();
    try {
      let n = 0;
      return (
        await client.query(
          sql.replace(/\?/g, () => `$${++n}`),
          params,
        )
      ).rows as Record<string, unknown>[];
    } finally {
      await client.end();
    }
  },
};

/** Stops the throw-away PostgreSQL cluster the PostgreSQL backend started, if it did. */
export async function stopCluster(): Promise<void> {
  await cluster?.stop();
  cluster = null;
}

/** What a restart of the server keeps, on `backend`. */
export function restartSuite(backend: Backend): void {
  /** Sets a session's status in its stored doc, as a crash between two commits can leave it. */
  const setSessionStatus = async (
    store: Partial<ServerConfig>,
    id: string,
    status: string,
  ): Promise<void> => {
    const [row] = await backend.query(store, "SELECT doc FROM sessions WHERE id = ?", [id]);
    const doc = decode(row.doc as Buffer) as Record<string, unknown>;
    await backend.query(store, "UPDATE sessions SET doc = ? WHERE id = ?", [encode({ ...doc, status }), id]);
  };

  describe(`the store on ${backend.name}: what a restart keeps`, { skip: backend.skip }, () => {
    const cleanup: (() => Promise<void>)[] = [];
    after(async () => {
      for (const c of cleanup.reverse()) await c();
    });

    /**
     * A server on ports a restart binds again, with heartbeats of 500 ms (the orphan grace, 4 of them,
     * 2 s, leaves a loaded machine room to bring the worker back after a restart), and a worker of one
     * slot connected to it.
     */
    const serverWithWorker = async (): Promise<{
      config: ServerConfig;
      server: Server;
      url: string;
      client: ZgridClient;
      worker: Proc;
    }> => {
      const [port, workerPort] = await freePorts(2);
      const config = testConfig({
        ...(await backend.fresh()),
        dataDir: tempDir(),
        port,
        workerPort,
        heartbeatMs: 500,
      });
      const server = new Server(config);
      const info = await server.start();
      const worker = spawnCli([
        "worker",
        "--connect",
        info.workerUrl,
        "--app-path",
        FIXTURE_APPS,
        "--slots",
        "1",
        "--log-level",
        "warn",
      ]);
      cleanup.push(() => worker.stop());
      const client = await connect(info.url, { timeoutMs: 30_000 });
      await waitFor(() => server.scheduler.workers.size === 1, 15_000, "worker");
      return { config, server, url: info.url, client, worker };
    };

    it("restarts with nothing running as a no-op: same sessions, tasks and results", async () => {
      const config = testConfig(await backend.fresh());
      const a = new Server(config);
      const infoA = await a.start();
      const c1 = await connect(infoA.url);
      const s = await c1.createSession({ partitionId: "nobody", priority: 3 });
      const [payload] = await c1.createResults(s, [{ name: "p", data: Buffer.from("payload-bytes") }]);
      const tasks = await c1.submitTasks(
        s,
        Array.from({ length: 50 }, () => ({ payloadId: payload.resultId })),
      );
      const before = await c1.listTasks({
        filter: { sessionId: s },
        pageSize: 1000,
        sort: { field: "taskId" },
      });
      await c1.close();
      await a.shutdown();

      const b = new Server(config);
      const infoB = await b.start();
      cleanup.push(() => b.shutdown());
      const c2 = await connect(infoB.url);
      cleanup.push(() => c2.close());
      const after = await c2.listTasks({
        filter: { sessionId: s },
        pageSize: 1000,
        sort: { field: "taskId" },
      });
      assert.deepEqual(after, before);
      assert.equal((await c2.getSession(s)).defaultTaskOptions.priority, 3);
      assert.deepEqual(await c2.downloadResult(payload.resultId), Buffer.from("payload-bytes"));
      assert.equal(b.scheduler.views.summary().queued.nobody, tasks.length, "queued tasks kept their place");
    });

    it("reads back after a restart data kept in chunk rows and in a result's own row: whole, by range, through a wait", async () => {
      const config = testConfig(await backend.fresh());
      const a = new Server(config);
      const c1 = await connect((await a.start()).url, { timeoutMs: 60_000 });
      const s = await c1.createSession();
      const [big, small] = await c1.createResults(s, [
        { name: "big" },
        { name: "small", data: Buffer.from("small") },
      ]);
      // 20 MiB: three chunk rows of 8 MiB; each 4-byte word says where it is.
      const data = Buffer.allocUnsafe(20 * 2 ** 20);
      for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
      await uploadLarge(c1, big.resultId, data);
      await c1.close();
      await a.shutdown();

      const b = new Server(config);
      cleanup.push(() => b.shutdown());
      const c2 = await connect((await b.start()).url, { timeoutMs: 60_000 });
      cleanup.push(() => c2.close());
      assert.ok((await downloadLarge(c2, big.resultId)).equals(data), "the whole, read from the store");
      // A range across the end of the first chunk.
      const at = 8 * 2 ** 20 - 6;
      const range = await c2.request<{ size: number }>("results.download", {
        resultId: big.resultId,
        offset: at,
        length: 12,
      });
      assert.deepEqual(range.blobs[0], data.subarray(at, at + 12));
      // Ranges of several pieces (PostgreSQL reads 1 MiB a query), from offsets inside them: one across
      // the end of the first chunk, one past the end of the data (cut there).
      for (const [offset, length] of [
        [8 * 2 ** 20 - 2 ** 20 - 3, 3 * 2 ** 20 + 10],
        [data.length - 1.5 * 2 ** 20 + 1, 4 * 2 ** 20],
      ]) {
        const r = await c2.request<{ length: number }>("results.download", {
          resultId: big.resultId,
          offset,
          length,
        });
        assert.equal(r.msg.length, Math.min(length, data.length - offset));
        assert.ok(r.blobs[0].equals(data.subarray(offset, offset + length)), `${length} bytes at ${offset}`);
      }
      const waited = await c2.waitResultsData([small.resultId, big.resultId]);
      assert.deepEqual(waited.data.get(small.resultId), Buffer.from("small"));
      assert.ok(waited.data.get(big.resultId)?.equals(data), "the whole, through results.wait");
    });

    it("cancels at start the live tasks of a session whose cancellation was committed before theirs", async () => {
      // sessions.cancel commits the session's record first and its tasks' after it: a crash in between
      // leaves a CANCELLED session with queued tasks, which must not run after the restart.
      const config = testConfig(await backend.fresh());
      const a = new Server(config);
      const c1 = await connect((await a.start()).url);
      const s = await c1.createSession({ partitionId: "nobody" });
      const tasks = await c1.submitTasks(
        s,
        Array.from({ length: 20 }, () => ({ payload: encodePayload("echo", ["z"]) })),
      );
      await c1.close();
      await a.shutdown();
      await setSessionStatus(config, s, "CANCELLED");

      const b = new Server(config);
      const c2 = await connect((await b.start()).url);
      cleanup.push(async () => {
        await c2.close();
        await b.shutdown();
      });
      assert.equal((await c2.getSession(s)).status, "CANCELLED");
      const counts = await c2.countTasks({ sessionId: s });
      assert.equal(counts.CANCELLED, tasks.length, JSON.stringify(counts));
      assert.equal(
        b.scheduler.views.summary().queued.nobody ?? 0,
        0,
        "no task of the cancelled session is queued",
      );
    });

    it("purges at start the results of a session whose purge was committed before theirs", async () => {
      const config = testConfig(await backend.fresh());
      const a = new Server(config);
      const c1 = await connect((await a.start()).url);
      const s = await c1.createSession({ partitionId: "nobody" });
      const made = await c1.createResults(s, [
        { name: "small", data: Buffer.from("kept inline") },
        { name: "large", data: Buffer.alloc(200_000, 9) },
      ]);
      await c1.close();
      await a.shutdown();
      await setSessionStatus(config, s, "PURGED");

      const b = new Server(config);
      const c2 = await connect((await b.start()).url);
      cleanup.push(async () => {
        await c2.close();
        await b.shutdown();
      });
      for (const r of made) {
        assert.equal((await c2.getResult(r.resultId)).status, "DELETED");
        await assert.rejects(c2.downloadResult(r.resultId), /DELETED/);
      }
      await b.scheduler.store.flush();
      const [left] = await backend.query(config, "SELECT count(*) AS n FROM result_data");
      assert.equal(Number(left.n), 0, "the purged data left the store");
    });

    it("removes at start a session whose deletion was committed before its removal", async () => {
      const config = testConfig(await backend.fresh());
      const a = new Server(config);
      const c1 = await connect((await a.start()).url);
      const gone = await c1.createSession({ partitionId: "nobody" });
      const kept = await c1.createSession({ partitionId: "nobody" });
      for (const s of [gone, kept]) {
        await c1.createResults(s, [{ name: "d", data: Buffer.alloc(100_000, 1) }]);
        await c1.submitTasks(s, [{ payload: encodePayload("echo", ["z"]) }]);
      }
      await c1.close();
      await a.shutdown();
      await setSessionStatus(config, gone, "DELETED");

      const b = new Server(config);
      const c2 = await connect((await b.start()).url);
      cleanup.push(async () => {
        await c2.close();
        await b.shutdown();
      });
      await assert.rejects(c2.getSession(gone), /does not exist/);
      assert.equal((await c2.listTasks({ filter: { sessionId: gone } })).total, 0);
      assert.equal((await c2.listResults({ filter: { sessionId: gone } })).total, 0);
      assert.equal((await c2.listTasks({ filter: { sessionId: kept } })).total, 1);
      await b.scheduler.store.flush();
      for (const table of ["sessions", "tasks", "results"]) {
        const col = table === "sessions" ? "id" : "session_id";
        const [n] = await backend.query(config, `SELECT count(*) AS n FROM ${table} WHERE ${col} = ?`, [
          gone,
        ]);
        assert.equal(Number(n.n), 0, `${table} rows of the deleted session left`);
      }
    });

    it("round-trips 200 MB byte for byte in chunks, holding it once", { timeout: 120_000 }, async () => {
      const { proc, info } = await spawnServer(["--token", "t", ...backend.args(await backend.fresh())]);
      cleanup.push(() => proc.stop());
      const pid = proc.child.pid!;
      const client = await connect(info.url, { timeoutMs: 60_000 });
      cleanup.push(() => client.close());
      const s = await client.createSession();
      const [r] = await client.createResults(s, [{ name: "big" }]);
      const size = 200 * 1024 * 1024;
      const data = Buffer.allocUnsafe(size);
      for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE((i * 2654435761) >>> 0, i);
      // The server process's peak RSS over the whole transfer (VmHWM), not two readings around it: a copy
      // made and freed in between would show only at the peak. Writing 5 to clear_refs resets the peak
      // to the RSS of now; where that is refused, the peak so far (its start-up) is the baseline.
      const baseline = resetPeak(pid) ? procStatusMb(pid, "VmRSS") : procStatusMb(pid, "VmHWM");
      await uploadLarge(client, r.resultId, data);
      // The upload alone: the 200 MB assembled, then committed (on PostgreSQL chunk by chunk, each copied
      // into one area the store's thread reads). It grew the peak by 241-289 MB on a machine kept busy
      // (both stores); on PostgreSQL by 328-345 MB idle and up to 411 busy when each chunk was a buffer
      // of its own, made here and freed by the store's thread whenever it collected.
      const uploaded = procStatusMb(pid, "VmHWM") - baseline;
      assert.ok(
        uploaded < (1.6 * size) / 2 ** 20,
        `the upload grew the server's peak by ${uploaded.toFixed(0)} MB for a 200 MB result`,
      );
      // Its record leaves memory 2 s after its commit, and the 200 MB with it: a collection is asked for
      // then. It stayed (about 220 MB above the baseline) until V8 collected for a reason of its own,
      // seconds later or during a download: the record was still listed, data and all, with the commit
      // that completed it.
      await waitFor(
        () => procStatusMb(pid, "VmRSS") - baseline < 100,
        20_000,
        "the server's RSS back near its baseline once the result left memory",
      );
      // Read back from the store, a range at a time: its peak is a range and its pieces, not the data
      // again. Each 8 MiB range read from PostgreSQL at once grew it by up to 173 MB (the thread's hex text
      // and receive buffer, freed late); 1 MiB at a time, by at most 34 MB (SQLite: 31-48) on a busy machine.
      const start = procStatusMb(pid, "VmRSS");
      const reset = resetPeak(pid);
      const back = await downloadLarge(client, r.resultId);
      const downloaded = procStatusMb(pid, "VmHWM") - start;
      assert.equal(back.length, data.length);
      assert.ok(back.equals(data), "same bytes");
      if (reset)
        assert.ok(
          downloaded < 80,
          `the download grew the server's peak by ${downloaded.toFixed(0)} MB above its start`,
        );
    });

    it(
      "hands a task still running on a worker back to it after a server restart, instead of running it twice",
      { timeout: 90_000 },
      async () => {
        const { config, server: first, url, client: c1 } = await serverWithWorker();
        const s = await c1.createSession({ applicationName: "testapp" });
        const taskMs = 12_000;
        const [t] = await c1.submitTasks(s, [{ payload: encodePayload("sleep", [taskMs]) }]);
        await waitFor(async () => (await c1.getTask(t.taskId)).status === "PROCESSING", 10_000, "processing");
        // Restart mid-task: it has run at least this long when the server goes down, and has as long
        // again to go (less the restart) for its worker to come back holding it.
        await new Promise((r) => setTimeout(r, taskMs / 2));
        await c1.close();
        await first.shutdown();
        const restarted = Date.now();

        const second = new Server(config);
        await second.start();
        cleanup.push(() => second.shutdown());
        const c2 = await connect(url, { timeoutMs: 30_000 });
        cleanup.push(() => c2.close());
        // The worker comes back holding the task, still running, and the server leaves it there.
        await waitFor(
          () => [...second.scheduler.workers.values()].some((w) => w.inflight.has(t.taskId)),
          taskMs / 2,
          "the worker back, holding the task",
        );
        const r = await c2.waitResults(t.expectedOutputIds, { timeoutMs: 30_000 });
        assert.equal(r.statuses[t.expectedOutputIds[0]], "COMPLETED");
        const done = Date.now() - restarted;
        const task = await c2.getTask(t.taskId);
        // A restart of the server is not charged: the attempt that was running goes on, adopted.
        assert.equal(task.attempts.length, 1, JSON.stringify(task.attempts));
        assert.equal(task.attempts[0].status, "COMPLETED");
        // A run begun after the restart could not end sooner than taskMs after it. Adopted, it ends about
        // taskMs / 2 after it: the bound leaves a loaded machine that much again.
        assert.ok(done < taskMs, `done ${done} ms after the restart: run again, not adopted`);
      },
    );

    it(
      "three restarts of the server use up no retry of a task its worker keeps running",
      { timeout: 90_000 },
      async () => {
        const started = await serverWithWorker();
        const { config, url } = started;
        let { server, client } = started;
        // No retry at all: a single charged attempt beyond the first would end it ERROR.
        const s = await client.createSession({ applicationName: "testapp", maxRetries: 0 });
        const [t] = await client.submitTasks(s, [{ payload: encodePayload("sleep", [10_000]) }]);
        await waitFor(
          async () => (await client.getTask(t.taskId)).status === "PROCESSING",
          10_000,
          "processing",
        );
        for (let i = 0; i < 3; i++) {
          await client.close();
          await server.shutdown();
          server = new Server(config);
          await server.start();
          client = await connect(url, { timeoutMs: 30_000 });
          // Adopted again by its worker before the next restart.
          await waitFor(() => server.scheduler.workers.size === 1, 15_000, "the worker back");
        }
        cleanup.push(() => server.shutdown());
        cleanup.push(() => client.close());
        const r = await client.waitResults(t.expectedOutputIds, { timeoutMs: 30_000 });
        assert.equal(r.statuses[t.expectedOutputIds[0]], "COMPLETED");
        const task = await client.getTask(t.taskId);
        assert.equal(task.status, "COMPLETED");
        assert.equal(task.attempts.length, 1, JSON.stringify(task.attempts));
      },
    );

    it(
      "keeps a completion its worker reported while the server was down: sent again, not run again",
      { timeout: 90_000 },
      async () => {
        const { config, server: first, url, client: c1, worker } = await serverWithWorker();
        // No retry: running it again after the restart would end it ERROR.
        const s = await c1.createSession({ applicationName: "testapp", maxRetries: 0 });
        const [t] = await c1.submitTasks(s, [{ payload: encodePayload("sleep", [200]) }]);
        await waitFor(async () => (await c1.getTask(t.taskId)).status === "PROCESSING", 10_000, "processing");
        await c1.close();
        await first.shutdown();
        // The worker notices the silence after three intervals (1.5 s): by then its 200 ms task is done
        // and its DONE went nowhere.
        await waitFor(
          () => /server lost/.test(worker.stdout() + worker.stderr()),
          15_000,
          "the worker to notice",
        );

        const second = new Server(config);
        await second.start();
        cleanup.push(() => second.shutdown());
        const c2 = await connect(url, { timeoutMs: 30_000 });
        cleanup.push(() => c2.close());
        const r = await c2.waitResults(t.expectedOutputIds, { timeoutMs: 30_000 });
        assert.equal(r.statuses[t.expectedOutputIds[0]], "COMPLETED");
        const task = await c2.getTask(t.taskId);
        assert.equal(task.status, "COMPLETED");
        assert.equal(task.attempts.length, 1, JSON.stringify(task.attempts));
        assert.equal(decodeOutput(await c2.downloadResult(t.expectedOutputIds[0])), 200);
      },
    );

    it(
      "after kill -9 mid-session, a restart on the same data dir completes every task exactly once",
      { timeout: 240_000 },
      async () => {
        const dir = tempDir();
        const ports = await freePorts(4);
        const args = [
          ...serverArgsOn(ports, dir, "kill9", "kill9-worker"),
          ...backend.args(await backend.fresh()),
        ];
        const url = `tcp://127.0.0.1:${ports[0]}?token=kill9`;
        const workerUrl = `tcp://127.0.0.1:${ports[1]}?token=kill9-worker`;
        let server: Proc = spawnCli(args);
        cleanup.push(() => server.stop());
        const workers = [0, 1].map(() =>
          spawnCli([
            "worker",
            "--connect",
            workerUrl,
            "--app-path",
            EXAMPLE_APPS,
            "--slots",
            "2",
            "--log-level",
            "warn",
          ]),
        );
        for (const w of workers) cleanup.push(() => w.stop());
        let client: ZgridClient = await connect(url, { timeoutMs: 30_000 });
        await waitFor(
          async () => (await client.listWorkers().catch(() => ({ total: 0 }))).total === 2,
          20_000,
          "two workers",
        );
        // 4 batches of 5,000 tasks.
        const batch = 5000;
        const sessionId = await client.createSession({ applicationName: "hello" });
        const outputs: string[] = [];
        for (let b = 0; b < 4; b++) {
          const ts = await client.submitTasks(
            sessionId,
            Array.from({ length: batch }, (_, i) => ({
              payload: encodePayload("sum", [[b * batch + i, 1]]),
            })),
          );
          outputs.push(...ts.map((t) => t.expectedOutputIds[0]));
        }
        await waitFor(
          async () => (await client.countTasks({ sessionId })).COMPLETED >= batch / 5,
          60_000,
          "some tasks done",
        );
        server.child.kill("SIGKILL");
        await server.exited;
        await client.close();

        server = spawnCli(args);
        client = await connect(url, { timeoutMs: 60_000 });
        cleanup.push(() => client.close());
        await waitFor(
          async () => (await client.ruok().catch(() => "")) === "imok",
          20_000,
          "the restarted server",
        );
        const r = await client.waitResultsData(outputs, { timeoutMs: 180_000 });
        assert.equal(r.timedOut, false);
        outputs.forEach((id, i) => assert.equal(decodeOutput(r.data.get(id)!), i + 1, `output ${i}`));
        const counts = await client.countTasks({ sessionId });
        assert.equal(counts.COMPLETED, 4 * batch);
        for (let page = 0; page < 2; page++) {
          const items = (await client.listTasks({ filter: { sessionId }, pageSize: 2 * batch, page })).items;
          for (const t of items) {
            assert.equal(
              t.attempts.filter((a) => a.status === "COMPLETED").length,
              1,
              `task ${t.taskId} completed once`,
            );
          }
        }
      },
    );
  });
}
