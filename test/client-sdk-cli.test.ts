/**
 * The CLI side of the client: `zgrid submit` (batches, --wait with progress, outputs or a summary, exit
 * codes), --json output of the listing commands, and help texts. CLI processes run against a server in
 * this process and a real worker on examples/apps; their output is a pipe, so progress comes as lines.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import { Progress } from "../src/cli/progress.js";
import type { Server } from "../src/daemons/server.js";
import { CLI, EXAMPLE_APPS, startServer, type Proc, spawnWorker } from "./helpers.js";

/**
 * Runs a CLI command to its end. Resolves on "close", once stdout and stderr are drained: "exit" may
 * come first on a loaded machine, with output still in the pipes. Killed after `timeoutMs`: a bound on a
 * hang, generous for a loaded machine (code null then).
 */
function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 60_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], {
    // The first-contact limit (2 s by default) is no test of this file: eight commands started at once
    // on a loaded CI machine once waited longer for the server's first answer.
    env: { ...process.env, ZGRID_URL: "", ZGRID_TIMEOUT_MS: "30000", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  return new Promise((resolve) =>
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

interface SubmitJson {
  sessionId: string;
  count: number;
  taskIds?: string[];
  completed?: number;
  failed?: number;
  tasks?: { taskId: string; status: string; output?: unknown; error?: string | null }[];
}

describe("zgrid submit and --json", { concurrency: true }, () => {
  let server: Server;
  let client: ZgridClient;
  let worker: Proc;
  let url: string;

  before(async () => {
    ({ server } = await startServer({ heartbeatMs: 200 }));
    url = server.info!.url;
    client = await connect(url, { timeoutMs: 10_000 });
    worker = await spawnWorker(server, EXAMPLE_APPS, 4);
  });
  after(async () => {
    await worker.stop();
    await client.close();
    await server.shutdown();
  });

  it("submit --wait: outputs in a table, progress as plain lines on a pipe, exit 0", async () => {
    const r = await runCli(
      [
        "submit",
        "--url",
        url,
        "--app",
        "hello",
        "--method",
        "sum",
        "--args",
        "[[1, 2, 3]]",
        "-n",
        "3",
        "--wait",
      ],
      {},
      60_000,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Session \S+: 3 tasks submitted, waiting$/m);
    const rows = r.stdout.split("\n").filter((l) => /^t\S+\s+COMPLETED\s+6$/.test(l));
    assert.equal(rows.length, 3, r.stdout);
    assert.match(r.stdout, /^3 completed, 0 failed in \d+\.\d\d s/m);
    // Not a terminal: no carriage returns or escape sequences, lines of the form "tasks: 3/3 (...)".
    assert.ok(!r.stderr.includes("\r") && !r.stderr.includes("\u001b"), JSON.stringify(r.stderr));
    assert.match(r.stderr, /^tasks: 3\/3 \(3 done, 0 failed, 0 running, \d+\/s\)$/m);
  });

  it("submit --count 500 --batch 120: batches, a summary instead of a table", async () => {
    const r = await runCli(
      [
        "submit",
        "--url",
        url,
        "-a",
        "addition",
        "-m",
        "add",
        "--args",
        "[2, 3]",
        "-n",
        "500",
        "--batch",
        "120",
        "-w",
      ],
      {},
      60_000,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^500 completed, 0 failed in /m);
    assert.doesNotMatch(r.stdout, /COMPLETED/);
    assert.match(r.stderr, /^tasks: 500\/500 /m);
    // Five batches: the submission has its own line of progress, tasks sent, before the tasks' one.
    assert.match(r.stderr, /^submitting: 500\/500 \(500 sent, \d+\/s\)$/m);
    assert.ok(r.stderr.indexOf("submitting: 500/500") < r.stderr.indexOf("tasks: 500/500"), r.stderr);
    const sessionId = /Session (\S+):/.exec(r.stdout)![1];
    assert.equal((await client.countTasks({ sessionId })).COMPLETED, 500);
  });

  it("submit --json: the ids without --wait; every outcome with it, exit 1 when some failed", async () => {
    const plain = await runCli([
      "submit",
      "--url",
      url,
      "-a",
      "echo",
      "-m",
      "echo",
      "--args",
      '["hi"]',
      "-n",
      "2",
      "--json",
    ]);
    assert.equal(plain.code, 0, plain.stderr);
    const submitted = JSON.parse(plain.stdout) as SubmitJson;
    assert.equal(submitted.count, 2);
    assert.equal(submitted.taskIds!.length, 2);
    assert.equal((await client.getTask(submitted.taskIds![0])).sessionId, submitted.sessionId);

    // addition.add with a string is an ApplicationError: ERROR, not retried.
    const failing = await runCli(
      [
        "submit",
        "--url",
        url,
        "-a",
        "addition",
        "-m",
        "add",
        "--args",
        '["x", 1]',
        "-n",
        "2",
        "--wait",
        "--json",
      ],
      {},
      60_000,
    );
    assert.equal(failing.code, 1, failing.stderr);
    const report = JSON.parse(failing.stdout) as SubmitJson;
    assert.equal(report.completed, 0);
    assert.equal(report.failed, 2);
    for (const t of report.tasks!) {
      assert.equal(t.status, "ERROR");
      assert.match(t.error ?? "", /add takes two numbers/);
    }
    const ok = await runCli(
      ["submit", "--url", url, "-a", "echo", "-m", "echo", "--args", '[{"a": [1, 2]}]', "--wait", "--json"],
      {},
      60_000,
    );
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual((JSON.parse(ok.stdout) as SubmitJson).tasks![0].output, { a: [1, 2] });
  });

  it("submit --wait --wait-timeout: gives up, says what is still running, exit 1", async () => {
    // No worker serves the partition: without --wait-timeout the command would wait until killed (code null).
    const started = Date.now();
    const r = await runCli(
      [
        "submit",
        "--url",
        url,
        "-a",
        "echo",
        "-m",
        "echo",
        "-p",
        "nobody-serves-this",
        "-n",
        "2",
        "-w",
        "--wait-timeout",
        "1",
      ],
      {},
      60_000,
    );
    const elapsed = Date.now() - started;
    assert.equal(r.code, 1, r.stderr);
    const summary =
      /0 completed, 0 failed, 2 not finished in (\d+\.\d\d) s.*: gave up after --wait-timeout 1 s$/m.exec(
        r.stdout,
      );
    assert.ok(summary, r.stdout);
    // Each task as the server has it: queued, no worker serving its partition (it said RUNNING before,
    // which is no task status).
    const rows = r.stdout.split("\n").filter((l) => /^t\S+\s/.test(l));
    assert.equal(rows.length, 2, r.stdout);
    for (const row of rows) assert.match(row, /^t\S+\s+SUBMITTED\s*$/);
    // Its own clock (from its connection on): not before the --wait-timeout of 1 s.
    assert.ok(Number(summary[1]) >= 1, `gave up after ${summary[1]} s`);
    // About 1.5 s in all, node's start included; 7 to 8 s were seen on a loaded machine, where the
    // other tests of this suite start some 30 CLI processes at the same time. The bound is generous.
    assert.ok(elapsed < 30_000, `exited after ${elapsed} ms`);
  });

  it("usage errors exit 2 and say what is wrong", async () => {
    const cases: [string[], RegExp][] = [
      [["submit", "--url", url, "--method", "sum"], /--app NAME is required/],
      [["submit", "--url", url, "--app", "hello"], /--method M is required/],
      [["submit", "--url", url, "-a", "hello", "-m", "sum", "--args", "{"], /--args is not valid JSON/],
      [["submit", "--url", url, "-a", "hello", "-m", "sum", "--args", "3"], /--args must be a JSON array/],
      [
        ["submit", "--url", url, "-a", "hello", "-m", "sum", "--count", "0"],
        /--count must be an integer from 1/,
      ],
      [
        ["submit", "--url", url, "-a", "hello", "-m", "sum", "--wait-timeout", "5"],
        /--wait-timeout goes with --wait/,
      ],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args)));
    results.forEach((r, i) => {
      assert.equal(r.code, 2, `${cases[i][0].join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, cases[i][1]);
      assert.match(r.stderr, /see zgrid submit --help/);
    });
  });

  it("--json of the listing commands parses", async () => {
    const sessionId = await client.createSession({ applicationName: "echo" });
    const [task] = await client.submitTasks(sessionId, [{ payload: Buffer.from([0x80]) }]);
    await client.waitResults(task.expectedOutputIds, { timeoutMs: 10_000 });
    const runs = await Promise.all([
      runCli(["sessions", "list", "--url", url, "--json"]),
      runCli(["sessions", "get", sessionId, "--url", url, "--json"]),
      runCli(["tasks", "list", "--session", sessionId, "--url", url, "--json"]),
      runCli(["tasks", "get", task.taskId, "--url", url, "--json"]),
      runCli(["results", "list", "--session", sessionId, "--url", url, "--json"]),
      runCli(["results", "get", task.expectedOutputIds[0], "--url", url, "--json"]),
      runCli(["status", "--url", url, "--json"]),
      runCli(["metrics", "--url", url, "--category", "NUM_REQUESTS"]),
    ]);
    const parsed = runs.map((r, i) => {
      assert.equal(r.code, 0, `command ${i}: ${r.stderr}`);
      return JSON.parse(r.stdout) as Record<string, unknown>;
    });
    assert.ok((parsed[0].items as { sessionId: string }[]).some((s) => s.sessionId === sessionId));
    assert.equal(parsed[1].sessionId, sessionId);
    assert.equal((parsed[2].items as unknown[]).length, 1);
    assert.equal(parsed[3].taskId, task.taskId);
    assert.equal(parsed[4].total, 2); // the payload and the output
    assert.equal(parsed[5].resultId, task.expectedOutputIds[0]);
    assert.equal(typeof parsed[6].version, "string");
    assert.ok(Array.isArray(parsed[7]));
    const cancelled = await runCli(["sessions", "cancel", sessionId, "--url", url, "--json"]);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.deepEqual(JSON.parse(cancelled.stdout), { [sessionId]: {} });
  });

  it("help: zgrid --help lists submit; every subcommand's --help exits 0 with aligned options", async () => {
    const main = await runCli(["--help"]);
    assert.equal(main.code, 0);
    assert.match(main.stdout, /^ {2}submit {2,}submit tasks/m);
    const commands = [...main.stdout.matchAll(/^ {2}([a-z]+) {2,}\S/gm)].map((m) => m[1]);
    assert.ok(commands.length >= 13, commands.join(","));
    const helps = await Promise.all(commands.map((c) => runCli([c, "--help"])));
    helps.forEach((h, i) => {
      assert.equal(h.code, 0, `${commands[i]} --help: ${h.stderr}`);
      assert.match(h.stdout, new RegExp(`^zgrid ${commands[i]}\\b`));
      // The option lines of one help text describe their options from one column (and there are some:
      // a help whose option lines no longer match would otherwise pass).
      const optionLines = h.stdout.split("\n").filter((l) => /^ {2}(-\w, |\s{4})?--[a-z]/.test(l));
      assert.ok(optionLines.length > 0, `${commands[i]} --help lists no option lines:\n${h.stdout}`);
      const columns = new Set(optionLines.map((l) => /^\s*\S.*?\s{2,}/.exec(l)?.[0].length));
      assert.equal(
        columns.size,
        1,
        `${commands[i]} --help has options described from columns ${[...columns]}`,
      );
    });
  });
});

describe("Progress", () => {
  const sink = (isTTY: boolean) => {
    let text = "";
    const out = { isTTY, write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream;
    return { out, text: () => text };
  };
  it("draws a bar in place on a terminal, prints plain lines elsewhere", () => {
    const tty = sink(true);
    const p = new Progress(10, "tasks", tty.out, 0);
    p.update(5, 1, 2);
    p.finish(9, 1);
    // The bar's width follows what the rest of the line needs (the rate's digits vary with timing).
    const first = /^\rtasks \[(#+)(\.+)\] {2}60% 5 done, 1 failed, 2 running/.exec(tty.text());
    assert.ok(first, tty.text());
    assert.equal(Math.round((first[1].length / (first[1].length + first[2].length)) * 10), 6);
    assert.match(tty.text(), /\rtasks \[#+\] 100% 9 done, 1 failed, 0 running.*\n$/);
    const pipe = sink(false);
    const q = new Progress(10, "tasks", pipe.out, 0);
    q.update(5, 1, 2);
    q.finish(9, 1);
    assert.ok(!pipe.text().includes("\r") && !pipe.text().includes("\u001b"));
    assert.deepEqual(
      pipe
        .text()
        .trim()
        .split("\n")
        .map((l) => l.replace(/, \d+\/s.*\)$/, ")")),
      ["tasks: 6/10 (5 done, 1 failed, 2 running)", "tasks: 10/10 (9 done, 1 failed, 0 running)"],
    );
  });
});
