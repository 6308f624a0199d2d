import type { ResultStatus } from "./model.js";
import type { WaitSpec } from "./types.js";

interface Waiter {
  remaining: number;
  any: boolean;
  breakOnError: boolean;
  done: boolean;
  finish: () => void;
}

const SETTLED: ReadonlySet<ResultStatus> = new Set(["COMPLETED", "ABORTED", "DELETED"]);

/** Clients waiting for results (results.wait): woken by the scheduler as results settle. */
export class ResultWaiters {
  private readonly byResult = new Map<string, Waiter[]>();

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
      if (!SETTLED.has(status)) {
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
        let list = this.byResult.get(id);
        if (!list) this.byResult.set(id, (list = []));
        list.push(waiter);
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
    const list = this.byResult.get(resultId);
    if (!list) return;
    this.byResult.delete(resultId);
    for (const w of list) {
      if (w.done) continue;
      w.remaining--;
      if (w.any || w.remaining === 0 || (w.breakOnError && status === "ABORTED")) w.finish();
    }
  }
}
