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
 * The ready queue of one partition: higher priority first, then submission order.
 * One FIFO per priority level; levels kept sorted, so a pop is O(1) while the top level has tasks.
 */
export class PartitionQueue {
  private readonly levels = new Map<number, Fifo>();
  /** Priorities that have a FIFO, highest first. */
  private order: number[] = [];
  private count = 0;

  constructor(readonly partitionId: string) {}

  get size(): number {
    return this.count;
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
    this.count++;
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
        this.count--;
        return task;
      }
    }
    return undefined;
  }

  remove(drop: (t: Task) => boolean): Task[] {
    const removed: Task[] = [];
    for (const fifo of this.levels.values()) removed.push(...fifo.remove(drop));
    this.count -= removed.length;
    return removed;
  }
}
