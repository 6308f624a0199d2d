/**
 * The container image the Dockerfile builds, run with podman. The image is ZGRID_TEST_IMAGE when set
 * (`.ci/run` builds it on a stand-in for node:20-slim, see deploy/stand-in-node-image.sh: no container
 * registry is reachable there); otherwise, wherever podman works, these tests build it from this working
 * copy's Dockerfile themselves (`podman build --pull=never`, pulling node:20-slim first if it is not in
 * podman's local store; with CI's .ci/containers.conf if podman runs no container without it). Only when
 * that cannot be done are they skipped, and they say so, and why, in the run's output.
 *
 * Containers use the host's network and bind free ports on 127.0.0.1 only.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { ROOT, freePorts, runCli, waitFor } from "./helpers.js";

const BASE_IMAGE = "docker.io/library/node:20-slim";
const HOW_TO_RUN =
  "to run them, install podman (with runc) and either set ZGRID_TEST_IMAGE to an image built from the " +
  "Dockerfile, or make node:20-slim available to podman (`podman pull node:20-slim`, or " +
  "`bash deploy/stand-in-node-image.sh` where no registry is reachable) so that the tests build the " +
  "image themselves; .ci/run does all of this";

/** The image under test, once known (ZGRID_TEST_IMAGE, or built by `before`). */
let IMAGE: string | undefined = process.env.ZGRID_TEST_IMAGE || undefined;
/** The image this run built, removed afterwards. */
let builtHere: string | undefined;
/** Why the tests cannot run here, if they cannot. */
let skipReason: string | undefined;
/** The environment of every podman command: this one, or with CI's podman settings (see `before`). */
let podmanEnv: NodeJS.ProcessEnv = process.env;
/** The podman settings of CI's sandbox (runc, cgroupfs, a lower open-file limit). */
const CI_CONTAINERS_CONF = join(ROOT, ".ci/containers.conf");

/** Runs podman asynchronously to its end (bounded): its exit status and output. */
function podmanAsync(
  args: string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv = podmanEnv,
): Promise<{ status: number | null; output: string; error?: string }> {
  return new Promise((resolve) => {
    let output = "";
    const child = spawn("podman", args, { env, stdio: ["ignore", "pipe", "pipe"] });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.once("error", (err) => {
      clearTimeout(timer);
      resolve({ status: null, output, error: err.message });
    });
    child.once("close", (status, signal) => {
      clearTimeout(timer);
      resolve({ status, output, error: signal ? `killed by ${signal} after ${timeoutMs} ms` : undefined });
    });
  });
}

const lastLine = (text: string): string => text.trim().split("\n").pop() ?? "";

/** Why podman cannot be used here, or undefined when `podman info` works. */
async function podmanProblem(): Promise<string | undefined> {
  const info = await podmanAsync(["info", "--format", "{{.Host.OCIRuntime.Name}}"], 60_000);
  if (info.error?.includes("ENOENT")) return "podman is not installed";
  if (info.status !== 0)
    return `podman does not work here: podman info: ${info.error ?? lastLine(info.output)}`;
  return undefined;
}

/** Skips the test when the image cannot be had here, saying why and how to run it. */
function skipped(t: TestContext): boolean {
  if (skipReason === undefined) return false;
  t.skip(`${skipReason}; ${HOW_TO_RUN}`);
  return true;
}

/** Runs podman to its end (bounded); fails the test with podman's own words when it fails. */
function podman(args: string[], timeoutMs = 60_000): string {
  const out = spawnSync("podman", args, { env: podmanEnv, encoding: "utf8", timeout: timeoutMs });
  assert.equal(out.status, 0, `podman ${args.join(" ")}: ${out.stderr || out.error?.message}`);
  return out.stdout.trim();
}

/** The image's HEALTHCHECK test, e.g. ["CMD-SHELL", "node … ruok …"]. */
function healthCheck(): string[] {
  return (
    JSON.parse(podman(["image", "inspect", "--format", "{{json .HealthCheck}}", IMAGE!])) as {
      Test: string[];
    }
  ).Test;
}

function removeContainers(names: string[]): void {
  for (const name of names)
    spawnSync("podman", ["rm", "-f", "-v", "-t", "2", name], { env: podmanEnv, timeout: 30_000 });
}

describe("the container image", () => {
  before(
    async () => {
      if (IMAGE) return; // given: podman must work, or the tests fail
      skipReason = await podmanProblem();
      if (skipReason) return;
      if ((await podmanAsync(["image", "exists", BASE_IMAGE], 60_000)).status !== 0) {
        const pull = await podmanAsync(["pull", BASE_IMAGE], 300_000);
        if (pull.status !== 0) {
          skipReason =
            `the Dockerfile's base image ${BASE_IMAGE} is not in podman's local store and cannot be ` +
            `pulled (${pull.error ?? lastLine(pull.output)})`;
          return;
        }
      }
      // podman may work for `info` and still not run a container (a sandbox that refuses its default
      // rlimits, say): try one, as it is, then with CI's settings.
      const probe = ["run", "--rm", "--network", "host", BASE_IMAGE, "true"];
      let run = await podmanAsync(probe, 120_000);
      if (run.status !== 0 && !process.env.CONTAINERS_CONF && existsSync(CI_CONTAINERS_CONF)) {
        const withCiConf = { ...process.env, CONTAINERS_CONF: CI_CONTAINERS_CONF };
        const retry = await podmanAsync(probe, 120_000, withCiConf);
        if (retry.status === 0) {
          podmanEnv = withCiConf;
          run = retry;
        } else {
          const why = (r: typeof run): string => r.error ?? lastLine(r.output);
          run = {
            ...retry,
            error: `${why(run)}; and with CONTAINERS_CONF=${CI_CONTAINERS_CONF}: ${why(retry)}`,
          };
        }
      }
      if (run.status !== 0) {
        skipReason = `podman cannot run a container here: ${run.error ?? lastLine(run.output)}`;
        return;
      }
      const tag = `localhost/zgrid:test-${process.pid}`;
      const build = await podmanAsync(
        ["build", "--format", "docker", "--pull=never", "-t", tag, ROOT],
        30 * 60_000,
      );
      // The base image is there: a Dockerfile that does not build is a failure, not a reason to skip.
      assert.equal(
        build.status,
        0,
        `podman build of the Dockerfile failed: ${build.error ?? ""}\n${build.output.slice(-4000)}`,
      );
      IMAGE = builtHere = tag;
    },
    { timeout: 40 * 60_000 },
  );
  before(() => {
    if (skipReason)
      console.error(
        `\n*** SKIPPED: the container image tests did not run: ${skipReason}.\n*** ${HOW_TO_RUN}.\n`,
      );
  });
  after(() => {
    if (builtHere) spawnSync("podman", ["rmi", builtHere], { env: podmanEnv, timeout: 60_000 });
  });

  it("runs as the node user (uid 1000) with /data a volume and the four ports exposed", (t) => {
    if (skipped(t)) return;
    const config = JSON.parse(podman(["image", "inspect", "--format", "{{json .Config}}", IMAGE!])) as {
      User: string;
      Volumes: Record<string, unknown>;
      ExposedPorts: Record<string, unknown>;
      Entrypoint: string[];
    };
    assert.equal(config.User, "node");
    assert.deepEqual(Object.keys(config.Volumes), ["/data"]);
    for (const port of [5555, 5556, 5557, 5558]) assert.ok(`${port}/tcp` in config.ExposedPorts, `${port}`);
    assert.deepEqual(config.Entrypoint, ["node", "/app/dist/src/cli/main.js"]);
    assert.match(healthCheck().join(" "), /^CMD-SHELL .*\bruok\b/);
    assert.equal(podman(["run", "--rm", "--no-healthcheck", "--entrypoint", "id", IMAGE!, "-u"]), "1000");
    assert.equal(podman(["run", "--rm", "--no-healthcheck", IMAGE!, "--version"]), "0.1.0");
    // The idle server's addon (native/idle-memory) was built and copied: malloc_trim answers.
    const trim = `import("/app/dist/src/gc.js").then((m) => console.log(m.releaseFreeMemory()))`;
    const answer = podman(["run", "--rm", "--no-healthcheck", "--entrypoint", "node", IMAGE!, "-e", trim]);
    assert.match(answer, /^(true|false)$/);
  });

  it(
    "a server and a worker container run a task submitted from here; healthy; podman stop exits 0",
    { timeout: 120_000 },
    async (t) => {
      if (skipped(t)) return;
      const [port, workerPort, metricsPort, statusPort] = await freePorts(4);
      const tag = `zgrid-test-${process.pid}`;
      const server = `${tag}-server`;
      const worker = `${tag}-worker`;
      const token = "container-test-token";
      const workerToken = "container-test-worker-token";
      try {
        podman([
          "run",
          "-d",
          "--name",
          server,
          "--network",
          "host",
          // podman runs health checks from systemd timers, and there is no systemd here: the
          // test runs the check by hand below.
          "--no-healthcheck",
          "-e",
          `ZGRID_PORT=${port}`,
          "-e",
          `ZGRID_WORKER_PORT=${workerPort}`,
          "-e",
          `ZGRID_METRICS_PORT=${metricsPort}`,
          "-e",
          `ZGRID_STATUS_PORT=${statusPort}`,
          "-e",
          `ZGRID_SERVER_TOKEN=${token}`,
          "-e",
          `ZGRID_WORKER_TOKEN=${workerToken}`,
          IMAGE!,
          "server",
          "--host",
          "127.0.0.1",
          "--data-dir",
          "/data",
        ]);
        const url = `tcp://127.0.0.1:${port}?token=${token}`;
        await waitFor(
          async () => (await runCli(["ruok", "--url", url, "--timeout", "1000"])).code === 0,
          30_000,
          "ruok from the server container",
        );
        // The image's HEALTHCHECK command, run once in the container: it asks the STATUS daemon.
        const [kind, command] = healthCheck();
        assert.equal(kind, "CMD-SHELL");
        podman(["exec", server, "sh", "-c", command!]);

        podman([
          "run",
          "-d",
          "--name",
          worker,
          "--network",
          "host",
          "--no-healthcheck",
          IMAGE!,
          "worker",
          "--connect",
          `tcp://127.0.0.1:${workerPort}?token=${workerToken}`,
          "--app-path",
          "/app/examples/apps",
          "--slots",
          "1",
        ]);
        const hello = await runCli(["hello", "-e", url, "-n", "5"], {}, 60_000);
        assert.equal(hello.code, 0, hello.stderr);
        assert.match(hello.stdout, /Result : 10\b/);

        podman(["stop", "-t", "20", worker, server], 60_000);
        assert.equal(podman(["inspect", "--format", "{{.State.ExitCode}}", server]), "0");
        const logs = spawnSync("podman", ["logs", server], {
          env: podmanEnv,
          encoding: "utf8",
          timeout: 30_000,
        });
        assert.match(logs.stderr, /"msg":"zgrid server stopped"/, "the server's JSON log on stderr");
      } finally {
        removeContainers([worker, server]);
      }
    },
  );
});
