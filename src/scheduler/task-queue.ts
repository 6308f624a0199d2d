import type { Task } from "./model.js";

/** A FIFO of tasks with O(1) push and shift. */
class Fifo {
  private items: (Task | undefined)[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(task: Task): void {
    this.items.push(task);
  }

  shift(): Task | undefined {
    if (this.head >= this.items.length) return undefined;
    const task = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return task;
  }

  /** Removes tasks for which `drop` is true; returns them. */
  remove(drop: (t: Task) => boolean): Task[] {
    const removed: Task[] = [];
    const kept: Task[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      const t = this.items[i]!;
      (drop(t) ? removed : kept).push(t);
    }
    this.items = kept;
    this.head = 0;
    return removed;
  }
}

/**
 * The applications a worker can load (READY's `apps`: file stems of its app path, `NAME` and
 * `NAME.VERSION`), or null for a worker that takes any task (it said nothing: older workers, custom ones).
 */
export type AppSet = ReadonlySet<string> | null;

/**
 * The tasks of one partition for one application (name and version): higher priority first, then
 * submission order. One FIFO per priority level; levels kept sorted, so a pop is O(1) while the top
 * level has tasks.
 */
export class AppQueue {
  private readonly levels = new Map<number, Fifo>();
  /** Priorities that have a FIFO, highest first. */
  private order: number[] = [];
  size = 0;
  /** The app-path stems that serve these tasks: `NAME.VERSION` (when versioned) and `NAME`. */
  private readonly versioned: string;

  constructor(
    readonly key: string,
    readonly applicationName: string,
    readonly applicationVersion: string,
  ) {
    this.versioned = applicationVersion ? `${applicationName}.${applicationVersion}` : applicationName;
  }

  /**
   * A worker serves these tasks when it has `NAME.VERSION.js` or `NAME.js` (the app loader's search),
   * when it said nothing of its apps, or when the tasks name no application (the worker tells why they fail).
   */
  servedBy(apps: AppSet): boolean {
    return (
      apps === null ||
      this.applicationName === "" ||
      apps.has(this.applicationName) ||
      apps.has(this.versioned)
    );
  }

  push(task: Task): void {
    const p = task.options.priority;
    let fifo = this.levels.get(p);
    if (!fifo) {
      fifo = new Fifo();
      this.levels.set(p, fifo);
      this.order.push(p);
      this.order.sort((a, b) => b - a);
    }
    fifo.push(task);
    this.size++;
  }

  /** Priority of the task a pop would return, or -Infinity when empty. */
  topPriority(): number {
    for (const p of this.order) if (this.levels.get(p)!.size > 0) return p;
    return -Infinity;
  }

  pop(): Task | undefined {
    for (const p of this.order) {
      const task = this.levels.get(p)!.shift();
      if (task) {
        this.size--;
        return task;
      }
    }
    return undefined;
  }

  remove(drop: (t: Task) => boolean): Task[] {
    const removed: Task[] = [];
    for (const fifo of this.levels.values()) removed.push(...fifo.remove(drop));
    this.size -= removed.length;
    return removed;
  }
}

const KEPT_EMPTY_QUEUES = 16;

/**
 * The ready queue of one partition: an {@link AppQueue} per application, so that a worker only takes
 * tasks of the applications it has (design §6: tasks are routed by application).
 */
export class PartitionQueue {
  private readonly apps = new Map<string, AppQueue>();
  private count = 0;

  constructor(readonly partitionId: string) {}

  get size(): number {
    return this.count;
  }

  push(task: Task): void {
    const { applicationName, applicationVersion } = task.options;
    const key = `${applicationName}\0${applicationVersion}`;
    let q = this.apps.get(key);
    if (!q) {
      q = new AppQueue(key, applicationName, applicationVersion);
      this.apps.set(key, q);
    }
    q.push(task);
    this.count++;
  }

  /** Of the applications a worker serves, the queue whose next task comes first; null if none has tasks. */
  next(apps: AppSet): AppQueue | null {
    let best: AppQueue | null = null;
    let bestPriority = -Infinity;
    for (const q of this.apps.values()) {
      if (q.size === 0 || !q.servedBy(apps)) continue;
      const top = q.topPriority();
      if (top > bestPriority) {
        best = q;
        bestPriority = top;
      }
    }
    return best;
  }

  /** Pops the next task of `q`, one of this partition's queues (from next()). */
  popFrom(q: AppQueue): Task | undefined {
    const task = q.pop();
    if (task) this.count--;
    // Queues of applications no longer used must not pile up (application names come from clients);
    // a few empty ones are kept, so that a steady trickle of one application allocates nothing.
    if (q.size === 0 && this.apps.size > KEPT_EMPTY_QUEUES) this.apps.delete(q.key);
    return task;
  }

  /** The applications with tasks waiting that none of `workers` serves. */
  unserved(workers: Iterable<AppSet>): AppQueue[] {
    const sets = [...workers];
    return [...this.apps.values()].filter((q) => q.size > 0 && !sets.some((apps) => q.servedBy(apps)));
  }

  remove(drop: (t: Task) => boolean): Task[] {
    const removed: Task[] = [];
    for (const [key, q] of this.apps) {
      removed.push(...q.remove(drop));
      if (q.size === 0) this.apps.delete(key);
    }
    this.count -= removed.length;
    return removed;
  }
}
