/** ServiceBase, defineService, ApplicationError and the worker URL, in process (no threads, no sockets). */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { pack, unpack } from "msgpackr";
import { createAgent } from "../src/worker/agent.js";
import {
  ApplicationError,
  ServiceBase,
  defineService,
  isApplicationError,
  type ServiceSession,
  type TaskAgent,
} from "../src/worker/index.js";
import { parseWorkerUrl } from "../src/worker/worker-url.js";

class Calculator extends ServiceBase {
  seen: TaskAgent | undefined;
  double = (x: number): number => x * 2;

  add(a: number, b: number): number {
    this.seen = this.agent;
    return a + b;
  }

  async total(values: number[]): Promise<number> {
    return values.reduce((a, b) => a + b, 0);
  }

  nothing(): void {}

  _secret(): string {
    return "no";
  }
}

const agent = createAgent({
  taskId: "t1",
  sessionId: "s1",
  expectedOutputIds: ["o1"],
  dataDependencies: [],
  attempt: 2,
});

describe("ServiceBase", () => {
  const calc = new Calculator();
  const session = { sessionId: "s1" };

  test("an array of arguments is spread; the result is packed", async () => {
    assert.equal(unpack(await calc.call(session, "add", pack([2, 3]), agent)), 5);
    assert.equal(unpack(await calc.call(session, "total", pack([[1, 2, 3]]), agent)), 6);
  });

  test("a single non-array value is the only argument; no args at all is no arguments", async () => {
    assert.equal(unpack(await calc.call(session, "double", pack(21), agent)), 42);
    assert.equal(unpack(await calc.call(session, "nothing", new Uint8Array(0), agent)), null);
  });

  test("this.agent is the task's agent while the method runs, and cleared after", async () => {
    await calc.call(session, "add", pack([1, 1]), agent);
    assert.equal(calc.seen?.taskId, "t1");
    assert.equal(calc.seen?.attempt, 2);
    assert.equal(calc.agent, undefined);
    assert.equal(calc.session, undefined);
  });

  test("unknown, private and lifecycle names are not methods: ApplicationError listing the real ones", async () => {
    assert.deepEqual(calc.methodNames(), ["add", "double", "nothing", "total"]);
    for (const name of ["nope", "_secret", "call", "destroy", "leaveSession", "hasOwnProperty"]) {
      await assert.rejects(
        calc.call(session, name, pack([]), agent),
        (err: Error) =>
          isApplicationError(err) &&
          err.message ===
            `method "${name}" not found on service Calculator: it has add, double, nothing, total`,
      );
    }
  });

  test("arguments that are not msgpack: ApplicationError", async () => {
    await assert.rejects(calc.call(session, "add", new Uint8Array([0x82, 0xa1]), agent), /not valid msgpack/);
  });

  test("defineService wires the five lifecycle functions to the service", async () => {
    const calls: string[] = [];
    /** Overrides every lifecycle hook ServiceBase has, recording each call and what it was given. */
    class Recorder extends Calculator {
      entered: ServiceSession | undefined;
      override async enterSession(sessionId: string): Promise<ServiceSession> {
        calls.push(`enterSession ${sessionId}`);
        this.entered = { sessionId, opened: "by Recorder" } as ServiceSession;
        return this.entered;
      }
      override async call(
        session: ServiceSession,
        methodName: string,
        args: Uint8Array,
        taskAgent: TaskAgent,
      ): Promise<Buffer> {
        assert.equal(session, this.entered, "call is given the session enterSession returned");
        calls.push(`call ${methodName}`);
        return super.call(session, methodName, args, taskAgent);
      }
      override leaveSession(session: ServiceSession): void {
        assert.equal(session, this.entered, "leaveSession is given the session enterSession returned");
        calls.push(`leaveSession ${session.sessionId}`);
      }
      override async destroy(): Promise<void> {
        calls.push("destroy");
      }
    }
    const lifecycle = defineService((name, ns) => {
      calls.push(`createService ${name} ${ns}`);
      return new Recorder();
    });
    const service = await lifecycle.createService("svc", "ns");
    assert.ok(service instanceof Recorder, "createService returns what the factory built");
    const s = await lifecycle.enterSession(service, "s9");
    assert.equal(s, service.entered, "enterSession returns the service's own session object");
    assert.equal(unpack(await lifecycle.call(service, s, "add", pack([4, 5]), agent)), 9);
    assert.equal(service.seen?.taskId, "t1", "the method ran with the task's agent");
    await lifecycle.leaveSession(service, s);
    await lifecycle.destroyService(service);
    assert.deepEqual(calls, [
      "createService svc ns",
      "enterSession s9",
      "call add",
      "leaveSession s9",
      "destroy",
    ]);
  });
});

describe("ApplicationError", () => {
  test("is recognised by class and by name (another copy of zgrid)", () => {
    assert.ok(isApplicationError(new ApplicationError("x")));
    const foreign = new Error("y");
    foreign.name = "ApplicationError";
    assert.ok(isApplicationError(foreign));
    assert.ok(!isApplicationError(new Error("z")));
    assert.ok(!isApplicationError("ApplicationError"));
    assert.equal(new ApplicationError("x").name, "ApplicationError");
  });
});

describe("worker URL", () => {
  test("splits endpoint and token", () => {
    assert.deepEqual(parseWorkerUrl("tcp://10.0.0.1:5558?token=abc"), {
      endpoint: "tcp://10.0.0.1:5558",
      endpoints: ["tcp://10.0.0.1:5558"],
      token: "abc",
    });
    assert.deepEqual(parseWorkerUrl("tcp://localhost:5558"), {
      endpoint: "tcp://localhost:5558",
      endpoints: ["tcp://localhost:5558"],
      token: undefined,
    });
    // A server and its standbys: the worker follows the one that serves.
    assert.deepEqual(parseWorkerUrl("tcp://a:5558,b:6558?token=abc"), {
      endpoint: "tcp://a:5558",
      endpoints: ["tcp://a:5558", "tcp://b:6558"],
      token: "abc",
    });
    assert.throws(() => parseWorkerUrl("tcp://a:5558,b?token=abc"), /invalid worker URL/);
    assert.throws(() => parseWorkerUrl("localhost:5558"), /invalid worker URL/);
    assert.throws(() => parseWorkerUrl("tcp://localhost"), /invalid worker URL/);
  });
});
