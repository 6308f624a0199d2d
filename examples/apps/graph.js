// graph: tasks that combine the results they depend on, for DAGs of tasks (examples/clients/dag.ts).
// Each data dependency holds a number (what another graph task returned, msgpack).
//   value(x)   → x
//   add(k)     → the sum of the task's data dependencies, plus k
//   mul(k)     → the product of the task's data dependencies, times k
// Payload: { method: "add", args: pack([k]) }, with dataDependencies → output: pack(number).
import { unpack } from "msgpackr";
import { ApplicationError, ServiceBase, defineService } from "zgrid/worker";

class GraphService extends ServiceBase {
  value(x) {
    return number(x, "value");
  }

  async add(k = 0) {
    return (await this._inputs()).reduce((a, b) => a + b, number(k, "add"));
  }

  async mul(k = 1) {
    return (await this._inputs()).reduce((a, b) => a * b, number(k, "mul"));
  }

  /** The numbers held by the task's data dependencies, in the order they were given. */
  async _inputs() {
    const ids = [...this.agent.dataDependencies];
    if (ids.length === 0) return [];
    const data = await this.agent.getData(ids);
    return data.map((d, i) => number(unpack(d), `dependency ${ids[i]}`));
  }
}

function number(x, what) {
  if (typeof x !== "number") throw new ApplicationError(`${what} takes numbers, got ${JSON.stringify(x)}`);
  return x;
}

export const { createService, enterSession, call, leaveSession, destroyService } = defineService(
  () => new GraphService(),
);
