/**
 * Throw-away PostgreSQL clusters for tests: initdb into a temp dir, a server on a free port of 127.0.0.1
 * only, a role and a database `zgrid`, gone again with `stop()`.
 *
 *   const pg = await startPostgres();     // pg.url = postgres://zgrid:<password>@127.0.0.1:<port>/zgrid
 *   await psql(pg.url, "SELECT 1");       // "1"
 *   pg.kill();                            // kill -9 (a crash); the directory stays
 *   await pg.stop();                      // fast shutdown if still up; the directory is removed
 *
 * Authentication: password (scram-sha-256) on 127.0.0.1, which is the only address the server listens
 * on; the role `zgrid` gets a random password per cluster, carried in `url`. Only the Unix socket, in the
 * cluster's own 0700 directory (reachable by root and the cluster's owner only), is `trust`.
 *
 * Durability is PostgreSQL's default (fsync, synchronous_commit and full_page_writes on): the store relies
 * on fsync, so only initdb runs with --no-sync (its files are throw-away until the server starts).
 *
 * Needs Debian's server binaries (package postgresql, >= 15) in /usr/lib/postgresql/VERSION/bin.
 * {@link postgresUnavailable} says why not where a cluster cannot be made, and tests skip loudly with
 * that reason. As root, initdb and postgres (which refuse root) run as the `postgres` system user through
 * `setpriv`; otherwise as the current user.
 *
 * Clusters still running when the test process ends (a failed test, an uncaught error, SIGINT/SIGTERM)
 * are killed with SIGKILL and their directories removed; the clusters of a test process that was itself
 * killed -9 are swept by the next {@link startPostgres} (their `owner` process is gone).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chownSync,
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ServerConfig } from "../src/daemons/config.js";
import { freePort, tempDir, waitFor } from "./helpers.js";

export interface TestPostgres {
  /** postgres://zgrid:PASSWORD@127.0.0.1:PORT/zgrid (the role `zgrid` owns the database `zgrid`). */
  url: string;
  port: number;
  /** The cluster's directory: data/ (PGDATA), log (the server's log), the Unix socket, owner. */
  dir: string;
  /** The postmaster's pid: a child of this process (so reaped by it), in a session of its own. */
  pid: number;
  /** A fast shutdown (SIGINT, as `pg_ctl stop -m fast`) if it is still running; resolves once the
   * postmaster has exited (and been reaped) and the directory is removed. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL to the postmaster and, at the same moment, every process it forked (backends, checkpointer,
   * WAL writer...), as in a crash of the machine; synchronous. Connections break at once. The directory
   * stays (`postgres -D DIR/data` would recover it); `stop()` still cleans up. */
  kill(): void;
}

const PG_ROOT = "/usr/lib/postgresql";
const MIN_VERSION = 15;
const PREFIX = "zgrid-pg-";

interface Tools {
  bin: string;
  version: number;
  /** The `postgres` system user's uid and gid, when this process is root. */
  runAs: { uid: number; gid: number } | null;
}

let tools: Tools | string | undefined;

/** The newest server binaries (>= 15) and the user to run them as, or why there are none; cached. */
function probe(): Tools | string {
  if (tools !== undefined) return tools;
  tools = probeOnce();
  return tools;
}

function probeOnce(): Tools | string {
  if (process.platform !== "linux")
    return `PostgreSQL test clusters are Linux only (this is ${process.platform})`;
  let versions: number[] = [];
  try {
    versions = readdirSync(PG_ROOT)
      .filter((v) => /^\d+$/.test(v))
      .map(Number)
      .filter((v) => ["initdb", "postgres", "psql"].every((b) => existsSync(join(PG_ROOT, `${v}`, "bin", b))))
      .sort((a, b) => b - a);
  } catch {
    // no /usr/lib/postgresql
  }
  const version = versions[0];
  if (version === undefined || version < MIN_VERSION)
    return (
      `no PostgreSQL >= ${MIN_VERSION} server binaries (initdb, postgres, psql) in ${PG_ROOT}/*/bin` +
      (version === undefined ? "" : ` (newest: ${version})`) +
      ": install Debian's postgresql package (.ci/run does)"
    );
  const bin = join(PG_ROOT, `${version}`, "bin");
  if (process.getuid?.() !== 0) return { bin, version, runAs: null };
  // Root: initdb and postgres refuse to run as root, so they run as the postgres system user.
  let uid: number;
  let gid: number;
  try {
    uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8", stdio: "pipe" }).trim());
    gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8", stdio: "pipe" }).trim());
  } catch {
    return "running as root, which initdb refuses, and there is no `postgres` system user to run it as";
  }
  try {
    execFileSync("setpriv", [...setprivArgs({ uid, gid }), "test", "-x", tmpdir()], {
      stdio: "pipe",
      timeout: 10_000,
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "ENOENT")
      return "running as root and `setpriv` (util-linux) is missing to run initdb as postgres";
    return `the postgres user cannot reach the temp dir ${tmpdir()} (set TMPDIR to a directory it can enter)`;
  }
  return { bin, version, runAs: { uid, gid } };
}

/** Null when a PostgreSQL test cluster can be made here, else a sentence saying why not. */
export function postgresUnavailable(): string | null {
  const t = probe();
  return typeof t === "string" ? t : null;
}

function need(): Tools {
  const t = probe();
  if (typeof t === "string") throw new Error(t);
  return t;
}

/** The environment for PostgreSQL's programs: none of the caller's PG* variables, a bounded connect. */
function pgEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("PG")) env[k] = v;
  return { ...env, PGCONNECT_TIMEOUT: "10", ...extra };
}

/** setpriv's arguments to run a program as the postgres user (it execs the program: no extra process). */
function setprivArgs(runAs: { uid: number; gid: number }): string[] {
  return [`--reuid=${runAs.uid}`, `--regid=${runAs.gid}`, "--init-groups", "--"];
}

/** The command line that runs `program` as the cluster's owner: postgres when root, else this user. */
function asOwner(t: Tools, program: string, args: string[]): [string, string[]] {
  return t.runAs ? ["setpriv", [...setprivArgs(t.runAs), program, ...args]] : [program, args];
}

/** Runs a program (as the cluster's owner, for `asOwner`) to its end, bounded by timeoutMs. */
function run(
  program: string,
  args: string[],
  options: { asOwner?: boolean; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  const t = need();
  const [cmd, argv] = options.asOwner ? asOwner(t, program, args) : [program, args];
  // For an error: the command line, passwords blanked out.
  const shown = [program, ...args]
    .join(" ")
    .replace(/(postgres:\/\/[^:/@\s]+):[^@\s]*@/g, "$1:***@")
    .replace(/PASSWORD '[^']*'/g, "PASSWORD '***'");
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      argv,
      {
        encoding: "utf8",
        timeout: options.timeoutMs ?? 30_000,
        killSignal: "SIGKILL",
        env: options.env ?? pgEnv(),
        // A directory every user can enter: setpriv keeps the cwd, which postgres may not be able to read.
        cwd: "/",
      },
      (err, stdout, stderr) => {
        if (err)
          reject(
            new Error(
              `${shown} failed (${err.killed ? "timed out" : `exit ${String(err.code)}`}): ` +
                `${stderr.trim() || stdout.trim()}`,
            ),
          );
        else resolve(stdout);
      },
    );
  });
}

/**
 * Runs SQL through psql (unaligned, tuples only, stopping at the first error) against `url` and
 * returns its output without the last newline (rows one a line, columns separated by |); rejects with
 * psql's message when it fails. Never prompts for a password (-w).
 */
export function psql(url: string, sql: string, timeoutMs = 15_000): Promise<string> {
  const t = need();
  return run(
    join(t.bin, "psql"),
    ["-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
    {
      timeoutMs,
    },
  ).then((out) => out.replace(/\n$/, ""));
}

/** Is a process there (a zombie, dead but not yet reaped, is not)? */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  const stat = procStat(pid);
  return stat !== null && stat.state !== "Z";
}

/** From /proc/PID/stat: "pid (comm) STATE PPID ..."; comm may hold spaces and ')', so from the last ')'. */
function procStat(pid: number): { state: string; ppid: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0]!, ppid: Number(fields[1]) };
  } catch {
    return null;
  }
}

/**
 * SIGKILL to a postmaster and every process it forked (backends, checkpointer, WAL writer...: each in a
 * session of its own, so not its process group), as in a crash of the machine. The postmaster is stopped
 * (SIGSTOP) first, so that it forks nothing between the listing of its children and the kill. Returns
 * the pids killed.
 */
function killCluster(pid: number): number[] {
  if (!(pid > 0)) return []; // never kill(0) or kill(-0): that is this process's own group
  try {
    process.kill(pid, "SIGSTOP");
  } catch {
    return []; // already gone
  }
  const victims = [pid];
  for (const entry of readdirSync("/proc")) {
    if (/^\d+$/.test(entry) && procStat(Number(entry))?.ppid === pid) victims.push(Number(entry));
  }
  for (const victim of victims) {
    try {
      process.kill(victim, "SIGKILL");
    } catch {
      // already gone
    }
  }
  return victims;
}

/** Clusters made by this process and not yet stopped (their postmaster, once there is one): what the
 * exit handler kills and removes. */
const running = new Map<string, ChildProcess | null>();
let handlersInstalled = false;

function killAllSync(): void {
  for (const [dir, server] of running) {
    // Only a postmaster not yet reaped: the pid of one reaped may be another process's by now.
    if (server && !exited(server)) killCluster(server.pid!);
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // a process being killed may still be writing; the next startPostgres sweeps it
    }
  }
  running.clear();
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", killAllSync);
  // A signal ends Node without "exit": kill the clusters (in a session of their own, so a Ctrl-C does
  // not reach them), then let the signal do what it would have done had this handler not been there.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = (): void => {
      killAllSync();
      process.removeListener(signal, onSignal);
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

/**
 * Removes the clusters of test processes that are gone (killed -9, so no exit handler ran): directories
 * zgrid-pg-* in the temp dir whose `owner` pid is dead; their postmaster is killed first, if it is still
 * the one of that directory.
 */
function sweepStale(): void {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir()).filter((e) => e.startsWith(PREFIX));
  } catch {
    return;
  }
  for (const entry of entries) {
    const dir = join(tmpdir(), entry);
    try {
      const owner = Number(readFileSync(join(dir, "owner"), "utf8"));
      if (!(owner > 0) || alive(owner)) continue;
    } catch {
      // No owner file: being made right now, or its maker died before writing it; gone after an hour.
      try {
        if (Date.now() - statSync(dir).mtimeMs < 3_600_000) continue;
      } catch {
        continue;
      }
    }
    try {
      const pid = Number(readFileSync(join(dir, "data", "postmaster.pid"), "utf8").split("\n")[0]);
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (pid > 0 && cmdline.includes(join(dir, "data"))) killCluster(pid);
    } catch {
      // no postmaster
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The last lines of the server's log, for an error. */
function logTail(dir: string, lines = 30): string {
  try {
    return readFileSync(join(dir, "log"), "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** A value for postgresql.conf, single-quoted (which every type accepts). */
function confValue(value: string): string {
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

/**
 * A fresh cluster on a free port of 127.0.0.1: initdb into a new temp dir (zgrid-pg-*), a server with
 * max_connections=50 and shared_buffers=32MB plus `settings`, a role and a database `zgrid`. Throws when
 * it cannot, with the server log's tail when the server did not start.
 *
 * The settings, the port among them, are written to data/postgresql.conf rather than given on the
 * command line: no shell quoting, and `postgres -D DIR/data` would start the same server again.
 *
 * The postmaster is a child of this process, not started by `pg_ctl start` (which leaves it to init):
 * this process reaps it, so once stop() resolves its pid is gone, even where init is slow to reap
 * orphans (as on the machine this was written on, where a postmaster stopped by pg_ctl stayed a zombie
 * for seconds). Readiness is what `pg_ctl -w` waits for: postmaster.pid saying "ready".
 *
 * `lab`: it also listens on `address` (the root namespace's address on a network-namespace lab, see
 * test/netns.ts) and takes password logins from `network` (that lab's /24).
 */
export async function startPostgres(
  options: { settings?: Record<string, string>; lab?: { address: string; network: string } } = {},
): Promise<TestPostgres> {
  const t = need();
  installHandlers();
  sweepStale();
  const dir = tempDir(PREFIX);
  const data = join(dir, "data");
  const log = join(dir, "log");
  let server: ChildProcess | undefined;
  running.set(dir, null);
  try {
    writeFileSync(join(dir, "owner"), `${process.pid}\n`);
    const superPassword = randomBytes(16).toString("hex");
    const password = randomBytes(16).toString("hex");
    const pwfile = join(dir, "pwfile");
    writeFileSync(pwfile, `${superPassword}\n`, { mode: 0o600 });
    if (t.runAs) {
      chownSync(dir, t.runAs.uid, t.runAs.gid);
      chownSync(pwfile, t.runAs.uid, t.runAs.gid);
    }
    await run(
      join(t.bin, "initdb"),
      [
        "-D",
        data,
        "-U",
        "postgres",
        `--pwfile=${pwfile}`,
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
        "--no-instructions",
      ],
      { asOwner: true, timeoutMs: 120_000 },
    );
    rmSync(pwfile);
    const baseConf = readFileSync(join(data, "postgresql.conf"), "utf8");
    if (options.lab) {
      const hba = join(data, "pg_hba.conf");
      writeFileSync(hba, `${readFileSync(hba, "utf8")}\nhost all all ${options.lab.network} scram-sha-256\n`);
    }
    const settings: Record<string, string> = {
      listen_addresses: options.lab ? `127.0.0.1,${options.lab.address}` : "127.0.0.1",
      unix_socket_directories: dir,
      max_connections: "50",
      shared_buffers: "32MB",
      ...options.settings,
    };

    // The port: free now, but another process may take it before the server binds it; then another.
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      const conf = Object.entries({ ...settings, port: String(port) })
        .map(([k, v]) => `${k} = ${confValue(v)}`)
        .join("\n");
      writeFileSync(join(data, "postgresql.conf"), `${baseConf}\n# test/postgres.ts\n${conf}\n`);
      writeFileSync(log, ""); // a failed attempt's tail is its own
      server = spawnPostmaster(t, data, log);
      running.set(dir, server);
      const failure = await whenReady(server, data, 30_000);
      if (failure === null) break;
      const tail = logTail(dir);
      server = undefined;
      if (attempt < 5 && /address already in use/i.test(tail)) continue;
      throw new Error(`the PostgreSQL server did not start: ${failure}\n--- ${log} (tail):\n${tail}`);
    }

    await run(
      join(t.bin, "psql"),
      [
        "-X",
        "-w",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        "127.0.0.1",
        "-p",
        String(port),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-c",
        `CREATE ROLE zgrid LOGIN CREATEDB PASSWORD '${password}'`,
        "-c",
        "CREATE DATABASE zgrid OWNER zgrid",
      ],
      { env: pgEnv({ PGPASSWORD: superPassword }) },
    );
    return handle(server, dir, port, `postgres://zgrid:${password}@127.0.0.1:${port}/zgrid`);
  } catch (err) {
    running.delete(dir);
    if (server) {
      const victims = killCluster(server.pid!);
      await waitFor(() => !victims.some(alive), 10_000, "the failed cluster's processes to end").catch(
        () => undefined,
      );
    }
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** `postgres -D data` as the cluster's owner, its output appended to `log`, in a session of its own. */
function spawnPostmaster(t: Tools, data: string, log: string): ChildProcess {
  const fd = openSync(log, "a");
  try {
    const [cmd, argv] = asOwner(t, join(t.bin, "postgres"), ["-D", data]);
    const child = spawn(cmd, argv, { cwd: "/", env: pgEnv(), detached: true, stdio: ["ignore", fd, fd] });
    child.unref(); // a cluster left running must not keep the test process alive: "exit" kills it
    child.on("error", () => undefined); // reported by whenReady, through exitCode
    return child;
  } finally {
    closeSync(fd);
  }
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Waits for `child` to be a postmaster accepting connections; null, or why it is not (it is then gone). */
async function whenReady(child: ChildProcess, data: string, timeoutMs: number): Promise<string | null> {
  const ready = (): boolean => {
    try {
      // postmaster.pid: line 1 the pid, line 8 the status ("starting", "ready", "stopping", "standby").
      const lines = readFileSync(join(data, "postmaster.pid"), "utf8").split("\n");
      return Number(lines[0]) === child.pid && lines[7]?.trim() === "ready";
    } catch {
      return false;
    }
  };
  try {
    await waitFor(() => exited(child) || ready(), timeoutMs, "the PostgreSQL server to accept connections");
  } catch (err) {
    killCluster(child.pid!);
    await waitFor(() => exited(child), 5_000, "the killed postmaster to exit").catch(() => undefined);
    return (err as Error).message;
  }
  if (!exited(child)) return null;
  return `it exited (${child.exitCode ?? child.signalCode})`;
}

function handle(server: ChildProcess, dir: string, port: number, url: string): TestPostgres {
  const pid = server.pid!;
  const gone = new Promise<void>((resolve) => {
    if (exited(server)) resolve();
    else server.once("exit", () => resolve());
  });
  let killed: number[] = [];
  let stopping: Promise<void> | undefined;
  return {
    url,
    port,
    dir,
    pid,
    kill() {
      if (!exited(server)) killed = killCluster(pid);
    },
    stop() {
      stopping ??= (async () => {
        server.ref(); // its "exit" is what this waits for: the event loop must not end first
        const bounded = async (ms: number): Promise<boolean> => {
          let timer: NodeJS.Timeout | undefined;
          const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
          const done = await Promise.race([gone.then(() => true), timeout]);
          clearTimeout(timer);
          return done;
        };
        if (!exited(server)) {
          // SIGINT: PostgreSQL's fast shutdown, what `pg_ctl stop -m fast` sends. The postmaster exits
          // after all its children, and this process reaps it.
          try {
            process.kill(pid, "SIGINT");
          } catch {
            // exited meanwhile
          }
          if (!(await bounded(30_000))) killed = killCluster(pid);
        }
        if (!(await bounded(10_000))) throw new Error(`the postmaster ${pid} did not exit`);
        // After a kill, its children (orphans now, reaped by init) may be a moment from gone.
        await waitFor(() => !killed.some(alive), 10_000, `the killed processes of the cluster ${pid} to end`);
        running.delete(dir);
        rmSync(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

let databases = 0;

/**
 * For a test run on SQLite and on PostgreSQL alike: the server settings of each, PostgreSQL's a new
 * database on one cluster, started when first asked for; `skip` says why PostgreSQL cannot run here.
 */
export class BothStores {
  readonly kinds = ["SQLite", "PostgreSQL"] as const;
  private cluster: TestPostgres | null = null;

  skip(kind: StoreKind): string | false {
    return kind === "PostgreSQL" ? (postgresUnavailable() ?? false) : false;
  }

  async settings(kind: StoreKind): Promise<Partial<ServerConfig>> {
    if (kind === "SQLite") return {};
    this.cluster ??= await startPostgres();
    return { store: "postgres", pgUrl: await newDatabase(this.cluster) };
  }

  async stop(): Promise<void> {
    await this.cluster?.stop();
  }
}

export type StoreKind = BothStores["kinds"][number];

/** A new empty database of the cluster, owned by `zgrid` (each store test has one of its own): its URL. */
export async function newDatabase(pg: TestPostgres): Promise<string> {
  const name = `zgrid_${process.pid}_${++databases}`;
  await psql(pg.url, `CREATE DATABASE ${name}`);
  const u = new URL(pg.url);
  u.pathname = `/${name}`;
  return u.toString();
}
