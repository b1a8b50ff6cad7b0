import { describe, expect, it, vi } from 'vitest';
import { CONNECTION_TIMEOUT_MS, REQUEST_TIMEOUT_MS } from '../../src/adapters/http.ts';
import {
  backoffDelay,
  CALL_DEADLINE_MS,
  CallDeadlineError,
  DEFAULT_MAX_ATTEMPTS,
  isNonAwsServerError,
  isThrottlingError,
  isTransientError,
  isUnsupportedAction,
  MAX_TIMED_OUT_ATTEMPTS,
  operationKind,
  parseMaxAttempts,
  ThrottleCounter,
  throttleCounter,
  withRetry,
} from '../../src/adapters/retry.ts';
import { OutcomeUnknownError } from '../../src/errors.ts';
import { awsError, recordingLog, recordingSleep, unparseableServerError } from './aws-fakes.ts';

/** What @smithy/node-http-handler throws when requestTimeout passes with throwOnRequestTimeout set. */
function requestTimeout(): Error {
  return Object.assign(new Error('a request has exceeded the configured 12000 ms requestTimeout.'), {
    name: 'TimeoutError',
    code: 'ETIMEDOUT',
  });
}

/** An attempt that only ends when the caller's signal aborts, as the SDK's send does when it gets one. */
function hangUntilAborted(signal: AbortSignal) {
  return vi.fn(
    () =>
      new Promise<never>((_, reject) => {
        signal.addEventListener('abort', () =>
          reject(
            Object.assign(new Error('Request aborted', { cause: signal.reason }), { name: 'AbortError' }),
          ),
        );
      }),
  );
}

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

  it("does not retry a 5xx whose body is not an AWS error (moto's HTML page for an unimplemented action)", async () => {
    // Prepare
    const { delays, sleep } = recordingSleep();
    const page = unparseableServerError();
    const fn = failingThen([page], 'never');

    // Act
    const outcome = withRetry(fn, { sleep, maxAttempts: 8, operation: 'DescribeLockedSnapshots' });

    // Assess
    await expect(outcome).rejects.toBe(page);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(delays).toEqual([]);
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

describe('withRetry deadlines', () => {
  it('retries a timed-out read once, then gives up with the timeout', async () => {
    // Prepare
    const { delays, sleep } = recordingSleep();
    const last = requestTimeout();
    const fn = failingThen([requestTimeout(), last, requestTimeout()], 'never');

    // Act
    const outcome = withRetry(fn, {
      sleep,
      maxAttempts: 8,
      operation: 'DescribeImages',
      log: recordingLog(),
    });

    // Assess
    await expect(outcome).rejects.toBe(last);
    expect(fn).toHaveBeenCalledTimes(MAX_TIMED_OUT_ATTEMPTS);
    expect(delays).toHaveLength(MAX_TIMED_OUT_ATTEMPTS - 1);
  });

  it('still retries other transient errors after a timeout, up to maxAttempts', async () => {
    // Prepare
    const { sleep } = recordingSleep();
    const fn = failingThen(
      [requestTimeout(), awsError('InternalError', 500), awsError('ServiceUnavailable', 503)],
      'ok',
    );

    // Act
    const result = await withRetry(fn, {
      sleep,
      maxAttempts: 8,
      operation: 'DescribeImages',
      log: recordingLog(),
    });

    // Assess
    expect(result).toBe('ok');
    expect(fn).toHaveBeenCalledTimes(4);
  });

  it('starts no retry once the deadline has passed, and says so with the last failure as the cause', async () => {
    // Prepare
    const { delays, sleep } = recordingSleep();
    const slowFailure = awsError('InternalError', 500);
    const fn = vi.fn(async () => {
      await new Promise((resolve) => setTimeout(resolve, 60));
      throw slowFailure;
    });

    // Act
    const outcome = withRetry(fn, { sleep, random: () => 0, deadlineMs: 50, operation: 'DescribeImages' });

    // Assess
    const error = await outcome.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(CallDeadlineError);
    expect(error).toMatchObject({ operation: 'DescribeImages', deadlineMs: 50, cause: slowFailure });
    expect(fn).toHaveBeenCalledTimes(1);
    expect(delays).toEqual([]);
  });

  it('does not send a retry whose wait for a token ran past the deadline', async () => {
    // Prepare
    const { sleep } = recordingSleep();
    const throttled = awsError('Throttling', 400);
    const fn = failingThen([throttled], 'never');
    const beforeAttempt = vi.fn(async () => {
      if (beforeAttempt.mock.calls.length === 2) await new Promise((resolve) => setTimeout(resolve, 60));
    });

    // Act
    const outcome = withRetry(fn, {
      sleep,
      random: () => 0,
      beforeAttempt,
      deadlineMs: 40,
      operation: 'DescribeImages',
      log: recordingLog(),
    });

    // Assess
    await expect(outcome).rejects.toSatisfy(
      (error) => error instanceof CallDeadlineError && error.cause === throttled,
    );
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('gives up at once when the next wait would pass the deadline, instead of sleeping into it', async () => {
    // Prepare
    const { delays, sleep } = recordingSleep();
    const unavailable = awsError('ServiceUnavailable', 503);
    const fn = failingThen([unavailable], 'never');

    // Act
    const outcome = withRetry(fn, {
      sleep,
      random: () => 0.5,
      baseDelayMs: 10_000,
      deadlineMs: 1_000,
      operation: 'DescribeImages',
    });

    // Assess
    await expect(outcome).rejects.toSatisfy(
      (error) => error instanceof CallDeadlineError && error.cause === unavailable,
    );
    expect(delays).toEqual([]);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it("reports the caller's abort mid-flight of a read unchanged, not as the call's deadline", async () => {
    // Prepare
    const controller = new AbortController();
    const fn = hangUntilAborted(controller.signal);

    // Act
    const outcome = withRetry(fn, { signal: controller.signal, operation: 'DescribeImages' });
    setTimeout(() => controller.abort(new Error('lambda out of time')), 10);

    // Assess
    await expect(outcome).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('starts the deadline after the first wait for a rate-limit token, and waits before every attempt', async () => {
    // Prepare
    const { sleep } = recordingSleep();
    const beforeAttempt = vi.fn(async () => {
      if (beforeAttempt.mock.calls.length === 1) await new Promise((resolve) => setTimeout(resolve, 80));
    });
    const fn = failingThen([awsError('Throttling', 400)], 'ok');

    // Act
    const result = await withRetry(fn, {
      sleep,
      random: () => 0,
      beforeAttempt,
      deadlineMs: 40,
      operation: 'DescribeImages',
      log: recordingLog(),
    });

    // Assess
    expect(result).toBe('ok');
    expect(beforeAttempt).toHaveBeenCalledTimes(2);
  });

  it('throws a failed wait for a token as it is, without sending', async () => {
    // Prepare
    const refused = new Error('limiter gave up');
    const fn = vi.fn(async () => 'never');

    // Act
    const outcome = withRetry(fn, {
      beforeAttempt: async () => Promise.reject(refused),
      operation: 'DeleteSnapshot',
    });

    // Assess
    await expect(outcome).rejects.toBe(refused);
    expect(fn).not.toHaveBeenCalled();
  });

  it('fits the default timed-out attempts inside the deadline, and a whole call well inside two minutes', () => {
    // The request timeout runs from the moment the request is created, the connection included.
    expect(MAX_TIMED_OUT_ATTEMPTS * REQUEST_TIMEOUT_MS).toBeLessThan(CALL_DEADLINE_MS);
    expect(CONNECTION_TIMEOUT_MS).toBeLessThan(REQUEST_TIMEOUT_MS);
    // The last retry may start just inside the deadline and then run its full request timeout.
    expect(CALL_DEADLINE_MS + REQUEST_TIMEOUT_MS).toBeLessThanOrEqual(60_000);
  });
});

describe('withRetry by operation kind', () => {
  const NON_IDEMPOTENT = ['DeregisterImage', 'DeleteSnapshot', 'DisableImage', 'EnableImage', 'SendMessage'];
  const AMBIGUOUS: [string, () => unknown][] = [
    ['a request timeout', requestTimeout],
    [
      'a connection reset',
      () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET', name: 'TimeoutError' }),
    ],
    ['a 5xx with an AWS code', () => awsError('InternalError', 500)],
    ['a 5xx without one', unparseableServerError],
    ['an error the SDK marks $retryable', () => Object.assign(awsError('Weird', 400), { $retryable: {} })],
  ];

  it.each(
    NON_IDEMPOTENT.flatMap((operation) =>
      AMBIGUOUS.map(([label, make]) => [operation, label, make] as const),
    ),
  )('never resends %s after %s: it may have taken effect', async (operation, _label, make) => {
    // Prepare
    const { delays, sleep } = recordingSleep();
    const failure = make();
    const fn = failingThen([failure], 'never');

    // Act
    const outcome = withRetry(fn, { sleep, maxAttempts: 8, operation, log: recordingLog() });

    // Assess
    const error = await outcome.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OutcomeUnknownError);
    expect(error).toMatchObject({ operation });
    expect((error as Error).cause).toBe(failure);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(delays).toEqual([]);
  });

  it.each([
    ['throttled', awsError('RequestLimitExceeded', 503)],
    ['refused a connection', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })],
    ['found no such host', Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' })],
    ['failed a DNS lookup for now', Object.assign(new Error('getaddrinfo EAI_AGAIN'), { code: 'EAI_AGAIN' })],
  ])('resends DeregisterImage that was %s: it certainly did nothing', async (_label, failure) => {
    // Prepare
    const { sleep } = recordingSleep();
    const fn = failingThen([failure], 'done');

    // Act
    const result = await withRetry(fn, { sleep, operation: 'DeregisterImage', log: recordingLog() });

    // Assess
    expect(result).toBe('done');
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it('throws a definite answer to a write unchanged', async () => {
    // Prepare
    const gone = awsError('InvalidAMIID.NotFound', 400);
    const fn = failingThen([gone], 'never');

    // Act
    const outcome = withRetry(fn, { operation: 'DeregisterImage' });

    // Assess
    await expect(outcome).rejects.toBe(gone);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('reports a write whose retries the deadline stopped as not done: every attempt was refused', async () => {
    // Prepare
    const { sleep } = recordingSleep();
    const throttled = awsError('RequestLimitExceeded', 503);
    const fn = failingThen([throttled], 'never');

    // Act
    const outcome = withRetry(fn, {
      sleep,
      random: () => 0.5,
      baseDelayMs: 10_000,
      deadlineMs: 1_000,
      operation: 'DeleteSnapshot',
    });

    // Assess
    await expect(outcome).rejects.toSatisfy(
      (error) => error instanceof CallDeadlineError && error.cause === throttled,
    );
  });

  it("reports a write that the caller's signal cut off in flight as outcome unknown", async () => {
    // Prepare
    const controller = new AbortController();
    const fn = hangUntilAborted(controller.signal);

    // Act
    const outcome = withRetry(fn, { signal: controller.signal, operation: 'SendMessage' });
    setTimeout(() => controller.abort(new Error('lambda out of time')), 10);

    // Assess
    await expect(outcome).rejects.toSatisfy(
      (error) => error instanceof OutcomeUnknownError && error.operation === 'SendMessage',
    );
  });

  it.each(['CreateTags', 'DeleteTags', 'EnableImageDeprecation', 'ModifySnapshotAttribute', 'PutParameter'])(
    'resends the idempotent %s after a timeout, as a read',
    async (operation) => {
      // Prepare
      const { sleep } = recordingSleep();
      const fn = failingThen([requestTimeout(), awsError('InternalError', 500)], 'ok');

      // Act
      const result = await withRetry(fn, { sleep, operation, log: recordingLog() });

      // Assess
      expect(result).toBe('ok');
      expect(fn).toHaveBeenCalledTimes(3);
    },
  );
});

describe('operationKind', () => {
  it.each([
    ['DescribeImages', 'read'],
    ['GetCallerIdentity', 'read'],
    ['ListTagsForResource', 'read'],
    ['LookupEvents', 'read'],
    ['CreateTags', 'idempotent-write'],
    ['DeleteTags', 'idempotent-write'],
    ['EnableImageDeprecation', 'idempotent-write'],
    ['DisableImageDeprecation', 'idempotent-write'],
    ['ModifyImageAttribute', 'idempotent-write'],
    ['ModifySnapshotAttribute', 'idempotent-write'],
    ['PutParameter', 'idempotent-write'],
    ['DeregisterImage', 'write'],
    ['DeleteSnapshot', 'write'],
    ['DisableImage', 'write'],
    ['EnableImage', 'write'],
    ['SendMessage', 'write'],
    ['SomethingAddedLater', 'write'],
  ])('classifies %s as %s', (operation, kind) => {
    expect(operationKind(operation)).toBe(kind);
  });
});

describe('non-AWS error bodies', () => {
  it('recognises a 5xx without an AWS code, and only that, as not an AWS answer', () => {
    expect(isNonAwsServerError(unparseableServerError())).toBe(true);
    expect(isNonAwsServerError(awsError('UnknownError', 502))).toBe(true);
    expect(isNonAwsServerError(awsError('InternalError', 500))).toBe(false);
    expect(isNonAwsServerError(Object.assign(new Error('x'), { $metadata: { httpStatusCode: 400 } }))).toBe(
      false,
    );
    expect(isNonAwsServerError(requestTimeout())).toBe(false);
  });

  it('reads an unsupported action from its code or from a non-AWS 5xx', () => {
    expect(isUnsupportedAction(awsError('InvalidAction', 400))).toBe(true);
    expect(isUnsupportedAction(awsError('UnsupportedOperation', 400))).toBe(true);
    expect(isUnsupportedAction(unparseableServerError())).toBe(true);
    expect(isUnsupportedAction(awsError('InternalError', 500))).toBe(false);
    expect(isUnsupportedAction(awsError('RequestLimitExceeded', 503))).toBe(false);
  });

  it('counts its own deadline as transient, so callers do not mistake it for an answer', () => {
    expect(isTransientError(new CallDeadlineError('DescribeImages', 1))).toBe(true);
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

describe('withRetry: throttle count', () => {
  it('counts every throttled attempt by operation, the last one of a call that gives up included', async () => {
    // Prepare
    const throttles = new ThrottleCounter();
    const { sleep } = recordingSleep();
    const retried = failingThen(
      [awsError('RequestLimitExceeded', 503), awsError('ThrottlingException', 400)],
      'ok',
    );
    const refused = failingThen(
      [Object.assign(new Error('slow down'), { $metadata: { httpStatusCode: 429 } })],
      'never',
    );
    const options = { sleep, random: () => 0, log: recordingLog(), throttles };

    // Act
    const result = await withRetry(retried, { ...options, operation: 'DescribeImages' });
    const error = await withRetry(refused, {
      ...options,
      operation: 'DeregisterImage',
      maxAttempts: 1,
    }).catch((caught: unknown) => caught);

    // Assess
    expect(result).toBe('ok');
    expect(error).toBeInstanceOf(Error);
    expect(throttles.total).toBe(3);
    expect(throttles.byOperation()).toEqual({ DescribeImages: 2, DeregisterImage: 1 });
    expect(Object.keys(throttles.byOperation())).toEqual(['DescribeImages', 'DeregisterImage']);
  });

  it('counts nothing for other errors, nor for a call the caller aborted', async () => {
    // Prepare
    const throttles = new ThrottleCounter();
    const { sleep } = recordingSleep();
    const controller = new AbortController();
    controller.abort();

    // Act
    await withRetry(failingThen([awsError('InternalError', 500)], 'ok'), {
      sleep,
      random: () => 0,
      log: recordingLog(),
      throttles,
    });
    await withRetry(failingThen([awsError('InvalidAMIID.NotFound', 400)], 'ok'), {
      log: recordingLog(),
      throttles,
    }).catch(() => undefined);
    await withRetry(failingThen([awsError('RequestLimitExceeded', 503)], 'ok'), {
      signal: controller.signal,
      throttles,
    }).catch(() => undefined);

    // Assess
    expect(throttles.total).toBe(0);
    expect(throttles.byOperation()).toEqual({});
  });

  it('records in the process-wide counter by default, which a reset starts from zero', async () => {
    // Prepare
    throttleCounter.reset();
    const { sleep } = recordingSleep();

    // Act
    await withRetry(failingThen([awsError('Throttling', 400)], 'ok'), {
      sleep,
      random: () => 0,
      log: recordingLog(),
    });
    const counted = throttleCounter.total;
    throttleCounter.reset();

    // Assess
    expect(counted).toBe(1);
    expect(throttleCounter.total).toBe(0);
    expect(throttleCounter.byOperation()).toEqual({});
  });
});
