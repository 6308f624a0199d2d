import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, it } from "node:test";

describe("the tests' temp dirs", () => {
  it("go when the test process that made them exits", () => {
    // A process that makes two dirs, puts a file in one, and exits: it prints where they were.
    const helpers = new URL("./helpers.js", import.meta.url).href;
    const script = `
      import { writeFileSync } from "node:fs";
      import { join } from "node:path";
      const { tempDir } = await import(${JSON.stringify(helpers)});
      const a = tempDir();
      const b = tempDir("zgrid-test-other-");
      writeFileSync(join(a, "zgrid.db"), "data");
      console.log(JSON.stringify([a, b]));
    `;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
    const dirs = JSON.parse(out.trim().split("\n").at(-1)!) as string[];
    assert.equal(dirs.length, 2);
    for (const dir of dirs) assert.equal(existsSync(dir), false, `${dir} is still there`);
  });
});
