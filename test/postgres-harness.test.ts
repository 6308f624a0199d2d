/**
 * The throw-away PostgreSQL clusters of test/postgres.ts: one answers through its url, keeps PostgreSQL's
 * durability defaults, is gone (processes and directory) after stop(), and after kill() then stop();
 * two at once are on different ports.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { after, describe, it } from "node:test";
import { waitFor } from "./helpers.js";
import { postgresUnavailable, psql, startPostgres, type TestPostgres } from "./postgres.js";

const unavailable = postgresUnavailable();
if (unavailable) console.error(`\n!!! SKIPPING the PostgreSQL harness tests: ${unavailable}\n`);

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ESRCH";
  }
}

/** Dead: gone, or a zombie (an orphan that init has yet to reap). */
function dead(pid: number): boolean {
  if (gone(pid)) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

describe("test PostgreSQL clusters", { skip: unavailable ?? false }, () => {
  const started: TestPostgres[] = [];
  after(async () => {
    await Promise.all(started.map((pg) => pg.stop()));
  });

  async function start(settings?: Record<string, string>): Promise<TestPostgres> {
    const pg = await startPostgres({ settings });
    started.push(pg);
    return pg;
  }

  it("answers SQL through its url, with fsync and synchronous_commit on; stop() leaves nothing", async () => {
    const t0 = Date.now();
    const pg = await start({ work_mem: "8MB", log_line_prefix: "%m [%p] it's a test " });
    console.error(`startPostgres took ${Date.now() - t0} ms (port ${pg.port}, pid ${pg.pid})`);
    assert.match(pg.url, /^postgres:\/\/zgrid:[0-9a-f]+@127\.0\.0\.1:\d+\/zgrid$/);
    assert.ok(pg.url.includes(`:${pg.port}/`));
    assert.equal(await psql(pg.url, "SELECT 1"), "1");
    assert.equal(await psql(pg.url, "SELECT current_user || ' ' || current_database()"), "zgrid zgrid");
    assert.equal(await psql(pg.url, "SHOW fsync"), "on");
    assert.equal(await psql(pg.url, "SHOW synchronous_commit"), "on");
    assert.equal(await psql(pg.url, "SHOW max_connections"), "50");
    assert.equal(await psql(pg.url, "SHOW work_mem"), "8MB");
    assert.equal(await psql(pg.url, "SHOW log_line_prefix"), "%m [%p] it's a test ");
    // The role can make tables in its database (PostgreSQL 15: public belongs to the database's owner).
    assert.equal(
      await psql(pg.url, "CREATE TABLE t (x int); INSERT INTO t VALUES (7); SELECT x FROM t"),
      "7",
    );
    // Password authentication: without the password, no connection.
    const noPassword = pg.url.replace(/:[0-9a-f]+@/, "@");
    await assert.rejects(psql(noPassword, "SELECT 1"), /password/i);

    const t1 = Date.now();
    await pg.stop();
    console.error(`stop() took ${Date.now() - t1} ms`);
    assert.ok(gone(pg.pid), `the postmaster ${pg.pid} is still there after stop()`);
    assert.equal(existsSync(pg.dir), false, `${pg.dir} is still there after stop()`);
    await pg.stop(); // a second stop is harmless
  });

  it("kill() ends the cluster at once and leaves its directory; stop() then cleans up", async () => {
    const pg = await start();
    assert.equal(await psql(pg.url, "SELECT 1"), "1");
    pg.kill();
    await assert.rejects(psql(pg.url, "SELECT 1", 5_000));
    assert.ok(existsSync(pg.dir), "kill() removed the directory");
    await pg.stop();
    assert.ok(gone(pg.pid), `the postmaster ${pg.pid} is still there after kill() and stop()`);
    assert.equal(existsSync(pg.dir), false, `${pg.dir} is still there after kill() and stop()`);
  });

  it("two clusters at once are on different ports and directories", async () => {
    const [a, b] = await Promise.all([start(), start()]);
    assert.notEqual(a.port, b.port);
    assert.notEqual(a.dir, b.dir);
    await psql(a.url, "CREATE TABLE only_in_a (x int)");
    assert.equal(await psql(a.url, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"), "1");
    assert.equal(await psql(b.url, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"), "0");
    await Promise.all([a.stop(), b.stop()]);
    for (const pg of [a, b]) {
      assert.ok(gone(pg.pid));
      assert.equal(existsSync(pg.dir), false);
    }
  });

  it("a server that does not start: the error has the log's tail, and nothing is left", async () => {
    const err = await startPostgres({ settings: { shared_buffers: "lots" } }).then(
      () => assert.fail("started with shared_buffers = 'lots'"),
      (e: Error) => e,
    );
    assert.match(err.message, /invalid value for parameter "shared_buffers": "lots"/);
    const dir = /(\S*zgrid-pg-[^/\s]+)\/log/.exec(err.message)?.[1];
    assert.ok(dir, `no log path in: ${err.message}`);
    assert.equal(existsSync(dir), false, `${dir} is still there`);
  });

  it("a test process that ends without stop(): its exit handler kills the cluster and removes it", async () => {
    const script = `
      import { startPostgres } from ${JSON.stringify(new URL("./postgres.js", import.meta.url).href)};
      const pg = await startPostgres();
      console.log(JSON.stringify({ pid: pg.pid, dir: pg.dir }));
      process.exit(0);`;
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        ["--input-type=module", "-e", script],
        { timeout: 30_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
      ),
    );
    const { pid, dir } = JSON.parse(out) as { pid: number; dir: string };
    await waitFor(() => dead(pid), 5_000, `the postmaster ${pid} to die`);
    assert.equal(existsSync(dir), false, `${dir} is still there`);
  });
});
