/**
 * What other local users can see (issue 14 item 11): the data dir is 0700 and the store's files and the
 * token files 0600 (a token file readable by others is tightened), local workers are not given the
 * worker token on their command line, and the server's banner prints the token once.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { EXAMPLE_APPS, removeDir, spawnServer, tempDir, waitFor } from "./helpers.js";

const mode = (path: string): number => statSync(path).mode & 0o777;

describe("files and command lines other local users can read", () => {
  it("keeps the data dir and its files to the owner, and the token off the workers' command lines", async () => {
    const parent = tempDir();
    const dir = join(parent, "data");
    // A token file left readable by others (an older zgrid, a hand-made file): tightened at start.
    mkdirSync(parent, { recursive: true });
    const { proc, info } = await spawnServer([
      "--data-dir",
      dir,
      "--local-workers",
      "1",
      "--app-path",
      EXAMPLE_APPS,
    ]);
    try {
      assert.equal(mode(dir), 0o700, "the data dir");
      for (const f of ["zgrid.db", "zgrid.db-wal", "token", "worker-token"]) {
        assert.equal(mode(join(dir, f)), 0o600, f);
      }
      const workerToken = new URL(info.workerUrl.replace("tcp:", "http:")).searchParams.get("token")!;
      let children: string[] = [];
      await waitFor(
        () => {
          try {
            children = execFileSync("pgrep", ["-P", String(proc.child.pid)], { encoding: "utf8" })
              .trim()
              .split("\n");
          } catch {
            children = [];
          }
          return children.length > 0 && children[0] !== "";
        },
        15_000,
        "the local worker",
      );
      for (const pid of children) {
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
        assert.ok(!cmdline.includes(workerToken), `the worker token is on the command line of ${pid}`);
      }
    } finally {
      await proc.stop();
    }
    // A token file made readable by others is the owner's alone after the next start.
    const token = join(dir, "token");
    execFileSync("chmod", ["0644", token]);
    const again = await spawnServer(["--data-dir", dir]);
    try {
      assert.equal(mode(token), 0o600);
      // The banner shows the client token once, in the connect URL; the worker URL has its own.
      await waitFor(() => again.proc.stdout().includes("status:"), 15_000, "the banner");
      const secret = readFileSync(token, "utf8").trim();
      const banner = again.proc.stdout();
      assert.equal(banner.split(secret).length - 1, 1, `the token is printed more than once:\n${banner}`);
      assert.match(banner, new RegExp(`connect URL: +tcp://[^ ]+\\?token=${secret}\n`));
    } finally {
      await again.proc.stop();
      removeDir(again.dir);
      removeDir(parent);
    }
  });
});
