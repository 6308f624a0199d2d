import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { capability, curveKeyPair } from "zeromq";
import { isZ85Key } from "../protocol/z85.js";

/** A CurveZMQ key pair, Z85 (40 characters each). */
export interface CurveKeys {
  publicKey: string;
  secretKey: string;
}

/** The file in the data dir that holds the server's key pair (mode 0600: it holds the secret key). */
export const SERVER_KEY_FILE = "curve-server.key";
/** The most keys an allow-list file may hold: a file read on every SIGHUP must stay bounded. */
export const MAX_ALLOWED_KEYS = 100_000;

/** Throws a sentence when this ZeroMQ build has no CURVE (zeromq.js's prebuilt binaries have it). */
export function requireCurve(): void {
  if (!capability.curve) {
    throw new Error(
      "--curve needs a ZeroMQ built with CURVE (libsodium or tweetnacl), and the zeromq module loaded here has none: " +
        "reinstall zeromq from its prebuilt binaries, or run without --curve",
    );
  }
}

/**
 * The server's key pair as `<dataDir>/curve-server.key` holds it (public key on the first line, secret
 * key on the second), null when there is no such file; throws a sentence when the file is not a pair.
 * Reads only: a probe beside the server (`zgrid ruok --data-dir`) uses it too.
 */
export function readServerKeys(dataDir: string): CurveKeys | null {
  const file = join(dataDir, SERVER_KEY_FILE);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new Error(`cannot read the server's CurveZMQ key pair ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const [publicKey, secretKey] = text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  if (!isZ85Key(publicKey) || !isZ85Key(secretKey)) {
    throw new Error(
      `${file} is not a CurveZMQ key pair (the public key, then the secret key, 40 Z85 characters each on a line): fix or remove it, and a new pair is made`,
    );
  }
  return { publicKey, secretKey };
}

/**
 * The server's key pair: read from `<dataDir>/curve-server.key`, else generated and written there,
 * owner-only. A key that outlives restarts keeps the connect URLs that clients and workers hold valid.
 */
export function loadServerKeys(dataDir: string): CurveKeys {
  const file = join(dataDir, SERVER_KEY_FILE);
  try {
    // A secret key other local users can read is anyone's: the file is made the owner's alone.
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const kept = readServerKeys(dataDir);
  if (kept !== null) return kept;
  const keys = curveKeyPair();
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  writeFileSync(file, `${keys.publicKey}\n${keys.secretKey}\n`, { mode: 0o600, flag: "wx" });
  return keys;
}

/**
 * An allow-list file (`--curve-clients`, `--curve-workers`): one Z85 public key a line, what follows it
 * on the line is a note (a name), blank lines and lines starting with `#` are skipped. Throws a sentence
 * naming the file and line of the first mistake: a list half read must not be used.
 */
export function readAllowList(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`cannot read the CurveZMQ allow-list ${file}: ${(err as Error).message}`, { cause: err });
  }
  const keys: string[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    const key = line.split(/\s+/, 1)[0];
    if (!isZ85Key(key)) {
      throw new Error(
        `${file} line ${i + 1}: "${String(key).slice(0, 60)}" is not a CurveZMQ public key (40 Z85 characters, as zgrid keygen prints)`,
      );
    }
    if (keys.length >= MAX_ALLOWED_KEYS) {
      throw new Error(`${file} holds more than ${MAX_ALLOWED_KEYS} keys, the most an allow-list may hold`);
    }
    keys.push(key);
  }
  return keys;
}
