import { setTimeout as sleepFor } from 'node:timers/promises';
import type { Log } from '../core/ports.ts';
import { errorCode, OutcomeUnknownError } from '../errors.ts';
import { logger } from '../logger.ts';

/**
 * One retry policy for every AWS call. The SDK clients are built with `maxAttempts: 1`, so this
 * wrapper is the only place a call is retried: backoff is visible in tests, the AbortSignal can
 * stop it, and a throttled call is never retried twice over (SDK attempts × ours).
 *
 * Each attempt is bounded by the HTTP timeouts in http.ts; the call as a whole, retries and waits
 * included, by a deadline here. What may be retried depends on the operation (operationKind): a
 * write whose first attempt may have landed is reported as OutcomeUnknownError, never resent.
 */

const THROTTLING_CODES = new Set([
  'RequestLimitExceeded',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
]);

const TRANSIENT_CODES = new Set([
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  'InternalError',
  'InternalFailure',
  'ServiceUnavailable',
  'Unavailable',
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** Failures before any byte of the request left this machine: even a non-idempotent write can be resent. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN']);

/** What EC2 answers for an action the endpoint does not have (older partitions, emulators). */
const UNSUPPORTED_CODES = new Set(['InvalidAction', 'UnsupportedOperation']);
/** errorCode() of an SDK error that carried no AWS error code at all. */
const CODELESS_NAMES = new Set(['Error', 'UnknownError', 'Unknown']);

export const DEFAULT_BASE_DELAY_MS = 200;
export const DEFAULT_MAX_DELAY_MS = 20_000;

/**
 * No retry starts after this, counted from the first send: two timed-out attempts (2 × 12 s) fit
 * with room for quick retries, and with the last attempt's 12 s a call still ends within a minute.
 */
export const CALL_DEADLINE_MS = 45_000;

/**
 * A request that got no answer once is worth one more try (a bad connection, a lost packet); a
 * second silence means the endpoint is not answering, and a third try would only add 12 s more.
 */
export const MAX_TIMED_OUT_ATTEMPTS = 2;

/** Read once at cold start; a bad value fails the module load instead of silently changing behaviour. */
export const DEFAULT_MAX_ATTEMPTS = parseMaxAttempts(process.env.AWS_MAX_ATTEMPTS);

export function parseMaxAttempts(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return 8;
  const attempts = Number(value);
  if (!Number.isInteger(attempts) || attempts < 1) {
    throw new RangeError(`AWS_MAX_ATTEMPTS must be a whole number >= 1, got ${JSON.stringify(value)}`);
  }
  return attempts;
}

export type OperationKind = 'read' | 'idempotent-write' | 'write';

const READ_OPERATION = /^(Describe|Get|List|Lookup)/;

/**
 * Writes whose repeat leaves the resource as one call would and answers as one call would (a tag
 * set twice is set; a permission removed twice is removed), so resending after an unknown outcome
 * cannot mislead.
 */
export const IDEMPOTENT_WRITES: ReadonlySet<string> = new Set([
  'CreateTags',
  'DeleteTags',
  'EnableImageDeprecation',
  'DisableImageDeprecation',
  'ModifyImageAttribute',
  'ModifySnapshotAttribute',
  'PutParameter',
  // Sent with one ClientToken for all its attempts: a resend answers with the report the first one started.
  'CreateImageUsageReport',
  // A second session for the same role changes nothing in the account; the first one simply lapses.
  'AssumeRole',
]);

/**
 * How safe an operation is to send again. Reads always are. Every write not listed above
 * (DeregisterImage, DeleteSnapshot, EnableImage, DisableImage, ModifySnapshotTier, SendMessage, and
 * any operation added later) is not: a second DeregisterImage answers NotFound and hides that the
 * first one worked, a second SendMessage hands the work over twice. Those are resent only when the
 * first attempt certainly did nothing (throttled, or never connected).
 */
export function operationKind(operation: string): OperationKind {
  if (READ_OPERATION.test(operation)) return 'read';
  if (IDEMPOTENT_WRITES.has(operation)) return 'idempotent-write';
  return 'write';
}

/**
 * The deadline stopped the retries before any attempt succeeded. A write only gets here after
 * attempts that certainly did nothing (anything else is OutcomeUnknownError), so it did not happen.
 */
export class CallDeadlineError extends Error {
  override name = 'CallDeadlineError';
  readonly operation: string;
  readonly deadlineMs: number;

  constructor(operation: string, deadlineMs: number, options?: ErrorOptions) {
    super(`${operation} did not succeed within ${deadlineMs} ms`, options);
    this.operation = operation;
    this.deadlineMs = deadlineMs;
  }
}

/**
 * Throttled attempts seen by withRetry, by operation: what the metrics report as ThrottledCalls.
 * Each attempt a throttle turned away counts, the last one of a call that gave up included, since
 * each is a request AWS refused. Lambda runs one invocation at a time per process, so a handler
 * resets the count when it starts and reads it when it ends; the CLI never reads it.
 */
export class ThrottleCounter {
  #byOperation = new Map<string, number>();
  #total = 0;

  record(operation: string): void {
    this.#total += 1;
    this.#byOperation.set(operation, (this.#byOperation.get(operation) ?? 0) + 1);
  }

  get total(): number {
    return this.#total;
  }

  /** Counts by operation name (`DescribeImages`, ...), the busiest first. */
  byOperation(): Record<string, number> {
    return Object.fromEntries([...this.#byOperation].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));
  }

  reset(): void {
    this.#total = 0;
    this.#byOperation.clear();
  }
}

/** The process's counter, which every withRetry records in unless given another. */
export const throttleCounter = new ThrottleCounter();

export interface RetryOptions {
  /** Total attempts, the first included. Default: AWS_MAX_ATTEMPTS, else 8. */
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** The whole call, from its first send; default CALL_DEADLINE_MS. */
  deadlineMs?: number;
  /** Attempts that may time out before the call gives up; default MAX_TIMED_OUT_ATTEMPTS. */
  maxTimedOutAttempts?: number;
  /** Injected in tests to record delays instead of waiting. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Injected in tests; must return a number in [0, 1). */
  random?: () => number;
  /**
   * Once aborted, no further attempt is made and the last error is thrown; a write it cuts off in
   * flight is thrown as OutcomeUnknownError.
   */
  signal?: AbortSignal;
  /**
   * Named in the debug log of each retry, e.g. `DescribeImages`, and decides what may be retried
   * (operationKind). Without it the call is treated as a read.
   */
  operation?: string;
  /**
   * Runs before each attempt, e.g. to wait for a rate-limit token. Its failure sends nothing, so
   * it is thrown as it is; the first one's wait does not count against the deadline.
   */
  beforeAttempt?: (signal: AbortSignal | undefined) => Promise<void>;
  log?: Log;
  /** Where throttled attempts are counted; default throttleCounter. */
  throttles?: ThrottleCounter;
}

interface AwsErrorShape {
  name?: unknown;
  $retryable?: { throttling?: boolean } | undefined;
  $metadata?: { httpStatusCode?: number } | undefined;
}

function shape(error: unknown): AwsErrorShape {
  return error !== null && typeof error === 'object' ? (error as AwsErrorShape) : {};
}

function statusOf(error: unknown): number | undefined {
  const status = shape(error).$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

export function isThrottlingError(error: unknown): boolean {
  return (
    THROTTLING_CODES.has(errorCode(error)) ||
    shape(error).$retryable?.throttling === true ||
    statusOf(error) === 429
  );
}

/**
 * Worth another attempt: the same request may well succeed a moment later. Our own deadline
 * counts: it says nothing about the resource, only that the endpoint did not answer in time.
 */
export function isTransientError(error: unknown): boolean {
  if (error instanceof CallDeadlineError) return true;
  if (errorCode(error) === 'AbortError') return false;
  if (shape(error).$retryable) return true;
  const status = statusOf(error);
  if (status !== undefined && status >= 500 && status <= 599) return true;
  return TRANSIENT_CODES.has(errorCode(error)) || TRANSIENT_CODES.has(String(shape(error).name));
}

export function isRetryableError(error: unknown): boolean {
  return isThrottlingError(error) || isTransientError(error);
}

/** An attempt that got no (complete) answer in time: the HTTP handler's timeouts, or a dropped socket. */
export function isTimeoutError(error: unknown): boolean {
  return shape(error).name === 'TimeoutError' || errorCode(error) === 'ETIMEDOUT';
}

/**
 * A 5xx whose body was not an AWS error: no error code could be read from it. moto answers every
 * action it does not implement with an HTML 500 page, and a proxy's error page looks the same.
 * Resending the same request gets the same page, so it is never retried.
 */
export function isNonAwsServerError(error: unknown): boolean {
  const status = statusOf(error);
  return status !== undefined && status >= 500 && status <= 599 && CODELESS_NAMES.has(errorCode(error));
}

/**
 * Whether the endpoint simply lacks the action, so a caller may fall back to another way of
 * finding the same facts. A 5xx that does carry a code (InternalError, ServiceUnavailable) is a
 * real failure, not this.
 */
export function isUnsupportedAction(error: unknown): boolean {
  return UNSUPPORTED_CODES.has(errorCode(error)) || isNonAwsServerError(error);
}

type Verdict = 'retry' | 'final' | 'outcome-unknown';

function verdictFor(error: unknown, kind: OperationKind): Verdict {
  // Rejected before anything was done, whatever the operation.
  if (isThrottlingError(error) || NOT_SENT_CODES.has(errorCode(error))) return 'retry';
  const mayHaveLanded = errorCode(error) === 'AbortError' || isRetryableError(error);
  if (kind === 'write') return mayHaveLanded ? 'outcome-unknown' : 'final';
  if (isNonAwsServerError(error) || errorCode(error) === 'AbortError') return 'final';
  return mayHaveLanded ? 'retry' : 'final';
}

/** Full jitter: a uniform pick between 0 and the capped exponential, so throttled callers spread out. */
export function backoffDelay(
  retry: number,
  random: () => number,
  baseDelayMs = DEFAULT_BASE_DELAY_MS,
  maxDelayMs = DEFAULT_MAX_DELAY_MS,
): number {
  const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (retry - 1));
  return Math.floor(random() * ceiling);
}

const defaultSleep = async (ms: number, signal?: AbortSignal): Promise<void> => {
  await sleepFor(ms, undefined, signal ? { signal } : undefined);
};

/**
 * Runs `fn`, retrying what operationKind allows; any other error is thrown at once, unchanged.
 *
 * The deadline is kept between attempts: no retry starts once it has passed, or when its backoff
 * would pass it. An attempt already in flight is not cut off (the caller's signal, which send
 * gets unchanged, is the only thing that does), but the HTTP timeouts bound it, so a call ends
 * within deadlineMs + REQUEST_TIMEOUT_MS.
 *
 * Thrown: the last error when retries are used up or not allowed; CallDeadlineError (cause: the
 * last error) when the deadline ends the call; OutcomeUnknownError when a non-idempotent write
 * failed in a way that may have taken effect (a timeout, a reset, a 5xx, an abort mid-flight).
 */
export async function withRetry<T>(fn: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const maxTimedOut = options.maxTimedOutAttempts ?? MAX_TIMED_OUT_ATTEMPTS;
  const deadlineMs = options.deadlineMs ?? CALL_DEADLINE_MS;
  const sleep = options.sleep ?? defaultSleep;
  const random = options.random ?? Math.random;
  const { signal } = options;
  const log = options.log ?? logger;
  const operation = options.operation ?? 'AWS call';
  const throttles = options.throttles ?? throttleCounter;
  const kind = options.operation === undefined ? 'read' : operationKind(options.operation);

  let startedAt: number | undefined;
  const elapsed = () => (startedAt === undefined ? 0 : performance.now() - startedAt);
  const overDeadline = (cause: unknown) => new CallDeadlineError(operation, deadlineMs, { cause });

  let lastError: unknown;
  let timedOut = 0;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    if (signal?.aborted) throw attempt === 1 ? signal.reason : lastError;
    // Its failure sent nothing, so it is thrown as it is.
    await options.beforeAttempt?.(signal);
    // A retry whose wait for a token ran past the deadline is not sent.
    if (attempt > 1 && elapsed() >= deadlineMs) throw overDeadline(lastError);
    startedAt ??= performance.now();
    try {
      return await fn();
    } catch (error) {
      lastError = error;
      if (isThrottlingError(error)) throttles.record(operation);
      if (signal?.aborted) {
        // Cut off in flight: a write may have landed, a read simply has no answer.
        if (kind === 'write') throw new OutcomeUnknownError(operation, { cause: error });
        throw error;
      }
      const verdict = verdictFor(error, kind);
      if (verdict === 'outcome-unknown') throw new OutcomeUnknownError(operation, { cause: error });
      if (verdict === 'final' || attempt === maxAttempts) throw error;
      if (isTimeoutError(error) && ++timedOut >= maxTimedOut) throw error;
      const delayMs = backoffDelay(attempt, random, options.baseDelayMs, options.maxDelayMs);
      // Waiting past the deadline only to give up then: give up now, with the reason.
      if (elapsed() + delayMs >= deadlineMs) throw overDeadline(error);
      log.debug('retrying AWS call', {
        operation: options.operation,
        attempt,
        maxAttempts,
        delayMs,
        errorCode: errorCode(error),
      });
      try {
        await sleep(delayMs, signal);
      } catch {
        // The wait was aborted: the caller is out of time, so report the failure that made us wait.
        throw error;
      }
    }
  }
  // Only reachable with maxAttempts < 1, which parseMaxAttempts rules out for the default.
  throw lastError ?? new RangeError(`maxAttempts must be >= 1, got ${maxAttempts}`);
}
