/**
 * zgrid/worker: the worker host, and what application modules build on.
 * @packageDocumentation
 */
export { WorkerHost, type WorkerHostOptions } from "./host.js";
export { ServiceBase, defineService, type ServiceSession, type ServiceLifecycle } from "./service-base.js";
export { ApplicationError, isApplicationError } from "./errors.js";
export { ZgridError, ErrorCode } from "../protocol/errors.js";
export type {
  TaskAgent,
  NewResult,
  CreatedResult,
  ChildTask,
  ChildTaskOptions,
  SubmittedTask,
  SubmitCallOptions,
} from "./agent.js";
export type { ApplicationModule } from "./app-module.js";
