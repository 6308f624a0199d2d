import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { appendFileSync, chmodSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

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

/** Compares tokens in constant time: both sides are hashed first, so their lengths leak nothing either. */
export class TokenCheck {
  private readonly digest: Buffer | null;

  /** `token` null: authentication is off and every request passes. */
  constructor(token: string | null) {
    this.digest = token === null ? null : createHash("sha256").update(token).digest();
  }

  get enabled(): boolean {
    return this.digest !== null;
  }

  accepts(token: unknown): boolean {
    if (this.digest === null) return true;
    if (typeof token !== "string") return false;
    return timingSafeEqual(this.digest, createHash("sha256").update(token).digest());
  }
}
