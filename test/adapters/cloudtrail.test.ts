import { readFileSync } from 'node:fs';
import type {
  AdvancedEventSelector,
  Event as CloudTrailEventSummary,
  EventSelector,
  LookupEventsCommandOutput,
  Trail,
} from '@aws-sdk/client-cloudtrail';
import {
  CloudTrailClient,
  DescribeTrailsCommand,
  GetEventSelectorsCommand,
  GetTrailStatusCommand,
  LookupEventsCommand,
} from '@aws-sdk/client-cloudtrail';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  backfillCreators,
  type CreatorLookupDeps,
  CreatorLookupError,
  createCreatorLookup,
  createTrailHealthCheck,
  TrailCheckError,
} from '../../src/adapters/cloudtrail.ts';
import { ApiLimiter } from '../../src/adapters/limiter.ts';
import type { Image } from '../../src/model.ts';
import { awsError, recordingLog, recordingSleep } from './aws-fakes.ts';

const cloudTrailMock = mockClient(CloudTrailClient);
const cloudTrail = new CloudTrailClient({});

const ACCOUNT = '111122223333';
const REGION = 'eu-west-1';
const DAY_MS = 86_400_000;

let log: ReturnType<typeof recordingLog>;
let retrySleep: ReturnType<typeof recordingSleep>;

beforeEach(() => {
  cloudTrailMock.reset();
  log = recordingLog();
  retrySleep = recordingSleep();
});

/** A recorded API page from test/fixtures/cloudtrail, with EventTime revived as the SDK returns it. */
function cloudTrailFixture<T>(name: string): T {
  const text = readFileSync(new URL(`../fixtures/cloudtrail/${name}.json`, import.meta.url), 'utf8');
  return JSON.parse(text, (key, value: unknown) =>
    key === 'EventTime' && typeof value === 'string' ? new Date(value) : value,
  ) as T;
}

function trailArn(name: string, homeRegion = REGION, account = ACCOUNT): string {
  return `arn:aws:cloudtrail:${homeRegion}:${account}:trail/${name}`;
}

function trail(name: string, overrides: Partial<Trail> = {}): Trail {
  return {
    Name: name,
    S3BucketName: `${name}-logs-${ACCOUNT}`,
    IncludeGlobalServiceEvents: true,
    IsMultiRegionTrail: false,
    HomeRegion: REGION,
    TrailARN: trailArn(name, overrides.HomeRegion ?? REGION),
    LogFileValidationEnabled: true,
    HasCustomEventSelectors: false,
    HasInsightSelectors: false,
    IsOrganizationTrail: false,
    ...overrides,
  };
}

const MANAGEMENT_ALL: EventSelector[] = [
  {
    ReadWriteType: 'All',
    IncludeManagementEvents: true,
    DataResources: [],
    ExcludeManagementEventSources: [],
  },
];

/** Answers GetTrailStatus and GetEventSelectors per trail, by name or ARN as the caller sent it. */
function trailAnswers(
  answers: Record<
    string,
    { logging: boolean; selectors?: EventSelector[]; advanced?: AdvancedEventSelector[] }
  >,
) {
  cloudTrailMock.on(GetTrailStatusCommand).callsFake((input: { Name?: string }) => {
    const answer = answers[input.Name ?? ''];
    if (!answer) throw awsError('TrailNotFoundException');
    return { IsLogging: answer.logging };
  });
  cloudTrailMock.on(GetEventSelectorsCommand).callsFake((input: { TrailName?: string }) => {
    const answer = answers[input.TrailName ?? ''];
    if (!answer) throw awsError('TrailNotFoundException');
    return {
      TrailARN: input.TrailName,
      ...(answer.selectors ? { EventSelectors: answer.selectors } : {}),
      ...(answer.advanced ? { AdvancedEventSelectors: answer.advanced } : {}),
    };
  });
}

function healthCheck(signal?: AbortSignal) {
  return createTrailHealthCheck({
    cloudTrail,
    // Its own buckets, so no test waits on another's calls.
    limiter: new ApiLimiter(),
    retry: { sleep: retrySleep.sleep, maxAttempts: 3, random: () => 0.5 },
    log,
    ...(signal ? { signal } : {}),
  });
}

describe('trail health check', () => {
  it('reports a Region without trails as blind, without asking for any status', async () => {
    // Prepare
    cloudTrailMock.on(DescribeTrailsCommand).resolves({ trailList: [] });

    // Act
    const health = await healthCheck().check(REGION);

    // Assess
    expect(health).toMatchObject({ ok: false, region: REGION, trails: [] });
    expect(health.reason).toContain(
      'no CloudTrail trail logs management write events in eu-west-1: real-time audit is blind in eu-west-1',
    );
    expect(cloudTrailMock).toHaveReceivedCommandWith(DescribeTrailsCommand, { includeShadowTrails: true });
    expect(cloudTrailMock).not.toHaveReceivedCommand(GetTrailStatusCommand);
  });

  it('counts a logging multi-Region trail homed in another Region, asking for it by ARN', async () => {
    // Prepare
    const arn = trailArn('org-trail', 'us-east-1');
    cloudTrailMock.on(DescribeTrailsCommand).resolves({
      trailList: [trail('org-trail', { HomeRegion: 'us-east-1', TrailARN: arn, IsMultiRegionTrail: true })],
    });
    trailAnswers({ [arn]: { logging: true, selectors: MANAGEMENT_ALL } });
    const controller = new AbortController();

    // Act
    const health = await healthCheck(controller.signal).check(REGION);

    // Assess
    expect(health).toEqual({
      ok: true,
      region: REGION,
      reason: 'trail org-trail logs management write events in eu-west-1',
      trails: [
        {
          name: 'org-trail',
          arn,
          homeRegion: 'us-east-1',
          isLogging: true,
          managementWrites: true,
          multiRegion: true,
        },
      ],
    });
    expect(cloudTrailMock).toHaveReceivedCommandWith(GetTrailStatusCommand, { Name: arn });
    expect(cloudTrailMock).toHaveReceivedCommandWith(GetEventSelectorsCommand, { TrailName: arn });
    // Every call carries the deadline's signal.
    const sendOptions = cloudTrailMock.calls().map((call) => (call.args as readonly unknown[])[1]);
    expect(sendOptions).toHaveLength(3);
    for (const options of sendOptions) expect(options).toEqual({ abortSignal: controller.signal });
  });

  it('asks for a trail homed in the Region by name', async () => {
    // Prepare
    cloudTrailMock.on(DescribeTrailsCommand).resolves({ trailList: [trail('main')] });
    trailAnswers({ main: { logging: true, selectors: MANAGEMENT_ALL } });

    // Act
    const health = await healthCheck().check(REGION);

    // Assess
    expect(health.ok).toBe(true);
    expect(cloudTrailMock).toHaveReceivedCommandWith(GetTrailStatusCommand, { Name: 'main' });
  });

  it('ignores a single-Region trail homed in another Region', async () => {
    // Prepare
    cloudTrailMock
      .on(DescribeTrailsCommand)
      .resolves({ trailList: [trail('us-only', { HomeRegion: 'us-east-1', IsMultiRegionTrail: false })] });

    // Act
    const health = await healthCheck().check(REGION);

    // Assess
    expect(health.ok).toBe(false);
    expect(health.trails).toEqual([]);
    expect(cloudTrailMock).not.toHaveReceivedCommand(GetTrailStatusCommand);
  });

  it('does not count a trail that is not logging', async () => {
    // Prepare
    cloudTrailMock.on(DescribeTrailsCommand).resolves({ trailList: [trail('stopped')] });
    trailAnswers({ stopped: { logging: false, selectors: MANAGEMENT_ALL } });

    // Act
    const health = await healthCheck().check(REGION);

    // Assess
    expect(health.ok).toBe(false);
    expect(health.trails[0]).toMatchObject({ isLogging: false, managementWrites: true });
    expect(health.reason).toContain('real-time audit is blind in eu-west-1');
    expect(health.reason).toContain('stopped: not logging');
  });

  it('does not count a trail that logs only data events', async () => {
    // Prepare
    cloudTrailMock.on(DescribeTrailsCommand).resolves({ trailList: [trail('data-only')] });
    trailAnswers({
      'data-only': {
        logging: true,
        selectors: [
          {
            ReadWriteType: 'All',
            IncludeManagementEvents: false,
            DataResources: [{ Type: 'AWS::S3::Object', Values: ['arn:aws:s3:::artifacts-bucket/'] }],
          },
        ],
      },
    });

    // Act
    const health = await healthCheck().check(REGION);

    // Assess
    expect(health.ok).toBe(false);
    expect(health.trails[0]).toMatchObject({ isLogging: true, managementWrites: false });
    expect(health.reason).toContain('data-only: does not log management write events');
  });

  it('does not count a trail that logs only read-only management events', async () => {
    // Prepare
    cloudTrailMock.on(DescribeTrailsCommand).resolves({ trailList: [trail('reads')] });
    trailAnswers({
      reads: { logging: true, selectors: [{ ReadWriteType: 'ReadOnly', IncludeManagementEvents: true }] },
    });

    // Act
    const health = await healthCheck().check(REGION);

    // Assess
    expect(health.ok).toBe(false);
    expect(health.trails[0]?.managementWrites).toBe(false);
  });

  it('counts WriteOnly management events', async () => {
    // Prepare
    cloudTrailMock.on(DescribeTrailsCommand).resolves({ trailList: [trail('writes')] });
    trailAnswers({
      writes: { logging: true, selectors: [{ ReadWriteType: 'WriteOnly', IncludeManagementEvents: true }] },
    });

    // Act
    const health = await healthCheck().check(REGION);

    // Assess
    expect(health.ok).toBe(true);
  });

  it('counts advanced selectors on the Management category', async () => {
    // Prepare
    cloudTrailMock.on(DescribeTrailsCommand).resolves({ trailList: [trail('advanced')] });
    trailAnswers({
      advanced: {
        logging: true,
        advanced: [
          {
            Name: 'Log S3 data events',
            FieldSelectors: [
              { Field: 'eventCategory', Equals: ['Data'] },
              { Field: 'resources.type', Equals: ['AWS::S3::Object'] },
            ],
          },
          { Name: 'Management events', FieldSelectors: [{ Field: 'eventCategory', Equals: ['Management'] }] },
        ],
      },
    });

    // Act
    const health = await healthCheck().check(REGION);

    // Assess
    expect(health.ok).toBe(true);
    expect(health.trails[0]).toMatchObject({ name: 'advanced', managementWrites: true });
  });

  it('does not count advanced selectors restricted to read-only management events', async () => {
    // Prepare
    cloudTrailMock.on(DescribeTrailsCommand).resolves({ trailList: [trail('advanced-reads')] });
    trailAnswers({
      'advanced-reads': {
        logging: true,
        advanced: [
          {
            FieldSelectors: [
              { Field: 'eventCategory', Equals: ['Management'] },
              { Field: 'readOnly', Equals: ['true'] },
            ],
          },
        ],
      },
    });

    // Act
    const health = await healthCheck().check(REGION);

    // Assess
    expect(health.ok).toBe(false);
  });

  it('reads a trail without any selector as CloudTrail documents it: all management events', async () => {
    // Prepare: what moto answers for a trail created without PutEventSelectors.
    cloudTrailMock.on(DescribeTrailsCommand).resolves({ trailList: [trail('defaults')] });
    trailAnswers({ defaults: { logging: true, selectors: [], advanced: [] } });

    // Act
    const health = await healthCheck().check(REGION);

    // Assess
    expect(health.ok).toBe(true);
  });

  it('notes an organization trail it may not read and still counts another trail that qualifies', async () => {
    // Prepare
    const orgArn = trailArn('o-a1b2c3d4e5-trail', 'us-east-1', '999988887777');
    cloudTrailMock.on(DescribeTrailsCommand).resolves({
      trailList: [
        trail('o-a1b2c3d4e5-trail', {
          HomeRegion: 'us-east-1',
          TrailARN: orgArn,
          IsMultiRegionTrail: true,
          IsOrganizationTrail: true,
        }),
        trail('local'),
      ],
    });
    trailAnswers({ local: { logging: true, selectors: MANAGEMENT_ALL } });
    cloudTrailMock
      .on(GetTrailStatusCommand, { Name: orgArn })
      .rejects(awsError('AccessDeniedException'))
      .on(GetEventSelectorsCommand, { TrailName: orgArn })
      .rejects(awsError('AccessDeniedException'));

    // Act
    const health = await healthCheck().check(REGION);

    // Assess
    expect(health.ok).toBe(true);
    expect(health.reason).toBe('trail local logs management write events in eu-west-1');
    expect(health.trails[0]).toMatchObject({
      name: 'o-a1b2c3d4e5-trail',
      isLogging: false,
      managementWrites: false,
      error: 'GetTrailStatus failed: AccessDeniedException; GetEventSelectors failed: AccessDeniedException',
    });
    expect(health.trails[1]).toMatchObject({ name: 'local', isLogging: true, managementWrites: true });
    expect(health.trails[1]).not.toHaveProperty('error');
  });

  it('explains a blind Region by the trail it could not read', async () => {
    // Prepare
    cloudTrailMock.on(DescribeTrailsCommand).resolves({ trailList: [trail('gone')] });
    trailAnswers({});

    // Act
    const health = await healthCheck().check(REGION);

    // Assess
    expect(health.ok).toBe(false);
    expect(health.reason).toContain('gone: GetTrailStatus failed: TrailNotFoundException');
  });

  it('throws a TrailCheckError with the cause when DescribeTrails fails', async () => {
    // Prepare
    const denied = awsError('AccessDeniedException');
    cloudTrailMock.on(DescribeTrailsCommand).rejects(denied);

    // Act
    const checking = healthCheck().check(REGION);

    // Assess
    await expect(checking).rejects.toBeInstanceOf(TrailCheckError);
    await expect(checking).rejects.toMatchObject({
      name: 'TrailCheckError',
      message: expect.stringContaining('AccessDeniedException'),
      cause: denied,
    });
  });

  it('retries a throttled GetTrailStatus, and throws rather than report blind when throttling outlasts the retries', async () => {
    // Prepare
    cloudTrailMock.on(DescribeTrailsCommand).resolves({ trailList: [trail('main')] });
    trailAnswers({ main: { logging: true, selectors: MANAGEMENT_ALL } });
    cloudTrailMock.on(GetTrailStatusCommand).rejects(awsError('ThrottlingException'));

    // Act
    const checking = healthCheck().check(REGION);

    // Assess
    await expect(checking).rejects.toBeInstanceOf(TrailCheckError);
    expect(cloudTrailMock).toHaveReceivedCommandTimes(GetTrailStatusCommand, 3);
    expect(retrySleep.delays).toHaveLength(2);
  });
});

// ---------------------------------------------------------------------------------------------

const AMI = 'ami-0c2b8ca1dad447f8a';
const NOW = new Date('2025-04-01T12:00:00.000Z');
const SSO_ROLE = `arn:aws:iam::${ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_PlatformEngineer_5f1c2d3e4b5a6978`;

function recordedPage(): LookupEventsCommandOutput {
  return cloudTrailFixture<LookupEventsCommandOutput>('lookup-events-create-image');
}

/** A LookupEvents entry of a kind not in the recorded page, built the same way. */
function lookupEvent(
  eventName: string,
  eventTime: string,
  identity: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): CloudTrailEventSummary {
  const record = {
    eventVersion: '1.11',
    userIdentity: identity,
    eventTime,
    eventSource: 'ec2.amazonaws.com',
    eventName,
    awsRegion: REGION,
    sourceIPAddress: '198.51.100.20',
    userAgent: 'packer/1.11.2',
    requestParameters: {},
    responseElements: { requestId: 'f0e1d2c3-b4a5-4968-8776-655443322110', imageId: AMI },
    eventType: 'AwsApiCall',
    managementEvent: true,
    recipientAccountId: ACCOUNT,
    eventCategory: 'Management',
    ...extra,
  };
  return {
    EventId: `event-${eventName}-${eventTime}`,
    EventName: eventName,
    ReadOnly: 'false',
    EventTime: new Date(eventTime),
    EventSource: 'ec2.amazonaws.com',
    Resources: [{ ResourceType: 'AWS::EC2::Ami', ResourceName: AMI }],
    CloudTrailEvent: JSON.stringify(record),
  };
}

const BUILDER_USER = {
  type: 'IAMUser',
  principalId: 'AIDAZ3EXAMPLEBUILDER',
  arn: `arn:aws:iam::${ACCOUNT}:user/image-builder`,
  accountId: ACCOUNT,
  userName: 'image-builder',
};

/**
 * LookupEvents is paced in simulated time, so no test waits in real time: vitest's fake timers
 * stand in for setTimeout, Date and performance.now, and move on to the next timer whenever nothing
 * else is left to run. Everything that waits runs on them, as it would on the real clock: the
 * lookup's own 500 ms interval, the production API limiter (LookupEvents: 2 requests/s, 80% of it
 * ours) and the retry backoff. `sentAt` holds when each LookupEvents request went out, in ms from
 * the start; `waits` and `retryWaits` what the lookup's pacing and the backoff waited.
 */
let paced: { sentAt: number[]; waits: number[]; retryWaits: number[]; limiter: ApiLimiter };

beforeEach(() => {
  vi.useFakeTimers({ now: NOW });
  vi.setTimerTickMode('nextTimerAsync');
  paced = { sentAt: [], waits: [], retryWaits: [], limiter: new ApiLimiter() };
});

afterEach(() => {
  vi.useRealTimers();
});

/** A wait on the fake timers, noted in `waits`. */
function timerSleep(waits: number[]) {
  return (ms: number) => {
    waits.push(ms);
    return new Promise<void>((resolve) => setTimeout(resolve, ms));
  };
}

/** The mocked client, noting when each LookupEvents request goes out. */
function clientNotingSends(): CloudTrailClient {
  const client = new CloudTrailClient({});
  const send = client.send.bind(client) as (command: unknown, options?: unknown) => Promise<unknown>;
  return Object.assign(client, {
    send: (command: unknown, options?: unknown) => {
      if (command instanceof LookupEventsCommand) paced.sentAt.push(Date.now() - NOW.getTime());
      return send(command, options);
    },
  });
}

function creatorLookup(overrides: Partial<CreatorLookupDeps> = {}) {
  return createCreatorLookup({
    cloudTrail: clientNotingSends(),
    sleep: timerSleep(paced.waits),
    limiter: paced.limiter,
    retry: { sleep: timerSleep(paced.retryWaits), maxAttempts: 3, random: () => 0.5 },
    log,
    ...overrides,
  });
}

describe('findCreator', () => {
  it('finds the creator from a recorded CreateImage event, resolving the session issuer', async () => {
    // Prepare
    cloudTrailMock.on(LookupEventsCommand).resolves(recordedPage());
    const lookup = creatorLookup();

    // Act
    const creator = await lookup.findCreator(AMI, NOW);

    // Assess
    expect(creator).toEqual({
      arn: SSO_ROLE,
      type: 'AssumedRole',
      sessionName: 'jdoe@example.com',
      accountId: ACCOUNT,
      sourceIp: '203.0.113.24',
      userAgent: expect.stringContaining('md/command#ec2.create-image'),
    });
    expect(lookup.lookups).toBe(1);
    expect(cloudTrailMock).toHaveReceivedCommandWith(LookupEventsCommand, {
      LookupAttributes: [{ AttributeKey: 'ResourceName', AttributeValue: AMI }],
      StartTime: new Date(NOW.getTime() - 90 * DAY_MS),
      EndTime: NOW,
      MaxResults: 50,
    });
  });

  it.each(['CopyImage', 'RegisterImage', 'ImportImage'])(
    'takes the creator from %s too',
    async (eventName) => {
      // Prepare
      cloudTrailMock.on(LookupEventsCommand).resolves({
        Events: [lookupEvent(eventName, '2025-03-20T10:00:00Z', BUILDER_USER)],
      });

      // Act
      const creator = await creatorLookup().findCreator(AMI, NOW);

      // Assess
      expect(creator).toEqual({
        arn: `arn:aws:iam::${ACCOUNT}:user/image-builder`,
        type: 'IAMUser',
        accountId: ACCOUNT,
        sourceIp: '198.51.100.20',
        userAgent: 'packer/1.11.2',
      });
    },
  );

  it('ignores ModifyImageAttribute and other events that did not create the image', async () => {
    // Prepare
    const page = recordedPage();
    page.Events = (page.Events ?? []).filter((event) => event.EventName !== 'CreateImage');
    cloudTrailMock.on(LookupEventsCommand).resolves(page);

    // Act
    const creator = await creatorLookup().findCreator(AMI, NOW);

    // Assess
    expect(page.Events.map((event) => event.EventName)).toEqual(['ModifyImageAttribute', 'CreateTags']);
    expect(creator).toBeUndefined();
  });

  it('ignores a CopyImage of which the image was only the source, and a failed CreateImage', async () => {
    // Prepare
    cloudTrailMock.on(LookupEventsCommand).resolves({
      Events: [
        lookupEvent('CopyImage', '2025-03-25T10:00:00Z', BUILDER_USER, {
          requestParameters: { sourceImageId: AMI, sourceRegion: REGION, name: 'web-copy' },
          responseElements: { requestId: 'r-1', imageId: 'ami-0ffffffffffffffff' },
        }),
        lookupEvent('CreateImage', '2025-03-01T10:00:00Z', BUILDER_USER, {
          errorCode: 'Client.UnauthorizedOperation',
          errorMessage: 'You are not authorized to perform this operation.',
          responseElements: null,
        }),
      ],
    });

    // Act
    const creator = await creatorLookup().findCreator(AMI, NOW);

    // Assess
    expect(creator).toBeUndefined();
  });

  it('prefers the earliest creation event', async () => {
    // Prepare
    cloudTrailMock.on(LookupEventsCommand).resolves({
      Events: [
        lookupEvent('RegisterImage', '2025-03-20T10:00:00Z', {
          ...BUILDER_USER,
          arn: 'arn:aws:iam::1:user/late',
        }),
        lookupEvent('RegisterImage', '2025-03-10T10:00:00Z', BUILDER_USER),
      ],
    });

    // Act
    const creator = await creatorLookup().findCreator(AMI, NOW);

    // Assess
    expect(creator?.arn).toBe(`arn:aws:iam::${ACCOUNT}:user/image-builder`);
  });

  it('pages through NextToken, each page a paced request', async () => {
    // Prepare
    const recorded = recordedPage();
    const events = recorded.Events ?? [];
    cloudTrailMock
      .on(LookupEventsCommand)
      .resolvesOnce({ Events: events.slice(0, 2), NextToken: 'page-2-token' })
      .resolvesOnce({ Events: events.slice(2) });
    const lookup = creatorLookup();

    // Act
    const creator = await lookup.findCreator(AMI, NOW);

    // Assess
    expect(creator?.arn).toBe(SSO_ROLE);
    expect(lookup.lookups).toBe(2);
    const tokens = cloudTrailMock
      .commandCalls(LookupEventsCommand)
      .map((call) => call.args[0].input.NextToken);
    expect(tokens).toEqual([undefined, 'page-2-token']);
    expect(paced.sentAt).toEqual([0, 500]);
  });

  it('paces requests at least 500 ms apart across lookups', async () => {
    // Prepare: a limiter that holds nothing, so only the lookup's own pacing waits.
    cloudTrailMock.on(LookupEventsCommand).resolves({ Events: [] });
    const lookup = creatorLookup({ limiter: new ApiLimiter({ limits: () => undefined }) });

    // Act
    for (const imageId of ['ami-1', 'ami-2', 'ami-3']) await lookup.findCreator(imageId, NOW);

    // Assess
    expect(lookup.lookups).toBe(3);
    expect(paced.waits).toEqual([500, 500]);
    expect(paced.sentAt).toEqual([0, 500, 1000]);
  });

  it('keeps to the API limiter as well: 80% of 2 requests/s once its burst is spent', async () => {
    // Prepare
    cloudTrailMock.on(LookupEventsCommand).resolves({ Events: [] });
    const lookup = creatorLookup();

    // Act
    for (let image = 1; image <= 6; image++) await lookup.findCreator(`ami-${image}`, NOW);

    // Assess: 500 ms apart while the bucket's 1.6 tokens last, then one per 625 ms.
    expect(paced.sentAt).toEqual([0, 500, 1000, 1500, 2125, 2750]);
    expect(paced.limiter.waitedMs.get('LookupEvents')).toBe(250 + 375 + 500 + 625 + 625);
  });

  it('shares the pace between concurrent lookups and counts time already spent', async () => {
    // Prepare
    cloudTrailMock.on(LookupEventsCommand).resolves({ Events: [] });
    const lookup = creatorLookup({ minIntervalMs: 500 });
    await lookup.findCreator('ami-0', NOW);
    await vi.advanceTimersByTimeAsync(300);

    // Act
    await Promise.all(['ami-1', 'ami-2', 'ami-3'].map((imageId) => lookup.findCreator(imageId, NOW)));

    // Assess: the first of them waits only what is left of the 500 ms.
    expect(lookup.lookups).toBe(4);
    expect(paced.waits[0]).toBe(200);
    expect(paced.sentAt).toEqual([0, 500, 1000, 1500]);
  });

  it('skips a malformed CloudTrailEvent with a debug log instead of throwing', async () => {
    // Prepare
    const page = recordedPage();
    const broken = lookupEvent('CreateImage', '2025-03-01T10:00:00Z', BUILDER_USER);
    broken.CloudTrailEvent = '{"eventVersion":"1.11","userIdentity":{"type":"IAMUser"';
    page.Events = [broken, ...(page.Events ?? [])];
    cloudTrailMock.on(LookupEventsCommand).resolves(page);

    // Act
    const creator = await creatorLookup().findCreator(AMI, NOW);

    // Assess
    expect(creator?.arn).toBe(SSO_ROLE);
    expect(log.debug).toHaveBeenCalledWith(
      'skipping a CloudTrail event whose record is not JSON',
      expect.objectContaining({ imageId: AMI, eventName: 'CreateImage' }),
    );
  });

  it('retries a throttled LookupEvents, pacing the retry as well', async () => {
    // Prepare
    cloudTrailMock
      .on(LookupEventsCommand)
      .rejectsOnce(awsError('ThrottlingException'))
      .resolves(recordedPage());
    const lookup = creatorLookup();

    // Act
    const creator = await lookup.findCreator(AMI, NOW);

    // Assess
    expect(creator?.arn).toBe(SSO_ROLE);
    expect(lookup.lookups).toBe(2);
    expect(paced.retryWaits).toEqual([100]);
    expect(paced.sentAt).toEqual([0, 500]);
  });

  it('ends the window just after the image was created, when told when that was', async () => {
    // Prepare
    cloudTrailMock.on(LookupEventsCommand).resolves(recordedPage());
    const createdAt = new Date('2025-03-03T09:14:27.000Z');

    // Act
    const creator = await creatorLookup().findCreator(AMI, NOW, { createdAt });

    // Assess
    expect(creator?.arn).toBe(SSO_ROLE);
    expect(cloudTrailMock).toHaveReceivedCommandWith(LookupEventsCommand, {
      StartTime: new Date(NOW.getTime() - 90 * DAY_MS),
      EndTime: new Date('2025-03-03T10:14:27.000Z'),
    });
  });

  it('throws a CreatorLookupError with the cause when LookupEvents is denied', async () => {
    // Prepare
    const denied = awsError('AccessDeniedException');
    cloudTrailMock.on(LookupEventsCommand).rejects(denied);

    // Act
    const finding = creatorLookup().findCreator(AMI, NOW);

    // Assess
    await expect(finding).rejects.toBeInstanceOf(CreatorLookupError);
    await expect(finding).rejects.toMatchObject({ cause: denied });
  });
});

describe('backfillCreators', () => {
  const CREATED_BY = 'ami-janitor:created-by';

  function image(imageId: string, daysOld: number, tags: Record<string, string> = {}): Image {
    return {
      imageId,
      name: imageId,
      ownerId: ACCOUNT,
      state: 'available',
      creationDate: new Date(NOW.getTime() - daysOld * DAY_MS),
      public: false,
      tags,
      snapshotIds: [],
    };
  }

  /** One page per image: a RegisterImage by a user named after the image. */
  function answerPerImage() {
    cloudTrailMock
      .on(LookupEventsCommand)
      .callsFake((input: { LookupAttributes?: { AttributeValue?: string }[] }) => {
        const imageId = input.LookupAttributes?.[0]?.AttributeValue ?? '';
        return {
          Events: [
            lookupEvent(
              'RegisterImage',
              NOW.toISOString(),
              {
                ...BUILDER_USER,
                arn: `arn:aws:iam::${ACCOUNT}:user/creator-of-${imageId}`,
              },
              { responseElements: { imageId } },
            ),
          ],
        };
      });
  }

  function lookedUp(): (string | undefined)[] {
    return cloudTrailMock
      .commandCalls(LookupEventsCommand)
      .map((call) => call.args[0].input.LookupAttributes?.[0]?.AttributeValue);
  }

  it('looks up untagged images newest first, skips tagged and >90-day-old ones, and stops at max', async () => {
    // Prepare
    answerPerImage();
    const images = [
      image('ami-old', 120),
      image('ami-mid', 30),
      image('ami-tagged', 1, { [CREATED_BY]: `arn:aws:iam::${ACCOUNT}:user/someone` }),
      image('ami-newest', 2),
      image('ami-oldest-in-window', 80),
    ];
    const lookup = creatorLookup();

    // Act
    const result = await backfillCreators(images, lookup, {
      max: 2,
      now: NOW,
      createdByTag: CREATED_BY,
      log,
    });

    // Assess
    expect(lookedUp()).toEqual(['ami-newest', 'ami-mid']);
    expect(result.examined).toBe(2);
    expect(result.skipped).toBe(1);
    expect([...result.found]).toEqual([
      ['ami-newest', expect.objectContaining({ arn: `arn:aws:iam::${ACCOUNT}:user/creator-of-ami-newest` })],
      ['ami-mid', expect.objectContaining({ arn: `arn:aws:iam::${ACCOUNT}:user/creator-of-ami-mid` })],
    ]);
    expect(result.error).toBeUndefined();
    expect(paced.sentAt).toEqual([0, 500]);
  });

  it('makes no call when max is 0 or every image is tagged or too old', async () => {
    // Prepare
    answerPerImage();
    const images = [image('ami-old', 91), image('ami-tagged', 3, { [CREATED_BY]: 'arn:aws:iam::1:root' })];

    // Act
    const capped = await backfillCreators([image('ami-new', 1)], creatorLookup(), {
      max: 0,
      now: NOW,
      createdByTag: CREATED_BY,
      log,
    });
    const nothingToDo = await backfillCreators(images, creatorLookup(), {
      max: 10,
      now: NOW,
      createdByTag: CREATED_BY,
      log,
    });

    // Assess
    expect(cloudTrailMock).not.toHaveReceivedCommand(LookupEventsCommand);
    expect(capped).toMatchObject({ examined: 0, skipped: 0 });
    expect(nothingToDo).toMatchObject({ examined: 0, skipped: 1 });
    expect(nothingToDo.found.size).toBe(0);
  });

  it('counts requests, not images, against max', async () => {
    // Prepare: the first image's events span two pages.
    cloudTrailMock
      .on(LookupEventsCommand)
      .resolvesOnce({ Events: [], NextToken: 'more' })
      .resolves({ Events: [] });

    // Act
    const result = await backfillCreators(
      [image('ami-a', 1), image('ami-b', 2), image('ami-c', 3)],
      creatorLookup(),
      {
        max: 3,
        now: NOW,
        createdByTag: CREATED_BY,
        log,
      },
    );

    // Assess
    expect(lookedUp()).toEqual(['ami-a', 'ami-a', 'ami-b']);
    expect(result.examined).toBe(2);
    expect(paced.sentAt).toEqual([0, 500, 1000]);
  });

  it('stops at the first failed lookup and keeps what it found before', async () => {
    // Prepare
    answerPerImage();
    cloudTrailMock
      .on(LookupEventsCommand, {
        LookupAttributes: [{ AttributeKey: 'ResourceName', AttributeValue: 'ami-b' }],
      })
      .rejects(awsError('AccessDeniedException'));

    // Act
    const result = await backfillCreators(
      [image('ami-a', 1), image('ami-b', 2), image('ami-c', 3)],
      creatorLookup(),
      {
        max: 10,
        now: NOW,
        createdByTag: CREATED_BY,
        log,
      },
    );

    // Assess
    expect(lookedUp()).toEqual(['ami-a', 'ami-b']);
    expect([...result.found.keys()]).toEqual(['ami-a']);
    expect(result.error).toBeInstanceOf(CreatorLookupError);
    expect(log.warn).toHaveBeenCalledWith(
      'creator backfill stopped early',
      expect.objectContaining({ imageId: 'ami-b' }),
    );
  });
});
