/** Error codes of the wire protocol (design §3.2). Stable: clients switch on them. */
export const ErrorCode = {
  BAD_REQUEST: "BAD_REQUEST",
  UNAUTHENTICATED: "UNAUTHENTICATED",
  /** Authenticated, but the caller's role does not grant the command, or the session is another user's. */
  PERMISSION_DENIED: "PERMISSION_DENIED",
  UNKNOWN_COMMAND: "UNKNOWN_COMMAND",
  INVALID_ARGUMENT: "INVALID_ARGUMENT",
  NOT_FOUND: "NOT_FOUND",
  FAILED_PRECONDITION: "FAILED_PRECONDITION",
  RESOURCE_EXHAUSTED: "RESOURCE_EXHAUSTED",
  UNAVAILABLE: "UNAVAILABLE",
  INTERNAL: "INTERNAL",
  /** Client side only: no reply arrived within the request's timeout. */
  TIMEOUT: "TIMEOUT",
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** An error with a protocol code; thrown by command handlers, raised by the client on an ERROR reply. */
export class ZgridError extends Error {
  override readonly name = "ZgridError";
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export function invalidArgument(message: string): ZgridError {
  return new ZgridError(ErrorCode.INVALID_ARGUMENT, message);
}

export function notFound(message: string): ZgridError {
  return new ZgridError(ErrorCode.NOT_FOUND, message);
}

export function failedPrecondition(message: string): ZgridError {
  return new ZgridError(ErrorCode.FAILED_PRECONDITION, message);
}

export function permissionDenied(message: string): ZgridError {
  return new ZgridError(ErrorCode.PERMISSION_DENIED, message);
}
