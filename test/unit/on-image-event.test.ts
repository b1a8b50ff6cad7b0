import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { defaultPolicy, type Policy } from '../../src/config/policy.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import type { ImageEventDependencies, ImageEventResult } from '../../src/handlers/on-image-event.ts';
import { type Image, NOT_SHARED, type SharePermissions, type Snapshot } from '../../src/model.ts';
import type { DeliveryResult, SlackMessage } from '../../src/notify/slack.ts';
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
const ACCOUNT = '111122223333';
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

interface Setup {
  images?: Image[];
  snapshots?: Snapshot[];
  sharing?: Record<string, SharePermissions>;
  policy?: Partial<Policy>;
  dryRun?: boolean;
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
    notifier,
    policy: { ...defaultPolicy(), dryRun: false, ...options.policy },
    dryRun: options.dryRun ?? false,
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
