import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";

/** Where a server records its token for the clients of this machine (Arkouda's `~/.arkouda/tokens.txt`). */
export function defaultTokensFile(): string {
  return join(homedir(), ".zgrid", "tokens.txt");
}

/**
 * Records `token` for each `host:port` in the tokens file, one `host:port,token` line each, or
 * `host:port,token,serverKey` for a `--curve` server (its public key, so that a client here needs only
 * `tcp://HOST:PORT`; a reader that takes two fields, as older ones do, still gets the token). The line
 * of the same address is replaced, the others are kept. The directory is made 0700 and the file 0600:
 * the token is the key to the grid. Written to a temporary file and renamed, so a reader never sees
 * half of it.
 */
export function recordTokens(
  addresses: string[],
  token: string,
  file = defaultTokensFile(),
  serverKey?: string,
): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  let lines: string[] = [];
  try {
    lines = readFileSync(file, "utf8").split("\n");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const mine = new Set(addresses);
  const kept = lines.filter((l) => l.trim() !== "" && !mine.has(l.split(",", 1)[0].trim()));
  const entry = serverKey === undefined ? token : `${token},${serverKey}`;
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, [...kept, ...addresses.map((a) => `${a},${entry}`)].join("\n") + "\n", {
    mode: 0o600,
  });
  // An older file may have been made with looser bits: the mode of the new one is what counts.
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}
