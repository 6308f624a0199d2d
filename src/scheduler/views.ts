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
    size: r.size,
    createdAt: r.createdAt,
    completedAt: r.completedAt,
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
    createdAt: t.createdAt,
    submittedAt: t.submittedAt,
    startedAt: t.startedAt,
    endedAt: t.endedAt,
    error: t.error,
    workerId: t.workerId,
    attempts: t.attempts,
  };
}
