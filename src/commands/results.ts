import type { ServerContext } from "../daemons/context.js";
import { collectYoungGarbage, perDataBytes } from "../gc.js";
import { list, optBool, optInt, optStr, str, strList } from "../protocol/args.js";
import type { CommandRegistrar, CommandReply } from "../protocol/command-map.js";
import { ErrorCode, ZgridError, failedPrecondition, invalidArgument, notFound } from "../protocol/errors.js";
import { RESULT_FIELDS } from "../scheduler/filter-fields.js";
import { listPage, parseListQuery } from "../scheduler/listing.js";
import type { Result } from "../scheduler/model.js";
import { parseNewResult } from "../scheduler/submission-args.js";
import { resultView } from "../scheduler/views.js";
import type { Scheduler } from "../scheduler/scheduler.js";
import { ownResults, ownSession, visibleMatches } from "./access.js";

/** The largest result a chunked upload may announce. */
const MAX_RESULT_BYTES = 2 ** 32;

/** The longest a results.wait may hold its reply. */
const MAX_WAIT_MS = 24 * 3600 * 1000;
/** Chunked uploads under way may announce at most this many bytes in all (they are allocated at once). */
const MAX_UPLOADS_IN_FLIGHT_BYTES = 2 ** 32;
/** A chunked upload that receives no chunk for this long is dropped, its buffer freed. */
const UPLOAD_IDLE_MS = 5 * 60 * 1000;

/** results.create / upload / download / get / list / wait. */
export function register(map: CommandRegistrar, server: ServerContext): void {
  const scheduler = server.scheduler;

  map.register("results.create", async (req) => {
    const sessionId = str(req.args, "sessionId");
    ownSession(req, scheduler, sessionId);
    const items = list(req.args, "results").map((raw, i) => parseNewResult(raw, i, req.blobs));
    const created = scheduler.data.createResults(sessionId, items, req.user);
    try {
      await scheduler.store.flush();
    } catch (err) {
      scheduler.data.withdrawResults(created);
      throw err;
    }
    return { msg: created.map((r) => ({ resultId: r.id, name: r.name, status: r.status })) };
  });

  /** Chunked uploads under way: result id → the buffer being filled (the one copy the server holds). */
  const assemblies = new Map<string, { buf: Buffer; next: number; touched: number }>();
  let inFlightBytes = 0;
  /** Chunks copied and ranges sent: a young-generation collection after this turn, per 8 MiB of them. */
  const passed = perDataBytes(() => setImmediate(collectYoungGarbage));
  const dropAssembly = (resultId: string): void => {
    const a = assemblies.get(resultId);
    if (!a) return;
    inFlightBytes -= a.buf.length;
    assemblies.delete(resultId);
  };
  // Uploads abandoned, or whose result is gone (its session deleted), free their buffer.
  const sweeper = setInterval(() => {
    const idle = Date.now() - UPLOAD_IDLE_MS;
    for (const [id, a] of assemblies) {
      if (a.touched < idle || !scheduler.results.has(id)) dropAssembly(id);
    }
  }, 10_000);
  sweeper.unref();

  map.register("results.upload", async (req) => {
    const resultId = str(req.args, "resultId");
    ownResults(req, scheduler, [resultId]);
    const sessionId = optStr(req.args, "sessionId");
    if (req.blobs.length === 0)
      throw invalidArgument(`results.upload needs the data as one or more blobs after the header`);
    if (sessionId !== undefined) scheduler.sessionResult(sessionId, resultId);
    const data = req.blobs.length === 1 ? req.blobs[0] : Buffer.concat(req.blobs);
    const offset = optInt(req.args, "offset");
    if (offset === undefined) {
      const r = await scheduler.data.uploadResultDurably(resultId, data);
      return { msg: { resultId: r.id, status: r.status, size: r.size } };
    }
    // Chunked: the first chunk (offset 0) gives the total size; chunks follow in order.
    let a = assemblies.get(resultId);
    if (offset === 0) {
      const size = optInt(req.args, "size", 0, MAX_RESULT_BYTES);
      if (size === undefined) throw invalidArgument(`the first chunk (offset 0) must give the total size`);
      scheduler.data.checkUploadable(resultId);
      dropAssembly(resultId); // a restarted upload replaces the one under way
      if (inFlightBytes + size > MAX_UPLOADS_IN_FLIGHT_BYTES) {
        throw new ZgridError(
          ErrorCode.RESOURCE_EXHAUSTED,
          `chunked uploads under way already announce ${inFlightBytes} bytes; ${size} more would pass the limit of ${MAX_UPLOADS_IN_FLIGHT_BYTES}: finish those first`,
        );
      }
      a = { buf: Buffer.allocUnsafe(size), next: 0, touched: Date.now() };
      assemblies.set(resultId, a);
      inFlightBytes += size;
    }
    if (!a)
      throw failedPrecondition(
        `no upload of ${resultId} is under way: start with offset 0 and the total size`,
      );
    if (offset !== a.next) throw invalidArgument(`expected the chunk at offset ${a.next}, got ${offset}`);
    a.touched = Date.now();
    if (offset + data.length > a.buf.length) {
      dropAssembly(resultId);
      throw invalidArgument(
        `the chunk ends at ${offset + data.length}, past the announced size ${a.buf.length}`,
      );
    }
    data.copy(a.buf, offset);
    a.next += data.length;
    passed(data.length);
    if (a.next < a.buf.length) return { msg: { resultId, received: a.next, size: a.buf.length } };
    dropAssembly(resultId);
    const r = await scheduler.data.uploadResultDurably(resultId, a.buf);
    return { msg: { resultId: r.id, status: r.status, size: r.size, received: a.next } };
  });

  map.register("results.download", (req) => {
    if (req.args.resultIds !== undefined) {
      const ids = strList(req.args, "resultIds");
      if (new Set(ids).size !== ids.length) throw invalidArgument("resultIds lists a result more than once");
      ownResults(req, scheduler, ids);
      const found = scheduler.findResults(ids, true);
      const blobs = ids.map((id, i) => {
        const r = found.results[i];
        if (!r || !scheduler.isVisible(r)) throw notFound(`result ${id} does not exist`);
        return found.data.get(id) ?? scheduler.data.dataOf(r);
      });
      let bytes = 0;
      for (const b of blobs) bytes += b.length;
      const limit = 4 * server.config.maxFrameBytes;
      if (bytes > limit) {
        throw new ZgridError(
          ErrorCode.RESOURCE_EXHAUSTED,
          `these ${ids.length} results hold ${bytes} bytes, more than one reply carries (${limit}): download fewer at a time, or by range`,
        );
      }
      return { msg: { resultIds: ids }, blobs };
    }
    const id = str(req.args, "resultId");
    ownResults(req, scheduler, [id]);
    const offset = optInt(req.args, "offset");
    if (offset !== undefined) {
      // One range of the data: how large results are downloaded without a frame past the limit.
      const length =
        optInt(req.args, "length", 0, server.config.maxFrameBytes) ?? server.config.maxFrameBytes;
      const { data, size } = scheduler.data.resultRange(id, offset, length);
      passed(data.length);
      return { msg: { resultId: id, offset, size, length: data.length }, blobs: [data] };
    }
    return { msg: { resultId: id }, blobs: [scheduler.data.resultData(id)] };
  });

  map.register("results.deleteData", async (req) => {
    const requested = strList(req.args, "resultIds");
    ownResults(req, scheduler, requested);
    const resultIds = await scheduler.data.deleteResultsData(requested);
    // Their space too, before the reply; a refused commit changes nothing of the answer (the DELETED
    // records are committed, and a restart finishes the removal).
    await scheduler.store.flush().catch(() => undefined);
    return { msg: { resultIds } };
  });

  // ArmoniK's GetOwnerTaskId: the task due to produce each of many results (null: a client's data).
  map.register("results.getOwnerTaskId", (req) => {
    const resultIds = strList(req.args, "resultIds");
    if (resultIds.length > server.config.maxBatch)
      throw invalidArgument(
        `resultIds lists ${resultIds.length} results: at most ${server.config.maxBatch} a request`,
      );
    const owners: Record<string, string | null> = {};
    const results = ownResults(req, scheduler, resultIds) ?? scheduler.findResults(resultIds).results;
    resultIds.forEach((id, i) => {
      const r = results[i];
      if (!r || !scheduler.isVisible(r)) throw notFound(`result ${id} does not exist`);
      owners[id] = r.ownerTaskId;
    });
    return { msg: { owners } };
  });

  map.register("results.get", (req) => {
    const resultId = str(req.args, "resultId");
    ownResults(req, scheduler, [resultId]);
    return { msg: resultView(scheduler.result(resultId)) };
  });

  map.register("results.list", async (req) => {
    const q = parseListQuery(req.args, RESULT_FIELDS);
    const matches = q.filter.matches;
    // Results a running attempt created are not there for clients until it completes.
    const visible = {
      ...q,
      filter: {
        ...q.filter,
        matches: visibleMatches(req, scheduler, (r: Result) => scheduler.isVisible(r) && matches(r)),
      },
    };
    return { msg: await listPage(scheduler.resultsOf(q.filter.sessionIds), visible, resultView) };
  });

  map.register("results.wait", async (req) => {
    const resultIds = strList(req.args, "resultIds");
    ownResults(req, scheduler, resultIds);
    const behavior = optStr(req.args, "behavior") ?? "all";
    if (behavior !== "all" && behavior !== "any") throw invalidArgument(`behavior must be "all" or "any"`);
    const breakOnError = optBool(req.args, "breakOnError") ?? false;
    const timeoutMs = optInt(req.args, "timeoutMs", 0, MAX_WAIT_MS) ?? 0;
    const withData = optBool(req.args, "withData") ?? false;
    const columns = optBool(req.args, "columns") ?? false;
    const settled = await scheduler.waitResults({
      resultIds,
      any: behavior === "any",
      breakOnError,
      timeoutMs,
    });
    // What the reply reports as COMPLETED must survive a crash of the server.
    await scheduler.store.flush();
    if (columns) return waitColumns(scheduler, resultIds, !settled, withData, server.config.maxFrameBytes);
    const statuses: Record<string, string> = {};
    const blobs: Buffer[] = [];
    const data: Record<string, number> = {};
    const found = scheduler.waitedResults(resultIds, withData);
    resultIds.forEach((id, i) => {
      const status = found.statuses[i] ?? "DELETED";
      statuses[id] = status;
      if (withData && status === "COMPLETED") {
        data[id] = blobs.length;
        blobs.push(found.data[i]!);
      }
    });
    return {
      msg: withData ? { timedOut: !settled, statuses, data } : { timedOut: !settled, statuses },
      blobs,
    };
  });
}

/**
 * The reply of `results.wait {columns: true}`: statuses as a list in the order of `resultIds`, and with
 * the data, `sizes` (-1: no data) and the data of every COMPLETED result back to back, in that order,
 * cut into blobs of at most maxFrameBytes: no map entry and no frame per result.
 */
function waitColumns(
  scheduler: Scheduler,
  resultIds: string[],
  timedOut: boolean,
  withData: boolean,
  maxFrameBytes: number,
): CommandReply {
  const n = resultIds.length;
  const statuses: string[] = new Array(n);
  const sizes: number[] | null = withData ? new Array(n) : null;
  const parts: Buffer[] = [];
  let bytes = 0;
  const found = scheduler.waitedResults(resultIds, withData);
  for (let i = 0; i < n; i++) {
    statuses[i] = found.statuses[i] ?? "DELETED";
    if (!sizes) continue;
    if (statuses[i] === "COMPLETED") {
      const data = found.data[i]!;
      sizes[i] = data.length;
      parts.push(data);
      bytes += data.length;
    } else sizes[i] = -1;
  }
  if (!sizes) return { msg: { timedOut, statuses } };
  const all = parts.length === 1 ? parts[0] : Buffer.concat(parts, bytes);
  const blobs: Buffer[] = [];
  for (let at = 0; at < all.length; at += maxFrameBytes) blobs.push(all.subarray(at, at + maxFrameBytes));
  return { msg: { timedOut, statuses, sizes }, blobs };
}
