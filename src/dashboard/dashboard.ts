import {
  createServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { connect, type ZgridClient } from "../client/client.js";
import { parseServerUrl } from "../client/url.js";
import { ZgridError } from "../protocol/errors.js";
import { DashboardAuth, LOGIN_COOKIE, loginId } from "./auth.js";
import { PAGE_HTML } from "./page.js";
import { PAGE_JS } from "./page-script.js";
import { SnapshotPoller } from "./poller.js";
import { SnapshotReader, type DashboardSnapshot } from "./snapshot.js";

export interface DashboardOptions {
  /** The DEFAULT daemon's URL, with its token (`tcp://HOST:PORT?token=...`). */
  url: string;
  /** The grid's token, when the caller knows it (null: the grid needs none); default: the URL's. */
  token?: string | null;
  /** The STATUS daemon's URL (per-partition throughput); null or absent: DEFAULT only. */
  statusUrl?: string | null;
  /** The dashboard's CurveZMQ key pair, for a grid whose URLs carry `serverKey=` (default: a new one). */
  curveKeyPair?: { publicKey: string; secretKey: string };
  /** Address to bind (default 127.0.0.1). */
  host?: string;
  /** Port (default 0: any free port). */
  port?: number;
  /** Time between two snapshots (default 1000 ms). */
  intervalMs?: number;
  /** Event streams open at once (default 32); one more is answered 503. */
  maxClients?: number;
  /** Largest request body (default 16 KiB); a larger one is answered 413. */
  maxBodyBytes?: number;
  /** Bytes a stream may have waiting to be sent before its viewer is dropped as too slow (default 1 MiB). */
  maxPendingBytes?: number;
  /** Told about viewers dropped, refreshes that failed (never a token). */
  log?: (message: string) => void;
}

/** A viewer of `/events`, and whether it may go on receiving (its login may end). */
interface Viewer {
  res: ServerResponse;
  allowed: () => boolean;
}

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};
const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * The web dashboard: one page, a JSON API and an event stream over node:http, reading the grid through a
 * client connection like any other client (design §4 commands only). Start it with {@link Dashboard.start}.
 */
export class Dashboard {
  private readonly viewers = new Set<Viewer>();
  private readonly poller: SnapshotPoller;
  private readonly maxClients: number;
  private readonly maxBodyBytes: number;
  private readonly maxPendingBytes: number;
  private readonly log: (message: string) => void;
  private lastError: string | undefined;

  private constructor(
    private readonly http: HttpServer,
    private readonly client: ZgridClient,
    private readonly statusClient: ZgridClient | null,
    private readonly auth: DashboardAuth,
    options: DashboardOptions,
  ) {
    this.maxClients = options.maxClients ?? 32;
    this.maxBodyBytes = options.maxBodyBytes ?? 16 * 1024;
    this.maxPendingBytes = options.maxPendingBytes ?? 1024 * 1024;
    this.log = options.log ?? (() => {});
    const reader = new SnapshotReader(client, statusClient);
    this.poller = new SnapshotPoller(reader, options.intervalMs ?? 1000, (snap) => this.push(snap));
    http.on("request", (req, res) => this.route(req, res));
  }

  /** Connects to the grid and listens; the page is at {@link url}. */
  static async start(options: DashboardOptions): Promise<Dashboard> {
    const token = options.token !== undefined ? options.token : (parseServerUrl(options.url).token ?? null);
    const timeoutMs = Math.max(5000, (options.intervalMs ?? 1000) * 3);
    const clientOptions = {
      timeoutMs,
      ...(token !== null ? { token } : {}),
      ...(options.curveKeyPair ? { curveKeyPair: options.curveKeyPair } : {}),
    };
    const client = await connect(options.url, clientOptions);
    const statusClient = options.statusUrl ? await connect(options.statusUrl, clientOptions) : null;
    try {
      // The grid must take the URL's token (or need none, when the URL has none): what the dashboard
      // lets viewers in with is only what it can itself read the grid with.
      await client.getConfig();
      await statusClient?.getConfig();
    } catch (err) {
      await Promise.allSettled([client.close(), statusClient?.close()]);
      throw new Error(`the dashboard cannot read the grid: ${(err as Error).message}`, { cause: err });
    }
    const http = createServer({ requestTimeout: 30_000, headersTimeout: 10_000 });
    const dashboard = new Dashboard(http, client, statusClient, new DashboardAuth(token), options);
    try {
      await new Promise<void>((resolve, reject) => {
        http.once("error", reject);
        http.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
          http.off("error", reject);
          resolve();
        });
      });
    } catch (err) {
      await dashboard.close();
      throw new Error(`cannot serve the dashboard on port ${options.port ?? 0}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return dashboard;
  }

  /** Whether viewers must log in (false when the grid runs with --no-auth). */
  get authEnabled(): boolean {
    return this.auth.enabled;
  }

  get port(): number {
    return (this.http.address() as AddressInfo).port;
  }

  /** The page's address, `http://HOST:PORT/` (never a token). */
  get url(): string {
    const { address, family } = this.http.address() as AddressInfo;
    const host = family === "IPv6" ? `[${address}]` : address;
    return `http://${host}:${this.port}/`;
  }

  /** Open event streams. */
  get viewerCount(): number {
    return this.viewers.size;
  }

  async close(): Promise<void> {
    this.poller.close();
    for (const v of this.viewers) v.res.end();
    this.viewers.clear();
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
    await Promise.allSettled([this.client.close(), this.statusClient?.close()]);
  }

  // ---- routing -------------------------------------------------------------------------------------

  private route(req: IncomingMessage, res: ServerResponse): void {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://dashboard");
    } catch {
      req.resume();
      return json(res, 400, { error: "not a request target" });
    }
    const key = `${req.method} ${url.pathname}`;
    // What needs no login: the page and its script (they hold no data), logging in and out.
    switch (key) {
      case "GET /":
        return void res
          .writeHead(200, {
            ...SECURITY_HEADERS,
            "content-type": "text/html; charset=utf-8",
            "content-security-policy": PAGE_CSP,
          })
          .end(PAGE_HTML);
      case "GET /app.js":
        return void res
          .writeHead(200, { ...SECURITY_HEADERS, "content-type": "text/javascript; charset=utf-8" })
          .end(PAGE_JS);
      case "GET /favicon.ico":
        return void res.writeHead(204, SECURITY_HEADERS).end();
      case "POST /login":
        return void this.withBody(req, res, (body) => this.login(body, res));
      case "POST /logout":
        this.auth.logout(req);
        return void res.writeHead(204, { ...SECURITY_HEADERS, "set-cookie": cookie("", 0) }).end();
    }
    if (!this.auth.authorized(req)) {
      // Nothing else is said to a caller without the token: not even whether the path exists.
      req.resume();
      return json(
        res,
        401,
        { error: "unauthenticated: log in with the grid's token" },
        {
          "www-authenticate": 'Bearer realm="zgrid dashboard"',
        },
      );
    }
    switch (key) {
      case "GET /events":
        return this.openStream(req, res);
      case "GET /api/snapshot":
        return void this.answer(res, () => this.poller.fresh());
      case "GET /api/tasks":
        return void this.answer(res, () => this.sessionTasks(url.searchParams));
      case "GET /api/task":
        return void this.answer(res, () =>
          this.client.getTask(required(url.searchParams.get("taskId"), "taskId")),
        );
      case "POST /api/sessions/cancel":
        return void this.withBody(req, res, (body) =>
          this.answer(res, () => this.client.cancelSession(required(field(body, "sessionId"), "sessionId"))),
        );
    }
    req.resume();
    json(res, 404, { error: `no ${key}` });
  }

  private login(body: unknown, res: ServerResponse): void {
    if (!this.auth.enabled) return void res.writeHead(204, SECURITY_HEADERS).end();
    const id = this.auth.login(field(body, "token"));
    if (id === null) return json(res, 401, { error: "wrong token" });
    res.writeHead(204, { ...SECURITY_HEADERS, "set-cookie": cookie(id, 12 * 3600) }).end();
  }

  /** A session's tasks, most recent first, for the page's task panel. */
  private async sessionTasks(params: URLSearchParams): Promise<unknown> {
    const filter: Record<string, unknown> = { sessionId: required(params.get("sessionId"), "sessionId") };
    const status = params.get("status");
    if (status) filter.status = status;
    return this.client.listTasks({ filter, sort: { field: "createdAt", direction: "desc" }, pageSize: 50 });
  }

  /** Replies with what `work` gives, or with the grid's error (a ZgridError's code chooses the status). */
  private async answer(res: ServerResponse, work: () => unknown): Promise<void> {
    try {
      json(res, 200, await work());
    } catch (err) {
      const code =
        err instanceof ZgridError ? err.code : err instanceof BadRequest ? "INVALID_ARGUMENT" : "INTERNAL";
      const status =
        { INVALID_ARGUMENT: 400, NOT_FOUND: 404, FAILED_PRECONDITION: 409, PERMISSION_DENIED: 403 }[
          code as string
        ] ?? 502;
      json(res, status, { error: (err as Error).message, code });
    }
  }

  /** Reads a JSON body of at most maxBodyBytes (413 past it, 400 if it is not JSON). */
  private withBody(req: IncomingMessage, res: ServerResponse, then: (body: unknown) => void): void {
    if (!/^application\/json\b/.test(req.headers["content-type"] ?? "")) {
      // Also what keeps other sites' plain forms out: they cannot send application/json.
      req.resume();
      return json(res, 415, { error: "send application/json" });
    }
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > this.maxBodyBytes) return tooLarge(req, res, this.maxBodyBytes);
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on("data", (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > this.maxBodyBytes) {
        refused = true;
        return tooLarge(req, res, this.maxBodyBytes);
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (refused) return;
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
      } catch {
        return json(res, 400, { error: "the body is not JSON" });
      }
      try {
        then(body);
      } catch (err) {
        json(res, 400, { error: (err as Error).message });
      }
    });
  }

  // ---- event stream --------------------------------------------------------------------------------

  private openStream(req: IncomingMessage, res: ServerResponse): void {
    if (this.viewers.size >= this.maxClients) {
      return json(res, 503, { error: `too many viewers (at most ${this.maxClients}): try again later` });
    }
    const id = loginId(req);
    const bearer = req.headers.authorization !== undefined;
    const viewer: Viewer = { res, allowed: () => bearer || this.auth.loggedIn(id) };
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      "content-type": "text/event-stream; charset=utf-8",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.write("retry: 2000\n\n");
    this.viewers.add(viewer);
    this.poller.watch();
    res.on("close", () => this.forget(viewer));
    res.on("error", () => this.forget(viewer));
    if (this.poller.latest) this.send(viewer, this.poller.latest);
  }

  /** A viewer gone or sent away: never written to again. */
  private forget(viewer: Viewer): void {
    if (this.viewers.delete(viewer)) this.poller.unwatch();
  }

  private push(snap: DashboardSnapshot): void {
    // Said once when refreshes start failing, once when they work again: not every second.
    if (snap.error !== this.lastError) this.log(`dashboard: ${snap.error ?? "refreshes work again"}`);
    this.lastError = snap.error;
    for (const v of [...this.viewers]) this.send(v, snap);
  }

  private send(viewer: Viewer, snap: DashboardSnapshot): void {
    const { res } = viewer;
    if (!viewer.allowed()) {
      // Logged out, or the login expired: the stream ends, and the page asks for the token again.
      this.forget(viewer);
      res.end("event: unauthorized\ndata: {}\n\n");
      return;
    }
    if (res.writableLength > this.maxPendingBytes) {
      // A viewer that does not read is dropped, not buffered for without bound; its browser reconnects.
      this.log(`dashboard: dropped a viewer ${res.writableLength} bytes behind`);
      this.forget(viewer);
      res.destroy();
      return;
    }
    res.write(`event: snapshot\ndata: ${JSON.stringify(snap)}\n\n`);
  }
}

class BadRequest extends Error {}

function required(value: unknown, name: string): string {
  if (typeof value !== "string" || value === "") throw new BadRequest(`${name} is required`);
  return value;
}

function field(body: unknown, name: string): unknown {
  return typeof body === "object" && body !== null ? (body as Record<string, unknown>)[name] : undefined;
}

function cookie(value: string, maxAgeSeconds: number): string {
  return `${LOGIN_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}`;
}

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) return;
  res
    .writeHead(status, { ...SECURITY_HEADERS, "content-type": "application/json; charset=utf-8", ...headers })
    .end(JSON.stringify(body));
}

function tooLarge(req: IncomingMessage, res: ServerResponse, max: number): void {
  json(res, 413, { error: `the body is larger than ${max} bytes` }, { connection: "close" });
  req.resume();
}
