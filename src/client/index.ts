/**
 * zgrid's client library: `import { connect, SessionService, HtcGridConnector } from "zgrid/client"`.
 *
 * - {@link connect} / {@link ZgridClient}: one typed method per server command.
 * - {@link SessionService}: ArmoniK's SDK (seed 000), configured by {@link loadClientConfig}.
 * - {@link HtcGridConnector}: HTC-Grid's client API (seed 003).
 *
 * See docs/client.md.
 * @packageDocumentation
 */
export { connect, ZgridClient } from "./client.js";
export {
  Connection,
  CurveRequiredError,
  type ConnectOptions,
  type Reply,
  type RequestOptions,
} from "./connection.js";
export { parseServerUrl, type ServerAddress } from "./url.js";
export { ZgridError, ErrorCode } from "../protocol/errors.js";
export { encodePayload, decodeOutput } from "./payload.js";
export { parseFilterText } from "./filter-text.js";
export { uploadLarge, downloadLarge, DEFAULT_CHUNK_BYTES } from "./large-data.js";
export * from "./types.js";
export {
  SessionService,
  WaitBehavior,
  TaskFailedError,
  type Properties,
  type ClientConfiguration,
  type CurveKeyPair,
  type TaskRequest,
  type ServiceInvocationHandler,
  type WaitResultsOptions,
} from "./session-service.js";
export {
  loadClientConfig,
  DEFAULT_SESSION_TASK_OPTIONS,
  type ClientSettings,
  type LoadClientConfigOptions,
} from "./config.js";
export {
  HtcGridConnector,
  type HtcGridConfig,
  type SubmissionResponse,
  type HtcGridResults,
  type HtcGridCancelCounts,
} from "./htc-grid.js";
