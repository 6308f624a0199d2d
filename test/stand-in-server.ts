/**
 * `StandInServer`: a ZeroMQ ROUTER that plays the server's worker endpoint (the real one lives in
 * src/daemons) just far enough to drive a real WorkerHost, answering AGENT messages as each test says;
 * and the small helpers the worker tests share. Not a test file itself.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { pack, unpack } from "msgpackr";
import { pino } from "pino";
import { Router } from "zeromq";
import { decode, encode } from "../src/protocol/codec.js";
import type {
  AgentMsg,
  DoneMsg,
  ServerToWorker,
  WireCompletion,
  WireTask,
  WorkerToServer,
} from "../src/protocol/worker-messages.js";
import type { AgentReplyMsg } from "../src/worker/agent-relay.js";

export const EXAMPLES = fileURLToPath(new URL("../../examples/apps/", import.meta.url));
export const FIXTURES = fileURLToPath(new URL("../../test/fixtures/apps/", import.meta.url));
export const quiet = pino({ level: "silent" });

export interface Received {
  peer: Buffer;
  msg: WorkerToServer;
  blobs: Buffer[];
  at: number;
}

/** A received AGENT message: a running task's agent call, to answer with {@link StandInServer.reply}. */
export type Agent = Received & { msg: AgentMsg };

/** A stand-in for the server's worker endpoint: records what workers send, sends what a test says. */
export class StandInServer {
  readonly router = new Router();
  readonly received: Received[] = [];
  private cursor = 0;
  private waiters: (() => void)[] = [];
  private heartbeats: NodeJS.Timeout | undefined;
  endpoint = "";

  /** Binds to `endpoint`, by default a free port on 127.0.0.1. */
  async start(endpoint = "tcp://127.0.0.1:*"): Promise<void> {
    await this.router.bind(endpoint);
    this.endpoint = this.router.lastEndpoint!;
    void this.loop();
  }

  private async loop(): Promise<void> {
    try {
      for await (const [peer, , header, ...blobs] of this.router) {
        this.received.push({ peer, msg: decode(header) as WorkerToServer, blobs, at: Date.now() });
        const waiters = this.waiters;
        this.waiters = [];
        for (const w of waiters) w();
      }
    } catch {
      // closed
    }
  }

  send(peer: Buffer, msg: ServerToWorker | AgentReplyMsg, blobs: Buffer[] = []): void {
    void this.router.send([peer, Buffer.alloc(0), encode(msg), ...blobs]);
  }

  /** Answers an AGENT message. */
  reply(call: Agent, fields: Omit<AgentReplyMsg, "t" | "rid">, blobs: Buffer[] = []): void {
    this.send(call.peer, { t: "AGENT_REPLY", rid: call.msg.rid, ...fields }, blobs);
  }

  /** Sends HEARTBEAT to `peer` every `ms`, as the real server does; stop with {@link silence}. */
  beat(peer: Buffer, ms: number): void {
    this.silence();
    this.heartbeats = setInterval(() => this.send(peer, { t: "HEARTBEAT" }), ms);
  }

  silence(): void {
    clearInterval(this.heartbeats);
  }

  /** The next message (after the ones already taken) of type `t`, waiting up to `timeoutMs`. */
  async next<T extends WorkerToServer["t"]>(
    t: T,
    timeoutMs = 3000,
  ): Promise<Received & { msg: Extract<WorkerToServer, { t: T }> }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.received.length) {
        const r = this.received[this.cursor++];
        if (r.msg.t === t) return r as Received & { msg: Extract<WorkerToServer, { t: T }> };
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`standInServer: no ${t} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Collects DONE results until every one of `taskIds` is in, with outputs resolved from the blobs. */
  async results(
    taskIds: string[],
    timeoutMs = 5000,
  ): Promise<Map<string, WireCompletion & { data?: Buffer }>> {
    const found = new Map<string, WireCompletion & { data?: Buffer }>();
    const deadline = Date.now() + timeoutMs;
    while (!taskIds.every((id) => found.has(id))) {
      const done = await this.next("DONE", Math.max(1, deadline - Date.now()));
      for (const r of (done.msg as DoneMsg).results) {
        found.set(r.taskId, { ...r, data: r.output === undefined ? undefined : done.blobs[r.output] });
      }
    }
    return found;
  }

  /** The output of task `taskId`, unpacked, once it is COMPLETED. */
  async output(taskId: string, timeoutMs = 5000): Promise<unknown> {
    const r = (await this.results([taskId], timeoutMs)).get(taskId)!;
    assert.equal(r.status, "COMPLETED", `${taskId}: ${r.status} ${r.error ?? ""}`);
    return r.data ? unpack(r.data) : undefined;
  }

  /** Skips what was received so far. */
  drain(): void {
    this.cursor = this.received.length;
  }

  close(): void {
    this.silence();
    this.router.close();
  }
}

/** A task of the example app "hello" (`fields` override), its payload to fetch unless `fields` has one. */
export function task(taskId: string, fields: Partial<WireTask> = {}): WireTask {
  return {
    taskId,
    sessionId: "session-1",
    payloadId: `payload-${taskId}`,
    dataDependencies: [],
    expectedOutputIds: [`output-${taskId}`],
    options: { applicationName: "hello" },
    attempt: 1,
    ...fields,
  };
}

/** A task payload calling `method(...args)`. */
export function payload(method: string, args: unknown[] = []): Buffer {
  return encode({ method, args: pack(args) });
}
