import { IdMap } from "./id-map.js";
import type { IdGenerator } from "./ids.js";
import type { ResultStatus } from "./model.js";
import type { WaitSpec } from "./types.js";

interface Waiter {
  remaining: number;
  any: boolean;
  breakOnError: boolean;
  done: boolean;
  finish: () => void;
}

/** COMPLETED, ABORTED or DELETED: what a wait waits for. */
function isSettled(status: ResultStatus): boolean {
  return status === "COMPLETED" || status === "ABORTED" || status === "DELETED";
}

/** Clients waiting for results (results.wait): woken by the scheduler as results settle. */
export class ResultWaiters {
  /** One waiter (the common case: no list to allocate), or several. */
  private readonly byResult: IdMap<Waiter | Waiter[]>;

  /** `ids`: what makes the ids of results (their waiters are found by their counters). */
  constructor(ids: IdGenerator) {
    this.byResult = new IdMap(ids, "r");
  }

  has(resultId: string): boolean {
    return this.byResult.has(resultId);
  }

  /**
   * Resolves true when the results are settled as asked (all, any, or the first abort with
   * breakOnError), false at the timeout. `statusOf` throws for an unknown result.
   */
  wait(spec: WaitSpec, statusOf: (id: string) => ResultStatus): Promise<boolean> {
    let settled = 0;
    const open: string[] = [];
    for (const id of spec.resultIds) {
      const status = statusOf(id);
      if (!isSettled(status)) {
        open.push(id);
        continue;
      }
      settled++;
      if (status === "ABORTED" && spec.breakOnError) return Promise.resolve(true);
    }
    if (open.length === 0 || (spec.any && settled > 0)) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter: Waiter = {
        remaining: open.length,
        any: spec.any,
        breakOnError: spec.breakOnError,
        done: false,
        finish: () => {
          waiter.done = true;
          if (timer) clearTimeout(timer);
          resolve(true);
        },
      };
      for (const id of open) {
        const there = this.byResult.get(id);
        if (there === undefined) this.byResult.set(id, waiter);
        else if (Array.isArray(there)) there.push(waiter);
        else this.byResult.set(id, [there, waiter]);
      }
      if (spec.timeoutMs > 0) {
        timer = setTimeout(() => {
          waiter.done = true;
          resolve(false);
        }, spec.timeoutMs);
      }
    });
  }

  /** A result reached `status` (COMPLETED, ABORTED or DELETED). */
  settled(resultId: string, status: ResultStatus): void {
    const there = this.byResult.get(resultId);
    if (there === undefined) return;
    this.byResult.delete(resultId);
    if (!Array.isArray(there)) return wake(there, status);
    for (const w of there) wake(w, status);
  }
}

/** One of `w`'s results reached `status`. */
function wake(w: Waiter, status: ResultStatus): void {
  if (w.done) return;
  w.remaining--;
  if (w.any || w.remaining === 0 || (w.breakOnError && status === "ABORTED")) w.finish();
}
