import type { ServerContext } from "../daemons/context.js";
import { list, optBool, optInt, optStr, str, strList } from "../protocol/args.js";
import type { CommandRegistrar } from "../protocol/command-map.js";
import { invalidArgument } from "../protocol/errors.js";
import { matches, pageOf, parseListQuery } from "../scheduler/listing.js";
import { RESULT_STATUSES } from "../scheduler/model.js";
import { parseNewResult } from "../scheduler/submission-args.js";
import { resultView } from "../scheduler/views.js";

/** The longest a results.wait may hold its reply. */
const MAX_WAIT_MS = 24 * 3600 * 1000;

/** results.create / upload / download / get / list / wait. */
export function register(map: CommandRegistrar, server: ServerContext): void {
  const scheduler = server.scheduler;

  map.register("results.create", (req) => {
    const sessionId = str(req.args, "sessionId");
    const items = list(req.args, "results").map((raw, i) => parseNewResult(raw, i, req.blobs));
    const created = scheduler.createResults(sessionId, items);
    return { msg: created.map((r) => ({ resultId: r.id, name: r.name, status: r.status })) };
  });

  map.register("results.upload", (req) => {
    const resultId = str(req.args, "resultId");
    const sessionId = optStr(req.args, "sessionId");
    if (req.blobs.length === 0)
      throw invalidArgument(`results.upload needs the data as one or more blobs after the header`);
    if (sessionId !== undefined) scheduler.sessionResult(sessionId, resultId);
    const data = req.blobs.length === 1 ? req.blobs[0] : Buffer.concat(req.blobs);
    const r = scheduler.uploadResult(resultId, data);
    return { msg: { resultId: r.id, status: r.status, size: r.size } };
  });

  map.register("results.download", (req) => {
    if (req.args.resultIds !== undefined) {
      const ids = strList(req.args, "resultIds");
      return { msg: { resultIds: ids }, blobs: ids.map((id) => scheduler.resultData(id)) };
    }
    const id = str(req.args, "resultId");
    return { msg: { resultId: id }, blobs: [scheduler.resultData(id)] };
  });

  map.register("results.get", (req) => ({ msg: resultView(scheduler.result(str(req.args, "resultId"))) }));

  map.register("results.list", (req) => {
    const q = parseListQuery(
      req.args,
      ["sessionId", "status", "createdAfter", "createdBefore"],
      ["resultId", "name", "status", "createdAt", "completedAt", "size"],
    );
    const { sessionId, status, createdAfter, createdBefore } = q.filter;
    if (status !== undefined) {
      for (const s of Array.isArray(status) ? status : [status]) {
        if (!(RESULT_STATUSES as readonly unknown[]).includes(s))
          throw invalidArgument(`unknown result status ${JSON.stringify(s)}`);
      }
    }
    const items = [...scheduler.results.values()].filter(
      (r) =>
        (sessionId === undefined || matches(r.sessionId, sessionId)) &&
        (status === undefined || matches(r.status, status)) &&
        (typeof createdAfter !== "number" || r.createdAt >= createdAfter) &&
        (typeof createdBefore !== "number" || r.createdAt < createdBefore),
    );
    return { msg: pageOf(items, q, resultView) };
  });

  map.register("results.wait", async (req) => {
    const resultIds = strList(req.args, "resultIds");
    const behavior = optStr(req.args, "behavior") ?? "all";
    if (behavior !== "all" && behavior !== "any") throw invalidArgument(`behavior must be "all" or "any"`);
    const breakOnError = optBool(req.args, "breakOnError") ?? false;
    const timeoutMs = optInt(req.args, "timeoutMs", 0, MAX_WAIT_MS) ?? 0;
    const withData = optBool(req.args, "withData") ?? false;
    const settled = await scheduler.waitResults({
      resultIds,
      any: behavior === "any",
      breakOnError,
      timeoutMs,
    });
    const statuses: Record<string, string> = {};
    const blobs: Buffer[] = [];
    const data: Record<string, number> = {};
    for (const id of resultIds) {
      const r = scheduler.results.get(id);
      statuses[id] = r ? r.status : "DELETED";
      if (withData && r?.status === "COMPLETED" && r.data) {
        data[id] = blobs.length;
        blobs.push(r.data);
      }
    }
    return {
      msg: withData ? { timedOut: !settled, statuses, data } : { timedOut: !settled, statuses },
      blobs,
    };
  });
}
