import { IdMap } from "./id-map.js";
import type { AppSet } from "./task-queue.js";
import { NO_ATTEMPTS, NO_IDS, type Attempt, type Task } from "./model.js";
import type { Scheduler } from "./scheduler.js";
import { pinnedBy } from "./submission.js";
import type { AttemptStaging, Completion, WorkerState } from "./types.js";

/**
 * A new attempt of `task`, dispatched to `workerId` at `now`. It was queued when the task was first
 * submitted, or, for a retry, when the attempt before it ended (a retry is queued at once).
 */
function newAttempt(task: Task, workerId: string, now: number): void {
  const attempts = task.attempts;
  const before = attempts.at(-1);
  // A retry has not started until its worker says so: not the attempt before's start.
  if (before !== undefined) task.startedAt = null;
  const attempt: Attempt = {
    number: attempts.length + 1,
    workerId,
    queuedAt: before === undefined ? task.submittedAt : before.endedAt,
    dispatchedAt: now,
    startedAt: now,
    endedAt: null,
    status: null,
    error: null,
  };
  // The first attempt makes the task's own list, with room for itself alone: a push onto [] reserved
  // 17 slots, 136 bytes a finished task kept.
  if (attempts === NO_ATTEMPTS) task.attempts = [attempt];
  else attempts.push(attempt);
}

/**
 * The connected workers as the scheduler sees them (design §6): joining and leaving, what a worker holds
 * when it comes back, the starts and completions it reports, tasks it kept past their time. How a task
 * that ends goes on (retried, finished, its outputs completed) is the scheduler's; which worker gets
 * which queued task is the Dispatcher's.
 */
export class Fleet {
  /**
   * Tasks that were on a worker when the server stopped, by id: they wait (status and attempt as they
   * were) for that worker to come back holding them, until the orphan grace ends.
   */
  readonly orphans = new Map<string, Task>();

  constructor(private readonly s: Scheduler) {}

  /** The orphan grace is over: what no worker came back for runs again, charged as a lost attempt. */
  releaseOrphans(): void {
    for (const t of this.orphans.values()) {
      if (t.workerId !== null || (t.status !== "DISPATCHED" && t.status !== "PROCESSING")) continue;
      this.s.failAttempt(t, "its worker did not come back after the server restarted", true);
    }
    this.orphans.clear();
  }

  /** `task` goes to worker `w`: its new attempt first (the status event carries its times). */
  assign(task: Task, w: WorkerState, now: number): void {
    newAttempt(task, w.id, now);
    task.workerId = w.id;
    this.s.setStatus(task, "DISPATCHED");
    w.inflight.set(task.id, task);
  }

  /** A worker's applications changed (APPS: it was given new modules): it may take other tasks now. */
  setWorkerApps(workerId: string, apps: AppSet): void {
    const w = this.s.workers.get(workerId);
    if (!w) return;
    w.apps = apps;
    this.s.dispatcher.schedule();
  }

  addWorker(
    info: Omit<WorkerState, "inflight" | "avgTaskMs" | "avgPayloadBytes" | "connectedAt" | "lastHeartbeat">,
  ): WorkerState {
    const existing = this.s.workers.get(info.id);
    if (existing) {
      // The same worker process saying READY again (it thought the server lost): its tasks are still
      // running there, so they stay its own rather than being retried elsewhere.
      existing.partitions = info.partitions;
      existing.slots = info.slots;
      existing.capacity = info.capacity;
      existing.columns = info.columns;
      existing.packedPayloads = info.packedPayloads;
      existing.apps = info.apps;
      existing.lastHeartbeat = Date.now();
      this.s.dispatcher.schedule();
      return existing;
    }
    const w: WorkerState = {
      ...info,
      inflight: new IdMap(this.s.ids, "t"),
      avgTaskMs: null,
      avgPayloadBytes: 0,
      connectedAt: Date.now(),
      lastHeartbeat: Date.now(),
    };
    this.s.workers.set(w.id, w);
    this.s.log.info({ worker: w.id, partitions: w.partitions, slots: w.slots }, "worker joined");
    this.s.dispatcher.schedule();
    return w;
  }

  /** A worker that left or died: its tasks are retried elsewhere while their retries allow. */
  removeWorker(workerId: string, reason: string): void {
    const w = this.s.workers.get(workerId);
    if (!w) return;
    this.s.workers.delete(workerId);
    // Leaving with tasks in hand is worth a warning; a clean goodbye is not.
    this.s.log[w.inflight.size > 0 ? "warn" : "info"](
      { worker: workerId, tasks: w.inflight.size, reason },
      "worker left",
    );
    for (const taskId of w.inflight.keys()) {
      const task = this.s.tasks.get(taskId);
      if (task) this.s.failAttempt(task, `worker ${workerId} was lost (${reason})`, true);
    }
    this.s.dispatcher.schedule();
  }

  /**
   * A worker id taken by a new connection: its process restarted (same `--worker-id`), and what the old
   * process was given and the new one does not hold is lost with it, retried while retries allow.
   */
  releaseUnheld(workerId: string, held: readonly string[]): void {
    const w = this.s.workers.get(workerId);
    if (!w || w.inflight.size === 0) return;
    const keep = new Set(held);
    const lost = [...w.inflight.keys()].filter((id) => !keep.has(id));
    if (lost.length === 0) return;
    this.s.log.warn({ worker: workerId, tasks: lost.length }, "worker restarted without tasks it held");
    for (const id of lost) {
      w.inflight.delete(id);
      const task = this.s.tasks.get(id);
      if (task && task.workerId === workerId)
        this.s.failAttempt(task, `worker ${workerId} restarted without it`, true);
    }
    this.s.dispatcher.schedule();
  }

  /**
   * A worker (re)joining says which tasks it still holds. Those it already has, or that wait in a queue
   * (requeued after a restart of the server), become its own again; the ids of the others are returned
   * so that the worker drops them.
   */
  adoptTasks(workerId: string, taskIds: string[]): string[] {
    const w = this.s.workers.get(workerId);
    if (!w) return taskIds;
    const adopt = new Set<string>();
    const notYours: string[] = [];
    // Never more than the worker's credit allows, whatever it claims to hold.
    let room = w.capacity - w.inflight.size;
    for (const id of taskIds) {
      if (room <= 0) {
        if (!(this.s.tasks.get(id)?.workerId === workerId && w.inflight.has(id))) notYours.push(id);
        continue;
      }
      const t = this.s.tasks.get(id);
      if (t && t.workerId === workerId && w.inflight.has(id)) continue;
      const orphan = this.orphans.get(id);
      if (
        orphan &&
        this.s.tasks.get(id) === orphan &&
        orphan.workerId === null &&
        (orphan.status === "DISPATCHED" || orphan.status === "PROCESSING") &&
        orphan.attempts.at(-1)?.workerId === workerId
      ) {
        // Still running where it was when the server stopped: the same attempt goes on.
        this.orphans.delete(id);
        orphan.workerId = workerId;
        w.inflight.set(id, orphan);
        room--;
        continue;
      }
      if (
        t &&
        (t.status === "SUBMITTED" || t.status === "RETRIED") &&
        w.partitions.includes(t.options.partitionId)
      ) {
        adopt.add(id);
        room--;
      } else notYours.push(id);
    }
    if (adopt.size === 0) return notYours;
    const now = Date.now();
    for (const q of this.s.table.queues.values()) {
      for (const t of q.remove((t) => adopt.has(t.id))) this.assign(t, w, now);
    }
    return notYours;
  }

  /**
   * Ends as TIMEOUT every running task past its maxDuration by more than `graceMs` that its worker has
   * not reported (a worker gone quiet about a task, or one that ignores the limit), and tells the
   * worker to drop it. Called on the heartbeat tick.
   */
  expireOverdue(now: number, graceMs: number): void {
    for (const w of this.s.workers.values()) {
      let overdue: Task[] | null = null;
      for (const t of w.inflight.values()) {
        if (t.status !== "PROCESSING" || t.options.maxDuration <= 0) continue;
        if (now - t.attempts[t.attempts.length - 1].startedAt > t.options.maxDuration + graceMs)
          (overdue ??= []).push(t);
      }
      if (!overdue) continue;
      for (const t of overdue) {
        const why = `maxDuration ${t.options.maxDuration} ms exceeded and worker ${w.id} did not stop the task`;
        w.inflight.delete(t.id);
        this.s.closeAttempt(t, "TIMEOUT", why);
        this.s.finishTask(t, "TIMEOUT", why);
      }
      this.s.dispatcher.cancel(
        w.id,
        overdue.map((t) => t.id),
        "maxDuration exceeded (ended by the server)",
      );
      this.s.dispatcher.schedule();
    }
  }

  tasksStarted(workerId: string, taskIds: string[]): void {
    const w = this.s.workers.get(workerId);
    if (!w) return;
    const now = Date.now();
    for (const id of taskIds) {
      const task = this.s.tasks.get(id);
      if (!task || task.workerId !== workerId || task.status !== "DISPATCHED") continue;
      task.startedAt = now;
      task.attempts[task.attempts.length - 1].startedAt = now;
      this.s.setStatus(task, "PROCESSING");
    }
  }

  /**
   * Completions from one worker. A completion is taken only from the worker that holds the task, and
   * only while the task is in flight: a late or repeated report changes nothing (exactly once).
   */
  completeTasks(workerId: string, completions: Completion[]): void {
    const w = this.s.workers.get(workerId);
    if (!w) return;
    const now = Date.now();
    let ended = 0;
    for (const c of completions) {
      const task = this.s.tasks.get(c.taskId);
      if (!task || task.workerId !== workerId || !w.inflight.has(task.id)) continue;
      w.inflight.delete(task.id);
      ended++;
      if (c.status !== "CANCELLED") {
        // Run time from the start on a slot (or from dispatch, if STARTED never came).
        const ms = now - task.attempts[task.attempts.length - 1].startedAt;
        this.s.dispatcher.ranFor(w, ms);
      }
      if (task.status === "CANCELLING") {
        this.s.closeAttempt(task, "CANCELLED", "cancelled");
        this.s.finishTask(task, "CANCELLED", task.error ?? "cancelled");
        continue;
      }
      switch (c.status) {
        case "COMPLETED":
          this.succeedTask(task, c.output ?? Buffer.alloc(0));
          break;
        case "FAILED":
          this.s.failAttempt(task, c.error ?? "the application failed", false);
          break;
        case "ERROR":
        case "TIMEOUT":
        case "CANCELLED":
          this.s.closeAttempt(task, c.status, c.error ?? null);
          this.s.finishTask(task, c.status, c.error ?? null);
          break;
        default:
          this.s.closeAttempt(task, "ERROR", `worker reported unknown status ${String(c.status)}`);
          this.s.finishTask(task, "ERROR", `worker reported unknown status ${String(c.status)}`);
      }
    }
    // The client waiting for these tasks hears of them once they are on disk: no delay before the commit.
    if (ended > 0) this.s.store.commitSoon();
    this.s.dispatcher.schedule();
  }

  /**
   * A successful attempt: every expected output must be produced (the returned value completes the
   * first), uploaded through the agent, or delegated to a child; then what the attempt staged is
   * committed, and the outputs completed.
   */
  private succeedTask(task: Task, output: Buffer): void {
    this.s.closeAttempt(task, "COMPLETED", null);
    const st = this.s.staged.get(task.id);
    const [first] = task.expectedOutputIds;
    const missing = this.missingOutputs(task, st);
    if (missing.length > 0) {
      this.s.finishTask(
        task,
        "ERROR",
        `the task returned without producing its outputs ${missing.join(", ")}`,
      );
      return;
    }
    let bytes = output.length;
    if (st) for (const data of st.uploads.values()) bytes += data.length;
    if (this.s.resultBytes + bytes > this.s.maxMemoryResultBytes) {
      this.s.discardStaging(task);
      this.s.finishTask(task, "ERROR", this.s.data.memoryFull(bytes));
      return;
    }
    task.workerId = null;
    task.endedAt = Date.now();
    if (st) {
      this.s.staged.take(task.id);
      for (const id of st.results) {
        const r = this.s.results.get(id);
        if (r) {
          this.s.resultCount++;
          this.s.events.newResult(r);
          this.s.store.result(r);
        }
      }
      for (const [id, data] of st.uploads) {
        const r = this.s.results.get(id);
        if (r && r.status === "CREATED" && !task.expectedOutputIds.includes(id))
          this.s.completeResult(r, data);
      }
      if (st.children.length > 0) {
        // What the children name that left memory meanwhile: read once, not an id at a time.
        const read = this.s.storedResults(pinnedBy(st.children));
        for (const child of st.children) this.s.submission.insertTask(child, read);
      }
    }
    this.s.setStatus(task, "COMPLETED");
    this.s.onTaskEnd?.(task);
    for (const id of task.expectedOutputIds) {
      const r = this.s.results.get(id);
      if (!r || r.ownerTaskId !== task.id || r.status !== "CREATED") continue;
      const uploaded = st?.uploads.get(id);
      if (uploaded) this.s.completeResult(r, uploaded);
      else if (id === first) this.s.completeResult(r, output);
    }
  }

  /**
   * The expected outputs of a task that returned which it did not produce: any after the first (the
   * returned value completes that one) neither uploaded nor delegated to a child. A task of one output
   * (most) has none to check: no set or list is made for it.
   */
  private missingOutputs(task: Task, st: AttemptStaging | undefined): string[] {
    const outs = task.expectedOutputIds;
    if (outs.length <= 1) return NO_IDS;
    const delegated = new Set<string>();
    if (st) for (const child of st.children) for (const id of child.expectedOutputIds) delegated.add(id);
    const missing: string[] = [];
    for (let i = 1; i < outs.length; i++) {
      const id = outs[i];
      const r = this.s.results.get(id);
      if (!r || r.ownerTaskId !== task.id || r.status !== "CREATED") continue;
      if (!delegated.has(id) && !st?.uploads.has(id)) missing.push(id);
    }
    return missing;
  }
}
