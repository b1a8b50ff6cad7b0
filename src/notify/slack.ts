import { setTimeout as sleepFor } from 'node:timers/promises';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import type { Log } from '../core/ports.ts';
import { errorMessage } from '../errors.ts';
import { logger } from '../logger.ts';

/**
 * Delivery of Block Kit messages to a Slack incoming webhook. A Slack outage must never fail a
 * sweep or an audit, so `send` reports what happened instead of throwing. The webhook URL is a
 * credential (anyone holding it can post to the channel): it is never logged and never returned.
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
  /** HTTP requests made; 0 when nothing was sent (no webhook, or it could not be read). */
  attempts: number;
  /** Status of the last response, when there was one. */
  status?: number;
  error?: string;
}

export interface Notifier {
  /** Never throws: failures come back as `delivered: false` with a reason free of the webhook URL. */
  send(message: SlackMessage): Promise<DeliveryResult>;
}

export interface SlackNotifierOptions {
  /** Resolved on every send, so a rotated parameter is picked up once its cache expires. */
  webhookUrl: () => Promise<string | undefined>;
  fetch?: typeof fetch;
  /** Injected in tests to record waits instead of making them. */
  sleep?: (ms: number) => Promise<void>;
  /** Total HTTP requests, the first included. Default 4. */
  maxAttempts?: number;
  /** Longest wait honoured from a 429's Retry-After. Default 30 s. */
  maxRetryAfterMs?: number;
  /** Per request. Default 5 s. */
  timeoutMs?: number;
  log?: Log;
}

export const DEFAULT_SLACK_MAX_ATTEMPTS = 4;
export const DEFAULT_MAX_RETRY_AFTER_MS = 30_000;
export const DEFAULT_SLACK_TIMEOUT_MS = 5_000;
/** First wait after a 5xx or a network error; doubles on each retry (500 ms, 1 s, 2 s, ...). */
export const SLACK_BACKOFF_BASE_MS = 500;
/** Slack documents Retry-After on every 429; when it is absent or unreadable, wait a second. */
export const DEFAULT_RETRY_AFTER_MS = 1_000;
const MAX_ERROR_BODY_CHARS = 200;
const REDACTED = '[redacted webhook URL]';

export class SlackWebhookError extends Error {
  override name = 'SlackWebhookError';
}

type Attempt =
  | { kind: 'delivered'; status: number }
  | { kind: 'retry'; status?: number; error: string; waitMs: number }
  | { kind: 'give-up'; status: number; error: string };

export function createSlackNotifier(options: SlackNotifierOptions): Notifier {
  const doFetch = options.fetch ?? fetch;
  const sleep = options.sleep ?? ((ms: number) => sleepFor(ms));
  const maxAttempts = Math.max(1, options.maxAttempts ?? DEFAULT_SLACK_MAX_ATTEMPTS);
  const maxRetryAfterMs = options.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS;
  const timeoutMs = options.timeoutMs ?? DEFAULT_SLACK_TIMEOUT_MS;
  const log = options.log ?? logger;

  async function attempt(url: string, body: string, attemptNo: number): Promise<Attempt> {
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
        signal: AbortSignal.timeout(timeoutMs),
      });
      // Read the body even on success so the connection goes back to the pool.
      text = await response.text().catch(() => '');
    } catch (error) {
      return { kind: 'retry', error: describeNetworkError(error, timeoutMs), waitMs: backoffMs };
    }

    const { status } = response;
    if (status >= 200 && status < 300) return { kind: 'delivered', status };
    const error = `HTTP ${status}${text.trim() ? `: ${clip(text.trim(), MAX_ERROR_BODY_CHARS)}` : ''}`;
    if (status === 429) {
      const waitMs = Math.min(maxRetryAfterMs, retryAfterMs(response.headers.get('retry-after')));
      return { kind: 'retry', status, error, waitMs };
    }
    if (status >= 500) return { kind: 'retry', status, error, waitMs: backoffMs };
    // invalid_blocks, invalid_payload, no_service, action_prohibited...: the same request fails again.
    return { kind: 'give-up', status, error };
  }

  return {
    async send(message) {
      let url: string | undefined;
      try {
        url = (await options.webhookUrl())?.trim();
      } catch (error) {
        return { delivered: false, attempts: 0, error: redact(errorMessage(error), undefined) };
      }
      if (!url) return { delivered: false, attempts: 0, error: 'no Slack webhook configured' };
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
        const outcome = await attempt(url, body, attemptNo);
        if (outcome.kind === 'delivered') {
          return { delivered: true, attempts: attemptNo, status: outcome.status };
        }
        const error = redact(outcome.error, url);
        if (outcome.kind === 'give-up') {
          return { delivered: false, attempts: attemptNo, status: outcome.status, error };
        }
        last = { ...(outcome.status === undefined ? {} : { status: outcome.status }), error };
        if (attemptNo === maxAttempts) break;
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

/** Node's fetch says only "fetch failed"; the useful part (ECONNREFUSED, ...) is in its cause. */
function describeNetworkError(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && error.name === 'TimeoutError') return `timed out after ${timeoutMs} ms`;
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
  ssm ??= new SSMClient({});
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
