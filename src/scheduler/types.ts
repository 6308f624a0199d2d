import type { Logger } from "../log.js";
import type { WireTaskOutcome } from "../protocol/worker-messages.js";
import type { Store, StoreStats } from "../store/store.js";
import type { IdMap } from "./id-map.js";
import type { Task, TaskOptions, TaskStatus } from "./model.js";
import type { AppSet } from "./task-queue.js";

/** The scheduler's inputs and outputs: what commands, the worker endpoint and the store hand it. */

/** How the scheduler reaches workers; implemented by the worker endpoint. */
export interface WorkerLink {
  sendTasks(workerId: string, tasks: Task[]): void;
  cancelTasks(workerId: string, taskIds: string[], reason: string): void;
}

export interface WorkerState {
  id: string;
  partitions: string[];
  slots: number;
  /** slots + prefetch: the most tasks the worker may hold. */
  capacity: number;
  /** The tasks it holds, by id. */
  inflight: IdMap<Task>;
  /**
   * Recent task run time on this worker in ms (moving average), null before its first task ends:
   * the credit it is given follows it (Scheduler.credit).
   */
  avgTaskMs: number | null;
  /** Mean inline payload size of the tasks sent to it lately (moving average): bounds its credit. */
  avgPayloadBytes: number;
  host: string;
  pid: number;
  /** It takes TASKS and sends DONE as columns (READY's `columns`). */
  columns: boolean;
  /** It takes TASKS in columns with packed payloads (READY's `packedPayloads`, with `columns`). */
  packedPayloads: boolean;
  /** The applications it can load (READY's `apps`), null when it did not say: it takes any task. */
  apps: AppSet;
  connectedAt: number;
  lastHeartbeat: number;
}

export interface Completion {
  taskId: string;
  status: WireTaskOutcome;
  error?: string;
  output?: Buffer;
}

/** One task of a `tasks.submit`, already type-checked by the command module. */
export interface TaskSubmission {
  payloadId?: string;
  payload?: Buffer;
  expectedOutputIds?: string[];
  outputCount?: number;
  dataDependencies?: string[];
  taskOptions?: Partial<TaskOptions>;
}

export interface NewResult {
  name: string;
  data?: Buffer;
}

export interface WaitSpec {
  resultIds: string[];
  any: boolean;
  breakOnError: boolean;
  timeoutMs: number;
}

/** What one running attempt created through its agent. */
export interface AttemptStaging {
  /** Results created (metadata in the results map, not yet announced). */
  results: Set<string>;
  /** Data for results, applied at commit. */
  uploads: Map<string, Buffer>;
  /** Child tasks, inserted at commit. */
  children: Task[];
}

export interface SchedulerOptions {
  log: Logger;
  maxBatch: number;
  store?: Store;
  /**
   * After a restart, how long a task that was on a worker waits for that worker to come back and say
   * it still holds it (adopted, its attempt goes on) before it is run elsewhere. Default 4 s.
   */
  orphanGraceMs?: number;
  /** Bytes of recent task outputs kept in memory once the store has them. Default 64 MiB. */
  resultCacheBytes?: number;
  /**
   * With a store that keeps data in memory only (the memory store): the most result data it may hold;
   * past it, new data is refused with RESOURCE_EXHAUSTED. Default 4 GiB.
   */
  maxMemoryResultBytes?: number;
  /**
   * With a store that keeps records on disk: how long a finished task's and result's records stay in
   * memory after their commit before they leave it (read from the store after). Default 2 s.
   */
  finishedRetainMs?: number;
}

export interface SchedulerSummary {
  sessions: number;
  /** Results known (clients see them), finished ones in the store included. */
  results: number;
  /** Tasks known, finished ones in the store included. */
  tasks: number;
  /** Task records held in memory: the unfinished ones, and finished ones until their commit. */
  tasksInMemory: number;
  /** Result records held in memory. */
  resultsInMemory: number;
  tasksByStatus: Record<TaskStatus, number>;
  /** partition → its tasks by status, for each partition that holds tasks. */
  tasksByPartition: Record<string, Record<TaskStatus, number>>;
  queued: Record<string, number>;
  workers: number;
  slots: number;
  busySlots: number;
  store: StoreStats;
}
