import { failedPrecondition, invalidArgument } from "../protocol/errors.js";
import {
  FINAL_TASK_STATUSES,
  NO_IDS,
  TaskRecord,
  type Result,
  type Session,
  type Task,
  type TaskOptions,
} from "./model.js";
import type { Scheduler } from "./scheduler.js";
import { mergeTaskOptions } from "./task-options.js";
import type { AttemptStaging, TaskSubmission } from "./types.js";

/** Names of the results a submission creates for a task: shared strings, not one per task. */
const OUTPUT_NAMES = Array.from({ length: 16 }, (_, k) => `output-${k}`);

/**
 * Submission of tasks (ArmoniK's SubmitTasks): a batch is checked whole before any task is made, its
 * tasks and the results they need are built, then made live (owning their outputs, waiting for their
 * dependencies or queued). A client's batch goes live at once; a running task's children are built
 * here and go live when their parent succeeds (Fleet). A batch whose commit the store refused is taken
 * back whole.
 */
export class Submission {
  constructor(private readonly s: Scheduler) {}

  /**
   * Submits a batch atomically: every task is checked before any is created, so a bad task leaves the
   * session unchanged.
   */
  submitTasks(
    sessionId: string,
    submissionOptions: Partial<TaskOptions>,
    items: TaskSubmission[],
    createdBy = "client",
  ): Task[] {
    const session = this.s.session(sessionId);
    this.s.requireSubmission(session, "client");
    this.s.requireBatch(items.length, "tasks");
    const { options, read } = this.validateSubmission(session, submissionOptions, items, null);
    if (this.s.maxMemoryResultBytes !== Infinity) {
      let bytes = 0;
      for (const item of items) bytes += item.payload?.length ?? 0;
      this.s.data.checkDataRoom(bytes);
    }
    const tasks = this.buildTasks(sessionId, items, options, null, this.s.user(createdBy), null);
    for (const t of tasks) this.insertTask(t, read);
    this.s.residency.submitted(tasks.length);
    return tasks;
  }

  /**
   * Takes back a submission whose commit the store refused (a full disk), so that a reply of failure
   * means nothing happened: its tasks and the results it created leave memory and the store's pending
   * writes, expected outputs it was given are owned by no task again, and a task a worker already
   * received is cancelled there. Subscribers were told of the tasks; they are not told of this.
   */
  withdrawTasks(tasks: readonly Task[], items: readonly TaskSubmission[]): void {
    if (tasks.length === 0) return;
    const gone = new Set(tasks);
    const created: Result[] = [];
    const byWorker = new Map<string, string[]>();
    for (const q of this.s.table.queues.values()) q.remove((t) => gone.has(t));
    tasks.forEach((t, i) => {
      this.s.table.releaseTask(t);
      if (!FINAL_TASK_STATUSES.has(t.status)) this.s.residency.unpin(t);
      if (t.workerId !== null) {
        this.s.workers.get(t.workerId)?.inflight.delete(t.id);
        let ids = byWorker.get(t.workerId);
        if (!ids) byWorker.set(t.workerId, (ids = []));
        ids.push(t.id);
      }
      this.s.table.counts.remove(t.options.partitionId, t.status);
      this.s.table.sessionCounts.remove(t.sessionId, t.status);
      const session = this.s.sessions.get(t.sessionId);
      if (session) session.taskCount--;
      for (const id of [t.payloadId, ...t.dataDependencies]) {
        const waiting = this.s.dependents.get(id);
        if (!waiting) continue;
        const kept = waiting.filter((w) => !gone.has(w));
        if (kept.length > 0) this.s.dependents.set(id, kept);
        else this.s.dependents.delete(id);
      }
      const item = items[i];
      // The results the submission made for this task: its inline payload, outputs it was not given.
      if (item.payloadId === undefined) created.push(this.s.results.get(t.payloadId)!);
      const madeOutputs = item.expectedOutputIds === undefined || item.expectedOutputIds.length === 0;
      for (const id of t.expectedOutputIds) {
        const r = this.s.results.get(id);
        if (!r) continue;
        if (madeOutputs) created.push(r);
        else if (r.ownerTaskId === t.id) r.ownerTaskId = null;
      }
    });
    this.s.store.discard(tasks, []);
    this.s.data.withdrawResults(created);
    for (const [workerId, ids] of byWorker)
      this.s.dispatcher.cancel(workerId, ids, "its submission was refused");
  }

  /**
   * Checks a batch before anything is created: the options of each task, and the records of the
   * results the batch names that had left memory, read once for the check and for insertTask.
   * `parent`: the task submitting children through its agent; its own expected outputs may be handed
   * to a child (delegation).
   */
  validateSubmission(
    session: Session,
    submissionOptions: Partial<TaskOptions>,
    items: TaskSubmission[],
    parent: Task | null,
  ): { options: TaskOptions[]; read: Map<string, Result> } {
    const sessionId = session.id;
    const read = this.s.storedResults(namedResults(items));
    const claimed = new Set<string>();
    const options: TaskOptions[] = new Array(items.length);
    let shared: TaskOptions | undefined;
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      const where = `tasks[${i}]`;
      if (item.payloadId !== undefined)
        this.s.sessionResult(sessionId, item.payloadId, `${where}.payloadId`, parent, read);
      else if (item.payload === undefined)
        throw invalidArgument(`${where} needs a payloadId or an inline payload`);
      for (const id of item.expectedOutputIds ?? []) {
        const r = this.s.sessionResult(sessionId, id, `${where} expected output`, parent, read);
        if (r.status !== "CREATED")
          throw failedPrecondition(`${where}: expected output ${id} is ${r.status}, not CREATED`);
        if (r.ownerTaskId !== null && r.ownerTaskId !== parent?.id) {
          const owner = this.s.tasks.get(r.ownerTaskId);
          if (owner && !FINAL_TASK_STATUSES.has(owner.status)) {
            throw failedPrecondition(`${where}: expected output ${id} is already owned by task ${owner.id}`);
          }
        }
        if (claimed.has(id))
          throw invalidArgument(`${where}: expected output ${id} appears twice in this submission`);
        claimed.add(id);
      }
      for (const id of item.dataDependencies ?? [])
        this.s.sessionResult(sessionId, id, `${where} data dependency`, parent, read);
      // Tasks without options of their own share one merged object: a million queued tasks, one copy.
      const merged =
        item.taskOptions === undefined
          ? (shared ??= mergeTaskOptions(session.defaultTaskOptions, submissionOptions))
          : mergeTaskOptions(session.defaultTaskOptions, submissionOptions, item.taskOptions);
      if (session.partitionIds.length > 0 && !session.partitionIds.includes(merged.partitionId)) {
        throw invalidArgument(
          `${where}: partition "${merged.partitionId}" is not one of the session's partitions (${session.partitionIds.join(", ")})`,
        );
      }
      options[i] = merged;
    }
    return { options, read };
  }

  /**
   * Makes the Task objects and their inline payload / new output results; inserts no task. `createdBy`:
   * the client's user, or the parent's id when `parent` submits them through its agent.
   */
  buildTasks(
    sessionId: string,
    items: TaskSubmission[],
    options: TaskOptions[],
    staging: AttemptStaging | null,
    createdBy: string,
    parent: Task | null,
  ): Task[] {
    const now = this.s.clock.now();
    const created: Task[] = new Array(items.length);
    const result = (name: string, data?: Buffer): string => {
      const r = this.s.newResult(sessionId, name, createdBy, data, staging);
      return r.id;
    };
    let lastPayloadId: string | null = null;
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      const id = this.s.ids.next("t");
      let payloadId: string;
      if (item.payloadId === undefined) payloadId = result("payload", item.payload);
      else {
        // The result's own id string, not the copy each task of the request was decoded with: a
        // million tasks sharing a payload keep one string, not a million.
        if (item.payloadId !== lastPayloadId)
          lastPayloadId = this.s.results.get(item.payloadId)?.id ?? item.payloadId;
        payloadId = lastPayloadId;
      }
      let outputs = item.expectedOutputIds;
      if (outputs === undefined || outputs.length === 0) {
        const n = item.outputCount ?? (outputs === undefined ? 1 : 0);
        // Sized to fit: an array grown by push keeps room for 17 ids, 150 bytes per queued task.
        if (n === 1) outputs = [result(OUTPUT_NAMES[0])];
        else {
          outputs = new Array<string>(n);
          for (let k = 0; k < n; k++) outputs[k] = result(OUTPUT_NAMES[k] ?? `output-${k}`);
        }
      }
      created[i] = new TaskRecord(
        id,
        sessionId,
        payloadId,
        outputs,
        item.dataDependencies ?? NO_IDS,
        options[i],
        now,
        createdBy,
        parent === null ? null : parent.id,
      );
    }
    return created;
  }

  /**
   * Makes a built task live: known, owning its outputs, queued once its dependencies are there. `read`:
   * records of results it names that left memory, read already (validateSubmission).
   */
  insertTask(task: Task, read?: ReadonlyMap<string, Result>): void {
    task.seq = this.s.seq++;
    this.s.table.counts.add(task.options.partitionId, "PENDING");
    this.s.table.sessionCounts.add(task.sessionId, "PENDING");
    this.s.store.task(task);
    this.s.table.holdTask(task);
    const session = this.s.sessions.get(task.sessionId);
    if (session) session.taskCount++;
    this.s.events.newTask(task);
    this.s.residency.pin(task, read);
    for (const out of task.expectedOutputIds) {
      const r = this.s.results.get(out);
      if (!r) continue;
      const previous = r.ownerTaskId;
      r.ownerTaskId = task.id;
      this.s.store.result(r);
      this.s.events.resultOwner(r, previous);
    }
    this.s.trackDependencies(task);
  }
}

/**
 * The ids of the results a batch names that may have left memory: payloads and data dependencies (an
 * expected output is CREATED, and a CREATED result never leaves memory).
 */
function* namedResults(items: readonly TaskSubmission[]): Generator<string> {
  for (const item of items) {
    if (item.payloadId !== undefined) yield item.payloadId;
    if (item.dataDependencies) yield* item.dataDependencies;
  }
}

/** The ids of the results built tasks name that insertTask keeps in memory: payloads, data dependencies. */
export function* pinnedBy(tasks: readonly Task[]): Generator<string> {
  for (const t of tasks) {
    yield t.payloadId;
    yield* t.dataDependencies;
  }
}
