/**
 * `npm run test:stress`: the whole test suite, several times in a row, while CPU-bound processes compete
 * for the machine (one per core by default, like two `yes > /dev/null` on a 2-core machine). A suite
 * that passes here does not depend on the machine being idle. Prints one line per run and exits 1 if
 * any run failed.
 *
 *   node dist/bench/stress.js [--runs N] [--hogs N]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { intFlag, parse, UsageError } from "../src/cli/usage.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const USAGE = "usage: node dist/bench/stress.js [--runs N (default 5)] [--hogs N (default: CPU count)]";

let runs: number;
let hogs: number;
try {
  const { values } = parse(process.argv.slice(2), { runs: { type: "string" }, hogs: { type: "string" } });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  runs = intFlag(values.runs, "--runs", 1, 100) ?? 5;
  hogs = intFlag(values.hogs, "--hogs", 0, 64) ?? availableParallelism();
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  console.error(`stress: ${err.message}\n${USAGE}`);
  process.exit(2);
}

/** A process that only burns CPU until it is killed. */
function hog(): ChildProcess {
  return spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" });
}

function suite(): Promise<{ ok: boolean; summary: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--test", "--test-concurrency=2", "dist/test/"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "inherit"],
    });
    let tail = "";
    let all = "";
    const failures: string[] = [];
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      all += chunk;
      tail = (tail + chunk).slice(-4096);
      for (const line of chunk.split("\n")) if (/^not ok /.test(line)) failures.push(line);
    });
    child.on("exit", (code) => {
      const count = (name: string) => tail.match(new RegExp(`^# ${name} (\\d+)$`, "m"))?.[1];
      const summary = ["tests", "pass", "fail", "skipped"].map((k) => `${k} ${count(k) ?? "?"}`).join(", ");
      if (code !== 0) {
        // The whole TAP output of a failed run, for its error messages.
        const file = join(tmpdir(), `zgrid-stress-${process.pid}-${Date.now()}.tap`);
        writeFileSync(file, all);
        failures.push(`output in ${file}`);
      }
      resolve({
        ok: code === 0,
        summary: failures.length > 0 ? `${summary}; ${failures.join("; ")}` : summary,
      });
    });
  });
}

const competitors = Array.from({ length: hogs }, hog);
const stopHogs = () => competitors.forEach((c) => c.kill("SIGKILL"));
process.on("SIGINT", () => {
  stopHogs();
  process.exit(130);
});
let failed = 0;
try {
  for (let r = 1; r <= runs; r++) {
    const started = Date.now();
    const { ok, summary } = await suite();
    if (!ok) failed++;
    const seconds = ((Date.now() - started) / 1000).toFixed(0);
    console.log(
      `run ${r}/${runs} beside ${hogs} CPU-bound processes: ${ok ? "green" : "FAILED"} in ${seconds} s (${summary})`,
    );
  }
} finally {
  stopHogs();
}
process.exitCode = failed > 0 ? 1 : 0;
