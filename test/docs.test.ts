/**
 * The documentation holds to the code and to the repository: links resolve to files inside the repo,
 * docs/worker.md names every export of zgrid/worker and every agent call, docs/client.md installs what
 * can be installed, the client examples import the package as a user's code does, and the license the
 * package declares is the one it ships.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import { createAgent } from "../src/worker/agent.js";
import { ROOT } from "./helpers.js";

const read = (path: string): string => readFileSync(join(ROOT, path), "utf8");
const MARKDOWN = ["README.md", ...readdirSync(join(ROOT, "docs")).map((f) => `docs/${f}`)].filter((f) =>
  f.endsWith(".md"),
);

/** The targets of a Markdown file's inline links that are not URLs or anchors of the same page. */
function relativeLinks(markdown: string): string[] {
  const links: string[] = [];
  for (const m of markdown.matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = m[1].split("#")[0];
    if (target && !/^[a-z]+:/i.test(target)) links.push(target);
  }
  return links;
}

describe("documentation and package metadata", () => {
  it("every relative link of README.md and docs/ points to a file inside the repo", () => {
    let checked = 0;
    for (const file of MARKDOWN) {
      for (const link of relativeLinks(read(file))) {
        const target = resolve(ROOT, dirname(file), link);
        const inside = relative(ROOT, target);
        assert.ok(!inside.startsWith(".."), `${file} links to ${link}, outside the repository`);
        assert.ok(existsSync(target), `${file} links to ${link}, which does not exist`);
        checked++;
      }
    }
    assert.ok(checked >= 10, `only ${checked} links found: the link pattern no longer matches`);
  });

  it("docs/worker.md names every export of zgrid/worker, the lifecycle, the agent calls and --watch", async () => {
    const doc = read("docs/worker.md");
    const exports = Object.keys(await import("../src/worker/index.js"));
    assert.ok(exports.includes("ServiceBase"), "the export list was read");
    // ErrorCode/ZgridError are the client's, documented in client.md.
    for (const name of exports.filter((n) => n !== "ErrorCode" && n !== "ZgridError"))
      assert.match(doc, new RegExp(`\\b${name}\\b`), `worker.md mentions ${name}`);
    for (const fn of ["createService", "enterSession", "call", "leaveSession", "destroyService"])
      assert.match(doc, new RegExp(`\`${fn}\\(`), `worker.md shows ${fn}(...)`);
    const agent = createAgent({
      taskId: "t",
      sessionId: "s",
      expectedOutputIds: [],
      dataDependencies: [],
      attempt: 1,
    });
    const calls = Object.getOwnPropertyNames(Object.getPrototypeOf(agent)).filter(
      (n) => n !== "constructor" && n !== "close",
    );
    assert.ok(calls.length >= 5, `agent calls found: ${calls.join(", ")}`);
    for (const call of calls)
      assert.match(doc, new RegExp(`\`${call}\\(`), `worker.md documents agent.${call}`);
    assert.match(doc, /--watch/);
    assert.match(read("README.md"), /\]\(docs\/worker\.md\)/, "the README links docs/worker.md");
  });

  it("docs/client.md installs from a clone or a tarball, not from the registry", () => {
    const doc = read("docs/client.md");
    assert.doesNotMatch(doc, /npm install zgrid\b/, "zgrid is not published: npm install zgrid fails");
    assert.match(doc, /npm pack/);
    assert.match(doc, /npm install \/path\/to\/zgrid\/zgrid-[\d.]+\.tgz/);
  });

  it("the client examples import zgrid/client, never the source tree", () => {
    const pkg = JSON.parse(read("package.json")) as { dependencies: Record<string, string> };
    const dependencies = Object.keys(pkg.dependencies);
    const dir = join(ROOT, "examples/clients");
    const files = readdirSync(dir).filter((f) => f.endsWith(".ts"));
    assert.ok(files.length >= 4);
    for (const f of files) {
      const source = readFileSync(join(dir, f), "utf8");
      const specifiers = [...source.matchAll(/^\s*(?:import|export)\b[^;]*?from\s+"([^"]+)"/gms)].map(
        (m) => m[1],
      );
      assert.ok(specifiers.includes("zgrid/client"), `${f} imports zgrid/client`);
      for (const s of specifiers)
        assert.ok(
          s === "zgrid/client" || s.startsWith("node:") || dependencies.includes(s),
          `${f} imports ${s}: only zgrid/client, Node's modules and zgrid's own dependencies`,
        );
    }
  });

  it("LICENSE is the Apache License 2.0 that package.json declares", () => {
    const pkg = JSON.parse(read("package.json")) as { license: string; files: string[] };
    assert.equal(pkg.license, "Apache-2.0");
    const license = read("LICENSE");
    assert.match(license, /^\s*Apache License\s+Version 2\.0, January 2004/);
    assert.match(license, /END OF TERMS AND CONDITIONS/);
    assert.ok(pkg.files.includes("LICENSE") && pkg.files.includes("dist/examples"));
  });
});
