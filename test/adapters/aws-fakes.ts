import { readFileSync } from 'node:fs';
import { vi } from 'vitest';
import type { Log } from '../../src/core/ports.ts';

/** An error shaped like the SDK's: `name` is the AWS error code, plus `$fault` and `$metadata`. */
export function awsError(code: string, httpStatusCode = 400, message = `${code} (fake)`): Error {
  return Object.assign(new Error(message), {
    name: code,
    $fault: httpStatusCode >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode, attempts: 1, totalRetryDelay: 0 },
  });
}

/** What the SDK throws when moto answers an unimplemented call with an HTML 500 page. */
export function unparseableServerError(): Error {
  return Object.assign(new Error('@aws-sdk XML parse error: mismatched tags <html> and </title>.'), {
    $metadata: { httpStatusCode: 500, attempts: 1, totalRetryDelay: 0 },
  });
}

/** A recorded API page from test/fixtures/ec2. Parsed afresh on every call, so callers may change it. */
export function ec2Fixture<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(`../fixtures/ec2/${name}.json`, import.meta.url), 'utf8')) as T;
}

export function recordingSleep(): { delays: number[]; sleep: (ms: number) => Promise<void> } {
  const delays: number[] = [];
  return {
    delays,
    sleep: async (ms: number) => {
      delays.push(ms);
    },
  };
}

type LogMethod = Log['info'];

export function recordingLog() {
  return {
    debug: vi.fn<LogMethod>(),
    info: vi.fn<LogMethod>(),
    warn: vi.fn<LogMethod>(),
    error: vi.fn<LogMethod>(),
  } satisfies Log;
}
