/**
 * `zgrid top` fits the terminal (issue 15 item 4): at 60, 80 or 120 columns no line is longer than the
 * width and no word is cut into another (no "0 pen", no "CANCELL"); `q` quits; a resize redraws at the
 * new width at once. The live view runs in a real pseudo-terminal (util-linux `script`).
 */
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { renderTop, type TopSnapshot } from "../src/cli/top-cmd.js";
import { connect, encodePayload, type ZgridClient } from "../src/client/index.js";
import type { Server } from "../src/daemons/server.js";
import { CLI, startServer, waitFor } from "./helpers.js";

/** Terminal escape sequences (ESC [ ... letter). */
const ESC = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, "g");

function snapshot(): TopSnapshot {
  const now = Date.parse("2026-01-01T12:00:00Z");
  return {
    at: now,
    status: {
      version: "0.1.0",
      uptimeSeconds: 3723,
      requests: { total: 123456 },
      memory: { rss: 300 * 2 ** 20 },
      scheduler: {
        sessions: 12,
        tasks: 1_234_567,
        workers: 3,
        slots: 48,
        busySlots: 47,
        store: {
          name: "sqlite",
          location: "/var/lib/zgrid/store.db",
          sizeBytes: 50 * 2 ** 20,
          pendingWrites: 0,
        },
        tasksByStatus: {
          SUBMITTED: 1000,
          DISPATCHED: 64,
          PROCESSING: 47,
          COMPLETED: 1_233_000,
          ERROR: 3,
          CANCELLED: 453,
        },
        queued: { default: 1000, "gpu-partition-with-a-long-name": 12 },
      },
    },
    workers: [
      {
        workerId: "worker-host-number-one.example.org-12345-a1b2c3",
        partitions: ["default", "gpu-partition-with-a-long-name"],
        slots: 16,
        busy: 15,
        lastHeartbeat: now - 400,
        host: "worker-host-number-one.example.org",
        pid: 12345,
      } as never,
    ],
    workersTotal: 1,
    sessions: [
      {
        sessionId: "0f9d8c7b-6a5e-4d3c-2b1a-0f9e8d7c6b5a",
        status: "CANCELLED",
        taskCount: 1_000_000,
        createdAt: now - 60_000,
        partitionIds: [],
        counts: { COMPLETED: 999_000, CANCELLED: 453, ERROR: 3, PROCESSING: 47, SUBMITTED: 497 },
      } as never,
    ],
    sessionsTotal: 12,
  };
}

/** The words of a frame: what a narrower frame may show fewer of, never a piece of. */
function words(text: string): Set<string> {
  return new Set(text.split(/[\s,;()]+/).filter((w) => w && w !== "…"));
}

describe("zgrid top at any width", () => {
  it("renderTop: no line past the width, no word cut, at 60, 80 and 120 columns", () => {
    const wide = words(renderTop(snapshot(), undefined, "127.0.0.1:5555", 1000));
    for (const columns of [60, 80, 120]) {
      const text = renderTop(snapshot(), undefined, "127.0.0.1:5555", columns);
      for (const line of text.split("\n"))
        assert.ok(line.length <= columns, `${columns} columns: ${line.length}: ${JSON.stringify(line)}`);
      for (const w of words(text)) assert.ok(wide.has(w), `${columns} columns: "${w}" is a cut word`);
      // What matters most is still there.
      assert.match(text, /pending writes/, `${columns}`);
      assert.match(text, /COMPLETED 1233000/, `${columns}`);
      assert.match(text, /0f9d8c7b-6a5e-4d3c-2b1a-0f9e8d7c6b5a/, `${columns}`);
    }
  });
});

describe("zgrid top and the names it is given", () => {
  it("writes out their control characters: a partition or a worker id cannot drive the terminal", () => {
    const snap = snapshot();
    snap.status.scheduler!.queued = { "p\u001b[2J\nforged": 5 };
    (snap.workers[0] as { workerId: string }).workerId = "w\u001b]0;title\u0007";
    const text = renderTop(snap, undefined, "127.0.0.1:5555", 120);
    assert.ok(!text.includes("\u001b") && !text.includes("\u0007"), JSON.stringify(text));
    assert.ok(text.includes("p\\x1b[2J\\nforged"), text);
    assert.ok(text.includes("w\\x1b]0;title\\x07"), text);
  });
});

describe("zgrid top in a terminal", () => {
  let server: Server;
  let client: ZgridClient;
  before(async () => {
    ({ server } = await startServer({ store: "memory" }));
    client = await connect(server.info!.url);
    const sessionId = await client.createSession({ applicationName: "hello", partitionId: "p-nobody" });
    await client.submitTasks(sessionId, [{ payload: encodePayload("noop") }]);
    await client.call("sessions.cancel", { sessionId });
  });
  after(async () => {
    await client?.close();
    await server?.shutdown();
  });

  it("fits 70 columns, redraws at once at 50 when resized, and quits on q", async (t) => {
    try {
      execFileSync("script", ["--version"], { stdio: "ignore" });
    } catch {
      t.skip("util-linux script is not installed: no pseudo-terminal to run top in");
      return;
    }
    // A long interval: a frame after the resize can only come from the resize.
    const command =
      `stty cols 70 rows 60; echo "TTY=$(tty)"; ` +
      `exec "${process.execPath}" "${CLI}" top --url '${server.info!.url}' --interval 60000`;
    const child = spawn("script", ["-qefc", command, "/dev/null"], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    const frames = (): string[] => out.split("\x1b[H\x1b[2J").slice(1);
    try {
      await waitFor(() => /q to quit/.test(out), 20_000, "the first frame");
      for (const line of frames()[0].replace(ESC, "").split(/\r?\n/))
        assert.ok(line.length <= 70, JSON.stringify(line));
      assert.match(frames()[0], /CANCELLED/);
      const tty = /TTY=(\/dev\/\S+)/.exec(out)![1];
      execFileSync("stty", ["-F", tty, "cols", "50", "rows", "60"]);
      await waitFor(() => frames().length >= 2 && /q to quit/.test(frames().at(-1)!), 10_000, "a redraw");
      const lines = frames().at(-1)!.replace(ESC, "").split(/\r?\n/);
      for (const line of lines) assert.ok(line.length <= 50, JSON.stringify(line));
      child.stdin.write("q");
      const code = await Promise.race([
        exited,
        new Promise((r) => setTimeout(() => r("still running"), 10_000)),
      ]);
      assert.equal(code, 0, out.slice(-500));
    } finally {
      if (child.exitCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
    }
  });
});
