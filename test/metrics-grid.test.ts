import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import { encodePayload } from "../src/client/payload.js";
import type { Server } from "../src/daemons/server.js";
import {
  FIXTURE_APPS,
  freePort,
  type Proc,
  removeDir,
  spawnCli,
  startServer,
  tempDir,
  waitFor,
} from "./helpers.js";

const PROMTOOL = "/usr/bin/promtool";
const PROMETHEUS = "/usr/bin/prometheus";

/** Parses a text exposition into `name{labels}` → value (labels as written by prom-client). */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** Whether a tool is there; under CI its absence fails the test, elsewhere the test is skipped. */
function requireTool(path: string, t: { skip(msg: string): void }): boolean {
  if (existsSync(path)) return true;
  if (process.env.CI) assert.fail(`${path} is missing (install the prometheus package): required under CI`);
  t.skip(`${path} is missing: install the prometheus package to run this test`);
  return false;
}

describe("grid metrics (Prometheus series and the TASKS category)", () => {
  let server: Server;
  let client: ZgridClient;
  let metricsClient: ZgridClient;
  const procs: Proc[] = [];
  let prometheus: ChildProcess | null = null;
  const dirs: string[] = [];

  const scrape = async (): Promise<Map<string, number>> => parse(await metricsClient.prometheus());

  before(async () => {
    ({ server } = await startServer({ heartbeatMs: 200, prometheusPort: 0 }));
    client = await connect(server.info!.url, { timeoutMs: 60_000 });
    metricsClient = await connect(server.info!.metricsUrl!, { timeoutMs: 60_000 });
  });
  after(async () => {
    if (prometheus && prometheus.exitCode === null && prometheus.signalCode === null) {
      const p = prometheus;
      const gone = new Promise((r) => p.once("exit", r));
      const timer = setTimeout(() => p.kill("SIGKILL"), 5000);
      p.kill("SIGTERM");
      await gone;
      clearTimeout(timer);
    }
    await Promise.all(procs.map((p) => p.stop()));
    await metricsClient.close();
    await client.close();
    await server.shutdown();
    for (const d of dirs) removeDir(d);
  });

  it("moves every series as tasks are queued, run, and end", async () => {
    let m = await scrape();
    assert.equal(m.get("zgrid_workers_connected"), 0);
    assert.equal(m.get("zgrid_worker_slots"), 0);
    assert.equal(m.get("zgrid_worker_busy_slots"), 0);
    assert.equal(m.get('zgrid_queue_length{partition="mq"}'), undefined);
    const results0 = m.get("zgrid_results")!;
    assert.equal(typeof results0, "number");
    assert.ok(m.has("zgrid_store_pending_writes"));
    assert.deepEqual(
      [...m.keys()].filter((k) => k.startsWith("zgrid_tasks{")),
      [],
      "no partition holds tasks yet",
    );
    assert.equal(m.get("zgrid_result_bytes"), 0);

    const sessionId = await client.createSession({ applicationName: "testapp", partitionId: "mq" });
    const tasks = await client.submitTasks(sessionId, [
      { payload: encodePayload("echo", [1]) },
      { payload: encodePayload("echo", [2]) },
      { payload: encodePayload("echo", [3]) },
    ]);
    m = await scrape();
    assert.equal(m.get('zgrid_queue_length{partition="mq"}'), 3);
    assert.equal(m.get('zgrid_tasks{partition="mq",status="SUBMITTED"}'), 3);
    assert.equal(
      m.get('zgrid_tasks{partition="mq",status="COMPLETED"}'),
      0,
      "zeros of a partition with tasks",
    );
    assert.equal(m.get("zgrid_results"), results0 + 6, "3 payloads and 3 outputs");
    const payloadBytes = m.get("zgrid_result_bytes")!;
    assert.ok(payloadBytes > 0, "the payloads' bytes");

    const tasksCategory = await metricsClient.metrics("TASKS");
    const byName = new Map(tasksCategory.map((x) => [x.name as string, x]));
    assert.equal(byName.get("queue.mq")?.value, 3);
    assert.equal(byName.get("queue.mq")?.scope, "GLOBAL");
    assert.equal(byName.get("workers")?.value, 0);
    assert.equal(byName.get("SUBMITTED")?.value, 3);

    procs.push(
      spawnCli([
        "worker",
        "--connect",
        server.info!.workerUrl,
        "--app-path",
        FIXTURE_APPS,
        "--log-level",
        "warn",
        "--slots",
        "2",
        "--partition",
        "mq",
      ]),
    );
    await waitFor(() => server.scheduler.workers.size === 1, 15_000, "worker connected");
    await client.waitResults(
      tasks.map((t) => t.expectedOutputIds[0]),
      { timeoutMs: 30_000 },
    );
    m = await scrape();
    assert.equal(m.get("zgrid_workers_connected"), 1);
    assert.equal(m.get("zgrid_worker_slots"), 2);
    assert.equal(m.get('zgrid_queue_length{partition="mq"}'), 0);
    assert.equal(m.get('zgrid_tasks{partition="mq",status="COMPLETED"}'), 3);
    assert.equal(m.get('zgrid_tasks{partition="mq",status="SUBMITTED"}'), 0);
    assert.equal(m.get('zgrid_task_duration_seconds_count{application="testapp"}'), 3);
    // The sum is each task's run time (start of its last attempt to its end), as the tasks report them.
    const runSeconds = async (ids: string[]): Promise<number> => {
      let sum = 0;
      for (const id of ids) {
        const info = await client.getTask(id);
        const last = info.attempts[info.attempts.length - 1]!;
        assert.equal(typeof info.endedAt, "number", `${id} ended`);
        sum += (info.endedAt! - last.startedAt) / 1000;
      }
      return sum;
    };
    const echoIds = tasks.map((t) => t.taskId);
    const echoSeconds = await runSeconds(echoIds);
    const sum3 = m.get('zgrid_task_duration_seconds_sum{application="testapp"}')!;
    assert.ok(Math.abs(sum3 - echoSeconds) < 1e-6, `duration sum ${sum3} s, the tasks ran ${echoSeconds} s`);
    assert.ok(m.get("zgrid_store_commit_seconds_count")! > 0, "SQLite commits observed");
    assert.ok(m.get("zgrid_result_bytes")! > payloadBytes, "the outputs' bytes");
    assert.equal((await metricsClient.metrics("TASKS")).find((x) => x.name === "workers")?.value, 1);

    // A task holding a slot, then one that ends ERROR.
    const [sleeper, failing] = await client.submitTasks(sessionId, [
      { payload: encodePayload("sleep", [1500]) },
      { payload: encodePayload("appfail", ["metrics"]) },
    ]);
    await waitFor(
      async () => (await client.getTask(sleeper.taskId)).status === "PROCESSING",
      15_000,
      "sleeper processing",
    );
    m = await scrape();
    assert.ok(m.get("zgrid_worker_busy_slots")! >= 1);
    await client.waitResults([sleeper.expectedOutputIds[0], failing.expectedOutputIds[0]], {
      timeoutMs: 30_000,
    });
    m = await scrape();
    assert.equal(m.get('zgrid_tasks{partition="mq",status="ERROR"}'), 1);
    assert.equal(m.get('zgrid_task_duration_seconds_count{application="testapp"}'), 5);
    const sum5 = m.get('zgrid_task_duration_seconds_sum{application="testapp"}')!;
    const allSeconds = echoSeconds + (await runSeconds([sleeper.taskId, failing.taskId]));
    assert.ok(Math.abs(sum5 - allSeconds) < 1e-6, `duration sum ${sum5} s, the tasks ran ${allSeconds} s`);
    assert.ok(sum5 - sum3 >= 1.4, "the sleeper's 1.5 s");
    assert.equal(m.get("zgrid_worker_busy_slots"), 0);

    // Tasks in a partition no worker serves are counted apart from those of "mq".
    const nobody = await client.createSession({ applicationName: "testapp", partitionId: "nobody" });
    await client.submitTasks(nobody, [
      { payload: encodePayload("echo", [1]) },
      { payload: encodePayload("echo", [2]) },
    ]);
    m = await scrape();
    assert.equal(m.get('zgrid_tasks{partition="nobody",status="SUBMITTED"}'), 2);
    assert.equal(m.get('zgrid_tasks{partition="nobody",status="COMPLETED"}'), 0);
    assert.equal(m.get('zgrid_tasks{partition="mq",status="SUBMITTED"}'), 0);
    assert.equal(m.get('zgrid_tasks{partition="mq",status="COMPLETED"}'), 4);
    // Once the session is deleted the partition holds no task, and its series go.
    await client.cancelSession(nobody);
    await client.deleteSession(nobody);
    m = await scrape();
    assert.deepEqual(
      [...m.keys()].filter((k) => k.startsWith('zgrid_tasks{partition="nobody"')),
      [],
    );
    assert.equal(m.get('zgrid_tasks{partition="mq",status="COMPLETED"}'), 4);

    // The same series over HTTP for a Prometheus server.
    const res = await fetch(`http://127.0.0.1:${server.prometheusPort}/metrics`);
    assert.equal(res.status, 200);
    const http = parse(await res.text());
    assert.equal(http.get("zgrid_workers_connected"), 1);
    assert.equal(http.get('zgrid_tasks{partition="mq",status="COMPLETED"}'), 4);

    // Purging the session drops its data.
    await client.closeSession(sessionId);
    await client.purgeSession(sessionId);
    assert.equal((await scrape()).get("zgrid_result_bytes"), 0);
  });

  it("passes promtool check metrics", async (t) => {
    if (!requireTool(PROMTOOL, t)) return;
    const text = await metricsClient.prometheus();
    const r = spawnSync(PROMTOOL, ["check", "metrics"], { input: text, encoding: "utf8", timeout: 30_000 });
    assert.equal(r.status, 0, `promtool: ${r.stdout}${r.stderr}`);
  });

  it("is scraped by a real Prometheus server: zgrid_queue_length of a partition nobody serves", async (t) => {
    if (!requireTool(PROMETHEUS, t)) return;
    const sessionId = await client.createSession({ applicationName: "testapp", partitionId: "promq" });
    await client.submitTasks(sessionId, [
      { payload: encodePayload("echo", [1]) },
      { payload: encodePayload("echo", [2]) },
    ]);
    const dir = tempDir("zgrid-prometheus-");
    dirs.push(dir);
    const config = join(dir, "prometheus.yml");
    writeFileSync(
      config,
      [
        "global:",
        "  scrape_interval: 1s",
        "scrape_configs:",
        "  - job_name: zgrid",
        "    scrape_interval: 1s",
        "    static_configs:",
        `      - targets: ["127.0.0.1:${server.prometheusPort}"]`,
        "",
      ].join("\n"),
    );
    const webPort = await freePort();
    let log = "";
    prometheus = spawn(
      PROMETHEUS,
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${webPort}`,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    prometheus.stdout!.on("data", (d: Buffer) => (log += d.toString()));
    prometheus.stderr!.on("data", (d: Buffer) => (log += d.toString()));
    let value: string | null = null;
    const query = `http://127.0.0.1:${webPort}/api/v1/query?query=${encodeURIComponent('zgrid_queue_length{partition="promq"}')}`;
    try {
      await waitFor(
        async () => {
          if (prometheus!.exitCode !== null) throw new Error(`prometheus exited: ${log.slice(-2000)}`);
          try {
            const res = await fetch(query, { signal: AbortSignal.timeout(2000) });
            if (!res.ok) return false;
            const body = (await res.json()) as {
              data: { result: { metric: Record<string, string>; value: [number, string] }[] };
            };
            const hit = body.data.result.find((x) => x.metric.partition === "promq");
            if (hit) value = hit.value[1];
            return hit !== undefined;
          } catch {
            return false;
          }
        },
        60_000,
        "Prometheus to scrape zgrid_queue_length",
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\nprometheus log:\n${log.slice(-2000)}`, { cause: err });
    }
    assert.equal(value, "2");
    const p = prometheus;
    const gone = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    const timer = setTimeout(() => p.kill("SIGKILL"), 5000);
    await gone;
    clearTimeout(timer);
  });
});
