import { ErrorCode } from "../protocol/errors.js";
import type { AgentMsg, AgentReplyMsg } from "../protocol/worker-messages.js";

export type { AgentReplyMsg };
import type { AgentOp } from "./executor-messages.js";

/** How an agent call ended, as the relay hands it back. */
export interface AgentOutcome {
  ok: boolean;
  msg?: unknown;
  code?: string;
  error?: string;
  blobs: Buffer[];
}

/** An agent call of a running task, as the executor pool hands it to the host. */
export interface AgentRequest {
  taskId: string;
  op: AgentOp;
  args: Record<string, unknown>;
  blobs: Buffer[];
  /** The executor thread making the call: its calls are dropped when it is terminated. */
  owner: object;
  /** Delivers the outcome; called at most once, never after the call was dropped. */
  answer(outcome: AgentOutcome): void;
}

interface Pending {
  request: AgentRequest;
  deadline: number;
}

/**
 * The main-thread side of agent calls: numbers each call (the AGENT `rid`), sends it, and routes the
 * AGENT_REPLY back to the call. A call with no reply within `timeoutMs` (the server is unreachable, or
 * forgot this worker) fails with TIMEOUT instead of hanging its task.
 */
export class AgentRelay {
  // In insertion order, which is deadline order: every call has the same timeout.
  private readonly pending = new Map<number, Pending>();
  private nextRid = 1;
  /** The largest frame the server reads (its WELCOME's `maxFrameBytes`); a larger one is not sent. */
  maxFrameBytes = Infinity;

  constructor(
    private readonly send: (msg: AgentMsg, blobs: Buffer[]) => void,
    private readonly timeoutMs: number,
  ) {}

  /** Calls sent and not answered. */
  get size(): number {
    return this.pending.size;
  }

  request(request: AgentRequest, now = Date.now()): void {
    const big = request.blobs.find((b) => b.length > this.maxFrameBytes);
    if (big) {
      // The server would drop the connection that sent it: the call fails here, saying why.
      request.answer({
        ok: false,
        code: ErrorCode.RESOURCE_EXHAUSTED,
        error: `data of ${big.length} bytes is over the server's frame limit of ${this.maxFrameBytes} bytes (--max-frame-bytes)`,
        blobs: [],
      });
      return;
    }
    const rid = this.nextRid++;
    this.pending.set(rid, { request, deadline: now + this.timeoutMs });
    const { taskId, op, args, blobs } = request;
    this.send({ t: "AGENT", rid, taskId, op, args }, blobs);
  }

  /** Routes a reply to its call; false if no call waits for it (late, or dropped). */
  onReply(reply: AgentReplyMsg, blobs: Buffer[]): boolean {
    const p = this.pending.get(reply.rid);
    if (!p) return false;
    this.pending.delete(reply.rid);
    if (reply.ok === true) {
      p.request.answer({ ok: true, msg: reply.msg, blobs });
    } else {
      p.request.answer({
        ok: false,
        code: typeof reply.code === "string" ? reply.code : ErrorCode.INTERNAL,
        error: typeof reply.error === "string" ? reply.error : `agent call ${p.request.op} failed`,
        blobs: [],
      });
    }
    return true;
  }

  /** Fails the calls past their deadline (TIMEOUT); returns how many. */
  expire(now = Date.now()): number {
    let count = 0;
    for (const [rid, p] of this.pending) {
      if (p.deadline > now) break;
      this.pending.delete(rid);
      count++;
      p.request.answer({
        ok: false,
        code: ErrorCode.TIMEOUT,
        error:
          `no answer from the server to agent call ${p.request.op} within ${this.timeoutMs} ms ` +
          "(the connection to the server may be lost)",
        blobs: [],
      });
    }
    return count;
  }

  /** Fails every call in flight (the worker is stopping, or the server forgot it). */
  failAll(code: string, error: string): void {
    const calls = [...this.pending.values()];
    this.pending.clear();
    for (const p of calls) p.request.answer({ ok: false, code, error, blobs: [] });
  }

  /** Forgets the calls of a thread that was terminated: nobody is left to answer. */
  drop(owner: object): void {
    for (const [rid, p] of this.pending) if (p.request.owner === owner) this.pending.delete(rid);
  }
}
