/**
 * Named errors. Each sets `name` so logs and the CLI can tell them apart, and keeps the
 * underlying error as `cause` instead of flattening it into a string.
 */

export class PolicyError extends Error {
  override name = 'PolicyError';
  readonly problems: readonly string[];

  constructor(problems: readonly string[], options?: ErrorOptions) {
    super(`invalid policy:\n  - ${problems.join('\n  - ')}`, options);
    this.problems = problems;
  }
}

export class InventoryError extends Error {
  override name = 'InventoryError';
}

export class ActionError extends Error {
  override name = 'ActionError';
  readonly code: string;

  constructor(message: string, code: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

export class UsageError extends Error {
  override name = 'UsageError';
}

/** The AWS error code of an SDK error (`InvalidAMIID.NotFound`, ...), or the error's name. */
export function errorCode(error: unknown): string {
  if (error && typeof error === 'object') {
    const candidate = error as { Code?: unknown; code?: unknown; name?: unknown };
    for (const value of [candidate.Code, candidate.code, candidate.name]) {
      if (typeof value === 'string' && value.length > 0) return value;
    }
  }
  return 'UnknownError';
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A write whose request may have reached AWS but whose answer never came back (a timeout, a reset
 * connection, a 5xx). It is not retried blindly: a second DeregisterImage or DeleteSnapshot would
 * answer NotFound and hide that the first one worked. The caller finds out what happened by reading
 * the resource again.
 */
export class OutcomeUnknownError extends Error {
  override name = 'OutcomeUnknownError';
  readonly operation: string;

  constructor(operation: string, options?: ErrorOptions) {
    const code = options?.cause === undefined ? 'no answer' : errorCode(options.cause);
    super(`${operation} may or may not have taken effect (${code})`, options);
    this.operation = operation;
  }
}

/** The endpoint does not offer this API (an older partition, an emulator): a fact is unknown, not absent. */
export class UnsupportedApiError extends Error {
  override name = 'UnsupportedApiError';
  readonly operation: string;

  constructor(operation: string, options?: ErrorOptions) {
    super(`${operation} is not supported by this endpoint`, options);
    this.operation = operation;
  }
}
