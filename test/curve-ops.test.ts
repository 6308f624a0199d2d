/**
 * CurveZMQ in operation (issue 14's loose ends): the container and Kubernetes probes work against a
 * `--curve` server as they stand (`zgrid ruok --data-dir`), ~/.zgrid/tokens.txt carries the server key,
 * `getconfig` says what security is in force without a key, and a client whose server came back with
 * another key fails with a sentence instead of timing out.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { curveKeyPair } from "zeromq";
import { connect, type ZgridClient } from "../src/client/client.js";
import { parseServerUrl } from "../src/client/url.js";
import { SERVER_KEY_FILE } from "../src/daemons/curve.js";
import type { Server } from "../src/daemons/server.js";
import { recordTokens } from "../src/daemons/tokens-file.js";
import { ErrorCode, ZgridError } from "../src/protocol/errors.js";
import {
  CLI,
  EXAMPLE_APPS,
  ROOT,
  freePorts,
  removeDir,
  runCli,
  spawnCli,
  spawnServer,
  startServer,
  tempDir,
  waitFor,
} from "./helpers.js";

const TOKEN = "curve-ops-token-0123456789abcdef";

function serverKeyOf(url: string): string | undefined {
  return parseServerUrl(url, "/nonexistent").serverKey;
}

/** A URL without its serverKey=, as a probe or an old script has it. */
function withoutKey(url: string): string {
  return url.replace(/&serverKey=[^&]*/, "");
}

async function rejection(p: Promise<unknown>): Promise<ZgridError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ZgridError, `a ZgridError, got ${String(err)}`);
    return err;
  }
  throw new Error("expected the request to fail");
}

/**
 * The shell command of a probe as the file writes it, pointed at this checkout's CLI and `dataDir`
 * (the image has them at /app/dist/src/cli/main.js and /data), run by `sh -c` as the container would.
 */
async function runProbe(
  command: string,
  dataDir: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; out: string }> {
  const line = command.replaceAll("/app/dist/src/cli/main.js", CLI).replaceAll("/data", dataDir);
  const child = spawn("sh", ["-c", line], {
    env: { ...process.env, ZGRID_LOG_FORMAT: "json", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  clearTimeout(timer);
  return { code, out };
}

/** The HEALTHCHECK's command of the Dockerfile, its continuation lines joined. */
function dockerHealthCommand(): string {
  const text = readFileSync(join(ROOT, "Dockerfile"), "utf8").replace(/\\\n\s*/g, " ");
  const m = /^HEALTHCHECK .*?\bCMD (.*)$/m.exec(text);
  assert.ok(m, "the Dockerfile has a HEALTHCHECK CMD");
  return m[1];
}

/** The `sh -c` commands of the server's exec probes in deploy/kubernetes/server.yaml. */
function kubernetesProbeCommands(): string[] {
  const text = readFileSync(join(ROOT, "deploy/kubernetes/server.yaml"), "utf8");
  const commands = [...text.matchAll(/^\s+- -c\n\s+- (.*)$/gm)].map((m) => m[1]);
  assert.equal(commands.length, 2, "a liveness and a readiness probe");
  return commands;
}

describe("CurveZMQ in operation", () => {
  it("the Dockerfile HEALTHCHECK and the Kubernetes probes, as written, say imok with and without --curve", async () => {
    const probes = [dockerHealthCommand(), ...kubernetesProbeCommands()];
    for (const curve of [true, false]) {
      // The server token from the environment (as the manifests give it) and, for the Dockerfile, also
      // none: the probe then reads the one the server generated in the data dir.
      for (const tokenFromEnv of [true, false]) {
        const env: NodeJS.ProcessEnv = tokenFromEnv ? { ZGRID_SERVER_TOKEN: TOKEN } : {};
        const { proc, info, dir } = await spawnServer(curve ? ["--curve"] : [], env);
        try {
          const statusPort = String(parseServerUrl(info.statusUrl!, "/nonexistent").port);
          const token = tokenFromEnv ? TOKEN : undefined;
          for (const probe of tokenFromEnv ? probes : probes.slice(0, 1)) {
            const command = probe.replaceAll("127.0.0.1:5557", `127.0.0.1:${statusPort}`);
            const r = await runProbe(command, dir, {
              ZGRID_STATUS_PORT: statusPort,
              ...(token ? { ZGRID_SERVER_TOKEN: token } : { ZGRID_SERVER_TOKEN: "" }),
            });
            assert.equal(r.code, 0, `curve ${curve}, ${command}: ${r.out}`);
            assert.match(r.out, /^imok$/m);
          }
        } finally {
          await proc.stop();
          removeDir(dir);
        }
      }
    }
  });

  it("zgrid ruok --data-dir: the server's key pair when the server requires Curve, even with --curve-clients; clear errors otherwise", async () => {
    const keysDir = tempDir();
    const clients = join(keysDir, "clients");
    writeFileSync(clients, `${curveKeyPair().publicKey} someone\n`);
    const { proc, info, dir } = await spawnServer(["--curve", "--curve-clients", clients]);
    try {
      const url = withoutKey(info.statusUrl!);
      const ruok = (args: string[]): ReturnType<typeof runCli> =>
        runCli(["ruok", "--url", url, "--timeout", "5000", ...args]);
      const ok = await ruok(["--data-dir", dir]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout.trim(), "imok");
      const without = await ruok([]);
      assert.equal(without.code, 1);
      assert.match(without.stderr, /requires CurveZMQ/);
      // A directory that is not this server's data dir: it says so.
      const elsewhere = await ruok(["--data-dir", keysDir]);
      assert.equal(elsewhere.code, 1);
      assert.match(elsewhere.stderr, /--data-dir \S+ holds no curve-server\.key .* data dir\?/);
      const missing = await ruok(["--data-dir", join(keysDir, "nope")]);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /--data-dir \S+nope is not a directory/);
      // A key file that is not a pair: a sentence naming it, not a stack trace.
      const broken = tempDir();
      writeFileSync(join(broken, SERVER_KEY_FILE), "not a key\n");
      const bad = await ruok(["--data-dir", broken]);
      removeDir(broken);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /curve-server\.key is not a CurveZMQ key pair/);
      // The connection-info file still works as before, and its serverKey= wins over the data dir.
      const viaInfo = await runCli(["ruok", "--connection-info", join(dir, "connection.json")], {
        ZGRID_CURVE_PUBLIC_KEY: readFileSync(join(dir, SERVER_KEY_FILE), "utf8").split("\n")[0],
        ZGRID_CURVE_SECRET_KEY: readFileSync(join(dir, SERVER_KEY_FILE), "utf8").split("\n")[1],
      });
      assert.equal(viaInfo.code, 0, viaInfo.stderr);
    } finally {
      await proc.stop();
      removeDir(dir);
      removeDir(keysDir);
    }
  });

  it("tokens.txt holds a --curve server's key after its token; a client given tcp://HOST:PORT uses both; older readers still get the token", async () => {
    const home = tempDir("zgrid-home-");
    const env = { HOME: home, ZGRID_NO_TOKENS_FILE: "" };
    const file = join(home, ".zgrid", "tokens.txt");
    const { proc, info, dir } = await spawnServer(["--curve", "--token", TOKEN], env);
    try {
      const serverKey = serverKeyOf(info.url)!;
      const lines = readFileSync(file, "utf8").trim().split("\n");
      for (const url of [info.url, info.metricsUrl!, info.statusUrl!]) {
        const { port } = parseServerUrl(url, "/nonexistent");
        assert.ok(lines.includes(`127.0.0.1:${port},${TOKEN},${serverKey}`), lines.join("\n"));
      }
      // How a reader that takes two fields (Arkouda's format, older zgrid clients) sees the line.
      const [, oldToken] = lines[0].split(",", 2);
      assert.equal(oldToken, TOKEN);
      const bare = `tcp://127.0.0.1:${info.port}`;
      assert.deepEqual(parseServerUrl(bare, file), {
        endpoint: bare,
        endpoints: [bare],
        host: "127.0.0.1",
        port: info.port,
        token: TOKEN,
        serverKey,
      });
      // A URL with a token of its own takes nothing from the file: no key from a line it did not use.
      assert.equal(parseServerUrl(`${bare}?token=other`, file).serverKey, undefined);
      for (const args of [
        ["sessions", "list", "--url", bare],
        ["status", "--url", bare],
      ]) {
        const r = await runCli(args, env);
        assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      }
      // The file's line without its key: the client cannot reach the server, and says why.
      writeFileSync(file, lines.map((l) => l.split(",", 2).join(",")).join("\n") + "\n", { mode: 0o600 });
      const refused = await runCli(["sessions", "list", "--url", bare], env);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /requires CurveZMQ/);
    } finally {
      await proc.stop();
      removeDir(dir);
      removeDir(home);
    }
  });

  it("recordTokens writes the key only when given one and replaces a line of the same address", () => {
    const dir = tempDir();
    try {
      const file = join(dir, "tokens.txt");
      const key = curveKeyPair().publicKey;
      recordTokens(["h:1", "h:2"], "tok-plain-0123456789", file);
      assert.equal(readFileSync(file, "utf8"), "h:1,tok-plain-0123456789\nh:2,tok-plain-0123456789\n");
      recordTokens(["h:2"], "tok-curve-0123456789", file, key);
      assert.equal(readFileSync(file, "utf8"), `h:1,tok-plain-0123456789\nh:2,tok-curve-0123456789,${key}\n`);
      assert.equal(parseServerUrl("tcp://h:2", file).serverKey, key);
      assert.equal(parseServerUrl("tcp://h:1", file).serverKey, undefined);
      // A third field that is not a key is no key (a line some other tool wrote).
      writeFileSync(file, "h:3,tok,not-a-key\n");
      assert.deepEqual(parseServerUrl("tcp://h:3", file), {
        endpoint: "tcp://h:3",
        endpoints: ["tcp://h:3"],
        host: "h",
        port: 3,
        token: "tok",
      });
    } finally {
      removeDir(dir);
    }
  });

  it("getconfig on every daemon says whether Curve and a users file are in force and how many keys and users, never a key", async () => {
    const dir = tempDir();
    const clients = join(dir, "clients");
    const usersFile = join(dir, "users");
    const listed = [curveKeyPair(), curveKeyPair()];
    writeFileSync(clients, listed.map((k) => k.publicKey).join("\n") + "\n");
    const aliceToken = "alice-token-0123456789abcdef";
    writeFileSync(
      usersFile,
      `alice admin token=${aliceToken}\nbob reader curveKey=${listed[1].publicKey}\n`,
      {
        mode: 0o600,
      },
    );
    let server: Server | null = null;
    try {
      const started = await startServer({ curve: true, curveClients: clients, usersFile, token: TOKEN });
      server = started.server;
      const { info } = started;
      const configs = async (): Promise<Record<string, unknown>[]> => {
        const out: Record<string, unknown>[] = [];
        for (const url of [info.url, info.metricsUrl!, info.statusUrl!]) {
          const c = await connect(url, { timeoutMs: 10_000, curveKeyPair: listed[0] });
          try {
            out.push(await c.call<Record<string, unknown>>("getconfig"));
          } finally {
            await c.close();
          }
        }
        return out;
      };
      for (const config of await configs()) {
        assert.equal(config.curve, true, String(config.daemon));
        assert.equal(config.curveClientKeys, 2);
        assert.equal(config.curveWorkerKeys, null, "any worker key");
        assert.equal(config.usersFile, true);
        assert.equal(config.users, 2);
        const text = JSON.stringify(config);
        for (const secret of [
          serverKeyOf(info.url)!,
          listed[0].publicKey,
          listed[1].publicKey,
          aliceToken,
          TOKEN,
        ])
          assert.equal(
            text.includes(secret),
            false,
            `${String(config.daemon)} getconfig reveals no key or token`,
          );
      }
      // Read again (SIGHUP): the counts follow, on the STATUS thread too.
      writeFileSync(clients, `${listed[0].publicKey}\n`);
      writeFileSync(usersFile, `alice admin token=${aliceToken}\n`, { mode: 0o600 });
      assert.equal(server.reloadCurveAllowLists(), true);
      assert.equal(server.reloadUsers(), true);
      for (const config of await configs()) {
        assert.equal(config.curveClientKeys, 1, String(config.daemon));
        assert.equal(config.users, 1, String(config.daemon));
      }
    } finally {
      await server?.shutdown();
      if (server) removeDir(server.config.dataDir);
      removeDir(dir);
    }
    const plain = await startServer({ token: TOKEN });
    try {
      const c = await connect(plain.info.statusUrl!, { timeoutMs: 10_000 });
      const config = await c.call<Record<string, unknown>>("getconfig").finally(() => c.close());
      assert.equal(config.curve, false);
      assert.equal(config.curveClientKeys, null);
      assert.equal(config.curveWorkerKeys, null);
      assert.equal(config.usersFile, false);
      assert.equal(config.users, null);
    } finally {
      await plain.server.shutdown();
      removeDir(plain.server.config.dataDir);
    }
  });

  it("a client whose server comes back with another key fails with UNAUTHENTICATED and a sentence; with the same key it goes on", async () => {
    const [port, workerPort, metricsPort, statusPort] = await freePorts(4);
    const dataDir = tempDir();
    const config = { curve: true, dataDir, token: TOKEN, port, workerPort, metricsPort, statusPort };
    let { server, info } = await startServer(config);
    let client: ZgridClient | null = null;
    try {
      client = await connect(info.url, { timeoutMs: 20_000 });
      assert.equal(await client.ruok(), "imok");

      // The same key again: the client reconnects and goes on (a restart is not a new key).
      await server.shutdown();
      ({ server, info } = await startServer(config));
      assert.equal(await client.ruok(), "imok", "the same key after a restart");

      // Another key: the handshakes fail from now on, and the request says why within its timeout.
      const oldKey = serverKeyOf(info.url);
      await server.shutdown();
      rmSync(join(dataDir, SERVER_KEY_FILE));
      ({ server, info } = await startServer(config));
      assert.notEqual(serverKeyOf(info.url), oldKey, "a new key pair was made");
      const err = await rejection(client.createSession());
      assert.equal(err.code, ErrorCode.UNAUTHENTICATED, err.message);
      assert.match(
        err.message,
        /came back with another key .* connect again with the URL the server prints now/,
      );
      assert.equal(server.scheduler.sessions.size, 0, "nothing was done");
      const again = await rejection(client.ruok());
      assert.equal(again.code, ErrorCode.UNAUTHENTICATED, "the connection stays failed");
      // The server's new URL works.
      const fresh = await connect(info.url, { timeoutMs: 10_000 });
      assert.equal(await fresh.ruok().finally(() => fresh.close()), "imok");
    } finally {
      await client?.close();
      await server.shutdown();
      removeDir(dataDir);
    }
  });

  it("a worker whose server comes back with another key stops with a sentence and exit 1", async () => {
    const [port, workerPort, metricsPort, statusPort] = await freePorts(4);
    const dataDir = tempDir();
    const config = { curve: true, dataDir, token: TOKEN, port, workerPort, metricsPort, statusPort };
    let { server, info } = await startServer(config);
    const worker = spawnCli([
      "worker",
      "--connect",
      info.workerUrl,
      "--app-path",
      EXAMPLE_APPS,
      "--slots",
      "1",
    ]);
    try {
      await waitFor(() => server.scheduler.workers.size === 1, 15_000, "the worker to connect");
      await server.shutdown();
      rmSync(join(dataDir, SERVER_KEY_FILE));
      ({ server, info } = await startServer(config));
      await waitFor(() => worker.child.exitCode !== null, 20_000, "the worker to stop");
      assert.equal(worker.child.exitCode, 1, worker.stderr() + worker.stdout());
      assert.match(
        worker.stderr() + worker.stdout(),
        /came back with another key .* workerUrl the server prints now/,
      );
      assert.equal(server.scheduler.workers.size, 0, "it never joined the new server");
    } finally {
      await worker.stop();
      await server.shutdown();
      removeDir(dataDir);
    }
  });
});
