import type { WireTask } from "../protocol/worker-messages.js";

/**
 * What a running task knows about itself: the fourth argument of `call` and `this.agent` in a
 * {@link ServiceBase} method. Later versions add methods here (create results, submit child tasks).
 */
export interface TaskAgent {
  readonly taskId: string;
  readonly sessionId: string;
  /** The results this task must produce; the value `call` returns completes the first one. */
  readonly expectedOutputIds: readonly string[];
  readonly dataDependencies: readonly string[];
  /** 1 for the first attempt, 2 for the first retry, ... */
  readonly attempt: number;
}

/** The fields of a task the agent is built from (what an executor thread receives). */
export type AgentTaskFields = Pick<
  WireTask,
  "taskId" | "sessionId" | "expectedOutputIds" | "dataDependencies" | "attempt"
>;

/** Builds the agent of one task. Kept alone in this file because it is where agent features will grow. */
export function createAgent(task: AgentTaskFields): TaskAgent {
  return {
    taskId: task.taskId,
    sessionId: task.sessionId,
    expectedOutputIds: task.expectedOutputIds,
    dataDependencies: task.dataDependencies,
    attempt: task.attempt,
  };
}
