import { Packr } from "msgpackr";
import { decode, isPlainObject } from "../protocol/codec.js";
import type { AgentChannel } from "./agent-channel.js";
import { createAgent, type ClosableTaskAgent } from "./agent.js";
import { ApplicationError, isApplicationError } from "./errors.js";
import type { ThreadTask } from "./executor-messages.js";
import type { WireTaskOutcome } from "../protocol/worker-messages.js";
import type { ServiceRegistry } from "./service-registry.js";

const packr = new Packr({ useRecords: false, mapsAsObjects: true, encodeUndefinedAsNil: true });

/** How one task ended, as an executor thread sees it. */
export interface TaskOutcome {
  status: WireTaskOutcome;
  error?: string;
  output?: Uint8Array;
}

/** The method call a payload asks for. */
export interface TaskCall {
  method: string;
  args: Uint8Array;
}

const EMPTY = new Uint8Array(0);

/** Decodes a payload: a msgpack map `{ method: string, args: binary }` (args may be left out). */
export function decodePayload(payload: Uint8Array): TaskCall {
  let value: unknown;
  try {
    value = decode(payload);
  } catch (err) {
    throw new ApplicationError(`the task payload is not valid msgpack: ${(err as Error).message}`);
  }
  if (isPlainObject(value) && typeof value.method === "string") {
    const args = value.args ?? EMPTY;
    if (args instanceof Uint8Array) return { method: value.method, args };
  }
  throw new ApplicationError(
    `the task payload must be a msgpack map { method: string, args: binary }, got ${describe(value)}`,
  );
}

/** Runs tasks on the services of one executor thread, turning whatever happens into a {@link TaskOutcome}. */
export class TaskRunner {
  /** `channel`: how task agents reach the server (none: agent calls reject with UNAVAILABLE). */
  constructor(
    private readonly services: ServiceRegistry,
    private readonly channel?: AgentChannel,
  ) {}

  async run(task: ThreadTask, payload: Uint8Array): Promise<TaskOutcome> {
    let agent: ClosableTaskAgent | undefined;
    try {
      const { method, args } = decodePayload(payload);
      const entry = await this.services.serviceFor(task.options, task.sessionId);
      const session = await this.services.enter(entry, task.sessionId);
      agent = createAgent(task, this.channel);
      const call = entry.app.module.call;
      let value: unknown;
      if (call) {
        value = await call(entry.service, session, method, args, agent);
      } else if (hasCallMethod(entry.service)) {
        // A module exporting only createService() that returns a ServiceBase is enough.
        value = await entry.service.call(session, method, args, agent);
      } else {
        throw new ApplicationError(
          `application module ${entry.app.path} exports no call() and its service has no call method`,
        );
      }
      return { status: "COMPLETED", output: toOutput(value) };
    } catch (err) {
      return isApplicationError(err)
        ? { status: "ERROR", error: err.message }
        : { status: "FAILED", error: describeError(err) };
    } finally {
      agent?.close();
    }
  }
}

/** A task's output: bytes as they are, nothing for undefined/null/empty, anything else packed. */
export function toOutput(value: unknown): Uint8Array | undefined {
  if (value === undefined || value === null) return undefined;
  if (value instanceof Uint8Array) return value.length > 0 ? value : undefined;
  return packr.pack(value);
}

/** `message` plus the first line of the stack that says where: enough to find the bug, short enough to store. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return `non-Error thrown: ${describe(err)}`;
  const where = err.stack
    ?.split("\n")
    .find((line) => line.trimStart().startsWith("at "))
    ?.trim();
  const head = err.name && err.name !== "Error" ? `${err.name}: ${err.message}` : err.message;
  return where ? `${head} (${where})` : head;
}

function hasCallMethod(
  service: unknown,
): service is { call(session: unknown, method: string, args: Uint8Array, agent: unknown): unknown } {
  return typeof (service as { call?: unknown } | null)?.call === "function";
}

function describe(value: unknown): string {
  if (value instanceof Uint8Array) return `${value.length} bytes of binary`;
  if (Array.isArray(value)) return "an array";
  if (value === null) return "nil";
  if (typeof value === "object") return `a map with keys ${Object.keys(value).join(", ") || "(none)"}`;
  return `${typeof value} ${JSON.stringify(value)}`.slice(0, 200);
}
