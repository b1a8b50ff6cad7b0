import { describe, expect, it } from 'vitest';
import { MemoryAccount, type MemoryAccountSeed } from '../../src/demo/memory-account.ts';
import { UnsupportedApiError } from '../../src/errors.ts';
import type { Image, RetentionRule } from '../../src/model.ts';

/**
 * The in-memory account behind the usage, Recycle Bin and lifecycle ports, as the core's tests and
 * the demo use it: it must behave like the adapters where the core depends on it.
 */

const ACCOUNT = '111122223333';
const NOW = new Date('2026-06-15T12:00:00Z');
const DAY_MS = 86_400_000;

function image(overrides: Partial<Image> = {}): Image {
  return {
    imageId: 'ami-0a1b2c3d4e5f60001',
    name: 'web-2025-01',
    ownerId: ACCOUNT,
    state: 'available',
    creationDate: new Date('2025-01-01T00:00:00Z'),
    public: false,
    tags: {},
    snapshotIds: ['snap-0a1b2c3d4e5f60001'],
    ...overrides,
  };
}

function account(seed: Partial<MemoryAccountSeed> = {}): MemoryAccount {
  return new MemoryAccount({ accountId: ACCOUNT, images: [image()], now: NOW, ...seed });
}

function rule(overrides: Partial<RetentionRule>): RetentionRule {
  return {
    identifier: 'rule0000001',
    resourceType: 'EC2_IMAGE',
    retentionDays: 7,
    resourceTags: [],
    excludeTags: [],
    status: 'available',
    ...overrides,
  };
}

describe('disableImage, enableImage and archiveSnapshot', () => {
  it('disables and enables an image, recorded like any mutation', async () => {
    // Prepare
    const memory = account();

    // Act
    await memory.disableImage('ami-0a1b2c3d4e5f60001');
    const disabled = (await memory.describeImages(['ami-0a1b2c3d4e5f60001']))[0]?.state;
    await memory.enableImage('ami-0a1b2c3d4e5f60001');
    const enabled = (await memory.describeImages(['ami-0a1b2c3d4e5f60001']))[0]?.state;

    // Assess
    expect([disabled, enabled]).toEqual(['disabled', 'available']);
    expect(memory.calls).toEqual(['disableImage ami-0a1b2c3d4e5f60001', 'enableImage ami-0a1b2c3d4e5f60001']);
  });

  it('drops every launch permission on disable and does not bring them back on enable, as EC2 does', async () => {
    // Prepare
    const memory = account({
      images: [image({ public: true })],
      sharing: {
        'ami-0a1b2c3d4e5f60001': {
          public: true,
          accounts: ['444455556666'],
          organizations: [],
          organizationalUnits: [],
        },
      },
    });

    // Act
    await memory.disableImage('ami-0a1b2c3d4e5f60001');
    await memory.enableImage('ami-0a1b2c3d4e5f60001');

    // Assess
    expect(await memory.launchPermissions('ami-0a1b2c3d4e5f60001')).toEqual({
      public: false,
      accounts: [],
      organizations: [],
      organizationalUnits: [],
    });
    expect((await memory.describeImages(['ami-0a1b2c3d4e5f60001']))[0]?.public).toBe(false);
  });

  it('keeps the snapshots of a disabled image in use, so they cannot be deleted', async () => {
    // Prepare
    const memory = account();
    await memory.disableImage('ami-0a1b2c3d4e5f60001');

    // Act
    const deletion = memory.deleteSnapshot('snap-0a1b2c3d4e5f60001');

    // Assess
    await expect(deletion).rejects.toMatchObject({ name: 'InvalidSnapshot.InUse' });
  });

  it('archives a snapshot, recorded, and refuses one that does not exist', async () => {
    // Prepare
    const memory = account();

    // Act
    await memory.archiveSnapshot('snap-0a1b2c3d4e5f60001');
    const missing = memory.archiveSnapshot('snap-0ffffffffffffffff');

    // Assess
    await expect(missing).rejects.toMatchObject({ name: 'InvalidSnapshot.NotFound' });
    expect((await memory.describeSnapshots(['snap-0a1b2c3d4e5f60001']))[0]?.storageTier).toBe('archive');
    expect(memory.calls).toEqual([
      'archiveSnapshot snap-0a1b2c3d4e5f60001',
      'archiveSnapshot snap-0ffffffffffffffff',
    ]);
  });

  it('refuses a disable on an image that does not exist with EC2 code', async () => {
    // Act
    const disabled = account().disableImage('ami-0ffffffffffffffff');

    // Assess
    await expect(disabled).rejects.toMatchObject({ name: 'InvalidAMIID.NotFound' });
  });
});

describe('usage reports', () => {
  it('creates a pending report dated by the account clock, and shows entries once a test completes it', async () => {
    // Prepare
    const memory = account();

    // Act
    const reportId = await memory.createUsageReport('ami-0a1b2c3d4e5f60001');
    const pending = await memory.usageReport('ami-0a1b2c3d4e5f60001', reportId);
    const stored = memory.usageReports.get(reportId);
    if (stored) {
      stored.state = 'available';
      stored.entries = [{ accountId: '444455556666', resourceType: 'ec2:Instance', usageCount: 2 }];
    }
    const complete = await memory.usageReport('ami-0a1b2c3d4e5f60001', reportId);

    // Assess
    expect(pending).toEqual({
      reportId,
      imageId: 'ami-0a1b2c3d4e5f60001',
      state: 'pending',
      createdAt: NOW,
      entries: [],
    });
    expect(complete?.entries).toEqual([
      { accountId: '444455556666', resourceType: 'ec2:Instance', usageCount: 2 },
    ]);
    expect(memory.calls).toEqual(['createUsageReport ami-0a1b2c3d4e5f60001']);
  });

  it('gives each report its own id, the same ones on every run', async () => {
    // Prepare
    const first = account();
    const second = account();

    // Act
    const ids = [
      await first.createUsageReport('ami-0a1b2c3d4e5f60001'),
      await first.createUsageReport('ami-0a1b2c3d4e5f60001'),
    ];
    const again = await second.createUsageReport('ami-0a1b2c3d4e5f60001');

    // Assess
    expect(new Set(ids).size).toBe(2);
    expect(again).toBe(ids[0]);
  });

  it('serves seeded reports, hides the entries of one not complete, and has none for another image or id', async () => {
    // Prepare
    const memory = account({
      usageReports: [
        {
          reportId: 'amiur-done',
          imageId: 'ami-0a1b2c3d4e5f60001',
          state: 'available',
          createdAt: new Date(NOW.getTime() - 3 * DAY_MS),
          entries: [{ accountId: '444455556666', resourceType: 'ec2:LaunchTemplate', usageCount: 1 }],
        },
        {
          reportId: 'amiur-failed',
          imageId: 'ami-0a1b2c3d4e5f60001',
          state: 'failed',
          stateReason: 'internal error',
          createdAt: NOW,
          entries: [{ accountId: '444455556666', resourceType: 'ec2:Instance', usageCount: 9 }],
        },
      ],
    });

    // Act
    const done = await memory.usageReport('ami-0a1b2c3d4e5f60001', 'amiur-done');
    const failed = await memory.usageReport('ami-0a1b2c3d4e5f60001', 'amiur-failed');
    const otherImage = await memory.usageReport('ami-0ffffffffffffffff', 'amiur-done');
    const gone = await memory.usageReport('ami-0a1b2c3d4e5f60001', 'amiur-expired');

    // Assess
    expect(done?.entries).toHaveLength(1);
    expect(failed).toMatchObject({ state: 'failed', stateReason: 'internal error', entries: [] });
    expect([otherImage, gone]).toEqual([undefined, undefined]);
  });

  it('refuses a report for an image that does not exist', async () => {
    // Act
    const created = account().createUsageReport('ami-0ffffffffffffffff');

    // Assess
    await expect(created).rejects.toMatchObject({ name: 'InvalidAMIID.NotFound' });
  });

  it('dates reports by the newest date in the seed when no clock is given', async () => {
    // Prepare
    const memory = new MemoryAccount({
      accountId: ACCOUNT,
      images: [
        image(),
        image({ imageId: 'ami-0a1b2c3d4e5f60002', creationDate: new Date('2025-04-01T00:00:00Z') }),
      ],
    });

    // Act
    const reportId = await memory.createUsageReport('ami-0a1b2c3d4e5f60001');

    // Assess
    expect(memory.usageReports.get(reportId)?.createdAt).toEqual(new Date('2025-04-01T00:00:00Z'));
  });
});

describe('the Recycle Bin', () => {
  it('lists seeded images and rules, leaving out images whose retention is over', async () => {
    // Prepare
    const rules = [
      rule({ identifier: 'rule0000001' }),
      rule({ identifier: 'rule0000002', resourceType: 'EBS_SNAPSHOT' }),
    ];
    const memory = account({
      binnedImages: [
        {
          imageId: 'ami-0b1b2c3d4e5f60001',
          enteredAt: new Date(NOW.getTime() - DAY_MS),
          leavesAt: new Date(NOW.getTime() + DAY_MS),
        },
        { imageId: 'ami-0b1b2c3d4e5f60002', leavesAt: new Date(NOW.getTime() - DAY_MS) },
      ],
      retentionRules: rules,
    });

    // Act
    const binned = await memory.imagesInRecycleBin();
    const listed = await memory.retentionRules();

    // Assess
    expect(binned.map((entry) => entry.imageId)).toEqual(['ami-0b1b2c3d4e5f60001']);
    expect(listed).toEqual(rules);
  });

  it('sends a deregistered image to the bin for the longest retention of the available rules that cover it', async () => {
    // Prepare
    const memory = account({
      images: [image({ tags: { team: 'web' } })],
      retentionRules: [
        rule({ identifier: 'region00001', retentionDays: 3 }),
        rule({ identifier: 'tagged00001', retentionDays: 10, resourceTags: [{ key: 'team', value: 'web' }] }),
        rule({ identifier: 'pending0001', retentionDays: 90, status: 'pending' }),
        rule({ identifier: 'snapshots01', retentionDays: 60, resourceType: 'EBS_SNAPSHOT' }),
      ],
    });

    // Act
    await memory.deregisterImage('ami-0a1b2c3d4e5f60001', { deleteAssociatedSnapshots: false });

    // Assess
    expect(await memory.imagesInRecycleBin()).toEqual([
      {
        imageId: 'ami-0a1b2c3d4e5f60001',
        name: 'web-2025-01',
        enteredAt: NOW,
        leavesAt: new Date(NOW.getTime() + 10 * DAY_MS),
      },
    ]);
  });

  it('leaves an image out of the bin when no rule covers it: excluded, or not tagged as a rule asks', async () => {
    // Prepare
    const memory = account({
      images: [image({ tags: { ephemeral: 'true' } })],
      retentionRules: [
        rule({ identifier: 'region00001', excludeTags: [{ key: 'ephemeral', value: 'true' }] }),
        rule({ identifier: 'tagged00001', resourceTags: [{ key: 'team', value: 'web' }] }),
      ],
    });

    // Act
    await memory.deregisterImage('ami-0a1b2c3d4e5f60001', { deleteAssociatedSnapshots: false });

    // Assess
    expect(await memory.imagesInRecycleBin()).toEqual([]);
    expect(memory.images.has('ami-0a1b2c3d4e5f60001')).toBe(false);
  });

  it('keeps deregistering as before when no rules are seeded', async () => {
    // Prepare
    const memory = account();

    // Act
    const result = await memory.deregisterImage('ami-0a1b2c3d4e5f60001', { deleteAssociatedSnapshots: true });

    // Assess
    expect(result).toEqual({
      snapshotResults: [{ snapshotId: 'snap-0a1b2c3d4e5f60001', returnCode: 'success' }],
    });
    expect(await memory.imagesInRecycleBin()).toEqual([]);
    expect(memory.calls).toEqual(['deregisterImage ami-0a1b2c3d4e5f60001']);
  });
});

describe('an endpoint without the APIs', () => {
  it.each([
    ['createUsageReport', (memory: MemoryAccount) => memory.createUsageReport('ami-0a1b2c3d4e5f60001')],
    ['usageReport', (memory: MemoryAccount) => memory.usageReport('ami-0a1b2c3d4e5f60001', 'amiur-1')],
    ['launchPermissions', (memory: MemoryAccount) => memory.launchPermissions('ami-0a1b2c3d4e5f60001')],
    ['imagesInRecycleBin', (memory: MemoryAccount) => memory.imagesInRecycleBin()],
    ['retentionRules', (memory: MemoryAccount) => memory.retentionRules()],
    ['disableImage', (memory: MemoryAccount) => memory.disableImage('ami-0a1b2c3d4e5f60001')],
    ['enableImage', (memory: MemoryAccount) => memory.enableImage('ami-0a1b2c3d4e5f60001')],
    ['archiveSnapshot', (memory: MemoryAccount) => memory.archiveSnapshot('snap-0a1b2c3d4e5f60001')],
  ] as const)('throws UnsupportedApiError from %s, changing and recording nothing', async (method, act) => {
    // Prepare
    const memory = account({ unsupported: [method] });

    // Act
    const outcome = act(memory);

    // Assess
    await expect(outcome).rejects.toBeInstanceOf(UnsupportedApiError);
    expect(memory.calls).toEqual([]);
    expect(memory.images.get('ami-0a1b2c3d4e5f60001')?.state).toBe('available');
  });

  it('raises an injected failure on the next matching read', async () => {
    // Prepare
    const memory = account();
    memory.failNext('imagesInRecycleBin', '*', 'RequestLimitExceeded');

    // Act
    const first = memory.imagesInRecycleBin();

    // Assess
    await expect(first).rejects.toMatchObject({ name: 'RequestLimitExceeded' });
    await expect(memory.imagesInRecycleBin()).resolves.toEqual([]);
  });
});
