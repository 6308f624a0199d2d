import type { TaskAgent } from "./agent.js";

/**
 * The five lifecycle functions an application module exports (design §6). Only `createService` is
 * mandatory. `S` is whatever the module uses as a service, `Session` whatever `enterSession` returns.
 */
export interface ApplicationModule<S = unknown, Session = unknown> {
  /** Called once per thread for each (application, version, namespace, service name) on first use. */
  createService(serviceName: string, serviceNamespace: string): S | Promise<S>;
  /** Called before the first task of a session reaches the service. */
  enterSession?(service: S, sessionId: string): Session | Promise<Session>;
  /**
   * Runs one task. Returns the task's output: a Uint8Array (used as is), undefined/null (no output), or any
   * other value (packed with msgpack). Throw an `ApplicationError` for a final error.
   */
  call?(service: S, session: Session, methodName: string, args: Uint8Array, agent: TaskAgent): unknown;
  /** Called when a task of another session reaches the service, and when the worker stops. */
  leaveSession?(service: S, session: Session): void | Promise<void>;
  /** Called when the worker stops. */
  destroyService?(service: S): void | Promise<void>;
}
