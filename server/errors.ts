/**
 * An error a person can act on: printed as one line, no stack trace.
 * `exitCode` follows the CLI convention: 2 for bad input or usage, 1 for everything else.
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = "UserError";
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A named thing that does not exist (HTTP 404). */
export class NotFoundError extends UserError {
  constructor(message: string) {
    super(message, 2);
    this.name = "NotFoundError";
  }
}

/** Input larger than a configured cap (HTTP 413). Nothing was stored. */
export class TooLargeError extends UserError {
  constructor(message: string) {
    super(message, 2);
    this.name = "TooLargeError";
  }
}

/** A request the thing's state does not allow now, or a change that lost a race (HTTP 409). Nothing was applied. */
export class ConflictError extends UserError {
  constructor(message: string) {
    super(message, 1);
    this.name = "ConflictError";
  }
}

/** A credential that does not vouch for the caller: a wrong, spent or expired one-time code (HTTP 403). Nothing was handed out. */
export class RefusedError extends UserError {
  constructor(message: string) {
    super(message, 1);
    this.name = "RefusedError";
  }
}
