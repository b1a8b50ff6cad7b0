import type {
  DescribeImagesCommandInput,
  DescribeImagesCommandOutput,
  Image as Ec2Image,
} from '@aws-sdk/client-ec2';
import {
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeleteTagsCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DisableImageDeprecationCommand,
  EC2Client,
  EnableImageDeprecationCommand,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { type AdapterDeps, createImageActions } from '../../src/adapters/ec2.ts';
import { ApiLimiter } from '../../src/adapters/limiter.ts';
import { awsError, ec2Fixture, recordingLog, recordingSleep } from './aws-fakes.ts';

const ec2Mock = mockClient(EC2Client);
const ec2 = new EC2Client({});

let sleeper: ReturnType<typeof recordingSleep>;

function actions(overrides: Partial<AdapterDeps> = {}) {
  return createImageActions({
    ec2,
    retry: { sleep: sleeper.sleep, maxAttempts: 4, random: () => 0.5 },
    log: recordingLog(),
    ...overrides,
  });
}

/** The images of the recorded DescribeImages pages, keyed by id, as DescribeImages by id returns them. */
function recordedImages(): Map<string, Ec2Image> {
  const pages = [1, 2, 3].map((n) => ec2Fixture<DescribeImagesCommandOutput>(`describe-images-page-${n}`));
  return new Map(pages.flatMap((page) => page.Images ?? []).map((image) => [image.ImageId ?? '', image]));
}

beforeEach(() => {
  ec2Mock.reset();
  sleeper = recordingSleep();
});

describe('describeImages', () => {
  it('re-reads images by an image-id filter, deprecated and disabled ones included, mapping deregistration protection', async () => {
    // Prepare
    const recorded = recordedImages();
    ec2Mock.on(DescribeImagesCommand).resolves({
      Images: [recorded.get('ami-0a1b2c3d4e5f60002') ?? {}, recorded.get('ami-0a1b2c3d4e5f60004') ?? {}],
    });

    // Act
    const images = await actions().describeImages(['ami-0a1b2c3d4e5f60002', 'ami-0a1b2c3d4e5f60004']);

    // Assess
    expect(ec2Mock).toHaveReceivedCommandExactlyOnceWith(DescribeImagesCommand, {
      Filters: [{ Name: 'image-id', Values: ['ami-0a1b2c3d4e5f60002', 'ami-0a1b2c3d4e5f60004'] }],
      IncludeDeprecated: true,
      IncludeDisabled: true,
    });
    expect(images.map((image) => [image.imageId, image.deregistrationProtection, image.state])).toEqual([
      ['ami-0a1b2c3d4e5f60002', 'enabled-with-cooldown', 'available'],
      ['ami-0a1b2c3d4e5f60004', undefined, 'disabled'],
    ]);
  });

  it('leaves out an id that no longer exists, in the same single call', async () => {
    // Prepare: a filter, unlike ImageIds, does not fail for an unknown id.
    const recorded = recordedImages();
    const gone = 'ami-0ffffffffffffffff';
    ec2Mock.on(DescribeImagesCommand).callsFake((input: DescribeImagesCommandInput) => {
      const ids = input.Filters?.[0]?.Values ?? [];
      return {
        Images: ids.flatMap((id) => (recorded.has(id) ? [structuredClone(recorded.get(id) ?? {})] : [])),
      };
    });

    // Act
    const images = await actions().describeImages(['ami-0a1b2c3d4e5f60001', gone, 'ami-0a1b2c3d4e5f60003']);

    // Assess
    expect(images.map((image) => image.imageId)).toEqual(['ami-0a1b2c3d4e5f60001', 'ami-0a1b2c3d4e5f60003']);
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeImagesCommand, 1);
  });

  it('asks in chunks of 200 ids, the most one filter takes, and makes no call for none', async () => {
    // Prepare
    const ids = Array.from({ length: 450 }, (_, index) => `ami-${index.toString(16).padStart(17, '0')}`);
    ec2Mock.on(DescribeImagesCommand).resolves({ Images: [] });

    // Act
    await actions().describeImages(ids);
    await actions().describeImages([]);

    // Assess
    const sizes = ec2Mock
      .commandCalls(DescribeImagesCommand)
      .map((call) => call.args[0].input.Filters?.[0]?.Values?.length);
    expect(sizes).toEqual([200, 200, 50]);
  });

  it('lets any other error through unchanged', async () => {
    // Prepare
    const denied = awsError('UnauthorizedOperation', 403);
    ec2Mock.on(DescribeImagesCommand).rejects(denied);

    // Act
    const outcome = actions().describeImages(['ami-0a1b2c3d4e5f60001']);

    // Assess
    await expect(outcome).rejects.toBe(denied);
  });
});

describe('tags and deprecation', () => {
  it('tags an image with CreateTags', async () => {
    // Prepare
    ec2Mock.on(CreateTagsCommand).resolves({});

    // Act
    await actions().tagImage('ami-0a1b2c3d4e5f60001', {
      'ami-janitor:marked-at': '2025-06-01T00:00:00.000Z',
      'ami-janitor:remove-after': '2025-06-08',
    });

    // Assess
    expect(ec2Mock).toHaveReceivedCommandExactlyOnceWith(CreateTagsCommand, {
      Resources: ['ami-0a1b2c3d4e5f60001'],
      Tags: [
        { Key: 'ami-janitor:marked-at', Value: '2025-06-01T00:00:00.000Z' },
        { Key: 'ami-janitor:remove-after', Value: '2025-06-08' },
      ],
    });
  });

  it('removes tags by key only, so whatever their value they go', async () => {
    // Prepare
    ec2Mock.on(DeleteTagsCommand).resolves({});

    // Act
    await actions().untagImage('ami-0a1b2c3d4e5f60001', ['ami-janitor:marked-at']);

    // Assess
    expect(ec2Mock).toHaveReceivedCommandExactlyOnceWith(DeleteTagsCommand, {
      Resources: ['ami-0a1b2c3d4e5f60001'],
      Tags: [{ Key: 'ami-janitor:marked-at' }],
    });
  });

  it('never sends DeleteTags without keys, which would delete every tag', async () => {
    // Act
    await actions().untagImage('ami-0a1b2c3d4e5f60001', []);
    await actions().tagImage('ami-0a1b2c3d4e5f60001', {});

    // Assess
    expect(ec2Mock).not.toHaveReceivedAnyCommand();
  });

  it('enables and disables deprecation', async () => {
    // Prepare
    ec2Mock.on(EnableImageDeprecationCommand).resolves({ Return: true });
    ec2Mock.on(DisableImageDeprecationCommand).resolves({ Return: true });
    const at = new Date('2025-06-08T00:00:00.000Z');

    // Act
    await actions().enableDeprecation('ami-0a1b2c3d4e5f60001', at);
    await actions().disableDeprecation('ami-0a1b2c3d4e5f60002');

    // Assess
    expect(ec2Mock).toHaveReceivedCommandWith(EnableImageDeprecationCommand, {
      ImageId: 'ami-0a1b2c3d4e5f60001',
      DeprecateAt: at,
    });
    expect(ec2Mock).toHaveReceivedCommandWith(DisableImageDeprecationCommand, {
      ImageId: 'ami-0a1b2c3d4e5f60002',
    });
  });

  it('retries a throttled CreateTags (10/s bucket) and passes the abort signal to every send', async () => {
    // Prepare
    const controller = new AbortController();
    ec2Mock
      .on(CreateTagsCommand)
      .rejectsOnce(awsError('RequestLimitExceeded', 503))
      .rejectsOnce(awsError('RequestLimitExceeded', 503))
      .resolves({});

    // Act
    await actions({ signal: controller.signal }).tagImage('ami-0a1b2c3d4e5f60001', { a: 'b' });

    // Assess
    expect(ec2Mock).toHaveReceivedCommandTimes(CreateTagsCommand, 3);
    expect(sleeper.delays).toEqual([100, 200]);
    for (const call of ec2Mock.commandCalls(CreateTagsCommand)) {
      // The SDK's types list only the command, but send() receives the options as its second argument.
      expect((call.args as unknown[])[1]).toEqual({ abortSignal: controller.signal });
    }
  });
});

describe('deregisterImage', () => {
  it('asks for DeleteAssociatedSnapshots and maps each snapshot result', async () => {
    // Prepare
    ec2Mock.on(DeregisterImageCommand).resolves({
      Return: true,
      DeleteSnapshotResults: [
        { SnapshotId: 'snap-0a1b2c3d4e5f60002', ReturnCode: 'success' },
        { SnapshotId: 'snap-0a1b2c3d4e5f60003', ReturnCode: 'skipped' },
        { SnapshotId: 'snap-0a1b2c3d4e5f60009', ReturnCode: 'missing-permissions' },
      ],
    });

    // Act
    const result = await actions().deregisterImage('ami-0a1b2c3d4e5f60002', {
      deleteAssociatedSnapshots: true,
    });

    // Assess
    expect(ec2Mock).toHaveReceivedCommandExactlyOnceWith(DeregisterImageCommand, {
      ImageId: 'ami-0a1b2c3d4e5f60002',
      DeleteAssociatedSnapshots: true,
    });
    expect(result).toEqual({
      snapshotResults: [
        { snapshotId: 'snap-0a1b2c3d4e5f60002', returnCode: 'success' },
        { snapshotId: 'snap-0a1b2c3d4e5f60003', returnCode: 'skipped' },
        { snapshotId: 'snap-0a1b2c3d4e5f60009', returnCode: 'missing-permissions' },
      ],
    });
  });

  it('leaves DeleteAssociatedSnapshots out when snapshots are to be kept', async () => {
    // Prepare
    ec2Mock.on(DeregisterImageCommand).resolves({ Return: true });

    // Act
    const result = await actions().deregisterImage('ami-0a1b2c3d4e5f60001', {
      deleteAssociatedSnapshots: false,
    });

    // Assess
    expect(ec2Mock.commandCalls(DeregisterImageCommand)[0]?.args[0].input).toEqual({
      ImageId: 'ami-0a1b2c3d4e5f60001',
    });
    expect(result).toEqual({});
  });

  it('reports no snapshot results when the API ignored the flag, as moto does', async () => {
    // Prepare
    ec2Mock.on(DeregisterImageCommand).resolves({ Return: true });

    // Act
    const result = await actions().deregisterImage('ami-0a1b2c3d4e5f60001', {
      deleteAssociatedSnapshots: true,
    });

    // Assess
    expect(result).toEqual({});
    expect(result.snapshotResults).toBeUndefined();
  });

  it.each(['InvalidAMIID.Unavailable', 'InvalidAMIID.NotFound'])(
    'throws %s unchanged and unretried: the executor decides it means "already gone"',
    async (code) => {
      // Prepare
      const error = awsError(code, 400);
      ec2Mock.on(DeregisterImageCommand).rejects(error);

      // Act
      const outcome = actions().deregisterImage('ami-0a1b2c3d4e5f60001', { deleteAssociatedSnapshots: true });

      // Assess
      await expect(outcome).rejects.toBe(error);
      expect(ec2Mock).toHaveReceivedCommandTimes(DeregisterImageCommand, 1);
      expect(sleeper.delays).toEqual([]);
    },
  );
});

describe('deleteSnapshot', () => {
  it('deletes the snapshot', async () => {
    // Prepare
    ec2Mock.on(DeleteSnapshotCommand).resolves({});

    // Act
    await actions().deleteSnapshot('snap-0a1b2c3d4e5f60004');

    // Assess
    expect(ec2Mock).toHaveReceivedCommandExactlyOnceWith(DeleteSnapshotCommand, {
      SnapshotId: 'snap-0a1b2c3d4e5f60004',
    });
  });

  it('throws InvalidSnapshot.InUse unchanged for the executor to skip with a reason', async () => {
    // Prepare
    const inUse = awsError(
      'InvalidSnapshot.InUse',
      400,
      'The snapshot is currently in use by ami-0a1b2c3d4e5f60003',
    );
    ec2Mock.on(DeleteSnapshotCommand).rejects(inUse);

    // Act
    const outcome = actions().deleteSnapshot('snap-0a1b2c3d4e5f60004');

    // Assess
    await expect(outcome).rejects.toBe(inUse);
  });

  it('gives up on a throttled DeleteSnapshot after the configured attempts', async () => {
    // Prepare
    ec2Mock.on(DeleteSnapshotCommand).rejects(awsError('RequestLimitExceeded', 503));

    // Act
    const outcome = actions().deleteSnapshot('snap-0a1b2c3d4e5f60004');

    // Assess
    await expect(outcome).rejects.toMatchObject({ name: 'RequestLimitExceeded' });
    expect(ec2Mock).toHaveReceivedCommandTimes(DeleteSnapshotCommand, 4);
    expect(sleeper.delays).toEqual([100, 200, 400]);
  });
});

describe('deregistrationsPerSecond', () => {
  it('is the pace the limiter holds DeregisterImage to, at its headroom', () => {
    // Act
    const actions = createImageActions({ limiter: new ApiLimiter({ headroom: 0.5 }) });

    // Assess: 5 per second, EC2's refill, at half of it.
    expect(actions.deregistrationsPerSecond).toBe(2.5);
  });
});
