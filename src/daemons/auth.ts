import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { appendFileSync, chmodSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Role } from "./roles.js";
import type { UserDirectory } from "./users.js";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** 32 characters from a cryptographic source (design §3.3). */
export function generateToken(length = 32): string {
  const bytes = randomBytes(length * 2);
  let out = "";
  // Rejection sampling keeps every character equally likely.
  for (let i = 0; i < bytes.length && out.length < length; i++) {
    if (bytes[i] < 248) out += ALPHABET[bytes[i] % 62];
  }
  return out.length === length ? out : generateToken(length);
}

/**
 * The server token: given, else the last line of `<dataDir>/token`, else a new one appended to that file.
 * Returns where it came from too, for the start-up message.
 */
export function resolveToken(
  given: string | undefined,
  dataDir: string,
  fileName = "token",
): { token: string; source: string } {
  if (given) return { token: given, source: "the command line or environment" };
  const file = join(dataDir, fileName);
  try {
    // A token other local users can read is anyone's: the file is made the owner's alone.
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    const lines = readFileSync(file, "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean);
    if (lines.length > 0) return { token: lines[lines.length - 1], source: file };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const token = generateToken();
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  appendFileSync(file, token + "\n", { mode: 0o600 });
  return { token, source: `${file} (generated)` };
}

/** Who sent a request, as the token check found it. */
export interface Caller {
  /** The users file's name; without one (or with the server token), the name the request claims. */
  user: string;
  role: Role;
  /**
   * The name comes from the users file, so sessions this caller creates are recorded as its own. A
   * claimed name proves nothing: sessions created under it belong to no user (admins only).
   */
  verified: boolean;
}

/**
 * Compares tokens in constant time: both sides are hashed first, so their lengths leak nothing either.
 * The server token is an admin's; with a users file, each user's token is that user's, in its role.
 */
export class TokenCheck {
  private readonly digest: Buffer | null;

  /** `token` null: authentication is off and every request passes (as an admin). */
  constructor(
    token: string | null,
    private readonly users: UserDirectory | null = null,
  ) {
    this.digest = token === null ? null : createHash("sha256").update(token).digest();
  }

  get enabled(): boolean {
    return this.digest !== null;
  }

  accepts(token: unknown): boolean {
    return this.identify(token, "anonymous") !== null;
  }

  /** The caller this token authenticates, or null: refuse the request. */
  identify(token: unknown, claimedUser: string): Caller | null {
    if (this.digest === null) return { user: claimedUser, role: "admin", verified: false };
    if (typeof token !== "string") return null;
    const server = timingSafeEqual(this.digest, createHash("sha256").update(token).digest());
    const entry = this.users?.byToken(token) ?? null;
    if (entry) return { user: entry.user, role: entry.role, verified: true };
    return server ? { user: claimedUser, role: "admin", verified: false } : null;
  }
}
