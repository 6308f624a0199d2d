import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { connect } from "../src/client/client.js";
import { decodeOutput, encodePayload } from "../src/client/payload.js";
import { Server } from "../src/daemons/server.js";
import { ErrorCode } from "../src/protocol/errors.js";
import type { SqlStore } from "../src/store/sql-store.js";
import {
  ANY_PORTS,
  EXAMPLE_APPS,
  freePorts,
  serverArgsOn,
  spawnWorker,
  type Proc,
  runCli,
  spawnCli,
  startServer,
  tempDir,
  testConfig,
  waitFor,
} from "./helpers.js";
import { FaultProxy } from "./fault-proxy.js";
import { newDatabase, postgresUnavailable, psql, startPostgres, type TestPostgres } from "./postgres.js";
import { restartSuite, sqlite } from "./store-restart.js";

describe("the embedded SQLite store", () => {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c();
  });
  /** A server on a SQLite file of its own, its store, and a client with a session; stopped after the suite. */
  const grid = async () => {
    const { server, info } = await startServer();
    cleanup.push(() => server.shutdown());
    const client = await connect(info.url, { timeoutMs: 60_000 });
    cleanup.push(() => client.close());
    const s = await client.createSession({ applicationName: "hello" });
    return { server, info, store: server.scheduler.store as SqlStore, client, s };
  };

  it("refuses a second server on the same data dir (a dead one's lock is taken over: see the kill -9 test)", async () => {
    const config = testConfig();
    const first = new Server(config);
    await first.start();
    cleanup.push(() => first.shutdown());
    assert.throws(() => new Server({ ...config }), /in use by another zgrid server \(pid \d+\)/);
    const cli = await runCli(["server", ...ANY_PORTS, "--data-dir", config.dataDir, "--token", "x"]);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /in use by another zgrid server/);
    assert.doesNotMatch(cli.stderr, /^\s+at /m, "a sentence, not a stack trace");
  });

  it("explains a data dir that cannot be written and a store from a newer zgrid", async () => {
    const dir = tempDir();
    const file = join(dir, "not-a-dir");
    writeFileSync(file, "x");
    const bad = await runCli(["server", ...ANY_PORTS, "--data-dir", join(file, "sub"), "--token", "x"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /not writable/);
    const newer = tempDir();
    const db = new Database(join(newer, "zgrid.db"));
    db.exec(
      "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO meta VALUES ('schema_version', '99')",
    );
    db.close();
    const r = await runCli(["server", ...ANY_PORTS, "--data-dir", newer, "--token", "x"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /newer zgrid \(schema 99/);
  });

  it("rewrites a task's and an output's row in place when the task ends: same rowid, the row written once", async () => {
    const { server, info } = await startServer();
    cleanup.push(() => server.shutdown());
    const client = await connect(info.url);
    cleanup.push(() => client.close());
    const s = await client.createSession({ applicationName: "hello", partitionId: "held" });
    const tasks = await client.submitTasks(
      s,
      Array.from({ length: 20 }, () => ({ payload: encodePayload("noop") })),
    );
    const db = new Database(join(server.config.dataDir, "zgrid.db"), { readonly: true });
    cleanup.push(async () => void db.close());
    const rowids = (table: string, ids: string[]): string =>
      ids.map((id) => String(db.prepare(`SELECT rowid FROM ${table} WHERE id = ?`).pluck().get(id))).join();
    const taskIds = tasks.map((t) => t.taskId);
    const outputIds = tasks.map((t) => t.expectedOutputIds[0]);
    const before = [rowids("tasks", taskIds), rowids("results", outputIds)];
    // No worker serves partition "held" until now: every row above is as submitted.
    const worker = await spawnWorker(server, EXAMPLE_APPS, 2, ["--partition", "held"]);
    cleanup.push(() => worker.stop());
    await client.waitResultsData(outputIds);
    await server.scheduler.store.flush();
    const statuses = db.prepare(`SELECT DISTINCT status FROM tasks WHERE session_id = ?`).pluck().all(s);
    assert.deepEqual(statuses, ["COMPLETED"]);
    assert.deepEqual([rowids("tasks", taskIds), rowids("results", outputIds)], before);
    assert.equal(db.prepare("SELECT count(*) FROM tasks").pluck().get(), 20, "one row a task");
  });

  it("commits a task's end at once, not after the delay that gathers changes nobody waits for", async () => {
    const { server, store, client, s } = await grid();
    // Changes gather for a minute: only the commit a task's end asks for can put its COMPLETED on disk.
    store.flushDelayMs = 60_000;
    const worker = await spawnWorker(server, EXAMPLE_APPS, 1);
    cleanup.push(() => worker.stop());
    const db = new Database(join(server.config.dataDir, "zgrid.db"), { readonly: true });
    cleanup.push(async () => void db.close());
    const status = db.prepare("SELECT status FROM tasks WHERE id = ?").pluck();
    for (let i = 0; i < 3; i++) {
      // Acknowledged: on disk. Then ended by the worker, and on disk without anyone asking for it.
      const [task] = await client.submitTasks(s, [{ payload: encodePayload("noop") }]);
      assert.ok(status.get(task.taskId), "the submission is on disk when acknowledged");
      await waitFor(() => status.get(task.taskId) === "COMPLETED", 15_000, "the task's end on disk");
    }
  });

  it("holds clients' requests while more changes than a commit takes wait for the disk, and loses none", async () => {
    const { server, info, store, client, s } = await grid();
    // 2,000 changes waiting for the next commit instead of 20,000: each submission below makes 3,000.
    store.backlogRecords = 2000;
    const metrics = await connect(info.metricsUrl!);
    cleanup.push(() => metrics.close());
    // Held submissions go one a commit: none gathers many of them (16,000 tasks if all went at once).
    let largest = 0;
    const counted = store.onCommitted;
    store.onCommitted = (tasks, results) => {
      largest = Math.max(largest, Array.from(tasks).length);
      counted?.(tasks, results);
    };
    const batch = Array.from({ length: 1000 }, () => ({ payload: encodePayload("noop") }));
    // Sent at once: the server reads them while the commits of the first ones are under way.
    const answers = await Promise.all(Array.from({ length: 20 }, () => client.submitTasks(s, batch)));
    assert.deepEqual(
      answers.map((a) => a.length),
      new Array(20).fill(1000),
      "every submission acknowledged whole",
    );
    const waits = store.stats().backlogWaits;
    assert.ok(waits > 0, "some requests waited for a commit before they were read");
    assert.match(await metrics.prometheus(), new RegExp(`^zgrid_store_backlog_waits_total ${waits}$`, "m"));
    assert.equal((await client.countTasks({ sessionId: s })).SUBMITTED, 20_000);
    const db = new Database(join(server.config.dataDir, "zgrid.db"), { readonly: true });
    cleanup.push(async () => void db.close());
    assert.equal(db.prepare("SELECT count(*) FROM tasks").pluck().get(), 20_000, "every task on disk");
    assert.ok(largest <= 5000, `the largest commit held ${largest} tasks`);
    assert.equal(await client.ruok(), "imok");
  });

  it("schedules a commit once a turn past 20,000 changes, not once a change", async () => {
    const { client, s } = await grid();
    // Counted, then passed on: everything this process schedules while the server takes 30,000 tasks
    // (90,000 changes, 70,000 of them past the bound that commits at the next turn).
    const original = globalThis.setImmediate;
    let scheduled = 0;
    const counting = ((...args: Parameters<typeof setImmediate>) => {
      scheduled++;
      return original(...args);
    }) as typeof setImmediate;
    globalThis.setImmediate = counting;
    try {
      const tasks = await client.submitTasks(s, new Array(30_000).fill({ payload: encodePayload("noop") }));
      assert.equal(tasks.length, 30_000);
    } finally {
      globalThis.setImmediate = original;
    }
    assert.ok(scheduled < 1000, `${scheduled} callbacks scheduled for one submission`);
  });

  it("answers requests that only read while submissions wait for a large commit under way", async () => {
    const { store, client, s } = await grid();
    store.backlogRecords = 100;
    const payload = encodePayload("noop");
    // The first submission's commit (180,000 rows) takes a while; the second's 600 changes wait for the
    // next one, past the bound: the store is backlogged. Nothing serves the session: no task runs.
    let bigDone = false;
    const big = client.submitTasks(s, new Array(60_000).fill({ payload })).then((t) => {
      bigDone = true;
      return t;
    });
    const small = client.submitTasks(s, new Array(200).fill({ payload }));
    const heldBefore = store.stats().backlogWaits;
    const third = client.submitTasks(s, new Array(200).fill({ payload }));
    const count = await client.countTasks({ sessionId: s });
    assert.equal(bigDone, false, "the count was answered while the large commit was under way");
    assert.equal(count.SUBMITTED ?? 0, 60_200, "it sees the tasks submitted, the held ones excepted");
    assert.equal(await client.ruok(), "imok");
    const answers = await Promise.all([big, small, third]);
    assert.deepEqual(
      answers.map((a) => a.length),
      [60_000, 200, 200],
    );
    assert.ok(store.stats().backlogWaits > heldBefore, "the third submission waited for the commit");
    assert.equal((await client.countTasks({ sessionId: s })).SUBMITTED, 60_400);
  });

  it("fsyncs each commit before the reply (synchronous = FULL), and says so in getstatus", async () => {
    const { server } = await startServer();
    const client = await connect(server.info!.statusUrl!);
    try {
      const status = await client.getStatus();
      const store = (status.scheduler as { store: { durability?: string } }).store;
      assert.equal(store.durability, "fsync");
      const db = new Database(join(server.config.dataDir, "zgrid.db"), { readonly: true });
      try {
        // The file is in WAL mode, whose commits are durable only with synchronous = FULL on the
        // writer's connection (checked at open: SqliteStore refuses to start otherwise).
        assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
      } finally {
        db.close();
      }
    } finally {
      await client.close();
      await server.shutdown();
    }
  });
});

restartSuite(sqlite);

describe("the PostgreSQL store", { skip: postgresUnavailable() ?? false }, () => {
  let cluster: TestPostgres;
  const cleanup: (() => Promise<void>)[] = [];
  before(async () => {
    cluster = await startPostgres();
  });
  after(async () => {
    for (const c of cleanup.reverse()) await c();
    await cluster?.stop();
  });

  it("has one owner: a second server on the same database is refused with a sentence", async () => {
    const pgUrl = await newDatabase(cluster);
    const { server } = await startServer({ store: "postgres", pgUrl });
    cleanup.push(() => server.shutdown());
    const r = await runCli(
      ["server", ...ANY_PORTS, "--store", "postgres", "--pg-url", pgUrl, "--token", "x"],
      {
        ZGRID_DATA_DIR: tempDir(),
      },
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /another zgrid server owns this database/);
    assert.doesNotMatch(r.stderr, /^\s+at /m, "a sentence, not a stack trace");
    assert.doesNotMatch(r.stderr, new RegExp(new URL(pgUrl).password), "the password is not printed");
  });

  it("refuses a database of a newer zgrid, and --store postgres without --pg-url", async () => {
    const pgUrl = await newDatabase(cluster);
    await psql(
      pgUrl,
      "CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL); INSERT INTO meta VALUES ('schema_version', '99')",
    );
    const r = await runCli(
      ["server", ...ANY_PORTS, "--store", "postgres", "--pg-url", pgUrl, "--token", "x"],
      {
        ZGRID_DATA_DIR: tempDir(),
      },
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /newer zgrid \(schema 99/);
    const none = await runCli(["server", ...ANY_PORTS, "--store", "postgres", "--token", "x"], {
      ZGRID_DATA_DIR: tempDir(),
    });
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stderr, /--store postgres needs --pg-url/);
  });

  it("says in getstatus that each commit is flushed (fsync, synchronous_commit on), without the password", async () => {
    const pgUrl = await newDatabase(cluster);
    const { server } = await startServer({ store: "postgres", pgUrl });
    cleanup.push(() => server.shutdown());
    const client = await connect(server.info!.statusUrl!);
    cleanup.push(() => client.close());
    const status = await client.getStatus();
    const store = (status.scheduler as { store: { name: string; durability: string; location: string } })
      .store;
    assert.equal(store.name, "postgres");
    assert.equal(store.durability, "fsync");
    assert.doesNotMatch(store.location, new RegExp(new URL(pgUrl).password));
    assert.equal(await psql(pgUrl, "SHOW synchronous_commit"), "on");
  });

  it("answers NOT_FOUND for ids with a NUL byte, which PostgreSQL's text refuses, not a store failure", async () => {
    const pgUrl = await newDatabase(cluster);
    const { server, info } = await startServer({ store: "postgres", pgUrl });
    cleanup.push(() => server.shutdown());
    const client = await connect(info.url);
    cleanup.push(() => client.close());
    const notFound = { code: ErrorCode.NOT_FOUND };
    await assert.rejects(client.getTask("t\u0000x"), notFound);
    await assert.rejects(client.waitResults(["r\u0000x"], { timeoutMs: 100 }), notFound);
    await assert.rejects(client.downloadResult("r\u0000x"), notFound);
    // Among ids that exist, too: the one named is the one with the NUL (escaped in the message).
    const s = await client.createSession();
    const [r] = await client.createResults(s, [{ name: "known", data: Buffer.from("x") }]);
    await assert.rejects(
      client.waitResults([r.resultId, "r\u0000x"], { timeoutMs: 100 }),
      (err: Error & { code?: string }) => err.code === ErrorCode.NOT_FOUND && err.message.includes("r\\x00x"),
    );
    assert.equal(await client.ruok(), "imok");
  });

  it("analyzes the tables a burst changed before it loads them, then reads the live tasks' payloads back", async () => {
    const pgUrl = await newDatabase(cluster);
    const first = await startServer({ store: "postgres", pgUrl });
    const c1 = await connect(first.info.url);
    // Autovacuum would analyze them too, in its own time: off here, so that what analyzes is the load.
    await psql(
      pgUrl,
      "ALTER TABLE tasks SET (autovacuum_enabled = false); ALTER TABLE results SET (autovacuum_enabled = false)",
    );
    const s = await c1.createSession({ partitionId: "nobody" });
    const tasks = await c1.submitTasks(
      s,
      Array.from({ length: 300 }, (_, i) => ({ payload: Buffer.from(`payload ${i}`) })),
    );
    await c1.close();
    await first.server.shutdown();
    // A connection's counts of changed rows reach the statistics when it ends: wait for them.
    const changed = "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'tasks'";
    await waitFor(async () => Number(await psql(pgUrl, changed)) >= 300, 15_000, "the changes counted");
    const analyzed =
      "SELECT count(*) FROM pg_stat_user_tables WHERE relname IN ('tasks', 'results') AND last_analyze IS NOT NULL";
    assert.equal(await psql(pgUrl, analyzed), "0", "nothing analyzed the tables before the restart");

    const second = await startServer({ store: "postgres", pgUrl });
    cleanup.push(() => second.server.shutdown());
    assert.equal(await psql(pgUrl, analyzed), "2", "the load analyzed both tables");
    const c2 = await connect(second.info.url);
    cleanup.push(() => c2.close());
    assert.equal((await c2.countTasks()).SUBMITTED, 300);
    // The payloads of the live tasks were read by id, in one array a query.
    for (const i of [0, 299]) {
      const data = await c2.downloadResult(tasks[i].payloadId);
      assert.equal(data.toString(), `payload ${i}`);
    }
  });

  it("leaves room in the pages of tasks and results: a row rewritten when its task ends changes no index", async () => {
    const pgUrl = await newDatabase(cluster);
    // The tables as a zgrid of before made them, pages filled up: the start gives them room from now on.
    await psql(
      pgUrl,
      "CREATE TABLE results (rowid bigint GENERATED ALWAYS AS IDENTITY, id text PRIMARY KEY, session_id text NOT NULL, status text NOT NULL, doc bytea NOT NULL, data bytea); " +
        "CREATE TABLE tasks (rowid bigint GENERATED ALWAYS AS IDENTITY, id text PRIMARY KEY, session_id text NOT NULL, seq bigint NOT NULL, status text NOT NULL, doc bytea NOT NULL)",
    );
    const { server, info } = await startServer({ store: "postgres", pgUrl });
    cleanup.push(() => server.shutdown());
    const options =
      "SELECT relname || ' ' || array_to_string(reloptions, ',') FROM pg_class WHERE relname IN ('results', 'tasks') ORDER BY 1";
    assert.equal(await psql(pgUrl, options), "results fillfactor=60\ntasks fillfactor=40");
    const worker = await spawnWorker(server, EXAMPLE_APPS, 2);
    cleanup.push(() => worker.stop());
    const client = await connect(info.url);
    cleanup.push(() => client.close());
    const s = await client.createSession({ applicationName: "hello" });
    const tasks = await client.submitTasks(
      s,
      Array.from({ length: 200 }, () => ({ payload: encodePayload("noop") })),
    );
    await client.waitResultsData(tasks.map((t) => t.expectedOutputIds[0]));
    // The rows were rewritten (each task and output at least once), all but a few in place: HOT updates.
    // A backend's counts reach the statistics within a second or so: wait for all of them.
    const counts =
      "SELECT relname || ' ' || n_tup_upd || ' ' || n_tup_hot_upd FROM pg_stat_user_tables WHERE relname IN ('results', 'tasks') ORDER BY 1";
    let rows: [string, number, number][] = [];
    await waitFor(
      async () => {
        rows = (await psql(pgUrl, counts)).split("\n").map((l) => {
          const [name, updated, hot] = l.split(" ");
          return [name, Number(updated), Number(hot)];
        });
        return rows.length === 2 && rows.every(([, updated]) => updated >= 200);
      },
      15_000,
      "the updates counted",
    );
    for (const [name, updated, hot] of rows)
      assert.ok(hot >= 0.75 * updated, `${name}: ${hot} of ${updated} updates in place`);
  });

  it(
    "a standby waits, takes over within seconds of a kill -9 of the owner, and has every acknowledged task",
    { timeout: 120_000 },
    async () => {
      const pgUrl = await newDatabase(cluster);
      const [a, b] = [await freePorts(4), await freePorts(4)];
      const leader = spawnCli([
        ...serverArgsOn(a, tempDir(), "ha", "ha-worker"),
        "--store",
        "postgres",
        "--pg-url",
        pgUrl,
      ]);
      cleanup.push(() => leader.stop());
      // The client and the worker are given both servers' URLs: they follow the one that serves.
      const client = await connect(`tcp://127.0.0.1:${a[0]},127.0.0.1:${b[0]}?token=ha`, {
        timeoutMs: 5_000,
      });
      cleanup.push(() => client.close());
      const worker = spawnCli([
        "worker",
        "--connect",
        `tcp://127.0.0.1:${a[1]},127.0.0.1:${b[1]}?token=ha-worker`,
        "--app-path",
        EXAMPLE_APPS,
        "--slots",
        "2",
        "--log-level",
        "warn",
      ]);
      cleanup.push(() => worker.stop());
      const s = await client.createSession({ partitionId: "nobody" });
      const acked = await client.submitTasks(
        s,
        Array.from({ length: 2000 }, () => ({ payload: Buffer.from("p") })),
      );
      const standbyDir = tempDir();
      const standbyArgs = [
        ...serverArgsOn(b, standbyDir, "ha", "ha-worker"),
        "--store",
        "postgres",
        "--pg-url",
        pgUrl,
        "--standby",
      ];
      const standby = spawnCli(standbyArgs);
      cleanup.push(() => standby.stop());
      await waitFor(
        () => /standby: another zgrid server owns the database/.test(standby.stdout()),
        20_000,
        "the standby waiting",
      );
      assert.doesNotMatch(standby.stdout(), /server is ready/, "a standby binds nothing while it waits");
      // What a liveness probe reads of a standby, which answers no ruok.
      const marker = join(standbyDir, "standby");
      assert.match(readFileSync(marker, "utf8"), /^\d+ another zgrid server owns the database\n$/);

      leader.child.kill("SIGKILL");
      await leader.exited;
      const killed = Date.now();
      await waitFor(
        async () => (await client.ruok().catch(() => "")) === "imok",
        30_000,
        "the standby serving, through the client given both URLs",
      );
      // A few seconds on an idle machine (about 1 s here); the bound leaves a loaded one room.
      const took = Date.now() - killed;
      assert.ok(took < 20_000, `took over after ${took} ms`);
      const counts = await client.countTasks({ sessionId: s });
      assert.equal(counts.SUBMITTED, acked.length, JSON.stringify(counts));
      assert.equal(existsSync(marker), false, "the owner it became is no standby");
      // The worker followed too: new work runs on it.
      const hello = await client.createSession({ applicationName: "hello" });
      const sums = await client.submitTasks(
        hello,
        Array.from({ length: 20 }, (_, i) => ({ payload: encodePayload("sum", [[i, 1]]) })),
      );
      const outputs = sums.map((t) => t.expectedOutputIds[0]);
      const done = await client.waitResultsData(outputs, { timeoutMs: 60_000 });
      outputs.forEach((id, i) => assert.equal(decodeOutput(done.data.get(id)!), i + 1));

      // A standby stopped while it waits exits 0.
      const other = spawnCli([
        ...serverArgsOn(await freePorts(4), tempDir(), "ha", "ha-worker"),
        "--store",
        "postgres",
        "--pg-url",
        pgUrl,
        "--standby",
      ]);
      await waitFor(() => /standby:/.test(other.stdout()), 20_000, "the second standby waiting");
      other.child.kill("SIGTERM");
      assert.equal((await other.exited).code, 0);
    },
  );

  it(
    "an owner cut off while a standby took over never writes again: it refuses, then stops (exit 1)",
    { timeout: 120_000 },
    async () => {
      const pgUrl = await newDatabase(cluster);
      const target = { targetHost: "127.0.0.1", targetPort: Number(new URL(pgUrl).port) };
      let proxy = await FaultProxy.start({ listenHost: "127.0.0.1", ...target });
      const port = proxy.port;
      const via = new URL(pgUrl);
      via.port = String(port);
      const [a, b] = [await freePorts(4), await freePorts(4)];
      const pg = ["--store", "postgres", "--pg-url"];
      const old = spawnCli([...serverArgsOn(a, tempDir(), "f", "f-worker"), ...pg, via.toString()]);
      cleanup.push(() => old.stop());
      const c1 = await connect(`tcp://127.0.0.1:${a[0]}?token=f`, { timeoutMs: 10_000 });
      cleanup.push(() => c1.close());
      const s = await c1.createSession({ partitionId: "nobody" });
      const acked = await c1.submitTasks(s, [{ payload: Buffer.from("p") }, { payload: Buffer.from("q") }]);
      const standby = spawnCli([...serverArgsOn(b, tempDir(), "f", "f-worker"), ...pg, pgUrl, "--standby"]);
      cleanup.push(() => standby.stop());
      await waitFor(() => /standby:/.test(standby.stdout()), 20_000, "the standby waiting");

      // The owner's link to the database is cut: PostgreSQL ends its sessions, the lock is free.
      await proxy.close();
      await waitFor(() => /server is ready/.test(standby.stdout()), 30_000, "the standby taking over").catch(
        (err: Error) => {
          // What each server said: why the lock stayed taken (it happened once in CI, under load).
          throw new Error(
            `${err.message}\nstandby: ${standby.stdout()}${standby.stderr()}\nowner: ${old.stderr()}`,
          );
        },
      );
      await assert.rejects(c1.createSession({ partitionId: "nobody" }), { code: ErrorCode.UNAVAILABLE });
      // The link comes back: the old owner finds the database taken (its retry), writes nothing, stops.
      proxy = await FaultProxy.start({ listenHost: "127.0.0.1", listenPort: port, ...target });
      cleanup.push(() => proxy.close());
      const exit = await Promise.race([
        old.exited,
        new Promise((r) => setTimeout(r, 30_000, "still running")),
      ]);
      assert.deepEqual(exit, { code: 1, signal: null }, old.stderr());
      assert.match(old.stderr(), /stopped: another zgrid server owns this database/);
      const c2 = await connect(`tcp://127.0.0.1:${b[0]}?token=f`, { timeoutMs: 30_000 });
      cleanup.push(() => c2.close());
      assert.equal((await c2.countTasks({ sessionId: s })).SUBMITTED, acked.length);
      assert.equal((await c2.listSessions({ pageSize: 10 })).total, 1, "nothing of the refused request");
    },
  );

  it(
    "cut off from the database: serves what it holds, refuses changes (UNAVAILABLE), loses nothing acknowledged",
    { timeout: 120_000 },
    async () => {
      const pgUrl = await newDatabase(cluster);
      const target = { targetHost: "127.0.0.1", targetPort: Number(new URL(pgUrl).port) };
      // The server is a process of its own: a read of the database holds its thread, and the proxy in
      // this process must go on forwarding meanwhile.
      let proxy = await FaultProxy.start({ listenHost: "127.0.0.1", ...target });
      const port = proxy.port;
      const via = new URL(pgUrl);
      via.port = String(port);
      const ports = await freePorts(4);
      const dir = tempDir();
      const args = [...serverArgsOn(ports, dir, "cut", "cut-worker"), "--store", "postgres"];
      const url = `tcp://127.0.0.1:${ports[0]}?token=cut`;
      let server: Proc = spawnCli([...args, "--pg-url", via.toString()]);
      cleanup.push(() => server.stop());
      let client = await connect(url, { timeoutMs: 30_000 });
      cleanup.push(() => client.close());
      const s = await client.createSession({ partitionId: "nobody" });
      const acked = await client.submitTasks(
        s,
        Array.from({ length: 100 }, () => ({ payload: Buffer.from("p") })),
      );

      // The link goes down: every connection reset, none taken.
      await proxy.close();
      assert.equal((await client.getSession(s)).sessionId, s, "a session in memory is served");
      assert.equal((await client.getTask(acked[0].taskId)).taskId, acked[0].taskId, "so is a task");
      const unavailable = {
        code: ErrorCode.UNAVAILABLE,
        message: /is unreachable.*nothing of this request was kept/,
      };
      await assert.rejects(client.createSession({ partitionId: "nobody" }), unavailable);
      await assert.rejects(client.submitTasks(s, [{ payload: Buffer.from("refused") }]), unavailable);

      // Back up: commits go through again (retried every 500 ms), without a restart.
      proxy = await FaultProxy.start({ listenHost: "127.0.0.1", listenPort: port, ...target });
      cleanup.push(() => proxy.close());
      let later: string | null = null;
      await waitFor(
        async () => {
          later = await client.createSession({ partitionId: "nobody" }).catch(() => null);
          return later !== null;
        },
        30_000,
        "a change accepted once the database is back",
      );
      await client.close();
      await server.stop();

      // What was acknowledged is there after a restart (straight to the database), nothing refused.
      server = spawnCli([...args, "--pg-url", pgUrl]);
      client = await connect(url, { timeoutMs: 30_000 });
      const counts = await client.countTasks({ sessionId: s });
      assert.equal(counts.SUBMITTED, acked.length, JSON.stringify(counts));
      assert.equal((await client.getSession(later!)).sessionId, later);
      assert.equal(
        (await client.listSessions({ pageSize: 100 })).total,
        2,
        "the refused session is not there",
      );
    },
  );
});
