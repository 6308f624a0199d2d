import { Worker } from "node:worker_threads";
import type { WireTask } from "../protocol/worker-messages.js";
import {
  ID_SEPARATOR,
  RUN_APP,
  RUN_ATTEMPT,
  RUN_DEPENDENCIES,
  RUN_OUTPUTS,
  RUN_PAYLOAD_LENGTH,
  RUN_SEQ,
  RUN_SESSION,
  RUN_STRIDE,
  sameApp,
  type AgentAnswer,
  type ExecutorThreadData,
  type FromThread,
  type RunBatch,
  type ThreadApp,
  type ToThread,
} from "./executor-messages.js";
import { ThreadState } from "./thread-state.js";

/** A task the pool holds, from submit until it is reported. */
export interface PoolTask {
  readonly task: WireTask;
  readonly payload: Uint8Array;
  /** Unique per pool; what the thread and the shared {@link ThreadState} call the task. */
  readonly seq: number;
  state: "pending" | "assigned" | "done";
  /** STARTED already reported (a requeued task is not reported twice). */
  started: boolean;
  executor: Executor | undefined;
}

const THREAD_ENTRY = new URL("./executor-thread.js", import.meta.url);

/**
 * The main-thread side of one executor thread: the Worker, its shared state, and the tasks handed to it
 * and not yet reported, in the order the thread runs them.
 */
export class Executor {
  readonly worker: Worker;
  readonly state = ThreadState.create();
  /** Assigned, not yet reported, in the thread's order. */
  queue: PoolTask[] = [];
  /** Set once the pool gave up on this thread (terminated, died, stopping): it gets no more tasks. */
  retired = false;
  readonly spawnedAt = Date.now();
  /** Whether the thread ever reported anything: a thread that dies before that may be unable to start. */
  reported = false;
  /** The uncaught error that killed the thread, if one did. */
  lastError: Error | undefined;
  /** The thread has exited: messages to it go nowhere. */
  gone = false;
  readonly exited: Promise<number>;

  constructor(
    readonly slot: number,
    appPath: string,
    onMessage: (executor: Executor, msg: FromThread) => void,
    memoryLimitMb?: number,
    watchApps?: boolean,
  ) {
    const workerData: ExecutorThreadData = { appPath, watch: watchApps, state: this.state.buffer };
    this.worker = new Worker(THREAD_ENTRY, {
      workerData,
      name: `zgrid-executor-${slot}`,
      // Past the limit, the thread (not the host) dies: its task fails and a fresh thread takes over.
      resourceLimits: memoryLimitMb ? { maxOldGenerationSizeMb: memoryLimitMb } : undefined,
    });
    this.worker.on("message", (msg: FromThread) => onMessage(this, msg));
    this.worker.on("error", (err) => (this.lastError = err));
    this.exited = new Promise((resolve) =>
      this.worker.once("exit", (code: number) => {
        this.gone = true;
        resolve(code);
      }),
    );
  }

  /** Hands tasks to the thread, in columns, their payloads concatenated in one transferred buffer. */
  run(tasks: PoolTask[]): void {
    const n = tasks.length;
    const numbers = new Float64Array(n * RUN_STRIDE);
    const ids: string[] = [];
    const sessions: string[] = [];
    const apps: ThreadApp[] = [];
    let total = 0;
    for (const t of tasks) total += t.payload.length;
    const payloads = new ArrayBuffer(total);
    const bytes = new Uint8Array(payloads);
    let offset = 0;
    let app = -1;
    let session = -1;
    for (let i = 0; i < n; i++) {
      const pt = tasks[i];
      const { task, payload } = pt;
      bytes.set(payload, offset);
      offset += payload.length;
      const o = task.options;
      if (app === -1 || !sameApp(apps[app], o)) {
        app = apps.findIndex((a) => sameApp(a, o));
        if (app === -1) {
          app = apps.length;
          apps.push({
            applicationName: o.applicationName,
            applicationVersion: o.applicationVersion,
            applicationNamespace: o.applicationNamespace,
            applicationService: o.applicationService,
          });
        }
      }
      const k = i * RUN_STRIDE;
      numbers[k + RUN_SEQ] = pt.seq;
      numbers[k + RUN_ATTEMPT] = task.attempt;
      numbers[k + RUN_APP] = app;
      numbers[k + RUN_PAYLOAD_LENGTH] = payload.length;
      if (session === -1 || sessions[session] !== task.sessionId) {
        session = sessions.indexOf(task.sessionId);
        if (session === -1) session = sessions.push(task.sessionId) - 1;
      }
      numbers[k + RUN_SESSION] = session;
      numbers[k + RUN_OUTPUTS] = task.expectedOutputIds.length;
      numbers[k + RUN_DEPENDENCIES] = task.dataDependencies.length;
      ids.push(task.taskId);
      for (const id of task.expectedOutputIds) ids.push(id);
      for (const id of task.dataDependencies) ids.push(id);
      this.queue.push(pt);
    }
    const msg: RunBatch = {
      t: "run",
      numbers,
      ids: ids.join(ID_SEPARATOR),
      sessions,
      apps,
      payloads,
    };
    this.post(msg, [payloads, numbers.buffer as ArrayBuffer]);
  }

  skip(seqs: number[]): void {
    this.post({ t: "skip", seqs });
  }

  stop(): void {
    this.post({ t: "stop" });
  }

  /** Answers one of the thread's agent calls; its blobs are transferred (the buffer becomes unusable here). */
  answer(msg: AgentAnswer): void {
    if (!this.gone) this.post(msg, msg.data ? [msg.data] : undefined);
  }

  /** The queued task the thread is running now, if it is running one of ours. */
  runningTask(): PoolTask | undefined {
    return this.state.running ? this.lastStartedTask() : undefined;
  }

  /** Index in {@link queue} of the last task the thread began, -1 if it is not there (already reported). */
  lastStartedIndex(): number {
    const seq32 = this.state.lastStarted;
    if (seq32 === -1) return -1;
    for (let i = 0; i < this.queue.length; i++) if ((this.queue[i].seq | 0) === seq32) return i;
    return -1;
  }

  private lastStartedTask(): PoolTask | undefined {
    const i = this.lastStartedIndex();
    return i === -1 ? undefined : this.queue[i];
  }

  private post(msg: ToThread, transfer?: ArrayBuffer[]): void {
    this.worker.postMessage(msg, transfer);
  }
}
