import type { ServerContext } from "../daemons/context.js";
import { optBool, optMap, str, strList } from "../protocol/args.js";
import type { CommandRegistrar, CommandRequest } from "../protocol/command-map.js";
import { SESSION_FIELDS } from "../scheduler/filter-fields.js";
import { listPage, parseListQuery } from "../scheduler/listing.js";
import type { Session } from "../scheduler/model.js";
import { parseTaskOptions } from "../scheduler/task-options.js";
import { sessionView } from "../scheduler/views.js";
import { mayTouch, ownSession, ownerFor } from "./access.js";

/** sessions.create / get / list and the session life cycle: cancel, pause, resume, close, stopSubmission, purge, delete. */
export function register(map: CommandRegistrar, server: ServerContext): void {
  const scheduler = server.scheduler;

  map.register("sessions.create", async (req) => {
    const defaults = parseTaskOptions(optMap(req.args, "defaultTaskOptions"), "defaultTaskOptions");
    const partitionIds = strList(req.args, "partitionIds", true);
    const session = scheduler.lifecycle.createSession(defaults, partitionIds, ownerFor(req.caller));
    try {
      await scheduler.store.flush();
    } catch (err) {
      // Refused by the store: the session is not made (nor written by a later commit).
      scheduler.lifecycle.withdrawSession(session);
      throw err;
    }
    return { msg: sessionView(session) };
  });

  map.register("sessions.get", (req) => ({
    // A session deleted lately still answers, with its DELETED record.
    msg: sessionView(ownSession(req, scheduler, str(req.args, "sessionId"))),
  }));

  map.register("sessions.list", async (req) => {
    const q = parseListQuery(req.args, SESSION_FIELDS);
    const matches = q.filter.matches;
    const visible = {
      ...q,
      filter: { ...q.filter, matches: (s: Session) => mayTouch(req.caller, s) && matches(s) },
    };
    return { msg: await listPage(scheduler.sessions.values(), visible, sessionView) };
  });

  /** The session the request names, once the caller is found to be its owner or an admin. */
  const sessionId = (req: CommandRequest): string =>
    ownSession(req, scheduler, str(req.args, "sessionId")).id;
  /** Every session command answers the session's whole record (a deleted one's too). */
  const record = (id: string): Record<string, unknown> => sessionView(scheduler.lifecycle.sessionRecord(id));
  // Each change is committed before it takes effect (Scheduler.changeSessionDurably): a refused
  // commit answers an error and changes nothing.
  /**
   * After a change that touches the session's tasks or results: their records are committed too before
   * the reply. A commit refused now changes nothing of the answer: the session's record, committed
   * already, makes a restart redo the rest, and the store keeps trying.
   */
  const settle = () => scheduler.store.flush().catch(() => undefined);
  map.register("sessions.cancel", async (req) => {
    const id = sessionId(req);
    const { cancelled } = await scheduler.lifecycle.changeSessionDurably(
      id,
      "CANCELLED",
      ["RUNNING", "PAUSED", "CLOSED"],
      () => scheduler.lifecycle.cancelSession(id),
    );
    await settle();
    return { msg: { ...record(id), cancelled } };
  });
  map.register("sessions.pause", async (req) => {
    const id = sessionId(req);
    await scheduler.lifecycle.changeSessionDurably(id, "PAUSED", ["RUNNING"], () =>
      scheduler.lifecycle.pauseSession(id),
    );
    return { msg: record(id) };
  });
  map.register("sessions.resume", async (req) => {
    const id = sessionId(req);
    await scheduler.lifecycle.changeSessionDurably(id, "RUNNING", ["PAUSED"], () =>
      scheduler.lifecycle.resumeSession(id),
    );
    return { msg: record(id) };
  });
  map.register("sessions.close", async (req) => {
    const id = sessionId(req);
    await scheduler.lifecycle.changeSessionDurably(id, "CLOSED", ["RUNNING", "PAUSED"], () =>
      scheduler.lifecycle.closeSession(id),
    );
    return { msg: record(id) };
  });
  // ArmoniK's StopSubmission: `client` stops clients' submissions, `worker` the child tasks of running
  // tasks; neither given: both.
  map.register("sessions.stopSubmission", async (req) => {
    const id = sessionId(req);
    let client = optBool(req.args, "client");
    let worker = optBool(req.args, "worker");
    if (client === undefined && worker === undefined) client = worker = true;
    const current = scheduler.session(id);
    await scheduler.lifecycle.changeSessionDurably(
      id,
      current.status,
      ["RUNNING", "PAUSED"],
      () => scheduler.lifecycle.stopSubmission(id, client === true, worker === true),
      {
        clientSubmission: current.clientSubmission && client !== true,
        workerSubmission: current.workerSubmission && worker !== true,
      },
    );
    return { msg: record(id) };
  });
  map.register("sessions.purge", async (req) => {
    const id = sessionId(req);
    const { purged } = await scheduler.lifecycle.changeSessionDurably(
      id,
      "PURGED",
      ["CLOSED", "CANCELLED"],
      () => scheduler.lifecycle.purgeSession(id),
    );
    await settle();
    return { msg: { ...record(id), purgedResults: purged } };
  });
  map.register("sessions.delete", async (req) => {
    const id = sessionId(req);
    const removed = await scheduler.lifecycle.changeSessionDurably(
      id,
      "DELETED",
      ["RUNNING", "PAUSED", "CLOSED", "CANCELLED", "PURGED"],
      () => scheduler.lifecycle.deleteSession(id),
    );
    await settle();
    return { msg: { ...record(id), removed } };
  });
}
