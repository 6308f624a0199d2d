import type { Result, Task } from "./model.js";
import { taskLineage, taskTimes } from "./views.js";

export const EVENT_TYPES = [
  "newTask",
  "taskStatusUpdate",
  "newResult",
  "resultStatusUpdate",
  "resultOwnerUpdate",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** What a subscriber wants: event types, and optionally only some tasks, results or statuses. */
export interface EventFilter {
  eventTypes: ReadonlySet<EventType>;
  taskIds?: ReadonlySet<string>;
  resultIds?: ReadonlySet<string>;
  statuses?: ReadonlySet<string>;
}

export interface Subscriber {
  id: string;
  sessionId: string;
  filter: EventFilter;
  send(event: Record<string, unknown>): void;
}

/**
 * Session events for subscribers (design §4). The scheduler reports each change here; with no
 * subscriber for a session this costs one map lookup.
 */
export class EventHub {
  private readonly bySession = new Map<string, Map<string, Subscriber>>();
  private readonly sessionOf = new Map<string, string>();

  add(sub: Subscriber): void {
    let subs = this.bySession.get(sub.sessionId);
    if (!subs) {
      subs = new Map();
      this.bySession.set(sub.sessionId, subs);
    }
    subs.set(sub.id, sub);
    this.sessionOf.set(sub.id, sub.sessionId);
  }

  remove(id: string): boolean {
    const sessionId = this.sessionOf.get(id);
    if (sessionId === undefined) return false;
    this.sessionOf.delete(id);
    const subs = this.bySession.get(sessionId)!;
    subs.delete(id);
    if (subs.size === 0) this.bySession.delete(sessionId);
    return true;
  }

  /** How many subscriptions have an id starting with `prefix` (one peer's). */
  countPrefix(prefix: string): number {
    let n = 0;
    for (const id of this.sessionOf.keys()) if (id.startsWith(prefix)) n++;
    return n;
  }

  /** Removes every subscription whose id starts with `prefix` (all of one peer's). */
  removePrefix(prefix: string): number {
    let n = 0;
    for (const id of [...this.sessionOf.keys()]) if (id.startsWith(prefix) && this.remove(id)) n++;
    return n;
  }

  /** A deleted session's subscriptions end. */
  removeSession(sessionId: string): void {
    const subs = this.bySession.get(sessionId);
    if (!subs) return;
    for (const id of subs.keys()) this.sessionOf.delete(id);
    this.bySession.delete(sessionId);
  }

  private emit(
    sessionId: string,
    type: EventType,
    taskId: string | null,
    resultId: string | null,
    status: string | null,
    event: () => Record<string, unknown>,
  ): void {
    const subs = this.bySession.get(sessionId);
    if (!subs) return;
    let built: Record<string, unknown> | null = null;
    for (const sub of subs.values()) {
      if (!wants(sub.filter, type, taskId, resultId, status)) continue;
      built ??= event();
      sub.send(built);
    }
  }

  // Each report returns at once while nobody subscribes, before it makes the closure that builds its
  // event: a task reports about ten changes in its life, each one such a closure before.
  newTask(t: Task): void {
    if (this.bySession.size === 0) return;
    this.emit(t.sessionId, "newTask", t.id, null, t.status, () => newTaskEvent(t));
  }

  taskStatus(t: Task): void {
    if (this.bySession.size === 0) return;
    this.emit(t.sessionId, "taskStatusUpdate", t.id, null, t.status, () => ({
      type: "taskStatusUpdate",
      sessionId: t.sessionId,
      taskId: t.id,
      status: t.status,
      // The attempt this status belongs to (0 before the first dispatch), and the times so far.
      attempt: t.attempts.length,
      ...taskTimes(t),
    }));
  }

  newResult(r: Result): void {
    if (this.bySession.size === 0) return;
    this.emit(r.sessionId, "newResult", null, r.id, r.status, () => newResultEvent(r));
  }

  resultStatus(r: Result): void {
    if (this.bySession.size === 0) return;
    this.emit(r.sessionId, "resultStatusUpdate", null, r.id, r.status, () => ({
      type: "resultStatusUpdate",
      sessionId: r.sessionId,
      resultId: r.id,
      status: r.status,
    }));
  }

  resultOwner(r: Result, previousOwnerId: string | null): void {
    if (this.bySession.size === 0) return;
    this.emit(r.sessionId, "resultOwnerUpdate", null, r.id, r.status, () => ({
      type: "resultOwnerUpdate",
      sessionId: r.sessionId,
      resultId: r.id,
      previousOwnerId,
      currentOwnerId: r.ownerTaskId,
    }));
  }
}

export function wants(
  f: EventFilter,
  type: EventType,
  taskId: string | null,
  resultId: string | null,
  status: string | null,
): boolean {
  if (!f.eventTypes.has(type)) return false;
  if (f.taskIds && (taskId === null || !f.taskIds.has(taskId))) return false;
  if (f.resultIds && (resultId === null || !f.resultIds.has(resultId))) return false;
  if (f.statuses && (status === null || !f.statuses.has(status))) return false;
  return true;
}

export function newTaskEvent(t: Task): Record<string, unknown> {
  return {
    type: "newTask",
    sessionId: t.sessionId,
    taskId: t.id,
    status: t.status,
    payloadId: t.payloadId,
    expectedOutputIds: t.expectedOutputIds,
    dataDependencies: t.dataDependencies,
    partitionId: t.options.partitionId,
    ...taskLineage(t),
    ...taskTimes(t),
  };
}

export function newResultEvent(r: Result): Record<string, unknown> {
  return {
    type: "newResult",
    sessionId: r.sessionId,
    resultId: r.id,
    name: r.name,
    status: r.status,
    ownerTaskId: r.ownerTaskId,
    createdBy: r.createdBy,
  };
}
