/**
 * A TCP proxy that injects network faults, for hosts whose kernel has no `tc netem` (issue 16): every
 * chunk it forwards waits `delayMs` (order kept, both ways), and resetAll() ends every connection through
 * it with a TCP reset, as a flaky link or a middlebox would. It runs in the test process, listening on the
 * lab's gateway address (test/netns.ts), so that what crosses it stays on the lab's veths.
 */
import { createServer, Socket, type Server } from "node:net";

export interface FaultProxyOptions {
  listenHost: string;
  /** 0 (the default): any free port; see {@link FaultProxy.port}. */
  listenPort?: number;
  targetHost: string;
  targetPort: number;
  /** Delay added to every chunk, each way, in ms (changeable later through `delayMs`). */
  delayMs?: number;
}

export interface FaultProxyStats {
  connections: number;
  resets: number;
  chunks: number;
  bytes: number;
}

/** One direction of a proxied connection: chunks are written `delayMs` after they were read, in order. */
class DelayedPipe {
  private readonly queue: { due: number; chunk: Buffer | null }[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly proxy: FaultProxy,
  ) {
    from.on("data", (chunk: Buffer) => {
      proxy.stats.chunks++;
      proxy.stats.bytes += chunk.length;
      this.push(chunk);
    });
    from.on("end", () => this.push(null));
    to.on("drain", () => from.resume());
  }

  private push(chunk: Buffer | null): void {
    this.queue.push({ due: Date.now() + this.proxy.delayMs, chunk });
    if (this.timer === undefined) this.flush();
  }

  private flush(): void {
    this.timer = undefined;
    const now = Date.now();
    while (this.queue.length > 0 && this.queue[0]!.due <= now) {
      const { chunk } = this.queue.shift()!;
      if (this.to.destroyed) return;
      if (chunk === null) this.to.end();
      else if (!this.to.write(chunk)) this.from.pause();
    }
    if (this.queue.length > 0) this.timer = setTimeout(() => this.flush(), this.queue[0]!.due - now);
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }
}

export class FaultProxy {
  delayMs: number;
  readonly stats: FaultProxyStats = { connections: 0, resets: 0, chunks: 0, bytes: 0 };
  private readonly open = new Set<{ client: Socket; upstream: Socket; pipes: DelayedPipe[] }>();

  private constructor(
    private readonly server: Server,
    private readonly opts: FaultProxyOptions,
  ) {
    this.delayMs = opts.delayMs ?? 0;
  }

  static async start(opts: FaultProxyOptions): Promise<FaultProxy> {
    const server = createServer({ allowHalfOpen: true });
    const proxy = new FaultProxy(server, opts);
    server.on("connection", (client) => proxy.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(opts.listenPort ?? 0, opts.listenHost, () => resolve());
    });
    return proxy;
  }

  get port(): number {
    const address = this.server.address();
    if (address === null || typeof address === "string") throw new Error("the proxy is not listening");
    return address.port;
  }

  /** Connections open now. */
  get connections(): number {
    return this.open.size;
  }

  private accept(client: Socket): void {
    this.stats.connections++;
    // Half-open: each way ends on its own, once what was sent before its end has been delivered (late).
    const upstream = new Socket({ allowHalfOpen: true });
    const conn = { client, upstream, pipes: [] as DelayedPipe[] };
    conn.pipes.push(new DelayedPipe(client, upstream, this), new DelayedPipe(upstream, client, this));
    this.open.add(conn);
    // A side that fails resets the other: its peer sees what a broken path shows it.
    const fail = (): void => {
      if (!this.open.delete(conn)) return;
      for (const p of conn.pipes) p.stop();
      for (const s of [client, upstream]) if (!s.destroyed) s.resetAndDestroy();
    };
    const closed = (): void => {
      if (!client.destroyed || !upstream.destroyed) return;
      this.open.delete(conn);
      for (const p of conn.pipes) p.stop();
    };
    for (const s of [client, upstream]) {
      s.on("error", fail);
      s.on("close", closed);
    }
    client.pause();
    upstream.connect(this.opts.targetPort, this.opts.targetHost, () => client.resume());
  }

  /** Ends every open connection with a TCP reset (RST) both ways; returns how many it ended. */
  resetAll(): number {
    const conns = [...this.open];
    for (const conn of conns) {
      this.open.delete(conn);
      for (const p of conn.pipes) p.stop();
      for (const s of [conn.client, conn.upstream]) if (!s.destroyed) s.resetAndDestroy();
    }
    this.stats.resets += conns.length;
    return conns.length;
  }

  /** Stops listening and ends every connection. */
  async close(): Promise<void> {
    this.resetAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
