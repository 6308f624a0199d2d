// hello: the worker side of `zgrid hello` (seed 001). `sum(values)` returns the sum of a list of numbers;
// `noop()` does nothing and returns null (what the benchmarks run); `sleep(ms)` waits ms milliseconds
// and returns ms (the fairness benchmark's long task); `bytes(n)` returns n bytes (the history benchmark's
// outputs).
// Payload: { method: "sum", args: pack([[1, 2, 3]]) } → output: pack(6). The numbers may also come
// spread, args: pack([1, 2, 3]).
import { ApplicationError, ServiceBase, defineService } from "zgrid/worker";

class HelloService extends ServiceBase {
  sum(...values) {
    const list = values.length === 1 && Array.isArray(values[0]) ? values[0] : values;
    let total = 0;
    for (const v of list) {
      if (typeof v !== "number")
        throw new ApplicationError(`sum takes a list of numbers, got ${JSON.stringify(v)}`);
      total += v;
    }
    return total;
  }

  noop() {
    return null;
  }

  bytes(n) {
    if (!Number.isInteger(n) || n < 0 || n > 64 * 2 ** 20)
      throw new ApplicationError(
        `bytes takes a whole number of bytes up to 64 MiB, got ${JSON.stringify(n)}`,
      );
    return new Uint8Array(n).fill(n % 251);
  }

  async sleep(ms) {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return ms;
  }
}

export const { createService, enterSession, call, leaveSession, destroyService } = defineService(
  () => new HelloService(),
);
