/**
 * A wait that no worker can end says why: `zgrid hello` and `zgrid submit --wait`, whose tasks wait in
 * a partition no connected worker serves, print once, after about 2 s, that tasks wait there and how to
 * start a worker; they go on waiting and finish once one connects. Before, they waited in silence.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Server } from "../src/daemons/server.js";
import { EXAMPLE_APPS, spawnCli, spawnWorker, startServer, waitFor, type Proc } from "./helpers.js";

/** The hint's line naming `partition` (names of letters and dashes here) among those no worker serves. */
function hintFor(partition: string): RegExp {
  return new RegExp(
    `^waiting: tasks wait in partitions no worker serves: .*\\b${partition}\\b.*zgrid worker --connect`,
    "m",
  );
}

describe("a wait no worker can end says why", { concurrency: true }, () => {
  let server: Server;
  let url: string;
  const procs: Proc[] = [];

  before(async () => {
    ({ server } = await startServer({ heartbeatMs: 200 }));
    url = server.info!.url;
  });
  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await server.shutdown();
  });

  it("zgrid hello -p P: says no worker serves P, then prints the result once one does", async () => {
    const hello = spawnCli(["hello", "-e", url, "-p", "hint-hello", "-n", "10"]);
    procs.push(hello);
    await waitFor(() => hintFor("hint-hello").test(hello.stderr()), 30_000, "the hint on stderr");
    assert.match(hello.stdout(), /^Main tasks have been sent$/m);
    assert.equal(hello.child.exitCode, null, "it still waits");
    const worker = await spawnWorker(server, EXAMPLE_APPS, 1, ["--partition", "hint-hello"]);
    procs.push(worker);
    const { code } = await hello.exited;
    assert.equal(code, 0, hello.stderr());
    assert.match(hello.stdout(), /^Result : 45$/m);
    assert.equal(hello.stderr().match(/^waiting: /gm)?.length, 1, "said once");
  });

  it("zgrid submit --wait -p P: the hint once on stderr, the outputs once a worker serves P", async () => {
    const submit = spawnCli([
      "submit",
      "--url",
      url,
      "-a",
      "hello",
      "-m",
      "sum",
      "--args",
      "[[1, 2]]",
      "-n",
      "3",
      "-p",
      "hint-submit",
      "--wait",
    ]);
    procs.push(submit);
    await waitFor(() => hintFor("hint-submit").test(submit.stderr()), 30_000, "the hint on stderr");
    assert.equal(submit.child.exitCode, null, "it still waits");
    const worker = await spawnWorker(server, EXAMPLE_APPS, 1, ["--partition", "hint-submit"]);
    procs.push(worker);
    const { code } = await submit.exited;
    assert.equal(code, 0, submit.stderr());
    assert.match(submit.stdout(), /^3 completed, 0 failed in /m);
    assert.equal(submit.stderr().match(/^waiting: /gm)?.length, 1, "said once");
  });
});
