/**
 * `zgrid server` records its token in ~/.zgrid/tokens.txt (`host:port,token` a line, mode 0600, as
 * Arkouda does), so that a client on the same machine needs only tcp://HOST:PORT (issue 15 item 7);
 * --no-tokens-file (ZGRID_NO_TOKENS_FILE) opts out. HOME is a temp dir in every test.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { freePort, removeDir, runCli, spawnServer, tempDir } from "./helpers.js";

describe("~/.zgrid/tokens.txt", () => {
  it("the server writes its line (0600, dir 0700), keeps the others, replaces its own; a client uses it", async () => {
    const home = tempDir("zgrid-home-");
    const env = { HOME: home, ZGRID_NO_TOKENS_FILE: "" };
    const file = join(home, ".zgrid", "tokens.txt");
    mkdirSync(join(home, ".zgrid"), { mode: 0o700 });
    writeFileSync(file, "otherhost:5555,keep-me\n", { mode: 0o600 });
    // A port below the ephemeral range, so that the second server can take it again.
    const port = await freePort();
    const { proc, info, dir } = await spawnServer(["--token", "first-token", "--port", String(port)], env);
    try {
      const line = `127.0.0.1:${info.port},first-token`;
      assert.ok(readFileSync(file, "utf8").split("\n").includes(line), readFileSync(file, "utf8"));
      assert.match(readFileSync(file, "utf8"), /^otherhost:5555,keep-me$/m);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(statSync(join(home, ".zgrid")).mode & 0o777, 0o700);
      // A URL with no token: the client finds it in the file.
      const r = await runCli(["sessions", "list", "--url", `tcp://127.0.0.1:${info.port}`], env);
      assert.equal(r.code, 0, r.stderr);
      const status = await runCli(["status", "--url", `tcp://127.0.0.1:${info.port}`], env);
      assert.equal(status.code, 0, status.stderr);
      // Without the file, the same URL is refused.
      const other = tempDir("zgrid-home-");
      const refused = await runCli(["sessions", "list", "--url", `tcp://127.0.0.1:${info.port}`], {
        HOME: other,
      });
      removeDir(other);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /UNAUTHENTICATED/);
    } finally {
      await proc.stop();
      removeDir(dir);
    }
    // A stale line for the same address is replaced, not added to.
    writeFileSync(file, `otherhost:5555,keep-me\n127.0.0.1:${info.port},stale\n`, { mode: 0o600 });
    const again = await spawnServer(["--token", "second-token", "--port", String(info.port)], env);
    try {
      const lines = readFileSync(file, "utf8").trim().split("\n");
      assert.ok(lines.includes(`127.0.0.1:${info.port},second-token`), lines.join("\n"));
      assert.ok(!lines.some((l) => l.endsWith(",stale")), lines.join("\n"));
      assert.ok(lines.includes("otherhost:5555,keep-me"));
    } finally {
      await again.proc.stop();
      removeDir(again.dir);
      removeDir(home);
    }
  });

  it("--no-tokens-file and ZGRID_NO_TOKENS_FILE=1 write nothing", async () => {
    for (const [args, env] of [
      [["--no-tokens-file"], { ZGRID_NO_TOKENS_FILE: "" }],
      [[], { ZGRID_NO_TOKENS_FILE: "1" }],
    ] as const) {
      const home = tempDir("zgrid-home-");
      const { proc, dir } = await spawnServer([...args], { ...env, HOME: home });
      try {
        assert.equal(existsSync(join(home, ".zgrid", "tokens.txt")), false, args.join(" "));
      } finally {
        await proc.stop();
        removeDir(dir);
        removeDir(home);
      }
    }
  });
});
