import { describe, expect, it, vi } from 'vitest';
import {
  backoffDelay,
  DEFAULT_MAX_ATTEMPTS,
  isThrottlingError,
  isTransientError,
  parseMaxAttempts,
  withRetry,
} from '../../src/adapters/retry.ts';
import { awsError, recordingLog, recordingSleep, unparseableServerError } from './aws-fakes.ts';

function failingThen<T>(errors: unknown[], value: T) {
  return vi.fn(async () => {
    const error = errors.shift();
    if (error !== undefined) throw error;
    return value;
  });
}

describe('withRetry', () => {
  it('retries RequestLimitExceeded with full-jitter exponential backoff, then returns the result', async () => {
    // Prepare
    const { delays, sleep } = recordingSleep();
    const fn = failingThen(
      [awsError('RequestLimitExceeded', 503), awsError('RequestLimitExceeded', 503)],
      'ok',
    );

    // Act
    const result = await withRetry(fn, { sleep, random: () => 0.5, maxAttempts: 8, log: recordingLog() });

    // Assess
    expect(result).toBe('ok');
    expect(fn).toHaveBeenCalledTimes(3);
    expect(delays).toEqual([100, 200]);
  });

  it('gives up after maxAttempts and throws the last error unchanged', async () => {
    // Prepare
    const { delays, sleep } = recordingSleep();
    const last = awsError('Throttling', 400);
    const fn = failingThen([awsError('Throttling', 400), awsError('Throttling', 400), last], 'never');

    // Act
    const outcome = withRetry(fn, { sleep, random: () => 1, maxAttempts: 3, log: recordingLog() });

    // Assess
    await expect(outcome).rejects.toBe(last);
    expect(fn).toHaveBeenCalledTimes(3);
    expect(delays).toEqual([200, 400]);
  });

  it('never retries an error that is not throttling or transient', async () => {
    // Prepare
    const { delays, sleep } = recordingSleep();
    const notFound = awsError('InvalidAMIID.NotFound', 400);
    const fn = failingThen([notFound], 'never');

    // Act
    const outcome = withRetry(fn, { sleep, maxAttempts: 8 });

    // Assess
    await expect(outcome).rejects.toBe(notFound);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(delays).toEqual([]);
  });

  it.each([
    ['a 5xx with an AWS code', awsError('InternalError', 500)],
    ['an unparseable HTML 500', unparseableServerError()],
    ['a connection reset', Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })],
    ['a socket timeout', Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' })],
    ['an SDK TimeoutError', Object.assign(new Error('timed out'), { name: 'TimeoutError' })],
    ['an error the SDK marks $retryable', Object.assign(awsError('Weird', 400), { $retryable: {} })],
  ])('retries %s', async (_label, error) => {
    // Prepare
    const { sleep } = recordingSleep();
    const fn = failingThen([error], 'ok');

    // Act
    const result = await withRetry(fn, { sleep, maxAttempts: 2, log: recordingLog() });

    // Assess
    expect(result).toBe('ok');
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it('makes a single attempt when maxAttempts is 1, as the integration tests configure', async () => {
    // Prepare
    const { sleep } = recordingSleep();
    const fn = failingThen([unparseableServerError()], 'never');

    // Act
    const outcome = withRetry(fn, { sleep, maxAttempts: 1 });

    // Assess
    await expect(outcome).rejects.toThrow(/XML parse error/);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('stops retrying once the signal is aborted and reports the error that caused the wait', async () => {
    // Prepare
    const controller = new AbortController();
    const throttled = awsError('RequestLimitExceeded', 503);
    const fn = failingThen([throttled, throttled, throttled], 'never');
    const sleep = vi.fn(async () => controller.abort(new Error('deadline')));

    // Act
    const outcome = withRetry(fn, { sleep, maxAttempts: 8, signal: controller.signal, log: recordingLog() });

    // Assess
    await expect(outcome).rejects.toBe(throttled);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('makes no call at all when the signal is already aborted', async () => {
    // Prepare
    const controller = new AbortController();
    const reason = new Error('out of time');
    controller.abort(reason);
    const fn = vi.fn(async () => 'never');

    // Act
    const outcome = withRetry(fn, { signal: controller.signal });

    // Assess
    await expect(outcome).rejects.toBe(reason);
    expect(fn).not.toHaveBeenCalled();
  });

  it('uses the real, abortable sleep when none is injected', async () => {
    // Prepare
    const fn = failingThen([awsError('SlowDown', 503)], 'ok');

    // Act
    const result = await withRetry(fn, { maxAttempts: 2, baseDelayMs: 1, log: recordingLog() });

    // Assess
    expect(result).toBe('ok');
  });
});

describe('backoffDelay', () => {
  it.each([
    [1, 200],
    [2, 400],
    [5, 3_200],
    [7, 12_800],
    [8, 20_000],
    [30, 20_000],
  ])('caps the ceiling of retry %i at %i ms', (retry, ceiling) => {
    // Prepare
    const almostOne = () => 0.999_999_9;

    // Act
    const delay = backoffDelay(retry, almostOne);

    // Assess
    expect(delay).toBe(Math.floor(0.999_999_9 * ceiling));
    expect(backoffDelay(retry, () => 0)).toBe(0);
  });
});

describe('error classification', () => {
  it.each([
    'RequestLimitExceeded',
    'Throttling',
    'ThrottlingException',
    'TooManyRequestsException',
    'RequestThrottled',
    'SlowDown',
  ])('treats %s as throttling', (code) => {
    expect(isThrottlingError(awsError(code, 400))).toBe(true);
  });

  it('treats $retryable.throttling and HTTP 429 as throttling', () => {
    expect(isThrottlingError(Object.assign(awsError('X', 400), { $retryable: { throttling: true } }))).toBe(
      true,
    );
    expect(isThrottlingError(awsError('Whatever', 429))).toBe(true);
  });

  it.each([
    'InvalidAMIID.NotFound',
    'InvalidAMIID.Unavailable',
    'InvalidSnapshot.InUse',
    'UnauthorizedOperation',
    'AbortError',
  ])('does not retry %s', (code) => {
    const error = awsError(code, 400);
    expect(isThrottlingError(error) || isTransientError(error)).toBe(false);
  });

  it('never retries an aborted call, whatever its status', () => {
    expect(isTransientError(awsError('AbortError', 500))).toBe(false);
  });
});

describe('parseMaxAttempts', () => {
  it('defaults to 8 and honours a whole number', () => {
    expect(parseMaxAttempts(undefined)).toBe(8);
    expect(parseMaxAttempts(' ')).toBe(8);
    expect(parseMaxAttempts('1')).toBe(1);
    expect(parseMaxAttempts('12')).toBe(12);
  });

  it.each(['0', '-1', '2.5', 'many'])('fails fast on %s', (value) => {
    expect(() => parseMaxAttempts(value)).toThrow(RangeError);
  });

  it('reads AWS_MAX_ATTEMPTS once, at module load', () => {
    expect(DEFAULT_MAX_ATTEMPTS).toBe(parseMaxAttempts(process.env.AWS_MAX_ATTEMPTS));
  });
});
