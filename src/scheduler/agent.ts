import { failedPrecondition } from "../protocol/errors.js";
import type { Result, Task, TaskOptions } from "./model.js";
import type { Scheduler } from "./scheduler.js";
import type { NewResult, TaskSubmission } from "./types.js";

/**
 * What a running task asks of the server through its agent (worker protocol AGENT_*): results and
 * child tasks it creates, data it uploads, data it reads. What it creates is staged with its attempt
 * (StagingArea) and committed only if the attempt succeeds; only the worker running the task may ask.
 */
export class Agent {
  constructor(private readonly s: Scheduler) {}

  /** The task `taskId` if it is running on `workerId`, else FAILED_PRECONDITION. */
  private runningTask(workerId: string, taskId: string): Task {
    const t = this.s.tasks.get(taskId);
    if (!t || t.workerId !== workerId || (t.status !== "DISPATCHED" && t.status !== "PROCESSING")) {
      throw failedPrecondition(
        `task ${taskId} is not running on worker ${workerId}: its agent calls are refused`,
      );
    }
    return t;
  }

  createResults(workerId: string, taskId: string, items: NewResult[]): Result[] {
    const task = this.runningTask(workerId, taskId);
    this.s.requireBatch(items.length, "results");
    const st = this.s.staged.of(task);
    return items.map((item) => {
      const r = this.s.newResult(task.sessionId, item.name, task.id, undefined, st);
      if (item.data) st.uploads.set(r.id, item.data);
      return r;
    });
  }

  upload(workerId: string, taskId: string, resultId: string, data: Buffer): void {
    const task = this.runningTask(workerId, taskId);
    const st = this.s.staged.of(task);
    const r = this.s.sessionResult(task.sessionId, resultId);
    const own =
      st.results.has(resultId) || (task.expectedOutputIds.includes(resultId) && r.ownerTaskId === task.id);
    if (!own)
      throw failedPrecondition(
        `task ${taskId} may upload only results it created or its expected outputs, not ${resultId}`,
      );
    if (r.status !== "CREATED")
      throw failedPrecondition(`result ${resultId} is ${r.status}: only a CREATED result takes data`);
    st.uploads.set(resultId, data);
  }

  submit(
    workerId: string,
    taskId: string,
    submissionOptions: Partial<TaskOptions>,
    items: TaskSubmission[],
  ): Task[] {
    const task = this.runningTask(workerId, taskId);
    const session = this.s.session(task.sessionId);
    this.s.requireSubmission(session, "worker");
    this.s.requireBatch(items.length, "tasks");
    const { options } = this.s.submission.validateSubmission(session, submissionOptions, items, task);
    const st = this.s.staged.of(task);
    const children = this.s.submission.buildTasks(task.sessionId, items, options, st, task.id, task);
    st.children.push(...children);
    return children;
  }

  getData(workerId: string, taskId: string, resultIds: string[]): Buffer[] {
    const task = this.runningTask(workerId, taskId);
    const st = this.s.staged.get(task.id);
    return resultIds.map((id) => {
      const own = st?.uploads.get(id);
      if (own) return own;
      this.s.sessionResult(task.sessionId, id);
      return this.s.data.resultData(id);
    });
  }
}
