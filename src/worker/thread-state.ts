/**
 * What an executor thread is doing, in shared memory, so the pool can see it without waiting for a message:
 * a thread spinning in application code cannot post one. The pool reads it to enforce maxDuration, to stop
 * a cancelled task, and to know which task a dead thread was running.
 *
 * Layout: Int32 [0] = 1 while a task runs, [1] = seq (as int32) of the last task begun; Float64 [1] = when
 * it began (Date.now()).
 */
export class ThreadState {
  static readonly BYTES = 16;
  readonly buffer: SharedArrayBuffer;
  private readonly ints: Int32Array;
  private readonly times: Float64Array;

  /** Wraps a buffer made by {@link ThreadState.create} (the thread side gets it through workerData). */
  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.ints = new Int32Array(buffer, 0, 2);
    this.times = new Float64Array(buffer, 8, 1);
  }

  /** A fresh state: idle, nothing begun. */
  static create(): ThreadState {
    const state = new ThreadState(new SharedArrayBuffer(ThreadState.BYTES));
    state.ints[1] = -1;
    return state;
  }

  /** Thread side: task `seq` begins now. The time is written first so a reader seeing the seq sees it too. */
  begin(seq: number, now: number): void {
    this.times[0] = now;
    Atomics.store(this.ints, 1, seq);
    Atomics.store(this.ints, 0, 1);
  }

  /** Thread side: the task ended. */
  end(): void {
    Atomics.store(this.ints, 0, 0);
  }

  get running(): boolean {
    return Atomics.load(this.ints, 0) === 1;
  }

  /** Seq (as int32: compare with `seq | 0`) of the last task begun, -1 if none. */
  get lastStarted(): number {
    return Atomics.load(this.ints, 1);
  }

  get startedAt(): number {
    return this.times[0];
  }
}
