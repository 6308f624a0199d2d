/**
 * Users and permissions (issue 18 item 9, design §3.3): a users file maps tokens to users and roles;
 * a role grants a set of commands; a session belongs to the user who created it, and only that user
 * or an admin reads or changes it. A real server process on SQLite, real sockets.
 */
import assert from "node:assert/strict";
import { chmodSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, ErrorCode, ZgridError, type ZgridClient } from "../src/client/index.js";
import type { ConnectionInfo } from "../src/daemons/server.js";
import { parseUsers, UserDirectory } from "../src/daemons/users.js";
import {
  ANY_PORTS,
  removeDir,
  runCli,
  spawnServer,
  startServer,
  tempDir,
  waitFor,
  type Proc,
} from "./helpers.js";

const TOKENS = {
  ada: "ada-admin-token-0000000001",
  alice: "alice-submitter-token-0001",
  bob: "bob-submitter-token-000001",
  rita: "rita-reader-token-00000001",
  carol: "carol-submitter-token-0001",
};

const USERS = `# name  role       credentials
ada     admin      token=${TOKENS.ada}
alice   submitter  token=${TOKENS.alice}
bob     submitter  token=${TOKENS.bob}

rita    reader     token=${TOKENS.rita} curveKey=rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7
`;

/** Writes a users file as an operator would: private, replaced whole (a reader never sees half of it). */
function writeUsers(file: string, text: string): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

function denied(what: RegExp = /another user|may not run/): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof ZgridError, String(err));
    assert.equal(err.code, ErrorCode.PERMISSION_DENIED, err.message);
    assert.match(err.message, what);
    return true;
  };
}

const endpoint = (info: ConnectionInfo, port = info.port): string => `tcp://127.0.0.1:${port}`;

describe("users and permissions (users file)", () => {
  let proc: Proc;
  let info: ConnectionInfo;
  let dir: string;
  let usersFile: string;
  const clients: ZgridClient[] = [];
  const as = async (name: keyof typeof TOKENS, port?: number): Promise<ZgridClient> => {
    const c = await connect(endpoint(info, port), { token: TOKENS[name], user: name, timeoutMs: 10_000 });
    clients.push(c);
    return c;
  };
  let ada: ZgridClient;
  let alice: ZgridClient;
  let bob: ZgridClient;
  let rita: ZgridClient;

  before(async () => {
    dir = tempDir("zgrid-users-");
    usersFile = join(dir, "users");
    writeUsers(usersFile, USERS);
    ({ proc, info } = await spawnServer(["--users-file", usersFile]));
    [ada, alice, bob, rita] = await Promise.all([as("ada"), as("alice"), as("bob"), as("rita")]);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await proc?.stop();
    removeDir(dir);
  });

  it("auth.currentUser answers each caller's user, role and permissions", async () => {
    const a = await ada.currentUser();
    assert.deepEqual([a.user, a.role, a.permissions, a.fromUsersFile], ["ada", "admin", ["*"], true]);
    const s = await alice.currentUser();
    assert.equal(s.user, "alice");
    assert.equal(s.role, "submitter");
    assert.ok(s.permissions.includes("tasks.submit") && !s.permissions.includes("shutdown"));
    const r = await rita.currentUser();
    assert.equal(r.role, "reader");
    assert.ok(r.permissions.includes("sessions.list") && !r.permissions.includes("sessions.create"));
    // The name a request claims does not matter: the token names the user.
    const liar = await connect(endpoint(info), { token: TOKENS.bob, user: "ada", timeoutMs: 10_000 });
    clients.push(liar);
    assert.equal((await liar.currentUser()).user, "bob");
    // The server token stays an admin's (its user name is only claimed).
    const root = await connect(info.url, { user: "operator", timeoutMs: 10_000 });
    clients.push(root);
    const o = await root.currentUser();
    assert.deepEqual([o.user, o.role, o.fromUsersFile], ["operator", "admin", false]);
  });

  it("a reader reads lists, metrics and status, and may not create, submit or shut down", async () => {
    assert.ok(Array.isArray((await rita.listSessions()).items));
    assert.equal(typeof (await rita.health()).status, "string");
    const metrics = await as("rita", Number(new URL(info.metricsUrl!).port));
    assert.match(await metrics.prometheus(), /zgrid_requests_total/);
    const status = await as("rita", Number(new URL(info.statusUrl!).port));
    assert.equal(await status.ruok(), "imok");
    assert.ok((await status.getStatus()).version);
    await assert.rejects(status.shutdown(), denied(/user rita \(role reader\) may not run shutdown/));
    await assert.rejects(
      rita.createSession(),
      denied(/user rita \(role reader\) may not run sessions\.create/),
    );
    await assert.rejects(rita.shutdown(), denied(/may not run shutdown/));
    const s = await alice.createSession();
    await assert.rejects(rita.getSession(s), denied(/may not run sessions\.get/));
    await assert.rejects(
      rita.submitTasks(s, [{ payload: Buffer.from("x") }]),
      denied(/may not run tasks\.submit/),
    );
    assert.equal((await alice.countTasks()).SUBMITTED, 0, "the refused submission created nothing");
    assert.ok(
      !(await rita.listSessions()).items.some((x) => x.sessionId === s),
      "another's session is not listed",
    );
  });

  it("a submitter runs its own session, and may not run admin commands", async () => {
    const s = await alice.createSession({ partitionId: "nobody" });
    assert.equal((await alice.getSession(s)).owner, "alice");
    const [input] = await alice.createResults(s, [{ name: "in", data: Buffer.from("hello") }]);
    assert.deepEqual(await alice.downloadResult(input.resultId), Buffer.from("hello"));
    const [task] = await alice.submitTasks(s, [{ payload: Buffer.from("p") }]);
    assert.equal((await alice.getTask(task.taskId)).sessionId, s);
    // The records read to check her ownership answer these too.
    const output = task.expectedOutputIds[0];
    assert.deepEqual(await alice.getResultIds([task.taskId]), { [task.taskId]: [output] });
    assert.deepEqual(await alice.getOwnerTaskIds([output, input.resultId]), {
      [output]: task.taskId,
      [input.resultId]: null,
    });
    await assert.rejects(
      alice.getOwnerTaskIds([output, "r-nope"]),
      (err: ZgridError) => err.code === "NOT_FOUND",
    );
    await assert.rejects(alice.getResultIds(["t-nope"]), (err: ZgridError) => err.code === "NOT_FOUND");
    assert.ok((await alice.listSessions()).items.some((x) => x.sessionId === s));
    await alice.closeSession(s);
    await assert.rejects(alice.shutdown(), denied(/user alice \(role submitter\) may not run shutdown/));
    await alice.deleteSession(s);
  });

  it("a submitter cannot see or touch another's session, and nothing changes", async () => {
    const s = await alice.createSession({ partitionId: "nobody" });
    const [input] = await alice.createResults(s, [{ name: "in", data: Buffer.from("secret") }]);
    const [task] = await alice.submitTasks(s, [{ payload: Buffer.from("p") }]);
    const before = await alice.getTask(task.taskId);

    await assert.rejects(bob.getSession(s), denied());
    await assert.rejects(bob.downloadResult(input.resultId), denied());
    await assert.rejects(bob.downloadResults([input.resultId]), denied());
    await assert.rejects(bob.getResult(input.resultId), denied());
    await assert.rejects(bob.getTask(task.taskId), denied());
    await assert.rejects(bob.getResultIds([task.taskId]), denied());
    await assert.rejects(bob.getOwnerTaskIds([task.expectedOutputIds[0]]), denied());
    await assert.rejects(bob.cancelTasks([task.taskId]), denied());
    await assert.rejects(bob.cancelSession(s), denied());
    await assert.rejects(bob.pauseSession(s), denied());
    await assert.rejects(bob.closeSession(s), denied());
    await assert.rejects(bob.purgeSession(s), denied());
    await assert.rejects(bob.deleteSession(s), denied());
    await assert.rejects(bob.deleteResultsData([input.resultId]), denied());
    await assert.rejects(bob.waitResults([input.resultId]), denied());
    await assert.rejects(bob.createResults(s, [{ name: "x", data: Buffer.from("x") }]), denied());
    await assert.rejects(bob.submitTasks(s, [{ payload: Buffer.from("x") }]), denied());
    await assert.rejects(
      bob.subscribe(s, () => undefined),
      denied(),
    );
    // Not listed either.
    assert.ok(!(await bob.listSessions()).items.some((x) => x.sessionId === s));
    assert.equal((await bob.listTasks({ filter: { sessionId: s } })).total, 0);
    assert.equal((await bob.listResults({ filter: { sessionId: s } })).total, 0);
    assert.equal((await bob.countTasks({ sessionId: s })).SUBMITTED, 0);
    // Nor reached by a filter that names no session.
    const submitted = { or: [{ and: [{ field: "status", op: "eq" as const, value: "SUBMITTED" }] }] };
    assert.ok(!(await bob.listTasks({ filter: submitted })).items.some((t) => t.taskId === task.taskId));
    assert.equal((await bob.countTasks(submitted)).SUBMITTED, 0);
    const byFilter = await bob.cancelTasksWhere(submitted);
    assert.deepEqual(byFilter.cancelled, {}, "a filter cancels none of another's tasks");

    // Nothing changed: the session runs, the task is where it was, the data is there.
    const after = await alice.getSession(s);
    assert.equal(after.status, "RUNNING");
    assert.equal(after.taskCount, 1);
    assert.equal((await alice.getTask(task.taskId)).status, before.status);
    assert.deepEqual(await alice.downloadResult(input.resultId), Buffer.from("secret"));
    assert.equal((await alice.listResults({ filter: { sessionId: s } })).total, 3);
    assert.equal((await alice.countTasks({ sessionId: s })).SUBMITTED, 1);
    // An admin sees and may change every session.
    assert.equal((await ada.getSession(s)).owner, "alice");
    assert.ok((await ada.listSessions()).items.some((x) => x.sessionId === s));
    await ada.cancelSession(s);
    assert.equal((await alice.getSession(s)).status, "CANCELLED");
  });

  it("zgrid whoami prints the user, role and permissions", async () => {
    const r = await runCli(["whoami", "--url", `${endpoint(info)}?token=${TOKENS.rita}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^rita \(role reader, from the users file\)\npermissions: .*sessions\.list/);
    assert.doesNotMatch(r.stdout, /sessions\.create/);
    const json = await runCli(["whoami", "--json", "--url", `${endpoint(info)}?token=${TOKENS.ada}`]);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout).permissions, ["*"]);
  });

  it("refusals are counted per user and daemon in zgrid_requests_denied_total", async () => {
    const metrics = await as("ada", Number(new URL(info.metricsUrl!).port));
    const count = async (): Promise<number> => {
      const m = /^zgrid_requests_denied_total\{daemon="DEFAULT",user="bob"\} (\d+)/m.exec(
        await metrics.prometheus(),
      );
      return m ? Number(m[1]) : 0;
    };
    const before = await count();
    const s = await alice.createSession();
    await assert.rejects(bob.getSession(s), denied());
    await assert.rejects(bob.shutdown(), denied());
    // Counted before the reply left.
    assert.equal(await count(), before + 2);
    await alice.deleteSession(s);
  });

  it("SIGHUP reads the users file again: new users work, removed ones stop, a bad file keeps the old", async () => {
    const stderrBefore = proc.stderr().length;
    writeUsers(usersFile, USERS.replace(/^bob .*$/m, "") + `carol submitter token=${TOKENS.carol}\n`);
    proc.child.kill("SIGHUP");
    const carol = await connect(endpoint(info), { token: TOKENS.carol, timeoutMs: 5000 });
    clients.push(carol);
    await waitFor(
      async () => (await carol.currentUser().catch(() => null))?.user === "carol",
      15_000,
      "carol to be a user after SIGHUP",
    );
    const status = await as("carol", Number(new URL(info.statusUrl!).port));
    await waitFor(
      async () => (await status.ruok().catch(() => null)) === "imok",
      15_000,
      "the STATUS thread",
    );
    await assert.rejects(bob.currentUser(), (err: unknown) => {
      assert.ok(err instanceof ZgridError);
      return err.code === ErrorCode.UNAUTHENTICATED;
    });

    // A bad file is logged and changes nothing.
    writeUsers(usersFile, `ada admin token=${TOKENS.ada}\ncarol boss token=${TOKENS.carol}\n`);
    proc.child.kill("SIGHUP");
    await waitFor(
      () => /users file was not read again/.test(proc.stderr().slice(stderrBefore)),
      15_000,
      "the refusal of the bad file in the log",
    );
    assert.match(proc.stderr().slice(stderrBefore), /line 2: user carol needs a role/);
    assert.equal((await carol.currentUser()).role, "submitter");
    assert.equal((await alice.currentUser()).user, "alice");
  });
});

describe("users file at start", () => {
  it("each bad line is refused with a sentence naming it; a good file maps tokens and keys to users", () => {
    const bad: [string, RegExp][] = [
      [`ada admin token=${TOKENS.ada}\nbob boss token=${TOKENS.bob}`, /f line 2: user bob needs a role/],
      [`ada admin`, /line 1: user ada has no credential/],
      [`ada admin password=${TOKENS.ada}`, /line 1: unknown credential "password" of ada/],
      [
        `ada admin token=${TOKENS.ada}\nbob reader token=${TOKENS.ada}`,
        /line 2: the token of bob is another user's/,
      ],
      [`ada admin curveKey=short`, /line 1: the curveKey of ada must be a Curve public key/],
      [`a/b admin token=${TOKENS.ada}`, /line 1: "a\/b" is not a user name/],
      [`ada admin token=${TOKENS.ada} token=${TOKENS.bob}`, /line 1: user ada has two tokens/],
    ];
    for (const [text, message] of bad) assert.throws(() => parseUsers(text, "f"), message);
    const users = new UserDirectory(parseUsers(USERS, "f"));
    assert.equal(users.size, 4);
    assert.equal(users.byToken(TOKENS.rita)?.user, "rita");
    assert.equal(users.byToken(TOKENS.rita + "x"), null);
    assert.equal(users.byCurveKey("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7")?.role, "reader");
  });

  it("a bad users file stops the start with a sentence naming the line", async () => {
    const dir = tempDir("zgrid-users-bad-");
    try {
      const file = join(dir, "users");
      const start = (extra: string[] = []) =>
        runCli(["server", ...ANY_PORTS, "--data-dir", dir, "--users-file", file, ...extra]);
      writeUsers(file, `ada admin token=${TOKENS.ada}\n# fine\nbob submitter token=short\n`);
      let r = await start();
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        /users file .* line 3: the token of bob must be at least 16 printable characters/,
      );
      writeUsers(file, `ada admin token=${TOKENS.ada}\nada reader token=${TOKENS.rita}\n`);
      r = await start();
      assert.equal(r.code, 1);
      assert.match(r.stderr, /line 2: user ada is named twice/);
      writeUsers(file, `ada admin token=${TOKENS.ada}\n`);
      chmodSync(file, 0o644);
      r = await start();
      assert.equal(r.code, 1);
      assert.match(r.stderr, /open to other local users \(mode 644\).*chmod 600/);
      chmodSync(file, 0o600);
      r = await start(["--no-auth"]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /--users-file needs authentication/);
    } finally {
      removeDir(dir);
    }
  });

  it("without a users file the server token is an admin's, and sessions are no user's", async () => {
    const { server, info } = await startServer();
    const c = await connect(info.url, { user: "someone" });
    try {
      const me = await c.currentUser();
      assert.deepEqual(
        [me.user, me.role, me.permissions, me.fromUsersFile],
        ["someone", "admin", ["*"], false],
      );
      const s = await c.createSession();
      assert.equal((await c.getSession(s)).owner, null);
      assert.ok((await c.listSessions()).items.some((x) => x.sessionId === s));
    } finally {
      await c.close();
      await server.shutdown();
      removeDir(server.config.dataDir);
    }
  });

  it("a session's owner is stored: after a restart it is still its owner's alone", async () => {
    const dataDir = tempDir("zgrid-users-restart-");
    const usersFile = join(dataDir, "users");
    writeUsers(usersFile, USERS);
    const opts = { dataDir, usersFile, store: "sqlite" as const };
    let { server, info } = await startServer(opts);
    let alice = await connect(endpoint(info), { token: TOKENS.alice });
    const s = await alice.createSession();
    await alice.close();
    await server.shutdown();
    ({ server, info } = await startServer(opts));
    alice = await connect(endpoint(info), { token: TOKENS.alice });
    const bob = await connect(endpoint(info), { token: TOKENS.bob });
    try {
      assert.equal((await alice.getSession(s)).owner, "alice");
      await assert.rejects(bob.getSession(s), denied());
    } finally {
      await alice.close();
      await bob.close();
      await server.shutdown();
      removeDir(dataDir);
    }
  });
});
