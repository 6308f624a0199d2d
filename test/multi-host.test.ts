/**
 * Real hosts (issue 16): the server and two worker hosts each in a network namespace of their own
 * (test/netns.ts), joined by veth pairs to one switch; the test's client reaches the server through the
 * root namespace's veth. A link cut (`ip link set DEV down`) partitions a worker or the server; delay and
 * connection resets come from a TCP proxy in the test (test/fault-proxy.ts), as this kernel has no netem.
 * Every task must complete exactly once with its output. Skipped, loudly, where namespaces cannot be made
 * (not root, no iproute2).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import { encodePayload } from "../src/client/payload.js";
import type { ConnectionInfo } from "../src/daemons/server.js";
import { sessionTasks, tally } from "./exactly-once.js";
import { FaultProxy } from "./fault-proxy.js";
import { ANY_PORTS, EXAMPLE_APPS, removeDir, tempDir, waitFor, type Proc } from "./helpers.js";
import { NetnsLab, netnsUnavailable, sweepStaleLabs, type LabHost } from "./netns.js";

const WORKER_TOKEN = "netns-worker";
const HEARTBEAT_MS = 200;
const unavailable = netnsUnavailable();
if (unavailable !== null) {
  process.stderr.write(`\n*** multi-host tests SKIPPED: ${unavailable} ***\n\n`);
}

describe("tasks across hosts in network namespaces", { skip: unavailable ?? false }, () => {
  let lab: NetnsLab;
  let serverHost: LabHost;
  let hostA: LabHost;
  let hostB: LabHost;
  let server: Proc;
  let info: ConnectionInfo;
  let client: ZgridClient;
  let dataDir: string;

  before(async () => {
    const stale = sweepStaleLabs();
    if (stale.length > 0) process.stderr.write(`removed namespaces of killed runs: ${stale.join(", ")}\n`);
    lab = await NetnsLab.create(["server", "a", "b"]);
    serverHost = lab.host("server");
    hostA = lab.host("a");
    hostB = lab.host("b");
    dataDir = tempDir("zgrid-netns-");
    const infoFile = join(dataDir, "connection.json");
    server = lab.spawnCli(serverHost, [
      "server",
      "--host",
      serverHost.address,
      ...ANY_PORTS,
      "--data-dir",
      dataDir,
      "--connection-info",
      infoFile,
      "--token",
      "netns-token",
      "--worker-token",
      WORKER_TOKEN,
      "--heartbeat-ms",
      String(HEARTBEAT_MS),
      "--log-level",
      "info",
    ]);
    await waitFor(
      () => existsSync(infoFile) || server.child.exitCode !== null,
      20_000,
      "the server's connection-info file",
    );
    if (!existsSync(infoFile)) throw new Error(`the server exited early: ${server.stderr()}`);
    info = JSON.parse(readFileSync(infoFile, "utf8")) as ConnectionInfo;
    client = await connect(info.url, { timeoutMs: 30_000 });
  });

  after(async () => {
    await client?.close();
    await lab?.destroy();
    if (dataDir) removeDir(dataDir);
  });

  /** A worker host in `host`'s namespace, named `id`, resolved once the server lists it. */
  async function startWorker(
    host: LabHost,
    id: string,
    url = info.workerUrl,
    extra: string[] = [],
  ): Promise<Proc> {
    const worker = lab.spawnCli(host, [
      "worker",
      "--connect",
      url,
      "--app-path",
      EXAMPLE_APPS,
      "--slots",
      "2",
      "--worker-id",
      id,
      "--log-level",
      "warn",
      ...extra,
    ]);
    await waitFor(
      // By pid too: a worker of that name from an earlier test may still be listed.
      async () => worker.child.exitCode !== null || (await listed(id, worker.child.pid)),
      20_000,
      `worker ${id} to connect`,
    );
    if (worker.child.exitCode !== null) throw new Error(`worker ${id} exited: ${worker.stderr()}`);
    return worker;
  }

  /** Times the server's log says it declared `workerId` lost for missed heartbeats. */
  function declaredLost(workerId: string): number {
    let n = 0;
    for (const line of `${server.stdout()}\n${server.stderr()}`.split("\n")) {
      if (!line.startsWith("{")) continue;
      const entry = JSON.parse(line) as { msg?: string; worker?: string; reason?: string };
      if (
        entry.msg === "worker left" &&
        entry.worker === workerId &&
        entry.reason?.startsWith("no heartbeat")
      )
        n++;
    }
    return n;
  }

  /** The server's log lines about workers leaving and joining, for a failure's message. */
  function lossLog(): string {
    return `${server.stdout()}\n${server.stderr()}`
      .split("\n")
      .filter((line) => /worker (left|restarted)|READY/.test(line))
      .join("\n");
  }

  async function listed(workerId: string, pid?: number): Promise<boolean> {
    return (await client.listWorkers()).items.some(
      (w) => w.workerId === workerId && (pid === undefined || w.pid === pid),
    );
  }

  /**
   * Stops worker hosts and waits until the server lists none of them (a goodbye lost on the way is
   * heartbeats later), so the next test starts with its own. Says so, rather than throwing over a
   * test's own error, if they stay.
   */
  async function stopWorkers(workers: Proc[]): Promise<void> {
    const pids = workers.map((w) => w.child.pid);
    await Promise.all(workers.map((w) => w.stop()));
    await waitFor(
      async () => !(await client.listWorkers()).items.some((w) => pids.includes(w.pid)),
      10_000,
      "the stopped workers to leave the server's list",
    ).catch((err: Error) => process.stderr.write(`${err.message}\n`));
  }

  /**
   * Submits `[method, args, expected output]` triples in batches, into `partitionId` if given; returns
   * output id → expected output.
   */
  async function submit(
    sessionId: string,
    work: [string, unknown[], unknown][],
    partitionId?: string,
  ): Promise<Map<string, unknown>> {
    const expected = new Map<string, unknown>();
    const taskOptions = partitionId === undefined ? undefined : { partitionId };
    for (let from = 0; from < work.length; from += 1000) {
      const batch = work.slice(from, from + 1000);
      const tasks = await client.submitTasks(
        sessionId,
        batch.map(([method, args]) => ({ payload: encodePayload(method, args), taskOptions })),
      );
      tasks.forEach((t, i) => expected.set(t.expectedOutputIds[0]!, batch[i]![2]));
    }
    return expected;
  }

  it("the server and the client see each other only through the lab's veths", () => {
    assert.match(info.url, new RegExp(`^tcp://${serverHost.address.replaceAll(".", "\\.")}:\\d+\\?`));
    assert.ok(info.workerUrl.startsWith(`tcp://${serverHost.address}:`), info.workerUrl);
    // A worker host has its lab address and loopback, and no route but the lab's /24: nothing it sends
    // can leave the lab.
    const routes = lab.run(hostA, "ip", ["-4", "route", "show"]).trim().split("\n");
    assert.deepEqual(
      routes.map((r) => r.split(" ")[0]),
      [`${hostA.address.replace(/\.\d+$/, ".0")}/24`],
      routes.join("\n"),
    );
    assert.match(lab.run(hostA, "ip", ["-4", "addr", "show"]), new RegExp(`inet ${hostA.address}/24`));
    // The test's client reaches the server through the root namespace's veth onto the lab's switch.
    const path = execFileSync("ip", ["-4", "route", "get", serverHost.address], { encoding: "utf8" });
    assert.match(path, new RegExp(`dev ${lab.rootLink} `), path);
  });

  it(
    "3,000 tasks on two worker hosts complete exactly once each with their outputs",
    { timeout: 180_000 },
    async () => {
      const workers = [await startWorker(hostA, "a"), await startWorker(hostB, "b")];
      try {
        const sessionId = await client.createSession({ applicationName: "hello" });
        const work: [string, unknown[], unknown][] = Array.from({ length: 3000 }, (_, i) => [
          "sum",
          [[i, 2 * i]],
          3 * i,
        ]);
        const expected = await submit(sessionId, work);
        const t = await tally(client, sessionId, expected, 120_000);
        assert.equal(t.notCompleted, 0);
        assert.equal(t.wrongOutput, 0);
        assert.equal(t.completedTwice, 0);
        // No fault: one attempt each, and both hosts took part.
        assert.equal(t.tasks.filter((task) => task.attempts.length !== 1).length, 0);
        assert.ok((t.byWorker.get("a") ?? 0) > 0, `host a ran none: ${JSON.stringify([...t.byWorker])}`);
        assert.ok((t.byWorker.get("b") ?? 0) > 0, `host b ran none: ${JSON.stringify([...t.byWorker])}`);
        assert.equal((t.byWorker.get("a") ?? 0) + (t.byWorker.get("b") ?? 0), 3000);
      } finally {
        await stopWorkers(workers);
      }
    },
  );

  it(
    "a worker cut off mid-run is declared lost, its tasks run on the other host, and it comes back cleanly",
    { timeout: 180_000 },
    async () => {
      const workers = [await startWorker(hostA, "a"), await startWorker(hostB, "b")];
      try {
        const sessionId = await client.createSession({ applicationName: "hello", maxRetries: 5 });
        const work: [string, unknown[], unknown][] = Array.from({ length: 16 }, (_, i) => {
          const ms = 1000 + ((i * 137) % 1000);
          return ["sleep", [ms], ms];
        });
        const expected = await submit(sessionId, work);
        const onA = async (): Promise<string[]> =>
          (await sessionTasks(client, sessionId))
            .filter((task) => task.workerId === "a" && task.status === "PROCESSING")
            .map((task) => task.taskId);
        let cutOff: string[] = [];
        await waitFor(async () => (cutOff = await onA()).length > 0, 30_000, "tasks running on host a");

        const lostBefore = declaredLost("a");
        lab.cut(hostA);
        const cutAt = Date.now();
        await waitFor(() => declaredLost("a") > lostBefore, 10_000, "the server to declare host a lost");
        const lostAfterMs = Date.now() - cutAt;
        assert.equal(await listed("a"), false, "a lost worker is no longer listed");
        // Three missed heartbeats, judged at the next beat: well under a second, not the TCP timeout.
        assert.ok(lostAfterMs >= 2 * HEARTBEAT_MS, `declared lost after only ${lostAfterMs} ms`);
        // Its tasks are retried on the other host and complete there, while host a, cut off, finishes its
        // own copies and cannot report them: it will, once back, about tasks that are done already.
        await waitFor(
          async () => {
            const tasks = await sessionTasks(client, sessionId);
            return cutOff.every((id) => tasks.find((task) => task.taskId === id)!.status === "COMPLETED");
          },
          60_000,
          "the cut-off worker's tasks to complete on host b",
        );
        lab.mend(hostA);
        // The same process (no restart) says READY again and is taken back.
        await waitFor(
          () => listed("a", workers[0]!.child.pid),
          20_000,
          "host a to reconnect once its link is back",
        );

        const t = await tally(client, sessionId, expected, 120_000);
        assert.equal(t.notCompleted, 0);
        assert.equal(t.wrongOutput, 0);
        assert.equal(t.completedTwice, 0);
        for (const id of cutOff) {
          const task = t.tasks.find((x) => x.taskId === id)!;
          assert.equal(task.attempts[0]!.workerId, "a");
          assert.notEqual(task.attempts[0]!.status, "COMPLETED", JSON.stringify(task.attempts));
          assert.equal(task.attempts.at(-1)!.status, "COMPLETED", JSON.stringify(task.attempts));
          assert.equal(task.attempts.at(-1)!.workerId, "b", JSON.stringify(task.attempts));
        }

        // Host a works again: with host b gone, new work can only run there, once each.
        assert.ok(
          workers.every((w) => w.child.exitCode === null),
          "both workers still run",
        );
        await workers[1]!.stop();
        await waitFor(async () => !(await listed("b")), 10_000, "host b to leave");
        const again = await client.createSession({ applicationName: "hello" });
        const more = await submit(
          again,
          Array.from({ length: 400 }, (_, i) => ["sum", [[i, 1]], i + 1] as [string, unknown[], unknown]),
        );
        const t2 = await tally(client, again, more, 60_000);
        assert.deepEqual([t2.notCompleted, t2.wrongOutput, t2.completedTwice], [0, 0, 0]);
        assert.equal(t2.byWorker.get("a"), 400, `by worker: ${JSON.stringify([...t2.byWorker])}`);
        process.stderr.write(`host a declared lost ${lostAfterMs} ms after its link was cut\n`);
      } finally {
        lab.mend(hostA);
        await stopWorkers(workers);
      }
    },
  );

  it(
    "50 ms of delay per chunk and connection resets between a worker and the server lose and repeat nothing",
    { timeout: 180_000 },
    async () => {
      const workerPort = Number(new URL(info.workerUrl).port);
      const proxy = await FaultProxy.start({
        listenHost: lab.gateway,
        targetHost: serverHost.address,
        targetPort: workerPort,
        delayMs: 50,
      });
      const viaProxy = `tcp://${lab.gateway}:${proxy.port}?token=${WORKER_TOKEN}`;
      // Host b alone serves partition "far": it has work through every reset, however fast host a is.
      const workers = [
        await startWorker(hostA, "a"),
        await startWorker(hostB, "b", viaProxy, ["--partition", "default,far"]),
      ];
      try {
        const sessionId = await client.createSession({ applicationName: "hello", maxRetries: 10 }, [
          "default",
          "far",
        ]);
        const work = (from: number): [string, unknown[], unknown][] =>
          Array.from({ length: 400 }, (_, i) => {
            const ms = 10 + ((from + i) % 40);
            return ["sleep", [ms], ms];
          });
        const expected = new Map([
          ...(await submit(sessionId, work(0))),
          ...(await submit(sessionId, work(400), "far")),
        ]);
        const completed = async (): Promise<number> => (await client.countTasks({ sessionId })).COMPLETED;
        for (let r = 0; r < 3; r++) {
          // Reset while host b holds tasks, then let the run make progress before the next one.
          await waitFor(
            async () =>
              proxy.connections > 0 &&
              (await client.listWorkers()).items.some((w) => w.workerId === "b" && w.inflight > 0),
            30_000,
            "host b to hold tasks through the proxy",
          );
          const before = await completed();
          assert.ok(proxy.resetAll() > 0);
          await waitFor(async () => (await completed()) >= Math.min(before + 50, 800), 60_000, "progress");
        }
        const t = await tally(client, sessionId, expected, 120_000);
        assert.equal(t.notCompleted, 0);
        assert.equal(t.wrongOutput, 0);
        assert.equal(t.completedTwice, 0);
        assert.ok((t.byWorker.get("b") ?? 0) > 0, "host b, behind the proxy, ran some of them");
        assert.ok(proxy.stats.resets >= 3 && proxy.stats.connections >= 4, JSON.stringify(proxy.stats));
        process.stderr.write(
          `through the proxy: ${JSON.stringify(proxy.stats)}; by worker ${JSON.stringify([...t.byWorker])}\n`,
        );
      } finally {
        await stopWorkers(workers);
        await proxy.close();
      }
    },
  );

  it(
    "the server cut off from both workers for a while: every task still completes exactly once",
    { timeout: 180_000 },
    async () => {
      const workers = [await startWorker(hostA, "a"), await startWorker(hostB, "b")];
      try {
        const sessionId = await client.createSession({ applicationName: "hello", maxRetries: 5 });
        const work: [string, unknown[], unknown][] = Array.from({ length: 12 }, (_, i) => {
          const ms = 800 + ((i * 211) % 800);
          return ["sleep", [ms], ms];
        });
        const expected = await submit(sessionId, work);
        await waitFor(
          async () => (await client.countTasks({ sessionId })).PROCESSING >= 2,
          30_000,
          "tasks running",
        );
        // The client reaches the server through the same switch: it is cut off too, so the server's log
        // says when it has given up on both workers.
        const lostBefore = [declaredLost("a"), declaredLost("b")];
        lab.cut(serverHost);
        await waitFor(
          () => declaredLost("a") > lostBefore[0]! && declaredLost("b") > lostBefore[1]!,
          10_000,
          "the server to declare both workers lost",
        ).catch((err: Error) => {
          throw new Error(`${err.message}; the server's log of workers leaving:\n${lossLog()}`);
        });
        lab.mend(serverHost);
        await waitFor(async () => (await listed("a")) && (await listed("b")), 20_000, "both workers back");
        const t = await tally(client, sessionId, expected, 120_000);
        assert.equal(t.notCompleted, 0);
        assert.equal(t.wrongOutput, 0);
        assert.equal(t.completedTwice, 0);
        const retried = t.tasks.filter((task) => task.attempts.length > 1).length;
        process.stderr.write(`after the server's partition: ${retried} of 12 tasks ran more than once\n`);
      } finally {
        lab.mend(serverHost);
        await stopWorkers(workers);
      }
    },
  );
});
