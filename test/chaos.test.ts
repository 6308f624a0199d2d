/**
 * A bounded run of `npm run chaos` (bench/chaos.ts, issue 13): SIGKILL and restarts of the server and of
 * workers and SIGSTOPs, seeded, during a real workload. Every acknowledged task completes exactly once
 * with its output, and the database passes its integrity check. ZGRID_CHAOS_SEED replays another seed.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runChaos } from "../bench/chaos.js";

describe("chaos, bounded", () => {
  it(
    "six faults during 1,500 tasks: nothing lost, nothing completed twice, integrity ok",
    { timeout: 300_000 },
    async () => {
      const lines: string[] = [];
      const report = await runChaos({
        seed: Number(process.env.ZGRID_CHAOS_SEED ?? 11),
        rounds: 6,
        tasks: 1500,
        log: (line) => lines.push(line),
      });
      const said = `${JSON.stringify(report)}\n${lines.join("\n")}`;
      assert.equal(report.tasks_acknowledged, 1500, said);
      assert.equal(report.server_kills + report.worker_kills + report.stops, 6, said);
      assert.equal(report.lost, 0, said);
      assert.equal(report.wrong_output, 0, said);
      assert.equal(report.completed_twice, 0, said);
      assert.equal(report.tasks_checked, 1500, said);
      assert.equal(report.integrity, "ok", said);
    },
  );
});
