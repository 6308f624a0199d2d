/**
 * zgrid as a dependency: `npm pack` makes a tarball holding the compiled package; a separate project
 * installs it, type-checks a TypeScript file importing "zgrid/client" with the package's own .d.ts
 * (a deliberate type error must be caught), and runs the hello flow with it against a real server and a
 * worker started from the installed package's own CLI and example applications; the installed package's
 * compiled client example runs too, and its LICENSE ships.
 * Skipped, saying why, when npm cannot be run.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Server } from "../src/daemons/server.js";
import { ROOT, removeDir, startServer, tempDir, waitFor } from "./helpers.js";

const NPM = process.platform === "win32" ? "npm.cmd" : "npm";
const npmVersion = spawnSync(NPM, ["--version"], { encoding: "utf8" });
const NO_NPM =
  npmVersion.status === 0
    ? false
    : `npm cannot be run here (${npmVersion.error?.message ?? npmVersion.stderr})`;
const TSC = join(ROOT, "node_modules/typescript/bin/tsc");

/** Runs a command to its end without blocking this process (the server lives here). */
function run(
  cmd: string,
  args: string[],
  cwd: string,
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(cmd, args, {
    cwd,
    env: { ...process.env, npm_config_update_notifier: "false", ZGRID_URL: "" },
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

const CHECK_TS = `import {
  connect,
  decodeOutput,
  encodePayload,
  HtcGridConnector,
  loadClientConfig,
  SessionService,
  WaitBehavior,
  type Properties,
  type TaskOptions,
} from "zgrid/client";

const properties: Properties = loadClientConfig({ env: { ZGRID_URL: process.argv[2] } });
const options: TaskOptions = { ...properties.taskOptions, applicationName: "hello" };
const flags: number = WaitBehavior.All | WaitBehavior.BreakOnError;
void [SessionService, HtcGridConnector, flags];

const client = await connect(process.argv[2]);
try {
  const sessionId: string = await client.createSession(options);
  const [task] = await client.submitTasks(sessionId, [{ payload: encodePayload("sum", [[...Array(10).keys()]]) }]);
  const { data } = await client.waitResultsData(task.expectedOutputIds, { timeoutMs: 20_000 });
  const output = data.get(task.expectedOutputIds[0]);
  console.log(output ? \`Result : \${decodeOutput<number>(output)}\` : "no result");
} finally {
  await client.close();
}
`;

// Wrong on purpose: ruok() resolves to a string, createSession takes TaskOptions.
const WRONG_TS = `import { connect } from "zgrid/client";
const client = await connect("tcp://127.0.0.1:1");
const n: number = await client.ruok();
await client.createSession({ maxRetries: "many" });
void n;
`;

describe("the packed package, installed in another project", { skip: NO_NPM }, () => {
  let dir: string;
  let server: Server | undefined;
  let worker: ReturnType<typeof spawn> | undefined;

  before(() => {
    dir = tempDir("zgrid-pack-");
  });
  after(async () => {
    if (worker && worker.exitCode === null && worker.signalCode === null) {
      const gone = new Promise((r) => worker!.once("exit", r));
      worker.kill("SIGTERM");
      const timer = setTimeout(() => worker!.kill("SIGKILL"), 5000);
      await gone;
      clearTimeout(timer);
    }
    await server?.shutdown();
    removeDir(dir);
  });

  it("npm pack → npm install → tsc → the hello flow", { timeout: 90_000 }, async () => {
    // The tarball: dist/ is already built (the tests run from it), so no scripts.
    const pack = await run(
      NPM,
      ["pack", "--json", "--ignore-scripts", "--pack-destination", dir],
      ROOT,
      30_000,
    );
    assert.equal(pack.code, 0, pack.stderr);
    const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
    const files = new Set(info.files.map((f) => f.path));
    for (const f of [
      "dist/src/client/index.js",
      "dist/src/client/index.d.ts",
      "dist/src/client/htc-grid.d.ts",
      "dist/src/cli/main.js",
      "dist/src/worker/index.js",
      "examples/apps/hello.js",
      "examples/clients/hello.ts",
      "dist/examples/clients/hello.js",
      "LICENSE",
      "package.json",
      // The idle server's addon, built by the installing project's `npm install` (its install script).
      "native/build.mjs",
      "native/idle-memory/binding.gyp",
      "native/idle-memory/idle_memory.cc",
    ])
      assert.ok(files.has(f), `the tarball has ${f}`);
    assert.ok(
      ![...files].some((f) => f.startsWith("dist/test/") || f.startsWith("src/")),
      "no tests, no sources",
    );
    const tarball = join(dir, info.filename);

    // Another project installs it: the tarball, plus zgrid's dependencies from the registry (or cache).
    // Without install scripts: better-sqlite3's compiles SQLite from source when its prebuilt binary
    // cannot be downloaded (a minute of CPU), and neither the client nor the worker loads it; zeromq
    // ships its binaries in its package, msgpackr falls back to JavaScript.
    const app = join(dir, "app");
    spawnSync("mkdir", ["-p", app]);
    const init = await run(NPM, ["init", "-y"], app, 20_000);
    assert.equal(init.code, 0, init.stderr);
    const pkg = JSON.parse(readFileSync(join(app, "package.json"), "utf8")) as Record<string, unknown>;
    writeFileSync(join(app, "package.json"), JSON.stringify({ ...pkg, type: "module" }, null, 2));
    const install = await run(
      NPM,
      [
        "install",
        "--ignore-scripts",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        "--loglevel",
        "error",
        tarball,
      ],
      app,
      60_000,
    );
    assert.equal(install.code, 0, `npm install failed: ${install.stderr}`);
    const installed = join(app, "node_modules/zgrid");
    assert.ok(existsSync(join(installed, "dist/src/client/index.d.ts")));

    // Type-check with the package's declarations, as the project's compiler would.
    writeFileSync(join(app, "check.ts"), CHECK_TS);
    writeFileSync(join(app, "wrong.ts"), WRONG_TS);
    const tsconfig = (files: string[], noEmit: boolean) => ({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        noEmit,
        skipLibCheck: true,
        types: ["node"],
        typeRoots: [join(ROOT, "node_modules/@types")],
      },
      files,
    });
    writeFileSync(join(app, "tsconfig.json"), JSON.stringify(tsconfig(["check.ts"], false)));
    writeFileSync(join(app, "tsconfig.wrong.json"), JSON.stringify(tsconfig(["wrong.ts"], true)));
    const tsc = await run(process.execPath, [TSC, "-p", "tsconfig.json"], app, 60_000);
    assert.equal(tsc.code, 0, tsc.stdout + tsc.stderr);
    const wrong = await run(process.execPath, [TSC, "-p", "tsconfig.wrong.json"], app, 60_000);
    assert.notEqual(wrong.code, 0, "the type errors were caught");
    assert.match(
      wrong.stdout,
      /wrong\.ts\(3,7\): error TS2322: Type 'string' is not assignable to type 'number'/,
    );
    assert.match(wrong.stdout, /wrong\.ts\(4,\d+\): error TS2322/, "maxRetries must be a number");

    // A server, and a worker run by the installed package's CLI with its own example applications.
    ({ server } = await startServer({ heartbeatMs: 200 }));
    worker = spawn(
      process.execPath,
      [
        join(installed, "dist/src/cli/main.js"),
        "worker",
        "--connect",
        server.info!.workerUrl,
        "--app-path",
        join(installed, "examples/apps"),
        "--slots",
        "1",
        "--log-level",
        "warn",
      ],
      { stdio: "ignore" },
    );
    await waitFor(() => server!.scheduler.workers.size === 1, 15_000, "the installed worker");
    const hello = await run(process.execPath, [join(app, "check.js"), server.info!.url], app, 30_000);
    assert.equal(hello.code, 0, hello.stderr);
    assert.equal(hello.stdout.trim(), "Result : 45");

    // The shipped client examples import "zgrid/client" and run from the installed package.
    const source = readFileSync(join(installed, "examples/clients/hello.ts"), "utf8");
    assert.match(source, /from "zgrid\/client"/);
    assert.doesNotMatch(source, /\.\.\/src\//, "no import reaches into the source tree");
    const example = await run(
      process.execPath,
      [join(installed, "dist/examples/clients/hello.js"), server.info!.url, "-n", "10"],
      app,
      30_000,
    );
    assert.equal(example.code, 0, example.stderr + example.stdout);
    assert.match(example.stdout, /^Result : 45$/m);
  });
});
