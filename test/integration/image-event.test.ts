import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DescribeImageAttributeCommand, DescribeImagesCommand } from '@aws-sdk/client-ec2';
import { PutParameterCommand } from '@aws-sdk/client-ssm';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it, vi } from 'vitest';
import { logger } from '../../src/logger.ts';
import { describeWithMoto, MOTO_ACCOUNT_ID, MOTO_REGION, type MotoHandle } from './moto.ts';
import { Seeder } from './seed.ts';
import { type LocalSlack, SLACK_WEBHOOK_PATH, startLocalSlack } from './slack-server.ts';

/**
 * The real `onImageEvent` Lambda module (middy, Powertools, module-scope clients, the SSM-cached
 * Slack webhook) against moto and a Slack stand-in on 127.0.0.1, fed the sample events from
 * `events/` with their ids rewritten to what moto seeded.
 */

const ROOT = resolve(import.meta.dirname, '../..');
const WEBHOOK_PARAMETER = '/ami-janitor/slack-webhook-url';
const DAY_MS = 86_400_000;

/** The account and Region the sample events were recorded in; moto answers as another. */
const FIXTURE_ACCOUNT_ID = '111122223333';
const FIXTURE_REGION = 'eu-west-1';
/** The image id every sample event names. */
const FIXTURE_IMAGE_ID = 'ami-0abc1234def567890';

const POLICY = `
dryRun: false
defaultTtlDays: 30
sharing:
  remediate: true
`;

/** The parts of a sample event the assertions read; the rest is passed through untouched. */
interface SampleEvent {
  detail: {
    eventName?: string;
    eventTime: string;
    userIdentity: { arn: string; sessionContext: { sessionIssuer: { arn: string } } };
    requestParameters?: Record<string, unknown>;
    responseElements?: Record<string, unknown>;
  };
}

/**
 * A sample event moved into moto's account and Region, naming `imageId` instead of the fixture's
 * image. The id is replaced wherever the event holds it (plain or `<Action>Response`-wrapped), and
 * the fixture must hold it: a fixture that changed shape fails here instead of auditing nothing.
 */
function sampleEvent(file: string, imageId?: string): SampleEvent {
  const text = readFileSync(join(ROOT, 'events', file), 'utf8');
  if (imageId !== undefined && !text.includes(FIXTURE_IMAGE_ID)) {
    throw new Error(`events/${file} no longer names ${FIXTURE_IMAGE_ID}; update the test's rewrite`);
  }
  const rewritten = text
    .replaceAll(FIXTURE_ACCOUNT_ID, MOTO_ACCOUNT_ID)
    .replaceAll(FIXTURE_REGION, MOTO_REGION)
    .replaceAll(FIXTURE_IMAGE_ID, imageId ?? FIXTURE_IMAGE_ID);
  return JSON.parse(rewritten) as SampleEvent;
}

function policyFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'ami-janitor-policy-')), 'policy.yml');
  writeFileSync(file, POLICY);
  return file;
}

/** Every text a Block Kit message shows, flattened, for "names X" assertions. */
function blockTexts(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (value === null || typeof value !== 'object') return [];
  return Object.values(value).flatMap(blockTexts);
}

describeWithMoto('onImageEvent handler against moto and a local Slack', (moto: MotoHandle) => {
  type Handler = typeof import('../../src/handlers/on-image-event.ts')['handler'];
  let handler: Handler;
  let slack: LocalSlack;
  let seed: Seeder;
  const savedEnv: Record<string, string | undefined> = {};
  const context = {
    getRemainingTimeInMillis: () => 30_000,
    functionName: 'ami-janitor-onImageEvent',
    invokedFunctionArn: `arn:aws:lambda:${MOTO_REGION}:${MOTO_ACCOUNT_ID}:function:ami-janitor-onImageEvent`,
    awsRequestId: 'req-image-event',
  } as unknown as Parameters<Handler>[1];

  beforeAll(async () => {
    slack = await startLocalSlack();
    // The handler module reads its environment, loads the policy and builds its clients when first
    // imported, so the environment is in place before the one import this file makes.
    const env: Record<string, string> = {
      ...moto.env(),
      AMI_JANITOR_POLICY_FILE: policyFile(),
      AMI_JANITOR_DRY_RUN: 'false',
      AMI_JANITOR_SLACK_WEBHOOK_PARAMETER: WEBHOOK_PARAMETER,
    };
    for (const [key, value] of Object.entries(env)) {
      savedEnv[key] = process.env[key];
      process.env[key] = value;
    }
    ({ handler } = await import('../../src/handlers/on-image-event.ts'));
  });

  afterAll(async () => {
    for (const [key, value] of Object.entries(savedEnv)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
    await slack?.close();
  });

  beforeEach(async () => {
    await moto.reset();
    seed = new Seeder(moto.endpoint);
    // The webhook is a SecureString, as in production; the handler reads it with decryption.
    await seed.clients.ssm.send(
      new PutParameterCommand({ Name: WEBHOOK_PARAMETER, Type: 'SecureString', Value: slack.url }),
    );
  });

  afterEach(() => {
    seed.destroy();
    vi.restoreAllMocks();
  });

  async function describeImage(imageId: string) {
    const result = await seed.clients.ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    const image = result.Images?.[0];
    if (image === undefined) throw new Error(`moto does not know ${imageId}`);
    return image;
  }

  async function tagsOf(imageId: string): Promise<Record<string, string | undefined>> {
    const image = await describeImage(imageId);
    return Object.fromEntries((image.Tags ?? []).map((tag) => [tag.Key, tag.Value]));
  }

  async function launchPermissions(imageId: string) {
    const result = await seed.clients.ec2.send(
      new DescribeImageAttributeCommand({ ImageId: imageId, Attribute: 'launchPermission' }),
    );
    return result.LaunchPermissions ?? [];
  }

  it('CreateImage: tags the new image with its creator, creation time and expiry, once', async () => {
    // Prepare: an image made the way the event says, by CreateImage from an instance.
    const base = await seed.registerImage('base');
    const builder = await seed.runInstance(base, 'terminated');
    const imageId = await seed.createImage(builder, 'web-2026-11-22', { Application: 'web' });
    const event = sampleEvent('create-image.json', imageId);
    expect(event.detail.responseElements?.imageId).toBe(imageId);
    const issuer = event.detail.userIdentity.sessionContext.sessionIssuer.arn;
    const eventTime = new Date(event.detail.eventTime);

    // Act
    const result = await handler(event, context);

    // Assess: the assumed role's issuer, not the short-lived session ARN, is the creator.
    expect(result).toMatchObject({ status: 'tagged', resourceId: imageId });
    const tags = await tagsOf(imageId);
    expect(tags).toEqual({
      Application: 'web',
      'ami-janitor:created-by': issuer,
      'ami-janitor:created-by-session': 'jane.doe@example.com',
      'ami-janitor:created-at': eventTime.toISOString(),
      'ami-janitor:expires-at': new Date(eventTime.getTime() + 30 * DAY_MS).toISOString().slice(0, 10),
    });
    expect(issuer).toMatch(/^arn:aws:iam::123456789012:role\//);
    expect(tags['ami-janitor:created-by']).not.toBe(event.detail.userIdentity.arn);
    expect(slack.received).toEqual([]);

    // Act 2: EventBridge delivers at least once; the replay must change nothing.
    const replay = await handler(sampleEvent('create-image.json', imageId), context);

    // Assess 2
    expect(replay).toMatchObject({ status: 'already-tagged', resourceId: imageId });
    expect(await tagsOf(imageId)).toEqual(tags);
    expect(slack.received).toEqual([]);
  });

  it('ModifyImageAttribute public: remediates, sends exactly one Block Kit alert, and a replay sends none', async () => {
    // Prepare: a public image, as the event describes.
    const imageId = await seed.registerImage('leaky-image');
    await seed.shareImage(imageId, { public: true });
    expect((await describeImage(imageId)).Public).toBe(true);
    const event = sampleEvent('modify-image-attribute-public.json', imageId);
    expect(event.detail.requestParameters?.imageId).toBe(imageId);
    const caller = event.detail.userIdentity.sessionContext.sessionIssuer.arn;
    const received = slack.received.length;

    // Act
    const result = await handler(event, context);

    // Assess: private again in moto, by both views of it.
    expect(result).toMatchObject({ status: 'alerted', resourceId: imageId, remediation: 'removed' });
    expect(await launchPermissions(imageId)).toEqual([]);
    expect((await describeImage(imageId)).Public).toBe(false);
    // Assess: exactly one Block Kit POST, naming the image and the caller.
    expect(slack.received.length - received).toBe(1);
    const post = slack.received.at(-1);
    expect(post?.method).toBe('POST');
    expect(post?.path).toBe(SLACK_WEBHOOK_PATH);
    expect(post?.headers['content-type']).toMatch(/^application\/json/);
    const message = JSON.parse(post?.body ?? '{}') as { text?: unknown; blocks?: unknown };
    expect(Array.isArray(message.blocks)).toBe(true);
    expect(message.blocks).not.toEqual([]);
    expect(message).not.toHaveProperty('attachments');
    const shown = blockTexts(message.blocks).join('\n');
    expect(shown).toContain(imageId);
    expect(shown).toContain(caller);
    expect(shown).toMatch(/CRITICAL/);
    expect(shown).toMatch(/Removed: everyone \(public\)/);
    // Nothing is exposed any more, so no alert-state tag is left behind.
    expect(await tagsOf(imageId)).not.toHaveProperty('ami-janitor:alerted-exposure');

    // Act 2: the same event again (EventBridge retries, or a replay from the archive).
    const replay = await handler(sampleEvent('modify-image-attribute-public.json', imageId), context);

    // Assess 2: the image is private now, so there is nothing to alert on.
    expect(replay).toMatchObject({ status: 'not-exposed', resourceId: imageId });
    expect(slack.received.length - received).toBe(1);
    expect(await launchPermissions(imageId)).toEqual([]);
  });

  it('an event for another account is dropped: the public image is left alone and nobody is alerted', async () => {
    // Prepare: a public image here, but an event that names another account.
    const imageId = await seed.registerImage('elsewhere-image');
    await seed.shareImage(imageId, { public: true });
    const event = sampleEvent('modify-image-attribute-public.json', imageId) as SampleEvent & {
      account: string;
      detail: { recipientAccountId?: string };
    };
    event.account = FIXTURE_ACCOUNT_ID;
    event.detail.recipientAccountId = FIXTURE_ACCOUNT_ID;
    const warnLog = vi.spyOn(logger, 'warn');
    const received = slack.received.length;

    // Act
    const result = await handler(event, context);

    // Assess
    const reason = `account ${FIXTURE_ACCOUNT_ID}, not this function's ${MOTO_ACCOUNT_ID}`;
    expect(result).toEqual({ status: 'ignored', reason: expect.stringContaining(reason) });
    expect(warnLog).toHaveBeenCalledWith(
      'event ignored',
      expect.objectContaining({ reason: expect.stringContaining(reason) }),
    );
    expect((await describeImage(imageId)).Public).toBe(true);
    expect(await tagsOf(imageId)).toEqual({});
    expect(slack.received.length).toBe(received);
  });

  it('a malformed event returns without throwing, says why in the log, and alerts nobody', async () => {
    // Prepare
    const errorLog = vi.spyOn(logger, 'error');
    const event = sampleEvent('malformed.json');
    const received = slack.received.length;

    // Act
    const result = await handler(event, context);

    // Assess
    expect(result).toEqual({ status: 'rejected', reason: expect.stringContaining('detail.eventName') });
    expect(errorLog).toHaveBeenCalledWith('event rejected', {
      reason: expect.stringContaining('detail.eventName'),
    });
    expect(slack.received.length).toBe(received);
  });
});
