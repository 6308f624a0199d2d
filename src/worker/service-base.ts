import { Packr } from "msgpackr";
import type { TaskAgent } from "./agent.js";
import type { ApplicationModule } from "./app-module.js";
import { ApplicationError } from "./errors.js";

// Plain msgpack both ways (no record extension, undefined as nil) so a client in any language can read it.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, encodeUndefinedAsNil: true });

/** What {@link ServiceBase.enterSession} returns and the other lifecycle methods receive. */
export interface ServiceSession {
  readonly sessionId: string;
}

// Names that belong to the lifecycle or to ServiceBase itself, never dispatched to as task methods.
const RESERVED = new Set([
  "constructor",
  "call",
  "enterSession",
  "leaveSession",
  "destroy",
  "agent",
  "session",
]);

/**
 * Base class of a service: default lifecycle methods, and `call`, which dispatches a task to the method of
 * the same name. Arguments arrive msgpack-packed: an array is spread as the method's arguments, any other
 * value is passed as its single argument. The method's return value (or what its promise resolves to) is
 * packed with msgpack and becomes the task's output.
 *
 * Task methods are the service's methods whose names do not start with `_`.
 *
 * @example
 * ```js
 * class HelloService extends ServiceBase {
 *   sum(values) { return values.reduce((a, b) => a + b, 0); }
 * }
 * export const { createService, enterSession, call, leaveSession, destroyService } =
 *   defineService(() => new HelloService());
 * ```
 */
export class ServiceBase {
  /** The running task's agent, set while a task method runs (a thread runs one task at a time). */
  agent: TaskAgent | undefined = undefined;
  /** The running task's session, set while a task method runs. */
  session: ServiceSession | undefined = undefined;
  #methods: string[] | undefined;

  /** Called before the first task of a session; the returned object is passed back to the other calls. */
  enterSession(sessionId: string): ServiceSession | Promise<ServiceSession> {
    return { sessionId };
  }

  /** Called when the service moves to another session, and when the worker stops. */
  leaveSession(_session: ServiceSession): void | Promise<void> {}

  /** Called once when the worker stops. */
  destroy(): void | Promise<void> {}

  /** Runs the task method `methodName` with the msgpack-packed `args`; returns the packed result. */
  async call(
    session: ServiceSession,
    methodName: string,
    args: Uint8Array,
    agent: TaskAgent,
  ): Promise<Buffer> {
    const method = this.#findMethod(methodName);
    let decoded: unknown;
    try {
      decoded = args.length === 0 ? [] : packr.unpack(args);
    } catch (err) {
      throw new ApplicationError(
        `arguments of method "${methodName}" are not valid msgpack: ${(err as Error).message}`,
      );
    }
    const params: unknown[] = Array.isArray(decoded) ? decoded : [decoded];
    this.agent = agent;
    this.session = session;
    try {
      return packr.pack(await method.apply(this, params));
    } finally {
      this.agent = undefined;
      this.session = undefined;
    }
  }

  /** The names task methods can be called by, sorted. */
  methodNames(): string[] {
    this.#methods ??= taskMethodNames(this);
    return this.#methods;
  }

  #findMethod(methodName: string): (...args: unknown[]) => unknown {
    const names = this.methodNames();
    if (!names.includes(methodName)) {
      throw new ApplicationError(
        `method "${methodName}" not found on service ${this.constructor.name}: ` +
          (names.length ? `it has ${names.join(", ")}` : "it has no task methods"),
      );
    }
    return (this as unknown as Record<string, (...args: unknown[]) => unknown>)[methodName];
  }
}

/** Function-valued own properties (arrow-function fields), then methods up the class chain to ServiceBase. */
function taskMethodNames(service: ServiceBase): string[] {
  const names = new Set<string>();
  let obj: object | null = service;
  while (obj && obj !== ServiceBase.prototype && obj !== Object.prototype) {
    for (const name of Object.getOwnPropertyNames(obj)) {
      const desc = Object.getOwnPropertyDescriptor(obj, name);
      if (typeof desc?.value === "function" && !name.startsWith("_") && !RESERVED.has(name)) names.add(name);
    }
    obj = Object.getPrototypeOf(obj) as object | null;
  }
  return [...names].sort();
}

/** The lifecycle functions {@link defineService} returns, ready to be exported by an application module. */
export interface ServiceLifecycle<T extends ServiceBase> extends Required<
  ApplicationModule<T, ServiceSession>
> {
  call(
    service: T,
    session: ServiceSession,
    methodName: string,
    args: Uint8Array,
    agent: TaskAgent,
  ): Promise<Buffer>;
}

/**
 * Wires the five lifecycle functions of an application module to a {@link ServiceBase}:
 * `export const { createService, enterSession, call, leaveSession, destroyService } = defineService(() => new MyService());`
 *
 * @param factory builds the service; receives the task's `applicationService` and `applicationNamespace`.
 */
export function defineService<T extends ServiceBase>(
  factory: (serviceName: string, serviceNamespace: string) => T | Promise<T>,
): ServiceLifecycle<T> {
  return {
    createService: factory,
    enterSession: (service, sessionId) => service.enterSession(sessionId),
    call: (service, session, methodName, args, agent) => service.call(session, methodName, args, agent),
    leaveSession: (service, session) => service.leaveSession(session),
    destroyService: (service) => service.destroy(),
  };
}
