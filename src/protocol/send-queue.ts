import type { Logger } from "../log.js";

/** The part of a zeromq.js socket a SendQueue needs. */
export interface FrameSocket {
  send(frames: Buffer[]): Promise<void>;
}

/**
 * zeromq.js allows one pending send per socket: every reply, event and batch of a socket goes through
 * one of these, which sends in order and never has two sends in flight.
 */
export class SendQueue {
  private queue: Buffer[][] = [];
  /** Called when a message cannot reach its peer (gone): message → callback. */
  private readonly onUnreachable = new Map<Buffer[], () => void>();
  private head = 0;
  private draining = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly socket: FrameSocket,
    private readonly log?: Logger,
    /**
     * A message ZeroMQ would not take (EAGAIN): its peer's queue is at the socket's send high-water
     * mark, the peer does not read. The message is dropped; this says so.
     */
    private readonly onDropped?: () => void,
  ) {}

  /** Messages not yet handed to ZeroMQ, counting the one being sent (waiting for a peer, say). */
  get pending(): number {
    return this.queue.length - this.head + (this.draining ? 1 : 0);
  }

  /** Queues a message; `unreachable` runs if the peer is gone (ROUTER sockets with mandatory). */
  send(frames: Buffer[], unreachable?: () => void): void {
    if (unreachable) this.onUnreachable.set(frames, unreachable);
    this.queue.push(frames);
    if (!this.draining) void this.drain();
  }

  /** Resolves once everything queued so far has been handed to ZeroMQ. */
  idle(): Promise<void> {
    if (!this.draining && this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async drain(): Promise<void> {
    this.draining = true;
    while (this.head < this.queue.length) {
      const frames = this.queue[this.head];
      this.queue[this.head++] = undefined as unknown as Buffer[];
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      const unreachable = this.onUnreachable.size > 0 ? this.onUnreachable.get(frames) : undefined;
      if (unreachable) this.onUnreachable.delete(frames);
      try {
        await this.socket.send(frames);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === "EHOSTUNREACH") unreachable?.();
        else if (code === "EAGAIN") this.onDropped?.();
        // A peer that went away (EHOSTUNREACH) or a socket closing under us: the message has nowhere to go.
        if (code !== "EHOSTUNREACH" && code !== "ENOTSOCK" && code !== "EAGAIN") {
          this.log?.warn({ err: (err as Error).message, code }, "send failed");
        }
      }
    }
    this.queue = [];
    this.head = 0;
    this.draining = false;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
