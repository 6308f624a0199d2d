import type { CommandRequest, RequestCaller } from "../protocol/command-map.js";
import { permissionDenied } from "../protocol/errors.js";
import type { Result, Session, Task } from "../scheduler/model.js";
import type { Scheduler } from "../scheduler/scheduler.js";

/**
 * Session ownership (design §3.3): a session belongs to the user who created it, and only that user
 * or an admin reads or changes it, its tasks, results and events. Listings show a user its own.
 * The role's grant of the command itself is checked by the daemon before a handler runs.
 */

/** Whether the caller sees every session (admins; everyone when the server has no users file). */
export function seesAll(caller: RequestCaller): boolean {
  return caller.role === "admin";
}

/** What sessions.create records as the new session's owner. */
export function ownerFor(caller: RequestCaller): string | null {
  return caller.verified ? caller.user : null;
}

export function mayTouch(caller: RequestCaller, session: Session): boolean {
  return seesAll(caller) || (session.owner !== null && session.owner === caller.user);
}

/** A filter of session ids for listings: null when the caller sees them all. */
export function visibleSessions(req: CommandRequest, scheduler: Scheduler): ((id: string) => boolean) | null {
  if (seesAll(req.caller)) return null;
  const user = req.caller.user;
  return (id) => scheduler.sessions.get(id)?.owner === user;
}

function deny(req: CommandRequest, what: string): never {
  throw permissionDenied(
    `${what} belongs to another user: only its owner or an admin may use it (${req.cmd} by ${req.caller.user}); nothing was done`,
  );
}

/** The session (or a deleted one's record), else NOT_FOUND, or PERMISSION_DENIED when it is another's. */
export function ownSession(req: CommandRequest, scheduler: Scheduler, sessionId: string): Session {
  const session = scheduler.lifecycle.sessionRecord(sessionId);
  if (!mayTouch(req.caller, session)) deny(req, `session ${sessionId}`);
  return session;
}

function checkSessionOf(req: CommandRequest, scheduler: Scheduler, sessionId: string, what: string): void {
  if (seesAll(req.caller)) return;
  const session = scheduler.sessions.get(sessionId);
  // A task or result outlives its session only until the session's removal completes: no one's.
  if (!session || !mayTouch(req.caller, session)) deny(req, `${what} (of session ${sessionId})`);
}

/**
 * Checks every task id the caller names, before anything is done: each one that exists must be of a
 * session the caller may touch. Ids that do not exist are left to the command (NOT_FOUND or skipped).
 * Returns the tasks it read (scheduler.findTasks, in the order of `taskIds`) for the command to use,
 * or null where the caller sees every session and nothing was read.
 */
export function ownTasks(
  req: CommandRequest,
  scheduler: Scheduler,
  taskIds: readonly string[],
): (Task | undefined)[] | null {
  if (seesAll(req.caller)) return null;
  // A finished task may be only in the store: read from there, a few hundred a query.
  return checkSessionsOf(req, scheduler, "task", taskIds, scheduler.findTasks(taskIds));
}

/** As ownTasks, for result ids (the results of scheduler.findResults, without data). */
export function ownResults(
  req: CommandRequest,
  scheduler: Scheduler,
  resultIds: readonly string[],
): (Result | undefined)[] | null {
  if (seesAll(req.caller)) return null;
  return checkSessionsOf(req, scheduler, "result", resultIds, scheduler.findResults(resultIds).results);
}

/** Checks the session of each record found for `ids` (undefined: no such record), and returns them. */
function checkSessionsOf<T extends { sessionId: string }>(
  req: CommandRequest,
  scheduler: Scheduler,
  kind: string,
  ids: readonly string[],
  records: (T | undefined)[],
): (T | undefined)[] {
  records.forEach((r, i) => {
    if (r) checkSessionOf(req, scheduler, r.sessionId, `${kind} ${ids[i]}`);
  });
  return records;
}

/** A listing's `matches` narrowed to the records of sessions the caller may see. */
export function visibleMatches<T extends { sessionId: string }>(
  req: CommandRequest,
  scheduler: Scheduler,
  matches: (r: T) => boolean,
): (r: T) => boolean {
  const visible = visibleSessions(req, scheduler);
  return visible === null ? matches : (r) => visible(r.sessionId) && matches(r);
}
