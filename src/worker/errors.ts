/**
 * An error the application means to return: the task ends `ERROR` (final, never retried). Any other error
 * thrown by application code ends the attempt `FAILED`, which the server retries while `maxRetries` allows.
 *
 * @example
 * ```js
 * import { ApplicationError } from "zgrid/worker";
 * if (values.length === 0) throw new ApplicationError("sum needs at least one value");
 * ```
 */
export class ApplicationError extends Error {
  override readonly name = "ApplicationError";

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * Whether `err` is an {@link ApplicationError}. Matches by name too: an application module may load its
 * own copy of zgrid, so `instanceof` alone would miss its errors.
 */
export function isApplicationError(err: unknown): err is Error {
  return err instanceof ApplicationError || (err instanceof Error && err.name === "ApplicationError");
}
