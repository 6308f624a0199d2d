/**
 * Hosts for tests that cross a real network (issue 16): Linux network namespaces joined by veth pairs to
 * a bridge in a namespace of its own (the lab's switch), on a private /24 (10.213.X.0/24). The root
 * namespace (the test process) gets one more veth on that switch, so a client or a proxy in the test
 * reaches the hosts; no namespace has a default route, so traffic stays on the lab's veths and never
 * reaches the machine's real interfaces.
 *
 *   const lab = await NetnsLab.create(["server", "a", "b"]);
 *   const server = lab.spawnCli(lab.host("server"), ["server", "--host", lab.host("server").address, ...]);
 *   lab.cut(lab.host("a"));  lab.mend(lab.host("a"));
 *   await lab.destroy();     // every process it started, every namespace and veth it made
 *
 * Needs root and `ip netns` (iproute2): {@link netnsUnavailable} says why not where it cannot run, and
 * tests skip loudly with that reason. Names are zg-<pid>-<n> (namespaces) and zg<pid><kind><n> (links),
 * so that {@link sweepStaleLabs} can remove what a killed run left behind.
 */
import { execFileSync, spawn } from "node:child_process";
import { CLI, type Proc } from "./helpers.js";

export interface LabHost {
  /** What the test calls it ("server", "a"). */
  readonly label: string;
  /** The network namespace (zg-<pid>-<n>). */
  readonly netns: string;
  /** Its address on the lab's /24. */
  readonly address: string;
  /** Its link's end on the switch: down cuts the host off (a pulled cable). */
  readonly switchLink: string;
}

let labs = 0;
let namespaces = 0;

function ip(args: string[]): string {
  return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Runs `ip`, ignoring a failure: for cleanup, where the thing may already be gone. */
function ipQuiet(args: string[]): void {
  try {
    ip(args);
  } catch {
    // already gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Why network-namespace hosts cannot be made here, or null when they can (tried for real, once). */
export function netnsUnavailable(): string | null {
  if (process.platform !== "linux") return `network namespaces are Linux only (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return "not root: `ip netns add` needs CAP_SYS_ADMIN (CI runs as root)";
  const probe = `zg-${process.pid}-probe`;
  try {
    ip(["netns", "add", probe]);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") return "`ip` (iproute2) is not installed";
    return `\`ip netns add\` fails: ${String(e.stderr ?? e.message).trim()}`;
  }
  try {
    ip(["-n", probe, "link", "add", "zgprobe0", "type", "veth", "peer", "name", "zgprobe1"]);
    ip(["-n", probe, "link", "add", "zgprobebr", "type", "bridge"]);
  } catch (err) {
    return `no veth pairs or bridges: ${String((err as { stderr?: string }).stderr ?? err).trim()}`;
  } finally {
    ipQuiet(["netns", "del", probe]);
  }
  return null;
}

/**
 * Removes the namespaces and root-namespace links of lab runs whose process is gone (a test run killed
 * before its `after`), ending the processes still inside them. Returns the namespaces removed.
 */
export function sweepStaleLabs(): string[] {
  const removed: string[] = [];
  let list: string;
  try {
    list = ip(["netns", "list"]);
  } catch {
    return removed;
  }
  for (const line of list.split("\n")) {
    const name = line.split(" ")[0];
    const m = /^zg-(\d+)-/.exec(name ?? "");
    if (!m || Number(m[1]) === process.pid || alive(Number(m[1]))) continue;
    killInside(name!);
    ipQuiet(["netns", "del", name!]);
    removed.push(name!);
  }
  for (const line of ip(["-o", "link", "show"]).split("\n")) {
    const m = /^\d+: (zg(\d+)[a-z]\d+)[@:]/.exec(line);
    if (m && Number(m[2]) !== process.pid && !alive(Number(m[2]))) ipQuiet(["link", "del", m[1]!]);
  }
  return removed;
}

/** SIGKILLs whatever still runs inside a namespace (processes a test did not stop). */
function killInside(netns: string): void {
  let pids: string;
  try {
    pids = ip(["netns", "pids", netns]);
  } catch {
    return;
  }
  for (const pid of pids.split("\n").filter(Boolean)) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
}

/** A /24 of 10.213.0.0/16 that no route of the root namespace uses, starting from one this pid picks. */
function freeSubnet(): number {
  const routes = ip(["-4", "route", "show", "table", "all"]);
  const start = (process.pid * 7 + labs * 31) % 250;
  for (let i = 0; i < 250; i++) {
    const x = ((start + i) % 250) + 1;
    if (!routes.includes(`10.213.${x}.`)) return x;
  }
  throw new Error("every 10.213.X.0/24 is in use by a route of the root namespace");
}

export class NetnsLab {
  /** The root namespace's (the test process's) address on the lab's /24: where a proxy in the test listens. */
  readonly gateway: string;
  /** The lab's /24, as a CIDR. */
  readonly network: string;
  /** The root namespace's veth onto the lab's switch (the only way into the lab from outside it). */
  readonly rootLink: string;
  private readonly hosts = new Map<string, LabHost>();
  private readonly procs = new Set<Proc>();
  private readonly made: { netns: string[]; links: string[] } = { netns: [], links: [] };

  private constructor(
    private readonly id: number,
    private readonly subnet: number,
    private readonly switchNetns: string,
  ) {
    this.gateway = `10.213.${subnet}.254`;
    this.network = `10.213.${subnet}.0/24`;
    this.rootLink = `zg${process.pid}r${id}`;
  }

  /**
   * Makes the switch and one namespace per label, each with loopback up and one address on the lab's
   * /24 (.1, .2, ... in order). On failure, what was made is removed before the error is thrown.
   */
  static async create(labels: string[]): Promise<NetnsLab> {
    const id = labs++;
    const lab = new NetnsLab(id, freeSubnet(), `zg-${process.pid}-${namespaces++}`);
    try {
      lab.addNetns(lab.switchNetns);
      ip(["-n", lab.switchNetns, "link", "add", "br0", "type", "bridge"]);
      ip(["-n", lab.switchNetns, "link", "set", "br0", "up"]);
      // The root namespace's leg: a veth whose far end is a port of the switch.
      const rootLink = lab.rootLink;
      lab.made.links.push(rootLink);
      ip(["link", "add", rootLink, "type", "veth", "peer", "name", "p0", "netns", lab.switchNetns]);
      ip(["-n", lab.switchNetns, "link", "set", "p0", "master", "br0", "up"]);
      ip(["addr", "add", `${lab.gateway}/24`, "dev", rootLink]);
      ip(["link", "set", rootLink, "up"]);
      labels.forEach((label, i) => lab.addHost(label, i + 1));
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return lab;
  }

  host(label: string): LabHost {
    const h = this.hosts.get(label);
    if (!h) throw new Error(`no host ${label} in this lab (${[...this.hosts.keys()].join(", ")})`);
    return h;
  }

  private addNetns(name: string): void {
    ip(["netns", "add", name]);
    this.made.netns.push(name);
    ip(["-n", name, "link", "set", "lo", "up"]);
  }

  private addHost(label: string, n: number): void {
    const netns = `zg-${process.pid}-${namespaces++}`;
    this.addNetns(netns);
    // Made in the root namespace (names there are unique by pid), then each end moved where it belongs.
    const hostEnd = `zg${process.pid}h${this.id * 100 + n}`;
    const switchEnd = `zg${process.pid}s${this.id * 100 + n}`;
    ip(["link", "add", hostEnd, "type", "veth", "peer", "name", switchEnd]);
    ip(["link", "set", hostEnd, "netns", netns]);
    ip(["link", "set", switchEnd, "netns", this.switchNetns]);
    ip(["-n", netns, "link", "set", hostEnd, "name", "eth0"]);
    ip(["-n", netns, "addr", "add", `10.213.${this.subnet}.${n}/24`, "dev", "eth0"]);
    ip(["-n", netns, "link", "set", "eth0", "up"]);
    ip(["-n", this.switchNetns, "link", "set", switchEnd, "master", "br0", "up"]);
    this.hosts.set(label, {
      label,
      netns,
      address: `10.213.${this.subnet}.${n}`,
      switchLink: switchEnd,
    });
  }

  /** Cuts a host off the switch: its link goes down, as if its cable were pulled. */
  cut(host: LabHost): void {
    ip(["-n", this.switchNetns, "link", "set", host.switchLink, "down"]);
  }

  /** Puts a cut host's link back up. */
  mend(host: LabHost): void {
    ip(["-n", this.switchNetns, "link", "set", host.switchLink, "up"]);
  }

  /**
   * Runs `command args` inside a host's namespace (`ip netns exec`, which execs it: the pid is the
   * command's), in a process group of its own so that stop() ends it and its children.
   */
  spawn(host: LabHost, command: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
    const child = spawn("ip", ["netns", "exec", host.netns, command, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal })),
    );
    const signalGroup = (signal: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // the group is gone
      }
    };
    const proc: Proc = {
      child,
      stdout: () => out,
      stderr: () => err,
      exited,
      async stop() {
        if (child.exitCode === null && child.signalCode === null) {
          const timer = setTimeout(() => signalGroup("SIGKILL"), 5000);
          signalGroup("SIGTERM");
          await exited;
          clearTimeout(timer);
        }
        // Children it left (executor processes, if any) go with the group.
        signalGroup("SIGKILL");
      },
    };
    this.procs.add(proc);
    void exited.then(() => this.procs.delete(proc));
    return proc;
  }

  /** Runs a short command inside a host's namespace to its end and returns its stdout (throws on failure). */
  run(host: LabHost, command: string, args: string[]): string {
    return execFileSync("ip", ["netns", "exec", host.netns, command, ...args], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 30_000,
    });
  }

  /** The zgrid CLI inside a host's namespace, with quiet JSON logs and no ~/.zgrid/tokens.txt. */
  spawnCli(host: LabHost, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
    return this.spawn(host, process.execPath, [CLI, ...args], {
      ZGRID_LOG_FORMAT: "json",
      ZGRID_NO_TOKENS_FILE: "1",
      ...env,
    });
  }

  /** Stops every process started here, then removes every namespace and link made: safe to call twice. */
  async destroy(): Promise<void> {
    await Promise.all([...this.procs].map((p) => p.stop()));
    for (const netns of this.made.netns) killInside(netns);
    for (const link of this.made.links) ipQuiet(["link", "del", link]);
    for (const netns of this.made.netns.reverse()) ipQuiet(["netns", "del", netns]);
    this.made.netns = [];
    this.made.links = [];
  }
}
