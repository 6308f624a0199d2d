// htcgrid: the worker side of HtcGridConnector (seed 003). HTC-Grid passes each task's JSON object to
// a lambda and stores what it returns; here `run(task)` is that lambda.
// Payload: { method: "run", args: pack([task]) } → output: pack(result), a JSON object.
//
// A task is a JSON object; every field is optional:
//   values:    a list of numbers          → the result has their sum and count
//   sleep_ms:  wait this long first       (HTC-Grid's mock computation)
//   fail:      a message                  → the task ends ERROR with it, not retried
// The result echoes the task as `input`.
import { ApplicationError, ServiceBase, defineService } from "zgrid/worker";

class HtcGridService extends ServiceBase {
  async run(task) {
    if (task === null || typeof task !== "object" || Array.isArray(task)) {
      throw new ApplicationError(`run takes one JSON object, got ${JSON.stringify(task)}`);
    }
    if (task.sleep_ms !== undefined) {
      if (typeof task.sleep_ms !== "number" || task.sleep_ms < 0)
        throw new ApplicationError(`sleep_ms must be a number ≥ 0, got ${JSON.stringify(task.sleep_ms)}`);
      await new Promise((resolve) => setTimeout(resolve, task.sleep_ms));
    }
    if (task.fail !== undefined) throw new ApplicationError(String(task.fail));
    const result = { ok: true, input: task };
    if (task.values !== undefined) {
      if (!Array.isArray(task.values) || task.values.some((v) => typeof v !== "number"))
        throw new ApplicationError(`values must be a list of numbers, got ${JSON.stringify(task.values)}`);
      result.count = task.values.length;
      result.sum = task.values.reduce((a, b) => a + b, 0);
    }
    return result;
  }
}

export const { createService, enterSession, call, leaveSession, destroyService } = defineService(
  () => new HtcGridService(),
);
