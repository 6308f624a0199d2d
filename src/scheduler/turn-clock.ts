import { DEFAULT_TASK_OPTIONS, TaskRecord, type Result } from "./model.js";

/**
 * Date.now(), read once a turn of the event loop: what one request creates or queues shares one time.
 *
 * It also saves memory. V8 keeps a number field as a double of its own, a 16-byte box in each object,
 * unless that field has held something else; then the field holds a reference, and objects given the
 * same number share its box. The records below, one of each shape with null times, make the time fields
 * of tasks and results such references, and this clock hands out one number a turn: a million queued
 * tasks hold no box of their own for createdAt and submittedAt, nor their outputs for createdAt (48 MB).
 */
export class TurnClock {
  private at: number | null = null;
  private readonly reset = (): void => {
    this.at = null;
  };

  now(): number {
    if (this.at === null) {
      this.at = Date.now();
      queueMicrotask(this.reset);
    }
    return this.at;
  }
}

/** Records of the shapes of TaskRecord and Result (same fields, same order) whose times are null. */
const nullTimes = null as unknown as number;
export const SHAPES: readonly object[] = [
  new TaskRecord("", "", "", [], [], DEFAULT_TASK_OPTIONS, nullTimes, null, null),
  {
    id: "",
    sessionId: "",
    name: "",
    status: "CREATED",
    ownerTaskId: null,
    createdBy: null,
    data: null,
    size: 0,
    createdAt: nullTimes,
    completedAt: null,
  } satisfies Partial<Record<keyof Result, unknown>>,
];
