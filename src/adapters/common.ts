import type { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import type { STSClient } from '@aws-sdk/client-sts';
import type { Log } from '../core/ports.ts';
import { InventoryError } from '../errors.ts';
import { type ApiLimiter, defaultLimiter } from './limiter.ts';
import { type RetryOptions, withRetry } from './retry.ts';

export { forEachConcurrent } from '../core/concurrency.ts';

/** What every adapter is built from; clients default to the module-scope ones in clients.ts. */
export interface AdapterDeps {
  ec2?: EC2Client;
  autoScaling?: AutoScalingClient;
  ssm?: SSMClient;
  sts?: STSClient;
  /** Passed to every `client.send` and to withRetry, so a deadline stops both the call and its retries. */
  signal?: AbortSignal;
  /** Test seams for backoff and deadlines (sleep, random, maxAttempts, deadlineMs, ...). */
  retry?: Omit<RetryOptions, 'signal' | 'operation' | 'beforeAttempt'>;
  /** Paces each API below its token bucket; defaults to the process-wide limiter. */
  limiter?: ApiLimiter;
  log?: Log;
}

export type Call = <T>(
  operation: string,
  send: (options: { abortSignal?: AbortSignal }) => Promise<T>,
) => Promise<T>;

/**
 * Every AWS call goes through this: paced by the limiter, retried by withRetry as the operation
 * allows and within its deadline, and sent with the caller's signal.
 */
export function makeCall(deps: AdapterDeps): Call {
  const sendOptions = deps.signal ? { abortSignal: deps.signal } : {};
  const log = deps.log ?? deps.retry?.log;
  const limiter = deps.limiter ?? defaultLimiter;
  return (operation, send) =>
    withRetry(() => send(sendOptions), {
      ...deps.retry,
      ...(log ? { log } : {}),
      ...(deps.signal ? { signal: deps.signal } : {}),
      operation,
      // Every attempt, retries included, spends a token: that is how EC2 counts them.
      beforeAttempt: (signal) => limiter.acquire(operation, signal),
    });
}

/**
 * Follows NextToken until it is absent or empty. Emulators such as moto often ignore MaxResults
 * and never send a token, which simply ends the loop after one page.
 */
export async function paginate<P extends { NextToken?: string | undefined }>(
  operation: string,
  fetchPage: (nextToken: string | undefined) => Promise<P>,
  onPage: (page: P) => void,
): Promise<void> {
  const seen = new Set<string>();
  let token: string | undefined;
  do {
    const page = await fetchPage(token);
    onPage(page);
    token = page.NextToken || undefined;
    if (token !== undefined) {
      // A token that comes back twice would loop forever; better to fail the run than to spin.
      if (seen.has(token)) throw new InventoryError(`${operation} returned the same NextToken twice`);
      seen.add(token);
    }
  } while (token !== undefined);
}

export function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size));
  return chunks;
}
