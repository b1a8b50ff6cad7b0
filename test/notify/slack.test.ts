import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  clearWebhookCache,
  createSlackNotifier,
  redact,
  retryAfterMs,
  type SlackMessage,
  SlackWebhookError,
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
      response.writeHead(reply.status, { 'content-type': 'text/plain', ...reply.headers });
      response.end(reply.body ?? '');
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
    { case: 'a Retry-After above the cap', headers: { 'retry-after': '120' }, expected: 30_000 },
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

  it('times out a request that never answers and retries it', async () => {
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

    // Assess
    expect(result).toEqual({ delivered: false, attempts: 2, error: 'timed out after 100 ms' });
    expect(slack.received).toHaveLength(2);
    expect(delays).toEqual([500]);
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
