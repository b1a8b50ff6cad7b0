import { setTimeout as sleepFor } from 'node:timers/promises';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { clientTimeouts } from '../adapters/http.ts';
import type { Log } from '../core/ports.ts';
import { errorMessage } from '../errors.ts';
import { logger } from '../logger.ts';

/**
 * Delivery of Block Kit messages to a Slack incoming webhook. A Slack outage must never fail a
 * sweep or an audit, so `send` reports what happened instead of throwing, within the time budget
 * it is given, and never posts a message twice on a guess. The webhook URL is a credential
 * (anyone holding it can post to the channel): it is never logged and never returned.
 */

// Minimal Block Kit shapes: only the blocks ami-janitor builds. See src/notify/blocks.ts for limits.

export interface PlainTextObject {
  type: 'plain_text';
  text: string;
  emoji?: boolean;
}

export interface MrkdwnObject {
  type: 'mrkdwn';
  text: string;
}

export interface HeaderBlock {
  type: 'header';
  text: PlainTextObject;
}

/** Slack rejects a section with neither text nor fields, hence the union. */
export type SectionBlock =
  | { type: 'section'; text: MrkdwnObject; fields?: MrkdwnObject[] }
  | { type: 'section'; text?: MrkdwnObject; fields: MrkdwnObject[] };

export interface ContextBlock {
  type: 'context';
  elements: (MrkdwnObject | PlainTextObject)[];
}

export interface DividerBlock {
  type: 'divider';
}

export type SlackBlock = HeaderBlock | SectionBlock | ContextBlock | DividerBlock;

export interface SlackMessage {
  /** Shown in notifications and by clients that cannot render blocks. */
  text: string;
  blocks: SlackBlock[];
}

export interface DeliveryResult {
  delivered: boolean;
  /**
   * Set, with `delivered: false`, when the last POST timed out: Slack may well have posted it and
   * been slow to say so. It is not sent again; each caller decides what its alert state makes of it.
   */
  maybeDelivered?: true;
  /** HTTP requests made; 0 when nothing was sent (no webhook, it could not be read, no time left). */
  attempts: number;
  /** Status of the last response, when there was one. */
  status?: number;
  error?: string;
}

export interface SendOptions {
  /**
   * Wall-clock milliseconds the whole delivery may take: reading the webhook, every request and
   * every wait between them. No request is started, and no wait begun, that would end past it.
   */
  budgetMs?: number;
}

export interface Notifier {
  /** Never throws: failures come back as `delivered: false` with a reason free of the webhook URL. */
  send(message: SlackMessage, options?: SendOptions): Promise<DeliveryResult>;
}

export interface SlackNotifierOptions {
  /** Resolved on every send, so a rotated parameter is picked up once its cache expires. */
  webhookUrl: () => Promise<string | undefined>;
  fetch?: typeof fetch;
  /** Injected in tests to record waits instead of making them. */
  sleep?: (ms: number) => Promise<void>;
  /** Total HTTP requests, the first included. Default 4. */
  maxAttempts?: number;
  /**
   * Longest wait honoured from a 429's Retry-After; a longer one means "not delivered now", since
   * posting again sooner than Slack asked only earns another 429. Default 30 s.
   */
  maxRetryAfterMs?: number;
  /** Per request, and never more than what is left of the send's budget. Default 5 s. */
  timeoutMs?: number;
  /** Injected in tests; the budget is measured on it. */
  now?: () => number;
  log?: Log;
}

export const DEFAULT_SLACK_MAX_ATTEMPTS = 4;
/** The error of a send with no webhook to send to: Slack is off, not failing. */
export const NO_WEBHOOK = 'no Slack webhook configured';
export const DEFAULT_MAX_RETRY_AFTER_MS = 30_000;
export const DEFAULT_SLACK_TIMEOUT_MS = 5_000;
/** First wait after a 5xx or a network error; doubles on each retry (500 ms, 1 s, 2 s, ...). */
export const SLACK_BACKOFF_BASE_MS = 500;
/** Slack documents Retry-After on every 429; when it is absent or unreadable, wait a second. */
export const DEFAULT_RETRY_AFTER_MS = 1_000;
/**
 * No request starts with less of the budget left than this: Slack usually answers within a few
 * hundred milliseconds, and a request cut off sooner would only leave its outcome unknown.
 */
export const MIN_SLACK_ATTEMPT_MS = 1_000;
const MAX_ERROR_BODY_CHARS = 200;
const REDACTED = '[redacted webhook URL]';

export class SlackWebhookError extends Error {
  override name = 'SlackWebhookError';
}

export class SlackBudgetError extends Error {
  override name = 'SlackBudgetError';
}

type Attempt =
  | { kind: 'delivered'; status: number }
  | { kind: 'retry'; status?: number; error: string; waitMs: number; retryAfter?: boolean }
  | { kind: 'give-up'; status: number; error: string }
  | { kind: 'unknown'; error: string };

export function createSlackNotifier(options: SlackNotifierOptions): Notifier {
  const doFetch = options.fetch ?? fetch;
  const sleep = options.sleep ?? ((ms: number) => sleepFor(ms));
  const maxAttempts = Math.max(1, options.maxAttempts ?? DEFAULT_SLACK_MAX_ATTEMPTS);
  const maxRetryAfterMs = options.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS;
  const timeoutMs = options.timeoutMs ?? DEFAULT_SLACK_TIMEOUT_MS;
  const now = options.now ?? Date.now;
  const log = options.log ?? logger;

  async function attempt(
    url: string,
    body: string,
    attemptNo: number,
    requestTimeoutMs: number,
  ): Promise<Attempt> {
    const backoffMs = SLACK_BACKOFF_BASE_MS * 2 ** (attemptNo - 1);
    let response: Response;
    let text: string;
    try {
      response = await doFetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8' },
        body,
        // A redirect would replay the payload to a host nobody configured.
        redirect: 'manual',
        signal: AbortSignal.timeout(requestTimeoutMs),
      });
      // Read the body even on success so the connection goes back to the pool.
      text = await response.text().catch(() => '');
    } catch (error) {
      const described = describeNetworkError(error, requestTimeoutMs);
      // A request that timed out was most likely received and is being processed slowly: sending
      // it again is how one alert became four. A refused or reset connection, the other failures
      // here, usually never reached Slack (nothing listening, a pooled socket the server closed).
      if (isTimeout(error)) return { kind: 'unknown', error: described };
      return { kind: 'retry', error: described, waitMs: backoffMs };
    }

    const { status } = response;
    if (status >= 200 && status < 300) return { kind: 'delivered', status };
    const error = `HTTP ${status}${text.trim() ? `: ${clip(text.trim(), MAX_ERROR_BODY_CHARS)}` : ''}`;
    if (status === 429) {
      return {
        kind: 'retry',
        status,
        error,
        waitMs: retryAfterMs(response.headers.get('retry-after')),
        retryAfter: true,
      };
    }
    if (status >= 500) return { kind: 'retry', status, error, waitMs: backoffMs };
    // invalid_blocks, invalid_payload, no_service, action_prohibited...: the same request fails again.
    return { kind: 'give-up', status, error };
  }

  return {
    async send(message, sendOptions = {}) {
      const budgetMs = sendOptions.budgetMs;
      const deadline = budgetMs === undefined ? Number.POSITIVE_INFINITY : now() + Math.max(0, budgetMs);
      const left = () => deadline - now();
      const outOfTime = (attempts: number, before?: { status?: number; error: string }): DeliveryResult => ({
        delivered: false,
        attempts,
        ...(before?.status === undefined ? {} : { status: before.status }),
        error: `${before ? `${before.error}; ` : ''}no time left to reach Slack within the ${budgetMs} ms budget`,
      });
      if (left() < MIN_SLACK_ATTEMPT_MS) return outOfTime(0);

      let url: string | undefined;
      try {
        url = (await withinBudget(options.webhookUrl(), left()))?.trim();
      } catch (error) {
        return { delivered: false, attempts: 0, error: redact(errorMessage(error), undefined) };
      }
      if (!url) return { delivered: false, attempts: 0, error: NO_WEBHOOK };
      if (!URL.canParse(url))
        return { delivered: false, attempts: 0, error: 'the Slack webhook is not a URL' };

      let body: string;
      try {
        body = JSON.stringify(message);
      } catch (error) {
        return { delivered: false, attempts: 0, error: `message is not JSON: ${errorMessage(error)}` };
      }

      let last: { status?: number; error: string } = { error: 'not sent' };
      for (let attemptNo = 1; attemptNo <= maxAttempts; attemptNo++) {
        const remaining = left();
        if (remaining < MIN_SLACK_ATTEMPT_MS)
          return outOfTime(attemptNo - 1, attemptNo > 1 ? last : undefined);
        const outcome = await attempt(url, body, attemptNo, Math.floor(Math.min(timeoutMs, remaining)));
        if (outcome.kind === 'delivered') {
          return { delivered: true, attempts: attemptNo, status: outcome.status };
        }
        const error = redact(outcome.error, url);
        if (outcome.kind === 'unknown') {
          return { delivered: false, maybeDelivered: true, attempts: attemptNo, error };
        }
        if (outcome.kind === 'give-up') {
          return { delivered: false, attempts: attemptNo, status: outcome.status, error };
        }
        last = { ...(outcome.status === undefined ? {} : { status: outcome.status }), error };
        if (attemptNo === maxAttempts) break;
        const tooLong = whyNotWait(outcome, left(), maxRetryAfterMs, budgetMs);
        if (tooLong) {
          return { delivered: false, attempts: attemptNo, ...last, error: `${error}; ${tooLong}` };
        }
        // Debug only: the caller owns the final outcome and logs it once, from the DeliveryResult.
        log.debug('retrying Slack delivery', {
          attempt: attemptNo,
          maxAttempts,
          delayMs: outcome.waitMs,
          status: outcome.status,
          error,
        });
        try {
          await sleep(outcome.waitMs);
        } catch (sleepError) {
          return {
            delivered: false,
            attempts: attemptNo,
            ...last,
            error: redact(errorMessage(sleepError), url),
          };
        }
      }
      return { delivered: false, attempts: maxAttempts, ...last };
    },
  };
}

export interface SlackBudget {
  /** Largest part of the remaining time one delivery may use, in (0, 1]. */
  share: number;
  /** Time kept back before the deadline for what follows the delivery: state writes, logs, the early timeout. */
  reserveMs: number;
}

/** The budget one delivery gets with `remainingMs` left: `share` of it, never past the deadline minus `reserveMs`. */
export function slackBudgetMs(remainingMs: number, budget: SlackBudget): number {
  if (Number.isNaN(remainingMs)) return 0;
  return Math.max(0, Math.floor(Math.min(remainingMs * budget.share, remainingMs - budget.reserveMs)));
}

/**
 * A notifier whose every send fits in the time the invocation has left, measured when the send
 * starts. Built once per invocation around that invocation's remaining time (in Lambda,
 * `context.getRemainingTimeInMillis`); a budget the caller passes as well only narrows it.
 */
export function boundedNotifier(
  notifier: Notifier,
  remainingMs: () => number,
  budget: SlackBudget,
): Notifier {
  if (!(budget.share > 0 && budget.share <= 1)) {
    throw new SlackBudgetError(`the Slack budget share must be in (0, 1], not ${budget.share}`);
  }
  if (!(budget.reserveMs >= 0)) {
    throw new SlackBudgetError(`the Slack budget reserve must be at least 0 ms, not ${budget.reserveMs}`);
  }
  return {
    send(message, options = {}) {
      const bounded = slackBudgetMs(remainingMs(), budget);
      return notifier.send(message, { ...options, budgetMs: Math.min(bounded, options.budgetMs ?? bounded) });
    },
  };
}

/**
 * Why a retry is not waited for, if it is not: waiting for one that cannot happen in time would only
 * push the caller towards its deadline, while giving up now leaves it time to log the message.
 */
function whyNotWait(
  retry: { waitMs: number; retryAfter?: boolean },
  leftMs: number,
  maxRetryAfterMs: number,
  budgetMs: number | undefined,
): string | undefined {
  const what = retry.retryAfter
    ? `Slack asked to retry after ${formatMs(retry.waitMs)}`
    : `the next retry is ${formatMs(retry.waitMs)} away`;
  if (retry.retryAfter && retry.waitMs > maxRetryAfterMs) {
    return `not sent again: ${what}, longer than the ${formatMs(maxRetryAfterMs)} a delivery waits`;
  }
  if (retry.waitMs > leftMs - MIN_SLACK_ATTEMPT_MS) {
    return `not sent again: ${what}, past the ${budgetMs} ms budget`;
  }
  return undefined;
}

/** Rejects once `ms` have passed; the work itself goes on, but the send no longer waits for it. */
async function withinBudget<T>(work: Promise<T>, ms: number): Promise<T> {
  if (!Number.isFinite(ms)) return work;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () =>
        reject(new SlackBudgetError(`the Slack webhook was not read within the ${Math.round(ms)} ms left`)),
      ms,
    );
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function formatMs(ms: number): string {
  return ms >= 1_000 ? `${Math.round(ms / 100) / 10} s` : `${ms} ms`;
}

/**
 * Retry-After is delta-seconds in practice; RFC 9110 also allows an HTTP date. Anything else
 * (absent, negative, garbage) falls back to one second rather than hammering Slack.
 */
export function retryAfterMs(header: string | null, now: number = Date.now()): number {
  const value = header?.trim();
  if (!value) return DEFAULT_RETRY_AFTER_MS;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  const date = Date.parse(value);
  if (!Number.isNaN(date) && /[a-z]/i.test(value)) return Math.max(0, date - now);
  return DEFAULT_RETRY_AFTER_MS;
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && error.name === 'TimeoutError';
}

/** Node's fetch says only "fetch failed"; the useful part (ECONNREFUSED, ...) is in its cause. */
function describeNetworkError(error: unknown, timeoutMs: number): string {
  if (isTimeout(error)) return `timed out after ${timeoutMs} ms`;
  const message = errorMessage(error);
  const cause = error instanceof Error ? error.cause : undefined;
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    const detail = typeof code === 'string' ? code : cause.message;
    if (detail && !message.includes(detail)) return `${message} (${detail})`;
  }
  return message;
}

const SLACK_WEBHOOK_PATTERN = /https?:\/\/hooks\.slack(?:-gov)?\.com\/\S*/gi;

/**
 * Strips the webhook from text that may quote it (a URL parse error, an SSM error, a proxy's
 * body). Any Slack webhook is removed even when the URL is not known, e.g. when reading it failed.
 */
export function redact(text: string, url: string | undefined): string {
  let result = text;
  if (url) {
    result = result.split(url).join(REDACTED);
    // The secret is the path; an error may quote it without the scheme and host.
    const path = URL.canParse(url) ? new URL(url).pathname : '';
    if (path.length > 1) result = result.split(path).join(REDACTED);
  }
  return result.replace(SLACK_WEBHOOK_PATTERN, REDACTED);
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export interface WebhookFromSsmOptions {
  /** How long Powertools caches the value in this process (warm invocations reuse it). Default 300 s. */
  maxAgeSeconds?: number;
}

export const DEFAULT_WEBHOOK_MAX_AGE_SECONDS = 300;

/**
 * The webhook URL, read from an SSM SecureString so it never sits in environment variables.
 * With no parameter name configured, Slack is simply off: the function resolves undefined.
 */
export function webhookFromSsm(
  parameterName: string | undefined,
  options: WebhookFromSsmOptions = {},
): () => Promise<string | undefined> {
  const name = parameterName?.trim();
  if (!name) return async () => undefined;
  const maxAge = options.maxAgeSeconds ?? DEFAULT_WEBHOOK_MAX_AGE_SECONDS;

  return async () => {
    let value: unknown;
    try {
      value = await cachedParameter(name, maxAge);
    } catch (error) {
      throw new SlackWebhookError(
        `could not read the Slack webhook from SSM parameter ${name}: ${redact(errorMessage(error), undefined)}`,
        { cause: error },
      );
    }
    if (value === undefined) return undefined;
    const url = typeof value === 'string' ? value.trim() : '';
    // Slack's own hosts are https://hooks.slack.com/ and, for GovSlack, https://hooks.slack-gov.com/;
    // any https URL is accepted so a relay or proxy can stand in, and plain http only on the loopback
    // interface, where a local relay or a test receiver listens. Never echo the value: it is the secret.
    if (!isAcceptableWebhook(url)) {
      throw new SlackWebhookError(`SSM parameter ${name} does not hold an https:// Slack webhook URL`);
    }
    return url;
  };
}

/** Read once per warm Lambda (for `maxAge` seconds), not once per alert. */
const parameterCache = new Map<string, { value: string | undefined; expiresAt: number }>();
let ssm: SSMClient | undefined;

/** Forgets cached webhook URLs, e.g. after the parameter was rotated. */
export function clearWebhookCache(): void {
  parameterCache.clear();
}

async function cachedParameter(name: string, maxAgeSeconds: number): Promise<string | undefined> {
  const cached = parameterCache.get(name);
  if (cached && cached.expiresAt > Date.now()) return cached.value;
  // The SDK's own retries stay on here (this read has no withRetry); the timeouts bound each attempt.
  ssm ??= new SSMClient({ ...clientTimeouts() });
  const output = await ssm.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
  const value = output.Parameter?.Value;
  if (maxAgeSeconds > 0) parameterCache.set(name, { value, expiresAt: Date.now() + maxAgeSeconds * 1000 });
  return value;
}

function isAcceptableWebhook(url: string): boolean {
  if (!URL.canParse(url)) return false;
  const { protocol, hostname } = new URL(url);
  if (protocol === 'https:') return true;
  return protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(hostname);
}
