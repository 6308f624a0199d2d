/**
 * The progress of `zgrid submit --wait` (issue 15 item 3): a bar that fits the terminal's width at any
 * width, redrawn in place; Ctrl+C says that the tasks go on and how to cancel them; "running" counts the
 * tasks on a slot, not those a worker holds in advance; the live rate and the final summary agree.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { Progress, progressLine } from "../src/cli/progress.js";
import type { Server } from "../src/daemons/server.js";
import {
  CLI,
  FIXTURE_APPS,
  spawnCli,
  spawnWorker,
  startServer,
  waitFor,
  runCli,
  type Proc,
} from "./helpers.js";

/** Terminal escape sequences (ESC [ ... letter). */
const ESC = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, "g");

/** A stand-in for a terminal: what was written, at a given width. */
function fakeTty(columns: number): NodeJS.WriteStream & { text: string } {
  const t = {
    isTTY: true,
    columns,
    text: "",
    write(s: string) {
      t.text += s;
      return true;
    },
  };
  return t as unknown as NodeJS.WriteStream & { text: string };
}

describe("the progress line", () => {
  it("fits every width, and says the most it can", () => {
    const state = {
      label: "tasks",
      total: 1_000_000,
      done: 123_456,
      failed: 789,
      running: 8,
      elapsedS: 12.3,
    };
    for (const columns of [20, 40, 60, 80, 100, 120, 200]) {
      const line = progressLine(state, columns);
      assert.ok(line.length <= columns - 1, `${columns} columns: ${JSON.stringify(line)}`);
      if (columns >= 60) assert.match(line, /123456 done/, `${columns}: ${line}`);
      if (columns >= 100) assert.match(line, /\[#+\.+\]/, `${columns}: ${line}`);
    }
  });

  it("is redrawn in place on a terminal of 80 columns, one line in all, ended by finish", () => {
    const out = fakeTty(80);
    const p = new Progress(500_000, "tasks", out, 2000, Date.now() - 5000);
    for (let i = 1; i <= 5; i++) p.update(i * 10_000, i * 100, 16);
    assert.doesNotMatch(out.text, /\n/, "no new line while redrawing");
    const draws = out.text.split("\r").slice(1);
    assert.equal(draws.length, 5);
    for (const d of draws) assert.ok(d.replace(ESC, "").length <= 79, JSON.stringify(d));
    assert.ok(out.text.includes("\x1b[K"), "each redraw clears to the end of the line");
    p.finish(500_000, 0);
    assert.ok(out.text.endsWith("\n"));
  });

  it("writes a plain line to a pipe every few seconds, and the line of the end once, finish()'s", () => {
    const out = fakeTty(80);
    (out as { isTTY: boolean }).isTTY = false;
    const p = new Progress(100, "tasks", out, 60_000);
    p.update(10, 0, 0, 5);
    p.update(50, 1); // within lineEveryMs of the first: nothing
    p.update(98, 2); // every task ended: the line is finish()'s (it was written here too before)
    p.finish(98, 2, 4);
    assert.deepEqual(out.text.split("\n"), [
      "tasks: 10/100 (10 done, 0 failed, 0 running, 2/s, ETA 45s)",
      "tasks: 100/100 (98 done, 2 failed, 0 running, 25/s)",
      "",
    ]);
  });
});

describe("zgrid submit --wait", () => {
  let server: Server;
  let worker: Proc;
  before(async () => {
    ({ server } = await startServer({ store: "memory" }));
    worker = await spawnWorker(server, FIXTURE_APPS, 1);
  });
  after(async () => {
    await worker?.stop();
    await server?.shutdown();
  });

  it("Ctrl+C: a new line, then says the tasks go on and how to cancel them; exit 130", async () => {
    const p = spawnCli([
      "submit",
      "--url",
      server.info!.url,
      "-a",
      "testapp",
      "-m",
      "sleep",
      "--args",
      "[1000]",
      "-p",
      "nobody-serves-this",
      "-n",
      "3",
      "--wait",
    ]);
    try {
      await waitFor(() => /waiting/.test(p.stdout()), 15_000, "the wait to begin");
      p.child.kill("SIGINT");
      const { code } = await p.exited;
      assert.equal(code, 130, p.stderr());
      const id = /Session (\S+):/.exec(p.stdout())![1];
      // On a line of its own: after the progress lines written so far, or first when none was yet.
      assert.match(
        p.stderr(),
        new RegExp(
          `(?:^|\\n)interrupted: the 3 unfinished tasks go on in session ${id}; cancel them with: zgrid sessions cancel ${id}\\n$`,
        ),
      );
    } finally {
      await p.stop();
    }
  });

  it("on a terminal, many short tasks on one slot never show more running than that slot", async (t) => {
    try {
      execFileSync("script", ["--version"], { stdio: "ignore" });
    } catch {
      t.skip("util-linux script is not installed: no pseudo-terminal to run submit in");
      return;
    }
    // A worker reports the tasks it started apart from those it ended: fast tasks, redrawn every 250 ms
    // on a terminal, showed a hundred "running" on two slots.
    const command =
      `stty cols 100 rows 30; exec "${process.execPath}" "${CLI}" submit --url '${server.info!.url}' ` +
      `-a testapp -m spin --args '[0]' -n 50000 --wait`;
    const child = spawn("script", ["-qefc", command, "/dev/null"], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    try {
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([
        exited,
        new Promise((r) => (timer = setTimeout(() => r("still running"), 120_000))),
      ]);
      clearTimeout(timer);
      assert.equal(code, 0, out.slice(-500));
      const running = [...out.matchAll(/(\d+) running/g)].map((m) => Number(m[1]));
      assert.ok(running.length >= 2, out.slice(-500));
      assert.ok(Math.max(...running) <= 1, `running: ${running.join(" ")}`);
      assert.match(out, /50000 completed, 0 failed/);
    } finally {
      if (child.exitCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
    }
  });

  it("running counts tasks on a slot only; the last progress line and the summary give one rate", async () => {
    // One slot, and a worker that prefetches: more than one task is held, only one runs.
    const r = await runCli(
      [
        "submit",
        "--url",
        server.info!.url,
        "-a",
        "testapp",
        "-m",
        "sleep",
        "--args",
        "[350]",
        "-n",
        "12",
        "--wait",
      ],
      {},
      60_000,
    );
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.split("\n").filter((l) => l.startsWith("tasks: "));
    assert.ok(lines.length >= 2, r.stderr);
    for (const l of lines) {
      const running = Number(/(\d+) running/.exec(l)![1]);
      assert.ok(running <= 1, `more running than slots: ${l}`);
    }
    assert.ok(
      lines.some((l) => / 1 running/.test(l)),
      `one task was seen running: ${r.stderr}`,
    );
    const live = /(\d+)\/s/.exec(lines.at(-1)!)![1];
    const summary = /\((\d+) tasks\/s\)/.exec(r.stdout)![1];
    assert.equal(live, summary, `${lines.at(-1)} vs ${r.stdout}`);
  });
});
