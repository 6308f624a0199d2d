/**
 * Application modules outside the repo import "zgrid/worker", as the README shows: a `zgrid worker
 * --app-path ./apps` run in a directory of os.tmpdir() (no node_modules there) serves them, and an app
 * directory with its own node_modules/zgrid gets its own copy, not the worker's.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import { decodeOutput, encodePayload } from "../src/client/payload.js";
import type { Server } from "../src/daemons/server.js";
import { CLI, removeDir, startServer, tempDir, waitFor } from "./helpers.js";

const HELLO_APP = `import { ServiceBase, defineService, ApplicationError } from "zgrid/worker";

class Hello extends ServiceBase {
  sum(values) {
    if (!Array.isArray(values)) throw new ApplicationError("sum takes a list");
    return values.reduce((a, b) => a + b, 0);
  }
}
export const { createService, enterSession, call, leaveSession, destroyService } = defineService(
  () => new Hello(),
);
`;

// A stand-in "zgrid" package of the app's own: its ServiceBase answers every method with "own copy".
const OWN_ZGRID_WORKER = `export class ServiceBase {
  async call() { return new TextEncoder().encode("own copy"); }
}
export class ApplicationError extends Error {}
export function defineService(factory) {
  return { createService: factory, call: (s, session, m, args, agent) => s.call(session, m, args, agent) };
}
`;

/** Runs one task of `app`, method `sum`, and returns its status and decoded output (or error). */
async function runTask(client: ZgridClient, app: string): Promise<{ status: string; output: unknown }> {
  const sessionId = await client.createSession({ applicationName: app, maxRetries: 0 });
  const [task] = await client.submitTasks(sessionId, [{ payload: encodePayload("sum", [[1, 2, 3]]) }]);
  const outputId = task.expectedOutputIds[0];
  const { statuses, data } = await client.waitResultsData([outputId], { timeoutMs: 20_000 });
  const bytes = data.get(outputId);
  if (statuses[outputId] !== "COMPLETED") {
    const info = await client.getTask(task.taskId);
    return { status: info.status, output: info.error };
  }
  const raw = bytes ? new TextDecoder().decode(bytes) : undefined;
  return { status: "COMPLETED", output: raw === "own copy" ? raw : decodeOutput(bytes!) };
}

describe("apps outside the repo import zgrid/worker", () => {
  let dir: string;
  let server: Server;
  let client: ZgridClient;
  let worker: ReturnType<typeof spawn> | undefined;
  let stderr = "";

  before(async () => {
    dir = tempDir("zgrid-apps-");
    mkdirSync(join(dir, "apps"));
    writeFileSync(join(dir, "apps/hello.js"), HELLO_APP);
    // A second app directory, with its own node_modules/zgrid: resolution finds it first.
    const own = join(dir, "own");
    mkdirSync(join(own, "apps"), { recursive: true });
    mkdirSync(join(own, "node_modules/zgrid"), { recursive: true });
    writeFileSync(
      join(own, "node_modules/zgrid/package.json"),
      JSON.stringify({ name: "zgrid", type: "module", exports: { "./worker": "./worker.js" } }),
    );
    writeFileSync(join(own, "node_modules/zgrid/worker.js"), OWN_ZGRID_WORKER);
    writeFileSync(join(own, "apps/ownhello.js"), HELLO_APP);
    // The worker serves ./apps: ownhello.js there re-exports the module that lives beside its own zgrid.
    writeFileSync(join(dir, "apps/ownhello.js"), `export * from "../own/apps/ownhello.js";\n`);

    ({ server } = await startServer({ heartbeatMs: 200 }));
    client = await connect(server.info!.url, { timeoutMs: 20_000 });
    worker = spawn(
      process.execPath,
      [CLI, "worker", "--connect", server.info!.workerUrl, "--app-path", "./apps", "--slots", "1"],
      { cwd: dir, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ZGRID_LOG_FORMAT: "json" } },
    );
    worker.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    await waitFor(() => server.scheduler.workers.size === 1, 15_000, "the worker to connect");
  });

  after(async () => {
    if (worker && worker.exitCode === null && worker.signalCode === null) {
      const gone = new Promise((r) => worker!.once("exit", r));
      const timer = setTimeout(() => worker!.kill("SIGKILL"), 5000);
      worker.kill("SIGTERM");
      await gone;
      clearTimeout(timer);
    }
    await client?.close();
    await server?.shutdown();
    removeDir(dir);
  });

  it("the README's app, in ./apps of a directory outside the repo, completes its task", async () => {
    const r = await runTask(client, "hello");
    assert.deepEqual(r, { status: "COMPLETED", output: 6 }, stderr);
  });

  it("an app whose directory has its own node_modules/zgrid gets that copy", async () => {
    const r = await runTask(client, "ownhello");
    assert.deepEqual(r, { status: "COMPLETED", output: "own copy" }, stderr);
  });
});
