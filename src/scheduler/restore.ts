import type { KeptRequest, LoadedState } from "../store/store.js";
import { FINAL_TASK_STATUSES, TaskRecord, type Session, type Task } from "./model.js";
import type { Scheduler } from "./scheduler.js";

/**
 * A task record kept by a zgrid before lineage: no createdBy or parent, attempts without their queue and
 * dispatch times (an attempt's startedAt was its dispatch time until its worker reported a start).
 */
export function upgradeTask(t: Task): void {
  if (t.createdBy !== undefined) return;
  t.createdBy = null;
  t.parentTaskId ??= null;
  for (const a of t.attempts) {
    a.queuedAt ??= null;
    a.dispatchedAt ??= a.startedAt;
  }
}

/**
 * Rebuilds the state a store kept (design §8): final tasks stay as they are; tasks that were on a
 * worker when the server died lose that attempt and go back to the queue while retries allow;
 * queued tasks keep their place (submission order); pending ones wait for their dependencies again.
 */
export function restore(
  scheduler: Scheduler,
  state: LoadedState,
): { tasks: number; requeued: number; lost: number } {
  // A session whose deletion was committed first (changeSessionDurably) and not its removal (a crash
  // in between): removed now.
  const deleted = new Set(state.sessions.filter((s) => s.status === "DELETED").map((s) => s.id));
  if (deleted.size > 0) {
    for (const id of deleted) scheduler.store.deleteSession(id);
    state = {
      ...state,
      sessions: state.sessions.filter((s) => !deleted.has(s.id)),
      results: state.results.filter((r) => !deleted.has(r.sessionId)),
      tasks: state.tasks.filter((t) => !deleted.has(t.sessionId)),
    };
  }
  for (const s of state.sessions) {
    s.taskCount = 0;
    // Records of zgrid before sessions had their submission flags and times.
    const old = s as Session & { submissionStopped?: boolean };
    if (s.clientSubmission === undefined) s.clientSubmission = s.workerSubmission = !old.submissionStopped;
    delete old.submissionStopped;
    s.cancelledAt ??= null;
    s.closedAt ??= null;
    s.purgedAt ??= null;
    s.deletedAt ??= null;
    // Records of zgrid before users: no user's, so only admins see them.
    s.owner ??= null;
    scheduler.sessions.set(s.id, s);
  }
  for (const r of state.results) {
    // Records of zgrid before lineage.
    r.createdBy ??= null;
    scheduler.results.set(r.id, r);
    if (r.status === "DELETED" && r.stored) {
      // Its deletion was committed first (deleteResultsData), the removal of its data after it: a
      // crash in between leaves the data to be removed here.
      r.stored = false;
      scheduler.store.result(r);
      scheduler.store.deleteResultData(r.id);
    }
    if (r.status === "COMPLETED" && scheduler.sessions.get(r.sessionId)?.status === "PURGED") {
      // The session's purge was committed first (changeSessionDurably), its results' after it: a
      // crash in between leaves them to be purged here.
      scheduler.data.dropResultData(r);
      continue;
    }
    if (r.status === "COMPLETED") scheduler.resultBytes += r.size;
  }
  // Finished tasks stay in the store: counted, not held (issue 18 item 2).
  for (const f of state.finished ?? []) {
    scheduler.table.counts.add(f.partitionId, f.status, f.count);
    scheduler.table.sessionCounts.add(f.sessionId, f.status, f.count);
    const session = scheduler.sessions.get(f.sessionId);
    if (session) session.taskCount += f.count;
  }
  scheduler.seq = Math.max(scheduler.seq, state.nextSeq ?? 0);
  scheduler.resultBytes += state.storedResultBytes ?? 0;
  scheduler.resultCount = state.resultCount ?? state.results.length;
  let requeued = 0;
  let lost = 0;
  // Held in the scheduler's shape (a queued task's unset fields in no slot of their own).
  const tasks = state.tasks.map((t) => {
    upgradeTask(t);
    return TaskRecord.of(t);
  });
  for (const t of tasks) {
    scheduler.table.holdTask(t);
    scheduler.table.counts.add(t.options.partitionId, t.status);
    scheduler.table.sessionCounts.add(t.sessionId, t.status);
    scheduler.seq = Math.max(scheduler.seq, t.seq + 1);
    t.remainingDeps = 0;
    if (!FINAL_TASK_STATUSES.has(t.status)) scheduler.residency.pin(t);
    const session = scheduler.sessions.get(t.sessionId);
    if (session) session.taskCount++;
  }
  for (const t of tasks) {
    if (scheduler.sessions.get(t.sessionId)?.status === "CANCELLED" && !FINAL_TASK_STATUSES.has(t.status)) {
      // The session's cancellation was committed first (changeSessionDurably), its tasks' after it:
      // a crash in between leaves them to be cancelled here.
      scheduler.closeAttempt(t, "CANCELLED", t.error);
      scheduler.finishTask(t, "CANCELLED", `session ${t.sessionId} was cancelled`);
      continue;
    }
    switch (t.status) {
      case "DISPATCHED":
      case "PROCESSING":
        // Its worker may still be running it: a restart of ours is not charged to the task.
        lost++;
        t.workerId = null;
        scheduler.fleet.orphans.set(t.id, t);
        break;
      case "CANCELLING":
        scheduler.closeAttempt(t, "CANCELLED", t.error);
        scheduler.finishTask(t, "CANCELLED", t.error ?? "cancelled");
        break;
      case "SUBMITTED":
      case "RETRIED":
        requeued++;
        scheduler.enqueue(t, t.status);
        break;
      case "PAUSED":
        if (scheduler.sessions.get(t.sessionId)?.status !== "PAUSED") scheduler.enqueue(t);
        break;
      case "PENDING":
        scheduler.trackDependencies(t);
        break;
      default:
        break;
    }
  }
  if (scheduler.fleet.orphans.size > 0) {
    setTimeout(() => scheduler.fleet.releaseOrphans(), scheduler.opts.orphanGraceMs ?? 4000).unref();
  }
  const requestTasks = state.requestTasks ?? [];
  const answered =
    requestTasks.length === 0 ? tasks : [...tasks, ...requestTasks].sort((a, b) => a.seq - b.seq);
  scheduler.keptRequests = matchRequests(state.requests ?? [], answered);
  return { tasks: tasks.length, requeued, lost };
}

/**
 * The tasks of each kept keyed submission: `count` consecutive seqs from `firstSeq`, in `tasks` (sorted
 * by seq). A request whose tasks are not all there, or not those it made, is dropped.
 */
function matchRequests(
  requests: readonly KeptRequest[],
  tasks: readonly Task[],
): { key: string; at: number; tasks: Task[] }[] {
  const out: { key: string; at: number; tasks: Task[] }[] = [];
  for (const r of requests) {
    // Binary search: no index of every task for the few requests kept.
    let lo = 0;
    let hi = tasks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (tasks[mid].seq < r.firstSeq) lo = mid + 1;
      else hi = mid;
    }
    const from = lo;
    if (from >= tasks.length || tasks[from].id !== r.firstTaskId) continue;
    const mine = tasks.slice(from, from + r.count);
    if (
      mine.length === r.count &&
      mine.every((t, i) => t.seq === r.firstSeq + i && t.sessionId === r.sessionId)
    )
      out.push({ key: r.key, at: r.at, tasks: mine });
  }
  return out;
}
