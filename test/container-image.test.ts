/**
 * The container image the Dockerfile builds, run with podman. `.ci/run` builds it (on a stand-in for
 * node:20-slim, see deploy/stand-in-node-image.sh: no container registry is reachable here) and names
 * it in ZGRID_TEST_IMAGE; without that variable these tests are skipped.
 *
 * Containers use the host's network and bind free ports on 127.0.0.1 only.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { freePorts, runCli, waitFor } from "./helpers.js";

const IMAGE = process.env.ZGRID_TEST_IMAGE;

/** Runs podman to its end (bounded); fails the test with podman's own words when it fails. */
function podman(args: string[], timeoutMs = 60_000): string {
  const out = spawnSync("podman", args, { encoding: "utf8", timeout: timeoutMs });
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
  for (const name of names) spawnSync("podman", ["rm", "-f", "-v", "-t", "2", name], { timeout: 30_000 });
}

describe(
  "the container image",
  { skip: IMAGE ? false : "ZGRID_TEST_IMAGE is not set (.ci/run builds the image with podman)" },
  () => {
    it("runs as the node user (uid 1000) with /data a volume and the four ports exposed", () => {
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
    });

    it(
      "a server and a worker container run a task submitted from here; healthy; podman stop exits 0",
      { timeout: 120_000 },
      async () => {
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
          const logs = spawnSync("podman", ["logs", server], { encoding: "utf8", timeout: 30_000 });
          assert.match(logs.stderr, /"msg":"zgrid server stopped"/, "the server's JSON log on stderr");
        } finally {
          removeContainers([worker, server]);
        }
      },
    );
  },
);
