/**
 * A log that cannot be written does not take the process down: `zgrid server 2> server.log` on a disk
 * that filled up ended the server at its next log line (an 'error' of the log stream nobody listened
 * to), in the middle of a bench. /dev/full stands for that disk: every write to it fails with ENOSPC.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { connect } from "../src/client/client.js";
import { ANY_PORTS, CLI, tempDir, waitFor } from "./helpers.js";

describe("a log on a full disk", () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  it(
    "is dropped, counted, and the server goes on serving",
    { skip: !existsSync("/dev/full") && "no /dev/full here" },
    async () => {
      const dir = tempDir();
      const info = join(dir, "info.json");
      const full = openSync("/dev/full", "w");
      const server = spawn(
        process.execPath,
        [
          CLI,
          "server",
          ...ANY_PORTS,
          "--data-dir",
          dir,
          "--token",
          "t",
          "--connection-info",
          info,
          "--log-level",
          "debug",
        ],
        {
          env: { ...process.env, ZGRID_LOG_FORMAT: "json", ZGRID_NO_TOKENS_FILE: "1" },
          stdio: ["ignore", "ignore", full],
        },
      );
      closeSync(full);
      const exited = new Promise<number | null>((resolve) => server.once("exit", (code) => resolve(code)));
      let running = true;
      void exited.then(() => (running = false));
      cleanup.push(async () => {
        if (!running) return;
        server.kill("SIGKILL");
        await exited;
      });
      await waitFor(() => existsSync(info) || !running, 30_000, "the server to start");
      assert.ok(running, "the server ended as it started");
      const { url, metricsUrl } = JSON.parse(readFileSync(info, "utf8")) as {
        url: string;
        metricsUrl: string;
      };
      const client = await connect(url, { timeoutMs: 30_000 });
      cleanup.push(() => client.close());
      const metrics = await connect(metricsUrl, { timeoutMs: 30_000 });
      cleanup.push(() => metrics.close());

      // Requests that log (a session made, a wrong command refused), each a line the disk refuses.
      for (let i = 0; i < 20; i++) {
        await client.createSession({ applicationName: "hello" });
        await assert.rejects(client.request("no.such.command", {}));
      }
      const failures = async () => {
        const text = await metrics.prometheus();
        return Number(/^zgrid_log_write_errors_total (\d+)/m.exec(text)?.[1] ?? 0);
      };
      await waitFor(async () => (await failures()) > 0, 30_000, "a failed log write to be counted");
      assert.equal(await client.request("ruok", {}).then((r) => r.msg), "imok");
      assert.ok(running, "the server is still running");
    },
  );
});
