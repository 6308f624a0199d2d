// addition: `add(a, b)` returns a + b.
// Payload: { method: "add", args: pack([a, b]) } → output: pack(a + b).
import { ApplicationError, ServiceBase, defineService } from "zgrid/worker";

class AdditionService extends ServiceBase {
  add(a, b) {
    if (typeof a !== "number" || typeof b !== "number") {
      // Wrong arguments will not get better on retry: a final ERROR.
      throw new ApplicationError(`add takes two numbers, got ${typeof a} and ${typeof b}`);
    }
    return a + b;
  }
}

export const { createService, enterSession, call, leaveSession, destroyService } = defineService(
  () => new AdditionService(),
);
