import type { Result, Session, Task } from "./model.js";

/** What clients see of a session, a result, a task: plain data, times as epoch milliseconds. */
export function sessionView(s: Session): Record<string, unknown> {
  return {
    sessionId: s.id,
    status: s.status,
    createdAt: s.createdAt,
    partitionIds: s.partitionIds,
    defaultTaskOptions: s.defaultTaskOptions,
    taskCount: s.taskCount,
    submissionStopped: s.submissionStopped,
  };
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
