import { readFileSync } from 'node:fs';
import type {
  DescribeLockedSnapshotsCommandOutput,
  DescribeSnapshotsCommandOutput,
  LockState,
} from '@aws-sdk/client-ec2';
import {
  DescribeLockedSnapshotsCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import type { AdapterDeps } from '../../src/adapters/common.ts';
import { createSnapshotInventory } from '../../src/adapters/snapshots.ts';
import { InventoryError } from '../../src/errors.ts';
import type { Snapshot } from '../../src/model.ts';
import { awsError, recordingLog, recordingSleep, unparseableServerError } from './aws-fakes.ts';

const ec2Mock = mockClient(EC2Client);
const ec2 = new EC2Client({});

const ACCOUNT = '111122223333';

/**
 * A recorded DescribeSnapshots page from test/fixtures/snapshots, parsed afresh on every call.
 * StartTime is revived into a Date, as the SDK's deserializer does; JSON can only hold the string.
 */
function snapshotsPage(page: number): DescribeSnapshotsCommandOutput {
  const text = readFileSync(
    new URL(`../fixtures/snapshots/describe-snapshots-page-${page}.json`, import.meta.url),
    'utf8',
  );
  return JSON.parse(text, (key, value: unknown) =>
    key === 'StartTime' && typeof value === 'string' ? new Date(value) : value,
  ) as DescribeSnapshotsCommandOutput;
}

function lockedPage(
  entries: readonly (readonly [string, LockState | undefined])[],
  NextToken?: string,
): DescribeLockedSnapshotsCommandOutput {
  return {
    $metadata: {},
    Snapshots: entries.map(([SnapshotId, LockState]) => ({ OwnerId: ACCOUNT, SnapshotId, LockState })),
    ...(NextToken ? { NextToken } : {}),
  };
}

let log: ReturnType<typeof recordingLog>;
let sleeper: ReturnType<typeof recordingSleep>;

function inventory(overrides: Partial<AdapterDeps> = {}) {
  return createSnapshotInventory({
    ec2,
    retry: { sleep: sleeper.sleep, maxAttempts: 3, random: () => 0.5 },
    log,
    ...overrides,
  });
}

beforeEach(() => {
  ec2Mock.reset();
  log = recordingLog();
  sleeper = recordingSleep();
});

describe('listOwnedSnapshots', () => {
  it('follows NextToken across three pages and maps every field', async () => {
    // Prepare
    const pages = [1, 2, 3].map(snapshotsPage);
    ec2Mock
      .on(DescribeSnapshotsCommand)
      .resolvesOnce(pages[0] ?? {})
      .resolvesOnce(pages[1] ?? {})
      .resolvesOnce(pages[2] ?? {});

    // Act
    const snapshots = await inventory().listOwnedSnapshots(ACCOUNT);

    // Assess
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeSnapshotsCommand, 3);
    const tokens = ec2Mock.commandCalls(DescribeSnapshotsCommand).map((c) => c.args[0].input.NextToken);
    expect(tokens).toEqual([undefined, pages[0]?.NextToken, pages[1]?.NextToken]);
    expect(snapshots).toEqual<Snapshot[]>([
      {
        snapshotId: 'snap-0a1b2c3d4e5f60001',
        ownerId: ACCOUNT,
        volumeId: 'vol-0a1b2c3d4e5f60001',
        volumeSizeGiB: 8,
        fullSizeBytes: 2147483648,
        startTime: new Date('2025-01-10T08:15:50.000Z'),
        description: 'Created by CreateImage(i-0a1b2c3d4e5f60001) for ami-0a1b2c3d4e5f60001',
        state: 'completed',
        tags: { Application: 'web', Owner: 'platform' },
        storageTier: 'standard',
      },
      {
        snapshotId: 'snap-0a1b2c3d4e5f60002',
        ownerId: ACCOUNT,
        volumeId: 'vol-ffffffff',
        volumeSizeGiB: 30,
        startTime: new Date('2025-02-01T10:00:05.000Z'),
        description:
          'Copied for DestinationAmi ami-0a1b2c3d4e5f60002 from SourceAmi ami-0f0e0d0c0b0a90001 for SourceSnapshot snap-0f0e0d0c0b0a90001. Task created on 1,738,404,000,000.',
        state: 'completed',
        tags: {},
        storageTier: 'standard',
      },
      {
        snapshotId: 'snap-0a1b2c3d4e5f60003',
        ownerId: ACCOUNT,
        volumeId: 'vol-0a1b2c3d4e5f60003',
        volumeSizeGiB: 100,
        startTime: new Date('2024-06-30T23:00:00.000Z'),
        description: 'nightly backup of the reporting database',
        state: 'completed',
        tags: { Name: 'reporting-db' },
        storageTier: 'archive',
      },
      {
        snapshotId: 'snap-0a1b2c3d4e5f60004',
        ownerId: ACCOUNT,
        volumeId: 'vol-0a1b2c3d4e5f60004',
        volumeSizeGiB: 16,
        startTime: new Date('2025-03-02T17:04:11.000Z'),
        description: '',
        state: 'pending',
        tags: {},
      },
    ]);
  });

  it('asks for its own snapshots with both OwnerIds=self and the owner-id filter', async () => {
    // Prepare
    ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });

    // Act
    await inventory().listOwnedSnapshots(ACCOUNT);

    // Assess
    const inputs = ec2Mock.commandCalls(DescribeSnapshotsCommand).map((c) => c.args[0].input);
    expect(inputs).toStrictEqual([
      {
        OwnerIds: ['self'],
        Filters: [{ Name: 'owner-id', Values: [ACCOUNT] }],
        MaxResults: 1000,
        NextToken: undefined,
      },
    ]);
  });

  it("drops another owner's snapshots when the endpoint ignores the owner", async () => {
    // Prepare: page 2 holds a public Amazon snapshot next to one of ours.
    ec2Mock.on(DescribeSnapshotsCommand).resolves({ ...snapshotsPage(2), NextToken: undefined });

    // Act
    const snapshots = await inventory().listOwnedSnapshots(ACCOUNT);

    // Assess
    expect(snapshots.map((s) => s.snapshotId)).toEqual(['snap-0a1b2c3d4e5f60003']);
  });

  it('retries throttling with backoff and then returns every page', async () => {
    // Prepare
    ec2Mock
      .on(DescribeSnapshotsCommand)
      .rejectsOnce(awsError('RequestLimitExceeded', 503))
      .resolvesOnce(snapshotsPage(3));

    // Act
    const snapshots = await inventory().listOwnedSnapshots(ACCOUNT);

    // Assess
    expect(snapshots.map((s) => s.snapshotId)).toEqual(['snap-0a1b2c3d4e5f60004']);
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeSnapshotsCommand, 2);
    expect(sleeper.delays).toEqual([100]);
  });

  it('throws an InventoryError that keeps the cause when the call is refused', async () => {
    // Prepare
    const refused = awsError('UnauthorizedOperation', 403);
    ec2Mock.on(DescribeSnapshotsCommand).rejects(refused);

    // Act
    const outcome = inventory().listOwnedSnapshots(ACCOUNT);

    // Assess
    await expect(outcome).rejects.toMatchObject({
      name: 'InventoryError',
      message: "cannot list the account's snapshots: UnauthorizedOperation",
      cause: refused,
    });
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeSnapshotsCommand, 1);
  });

  it('fails rather than loop when the same NextToken comes back twice', async () => {
    // Prepare
    ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [], NextToken: 'again' });

    // Act
    const outcome = inventory().listOwnedSnapshots(ACCOUNT);

    // Assess
    await expect(outcome).rejects.toThrow(InventoryError);
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeSnapshotsCommand, 2);
  });
});

describe('lockedSnapshotIds', () => {
  it('follows NextToken and counts every lock state but expired as locked', async () => {
    // Prepare
    ec2Mock
      .on(DescribeLockedSnapshotsCommand)
      .resolvesOnce(
        lockedPage(
          [
            ['snap-governance', 'governance'],
            ['snap-expired-1', 'expired'],
            ['snap-cooloff', 'compliance-cooloff'],
          ],
          'locked-page-2',
        ),
      )
      .resolvesOnce(
        lockedPage([
          ['snap-compliance', 'compliance'],
          ['snap-expired-2', 'expired'],
        ]),
      );

    // Act
    const locked = await inventory().lockedSnapshotIds();

    // Assess
    expect(locked).toEqual({
      supported: true,
      ids: new Set(['snap-governance', 'snap-cooloff', 'snap-compliance']),
    });
    const inputs = ec2Mock.commandCalls(DescribeLockedSnapshotsCommand).map((c) => c.args[0].input);
    expect(inputs).toStrictEqual([
      { MaxResults: 1000, NextToken: undefined },
      { MaxResults: 1000, NextToken: 'locked-page-2' },
    ]);
    expect(log.warn).not.toHaveBeenCalled();
  });

  it('reads a lock state it does not know, or none, as locked', async () => {
    // Prepare: a state EC2 might add later; only `expired` is known to release a snapshot.
    ec2Mock.on(DescribeLockedSnapshotsCommand).resolves(
      lockedPage([
        ['snap-new-state', 'legal-hold' as LockState],
        ['snap-no-state', undefined],
      ]),
    );

    // Act
    const locked = await inventory().lockedSnapshotIds();

    // Assess
    expect(locked.ids).toEqual(new Set(['snap-new-state', 'snap-no-state']));
  });

  it("reports the API unsupported on moto's HTML 500, warns once and does not ask again", async () => {
    // Prepare
    ec2Mock.on(DescribeLockedSnapshotsCommand).rejects(unparseableServerError());
    const subject = inventory({ retry: { sleep: sleeper.sleep, maxAttempts: 1 } });

    // Act
    const first = await subject.lockedSnapshotIds();
    const second = await subject.lockedSnapshotIds();

    // Assess
    expect(first).toEqual({ supported: false, ids: new Set() });
    expect(second).toEqual({ supported: false, ids: new Set() });
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeLockedSnapshotsCommand, 1);
    expect(log.warn).toHaveBeenCalledTimes(1);
  });

  it.each(['InvalidAction', 'UnsupportedOperation'])('reports the API unsupported on %s', async (code) => {
    // Prepare
    ec2Mock.on(DescribeLockedSnapshotsCommand).rejects(awsError(code, 400));

    // Act
    const locked = await inventory().lockedSnapshotIds();

    // Assess
    expect(locked).toEqual({ supported: false, ids: new Set() });
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeLockedSnapshotsCommand, 1);
    expect(log.warn).toHaveBeenCalledTimes(1);
  });

  it.each([
    ['AccessDenied', 403],
    ['UnauthorizedOperation', 403],
  ])(
    'throws an InventoryError on %s: locks we may not read are unknown, not absent',
    async (code, status) => {
      // Prepare
      const refused = awsError(code, status);
      ec2Mock.on(DescribeLockedSnapshotsCommand).rejects(refused);

      // Act
      const outcome = inventory().lockedSnapshotIds();

      // Assess
      await expect(outcome).rejects.toMatchObject({
        name: 'InventoryError',
        message: `cannot list locked snapshots: ${code}`,
        cause: refused,
      });
      expect(log.warn).not.toHaveBeenCalled();
    },
  );

  it('retries throttling with backoff and then returns the locks', async () => {
    // Prepare
    ec2Mock
      .on(DescribeLockedSnapshotsCommand)
      .rejectsOnce(awsError('RequestLimitExceeded', 503))
      .rejectsOnce(awsError('RequestLimitExceeded', 503))
      .resolvesOnce(lockedPage([['snap-governance', 'governance']]));

    // Act
    const locked = await inventory().lockedSnapshotIds();

    // Assess
    expect(locked).toEqual({ supported: true, ids: new Set(['snap-governance']) });
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeLockedSnapshotsCommand, 3);
    expect(sleeper.delays).toEqual([100, 200]);
  });

  it('throws an InventoryError when throttling outlives every retry', async () => {
    // Prepare
    ec2Mock.on(DescribeLockedSnapshotsCommand).rejects(awsError('RequestLimitExceeded', 503));

    // Act
    const outcome = inventory().lockedSnapshotIds();

    // Assess
    await expect(outcome).rejects.toThrow(InventoryError);
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeLockedSnapshotsCommand, 3);
    expect(log.warn).not.toHaveBeenCalled();
  });

  it('throws an InventoryError on a 5xx that carries an AWS error code', async () => {
    // Prepare
    ec2Mock.on(DescribeLockedSnapshotsCommand).rejects(awsError('InternalError', 500));

    // Act
    const outcome = inventory().lockedSnapshotIds();

    // Assess
    await expect(outcome).rejects.toThrow('cannot list locked snapshots: InternalError');
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeLockedSnapshotsCommand, 3);
  });

  it('throws an InventoryError when a later page fails, since the API plainly exists', async () => {
    // Prepare
    ec2Mock
      .on(DescribeLockedSnapshotsCommand)
      .resolvesOnce(lockedPage([['snap-governance', 'governance']], 'locked-page-2'))
      .rejects(unparseableServerError());

    // Act
    const outcome = inventory({ retry: { sleep: sleeper.sleep, maxAttempts: 1 } }).lockedSnapshotIds();

    // Assess
    await expect(outcome).rejects.toThrow(InventoryError);
    expect(log.warn).not.toHaveBeenCalled();
  });
});

describe('existingVolumeIds', () => {
  it('follows NextToken across pages and collects every volume id', async () => {
    // Prepare
    ec2Mock
      .on(DescribeVolumesCommand)
      .resolvesOnce({ Volumes: [{ VolumeId: 'vol-1' }, { VolumeId: 'vol-2' }], NextToken: 'volumes-2' })
      .resolvesOnce({ Volumes: [{ VolumeId: 'vol-3' }], NextToken: 'volumes-3' })
      .resolvesOnce({ Volumes: [{ VolumeId: 'vol-4' }, {}] });

    // Act
    const volumes = await inventory().existingVolumeIds();

    // Assess
    expect(volumes).toEqual(new Set(['vol-1', 'vol-2', 'vol-3', 'vol-4']));
    const inputs = ec2Mock.commandCalls(DescribeVolumesCommand).map((c) => c.args[0].input);
    expect(inputs).toStrictEqual([
      { MaxResults: 500, NextToken: undefined },
      { MaxResults: 500, NextToken: 'volumes-2' },
      { MaxResults: 500, NextToken: 'volumes-3' },
    ]);
  });

  it('throws an InventoryError that keeps the cause when volumes cannot be listed', async () => {
    // Prepare
    const refused = awsError('UnauthorizedOperation', 403);
    ec2Mock.on(DescribeVolumesCommand).rejects(refused);

    // Act
    const outcome = inventory().existingVolumeIds();

    // Assess
    await expect(outcome).rejects.toMatchObject({
      name: 'InventoryError',
      message: "cannot list the account's volumes: UnauthorizedOperation",
      cause: refused,
    });
  });
});
