import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { serverConfig, type ServerConfig } from "../src/daemons/config.js";
import { Server, type ConnectionInfo } from "../src/daemons/server.js";
import { createLogger } from "../src/log.js";

/** Paths tests need: the compiled CLI, the example and fixture applications. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const CLI = join(ROOT, "dist/src/cli/main.js");
export const EXAMPLE_APPS = join(ROOT, "examples/apps");
export const FIXTURE_APPS = join(ROOT, "test/fixtures/apps");

/** `zgrid server` flags that put every daemon on a free port of 127.0.0.1. */
export const ANY_PORTS = ["--port", "0", "--worker-port", "0", "--metrics-port", "0", "--status-port", "0"];

/**
 * The temp dirs this test process made, removed when it exits: a run of the suite left about 270 of
 * them in /tmp, 400 MB and more, and a machine that ran it for days had its disk fill up.
 */
const madeDirs = new Set<string>();

function removeMadeDirs(): void {
  for (const dir of madeDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // Still in use (a mount a test could not undo, say): left where it is.
    }
  }
  madeDirs.clear();
}

/** A new empty dir under the system's temp dir, removed when this process exits. */
export function tempDir(prefix = "zgrid-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (madeDirs.size === 0) process.once("exit", removeMadeDirs);
  madeDirs.add(dir);
  return dir;
}

/** Every port 0 (any free port) on 127.0.0.1; quiet logs; a fixed token; a temp data dir. */
export function testConfig(overrides: Partial<ServerConfig> = {}): ServerConfig {
  return serverConfig({
    host: "127.0.0.1",
    port: 0,
    workerPort: 0,
    metricsPort: 0,
    statusPort: 0,
    token: "test-token",
    dataDir: tempDir(),
    logLevel: "silent",
    heartbeatMs: 200,
    ...overrides,
  });
}

/** A server in this process, on free ports. */
export async function startServer(
  overrides: Partial<ServerConfig> = {},
): Promise<{ server: Server; info: ConnectionInfo }> {
  const config = testConfig(overrides);
  const server = new Server(config, createLogger(config.logLevel));
  const info = await server.start();
  return { server, info };
}

/**
 * Ports for a test that must name them before binding (a restart on the same port, a tool's flags):
 * free on 127.0.0.1 now, and taken below the kernel's ephemeral range (32768 up), where nothing that
 * binds port 0 (other tests' servers, outgoing connections) can take them before the test does.
 */
export async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  for (let tries = 0; ports.length < n && tries < 200; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (!ports.includes(port) && (await canListen(port))) ports.push(port);
  }
  if (ports.length < n) throw new Error(`found only ${ports.length} of ${n} free ports in 20000-31999`);
  return ports;
}

export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/** Polls until `check` is true or `timeoutMs` passes; bounded in time, never busy. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export interface Proc {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process is gone. */
  stop(): Promise<void>;
}

/** Runs the zgrid CLI as a child process. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(process.execPath, [CLI, ...args], {
    // ZGRID_NO_TOKENS_FILE: a server started by a test must not write to the real ~/.zgrid/tokens.txt.
    // ZGRID_TIMEOUT_MS: a CLI command's first-contact limit is 2 s by default, which a server on a
    // loaded CI machine, answering eight commands started at once, once missed; the tests of that
    // default (cli-no-server) set it back with ZGRID_TIMEOUT_MS "".
    env: {
      ...process.env,
      ZGRID_LOG_FORMAT: "json",
      ZGRID_NO_TOKENS_FILE: "1",
      ZGRID_TIMEOUT_MS: "30000",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      child.kill("SIGTERM");
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs a CLI command to its end (bounded by timeoutMs) and returns its exit code and output. */
export async function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 30_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawnCli(args, env);
  const timer = setTimeout(() => p.child.kill("SIGKILL"), timeoutMs);
  // "exit" can come before the last of stdout was read; "close" waits for the pipes (bounded).
  const closed = new Promise<void>((resolve) => p.child.once("close", () => resolve()));
  const { code } = await p.exited;
  await Promise.race([closed, new Promise((r) => setTimeout(r, 2000))]);
  clearTimeout(timer);
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

/** `zgrid server` as a child process on free ports; resolves once its connection-info file exists. */
export async function spawnServer(
  extraArgs: string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<{ proc: Proc; info: ConnectionInfo; infoFile: string; dir: string }> {
  const dir = tempDir();
  const infoFile = join(dir, "connection.json");
  const proc = spawnCli(
    [
      "server",
      ...ANY_PORTS,
      "--data-dir",
      dir,
      "--connection-info",
      infoFile,
      "--heartbeat-ms",
      "200",
      ...extraArgs,
    ],
    env,
  );
  try {
    await waitFor(
      () => existsSync(infoFile) || proc.child.exitCode !== null,
      15_000,
      "the server's connection-info file",
    );
  } catch (err) {
    await proc.stop();
    throw err;
  }
  if (!existsSync(infoFile)) throw new Error(`server exited early: ${proc.stderr()}`);
  return { proc, info: JSON.parse(readFileSync(infoFile, "utf8")) as ConnectionInfo, infoFile, dir };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * `zgrid worker` as a child process on `server`'s worker endpoint, resolved once the server counts it.
 * Stop it with `stop()`.
 */
export async function spawnWorker(
  server: Server,
  appPath: string,
  slots: number,
  extra: string[] = [],
): Promise<Proc> {
  const before = server.scheduler.workers.size;
  const worker = spawnCli([
    "worker",
    "--connect",
    server.info!.workerUrl,
    "--app-path",
    appPath,
    "--slots",
    String(slots),
    "--log-level",
    "warn",
    ...extra,
  ]);
  try {
    await waitFor(() => server.scheduler.workers.size > before, 15_000, "the worker to connect");
  } catch (err) {
    await worker.stop();
    throw err;
  }
  return worker;
}

/**
 * Checks that a state holds over a window, not at one instant: polls `holds` every 25 ms from now until
 * `until` (something that would have changed the state by then, had it been going to: a task that ran
 * after it, a round trip) has settled and at least `minMs` have passed; throws at the first poll that
 * finds it false, if `until` rejects, or if the window is not over within `timeoutMs`. Resolves with the
 * number of polls (at least 2: one at the start, one at the end).
 */
export async function holdsOver(
  holds: () => boolean | Promise<boolean>,
  options: { until?: Promise<unknown>; minMs?: number; timeoutMs?: number; what?: string } = {},
): Promise<number> {
  const { until, minMs = 300, timeoutMs = 30_000, what = "the state" } = options;
  const started = Date.now();
  let settled = until === undefined;
  let failure: unknown;
  until?.then(
    () => (settled = true),
    (err: unknown) => {
      failure = err;
      settled = true;
    },
  );
  for (let polls = 1; ; polls++) {
    const ok = await holds();
    const elapsed = Date.now() - started;
    if (!ok) throw new Error(`${what} stopped holding after ${elapsed} ms (poll ${polls})`);
    if (failure !== undefined) throw failure;
    if (settled && elapsed >= minMs && polls >= 2) return polls;
    if (elapsed > timeoutMs) throw new Error(`the window over ${what} did not end within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * `zgrid server` arguments on the given ports (DEFAULT, worker, METRICS, STATUS) and data dir, with
 * fixed tokens and 200 ms heartbeats: for a test that restarts the server where its clients and
 * workers will find it again.
 */
export function serverArgsOn(ports: number[], dataDir: string, token: string, workerToken: string): string[] {
  return [
    "server",
    "--port",
    String(ports[0]),
    "--worker-port",
    String(ports[1]),
    "--metrics-port",
    String(ports[2]),
    "--status-port",
    String(ports[3]),
    "--data-dir",
    dataDir,
    "--token",
    token,
    "--worker-token",
    workerToken,
    "--heartbeat-ms",
    "200",
    "--connection-info",
    join(dataDir, "info.json"),
  ];
}

/** A figure of /proc/PID/status in MB: VmRSS (resident now) or VmHWM (the peak resident). */
export function procStatusMb(pid: number, field: "VmRSS" | "VmHWM"): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  assert.ok(m, `${field} in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}

/** Resets a process's peak RSS (VmHWM) to its RSS of now; false where that is refused. */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}
