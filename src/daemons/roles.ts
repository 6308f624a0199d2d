/**
 * Roles and the commands they grant (ArmoniK's per-method permissions). Which sessions a granted
 * command may touch is the other half of the model: a session belongs to the user who created it,
 * and only that user or an admin reads or changes it (see commands/access.ts).
 */

export const ROLES = ["admin", "submitter", "reader"] as const;
export type Role = (typeof ROLES)[number];

/** What every role may ask: liveness, configuration, metrics, status, the grid's shape, its own lists. */
const READER_COMMANDS = [
  "connect",
  "disconnect",
  "ruok",
  "noop",
  "getconfig",
  "getCmdMap",
  "getmemused",
  "getmemstatus",
  "getstatus",
  "metrics",
  "prometheus",
  "health",
  "versions",
  "partitions.list",
  "applications.list",
  "workers.list",
  "sessions.list",
  "tasks.list",
  "tasks.count",
  "results.list",
  "auth.currentUser",
] as const;

/** A submitter's own sessions, from creation to deletion, their tasks, data and events. */
const SUBMITTER_COMMANDS = [
  ...READER_COMMANDS,
  "sessions.create",
  "sessions.get",
  "sessions.cancel",
  "sessions.pause",
  "sessions.resume",
  "sessions.close",
  "sessions.stopSubmission",
  "sessions.purge",
  "sessions.delete",
  "tasks.submit",
  "tasks.get",
  "tasks.getResultIds",
  "tasks.cancel",
  "results.create",
  "results.upload",
  "results.download",
  "results.get",
  "results.deleteData",
  "results.getOwnerTaskId",
  "results.wait",
  "events.subscribe",
  "events.unsubscribe",
] as const;

/**
 * Commands that change nothing the store keeps (reads, waits, downloads, subscriptions): answered at once
 * while the store is backlogged, when those that may change state wait (DaemonOptions.readOnly).
 */
export const READ_ONLY_COMMANDS: ReadonlySet<string> = new Set([
  ...READER_COMMANDS,
  "sessions.get",
  "tasks.get",
  "tasks.getResultIds",
  "results.download",
  "results.get",
  "results.getOwnerTaskId",
  "results.wait",
  "events.subscribe",
  "events.unsubscribe",
]);

/** `*`: every command, those of modules added to server-modules.cfg and `shutdown` included. */
export const ALL_COMMANDS = "*";

const GRANTS: Record<Role, ReadonlySet<string>> = {
  admin: new Set([ALL_COMMANDS]),
  submitter: new Set(SUBMITTER_COMMANDS),
  reader: new Set(READER_COMMANDS),
};

export function isRole(name: string): name is Role {
  return (ROLES as readonly string[]).includes(name);
}

/** Whether `role` may run `cmd` at all (on sessions it may touch). */
export function grants(role: Role, cmd: string): boolean {
  const set = GRANTS[role];
  return set.has(ALL_COMMANDS) || set.has(cmd);
}

/** The commands `role` grants, sorted (`["*"]` for an admin): what `auth.currentUser` answers. */
export function permissionsOf(role: Role): string[] {
  return [...GRANTS[role]].sort();
}
