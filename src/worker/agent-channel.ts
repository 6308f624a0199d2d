import { ErrorCode, ZgridError } from "../protocol/errors.js";
import {
  packBlobs,
  unpackBlobs,
  type AgentAnswer,
  type AgentCall,
  type AgentOp,
} from "./executor-messages.js";

/** What the server answered to an agent call that succeeded. */
export interface AgentResponse {
  msg: unknown;
  blobs: Buffer[];
}

interface PendingCall {
  seq: number;
  resolve: (r: AgentResponse) => void;
  reject: (err: Error) => void;
}

/**
 * The thread side of agent calls: posts each call to the pool (one message) and settles it when the
 * pool's answer comes back (one message). Calls are numbered per thread; the main thread maps them to
 * the AGENT/AGENT_REPLY exchange with the server.
 */
export class AgentChannel {
  private readonly pending = new Map<number, PendingCall>();
  private nextRid = 1;

  constructor(private readonly post: (msg: AgentCall, transfer: ArrayBuffer[]) => void) {}

  /** Calls in flight. */
  get size(): number {
    return this.pending.size;
  }

  call(
    seq: number,
    taskId: string,
    op: AgentOp,
    args: Record<string, unknown>,
    blobs: readonly Uint8Array[] = [],
  ): Promise<AgentResponse> {
    const rid = this.nextRid++;
    const { data, sizes } = packBlobs(blobs);
    return new Promise<AgentResponse>((resolve, reject) => {
      // Posted first: arguments that cannot be cloned throw here and reject the call, leaving nothing behind.
      this.post({ t: "agent", seq, taskId, rid, op, args, data, sizes }, data ? [data] : []);
      this.pending.set(rid, { seq, resolve, reject });
    });
  }

  /** Settles the call an answer is for; an answer for a forgotten call (task ended) is ignored. */
  onAnswer(answer: AgentAnswer): void {
    const call = this.pending.get(answer.rid);
    if (!call) return;
    this.pending.delete(answer.rid);
    if (answer.ok) {
      call.resolve({ msg: answer.msg, blobs: unpackBlobs(answer.data, answer.sizes) });
    } else {
      const code = (answer.code ?? ErrorCode.INTERNAL) as ErrorCode;
      call.reject(new ZgridError(code, answer.error ?? `agent call failed (${code})`));
    }
  }

  /**
   * Forgets the calls of task `seq`, which ended without awaiting them: they never settle, because a
   * rejection nobody handles would kill the thread (and the task running on it next).
   */
  forget(seq: number): void {
    if (this.pending.size === 0) return;
    for (const [rid, call] of this.pending) if (call.seq === seq) this.pending.delete(rid);
  }
}
