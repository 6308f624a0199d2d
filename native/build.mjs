// `npm install` runs this (package.json "install"): builds native/idle-memory, the addon through which an
// idle server gives its freed memory back to the system (src/gc.ts). The addon is optional: where it
// cannot be built (no compiler) the install goes on, says so, and the server keeps working; only its
// idle memory stays higher. Where the C library is not glibc the addon builds without malloc_trim.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const dir = join(dirname(fileURLToPath(import.meta.url)), "idle-memory");

function warn(why) {
  console.warn(`zgrid: the idle-memory addon was not built (${why}); an idle server keeps more memory.`);
}

// npm gives its lifecycle scripts the path of its own node-gyp; run by hand, use the one on PATH.
const gyp = process.env.npm_config_node_gyp;
const [cmd, args] = gyp ? [process.execPath, [gyp]] : ["node-gyp", []];
const r = spawnSync(cmd, [...args, "rebuild", "--directory", dir], {
  stdio: ["ignore", "pipe", "pipe"],
  encoding: "utf8",
});
if (r.error) warn(r.error.message);
else if (r.status !== 0)
  warn(`node-gyp exited ${r.status}: ${r.stderr.trim().split("\n").slice(-3).join(" / ")}`);
