/**
 * The dashboard in a real browser: `zgrid server --dashboard-port 0 --local-workers 1` on free ports,
 * a workload through the client, and headless Chromium (the system's, driven by playwright-core) on the
 * page. The numbers on the page must be the grid's; the cancel button must cancel; a wrong token must
 * see nothing. A screenshot is saved to test-output/dashboard.png (path printed). Where no Chromium can
 * run, the tests skip loudly.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { connect, encodePayload, type ZgridClient } from "../src/client/index.js";
import { ROOT, removeDir, spawnServer, waitFor, type Proc } from "./helpers.js";

const TOKEN = "dashboard-test-token";
const CHROMIUM = process.env.ZGRID_TEST_CHROMIUM ?? "/usr/bin/chromium";
const HOW_TO_RUN = "install Chromium (apt-get install chromium, as .ci/run does) or set ZGRID_TEST_CHROMIUM";
const SCREENSHOT = join(ROOT, "test-output", "dashboard.png");

let skipReason: string | undefined;

function skipped(t: TestContext): boolean {
  if (skipReason === undefined) return false;
  t.skip(`${skipReason}; ${HOW_TO_RUN}`);
  return true;
}

/** The page's tasks-by-status table as a map status → count. */
function pageCounts(page: Page): Promise<Record<string, number>> {
  return page.$$eval("#tasks-by-status tr", (rows) =>
    Object.fromEntries(
      rows.map((r) => [r.getAttribute("data-status"), Number(r.querySelector(".count")?.textContent)]),
    ),
  );
}

function nonZero(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0));
}

describe("dashboard in headless Chromium", { concurrency: false }, () => {
  let browser: Browser | undefined;
  let proc: Proc | undefined;
  let dir: string | undefined;
  let client: ZgridClient;
  let base: string;
  let doneSession: string;
  let queuedSession: string;

  before(
    async () => {
      if (!existsSync(CHROMIUM)) {
        skipReason = `no browser at ${CHROMIUM}`;
        return;
      }
      try {
        // As root (CI, containers) Chromium's sandbox cannot start: --no-sandbox.
        browser = await chromium.launch({
          executablePath: CHROMIUM,
          args: ["--no-sandbox"],
          timeout: 60_000,
        });
      } catch (err) {
        skipReason = `Chromium at ${CHROMIUM} cannot start: ${(err as Error).message.split("\n")[0]}`;
        return;
      }
      const started = await spawnServer([
        "--dashboard-port",
        "0",
        "--local-workers",
        "1",
        "--slots",
        "2",
        "--store",
        "memory",
        "--token",
        TOKEN,
      ]);
      proc = started.proc;
      dir = started.dir;
      await waitFor(() => /dashboard: +http:/.test(proc!.stdout()), 15_000, "the dashboard's address");
      base = /dashboard: +(http:\/\/127\.0\.0\.1:\d+\/)/.exec(proc.stdout())![1]!;
      client = await connect(started.info.url);
      await waitFor(async () => (await client.listWorkers()).total === 1, 20_000, "the local worker");

      // One session that ran: 20 sums and 2 that fail (an application error is final: ERROR).
      doneSession = await client.createSession({ applicationName: "hello" });
      const tasks = await client.submitTasks(doneSession, [
        ...Array.from({ length: 20 }, (_, i) => ({ payload: encodePayload("sum", [[i, 1]]) })),
        { payload: encodePayload("sum", [["not a number"]]) },
        { payload: encodePayload("sum", [["nor this"]]) },
      ]);
      const wait = await client.waitResults(
        tasks.flatMap((t) => t.expectedOutputIds),
        { timeoutMs: 60_000 },
      );
      assert.equal(wait.timedOut, false);
      // One session whose tasks wait in a partition no worker serves: the one the page cancels.
      queuedSession = await client.createSession({ applicationName: "hello", partitionId: "nobody" });
      await client.submitTasks(
        queuedSession,
        Array.from({ length: 3 }, () => ({ payload: encodePayload("noop") })),
      );
    },
    { timeout: 120_000 },
  );
  before(() => {
    if (skipReason)
      console.error(
        `\n*** SKIPPED: the dashboard browser tests did not run: ${skipReason}.\n*** ${HOW_TO_RUN}.\n`,
      );
  });
  after(async () => {
    await browser?.close();
    await client?.close();
    await proc?.stop();
    if (dir) removeDir(dir);
  });

  it("shows the grid's tasks by status, partitions, sessions and workers, pushed live", async (t) => {
    if (skipped(t)) return;
    const context = await browser!.newContext({ viewport: { width: 1400, height: 1100 } });
    try {
      const page = await context.newPage();
      await page.goto(`${base}#token=${TOKEN}`);
      await page.waitForSelector("#dashboard:not([hidden])", { timeout: 15_000 });
      assert.equal(new URL(page.url()).hash, "", "the token left the address bar");
      assert.ok(!(await page.content()).includes(TOKEN), "the token is nowhere in the page");

      // Work done while the page watches: the throughput chart must show it.
      const live = await client.createSession({ applicationName: "hello" });
      const sleeps = await client.submitTasks(
        live,
        Array.from({ length: 30 }, () => ({ payload: encodePayload("sleep", [60]) })),
      );
      const liveWait = await client.waitResults(
        sleeps.flatMap((x) => x.expectedOutputIds),
        { timeoutMs: 60_000 },
      );
      assert.equal(liveWait.timedOut, false);
      await waitFor(
        async () =>
          (await page.$$eval('#chart-throughput polyline[data-series="default"]', (lines) =>
            lines.some((l) =>
              (l.getAttribute("points") ?? "").split(" ").some((xy) => Number(xy.split(",")[1]) < 150),
            ),
          )) === true,
        15_000,
        "the throughput chart to show the tasks completed",
      );

      const expected = nonZero(await client.countTasks());
      assert.deepEqual(expected, { COMPLETED: 50, ERROR: 2, SUBMITTED: 3 });
      await waitFor(
        async () => JSON.stringify(await pageCounts(page)) === JSON.stringify(expected),
        15_000,
        "the page's tasks by status to be the grid's",
      );
      assert.deepEqual(await pageCounts(page), expected);

      for (const p of (await client.listPartitions()).items) {
        const queued = await page.textContent(`#partitions tr[data-partition="${p.partitionId}"] .queued`);
        assert.equal(queued, String(p.queued), `partition ${p.partitionId}`);
      }
      assert.equal(await page.textContent('#partitions tr[data-partition="nobody"] .queued'), "3");
      const workers = await client.listWorkers();
      assert.equal(await page.locator("#workers tr").count(), workers.total);
      assert.equal(
        await page.textContent(`#workers tr[data-worker-id="${workers.items[0]!.workerId}"] .slots`),
        "0 / 2",
      );
      // Heartbeats every 200 ms: an age of a few tenths of a second, refreshed with each snapshot.
      const heartbeat = await page.textContent(
        `#workers tr[data-worker-id="${workers.items[0]!.workerId}"] .age`,
      );
      assert.match(heartbeat ?? "", /^\d+\.\ds$/);
      assert.ok(parseFloat(heartbeat!) < 5, `heartbeat age ${heartbeat}`);
      const doneRow = page.locator(`#sessions tr[data-session-id="${doneSession}"]`);
      await waitFor(
        async () => (await doneRow.textContent())?.includes("22/22") ?? false,
        10_000,
        "progress",
      );
      assert.equal(await page.locator("#chart-queue polyline[data-series=nobody]").count(), 1);

      // Pushed, not reloaded: the page's update time moves on while nothing reloads it.
      const first = await page.textContent("#server");
      await waitFor(async () => (await page.textContent("#server")) !== first, 10_000, "a pushed snapshot");

      // A task's attempts and errors.
      await doneRow.locator("button.tasks").click();
      await page.waitForSelector("#task-list tr", { timeout: 10_000 });
      const failed = page.locator("#task-list tr", { hasText: "not a number" });
      await failed.locator("button").click();
      await page.waitForSelector("#attempts tbody tr", { timeout: 10_000 });
      const attempt = await page.textContent("#attempts tbody tr");
      assert.match(attempt ?? "", /not a number/);
      assert.ok(attempt?.includes(workers.items[0]!.workerId), attempt ?? "");
      // Its lineage and times (issue 18 item 5): the client's user created it; it was dispatched.
      const shownId = await failed.getAttribute("data-task-id");
      const shown = await client.getTask(shownId!);
      assert.match(
        (await page.textContent("#task-lineage")) ?? "",
        new RegExp(`created by ${shown.createdBy}, parent none`),
      );
      const times = (await page.textContent("#task-times")) ?? "";
      assert.ok(
        times.includes(`dispatched ${new Date(shown.dispatchedAt!).toISOString().slice(11, 23)}`),
        times,
      );

      mkdirSync(join(ROOT, "test-output"), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      console.log(`# dashboard screenshot: ${SCREENSHOT}`);
      assert.ok(existsSync(SCREENSHOT));
    } finally {
      await context.close();
    }
  });

  it("cancels a session with its cancel button", async (t) => {
    if (skipped(t)) return;
    const context = await browser!.newContext();
    try {
      const page = await context.newPage();
      page.on("dialog", (d) => void d.accept());
      await page.goto(`${base}#token=${TOKEN}`);
      const row = page.locator(`#sessions tr[data-session-id="${queuedSession}"]`);
      await row.waitFor({ timeout: 15_000 });
      assert.equal(await row.locator(".status").textContent(), "RUNNING");
      await row.locator("button.cancel").click();
      await waitFor(
        async () => (await client.getSession(queuedSession)).status === "CANCELLED",
        15_000,
        "the session to be cancelled",
      );
      assert.equal((await client.countTasks({ sessionId: queuedSession })).CANCELLED, 3);
      await waitFor(
        async () => (await row.locator(".status").textContent()) === "CANCELLED",
        10_000,
        "the page to show it cancelled",
      );
      assert.match((await page.textContent("#message")) ?? "", /cancelled/);
      assert.equal(await row.locator("button.cancel").count(), 0, "no cancel button on a cancelled session");
      assert.equal((await client.getSession(doneSession)).status, "RUNNING", "only that session");
    } finally {
      await context.close();
    }
  });

  it("shows nothing to a wrong token, and the endpoints answer it 401", async (t) => {
    if (skipped(t)) return;
    const context = await browser!.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${base}#token=wrong-${TOKEN}`);
      await waitFor(
        async () => (await page.textContent("#login-error")) === "Wrong token.",
        15_000,
        "the login form to say the token is wrong",
      );
      assert.equal(await page.isVisible("#dashboard"), false);
      for (const id of ["tasks-by-status", "partitions", "sessions", "workers", "chart-queue"]) {
        assert.equal(await page.locator(`#${id} > *`).count(), 0, `#${id} is empty`);
      }
      const html = await page.content();
      for (const secret of [doneSession, queuedSession, "COMPLETED"])
        assert.ok(!html.includes(secret), `${secret} is not in the page`);
      const statuses = await page.evaluate(async () => {
        const out: number[] = [];
        for (const path of ["/api/snapshot", "/events", "/api/tasks?sessionId=x", "/api/task?taskId=x"])
          out.push((await fetch(path)).status);
        out.push(
          (
            await fetch("/api/sessions/cancel", {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: "{}",
            })
          ).status,
        );
        return out;
      });
      assert.deepEqual(statuses, [401, 401, 401, 401, 401]);

      // The same page, given the right token in its form, shows the grid.
      await page.fill("#token", TOKEN);
      await page.click("#login button[type=submit]");
      await page.waitForSelector('#tasks-by-status tr[data-status="COMPLETED"]', { timeout: 15_000 });
      assert.equal(
        await page.textContent('#tasks-by-status tr[data-status="COMPLETED"] .count'),
        String((await client.countTasks()).COMPLETED),
      );
      // Logging out takes the numbers away again.
      await page.click("#logout");
      await page.waitForSelector("#login:not([hidden])", { timeout: 10_000 });
      assert.equal(await page.locator("#tasks-by-status > *").count(), 0);
      assert.equal(await page.evaluate(async () => (await fetch("/api/snapshot")).status), 401);
    } finally {
      await context.close();
    }
    assert.ok(!proc!.stderr().includes(TOKEN), "the token is in no log line");
  });
});
