import { setTimeout as sleepFor } from 'node:timers/promises';
import type { Log } from '../core/ports.ts';
import { errorCode } from '../errors.ts';
import { logger } from '../logger.ts';

/**
 * One retry policy for every AWS call. The SDK clients are built with `maxAttempts: 1`, so this
 * wrapper is the only place a call is retried: backoff is visible in tests, the AbortSignal can
 * stop it, and a throttled call is never retried twice over (SDK attempts × ours).
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

export const DEFAULT_BASE_DELAY_MS = 200;
export const DEFAULT_MAX_DELAY_MS = 20_000;

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

export interface RetryOptions {
  /** Total attempts, the first included. Default: AWS_MAX_ATTEMPTS, else 8. */
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Injected in tests to record delays instead of waiting. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Injected in tests; must return a number in [0, 1). */
  random?: () => number;
  /** Once aborted, no further attempt is made and the last error is thrown. */
  signal?: AbortSignal;
  /** Named in the debug log of each retry, e.g. `DescribeImages`. */
  operation?: string;
  log?: Log;
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

/** Worth another attempt: the same request may well succeed a moment later. */
export function isTransientError(error: unknown): boolean {
  if (errorCode(error) === 'AbortError') return false;
  if (shape(error).$retryable) return true;
  const status = statusOf(error);
  if (status !== undefined && status >= 500 && status <= 599) return true;
  return TRANSIENT_CODES.has(errorCode(error)) || TRANSIENT_CODES.has(String(shape(error).name));
}

export function isRetryableError(error: unknown): boolean {
  return isThrottlingError(error) || isTransientError(error);
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

/** Runs `fn`, retrying throttling and transient errors; any other error is thrown at once, unchanged. */
export async function withRetry<T>(fn: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const sleep = options.sleep ?? defaultSleep;
  const random = options.random ?? Math.random;
  const { signal } = options;
  const log = options.log ?? logger;

  let lastError: unknown;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    if (signal?.aborted) throw attempt === 1 ? signal.reason : lastError;
    try {
      return await fn();
    } catch (error) {
      lastError = error;
      if (attempt === maxAttempts || !isRetryableError(error) || signal?.aborted) throw error;
      const delayMs = backoffDelay(attempt, random, options.baseDelayMs, options.maxDelayMs);
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
