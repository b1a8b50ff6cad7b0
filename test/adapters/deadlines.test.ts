import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  DescribeLaunchConfigurationsCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImageReferencesCommand,
  DescribeInstancesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeLockedSnapshotsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { DescribeParametersCommand, SSMClient } from '@aws-sdk/client-ssm';
import { STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { makeCall } from '../../src/adapters/common.ts';
import { createImageActions, createInventory } from '../../src/adapters/ec2.ts';
import { ApiLimiter } from '../../src/adapters/limiter.ts';
import { CallDeadlineError } from '../../src/adapters/retry.ts';
import { createSnapshotInventory } from '../../src/adapters/snapshots.ts';
import { InventoryError, OutcomeUnknownError } from '../../src/errors.ts';
import type { Image } from '../../src/model.ts';
import { awsError, recordingLog, recordingSleep, unparseableServerError } from './aws-fakes.ts';

/**
 * The adapters under the deadline and write rules of withRetry: what a silent endpoint, a reset
 * connection or an emulator's HTML 500 turns into at each port.
 */

const ec2Mock = mockClient(EC2Client);
const autoScalingMock = mockClient(AutoScalingClient);
const ssmMock = mockClient(SSMClient);

const clients = {
  ec2: new EC2Client({}),
  autoScaling: new AutoScalingClient({}),
  ssm: new SSMClient({}),
  sts: new STSClient({}),
};

const IMAGE: Image = {
  imageId: 'ami-0a1b2c3d4e5f60001',
  name: 'web',
  ownerId: '111122223333',
  state: 'available',
  creationDate: new Date('2025-01-01T00:00:00Z'),
  public: false,
  tags: {},
  snapshotIds: [],
};

function requestTimeout(): Error {
  return Object.assign(new Error('a request has exceeded the configured 12000 ms requestTimeout.'), {
    name: 'TimeoutError',
    code: 'ETIMEDOUT',
  });
}

let sleeper: ReturnType<typeof recordingSleep>;
let log: ReturnType<typeof recordingLog>;

beforeEach(() => {
  ec2Mock.reset();
  autoScalingMock.reset();
  ssmMock.reset();
  sleeper = recordingSleep();
  log = recordingLog();
  ec2Mock.on(DescribeLaunchTemplatesCommand).resolves({ LaunchTemplates: [] });
  ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [] });
  ssmMock.on(DescribeParametersCommand).resolves({ Parameters: [] });
  autoScalingMock.on(DescribeAutoScalingGroupsCommand).resolves({ AutoScalingGroups: [] });
  autoScalingMock.on(DescribeLaunchConfigurationsCommand).resolves({ LaunchConfigurations: [] });
});

describe('makeCall', () => {
  it("sends with the caller's own signal, waits for its token with it, and stops retrying at the deadline", async () => {
    // Prepare
    const controller = new AbortController();
    const limiter = new ApiLimiter();
    const acquire = vi.spyOn(limiter, 'acquire');
    const sent: unknown[] = [];
    const failure = awsError('InternalError', 500);
    const call = makeCall({
      signal: controller.signal,
      limiter,
      retry: { sleep: sleeper.sleep, random: () => 0, deadlineMs: 40 },
      log,
    });

    // Act
    const outcome = call('DescribeImages', async (options) => {
      sent.push(options);
      await new Promise((resolve) => setTimeout(resolve, 50));
      throw failure;
    });

    // Assess
    await expect(outcome).rejects.toSatisfy(
      (error) => error instanceof CallDeadlineError && error.cause === failure,
    );
    expect(sent).toEqual([{ abortSignal: controller.signal }]);
    expect((sent[0] as { abortSignal: AbortSignal }).abortSignal).toBe(controller.signal);
    expect(acquire).toHaveBeenCalledWith('DescribeImages', controller.signal);
  });
});

describe('non-idempotent writes', () => {
  it('reports a DeregisterImage that timed out as outcome unknown, sent once', async () => {
    // Prepare
    const timeout = requestTimeout();
    ec2Mock.on(DeregisterImageCommand).rejects(timeout);
    const actions = createImageActions({ ec2: clients.ec2, retry: { sleep: sleeper.sleep }, log });

    // Act
    const outcome = actions.deregisterImage(IMAGE.imageId, { deleteAssociatedSnapshots: true });

    // Assess
    await expect(outcome).rejects.toSatisfy(
      (error) =>
        error instanceof OutcomeUnknownError &&
        error.operation === 'DeregisterImage' &&
        error.cause === timeout,
    );
    expect(ec2Mock).toHaveReceivedCommandTimes(DeregisterImageCommand, 1);
  });

  it('reports a DeleteSnapshot answered by a 500 as outcome unknown, sent once', async () => {
    // Prepare
    ec2Mock.on(DeleteSnapshotCommand).rejects(awsError('InternalError', 500));
    const actions = createImageActions({ ec2: clients.ec2, retry: { sleep: sleeper.sleep }, log });

    // Act
    const outcome = actions.deleteSnapshot('snap-0a1b2c3d4e5f60001');

    // Assess
    await expect(outcome).rejects.toBeInstanceOf(OutcomeUnknownError);
    expect(ec2Mock).toHaveReceivedCommandTimes(DeleteSnapshotCommand, 1);
  });
});

describe('an endpoint without the action', () => {
  it('falls back from DescribeImageReferences on the first HTML 500, without retrying it', async () => {
    // Prepare
    ec2Mock.on(DescribeImageReferencesCommand).rejects(unparseableServerError());
    const inventory = createInventory({
      ...clients,
      launchTemplateVersions: 3,
      retry: { sleep: sleeper.sleep, maxAttempts: 8 },
      log,
    });

    // Act
    await inventory.findReferences([IMAGE]);

    // Assess
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeImageReferencesCommand, 1);
    expect(sleeper.delays).toEqual([]);
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeInstancesCommand, 1);
  });

  it('reads DescribeLockedSnapshots as unsupported on the first HTML 500, without retrying it', async () => {
    // Prepare
    ec2Mock.on(DescribeLockedSnapshotsCommand).rejects(unparseableServerError());
    const inventory = createSnapshotInventory({
      ec2: clients.ec2,
      retry: { sleep: sleeper.sleep, maxAttempts: 8 },
      log,
    });

    // Act
    const locked = await inventory.lockedSnapshotIds();

    // Assess
    expect(locked.supported).toBe(false);
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeLockedSnapshotsCommand, 1);
    expect(sleeper.delays).toEqual([]);
  });
});

describe('an endpoint that does not answer', () => {
  it.each([
    ['times out twice', requestTimeout()],
    ['keeps answering 503', awsError('ServiceUnavailable', 503)],
  ])(
    'stops the run when DescribeImageReferences %s, instead of enumerating against it',
    async (_label, failure) => {
      // Prepare
      ec2Mock.on(DescribeImageReferencesCommand).rejects(failure);
      const inventory = createInventory({
        ...clients,
        launchTemplateVersions: 3,
        retry: { sleep: sleeper.sleep, maxAttempts: 3 },
        log,
      });

      // Act
      const outcome = inventory.findReferences([IMAGE]);

      // Assess
      await expect(outcome).rejects.toBeInstanceOf(InventoryError);
      expect(ec2Mock).toHaveReceivedCommandTimes(DescribeInstancesCommand, 0);
      expect(log.warn).not.toHaveBeenCalled();
    },
  );
});
