import {
  DisableImageCommand,
  EC2Client,
  EnableImageCommand,
  ModifySnapshotTierCommand,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { type AdapterDeps, createImageActions } from '../../src/adapters/ec2.ts';
import { rateLimitFor } from '../../src/adapters/limiter.ts';
import { operationKind } from '../../src/adapters/retry.ts';
import { createSnapshotPorts } from '../../src/adapters/snapshots.ts';
import { OutcomeUnknownError } from '../../src/errors.ts';
import { awsError, recordingLog, recordingSleep, unparseableServerError } from './aws-fakes.ts';

/** The optional removal steps: disabling an image, enabling it again, archiving a snapshot. */

const ec2Mock = mockClient(EC2Client);
const ec2 = new EC2Client({});

const IMAGE = 'ami-0a1b2c3d4e5f60001';
const SNAPSHOT = 'snap-0a1b2c3d4e5f60001';

let sleeper: ReturnType<typeof recordingSleep>;

function deps(): AdapterDeps {
  return { ec2, retry: { sleep: sleeper.sleep, maxAttempts: 4, random: () => 0.5 }, log: recordingLog() };
}

const timedOut = () => Object.assign(new Error('socket hang up'), { name: 'TimeoutError' });

beforeEach(() => {
  ec2Mock.reset();
  sleeper = recordingSleep();
});

describe('disableImage and enableImage', () => {
  it('sends DisableImage and EnableImage for the image', async () => {
    // Prepare
    ec2Mock.on(DisableImageCommand).resolves({ Return: true });
    ec2Mock.on(EnableImageCommand).resolves({ Return: true });
    const actions = createImageActions(deps());

    // Act
    await actions.disableImage?.(IMAGE);
    await actions.enableImage?.(IMAGE);

    // Assess
    expect(ec2Mock).toHaveReceivedCommandExactlyOnceWith(DisableImageCommand, { ImageId: IMAGE });
    expect(ec2Mock).toHaveReceivedCommandExactlyOnceWith(EnableImageCommand, { ImageId: IMAGE });
  });

  it.each([
    { operation: 'DisableImage', command: DisableImageCommand },
    { operation: 'EnableImage', command: EnableImageCommand },
  ] as const)(
    'reports an unanswered $operation as outcome unknown, sent once',
    async ({ operation, command }) => {
      // Prepare
      const cause = timedOut();
      ec2Mock.on(command).rejects(cause);
      const actions = createImageActions(deps());

      // Act
      const sent =
        operation === 'DisableImage' ? actions.disableImage?.(IMAGE) : actions.enableImage?.(IMAGE);

      // Assess
      await expect(sent).rejects.toSatisfy(
        (error) =>
          error instanceof OutcomeUnknownError && error.operation === operation && error.cause === cause,
      );
      expect(ec2Mock).toHaveReceivedCommandTimes(command, 1);
    },
  );

  it('retries a throttled DisableImage, which certainly did nothing', async () => {
    // Prepare
    ec2Mock
      .on(DisableImageCommand)
      .rejectsOnce(awsError('RequestLimitExceeded', 503))
      .resolves({ Return: true });

    // Act
    await createImageActions(deps()).disableImage?.(IMAGE);

    // Assess
    expect(ec2Mock).toHaveReceivedCommandTimes(DisableImageCommand, 2);
    expect(sleeper.delays).toEqual([100]);
  });

  it('lets a refusal through unchanged, for the executor to report', async () => {
    // Prepare
    ec2Mock.on(DisableImageCommand).rejects(awsError('InvalidAMIID.NotFound'));

    // Act
    const sent = createImageActions(deps()).disableImage?.(IMAGE);

    // Assess
    await expect(sent).rejects.toMatchObject({ name: 'InvalidAMIID.NotFound' });
    expect(ec2Mock).toHaveReceivedCommandTimes(DisableImageCommand, 1);
  });
});

describe('archiveSnapshot', () => {
  it('moves the snapshot to the archive tier with ModifySnapshotTier', async () => {
    // Prepare
    ec2Mock.on(ModifySnapshotTierCommand).resolves({ SnapshotId: SNAPSHOT, TieringStartTime: new Date() });
    const ports = createSnapshotPorts(deps());

    // Act
    await ports.actions.archiveSnapshot?.(SNAPSHOT);

    // Assess
    expect(ec2Mock).toHaveReceivedCommandExactlyOnceWith(ModifySnapshotTierCommand, {
      SnapshotId: SNAPSHOT,
      StorageTier: 'archive',
    });
  });

  it.each([
    { case: 'a timeout', error: timedOut },
    { case: 'an HTML 500', error: unparseableServerError },
  ])('reports an archive answered by $case as outcome unknown, sent once', async ({ error }) => {
    // Prepare
    ec2Mock.on(ModifySnapshotTierCommand).rejects(error());
    const ports = createSnapshotPorts(deps());

    // Act
    const sent = ports.actions.archiveSnapshot?.(SNAPSHOT);

    // Assess
    await expect(sent).rejects.toSatisfy(
      (thrown) => thrown instanceof OutcomeUnknownError && thrown.operation === 'ModifySnapshotTier',
    );
    expect(ec2Mock).toHaveReceivedCommandTimes(ModifySnapshotTierCommand, 1);
  });
});

describe('how the new calls are retried and paced', () => {
  it('resends CreateImageUsageReport after a lost answer, since its ClientToken makes a resend safe', () => {
    expect(operationKind('CreateImageUsageReport')).toBe('idempotent-write');
  });

  it.each([
    // EC2's mutating-actions bucket, as AWS documents it.
    ['DisableImage', 50, 5],
    ['EnableImage', 50, 5],
    ['ModifySnapshotTier', 50, 5],
    ['CreateImageUsageReport', 50, 5],
    ['ListImagesInRecycleBin', 100, 20],
    ['ListRules', 100, 20],
  ])('paces %s at a bucket of %i refilled %i a second', (operation, bucket, refillPerSecond) => {
    expect(rateLimitFor(operation)).toEqual({ bucket, refillPerSecond });
  });
});
