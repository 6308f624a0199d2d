/**
 * The README, followed as written, in directories outside the repository: its code blocks are read from
 * README.md (so a README that drifts from what works fails here) and run in a copy of the checkout (the
 * files a fresh clone holds, with uncommitted edits) and in a project of the user's own.
 *
 * - Quick start: `npm install && npm run demo` in the clone. `npm install` is stood in for by a link to
 *   this checkout's node_modules plus `npm run install` and `npm run prepare` (what npm install runs
 *   after installing): the registry install itself is what CI's own fresh clone checks (.ci/run), and
 *   pack.test.ts installs the packed package from npm's cache.
 * - Running a grid: every `zgrid` line of that block, with port flags added so the server binds free
 *   ports; commands naming a placeholder ID or watching forever are left out.
 * - The worker, the app and the client: the app written to ./apps/hello.js of a directory with no zgrid
 *   installed (a worker machine's), the worker started there as the README shows with its URL replaced;
 *   the client in a project of its own with `"type": "module"` and zgrid linked into its node_modules
 *   (what `npm install /path/to/zgrid` does), compiled by tsc and run: its output must be what the
 *   README's comment says.
 *
 * Skipped, saying why, when this checkout is not a git work tree.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ANY_PORTS, ROOT, removeDir, tempDir, waitFor } from "./helpers.js";

const NPM = process.platform === "win32" ? "npm.cmd" : "npm";
const TSC = join(ROOT, "node_modules/typescript/bin/tsc");
const listed = spawnSync(
  "git",
  ["-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
  {
    encoding: "utf8",
  },
);
const SKIP = listed.status === 0 ? false : `not a git work tree: ${listed.error?.message ?? listed.stderr}`;

const README = readFileSync(join(ROOT, "README.md"), "utf8");

/**
 * Where node-gyp finds Node's headers, as npm says with the user's real home. Under `npm test` npm hands
 * it down as npm_config_nodedir; run by itself (`node --test` of this file), the walkthrough's own HOME
 * would hide it, and the addon's build would look for headers to download.
 */
const NODEDIR = ((): NodeJS.ProcessEnv => {
  if (process.env.npm_config_nodedir) return {};
  const got = spawnSync(NPM, ["config", "get", "nodedir"], { encoding: "utf8" });
  const dir = got.status === 0 ? got.stdout.trim() : "";
  return dir && existsSync(dir) ? { npm_config_nodedir: dir } : {};
})();

/** The fenced code blocks of a Markdown text, with their language. */
function codeBlocks(markdown: string): { lang: string; text: string }[] {
  return [...markdown.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1], text: m[2] }));
}

/** The one block of language `lang` that contains `marker`. */
function block(lang: string, marker: string): string {
  const found = codeBlocks(README).filter((b) => b.lang === lang && b.text.includes(marker));
  assert.equal(found.length, 1, `README.md has one ${lang} block with ${JSON.stringify(marker)}`);
  return found[0].text;
}

/** A shell line as words: single or double quotes group, a `#` comment is returned apart. */
function words(line: string): { words: string[]; comment: string } {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (c === " ") {
      i++;
    } else if (c === "#") {
      return { words: out, comment: line.slice(i + 1).trim() };
    } else if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      out.push(line.slice(i + 1, end));
      i = end + 1;
    } else {
      let end = i;
      while (end < line.length && line[end] !== " ") end++;
      out.push(line.slice(i, end));
      i = end;
    }
  }
  return { words: out, comment: "" };
}

interface Running {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
}

const running: Running[] = [];
/** The user's home for every process of this test: the server saves its token in ~/.zgrid/tokens.txt. */
let home = "";

function start(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Running {
  const child = spawn(cmd, args, {
    cwd,
    env: {
      ...process.env,
      ZGRID_URL: "",
      ZGRID_NO_TOKENS_FILE: "",
      npm_config_update_notifier: "false",
      ...NODEDIR,
      ...(home ? { HOME: home } : {}),
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  const r = { child, out: () => out, err: () => err, exited };
  running.push(r);
  return r;
}

/** Runs a command to its end, killed after `timeoutMs`. */
async function run(
  cmd: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 60_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = start(cmd, args, cwd, env);
  const timer = setTimeout(() => r.child.kill("SIGKILL"), timeoutMs);
  const code = await r.exited;
  clearTimeout(timer);
  return { code, stdout: r.out(), stderr: r.err() };
}

async function stop(r: Running): Promise<void> {
  if (r.child.exitCode !== null || r.child.signalCode !== null) return;
  const timer = setTimeout(() => r.child.kill("SIGKILL"), 5000);
  r.child.kill("SIGTERM");
  await r.exited;
  clearTimeout(timer);
}

/** Starts `zgrid server` on free ports; resolves with its process and the URLs its banner printed. */
async function startServer(
  cli: string,
  args: string[],
  cwd: string,
): Promise<{ server: Running; url: string; workerUrl: string }> {
  const server = start(process.execPath, [cli, "server", ...args, ...ANY_PORTS], cwd);
  const urls = () => ({
    url: /connect URL:\s+(tcp:\/\/\S+)/.exec(server.out())?.[1],
    workerUrl: /workers:\s+(tcp:\/\/\S+)/.exec(server.out())?.[1],
  });
  await waitFor(
    () => (urls().url !== undefined && urls().workerUrl !== undefined) || server.child.exitCode !== null,
    30_000,
    "the server's banner",
  );
  const { url, workerUrl } = urls();
  assert.ok(url && workerUrl, `the server printed its URLs: ${server.out()}${server.err()}`);
  return { server, url, workerUrl };
}

describe("the README, followed from a fresh clone outside the repo", { skip: SKIP }, () => {
  let dir: string;
  let clone: string;
  let cli: string;

  before(() => {
    dir = tempDir("zgrid-readme-");
    clone = join(dir, "zgrid");
    home = join(dir, "home");
    mkdirSync(home);
    for (const file of listed.stdout.split("\0").filter(Boolean)) {
      const from = join(ROOT, file);
      if (!existsSync(from)) continue; // deleted in the work tree, not yet committed
      mkdirSync(dirname(join(clone, file)), { recursive: true });
      copyFileSync(from, join(clone, file));
    }
  });

  after(async () => {
    await Promise.all(running.map(stop));
    removeDir(dir);
  });

  it("quick start: npm install && npm run demo", { timeout: 240_000 }, async () => {
    const steps = block("sh", "npm run demo")
      .trim()
      .split("&&")
      .map((s) => s.trim());
    assert.deepEqual(steps, ["npm install", "npm run demo"], "the quick start's steps are the ones run here");
    // npm install: the dependencies (linked), then its install script (native/idle-memory) and its
    // prepare script, which builds dist/.
    symlinkSync(join(ROOT, "node_modules"), join(clone, "node_modules"), "dir");
    const install = await run(NPM, ["run", "install"], clone, {}, 180_000);
    assert.equal(install.code, 0, install.stdout + install.stderr);
    assert.doesNotMatch(install.stderr, /was not built/, "the idle-memory addon builds");
    const prepare = await run(NPM, ["run", "prepare"], clone, {}, 180_000);
    assert.equal(prepare.code, 0, prepare.stdout + prepare.stderr);
    const demo = await run(NPM, ["run", "demo"], clone, {}, 120_000);
    assert.equal(demo.code, 0, demo.stdout + demo.stderr);
    assert.match(demo.stdout, /results:\s+(\d+) correct, 0 wrong, 0 missing/);
  });

  it("running a grid: the zgrid lines of the README", { timeout: 120_000 }, async () => {
    const lines = block("sh", "alias zgrid=")
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean);
    const alias = /^alias zgrid="node \$PWD\/(\S+)"$/.exec(lines[0]);
    assert.ok(alias, `the block starts with the alias: ${lines[0]}`);
    cli = join(clone, alias[1]);
    assert.ok(existsSync(cli), `${alias[1]} exists after the build`);

    const serverLine = words(lines[1]);
    assert.deepEqual(serverLine.words.slice(0, 2), ["zgrid", "server"]);
    assert.match(serverLine.comment, /connect URL: tcp:\/\/127\.0\.0\.1:\d+\?token=/);
    const { server, url } = await startServer(cli, serverLine.words.slice(2), clone);
    assert.match(url, /^tcp:\/\/127\.0\.0\.1:\d+\?token=\S+$/);
    // The second terminal's URL: with the token, or without it (then read from ~/.zgrid/tokens.txt).
    const exported = /^export ZGRID_URL='tcp:\/\/127\.0\.0\.1:\d+(\?token=…)?'/.exec(lines[2]);
    assert.ok(exported, lines[2]);
    const clientUrl = exported[1] ? url : url.split("?")[0];

    let ran = 0;
    for (const line of lines.slice(3)) {
      const { words: w, comment } = words(line);
      assert.equal(w[0], "zgrid", `a zgrid command: ${line}`);
      // A placeholder to fill in, or a command that watches until stopped: not run as written.
      if (w.includes("ID") || w[1] === "events") continue;
      const r = await run(process.execPath, [cli, ...w.slice(1)], clone, { ZGRID_URL: clientUrl }, 30_000);
      assert.equal(r.code, 0, `${line}\n${r.stdout}${r.stderr}`);
      const result = /^Result : \d+$/.exec(comment);
      if (result) assert.match(r.stdout, new RegExp(`^${result[0]}$`, "m"), line);
      ran++;
    }
    assert.ok(ran >= 4, `ran ${ran} commands of the block`);
    assert.equal(lines.at(-1), "zgrid shutdown");
    assert.equal(await server.exited, 0, "zgrid shutdown stopped the server");
  });

  it(
    "the app in ./apps and its worker, then the client in a project of the user's",
    { timeout: 120_000 },
    async () => {
      assert.ok(cli, "the previous step found the CLI");
      // The worker's directory: the app and nothing else (no node_modules: the worker provides zgrid).
      const workerDir = join(dir, "worker-host");
      mkdirSync(join(workerDir, "apps"), { recursive: true });
      writeFileSync(join(workerDir, "package.json"), JSON.stringify({ private: true, type: "module" }));
      writeFileSync(join(workerDir, "apps/hello.js"), block("js", 'from "zgrid/worker"'));
      const project = join(dir, "my-project");
      mkdirSync(join(project, "node_modules"), { recursive: true });
      writeFileSync(
        join(project, "package.json"),
        JSON.stringify({ name: "my-project", private: true, type: "module" }, null, 2),
      );
      // What `npm install /path/to/zgrid` makes: a link to the clone.
      symlinkSync(clone, join(project, "node_modules/zgrid"), "dir");
      const client = block("ts", 'from "zgrid/client"');
      writeFileSync(join(project, "client.ts"), client);

      // The client, compiled as the project's TypeScript would compile it.
      writeFileSync(
        join(project, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            target: "ES2022",
            module: "NodeNext",
            moduleResolution: "NodeNext",
            strict: true,
            skipLibCheck: true,
            types: ["node"],
            typeRoots: [join(ROOT, "node_modules/@types")],
          },
          files: ["client.ts"],
        }),
      );
      const tsc = await run(process.execPath, [TSC, "-p", "tsconfig.json"], project, {}, 90_000);
      assert.equal(tsc.code, 0, tsc.stdout + tsc.stderr);

      // A server with no local worker: only the README's worker can run the task.
      const { server, url, workerUrl } = await startServer(cli, [], clone);
      const workerLine = words(block("sh", "zgrid worker --connect").trim());
      assert.deepEqual(workerLine.words.slice(0, 3), ["zgrid", "worker", "--connect"]);
      assert.ok(workerLine.words.includes("./apps"), "the worker serves ./apps");
      const worker = start(
        process.execPath,
        [cli, "worker", "--connect", workerUrl, ...workerLine.words.slice(4)],
        workerDir,
      );

      const expected = /console\.log\(.*\); \/\/ (.+)$/m.exec(client);
      assert.ok(expected, "the client's console.log line says what it prints");
      const r = await run(process.execPath, ["client.js"], project, { ZGRID_URL: url }, 60_000);
      assert.equal(r.code, 0, `${r.stdout}${r.stderr}\nworker: ${worker.err()}`);
      assert.equal(r.stdout.trim(), expected[1].trim());
      assert.equal(worker.child.exitCode, null, "the worker still runs");
      await stop(worker);
      await stop(server);
    },
  );
});
