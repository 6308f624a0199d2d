import type { Result, Session, Task } from "./model.js";

/** What clients see of a session, a result, a task: plain data, times as epoch milliseconds. */
export function sessionView(s: Session): Record<string, unknown> {
  return {
    sessionId: s.id,
    status: s.status,
    owner: s.owner,
    createdAt: s.createdAt,
    partitionIds: s.partitionIds,
    defaultTaskOptions: s.defaultTaskOptions,
    taskCount: s.taskCount,
    clientSubmission: s.clientSubmission,
    workerSubmission: s.workerSubmission,
    // Both stopped: what sessions.stopSubmission without flags does.
    submissionStopped: !s.clientSubmission && !s.workerSubmission,
    cancelledAt: s.cancelledAt,
    closedAt: s.closedAt,
    purgedAt: s.purgedAt,
    deletedAt: s.deletedAt,
    // From creation to its end (closed, cancelled, deleted), null while it runs.
    duration: sessionEnd(s) === null ? null : sessionEnd(s)! - s.createdAt,
  };
}

function sessionEnd(s: Session): number | null {
  return s.closedAt ?? s.cancelledAt ?? s.deletedAt ?? null;
}

export function resultView(r: Result): Record<string, unknown> {
  return {
    resultId: r.id,
    sessionId: r.sessionId,
    name: r.name,
    status: r.status,
    ownerTaskId: r.ownerTaskId,
    createdBy: r.createdBy,
    size: r.size,
    createdAt: r.createdAt,
    completedAt: r.completedAt,
  };
}

/** No ids: shared by every view that has none, never written to. */
const NO_IDS: readonly string[] = Object.freeze([]);

/**
 * Where a task comes from (docs/protocol.md, "Lineage"). zgrid retries a task as a new attempt of the
 * same task (same id, attempts listed), not as a new task: so its initial task is itself, and it is the
 * retry of no other task.
 */
export function taskLineage(t: Task): Record<string, unknown> {
  return {
    createdBy: t.createdBy,
    parentTaskIds: t.parentTaskId === null ? NO_IDS : [t.parentTaskId],
    initialTaskId: t.id,
    retryOfTaskIds: NO_IDS,
  };
}

/**
 * A task's times, epoch ms, null until reached: received (the server read its submission), submitted
 * (entered its partition's queue), then of its latest attempt dispatched (sent to a worker), started
 * (the worker said so), and its end. Each attempt has its own in `attempts`.
 */
export function taskTimes(t: Task): Record<string, number | null> {
  const last = t.attempts.length === 0 ? undefined : t.attempts[t.attempts.length - 1];
  return {
    receivedAt: t.createdAt,
    submittedAt: t.submittedAt,
    dispatchedAt: last === undefined ? null : last.dispatchedAt,
    startedAt: t.startedAt,
    endedAt: t.endedAt,
  };
}

export function taskView(t: Task): Record<string, unknown> {
  return {
    taskId: t.id,
    sessionId: t.sessionId,
    status: t.status,
    payloadId: t.payloadId,
    expectedOutputIds: t.expectedOutputIds,
    dataDependencies: t.dataDependencies,
    options: t.options,
    ...taskLineage(t),
    // Its older name for receivedAt, kept: filters (createdAfter) and sorting use it.
    createdAt: t.createdAt,
    ...taskTimes(t),
    error: t.error,
    workerId: t.workerId,
    attempts: t.attempts,
  };
}
