/**
 * Filters as ArmoniK has them (issue 18 item 4): an OR of AND clauses of {field, op, value} on the
 * records' fields, their task options and the user's own options, for tasks.list / count / cancel,
 * results.list and sessions.list; sorting on any field; against a real server with the SQLite store.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect, type ZgridClient } from "../src/client/client.js";
import { parseFilterText } from "../src/client/filter-text.js";
import type { Filter, FilterCondition, TaskOptions } from "../src/client/types.js";
import { Server } from "../src/daemons/server.js";
import type { ServerConfig } from "../src/daemons/config.js";
import { createLogger } from "../src/log.js";
import { runCli, testConfig } from "./helpers.js";

const where = (...and: FilterCondition[]): Filter => ({ or: [{ and }] });
const cond = (field: string, op: FilterCondition["op"], value: unknown): FilterCondition =>
  ({ field, op, value }) as FilterCondition;

function rejectsWith(code: string, p: Promise<unknown>, mentions?: RegExp): Promise<void> {
  return assert.rejects(p, (err: Error & { code?: string }) => {
    assert.equal(err.code, code, err.message);
    if (mentions) assert.match(err.message, mentions);
    return true;
  });
}

describe("filters", () => {
  let config: ServerConfig;
  let server: Server;
  let client: ZgridClient;
  let sessionId: string;
  let other: string;
  /** t[0..4] of `sessionId`, in submission order. */
  const t: string[] = [];
  let missing: string;

  const payload = Buffer.from("x");
  const submit = async (sid: string, options: TaskOptions, extra: { dataDependencies?: string[] } = {}) =>
    (await client.submitTasks(sid, [{ payload, taskOptions: options, ...extra }]))[0].taskId;

  before(async () => {
    config = testConfig();
    server = new Server(config, createLogger("silent"));
    await server.start();
    client = await connect(server.info!.url, { timeoutMs: 60_000 });
    sessionId = await client.createSession({ priority: 2 });
    other = await client.createSession({ priority: 7, options: { team: "blue" } });
    [{ resultId: missing }] = await client.createResults(sessionId, [{ name: "never-uploaded" }]);
    t.push(await submit(sessionId, { priority: 1, applicationName: "alpha", options: { color: "red" } }));
    t.push(await submit(sessionId, { priority: 3, applicationName: "beta", options: { color: "blue" } }));
    t.push(
      await submit(sessionId, {
        priority: 5,
        applicationName: "alphabet",
        options: { color: "red", size: "L" },
      }),
    );
    // Waits for a result nobody uploads: PENDING.
    t.push(
      await submit(sessionId, { priority: 3, applicationName: "gamma" }, { dataDependencies: [missing] }),
    );
    t.push(await submit(sessionId, { priority: 3, applicationName: "delta", options: { color: "red" } }));
    await client.cancelTasks([t[1]]);
    await submit(other, { applicationName: "alpha", options: { color: "red" } });
  });

  after(async () => {
    await client?.close();
    await server?.shutdown();
  });

  /** The task ids of `sessionId` a filter's clauses match, in submission order (the filter via the index). */
  const ids = async (...clauses: FilterCondition[][]): Promise<string[]> => {
    const filter: Filter = {
      or: clauses.map((and) => ({ and: [cond("sessionId", "eq", sessionId), ...and] })),
    };
    return (await client.listTasks({ filter, pageSize: 1000 })).items.map((x) => x.taskId);
  };

  it("takes each operator on statuses, ids, times, task options and the user's options", async () => {
    assert.deepEqual(await ids([cond("status", "eq", "CANCELLED")]), [t[1]]);
    assert.deepEqual(await ids([cond("status", "ne", "SUBMITTED")]), [t[1], t[3]]);
    assert.deepEqual(await ids([cond("status", "in", ["PENDING", "CANCELLED"])]), [t[1], t[3]]);
    assert.deepEqual(await ids([cond("status", "notIn", ["SUBMITTED", "PENDING"])]), [t[1]]);
    assert.deepEqual(await ids([cond("taskId", "in", [t[0], t[4]])]), [t[0], t[4]]);
    assert.deepEqual(await ids([cond("options.priority", "eq", 3)]), [t[1], t[3], t[4]]);
    assert.deepEqual(await ids([cond("options.priority", "lt", 3)]), [t[0]]);
    assert.deepEqual(await ids([cond("options.priority", "lte", 3)]), [t[0], t[1], t[3], t[4]]);
    assert.deepEqual(await ids([cond("options.priority", "gt", 3)]), [t[2]]);
    assert.deepEqual(await ids([cond("options.priority", "gte", 3)]), [t[1], t[2], t[3], t[4]]);
    assert.deepEqual(await ids([cond("options.priority", "ne", 3)]), [t[0], t[2]]);
    assert.deepEqual(await ids([cond("options.applicationName", "contains", "lph")]), [t[0], t[2]]);
    assert.deepEqual(await ids([cond("options.applicationName", "notContains", "a")]), []);
    assert.deepEqual(await ids([cond("options.applicationName", "startsWith", "alpha")]), [t[0], t[2]]);
    assert.deepEqual(await ids([cond("options.applicationName", "endsWith", "ta")]), [t[1], t[4]]);
    // The user's own options: a key not set is null.
    assert.deepEqual(await ids([cond("options.options.color", "eq", "red")]), [t[0], t[2], t[4]]);
    assert.deepEqual(await ids([cond("options.options.color", "eq", null)]), [t[3]]);
    assert.deepEqual(await ids([cond("options.options.size", "ne", null)]), [t[2]]);
    assert.deepEqual(await ids([cond("options.options.color", "ne", "red")]), [t[1], t[3]]);
    // Lists and nullable times.
    assert.deepEqual(await ids([cond("dataDependencies", "contains", missing)]), [t[3]]);
    assert.deepEqual(await ids([cond("dataDependencies", "notContains", missing)]), [t[0], t[1], t[2], t[4]]);
    assert.deepEqual(await ids([cond("endedAt", "ne", null)]), [t[1]]);
    const cancelled = await client.getTask(t[1]);
    assert.deepEqual(await ids([cond("endedAt", "afterOrEqual", cancelled.endedAt)]), [t[1]]);
    assert.deepEqual(await ids([cond("endedAt", "before", cancelled.endedAt)]), []);
    const last = await client.getTask(t[4]);
    assert.deepEqual(await ids([cond("createdAt", "after", last.createdAt)]), []);
    assert.deepEqual(await ids([cond("createdAt", "beforeOrEqual", last.createdAt)]), t);
    assert.deepEqual(await ids([cond("attempts", "eq", 0)]), t);
  });

  it("is an OR of AND clauses, with or without the session index", async () => {
    assert.deepEqual(
      await ids(
        [cond("options.options.color", "eq", "red"), cond("options.priority", "gte", 5)],
        [cond("status", "eq", "CANCELLED")],
      ),
      [t[1], t[2]],
    );
    // No session named: every task is checked; the other session's alpha task matches too.
    const all = await client.listTasks({
      filter: {
        or: [
          { and: [cond("options.applicationName", "eq", "alpha")] },
          { and: [cond("options.applicationName", "eq", "gamma")] },
        ],
      },
    });
    assert.equal(all.total, 3);
    assert.deepEqual(
      all.items.map((x) => [x.sessionId, x.options.applicationName]),
      [
        [sessionId, "alpha"],
        [sessionId, "gamma"],
        [other, "alpha"],
      ],
    );
    // An empty OR, like no filter, matches everything.
    assert.equal((await client.listTasks({ filter: { or: [] } })).total, 6);
  });

  it("keeps the plain map filter of before working", async () => {
    const page = await client.listTasks({ filter: { sessionId, status: ["PENDING", "CANCELLED"] } });
    assert.deepEqual(
      page.items.map((x) => x.taskId),
      [t[1], t[3]],
    );
    const first = await client.getTask(t[0]);
    const later = await client.listTasks({
      filter: { createdAfter: first.createdAt + 1, partitionId: "default" },
    });
    assert.ok(later.items.every((x) => x.createdAt > first.createdAt));
    assert.equal((await client.countTasks({ sessionId })).SUBMITTED, 3);
  });

  it("sorts on any field, stably, in both directions, page by page", async () => {
    const sorted = async (field: string, direction: "asc" | "desc", page = 0, pageSize = 100) =>
      (
        await client.listTasks({
          filter: where(cond("sessionId", "eq", sessionId)),
          sort: { field, direction },
          page,
          pageSize,
        })
      ).items.map((x) => x.taskId);
    // Equal priorities (t1, t3, t4) keep submission order either way.
    assert.deepEqual(await sorted("options.priority", "asc"), [t[0], t[1], t[3], t[4], t[2]]);
    assert.deepEqual(await sorted("options.priority", "desc"), [t[2], t[1], t[3], t[4], t[0]]);
    const pages = [];
    for (let p = 0; p < 3; p++) pages.push(...(await sorted("options.priority", "desc", p, 2)));
    assert.deepEqual(pages, [t[2], t[1], t[3], t[4], t[0]]);
    // Unset values last in either direction.
    assert.deepEqual(await sorted("options.options.color", "asc"), [t[1], t[0], t[2], t[4], t[3]]);
    assert.deepEqual(await sorted("options.options.color", "desc"), [t[0], t[2], t[4], t[1], t[3]]);
    assert.deepEqual(await sorted("taskId", "desc"), [...t].sort().reverse());
    const page = await client.listTasks({ filter: { sessionId }, page: 2, pageSize: 2 });
    assert.deepEqual(
      page.items.map((x) => x.taskId),
      [t[4]],
    );
    assert.equal(page.total, 5);
  });

  it("counts by filter", async () => {
    const counts = await client.countTasks(
      where(cond("sessionId", "eq", sessionId), cond("options.options.color", "ne", "blue")),
    );
    assert.equal(counts.SUBMITTED, 3);
    assert.equal(counts.PENDING, 1);
    assert.equal(counts.CANCELLED, 0);
    const red = await client.countTasks(where(cond("options.options.color", "eq", "red")));
    assert.equal(red.SUBMITTED, 4);
  });

  it("filters and sorts results and sessions", async () => {
    const results = await client.listResults({
      filter: where(cond("sessionId", "eq", sessionId), cond("name", "startsWith", "never")),
    });
    assert.deepEqual(
      results.items.map((r) => r.resultId),
      [missing],
    );
    const payloads = await client.listResults({
      filter: where(
        cond("sessionId", "eq", sessionId),
        cond("status", "eq", "COMPLETED"),
        cond("size", "gt", 0),
      ),
    });
    assert.equal(payloads.total, 5);
    const sessions = await client.listSessions({
      filter: { or: [{ and: [cond("defaultTaskOptions.priority", "gte", 5)] }] },
    });
    assert.deepEqual(
      sessions.items.map((s) => s.sessionId),
      [other],
    );
    const byTeam = await client.listSessions({
      filter: where(cond("defaultTaskOptions.options.team", "eq", "blue")),
    });
    assert.deepEqual(
      byTeam.items.map((s) => s.sessionId),
      [other],
    );
    const biggest = await client.listSessions({ sort: { field: "taskCount", direction: "desc" } });
    assert.deepEqual(
      biggest.items.map((s) => s.sessionId),
      [sessionId, other],
    );
  });

  it("rejects a bad filter with INVALID_ARGUMENT (or RESOURCE_EXHAUSTED past a limit), changing nothing", async () => {
    const before = await client.countTasks();
    const bad: [unknown, RegExp][] = [
      [where(cond("colour", "eq", "red")), /no field "colour"/],
      [where(cond("status", "gt", "SUBMITTED")), /operator "gt" does not apply to status/],
      [where(cond("status", "eq", "DONE")), /one of the statuses/],
      [where(cond("options.priority", "gte", "3")), /takes a number/],
      [where(cond("createdAt", "before", "yesterday")), /a time in milliseconds/],
      [where(cond("options.options.color", "lt", "red")), /does not apply/],
      [where(cond("taskId", "in", "t1")), /takes a list/],
      [{ or: [{ and: [{ field: "status", op: "eq", value: "PENDING", extra: 1 }] }] }, /unknown key "extra"/],
      [{ or: [{ and: [] }], sessionId }, /takes nothing beside it/],
      [{ or: "status=PENDING" }, /must be a list/],
      [{ colour: "red" }, /unknown filter "colour"/],
      ["status=PENDING", /must be a map/],
    ];
    for (const [filter, message] of bad) {
      await rejectsWith("INVALID_ARGUMENT", client.listTasks({ filter: filter as Filter }), message);
      await rejectsWith("INVALID_ARGUMENT", client.countTasks(filter as Filter), message);
      await rejectsWith("INVALID_ARGUMENT", client.cancelTasksWhere(filter as Filter), message);
    }
    await rejectsWith("INVALID_ARGUMENT", client.cancelTasksWhere({ or: [] }), /at least one condition/);
    await rejectsWith("INVALID_ARGUMENT", client.listResults({ filter: where(cond("priority", "eq", 1)) }));
    await rejectsWith(
      "INVALID_ARGUMENT",
      client.listSessions({ filter: where(cond("status", "eq", "SUBMITTED")) }),
    );
    await rejectsWith(
      "INVALID_ARGUMENT",
      client.listTasks({ sort: { field: "expectedOutputIds" } }),
      /cannot sort by "expectedOutputIds"/,
    );
    const many = Array.from({ length: 101 }, (_, i) => cond("options.priority", "ne", i));
    await rejectsWith("RESOURCE_EXHAUSTED", client.cancelTasksWhere(where(...many)), /101 conditions/);
    const long = "x".repeat(5000);
    await rejectsWith("RESOURCE_EXHAUSTED", client.listTasks({ filter: where(cond("taskId", "eq", long)) }));
    assert.deepEqual(await client.countTasks(), before);
  });

  it("the short text form reads as the filter it says", () => {
    assert.deepEqual(parseFilterText("status=COMPLETED,priority>=3|options.options.color!=red"), {
      or: [
        {
          and: [
            { field: "status", op: "eq", value: "COMPLETED" },
            { field: "options.priority", op: "gte", value: 3 },
          ],
        },
        { and: [{ field: "options.options.color", op: "ne", value: "red" }] },
      ],
    });
    assert.deepEqual(parseFilterText(["status=PENDING;ERROR", "endedAt=null"]).or, [
      { and: [{ field: "status", op: "in", value: ["PENDING", "ERROR"] }] },
      { and: [{ field: "endedAt", op: "eq", value: null }] },
    ]);
    assert.deepEqual(
      parseFilterText("name^=out,name$=-1,error~boom,createdAt<2024-01-01T00:00:00Z").or[0].and,
      [
        { field: "name", op: "startsWith", value: "out" },
        { field: "name", op: "endsWith", value: "-1" },
        { field: "error", op: "contains", value: "boom" },
        { field: "createdAt", op: "lt", value: Date.UTC(2024, 0, 1) },
      ],
    );
    assert.throws(() => parseFilterText("status"), /not a condition/);
    assert.throws(() => parseFilterText("priority>=high"), /takes a number/);
  });

  it("zgrid tasks list --filter --sort speaks it", async () => {
    const url = server.info!.url;
    const r = await runCli([
      "tasks",
      "list",
      "--url",
      url,
      "--filter",
      `sessionId=${sessionId},options.options.color=red`,
      "--filter",
      `sessionId=${sessionId},status=CANCELLED`,
      "--sort",
      "priority:desc",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const page = JSON.parse(r.stdout) as { items: { taskId: string }[]; total: number };
    assert.deepEqual(
      page.items.map((x) => x.taskId),
      [t[2], t[1], t[4], t[0]],
    );
    const wrong = await runCli(["tasks", "list", "--url", url, "--filter", "priority>=high"]);
    assert.equal(wrong.code, 2, wrong.stderr);
    assert.match(wrong.stderr, /takes a number/);
  });
});

describe("tasks.cancel {filter}", () => {
  it("cancels what matches, durably: a restart finds it cancelled and the rest untouched", async () => {
    const config = testConfig();
    let server = new Server(config, createLogger("silent"));
    await server.start();
    let client = await connect(server.info!.url, { timeoutMs: 60_000 });
    try {
      const sessionId = await client.createSession();
      const payload = Buffer.from("x");
      const tasks = await client.submitTasks(
        sessionId,
        Array.from({ length: 10 }, (_, i) => ({
          payload,
          taskOptions: { options: { shard: String(i % 2) } },
        })),
      );
      const { cancelled, more } = await client.cancelTasksWhere(
        where(cond("sessionId", "eq", sessionId), cond("options.options.shard", "eq", "1")),
      );
      assert.deepEqual(cancelled, { SUBMITTED: 5 });
      assert.equal(more, false);
      // Already cancelled: a second call finds nothing left.
      const again = await client.cancelTasksWhere(where(cond("options.options.shard", "eq", "1")));
      assert.deepEqual(again.cancelled, {});
      await client.close();
      await server.shutdown();

      server = new Server(config, createLogger("silent"));
      await server.start();
      client = await connect(server.info!.url, { timeoutMs: 60_000 });
      const after = await client.listTasks({ filter: { sessionId }, pageSize: 100 });
      assert.deepEqual(
        after.items.map((x) => x.status),
        tasks.map((_, i) => (i % 2 === 1 ? "CANCELLED" : "SUBMITTED")),
      );
      // The CLI cancels by filter too.
      const r = await runCli([
        "tasks",
        "cancel",
        "--url",
        server.info!.url,
        "--filter",
        `sessionId=${sessionId},options.options.shard=0`,
        "--json",
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), { cancelled: { SUBMITTED: 5 } });
      assert.equal((await client.countTasks({ sessionId })).CANCELLED, 10);
    } finally {
      await client.close();
      await server.shutdown();
    }
  });
});

describe("a filter over many tasks", () => {
  it("50,000 tasks: list, count and cancel by filter while other requests are still answered", async () => {
    const config = testConfig();
    const server = new Server(config, createLogger("silent"));
    await server.start();
    const client = await connect(server.info!.url, { timeoutMs: 120_000 });
    try {
      const sessionId = await client.createSession();
      const payload = Buffer.from("x");
      const N = 50_000;
      for (const [k, color] of ["red", "blue"].entries()) {
        await client.submitTasks(
          sessionId,
          Array.from({ length: N / 2 }, () => ({ payload })),
          { priority: k + 1, options: { color } },
        );
      }
      // Names no session: every task is checked, sorted on a user option (no index).
      const filter = where(cond("options.options.color", "eq", "blue"));
      let order: string[] = [];
      const list = client
        .listTasks({ filter, sort: { field: "options.options.color", direction: "desc" }, pageSize: 10 })
        .then((page) => (order.push("list"), page));
      const ruok = client.ruok().then((r) => (order.push("ruok"), r));
      const [page, answer] = await Promise.all([list, ruok]);
      assert.equal(answer, "imok");
      assert.equal(page.total, N / 2);
      assert.equal(page.items.length, 10);
      assert.ok(page.items.every((x) => x.options.options.color === "blue"));
      // The scan yields between slices: the ruok sent after the list is answered before it.
      assert.deepEqual(order, ["ruok", "list"]);

      order = [];
      const count = client
        .countTasks(where(cond("options.priority", "eq", 2)))
        .then((c) => (order.push("count"), c));
      const get = client.getSession(sessionId).then((s) => (order.push("get"), s));
      const [counts, session] = await Promise.all([count, get]);
      assert.equal(counts.SUBMITTED, N / 2);
      assert.equal(session.taskCount, N);
      assert.deepEqual(order, ["get", "count"]);

      const cancel = await client.cancelTasksWhere(where(cond("options.options.color", "eq", "red")));
      assert.deepEqual(cancel, { cancelled: { SUBMITTED: N / 2 }, more: false });
      const after = await client.countTasks({ sessionId });
      assert.equal(after.CANCELLED, N / 2);
      assert.equal(after.SUBMITTED, N / 2);
    } finally {
      await client.close();
      await server.shutdown();
    }
  });
});
