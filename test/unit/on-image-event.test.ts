import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { defaultPolicy, type Policy } from '../../src/config/policy.ts';
import { ALERTED_EXPOSURE_TAG } from '../../src/core/image-audit.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import type { ImageEventDependencies, ImageEventResult } from '../../src/handlers/on-image-event.ts';
import { type Image, NOT_SHARED, type SharePermissions, type Snapshot } from '../../src/model.ts';
import {
  createSlackNotifier,
  type DeliveryResult,
  type Notifier,
  type SlackMessage,
} from '../../src/notify/slack.ts';
import { image, type LogEntry, recordingLog } from './factories.ts';

// The module builds its default Lambda handler at import; these tests inject every port, so the
// real adapters are swapped for ones that fail loudly if anything ever reaches them.
vi.mock('../../src/adapters/ec2.ts', () => {
  const unused = (name: string) =>
    new Proxy(
      {},
      {
        get: (_target, method) => () =>
          Promise.reject(new Error(`${name}.${String(method)} reached the real adapter`)),
      },
    );
  return { createImageActions: () => unused('images') };
});
vi.mock('../../src/adapters/sharing.ts', () => {
  const unused = (name: string) =>
    new Proxy(
      {},
      {
        get: (_target, method) => () =>
          Promise.reject(new Error(`${name}.${String(method)} reached the real adapter`)),
      },
    );
  return { createSharing: () => unused('sharing') };
});

let makeImageEventHandler: typeof import('../../src/handlers/on-image-event.ts').makeImageEventHandler;

beforeAll(async () => {
  vi.stubEnv('AMI_JANITOR_POLICY_FILE', resolve(import.meta.dirname, '../../policy.yml'));
  vi.stubEnv('AWS_REGION', 'eu-west-1');
  ({ makeImageEventHandler } = await import('../../src/handlers/on-image-event.ts'));
});

afterAll(() => {
  vi.unstubAllEnvs();
});

const EVENTS_DIR = resolve(import.meta.dirname, '../../events');
/** The account and Region the fixtures in events/ were recorded in, and the function's own here. */
const ACCOUNT = '111122223333';
const REGION = 'eu-west-1';
const OTHER_ACCOUNT = '444455556666';
const OTHER_REGION = 'us-east-1';
const IMAGE_ID = 'ami-0abc1234def567890';
const SNAPSHOT_ID = 'snap-0abc1234def567890';
const SSO_ROLE =
  'arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_PlatformEngineer_0a1b2c3d4e5f6a7b';

// biome-ignore lint/suspicious/noExplicitAny: fixtures are free-form JSON that tests reshape at will.
type Json = any;

/** A fresh copy of a fixture, so that one test's edits never leak into another. */
function fixture(name: string): Json {
  return structuredClone(JSON.parse(readFileSync(resolve(EVENTS_DIR, `${name}.json`), 'utf8')));
}

function context() {
  return { getRemainingTimeInMillis: () => 60_000 };
}

function recordingNotifier() {
  const sent: SlackMessage[] = [];
  return {
    sent,
    async send(message: SlackMessage): Promise<DeliveryResult> {
      sent.push(message);
      return { delivered: true, attempts: 1, status: 200 };
    },
  };
}

/** What Lambda passes a function with `timeoutMs` left: the time runs down, the ARN is the function's own. */
function lambdaContext(timeoutMs: number, invokedFunctionArn: string | null = functionArn()) {
  const deadline = Date.now() + timeoutMs;
  return {
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    ...(invokedFunctionArn === null ? {} : { invokedFunctionArn }),
  };
}

function functionArn(account = ACCOUNT, region = REGION): string {
  return `arn:aws:lambda:${region}:${account}:function:ami-janitor-dev-onImageEvent`;
}

interface Setup {
  images?: Image[];
  snapshots?: Snapshot[];
  sharing?: Record<string, SharePermissions>;
  policy?: Partial<Policy>;
  dryRun?: boolean;
  notifier?: Notifier;
  /** Whether the account is injected; without it the handler reads it from the context. Default true. */
  injectAccount?: boolean;
}

function setup(options: Setup = {}) {
  const account = new MemoryAccount({
    accountId: ACCOUNT,
    images: options.images ?? [
      image({ imageId: IMAGE_ID, ownerId: ACCOUNT, snapshotIds: ['snap-0fff00000000000a1'] }),
    ],
    ...(options.snapshots ? { snapshots: options.snapshots } : {}),
    ...(options.sharing ? { sharing: options.sharing } : {}),
  });
  const notifier = recordingNotifier();
  const log = recordingLog();
  const ports = vi.fn((_signal: AbortSignal | undefined) => ({ images: account, sharing: account }));
  const deps: ImageEventDependencies = {
    ports,
    notifier: options.notifier ?? notifier,
    policy: { ...defaultPolicy(), dryRun: false, ...options.policy },
    dryRun: options.dryRun ?? false,
    region: REGION,
    ...(options.injectAccount === false ? {} : { accountId: ACCOUNT }),
    log,
  };
  return { account, notifier, log, ports, handler: makeImageEventHandler(deps) };
}

function publicImage(): Pick<Setup, 'sharing'> {
  return { sharing: { [IMAGE_ID]: { ...NOT_SHARED, public: true } } };
}

function linesNamed(entries: LogEntry[], message: string): LogEntry[] {
  return entries.filter((entry) => entry.message === message);
}

function attributes(entry: LogEntry | undefined): Record<string, unknown> {
  const first = entry?.extra[0];
  if (first === undefined || typeof first === 'string' || first instanceof Error) {
    throw new Error(`expected a log line with attributes, got ${JSON.stringify(entry)}`);
  }
  return first;
}

function reasonOf(result: ImageEventResult): string {
  if (!('reason' in result) || typeof result.reason !== 'string') {
    throw new Error(`expected a result with a reason, got ${JSON.stringify(result)}`);
  }
  return result.reason;
}

describe('onImageEvent handler: events it does not audit', () => {
  it('rejects the malformed fixture with the missing path, logged as an error, touching nothing', async () => {
    // Prepare
    const { account, notifier, log, ports, handler } = setup();

    // Act
    const result = await handler(fixture('malformed'), context());

    // Assess
    expect(result).toEqual({ status: 'rejected', reason: expect.stringContaining('detail.eventName') });
    const rejected = linesNamed(log.entries, 'event rejected');
    expect(rejected).toHaveLength(1);
    expect(rejected[0]?.level).toBe('error');
    expect(attributes(rejected[0])).toEqual({ reason: reasonOf(result) });
    expect(ports).not.toHaveBeenCalled();
    expect(account.calls).toEqual([]);
    expect(notifier.sent).toEqual([]);
  });

  it.each([
    { case: 'null', event: null },
    { case: 'a string', event: 'string' },
    { case: 'an empty array', event: [] },
    { case: 'a number', event: 42 },
    { case: 'an empty object', event: {} },
  ])('rejects $case without throwing', async ({ event }) => {
    // Prepare
    const { log, ports, handler } = setup();

    // Act
    const result = await handler(event, context());

    // Assess
    expect(result.status).toBe('rejected');
    expect(reasonOf(result).length).toBeGreaterThan(0);
    expect(linesNamed(log.entries, 'event rejected')).toHaveLength(1);
    expect(ports).not.toHaveBeenCalled();
  });

  it('logs a failed API call and does nothing else', async () => {
    // Prepare
    const { account, notifier, log, ports, handler } = setup(publicImage());

    // Act
    const result = await handler(fixture('failed-call'), context());

    // Assess
    expect(result.status).toBe('failed-call');
    expect(reasonOf(result)).toContain('Client.UnauthorizedOperation');
    expect(attributes(linesNamed(log.entries, 'failed API call')[0])).toMatchObject({
      eventName: 'ModifyImageAttribute',
      errorCode: 'Client.UnauthorizedOperation',
    });
    expect(ports).not.toHaveBeenCalled();
    expect(account.calls).toEqual([]);
    expect(notifier.sent).toEqual([]);
  });

  it('ignores an eventName it does not audit', async () => {
    // Prepare
    const { log, ports, handler } = setup();
    const event = fixture('create-image');
    event.detail.eventName = 'DescribeImages';

    // Act
    const result = await handler(event, context());

    // Assess
    expect(result.status).toBe('ignored');
    expect(reasonOf(result)).toContain('DescribeImages');
    expect(linesNamed(log.entries, 'event ignored')).toHaveLength(1);
    expect(ports).not.toHaveBeenCalled();
  });
});

describe('onImageEvent handler: audited events', () => {
  it('audits a public image and logs the decision with imageId, verdict and reason', async () => {
    // Prepare
    const { notifier, log, handler } = setup(publicImage());

    // Act
    const result = await handler(fixture('modify-image-attribute-public'), context());

    // Assess
    expect(result).toMatchObject({ status: 'alerted', resourceId: IMAGE_ID });
    expect(notifier.sent).toHaveLength(1);
    const audited = linesNamed(log.entries, 'event audited');
    expect(audited).toHaveLength(1);
    expect(audited[0]?.level).toBe('info');
    expect(attributes(audited[0])).toMatchObject({
      eventName: 'ModifyImageAttribute',
      imageId: IMAGE_ID,
      caller: SSO_ROLE,
      verdict: 'alerted',
      reason: expect.stringContaining(IMAGE_ID),
      remediation: 'off',
    });
  });

  it.each([
    { fixture: 'create-image', imageId: IMAGE_ID, snapshotId: undefined },
    { fixture: 'modify-snapshot-attribute-public', imageId: undefined, snapshotId: SNAPSHOT_ID },
    // An account-level switch names neither an image nor a snapshot: the account id is neither.
    { fixture: 'disable-image-block-public-access', imageId: undefined, snapshotId: undefined },
  ])('logs $fixture under the right resource id', async ({ fixture: name, imageId, snapshotId }) => {
    // Prepare
    const { log, handler } = setup();

    // Act
    await handler(fixture(name), context());

    // Assess
    const audited = attributes(linesNamed(log.entries, 'event audited')[0]);
    expect(audited.imageId).toBe(imageId);
    expect(audited.snapshotId).toBe(snapshotId);
  });

  it.each([
    { case: 'the deployment', dryRun: true, policyDryRun: false, remediation: 'dry-run' },
    { case: 'the policy', dryRun: false, policyDryRun: true, remediation: 'dry-run' },
    { case: 'both', dryRun: true, policyDryRun: true, remediation: 'dry-run' },
    { case: 'neither', dryRun: false, policyDryRun: false, remediation: 'removed' },
  ])('dry run from $case decides whether remediation runs', async ({ dryRun, policyDryRun, remediation }) => {
    // Prepare
    const { account, handler } = setup({
      ...publicImage(),
      dryRun,
      policy: { dryRun: policyDryRun, sharing: { ...defaultPolicy().sharing, remediate: true } },
    });

    // Act
    const result = await handler(fixture('modify-image-attribute-public'), context());

    // Assess
    expect(result).toMatchObject({ status: 'alerted', remediation });
    const removals = account.calls.filter((call) => call.startsWith('removeImagePermissions '));
    expect(removals).toHaveLength(remediation === 'removed' ? 1 : 0);
    expect(account.sharing.get(IMAGE_ID)?.public).toBe(remediation !== 'removed');
  });

  it('passes the abort signal to the ports', async () => {
    // Prepare
    const { ports, handler } = setup();
    const signal = new AbortController().signal;

    // Act
    await handler(fixture('create-image'), context(), { signal });

    // Assess
    expect(ports).toHaveBeenCalledWith(signal);
  });

  it('lets an AWS error propagate so that Lambda retries, then dead-letters the event', async () => {
    // Prepare
    const { account, notifier, log, handler } = setup(publicImage());
    account.failNext('describeImages', '*', 'RequestLimitExceeded');

    // Act
    const run = handler(fixture('modify-image-attribute-public'), context());

    // Assess
    await expect(run).rejects.toMatchObject({ name: 'RequestLimitExceeded' });
    expect(notifier.sent).toEqual([]);
    expect(linesNamed(log.entries, 'event audited')).toEqual([]);
  });
});

interface SlackReply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  delayMs?: number;
}

const servers: Server[] = [];

afterEach(async () => {
  await Promise.all(
    servers.splice(0).map((server) => {
      server.closeAllConnections();
      return new Promise<void>((done) => server.close(() => done()));
    }),
  );
});

/** A stand-in for hooks.slack.com on 127.0.0.1 that answers every POST with `reply`. */
async function localSlack(reply: SlackReply) {
  const received: string[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push(Buffer.concat(chunks).toString('utf8'));
      setTimeout(() => {
        if (response.destroyed) return;
        response.writeHead(reply.status, { 'content-type': 'text/plain', ...reply.headers });
        response.end(reply.body ?? '');
      }, reply.delayMs ?? 0).unref();
    });
  });
  servers.push(server);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/services/T0JANITOR/B0EVENTS/eventSecretToken`, received };
}

describe('onImageEvent handler: Slack within the time left', () => {
  it('returns well inside a 60 s Lambda when Slack answers 429 Retry-After: 3600, and logs the whole alert', async () => {
    // Prepare
    const slack = await localSlack({ status: 429, headers: { 'retry-after': '3600' }, body: 'rate_limited' });
    const log = recordingLog();
    const {
      account,
      handler,
      log: handlerLog,
    } = setup({
      ...publicImage(),
      notifier: createSlackNotifier({ webhookUrl: async () => slack.url, log }),
    });
    const started = Date.now();

    // Act
    const result = await handler(fixture('modify-image-attribute-public'), lambdaContext(60_000));

    // Assess: back at once, not after sleeping through the Retry-After into the timeout.
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(result).toMatchObject({
      status: 'alert-not-delivered',
      resourceId: IMAGE_ID,
      detail: expect.stringContaining('Slack asked to retry after 3600 s'),
    });
    expect(slack.received).toHaveLength(1);
    const notDelivered = linesNamed(handlerLog.entries, 'alert not delivered');
    expect(notDelivered).toHaveLength(1);
    expect(notDelivered[0]?.level).toBe('error');
    expect(attributes(notDelivered[0])).toMatchObject({
      alert: {
        severity: 'critical',
        title: `Image ${IMAGE_ID} is public`,
        resource: { kind: 'image', id: IMAGE_ID },
        caller: { arn: SSO_ROLE },
        fixCommand: expect.stringContaining(IMAGE_ID),
      },
      delivery: { delivered: false, status: 429 },
    });
    // Not recorded as alerted, so the next event on this exposure alerts again.
    expect(account.images.get(IMAGE_ID)?.tags[ALERTED_EXPOSURE_TAG]).toBeUndefined();
  });

  it('posts once to a Slack slower than the budget, records the alert, and a replay posts nothing more', async () => {
    // Prepare: 7.5 s left gives Slack 2.5 s (a third, and 5 s kept back); Slack answers 200 after 4 s.
    const slack = await localSlack({ status: 200, body: 'ok', delayMs: 4_000 });
    const { account, handler } = setup({
      ...publicImage(),
      notifier: createSlackNotifier({ webhookUrl: async () => slack.url, log: recordingLog() }),
    });
    const started = Date.now();

    // Act
    const result = await handler(fixture('modify-image-attribute-public'), lambdaContext(7_500));
    const elapsed = Date.now() - started;
    const replay = await handler(fixture('modify-image-attribute-public'), lambdaContext(7_500));

    // Assess
    expect(elapsed).toBeGreaterThanOrEqual(2_000);
    expect(elapsed).toBeLessThan(3_500);
    expect(result).toMatchObject({ status: 'alert-unconfirmed', resourceId: IMAGE_ID });
    expect(account.images.get(IMAGE_ID)?.tags[ALERTED_EXPOSURE_TAG]).toMatch(/^[0-9a-f]{32}$/);
    expect(replay).toMatchObject({ status: 'already-alerted', resourceId: IMAGE_ID });
    expect(slack.received).toHaveLength(1);
  }, 10_000);
});

describe('onImageEvent handler: events for other accounts and Regions', () => {
  it.each<{ case: string; edit: (event: Json) => void; named: string }>([
    {
      case: 'the envelope names another account',
      edit: (event) => {
        event.account = OTHER_ACCOUNT;
      },
      named: `account ${OTHER_ACCOUNT}`,
    },
    {
      case: 'the CloudTrail record names another account',
      edit: (event) => {
        event.detail.recipientAccountId = OTHER_ACCOUNT;
      },
      named: `account ${OTHER_ACCOUNT}`,
    },
    {
      case: 'the envelope names another Region',
      edit: (event) => {
        event.region = OTHER_REGION;
      },
      named: `Region ${OTHER_REGION}`,
    },
    {
      case: 'the CloudTrail record names another Region',
      edit: (event) => {
        event.detail.awsRegion = OTHER_REGION;
      },
      named: `Region ${OTHER_REGION}`,
    },
  ])('drops, with a logged reason, an event where $case', async ({ edit, named }) => {
    // Prepare
    const { account, notifier, log, ports, handler } = setup(publicImage());
    const event = fixture('modify-image-attribute-public');
    edit(event);

    // Act
    const result = await handler(event, lambdaContext(60_000));

    // Assess: returned, not thrown, so Lambda does not retry it; nothing read, tagged or alerted.
    expect(result.status).toBe('ignored');
    expect(reasonOf(result)).toContain(named);
    const ignored = linesNamed(log.entries, 'event ignored');
    expect(ignored).toHaveLength(1);
    expect(ignored[0]?.level).toBe('warn');
    expect(attributes(ignored[0])).toMatchObject({
      reason: reasonOf(result),
      eventName: 'ModifyImageAttribute',
    });
    expect(ports).not.toHaveBeenCalled();
    expect(account.calls).toEqual([]);
    expect(notifier.sent).toEqual([]);
  });

  it('names every account and Region that is not its own', async () => {
    // Prepare
    const { handler } = setup(publicImage());
    const event = fixture('modify-image-attribute-public');
    event.account = OTHER_ACCOUNT;
    event.region = OTHER_REGION;
    event.detail.awsRegion = OTHER_REGION;

    // Act
    const result = await handler(event, lambdaContext(60_000));

    // Assess
    expect(reasonOf(result)).toBe(
      `the event is for Region ${OTHER_REGION}, not this function's ${REGION} and account ${OTHER_ACCOUNT}, ` +
        `not this function's ${ACCOUNT}; only this function's own account and Region are audited`,
    );
  });

  it("takes its own account from the context's invokedFunctionArn when none is injected", async () => {
    // Prepare
    const { notifier, handler } = setup({ ...publicImage(), injectAccount: false });

    // Act
    const foreign = await handler(
      fixture('modify-image-attribute-public'),
      lambdaContext(60_000, functionArn(OTHER_ACCOUNT)),
    );
    const own = await handler(fixture('modify-image-attribute-public'), lambdaContext(60_000, functionArn()));

    // Assess
    expect(foreign.status).toBe('ignored');
    expect(reasonOf(foreign)).toContain(`account ${ACCOUNT}, not this function's ${OTHER_ACCOUNT}`);
    expect(own).toMatchObject({ status: 'alerted', resourceId: IMAGE_ID });
    expect(notifier.sent).toHaveLength(1);
  });

  it.each([
    { case: 'no invokedFunctionArn, as serverless invoke local passes', arn: null, says: 'is absent' },
    {
      case: 'an invokedFunctionArn that is not an ARN',
      arn: 'id',
      says: "'id' is not a Lambda function ARN",
    },
    {
      case: "an invokedFunctionArn in another Region than the function's",
      arn: functionArn(OTHER_ACCOUNT, 'serverless-offline'),
      says: `names Region serverless-offline, not this function's ${REGION}`,
    },
  ])('skips the account check, with a warning, given $case', async ({ arn, says }) => {
    // Prepare
    const { log, handler } = setup({ injectAccount: false });

    // Act
    const result = await handler(fixture('create-image'), lambdaContext(60_000, arn));

    // Assess: still audited; the Region is checked all the same.
    expect(result).toMatchObject({ status: 'tagged', resourceId: IMAGE_ID });
    const skipped = linesNamed(log.entries, 'account check skipped');
    expect(skipped).toHaveLength(1);
    expect(skipped[0]?.level).toBe('warn');
    expect(attributes(skipped[0]).reason).toContain(says);
  });

  it('checks the Region even when the account cannot be known', async () => {
    // Prepare
    const { ports, handler } = setup({ injectAccount: false });
    const event = fixture('create-image');
    event.region = OTHER_REGION;
    event.detail.awsRegion = OTHER_REGION;

    // Act
    const result = await handler(event, lambdaContext(60_000, null));

    // Assess
    expect(result.status).toBe('ignored');
    expect(reasonOf(result)).toContain(`Region ${OTHER_REGION}`);
    expect(ports).not.toHaveBeenCalled();
  });
});
