import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { isRole, type Role } from "./roles.js";

/**
 * One user of the users file: a name, a role, and how it proves who it is: a token (checked on every
 * request), a Curve public key (applies with --curve, where the key is the credential), or both.
 * Plain data, so it crosses to the STATUS thread as it is.
 */
export interface UserEntry {
  user: string;
  role: Role;
  token?: string;
  curveKey?: string;
}

/** A users file that cannot be used: the message names the file and the line. */
export class UsersFileError extends Error {
  override readonly name = "UsersFileError";
}

/** The most users a file may name, and its largest size: the file is read whole, on start and SIGHUP. */
export const MAX_USERS = 10_000;
const MAX_FILE_BYTES = 4 * 2 ** 20;
/** A shorter token is guessed too easily. */
const MIN_TOKEN_LENGTH = 16;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
const TOKEN = /^[\x21-\x7e]+$/;
/** A Curve public key as ZeroMQ writes it: 40 characters of Z85. */
const CURVE_KEY = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

/**
 * Parses a users file: one user a line, `NAME ROLE CREDENTIAL...` separated by blanks, where a
 * credential is `token=TOKEN` or `curveKey=KEY`; blank lines and lines starting with `#` are skipped.
 * Any bad line refuses the whole file, naming the line.
 */
export function parseUsers(text: string, file: string): UserEntry[] {
  const users: UserEntry[] = [];
  const names = new Set<string>();
  const tokens = new Set<string>();
  const keys = new Set<string>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    const bad = (why: string): UsersFileError =>
      new UsersFileError(`users file ${file} line ${i + 1}: ${why}`);
    const [user, role, ...credentials] = line.split(/\s+/);
    if (!NAME.test(user))
      throw bad(`"${user.slice(0, 80)}" is not a user name (letters, digits, . _ @ -, at most 64)`);
    if (names.has(user)) throw bad(`user ${user} is named twice`);
    if (role === undefined || !isRole(role))
      throw bad(`user ${user} needs a role: admin, submitter or reader (got ${role ?? "nothing"})`);
    if (credentials.length === 0)
      throw bad(`user ${user} has no credential: add token=TOKEN or curveKey=KEY`);
    const entry: UserEntry = { user, role };
    for (const c of credentials) {
      const eq = c.indexOf("=");
      const kind = eq < 0 ? c : c.slice(0, eq);
      const value = eq < 0 ? "" : c.slice(eq + 1);
      if (kind === "token") {
        if (entry.token !== undefined) throw bad(`user ${user} has two tokens`);
        if (value.length < MIN_TOKEN_LENGTH || !TOKEN.test(value))
          throw bad(`the token of ${user} must be at least ${MIN_TOKEN_LENGTH} printable characters`);
        if (tokens.has(value)) throw bad(`the token of ${user} is another user's too`);
        tokens.add(value);
        entry.token = value;
      } else if (kind === "curveKey") {
        if (entry.curveKey !== undefined) throw bad(`user ${user} has two Curve keys`);
        if (!CURVE_KEY.test(value))
          throw bad(`the curveKey of ${user} must be a Curve public key: 40 characters of Z85`);
        if (keys.has(value)) throw bad(`the Curve key of ${user} is another user's too`);
        keys.add(value);
        entry.curveKey = value;
      } else {
        throw bad(`unknown credential "${kind.slice(0, 40)}" of ${user}: expected token=... or curveKey=...`);
      }
    }
    if (users.length >= MAX_USERS) throw bad(`more than ${MAX_USERS} users`);
    names.add(user);
    users.push(entry);
  }
  return users;
}

/**
 * Reads and parses a users file. Like the token file, it holds keys to the grid: a file other local
 * users may read or write is refused.
 */
export function readUsersFile(file: string): UserEntry[] {
  let mode: number;
  let size: number;
  try {
    ({ mode, size } = statSync(file));
  } catch (err) {
    throw new UsersFileError(`cannot read the users file ${file}: ${(err as Error).message}`);
  }
  if ((mode & 0o077) !== 0) {
    throw new UsersFileError(
      `the users file ${file} is open to other local users (mode ${(mode & 0o777).toString(8)}): it holds tokens; chmod 600 it`,
    );
  }
  if (size > MAX_FILE_BYTES)
    throw new UsersFileError(`the users file ${file} is ${size} bytes, more than ${MAX_FILE_BYTES}`);
  return parseUsers(readFileSync(file, "utf8"), file);
}

const digest = (token: string): Buffer => createHash("sha256").update(token).digest();

/** The users of the users file, looked up by token; replaced whole when the file is read again. */
export class UserDirectory {
  private entries: { entry: UserEntry; digest: Buffer | null }[] = [];

  constructor(users: readonly UserEntry[] = []) {
    this.replace(users);
  }

  get size(): number {
    return this.entries.length;
  }

  replace(users: readonly UserEntry[]): void {
    this.entries = users.map((entry) => ({
      entry,
      digest: entry.token === undefined ? null : digest(entry.token),
    }));
  }

  /** The user whose Curve public key this is, or null: for the ZAP handler of --curve (a key is no secret). */
  byCurveKey(key: string): UserEntry | null {
    for (const { entry } of this.entries) if (entry.curveKey === key) return entry;
    return null;
  }

  /**
   * The user whose token this is, or null. Every user's digest is compared, in constant time, whether
   * or not one matched already: the time taken says nothing of the token.
   */
  byToken(token: string): UserEntry | null {
    const d = digest(token);
    let found: UserEntry | null = null;
    for (const { entry, digest: mine } of this.entries) {
      if (mine !== null && timingSafeEqual(mine, d)) found = entry;
    }
    return found;
  }
}
