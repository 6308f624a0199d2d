/**
 * One CLI that behaves the same everywhere (issue 15 item 5): a mistyped command gets a suggestion,
 * `zgrid help CMD` is `zgrid CMD --help`, hello takes --url as well as -e, tasks get shows dates, a cancel
 * that cancels nothing says so and fails, sessions list shows the newest first and says what is left,
 * a worker's mistakes are sentences, the bench's flags are kebab-case like the CLI's.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, encodePayload, type ZgridClient } from "../src/client/index.js";
import type { Server } from "../src/daemons/server.js";
import { EXAMPLE_APPS, ROOT, runCli, spawnWorker, startServer, waitFor, type Proc } from "./helpers.js";
import { spawn } from "node:child_process";

const STACK = /^\s+at /m;

describe("the zgrid command line", { concurrency: true }, () => {
  let server: Server;
  let worker: Proc;
  let client: ZgridClient;
  let url: string;

  before(async () => {
    ({ server } = await startServer({ store: "memory" }));
    url = server.info!.url;
    worker = await spawnWorker(server, EXAMPLE_APPS, 1);
    client = await connect(url);
  });
  after(async () => {
    await client?.close();
    await worker?.stop();
    await server?.shutdown();
  });

  it("a mistyped command or action gets a suggestion, not the whole help; exit 2", async () => {
    const r = await runCli(["sumbit", "--app", "x"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command "sumbit": did you mean "submit"\?/);
    assert.doesNotMatch(r.stderr, /Commands:/, "not the whole help");
    const far = await runCli(["frobnicate"]);
    assert.equal(far.code, 2);
    assert.match(far.stderr, /unknown command "frobnicate".*zgrid --help/s);
    const verb = await runCli(["tasks", "lsit", "--url", url]);
    assert.equal(verb.code, 2);
    assert.match(verb.stderr, /unknown action "lsit": did you mean "list"\?/);
  });

  it("zgrid help CMD prints what zgrid CMD --help prints", async () => {
    for (const cmd of ["submit", "sessions", "worker"]) {
      const a = await runCli(["help", cmd]);
      const b = await runCli([cmd, "--help"]);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(a.stdout, b.stdout);
      assert.match(a.stdout, new RegExp(`^zgrid ${cmd}`));
    }
    const bad = await runCli(["help", "sesions"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /did you mean "sessions"\?/);
  });

  it("hello takes -u/--url as the other commands do, and -e/--endpoint still", async () => {
    for (const flag of ["--url", "-u", "-e", "--endpoint"]) {
      const r = await runCli(["hello", flag, url, "-n", "10"]);
      assert.equal(r.code, 0, `${flag}: ${r.stderr}`);
      assert.match(r.stdout, /Result : 45/);
    }
    const bad = await runCli(["hello", "--url", "http://nowhere"]);
    assert.equal(bad.code, 2);
    assert.doesNotMatch(bad.stdout, /Hello zgrid/, "a usage error before anything else");
  });

  it("tasks get shows dates as ISO text; --json keeps the numbers", async () => {
    const sessionId = await client.createSession({ applicationName: "hello" });
    const [t] = await client.submitTasks(sessionId, [{ payload: encodePayload("sum", [[1, 2]]) }]);
    await client.waitResults(t.expectedOutputIds);
    const r = await runCli(["tasks", "get", t.taskId, "--url", url]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^createdAt\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/m);
    assert.match(r.stdout, /^endedAt\s+\d{4}-/m);
    assert.doesNotMatch(r.stdout, /\b1\d{12}\b/, "no epoch milliseconds left, attempts included");
    const json = await runCli(["tasks", "get", t.taskId, "--url", url, "--json"]);
    assert.equal(typeof (JSON.parse(json.stdout) as { createdAt: unknown }).createdAt, "number");
  });

  it("tasks cancel: what was cancelled, what had already ended; exit 1 when some could not be", async () => {
    const sessionId = await client.createSession({ applicationName: "hello" });
    const [done] = await client.submitTasks(sessionId, [{ payload: encodePayload("sum", [[1]]) }]);
    await client.waitResults(done.expectedOutputIds);
    const finished = await runCli(["tasks", "cancel", done.taskId, "--url", url]);
    assert.equal(finished.code, 1, finished.stdout + finished.stderr);
    assert.match(
      finished.stdout,
      new RegExp(`0 of 1 tasks cancelled; ${done.taskId} had already ended \\(COMPLETED\\)`),
    );
    const queued = await client.createSession({
      applicationName: "hello",
      partitionId: "nobody-serves-this",
    });
    const [q] = await client.submitTasks(queued, [{ payload: encodePayload("sum", [[1]]) }]);
    const ok = await runCli(["tasks", "cancel", q.taskId, "--url", url]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^1 of 1 tasks cancelled \(1 SUBMITTED\)$/m);
  });

  it("sessions list: newest first, --limit, and a line saying how many more there are", async () => {
    const own = await startServer({ store: "memory" });
    const c = await connect(own.info.url);
    try {
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        ids.push(await c.createSession({}));
        // Creation times a millisecond apart at least, so that newest first has one answer.
        const t = Date.now();
        await waitFor(() => Date.now() > t + 1, 1000, "the clock to move");
      }
      const r = await runCli(["sessions", "list", "--limit", "2", "--url", own.info.url]);
      assert.equal(r.code, 0, r.stderr);
      const shown = r.stdout
        .split("\n")
        .map((l) => l.split(/\s+/)[0])
        .filter((id) => ids.includes(id));
      assert.deepEqual(shown, [ids[2], ids[1]]);
      assert.match(r.stdout, /2 of 3 sessions, newest first; 1 more: --page 1/);
      const all = await runCli(["sessions", "list", "--url", own.info.url]);
      assert.match(all.stdout, /3 of 3 sessions, newest first\n/);
    } finally {
      await c.close();
      await own.server.shutdown();
    }
  });

  it("a worker's mistakes are sentences with exit 2, not stack traces", async () => {
    for (const args of [
      ["worker", "--connect", server.info!.workerUrl, "--app-path", "/no/such/dir"],
      ["worker", "--connect", server.info!.workerUrl, "--app-path", EXAMPLE_APPS, "--slots", "none"],
      ["worker", "--connect", server.info!.workerUrl, "--app-path", EXAMPLE_APPS, "--slot", "2"],
    ]) {
      const r = await runCli(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, STACK, args.join(" "));
      assert.match(r.stderr, /^zgrid worker: .+\n\(see zgrid worker --help\)\n$/);
    }
  });
});

describe("the bench's flags", () => {
  /** Runs the bench with flags that make it stop at its checks, before it starts anything. */
  function bench(args: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [join(ROOT, "dist/bench/run.js"), ...args], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      child.once("close", (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  it("are kebab-case, and the old camelCase ones still work with a note", async () => {
    const help = await bench(["--help"]);
    assert.match(help.stdout, /--recovery-tasks N/);
    assert.match(help.stdout, /--memory-tasks N/);
    assert.doesNotMatch(help.stdout, /recoveryTasks/);
    const kebab = await bench(["--recovery-tasks", "zero"]);
    assert.equal(kebab.code, 2);
    assert.match(kebab.stderr, /--recovery-tasks must be an integer/);
    const camel = await bench(["--memoryTasks", "zero"]);
    assert.equal(camel.code, 2);
    assert.match(camel.stderr, /--memoryTasks is now --memory-tasks/);
    assert.match(camel.stderr, /--memory-tasks must be an integer/);
  });
});
