import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { DataDirLockedError, lockDataDir } from "../src/store/lock.js";
import { removeDir, tempDir, waitFor } from "./helpers.js";

/** The compiled lock module, next to this compiled test: what the child processes import. */
const LOCK_URL = new URL("../src/store/lock.js", import.meta.url).href;

/**
 * Takes the lock on argv[1] and says "locked" or "refused <message>", then stays until killed (the unlock
 * function is dropped on purpose: the lock must stay held all the same). With argv[2] "race" it first
 * says "ready", reads a wall-clock time (ms) on stdin and spins until then, so that two of them try in
 * the same millisecond.
 */
const LOCKER = `
import { lockDataDir } from ${JSON.stringify(LOCK_URL)};
const take = () => {
  try {
    lockDataDir(process.argv[1]);
    process.stdout.write("locked\\n");
  } catch (err) {
    process.stdout.write("refused " + err.name + ": " + err.message + "\\n");
  }
};
if (process.argv[2] === "race") {
  process.stdout.write("ready\\n");
  process.stdin.once("data", (d) => {
    const at = Number(String(d).trim());
    while (Date.now() < at) {}
    take();
  });
} else take();
setInterval(() => {}, 1 << 30);
`;

interface Child {
  child: ChildProcess;
  out: () => string;
  exited: Promise<void>;
  kill9: () => Promise<void>;
}

const children = new Set<Child>();

function spawnLocker(dir: string, race = false): Child {
  const child = spawn(
    process.execPath,
    ["--input-type=module", "-e", LOCKER, dir, ...(race ? ["race"] : [])],
    {
      stdio: ["pipe", "pipe", "pipe"],
    },
  );
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const c: Child = {
    child,
    out: () => out + err,
    exited,
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
      children.delete(c);
    },
  };
  children.add(c);
  return c;
}

/** The child's first line once it has one (bounded). */
async function firstLine(c: Child, what: string): Promise<string> {
  await waitFor(() => c.out().includes("\n") || c.child.exitCode !== null, 15_000, what);
  return c.out().split("\n")[0]!;
}

describe("the data-dir lock", () => {
  const dirs: string[] = [];
  const newDir = (): string => {
    const d = tempDir("zgrid-lock-test-");
    dirs.push(d);
    return d;
  };
  after(async () => {
    for (const c of [...children]) await c.kill9();
    for (const d of dirs) removeDir(d);
  });

  it("is not blocked by an old-format lock file holding the pid of a live process (pid 1, this process)", async () => {
    for (const content of ["1", `${process.pid}\n`]) {
      const dir = newDir();
      const file = join(dir, "server.lock");
      writeFileSync(file, content);
      const unlock = lockDataDir(dir);
      try {
        assert.ok(existsSync(file), "the lock keeps the server.lock name");
        assert.equal(statSync(file).size, 0, "the old pid file was replaced by an empty lock database");
        // The replaced file really locks: another process is refused while this one holds it.
        const other = spawnLocker(dir);
        assert.match(await firstLine(other, "the other process's attempt"), /^refused DataDirLockedError: /);
        await other.kill9();
      } finally {
        unlock();
      }
      const again = spawnLocker(dir);
      assert.equal(await firstLine(again, "a lock after the unlock"), "locked");
      await again.kill9();
    }
  });

  it("refuses while another live process holds it, with a sentence; free at once after kill -9", async () => {
    const dir = newDir();
    const holder = spawnLocker(dir);
    assert.equal(await firstLine(holder, "the holder to lock"), "locked");
    assert.throws(
      () => lockDataDir(dir),
      (err: unknown) => {
        assert.ok(err instanceof DataDirLockedError);
        assert.match(
          err.message,
          new RegExp(
            `^the data dir .* is in use by another zgrid server \\(pid ${holder.child.pid}\\); ` +
              "stop it, or start this one with another --data-dir$",
          ),
        );
        return true;
      },
    );
    await holder.kill9();
    let unlock: (() => void) | null = null;
    await waitFor(
      () => {
        try {
          unlock = lockDataDir(dir);
          return true;
        } catch (err) {
          if (!(err instanceof DataDirLockedError)) throw err;
          return false;
        }
      },
      2000,
      "the lock of the killed holder to be free",
    );
    unlock!();
  });

  it("holds through a refused second attempt in the same process, and is free after unlock", async () => {
    const dir = newDir();
    const unlock = lockDataDir(dir);
    let unlocked = false;
    try {
      assert.throws(() => lockDataDir(dir), DataDirLockedError);
      assert.throws(() => lockDataDir(join(dir, ".")), DataDirLockedError);
      const other = spawnLocker(dir);
      assert.match(
        await firstLine(other, "another process's attempt"),
        new RegExp(`^refused DataDirLockedError: .*in use by another zgrid server \\(pid ${process.pid}\\)`),
      );
      await other.kill9();
      unlock();
      unlocked = true;
      unlock(); // idempotent
      assert.ok(!existsSync(join(dir, "server.lock.pid")), "the pid side file is removed on unlock");
      const next = spawnLocker(dir);
      assert.equal(await firstLine(next, "a lock after the unlock"), "locked");
      await next.kill9();
    } finally {
      if (!unlocked) unlock();
    }
  });

  it(
    "lets exactly one of two processes that try at the same moment take it, 20 rounds",
    { timeout: 180_000 },
    async () => {
      const dir = newDir();
      const file = join(dir, "server.lock");
      let lastWinner: number | undefined;
      for (let round = 0; round < 20; round++) {
        // Every other round starts from an old-format file with the pid of the last (killed) winner;
        // the others from what that winner left behind.
        if (round % 2 === 1 && lastWinner !== undefined) writeFileSync(file, `${lastWinner}\n`);
        const racers = [spawnLocker(dir, true), spawnLocker(dir, true)];
        try {
          for (const r of racers) assert.equal(await firstLine(r, "a racer to load"), "ready");
          const at = String(Date.now() + 100) + "\n";
          for (const r of racers) r.child.stdin!.write(at);
          await waitFor(
            () => racers.every((r) => r.out().split("\n").length > 2 || r.child.exitCode !== null),
            15_000,
            "both racers to report",
          );
          const results = racers.map((r) => r.out().split("\n")[1]!);
          const winners = racers.filter((_, i) => results[i] === "locked");
          assert.equal(winners.length, 1, `round ${round}: ${JSON.stringify(results)}`);
          assert.match(
            results.find((r) => r !== "locked")!,
            /^refused DataDirLockedError: the data dir .* is in use by another zgrid server/,
            `round ${round}`,
          );
          lastWinner = winners[0]!.child.pid;
        } finally {
          for (const r of racers) await r.kill9();
        }
      }
    },
  );
});
