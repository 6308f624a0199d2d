/**
 * The client examples of examples/clients (compiled to dist/examples/clients) run against a real server
 * and a real worker process serving examples/apps, as a user would run them.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import type { Server } from "../src/daemons/server.js";
import { EXAMPLE_APPS, ROOT, startServer, type Proc, spawnWorker } from "./helpers.js";

const EXAMPLES = join(ROOT, "dist/examples/clients");

/** Runs `node dist/examples/clients/NAME.js args`, bounded in time; `onStdout` sees the output grow. */
function runExample(
  name: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 20_000,
  onStdout?: (out: string, child: ReturnType<typeof spawn>) => void,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [join(EXAMPLES, `${name}.js`), ...args], {
    env: { ...process.env, ZGRID_URL: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
    onStdout?.(stdout, child);
  });
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  return new Promise((resolve) =>
    // "close", not "exit": the output may still be in the pipes when the process has exited.
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

describe("examples/clients against a real server and worker", { concurrency: true }, () => {
  let server: Server;
  let client: ZgridClient;
  let worker: Proc;

  before(async () => {
    ({ server } = await startServer({ heartbeatMs: 200 }));
    client = await connect(server.info!.url, { timeoutMs: 20_000 });
    worker = await spawnWorker(server, EXAMPLE_APPS, 6);
  });
  after(async () => {
    await worker.stop();
    await client.close();
    await server.shutdown();
  });

  it("hello.js: the seed 001 client prints the sum, then Good bye !", async () => {
    const r = await runExample("hello", [server.info!.url, "-n", "10"]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const lines = r.stdout.trim().split("\n");
    assert.equal(lines[0], "Hello zgrid TypeScript Example !");
    assert.match(lines[1], /^Session \S+ has been created$/);
    assert.equal(lines[2], "Main tasks have been sent");
    assert.equal(lines[3], "Result : 45");
    assert.equal(lines[4], "Good bye !");
    // The URL may come from ZGRID_URL instead, and the numbers from -v.
    const v = await runExample("hello", ["-v", "1.5", "-v", "2"], { ZGRID_URL: server.info!.url });
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /^Result : 3\.5$/m);
  });

  it("hello.js: Ctrl+C while waiting cancels the session", async () => {
    let sent = false;
    // No worker serves partition "nowhere": the task waits until the session is cancelled.
    const r = await runExample("hello", [server.info!.url, "-p", "nowhere"], {}, 15_000, (out, child) => {
      if (!sent && out.includes("Main tasks have been sent")) {
        sent = true;
        child.kill("SIGINT");
      }
    });
    assert.ok(sent, r.stdout + r.stderr);
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stdout, /Session has been cancelled\nGood bye !/);
    const sessionId = /Session (\S+) has been created/.exec(r.stdout)![1];
    assert.equal((await client.getSession(sessionId)).status, "CANCELLED");
  });

  it("session-service.js: handlers get every outcome, the session is cancelled at cleanup", async () => {
    const r = await runExample("session-service", [server.info!.url]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /^add\(9, 100\) = 109$/m);
    assert.match(r.stdout, /add\("one", 2\) failed: add takes two numbers/);
    assert.match(r.stdout, /all outcomes as expected/);
    const sessionId = /session (\S+): 11 tasks submitted/.exec(r.stdout)![1];
    assert.equal((await client.getSession(sessionId)).status, "CANCELLED");
  });

  it("htc-grid.js: send, get_results with outputs, cancel_sessions counts", async () => {
    const r = await runExample("htc-grid", [server.info!.url]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /"tasks_in_response": 3/);
    assert.match(r.stdout, /"total_cancelled_tasks": 4/);
    assert.match(r.stdout, /all outcomes as expected/);
  });

  it("dag.js: the diamond runs in dependency order and D = 10", async () => {
    const r = await runExample("dag", [], { ZGRID_URL: server.info!.url });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /^D is PENDING until B and C exist$/m);
    assert.match(r.stdout, /^A = 3, B = 4, C = 6, D = 10$/m);
    assert.match(r.stdout, /ran in dependency order/);
  });
});
