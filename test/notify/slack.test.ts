import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  boundedNotifier,
  clearWebhookCache,
  createSlackNotifier,
  type DeliveryResult,
  type Notifier,
  redact,
  retryAfterMs,
  type SendOptions,
  SlackBudgetError,
  type SlackMessage,
  SlackWebhookError,
  slackBudgetMs,
  webhookFromSsm,
} from '../../src/notify/slack.ts';
import { recordingLog, recordingSleep } from '../adapters/aws-fakes.ts';

// The part of a webhook URL that is the secret; it must never leave the notifier.
const SECRET_PATH = '/services/T0JANITOR/B0ALERTS/s3cr3tT0k3nXyZ';
const SECRET = 's3cr3tT0k3nXyZ';

const MESSAGE: SlackMessage = {
  text: 'CRITICAL: image ami-0abc in 123456789012/eu-west-1: Image is public',
  blocks: [
    { type: 'header', text: { type: 'plain_text', text: ':rotating_light: CRITICAL: Image is public' } },
    { type: 'section', text: { type: 'mrkdwn', text: '*Image* `ami-0abc`' } },
  ],
};

interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** Never answer, to exercise the client-side timeout. */
  hang?: boolean;
  /** Answer this much later, as a slow Slack does. */
  delayMs?: number;
}

interface Received {
  method: string | undefined;
  path: string | undefined;
  headers: IncomingHttpHeaders;
  body: string;
}

const servers: Server[] = [];

/** A stand-in for hooks.slack.com on 127.0.0.1 that answers with `replies` in order, then 200 ok. */
async function fakeSlack(replies: Reply[] = []) {
  const received: Received[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({
        method: request.method,
        path: request.url,
        headers: request.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      const reply = replies.shift() ?? { status: 200, body: 'ok' };
      if (reply.hang) return;
      const answer = () => {
        if (response.destroyed) return;
        response.writeHead(reply.status, { 'content-type': 'text/plain', ...reply.headers });
        response.end(reply.body ?? '');
      };
      if (reply.delayMs === undefined) answer();
      else setTimeout(answer, reply.delayMs).unref();
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}${SECRET_PATH}`, received, server };
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** A URL on which nothing listens: a server bound to an ephemeral port, then closed. */
async function refusedUrl(): Promise<string> {
  const { url, server } = await fakeSlack();
  servers.splice(servers.indexOf(server), 1);
  await closeServer(server);
  return url;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map(closeServer));
});

describe('createSlackNotifier', () => {
  it('POSTs the message as JSON and reports delivery on 200', async () => {
    // Prepare
    const slack = await fakeSlack([{ status: 200, body: 'ok' }]);
    const { delays, sleep } = recordingSleep();
    const notifier = createSlackNotifier({ webhookUrl: async () => slack.url, sleep });

    // Act
    const result = await notifier.send(MESSAGE);

    // Assess
    expect(result).toEqual({ delivered: true, attempts: 1, status: 200 });
    expect(slack.received).toHaveLength(1);
    const [request] = slack.received;
    expect(request?.method).toBe('POST');
    expect(request?.path).toBe(SECRET_PATH);
    expect(request?.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(JSON.parse(request?.body ?? '')).toEqual(MESSAGE);
    expect(request?.body).toBe(JSON.stringify(MESSAGE));
    expect(delays).toEqual([]);
  });

  it('waits for Retry-After on 429, then delivers', async () => {
    // Prepare
    const slack = await fakeSlack([
      { status: 429, headers: { 'retry-after': '1' }, body: 'rate_limited' },
      { status: 200, body: 'ok' },
    ]);
    const { delays, sleep } = recordingSleep();
    const notifier = createSlackNotifier({ webhookUrl: async () => slack.url, sleep });

    // Act
    const result = await notifier.send(MESSAGE);

    // Assess
    expect(result).toEqual({ delivered: true, attempts: 2, status: 200 });
    expect(delays).toEqual([1000]);
    expect(slack.received).toHaveLength(2);
    expect(slack.received[1]?.body).toBe(slack.received[0]?.body);
  });

  it.each<{ case: string; headers: Record<string, string>; expected: number }>([
    { case: 'a Retry-After at the cap', headers: { 'retry-after': '30' }, expected: 30_000 },
    { case: 'a garbage Retry-After', headers: { 'retry-after': 'soon' }, expected: 1000 },
    { case: 'no Retry-After', headers: {}, expected: 1000 },
  ])('waits $expected ms on 429 with $case', async ({ headers, expected }) => {
    // Prepare
    const slack = await fakeSlack([{ status: 429, headers, body: 'rate_limited' }]);
    const { delays, sleep } = recordingSleep();
    const notifier = createSlackNotifier({
      webhookUrl: async () => slack.url,
      sleep,
      maxRetryAfterMs: 30_000,
    });

    // Act
    const result = await notifier.send(MESSAGE);

    // Assess
    expect(result.delivered).toBe(true);
    expect(delays).toEqual([expected]);
  });

  it('retries a 500 after a backoff, then delivers', async () => {
    // Prepare
    const slack = await fakeSlack([{ status: 500, body: 'internal_error' }]);
    const { delays, sleep } = recordingSleep();
    const notifier = createSlackNotifier({ webhookUrl: async () => slack.url, sleep });

    // Act
    const result = await notifier.send(MESSAGE);

    // Assess
    expect(result).toEqual({ delivered: true, attempts: 2, status: 200 });
    expect(delays).toEqual([500]);
  });

  it('gives up after maxAttempts 5xx answers, doubling the wait each time', async () => {
    // Prepare
    const slack = await fakeSlack([
      { status: 500, body: 'internal_error' },
      { status: 503, body: 'service_unavailable' },
      { status: 500, body: 'internal_error' },
    ]);
    const { delays, sleep } = recordingSleep();
    const notifier = createSlackNotifier({ webhookUrl: async () => slack.url, sleep, maxAttempts: 3 });

    // Act
    const result = await notifier.send(MESSAGE);

    // Assess
    expect(result).toEqual({ delivered: false, attempts: 3, status: 500, error: 'HTTP 500: internal_error' });
    expect(slack.received).toHaveLength(3);
    expect(delays).toEqual([500, 1000]);
  });

  it.each([
    { status: 400, body: 'invalid_blocks' },
    { status: 403, body: 'action_prohibited' },
    { status: 404, body: 'no_service' },
    { status: 410, body: 'channel_is_archived' },
  ])('gives up at once on $status $body', async ({ status, body }) => {
    // Prepare
    const slack = await fakeSlack([{ status, body }]);
    const { delays, sleep } = recordingSleep();
    const notifier = createSlackNotifier({ webhookUrl: async () => slack.url, sleep });

    // Act
    const result = await notifier.send(MESSAGE);

    // Assess
    expect(result).toEqual({ delivered: false, attempts: 1, status, error: `HTTP ${status}: ${body}` });
    expect(slack.received).toHaveLength(1);
    expect(delays).toEqual([]);
  });

  it('keeps at most 200 characters of an error body', async () => {
    // Prepare
    const slack = await fakeSlack([{ status: 400, body: `invalid_payload ${'x'.repeat(1000)}` }]);
    const notifier = createSlackNotifier({
      webhookUrl: async () => slack.url,
      sleep: recordingSleep().sleep,
    });

    // Act
    const result = await notifier.send(MESSAGE);

    // Assess
    expect(result.error).toMatch(/^HTTP 400: invalid_payload x+…$/);
    expect(result.error?.length).toBe('HTTP 400: '.length + 200);
  });

  it('retries a refused connection up to maxAttempts and reports it without throwing', async () => {
    // Prepare
    const url = await refusedUrl();
    const { delays, sleep } = recordingSleep();
    const log = recordingLog();
    const notifier = createSlackNotifier({ webhookUrl: async () => url, sleep, log });

    // Act
    const result = await notifier.send(MESSAGE);

    // Assess
    expect(result.delivered).toBe(false);
    expect(result.attempts).toBe(4);
    expect(result.status).toBeUndefined();
    expect(result.error).toContain('ECONNREFUSED');
    expect(delays).toEqual([500, 1000, 2000]);
    expect(log.debug).toHaveBeenCalledTimes(3);
    expect(JSON.stringify([result, log.debug.mock.calls])).not.toContain(SECRET);
  });

  it('times out a request that never answers and does not send it again', async () => {
    // Prepare
    const slack = await fakeSlack([
      { status: 0, hang: true },
      { status: 0, hang: true },
    ]);
    const { delays, sleep } = recordingSleep();
    const notifier = createSlackNotifier({
      webhookUrl: async () => slack.url,
      sleep,
      maxAttempts: 2,
      timeoutMs: 100,
    });

    // Act
    const result = await notifier.send(MESSAGE);

    // Assess: Slack may have posted it, so the outcome is unknown rather than failed.
    expect(result).toEqual({
      delivered: false,
      maybeDelivered: true,
      attempts: 1,
      error: 'timed out after 100 ms',
    });
    expect(slack.received).toHaveLength(1);
    expect(delays).toEqual([]);
  });

  it('posts once to a Slack that answers 200 only after the request timed out', async () => {
    // Prepare
    const slack = await fakeSlack([
      { status: 200, body: 'ok', delayMs: 600 },
      { status: 200, body: 'ok', delayMs: 600 },
      { status: 200, body: 'ok', delayMs: 600 },
      { status: 200, body: 'ok', delayMs: 600 },
    ]);
    const { sleep } = recordingSleep();
    const notifier = createSlackNotifier({ webhookUrl: async () => slack.url, sleep, timeoutMs: 150 });

    // Act
    const result = await notifier.send(MESSAGE);
    // Long enough for any second POST to have arrived.
    await new Promise((resolve) => setTimeout(resolve, 300));

    // Assess
    expect(result).toEqual({
      delivered: false,
      maybeDelivered: true,
      attempts: 1,
      error: 'timed out after 150 ms',
    });
    expect(slack.received).toHaveLength(1);
  });

  it('gives up at once, without waiting, on a 429 whose Retry-After is longer than the budget', async () => {
    // Prepare
    const slack = await fakeSlack([
      { status: 429, headers: { 'retry-after': '3600' }, body: 'rate_limited' },
    ]);
    const { delays, sleep } = recordingSleep();
    const log = recordingLog();
    const notifier = createSlackNotifier({
      webhookUrl: async () => slack.url,
      sleep,
      log,
      maxRetryAfterMs: 7_200_000,
    });

    // Act
    const result = await notifier.send(MESSAGE, { budgetMs: 20_000 });

    // Assess
    expect(result).toEqual({
      delivered: false,
      attempts: 1,
      status: 429,
      error:
        'HTTP 429: rate_limited; not sent again: Slack asked to retry after 3600 s, past the 20000 ms budget',
    });
    expect(delays).toEqual([]);
    expect(slack.received).toHaveLength(1);
    expect(log.debug).not.toHaveBeenCalled();
  });

  it('gives up at once on a 429 whose Retry-After is longer than maxRetryAfterMs, with no budget', async () => {
    // Prepare
    const slack = await fakeSlack([{ status: 429, headers: { 'retry-after': '120' }, body: 'rate_limited' }]);
    const { delays, sleep } = recordingSleep();
    const notifier = createSlackNotifier({
      webhookUrl: async () => slack.url,
      sleep,
      maxRetryAfterMs: 30_000,
    });

    // Act
    const result = await notifier.send(MESSAGE);

    // Assess
    expect(result).toEqual({
      delivered: false,
      attempts: 1,
      status: 429,
      error:
        'HTTP 429: rate_limited; not sent again: Slack asked to retry after 120 s, longer than the 30 s a delivery waits',
    });
    expect(delays).toEqual([]);
    expect(slack.received).toHaveLength(1);
  });

  it('cuts a request short at what is left of the budget and posts it only once', async () => {
    // Prepare: Slack answers 200, but long after the whole budget.
    const slack = await fakeSlack([{ status: 200, body: 'ok', delayMs: 5_000 }]);
    const notifier = createSlackNotifier({ webhookUrl: async () => slack.url, timeoutMs: 10_000 });
    const started = Date.now();

    // Act
    const result = await notifier.send(MESSAGE, { budgetMs: 1_200 });
    const elapsed = Date.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 200));

    // Assess
    expect(elapsed).toBeGreaterThanOrEqual(1_000);
    expect(elapsed).toBeLessThan(3_000);
    expect(result).toMatchObject({ delivered: false, maybeDelivered: true, attempts: 1 });
    const requestTimeout = Number(/^timed out after (\d+) ms$/.exec(result.error ?? '')?.[1]);
    expect(requestTimeout).toBeGreaterThanOrEqual(1_000);
    expect(requestTimeout).toBeLessThanOrEqual(1_200);
    expect(slack.received).toHaveLength(1);
  });

  it('stops retrying 5xx answers when the next backoff would end past the budget', async () => {
    // Prepare: a clock that moves only while the notifier waits, so the budget is spent exactly.
    const slack = await fakeSlack([
      { status: 500, body: 'internal_error' },
      { status: 503, body: 'service_unavailable' },
      { status: 500, body: 'internal_error' },
    ]);
    let clock = 0;
    const delays: number[] = [];
    const notifier = createSlackNotifier({
      webhookUrl: async () => slack.url,
      now: () => clock,
      sleep: async (ms) => {
        delays.push(ms);
        clock += ms;
      },
    });

    // Act: the first backoff (500 ms) leaves a request's worth of the 1.8 s; the second (1 s) would not.
    const result = await notifier.send(MESSAGE, { budgetMs: 1_800 });

    // Assess
    expect(result).toEqual({
      delivered: false,
      attempts: 2,
      status: 503,
      error:
        'HTTP 503: service_unavailable; not sent again: the next retry is 1 s away, past the 1800 ms budget',
    });
    expect(delays).toEqual([500]);
    expect(slack.received).toHaveLength(2);
  });

  it('sends nothing when the budget is too short for a request', async () => {
    // Prepare
    const slack = await fakeSlack();
    const webhookUrl = vi.fn(async () => slack.url);
    const notifier = createSlackNotifier({ webhookUrl });

    // Act
    const result = await notifier.send(MESSAGE, { budgetMs: 400 });

    // Assess
    expect(result).toEqual({
      delivered: false,
      attempts: 0,
      error: 'no time left to reach Slack within the 400 ms budget',
    });
    expect(slack.received).toEqual([]);
    expect(webhookUrl).not.toHaveBeenCalled();
  });

  it('does not wait past the budget for the webhook to be read', async () => {
    // Prepare
    const spyFetch = vi.fn<typeof fetch>();
    const notifier = createSlackNotifier({
      webhookUrl: () => new Promise<string>(() => {}),
      fetch: spyFetch,
    });
    const started = Date.now();

    // Act
    const result = await notifier.send(MESSAGE, { budgetMs: 1_100 });

    // Assess
    expect(Date.now() - started).toBeLessThan(1_600);
    expect(result).toMatchObject({ delivered: false, attempts: 0 });
    expect(result.error).toMatch(/^the Slack webhook was not read within the 1\d{3} ms left$/);
    expect(spyFetch).not.toHaveBeenCalled();
  });

  it('never puts the webhook URL in the error, even when the response quotes it', async () => {
    // Prepare
    const replies: Reply[] = [];
    const slack = await fakeSlack(replies);
    replies.push({ status: 400, body: `invalid_token for ${slack.url} (path ${SECRET_PATH})` });
    const notifier = createSlackNotifier({ webhookUrl: async () => slack.url });

    // Act
    const result = await notifier.send(MESSAGE);

    // Assess
    expect(result.delivered).toBe(false);
    expect(result.error).toContain('invalid_token for');
    expect(result.error).toContain('[redacted webhook URL]');
    expect(result.error).not.toContain(SECRET);
  });

  it('redacts the webhook URL from a network error message that quotes it', async () => {
    // Prepare
    const url = `https://hooks.slack.com${SECRET_PATH}`;
    const failingFetch = vi.fn<typeof fetch>(async () => {
      throw new TypeError(`Failed to parse URL from ${url}`);
    });
    const notifier = createSlackNotifier({
      webhookUrl: async () => url,
      fetch: failingFetch,
      sleep: recordingSleep().sleep,
      maxAttempts: 2,
    });

    // Act
    const result = await notifier.send(MESSAGE);

    // Assess
    expect(failingFetch).toHaveBeenCalledTimes(2);
    expect(result).toEqual({
      delivered: false,
      attempts: 2,
      error: 'Failed to parse URL from [redacted webhook URL]',
    });
  });

  it('sends nothing when no webhook is configured', async () => {
    // Prepare
    const spyFetch = vi.fn<typeof fetch>();
    const notifier = createSlackNotifier({ webhookUrl: async () => undefined, fetch: spyFetch });

    // Act
    const result = await notifier.send(MESSAGE);

    // Assess
    expect(result).toEqual({ delivered: false, attempts: 0, error: 'no Slack webhook configured' });
    expect(spyFetch).not.toHaveBeenCalled();
  });

  it('reports a webhook that cannot be read, without the URL the error quotes', async () => {
    // Prepare
    const spyFetch = vi.fn<typeof fetch>();
    const notifier = createSlackNotifier({
      webhookUrl: async () => {
        throw new Error(`AccessDenied reading https://hooks.slack.com${SECRET_PATH}`);
      },
      fetch: spyFetch,
    });

    // Act
    const result = await notifier.send(MESSAGE);

    // Assess
    expect(result).toEqual({
      delivered: false,
      attempts: 0,
      error: 'AccessDenied reading [redacted webhook URL]',
    });
    expect(spyFetch).not.toHaveBeenCalled();
  });

  it('rejects a webhook that is not a URL without echoing it', async () => {
    // Prepare
    const spyFetch = vi.fn<typeof fetch>();
    const notifier = createSlackNotifier({ webhookUrl: async () => SECRET, fetch: spyFetch });

    // Act
    const result = await notifier.send(MESSAGE);

    // Assess
    expect(result).toEqual({ delivered: false, attempts: 0, error: 'the Slack webhook is not a URL' });
    expect(spyFetch).not.toHaveBeenCalled();
  });
});

describe('boundedNotifier', () => {
  /** Records the options each send was given. */
  function optionsRecorder() {
    const options: (SendOptions | undefined)[] = [];
    const notifier: Notifier = {
      async send(_message, sendOptions): Promise<DeliveryResult> {
        options.push(sendOptions);
        return { delivered: true, attempts: 1, status: 200 };
      },
    };
    return { options, notifier };
  }

  it('gives each send its share of the time left when it starts, never past the deadline minus the reserve', async () => {
    // Prepare
    const { options, notifier } = optionsRecorder();
    const remaining = [60_000, 6_000, 4_000, 0];
    const bounded = boundedNotifier(notifier, () => remaining.shift() ?? 0, {
      share: 1 / 3,
      reserveMs: 5_000,
    });

    // Act
    for (let i = 0; i < 4; i++) await bounded.send(MESSAGE);

    // Assess
    expect(options.map((option) => option?.budgetMs)).toEqual([20_000, 1_000, 0, 0]);
  });

  it('only narrows a budget the caller passes as well', async () => {
    // Prepare
    const { options, notifier } = optionsRecorder();
    const bounded = boundedNotifier(notifier, () => 60_000, { share: 1 / 3, reserveMs: 5_000 });

    // Act
    await bounded.send(MESSAGE, { budgetMs: 3_000 });
    await bounded.send(MESSAGE, { budgetMs: 90_000 });

    // Assess
    expect(options.map((option) => option?.budgetMs)).toEqual([3_000, 20_000]);
  });

  it('returns at once, with nothing posted, from a 429 Retry-After: 3600 on a 60 s Lambda', async () => {
    // Prepare
    const slack = await fakeSlack([
      { status: 429, headers: { 'retry-after': '3600' }, body: 'rate_limited' },
    ]);
    const started = Date.now();
    const remaining = () => 60_000 - (Date.now() - started);
    const bounded = boundedNotifier(createSlackNotifier({ webhookUrl: async () => slack.url }), remaining, {
      share: 1 / 3,
      reserveMs: 5_000,
    });

    // Act
    const result = await bounded.send(MESSAGE);

    // Assess
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(result).toMatchObject({ delivered: false, attempts: 1, status: 429 });
    expect(result.error).toContain('Slack asked to retry after 3600 s');
    expect(slack.received).toHaveLength(1);
  });

  it.each([
    { share: 0, reserveMs: 0 },
    { share: 1.5, reserveMs: 0 },
    { share: Number.NaN, reserveMs: 0 },
    { share: 0.5, reserveMs: -1 },
  ])('refuses a budget of share $share and reserve $reserveMs ms', ({ share, reserveMs }) => {
    // Act
    const error = (() => {
      try {
        boundedNotifier(optionsRecorder().notifier, () => 60_000, { share, reserveMs });
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();

    // Assess
    expect(error).toBeInstanceOf(SlackBudgetError);
    expect((error as Error).message).toMatch(
      /^the Slack budget (share must be in \(0, 1\]|reserve must be at least 0 ms)/,
    );
  });
});

describe('slackBudgetMs', () => {
  it.each([
    { remainingMs: 60_000, expected: 20_000 },
    { remainingMs: 900_000, expected: 300_000 },
    { remainingMs: 15_000, expected: 3_000 },
    { remainingMs: 12_000, expected: 0 },
    { remainingMs: -5, expected: 0 },
    { remainingMs: Number.NaN, expected: 0 },
  ])(
    'gives $expected ms with $remainingMs ms left, a third and 12 s kept back',
    ({ remainingMs, expected }) => {
      // Act
      const budget = slackBudgetMs(remainingMs, { share: 1 / 3, reserveMs: 12_000 });

      // Assess
      expect(budget).toBe(expected);
    },
  );
});

describe('retryAfterMs', () => {
  it.each([
    { header: '0', expected: 0 },
    { header: '1', expected: 1000 },
    { header: ' 2.5 ', expected: 2500 },
    { header: '-3', expected: 1000 },
    { header: 'later', expected: 1000 },
    { header: '', expected: 1000 },
    { header: null, expected: 1000 },
    { header: 'Wed, 01 Jul 2026 12:00:30 GMT', expected: 30_000 },
    { header: 'Wed, 01 Jul 2026 11:00:00 GMT', expected: 0 },
  ])('reads $header as $expected ms', ({ header, expected }) => {
    // Prepare
    const now = Date.parse('2026-07-01T12:00:00Z');

    // Act
    const waitMs = retryAfterMs(header, now);

    // Assess
    expect(waitMs).toBe(expected);
  });
});

describe('redact', () => {
  it('removes the known URL, its path alone, and any other Slack webhook', () => {
    // Prepare
    const url = `https://hooks.slack.com${SECRET_PATH}`;
    const text = `a ${url} b ${SECRET_PATH} c https://hooks.slack-gov.com/services/X/Y/Z`;

    // Act
    const redacted = redact(text, url);

    // Assess
    expect(redacted).toBe('a [redacted webhook URL] b [redacted webhook URL] c [redacted webhook URL]');
  });
});

describe('webhookFromSsm', () => {
  const ssmMock = mockClient(SSMClient);
  const hook = `https://hooks.slack.com${SECRET_PATH}`;

  beforeEach(() => {
    ssmMock.reset();
    // Powertools keeps its cache in the module for the life of the process, as on a warm Lambda.
    clearWebhookCache();
  });

  it('resolves undefined without calling SSM when no parameter is configured', async () => {
    // Prepare
    const read = webhookFromSsm(undefined);

    // Act
    const url = await read();

    // Assess
    expect(url).toBeUndefined();
    expect(ssmMock.calls()).toHaveLength(0);
  });

  it('reads the SecureString with decryption and caches it across calls', async () => {
    // Prepare
    ssmMock.on(GetParameterCommand).resolves({ Parameter: { Name: '/ami-janitor/slack', Value: hook } });
    const read = webhookFromSsm('/ami-janitor/slack');

    // Act
    const first = await read();
    const second = await read();

    // Assess
    expect(first).toBe(hook);
    expect(second).toBe(hook);
    expect(ssmMock).toHaveReceivedCommandTimes(GetParameterCommand, 1);
    expect(ssmMock).toHaveReceivedCommandWith(GetParameterCommand, {
      Name: '/ami-janitor/slack',
      WithDecryption: true,
    });
  });

  it('reads again once maxAgeSeconds is 0', async () => {
    // Prepare
    ssmMock.on(GetParameterCommand).resolves({ Parameter: { Value: hook } });
    const read = webhookFromSsm('/ami-janitor/slack', { maxAgeSeconds: 0 });

    // Act
    await read();
    await read();

    // Assess
    expect(ssmMock).toHaveReceivedCommandTimes(GetParameterCommand, 2);
  });

  it('refuses a value that is not an https URL, without echoing it', async () => {
    // Prepare
    ssmMock
      .on(GetParameterCommand)
      .resolves({ Parameter: { Value: `http://hooks.slack.com${SECRET_PATH}` } });
    const read = webhookFromSsm('/ami-janitor/slack');

    // Act
    const outcome = read();

    // Assess
    await expect(outcome).rejects.toBeInstanceOf(SlackWebhookError);
    await expect(outcome).rejects.toThrow(
      'SSM parameter /ami-janitor/slack does not hold an https:// Slack webhook URL',
    );
    await expect(outcome).rejects.not.toThrow(SECRET);
  });

  it('wraps an SSM failure in a SlackWebhookError that keeps the cause', async () => {
    // Prepare
    const denied = Object.assign(new Error('User is not authorized to perform ssm:GetParameter'), {
      name: 'AccessDeniedException',
    });
    ssmMock.on(GetParameterCommand).rejects(denied);
    const read = webhookFromSsm('/ami-janitor/slack');

    // Act
    const error = await read().catch((caught: unknown) => caught);

    // Assess
    expect(error).toBeInstanceOf(SlackWebhookError);
    expect((error as Error).message).toBe(
      'could not read the Slack webhook from SSM parameter /ami-janitor/slack: ' +
        'User is not authorized to perform ssm:GetParameter',
    );
    expect((error as Error).cause).toBeDefined();
  });
});
