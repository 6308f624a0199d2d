/**
 * `zgrid demo`, the README's quick start: its progress and its summary tell the same story.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runCli } from "./helpers.js";

describe("zgrid demo", () => {
  it(
    "prints progress on the summary's clock: the last line's rate is the summary's",
    { timeout: 120_000 },
    async () => {
      const r = await runCli(["demo", "--tasks", "3000", "--batch", "500", "--slots", "2"], {}, 110_000);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /results:\s+3000 correct, 0 wrong, 0 missing/);
      assert.match(r.stderr, /^submitted 3000 tasks in \d+\.\d\d s$/m);
      // Before: the bar's clock started once every task was sent, and its rate was several times the
      // summary's (151515/s beside 13351 tasks/s end to end).
      const lines = r.stderr.split("\n").filter((l) => l.startsWith("running: "));
      assert.equal(lines.filter((l) => l.startsWith("running: 3000/3000")).length, 1, "one line of the end");
      const last = /^running: 3000\/3000 \(3000 done, 0 failed, 0 running, (\d+)\/s\)$/.exec(
        lines.at(-1) ?? "",
      );
      assert.ok(last, `the last progress line: ${lines.at(-1)}`);
      const summary = /time:\s+\d+\.\d\d s, (\d+) tasks\/s end to end/.exec(r.stdout);
      assert.ok(summary, r.stdout);
      assert.equal(last[1], summary[1], "the same rate");
    },
  );
});
