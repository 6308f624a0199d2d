import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { TokenCheck } from "../daemons/auth.js";

/** The cookie a successful `POST /login` sets: an opaque id, never the token itself. */
export const LOGIN_COOKIE = "zgrid_dashboard";

export interface DashboardAuthOptions {
  /** Logins kept at once; the oldest is forgotten past this. */
  maxLogins?: number;
  /** How long a login lasts. */
  loginTtlMs?: number;
}

/**
 * Who may see the dashboard: whoever shows the token the dashboard itself holds for the grid (so it grants
 * nothing that token does not). The browser shows it once, to `POST /login`, and gets an HttpOnly cookie
 * naming a login; scripts may send `Authorization: Bearer TOKEN` on every request instead. Tokens are
 * compared in constant time.
 */
export class DashboardAuth {
  private readonly check: TokenCheck;
  /** login id → when it expires; a Map keeps insertion order, so the first key is the oldest. */
  private readonly logins = new Map<string, number>();
  private readonly maxLogins: number;
  private readonly loginTtlMs: number;

  /** `token` null: the grid runs without authentication (--no-auth), and so does the dashboard. */
  constructor(token: string | null, options: DashboardAuthOptions = {}) {
    this.check = new TokenCheck(token);
    this.maxLogins = options.maxLogins ?? 256;
    this.loginTtlMs = options.loginTtlMs ?? 12 * 3600_000;
  }

  get enabled(): boolean {
    return this.check.enabled;
  }

  /** A new login id for a right token, null for a wrong one. */
  login(token: unknown): string | null {
    if (!this.check.enabled || !this.check.accepts(token)) return null;
    const id = randomBytes(32).toString("base64url");
    while (this.logins.size >= this.maxLogins) this.logins.delete(this.logins.keys().next().value!);
    this.logins.set(id, Date.now() + this.loginTtlMs);
    return id;
  }

  logout(req: IncomingMessage): void {
    const id = loginId(req);
    if (id) this.logins.delete(id);
  }

  /** Whether the request carries the token (Bearer) or a live login (cookie). */
  authorized(req: IncomingMessage): boolean {
    if (!this.check.enabled) return true;
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = /^Bearer (.+)$/.exec(header);
      return m !== null && this.check.accepts(m[1]);
    }
    return this.loggedIn(loginId(req));
  }

  /** Whether a login id (from {@link loginId}) is still valid: streams check it at every push. */
  loggedIn(id: string | undefined): boolean {
    if (!this.check.enabled) return true;
    if (id === undefined) return false;
    const expires = this.logins.get(id);
    if (expires === undefined) return false;
    if (expires < Date.now()) {
      this.logins.delete(id);
      return false;
    }
    return true;
  }
}

/** The login id a request's cookie names, if any. */
export function loginId(req: IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === LOGIN_COOKIE) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}
