/**
 * PostgreSQL failover across real hosts (issue 16): the owner, a standby and a worker host each in a
 * network namespace of their own (test/netns.ts); PostgreSQL and the test's client in the root namespace,
 * reached through the lab's veth. The owner's host is cut off (`ip link set DEV down`: no reset, its
 * packets vanish) in the middle of a run: the database must notice and free its lock, the standby take
 * over, the client and the worker (given both servers' URLs) follow it, every task complete exactly
 * once; and the old owner, once its link is back, must never commit again. Skipped, loudly, where
 * namespaces or PostgreSQL cannot be had.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import { encodePayload } from "../src/client/payload.js";
import { tally } from "./exactly-once.js";
import { EXAMPLE_APPS, removeDir, tempDir, waitFor, type Proc } from "./helpers.js";
import { NetnsLab, netnsUnavailable, sweepStaleLabs, type LabHost } from "./netns.js";
import { newDatabase, postgresUnavailable, psql, startPostgres, type TestPostgres } from "./postgres.js";

const TOKEN = "ha-token";
const WORKER_TOKEN = "ha-worker";
/** Each server in a namespace of its own: these ports are free there (and not the default ones). */
const PORTS = { client: 25555, metrics: 25556, status: 25557, worker: 25558 };
const unavailable = netnsUnavailable() ?? postgresUnavailable();
if (unavailable !== null) {
  process.stderr.write(`\n*** PostgreSQL multi-host tests SKIPPED: ${unavailable} ***\n\n`);
}

describe("PostgreSQL failover across hosts in network namespaces", { skip: unavailable ?? false }, () => {
  let lab: NetnsLab;
  let cluster: TestPostgres;
  let pgUrl: string;
  const dirs: string[] = [];
  const clients: ZgridClient[] = [];

  before(async () => {
    const stale = sweepStaleLabs();
    if (stale.length > 0) process.stderr.write(`removed namespaces of killed runs: ${stale.join(", ")}\n`);
    lab = await NetnsLab.create(["owner", "standby", "a"]);
    cluster = await startPostgres({ lab: { address: lab.gateway, network: lab.network } });
    // The database as the lab's hosts reach it: the root namespace's address on the lab.
    const u = new URL(await newDatabase(cluster));
    u.hostname = lab.gateway;
    pgUrl = u.toString();
  });

  after(async () => {
    for (const c of clients) await c.close();
    await lab?.destroy();
    await cluster?.stop();
    for (const d of dirs) removeDir(d);
  });

  function startServer(host: LabHost, standby: boolean): Proc {
    const dir = tempDir("zgrid-ha-");
    dirs.push(dir);
    return lab.spawnCli(host, [
      "server",
      "--host",
      host.address,
      "--port",
      String(PORTS.client),
      "--worker-port",
      String(PORTS.worker),
      "--metrics-port",
      String(PORTS.metrics),
      "--status-port",
      String(PORTS.status),
      "--data-dir",
      dir,
      "--token",
      TOKEN,
      "--worker-token",
      WORKER_TOKEN,
      "--heartbeat-ms",
      "500",
      "--store",
      "postgres",
      "--pg-url",
      pgUrl,
      "--log-level",
      "info",
      ...(standby ? ["--standby"] : []),
    ]);
  }

  /** A client of the servers on `hosts` (several: it follows the one that serves). */
  async function client(hosts: LabHost[], timeoutMs = 30_000): Promise<ZgridClient> {
    const where = hosts.map((h) => `${h.address}:${PORTS.client}`).join(",");
    const c = await connect(`tcp://${where}?token=${TOKEN}`, { timeoutMs });
    clients.push(c);
    return c;
  }

  /** Until `c` answers ruok twice in a row (each try bounded): a server serves behind it. */
  async function serving(c: ZgridClient, timeoutMs: number, what: string): Promise<void> {
    let inARow = 0;
    await waitFor(
      async () => {
        const ok = (await Promise.race([c.ruok(), new Promise((r) => setTimeout(r, 2000, ""))])) === "imok";
        inARow = ok ? inARow + 1 : 0;
        return inARow >= 2;
      },
      timeoutMs,
      what,
    );
  }

  it(
    "the owner's host cut off mid-run: the standby takes over, every task completes exactly once, the old owner never commits again",
    { timeout: 240_000 },
    async (t) => {
      const ownerHost = lab.host("owner");
      const standbyHost = lab.host("standby");
      const owner = startServer(ownerHost, false);
      const both = await client([ownerHost, standbyHost]);
      await serving(both, 30_000, "the owner serving");
      const standby = startServer(standbyHost, true);
      await waitFor(
        () => /standby: another zgrid server owns the database/.test(standby.stdout()),
        30_000,
        "the standby waiting",
      );
      const workerUrl = `tcp://${ownerHost.address}:${PORTS.worker},${standbyHost.address}:${PORTS.worker}?token=${WORKER_TOKEN}`;
      lab.spawnCli(lab.host("a"), [
        "worker",
        "--connect",
        workerUrl,
        "--app-path",
        EXAMPLE_APPS,
        "--slots",
        "2",
        "--worker-id",
        "a",
        "--log-level",
        "warn",
      ]);
      await waitFor(async () => (await both.listWorkers()).total === 1, 30_000, "the worker on the owner");

      // Tasks of a few ms each: the run lasts seconds, long enough to cut it in the middle.
      const sessionId = await both.createSession({ applicationName: "hello", maxRetries: 5 });
      const expected = new Map<string, unknown>();
      const n = 1200;
      for (let from = 0; from < n; from += 400) {
        const ms = Array.from({ length: 400 }, (_, i) => 5 + ((from + i) % 4));
        const tasks = await both.submitTasks(
          sessionId,
          ms.map((m) => ({ payload: encodePayload("sleep", [m]) })),
        );
        tasks.forEach((t, i) => expected.set(t.expectedOutputIds[0]!, ms[i]));
      }
      await waitFor(
        async () => ((await both.countTasks({ sessionId })).COMPLETED ?? 0) >= 100,
        60_000,
        "the run under way",
      );

      lab.cut(ownerHost);
      const cutAt = Date.now();
      // PostgreSQL ends the cut-off owner's session (the store's TCP keepalives, seconds), its lock is
      // free, the standby takes it and serves; the client drops the silent owner (ZMTP heartbeats).
      await waitFor(
        () => /server is ready/.test(standby.stdout()) || standby.child.exitCode !== null,
        60_000,
        "the standby taking over",
      ).catch(async (err: Error) => {
        const sessions = await psql(
          pgDirect(),
          "SELECT pid, client_addr, state, backend_start, left(query, 60) FROM pg_stat_activity WHERE datname = current_database()",
        ).catch((e: Error) => e.message);
        throw new Error(
          `${err.message}; the database's sessions:\n${sessions}\nstandby: ${standby.stdout()}`,
        );
      });
      assert.equal(standby.child.exitCode, null, `the standby exited: ${standby.stderr()}`);
      const tookMs = Date.now() - cutAt;
      await serving(both, 60_000, "the standby serving, through the client given both URLs");

      const counts = await tally(both, sessionId, expected, 120_000);
      assert.equal(counts.notCompleted, 0, "every task completed");
      assert.equal(counts.wrongOutput, 0);
      assert.equal(counts.completedTwice, 0, "none completed twice");
      // Seconds on an idle machine (the database notices the cut in about 5 s); room for a loaded one.
      assert.ok(tookMs < 45_000, `took over ${tookMs} ms after the cut`);
      assert.equal(
        await psql(pgDirect(), "SELECT value FROM meta WHERE key = 'epoch'"),
        "2",
        "the standby is the second owner",
      );

      // The old owner's link back: it still holds its state in memory and binds its ports, but the
      // database is another's. A change asked of it alone is never acknowledged, and nothing of it is
      // written.
      const sessionsBefore = await psql(pgDirect(), "SELECT count(*) FROM sessions");
      lab.mend(ownerHost);
      const old = await client([ownerHost], 10_000);
      const asked = await old.createSession({ applicationName: "hello" }).then(
        (id) => `acknowledged ${id}`,
        (err: Error) => err.message,
      );
      assert.doesNotMatch(asked, /^acknowledged/, "the old owner acknowledged a change");
      assert.equal(await psql(pgDirect(), "SELECT count(*) FROM sessions"), sessionsBefore);
      // It finds itself fenced on its next write and stops (exit 1), unless TCP is still retrying.
      await waitFor(() => owner.child.exitCode !== null, 60_000, "the old owner to stop").catch(() => {});
      if (owner.child.exitCode !== null) {
        assert.equal(owner.child.exitCode, 1, owner.stderr());
        assert.match(owner.stderr() + owner.stdout(), /another zgrid server|owns this database|stopped/);
      }
      assert.equal(await psql(pgDirect(), "SELECT count(*) FROM sessions"), sessionsBefore);
      t.diagnostic(
        `the standby took over ${tookMs} ms after the cut; the old owner was asked: ${asked}; ` +
          `it ${owner.child.exitCode === null ? "still runs (TCP retrying)" : `exited ${owner.child.exitCode}`}`,
      );
    },
  );

  /** The test's own URL of the database (127.0.0.1). */
  function pgDirect(): string {
    const u = new URL(pgUrl);
    u.hostname = "127.0.0.1";
    return u.toString();
  }
});
