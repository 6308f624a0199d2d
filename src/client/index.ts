/** zgrid's client library: `import { connect, SessionService } from "zgrid/client"`. */
export { connect, ZgridClient } from "./client.js";
export { Connection, type ConnectOptions, type Reply, type RequestOptions } from "./connection.js";
export { parseServerUrl, type ServerAddress } from "./url.js";
export { ZgridError, ErrorCode } from "../protocol/errors.js";
export { encodePayload, decodeOutput } from "./payload.js";
export * from "./types.js";
export {
  SessionService,
  WaitBehavior,
  TaskFailedError,
  type Properties,
  type ClientConfiguration,
  type TaskRequest,
  type ServiceInvocationHandler,
  type WaitResultsOptions,
} from "./session-service.js";
