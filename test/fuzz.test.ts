/**
 * Fuzzing every socket of a server process (issue 14): seeded and bounded. Each daemon (DEFAULT, METRICS,
 * STATUS) and the worker endpoint get 50,000 frames: random bytes, mutated valid requests, and
 * well-formed maps with random fields. After each burst of 1,000 the server must still answer `ruok`.
 * Every request that can be read as a map with an id is answered exactly once, with a documented code
 * and never INTERNAL; the server's memory stays bounded; it never exits.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { Packr, unpack } from "msgpackr";
import { Dealer } from "zeromq";
import { removeDir, spawnServer, waitFor, type Proc } from "./helpers.js";
import { seededRandom } from "../bench/seeded-random.js";

const SEED = Number(process.env.ZGRID_FUZZ_SEED ?? 20261204);
const BURSTS = 50;
const PER_BURST = 1000;
const TOKEN = "fuzz-token";
/** What an ERROR reply may carry for hostile input: a documented code, never INTERNAL. */
const EXPECTED_CODES = new Set([
  "BAD_REQUEST",
  "UNAUTHENTICATED",
  "UNKNOWN_COMMAND",
  "INVALID_ARGUMENT",
  "NOT_FOUND",
  "FAILED_PRECONDITION",
  "RESOURCE_EXHAUSTED",
]);
/** Commands a fuzzer with the right token may call: none of them changes anything or waits. */
const SAFE_COMMANDS = [
  "ruok",
  "getconfig",
  "getmemstatus",
  "getstatus",
  "getCmdMap",
  "getmemused",
  "versions",
  "partitions.list",
  "applications.list",
  "metrics",
  "sessions.list",
  "sessions.get",
  "tasks.list",
  "tasks.get",
  "tasks.count",
  "results.list",
  "results.get",
  "workers.list",
  "health",
];
const WORDS = [
  "v",
  "id",
  "cmd",
  "token",
  "user",
  "args",
  "t",
  "sessionId",
  "resultIds",
  "tasks",
  "filter",
  "page",
];

class Fuzzer {
  private readonly r: () => number;
  private readonly packr = new Packr({ useRecords: false, mapsAsObjects: true } as ConstructorParameters<
    typeof Packr
  >[0]);

  constructor(seed: number) {
    this.r = seededRandom(seed);
  }

  chance(p: number): boolean {
    return this.r() < p;
  }
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  bytes(max: number): Buffer {
    const b = Buffer.alloc(this.int(max + 1));
    for (let i = 0; i < b.length; i++) b[i] = this.int(256);
    return b;
  }

  /** A random msgpack-able value, nested at most `depth` deep. */
  value(depth = 3): unknown {
    switch (this.int(depth > 0 ? 12 : 9)) {
      case 0:
        return null;
      case 1:
        return this.chance(0.5);
      case 2:
        return this.pick([
          0,
          -1,
          1,
          255,
          65536,
          2 ** 31,
          -(2 ** 31),
          2 ** 53,
          -(2 ** 63),
          1.5,
          NaN,
          Infinity,
        ]);
      case 3:
        return this.pick([2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n]);
      case 4:
        return this.bytes(16).toString("latin1");
      case 5:
        return this.pick(["", "ruok", "default", "COMPLETED", "é☃", "x".repeat(300)]);
      case 6:
        return this.bytes(32);
      case 7:
        return new Date(this.int(2 ** 40));
      case 8:
        return this.int(1000);
      case 9:
      case 10: {
        const a: unknown[] = [];
        for (let i = this.int(5); i > 0; i--) a.push(this.value(depth - 1));
        return a;
      }
      default: {
        const m: Record<string, unknown> = {};
        for (let i = this.int(5); i > 0; i--)
          m[this.chance(0.7) ? this.pick(WORDS) : String(this.int(100))] = this.value(depth - 1);
        return m;
      }
    }
  }

  pack(value: unknown): Buffer {
    try {
      return Buffer.from(this.packr.pack(value));
    } catch {
      return this.bytes(8); // a value msgpackr cannot write (a BigInt past 64 bits): bytes instead
    }
  }

  /** 1–4 random edits of a buffer: flipped, inserted or deleted bytes, or a cut. */
  mutate(b: Buffer): Buffer {
    let out = Buffer.from(b);
    for (let n = 1 + this.int(4); n > 0 && out.length > 0; n--) {
      const at = this.int(out.length);
      switch (this.int(4)) {
        case 0:
          out[at] ^= 1 << this.int(8);
          break;
        case 1:
          out = Buffer.concat([out.subarray(0, at), this.bytes(3), out.subarray(at)]);
          break;
        case 2:
          out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1)]);
          break;
        default:
          out = out.subarray(0, at);
      }
    }
    return out;
  }
}

/** Resident memory of a process, in bytes. */
function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

interface Seen {
  replies: number;
  byId: Map<number, number>;
  badCodes: string[];
}

/** Reads every reply on `socket` until it closes, counting them by id and noting unexpected codes. */
function readReplies(socket: Dealer, seen: Seen): Promise<void> {
  return (async () => {
    for await (const frames of socket) {
      seen.replies++;
      let h: Record<string, unknown>;
      try {
        h = unpack(frames[1] ?? frames[0]) as Record<string, unknown>;
      } catch {
        seen.badCodes.push("an unreadable reply");
        continue;
      }
      if (typeof h.id === "number") seen.byId.set(h.id, (seen.byId.get(h.id) ?? 0) + 1);
      if (h.msgType === "ERROR") {
        const code = (h.msg as { code?: string } | undefined)?.code ?? (h as { code?: string }).code;
        if (!EXPECTED_CODES.has(String(code)))
          seen.badCodes.push(`${String(code)}: ${JSON.stringify(h.msg)}`);
      }
    }
  })().catch(() => {});
}

describe("fuzzing the server's sockets", { timeout: 600_000 }, () => {
  let proc: Proc;
  let dir: string;
  let urls: { name: string; endpoint: string }[];
  let statusEndpoint: string;
  let workerEndpoint: string;
  let workerToken: string;
  let pid: number;

  before(async () => {
    const s = await spawnServer(["--store", "memory", "--token", TOKEN, "--log-level", "fatal"]);
    proc = s.proc;
    dir = s.dir;
    pid = s.info.pid;
    const endpoint = (url: string) => url.split("?")[0];
    urls = [
      { name: "DEFAULT", endpoint: endpoint(s.info.url) },
      { name: "METRICS", endpoint: endpoint(s.info.metricsUrl!) },
      { name: "STATUS", endpoint: endpoint(s.info.statusUrl!) },
    ];
    statusEndpoint = endpoint(s.info.statusUrl!);
    workerEndpoint = endpoint(s.info.workerUrl);
    workerToken = new URL(s.info.workerUrl.replace("tcp:", "http:")).searchParams.get("token")!;
  });
  after(async () => {
    await proc.stop();
    removeDir(dir);
  });

  /** The server still answers ruok on STATUS: checked after every burst. */
  async function alive(): Promise<void> {
    assert.equal(proc.child.exitCode, null, `the server exited: ${proc.stderr().slice(-2000)}`);
    const s = new Dealer({ linger: 0, receiveTimeout: 30_000 });
    s.connect(statusEndpoint);
    try {
      await s.send([
        Buffer.alloc(0),
        new Packr({ useRecords: false }).pack({ v: 1, id: 1, cmd: "ruok", token: TOKEN }),
      ]);
      const [, header] = await s.receive();
      assert.equal((unpack(header) as { msg: unknown }).msg, "imok");
    } finally {
      s.close();
    }
  }

  for (const target of ["DEFAULT", "METRICS", "STATUS"]) {
    it(`${target}: 50,000 random, mutated and random-field frames; each readable request answered once`, async () => {
      const f = new Fuzzer(SEED + target.length);
      const { endpoint } = urls.find((u) => u.name === target)!;
      const socket = new Dealer({ linger: 0, sendHighWaterMark: 0, receiveHighWaterMark: 0 });
      socket.connect(endpoint);
      const seen: Seen = { replies: 0, byId: new Map(), badCodes: [] };
      const reading = readReplies(socket, seen);
      const rssBefore = rss(pid);
      // Ids far from any a mutation of the others can produce (a flipped bit of id 0 is 1, 2, 4...).
      let nextId = 1e12;
      const expected: number[] = [];
      try {
        for (let burst = 0; burst < BURSTS; burst++) {
          for (let i = 0; i < PER_BURST; i++) {
            const kind = f.int(10);
            if (kind < 3) {
              // Random frames, with or without the empty delimiter.
              const frames = [f.chance(0.5) ? Buffer.alloc(0) : f.bytes(4), f.bytes(64)];
              for (let k = f.int(3); k > 0; k--) frames.push(f.bytes(32));
              await socket.send(frames);
            } else if (kind < 6) {
              const valid = f.pack({ v: 1, id: 0, cmd: f.pick(SAFE_COMMANDS), token: TOKEN, args: {} });
              await socket.send([Buffer.alloc(0), f.mutate(valid)]);
            } else {
              // A map with an id of ours: it must be answered exactly once.
              const id = nextId++;
              const right = f.int(4) === 0;
              const header: Record<string, unknown> = {
                v: f.int(8) === 0 ? f.value(1) : 1,
                id,
                cmd: right
                  ? f.pick(SAFE_COMMANDS)
                  : f.int(3) === 0
                    ? f.value(1)
                    : f.pick([...SAFE_COMMANDS, "shutdown", "tasks.submit", "nope"]),
                user: f.pick(["alice", "bob", undefined]),
                args: f.int(5) === 0 ? f.value(2) : f.value(3),
              };
              const token = right ? TOKEN : f.pick([undefined, "wrong", f.value(1)]);
              if (token !== undefined) header.token = token;
              const blobs: Buffer[] = [];
              for (let k = f.int(3); k > 0; k--) blobs.push(f.bytes(64));
              await socket.send([Buffer.alloc(0), f.pack(header), ...blobs]);
              expected.push(id);
            }
          }
          await alive();
        }
        // Every readable request with an id of ours was answered, once.
        await waitFor(
          () => expected.every((id) => seen.byId.has(id)),
          60_000,
          `answers to ${expected.length} requests (${seen.byId.size} so far)`,
        );
        const twice = [...seen.byId].filter(([id, n]) => id >= 1e12 && n > 1);
        assert.deepEqual(twice.slice(0, 5), [], "requests answered more than once");
        assert.deepEqual(seen.badCodes.slice(0, 5), [], "replies with an undocumented code, or INTERNAL");
        const grown = (rss(pid) - rssBefore) / 2 ** 20;
        assert.ok(grown < 256, `the server grew by ${grown.toFixed(0)} MB while fuzzed`);
      } finally {
        socket.close();
        await reading;
      }
    });
  }

  it("the worker endpoint: 50,000 random and random-field messages; the server keeps serving", async () => {
    const f = new Fuzzer(SEED + 99);
    const types = ["READY", "HEARTBEAT", "STARTED", "DONE", "FETCH", "BYE", "AGENT", "NOPE"];
    const rssBefore = rss(pid);
    // A few connections, so that some of them become workers (a right token, a valid READY).
    const sockets = Array.from({ length: 4 }, () => {
      const s = new Dealer({ linger: 0, sendHighWaterMark: 0, receiveHighWaterMark: 0 });
      s.connect(workerEndpoint);
      return s;
    });
    const seen: Seen = { replies: 0, byId: new Map(), badCodes: [] };
    const reading = Promise.all(sockets.map((s) => readReplies(s, seen)));
    try {
      for (let burst = 0; burst < BURSTS; burst++) {
        for (let i = 0; i < PER_BURST; i++) {
          const s = sockets[f.int(sockets.length)];
          const kind = f.int(10);
          if (kind < 3)
            await s.send([f.chance(0.5) ? Buffer.alloc(0) : f.bytes(4), f.bytes(64), f.bytes(16)]);
          else {
            const header: Record<string, unknown> =
              f.int(5) === 0
                ? (f.value(3) as Record<string, unknown>)
                : {
                    t: f.pick(types),
                    v: f.int(6) === 0 ? f.value(1) : 1,
                    token: f.int(3) === 0 ? workerToken : "wrong",
                    workerId: f.pick(["w1", "w2", f.value(1)]),
                    partitions: f.int(2) === 0 ? ["default"] : f.value(2),
                    slots: f.pick([1, 0, -1, 2 ** 40, f.value(1)]),
                    prefetch: f.pick([0, 10, f.value(1)]),
                    held: f.int(3) === 0 ? f.value(2) : undefined,
                    columns: f.int(2) === 0,
                    taskIds: f.value(2),
                    statuses: f.value(2),
                    outputs: f.value(2),
                    results: f.value(3),
                    resultIds: f.value(2),
                    rid: f.value(1),
                    op: f.pick(["createResults", "uploadData", "submitTasks", "getData", f.value(1)]),
                    args: f.value(3),
                  };
            const frame = kind < 5 ? f.mutate(f.pack(header)) : f.pack(header);
            await s.send([Buffer.alloc(0), frame, ...(f.int(3) === 0 ? [f.bytes(64)] : [])]);
          }
        }
        await alive();
      }
      const grown = (rss(pid) - rssBefore) / 2 ** 20;
      assert.ok(
        grown < 256,
        `the server grew by ${grown.toFixed(0)} MB while its worker endpoint was fuzzed`,
      );
    } finally {
      for (const s of sockets) s.close();
      await reading;
    }
  });
});
