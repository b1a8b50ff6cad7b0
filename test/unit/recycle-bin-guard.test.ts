import { describe, expect, it } from 'vitest';
import { parsePolicy } from '../../src/config/policy.ts';
import { type BinnedImage, NOT_SHARED, type Snapshot, type SnapshotFacts } from '../../src/model.ts';
import { evaluateSnapshot } from '../../src/rules/snapshot-orphan.ts';
import { ACCOUNT_ID, daysAfter, daysBefore, NOW } from './factories.ts';

const INSTANCE = 'i-0123456789abcdef0';
const BINNED_IMAGE = 'ami-0b1aaaaaaaaaaaaa1';
const OTHER_BINNED_IMAGE = 'ami-0b1bbbbbbbbbbbbb2';
const LIVE_IMAGE = 'ami-0fedcba9876543210';

const createdFor = (imageId: string) => `Created by CreateImage(${INSTANCE}) for ${imageId}`;
const copiedFor = (imageId: string) =>
  `Copied for DestinationAmi ${imageId} from SourceAmi ami-0aaaaaaaaaaaaaaa1 for SourceSnapshot snap-0aaaaaaaaaaaaaaa1. Task created on 1,700,000,000,000.`;

/** An old snapshot made for BINNED_IMAGE, which DescribeImages no longer lists. */
function snapshot(overrides: Partial<Snapshot> = {}): Snapshot {
  return {
    snapshotId: 'snap-0b1aaaaaaaaaaaaa1',
    ownerId: ACCOUNT_ID,
    volumeId: 'vol-0123456789abcdef0',
    volumeSizeGiB: 8,
    startTime: daysBefore(NOW, 30),
    description: createdFor(BINNED_IMAGE),
    state: 'completed',
    tags: {},
    ...overrides,
  };
}

function bin(...images: BinnedImage[]): ReadonlyMap<string, BinnedImage> {
  return new Map(images.map((image) => [image.imageId, image]));
}

/** No image uses it, not locked, private; the bin as given (undefined: it could not be read). */
function facts(binnedImages: ReadonlyMap<string, BinnedImage> | undefined): SnapshotFacts {
  return {
    accountId: ACCOUNT_ID,
    usedBy: [],
    existingImageIds: new Set([LIVE_IMAGE]),
    locked: false,
    sharing: NOT_SHARED,
    ...(binnedImages ? { binnedImages } : {}),
  };
}

const policy = (snapshots: Record<string, unknown> = {}) => parsePolicy({ snapshots });
const LEAVES = new Date('2026-12-20T08:30:00.000Z');

describe('evaluateSnapshot: snapshots of images in the Recycle Bin', () => {
  it.each([
    {
      case: 'leaves the bin later',
      binned: { imageId: BINNED_IMAGE, leavesAt: LEAVES },
      reason: `its image ${BINNED_IMAGE} is in the Recycle Bin until 2026-12-20; deleting this snapshot would make the image unrecoverable`,
    },
    {
      case: 'leaves the bin a minute from now',
      binned: { imageId: BINNED_IMAGE, leavesAt: new Date(NOW.getTime() + 60_000) },
      reason: new RegExp(`is in the Recycle Bin until ${NOW.toISOString().slice(0, 10)};`),
    },
    {
      case: 'has no known leave date',
      binned: { imageId: BINNED_IMAGE, name: 'web-v1', enteredAt: daysBefore(NOW, 3) },
      reason: `its image ${BINNED_IMAGE} is in the Recycle Bin; deleting this snapshot would make the image unrecoverable`,
    },
  ])('keeps the snapshot of an image that $case', ({ binned, reason }) => {
    // Act
    const decision = evaluateSnapshot(snapshot(), facts(bin(binned)), policy(), NOW);

    // Assess
    expect(decision).toMatchObject({
      snapshotId: 'snap-0b1aaaaaaaaaaaaa1',
      verdict: 'keep',
      rule: 'image-in-recycle-bin',
      imageId: BINNED_IMAGE,
    });
    expect(decision.reason).toMatch(reason);
  });

  it('keeps a CopyImage snapshot whose destination image is in the bin', () => {
    // Act
    const decision = evaluateSnapshot(
      snapshot({ description: copiedFor(BINNED_IMAGE) }),
      facts(bin({ imageId: BINNED_IMAGE, leavesAt: LEAVES })),
      policy(),
      NOW,
    );

    // Assess
    expect(decision).toMatchObject({ verdict: 'keep', rule: 'image-in-recycle-bin' });
  });

  it.each([
    { case: 'the moment it leaves', leavesAt: NOW },
    { case: 'a day after it left', leavesAt: daysBefore(NOW, 1) },
  ])('is an orphan like any other $case the bin', ({ leavesAt }) => {
    // Act
    const decision = evaluateSnapshot(
      snapshot(),
      facts(bin({ imageId: BINNED_IMAGE, leavesAt })),
      policy(),
      NOW,
    );

    // Assess
    expect(decision).toMatchObject({
      verdict: 'orphan',
      rule: 'snapshot-orphan',
      reason: `made for image ${BINNED_IMAGE}, which no longer exists`,
    });
  });

  it.each([
    { case: 'the bin could not be read', binned: undefined },
    { case: 'the bin is empty', binned: bin() },
    {
      case: 'only another image is in the bin',
      binned: bin({ imageId: OTHER_BINNED_IMAGE, leavesAt: LEAVES }),
    },
  ])('judges the snapshot as before when $case', ({ binned }) => {
    // Act
    const decision = evaluateSnapshot(snapshot(), facts(binned), policy(), NOW);

    // Assess
    expect(decision).toMatchObject({ verdict: 'orphan', rule: 'snapshot-orphan' });
  });

  it('reads the clock it is given, not the wall clock', () => {
    // Prepare
    const given = facts(bin({ imageId: BINNED_IMAGE, leavesAt: LEAVES }));

    // Act
    const before = evaluateSnapshot(snapshot(), given, policy(), daysBefore(LEAVES, 1));
    const after = evaluateSnapshot(snapshot(), given, policy(), daysAfter(LEAVES, 1));

    // Assess
    expect(before.rule).toBe('image-in-recycle-bin');
    expect(after.rule).toBe('snapshot-orphan');
  });

  it('does not shelter a snapshot whose description names no image', () => {
    // Prepare
    const manual = snapshot({ description: `nightly copy of ${BINNED_IMAGE}'s volume` });

    // Act
    const decision = evaluateSnapshot(
      manual,
      { ...facts(bin({ imageId: BINNED_IMAGE, leavesAt: LEAVES })), volumeExists: false },
      policy({ mode: 'all-unreferenced' }),
      NOW,
    );

    // Assess
    expect(decision).toMatchObject({ verdict: 'orphan', rule: 'snapshot-orphan' });
  });

  it.each([
    { case: 'in use', given: { usedBy: [LIVE_IMAGE] }, rule: 'in-use' },
    { case: 'locked', given: { locked: true }, rule: 'locked' },
    {
      case: 'still existing as an image',
      given: { existingImageIds: new Set([BINNED_IMAGE]) },
      rule: 'image-exists',
    },
  ])('a snapshot $case keeps that reason, not the bin', ({ given, rule }) => {
    // Act
    const decision = evaluateSnapshot(
      snapshot(),
      { ...facts(bin({ imageId: BINNED_IMAGE, leavesAt: LEAVES })), ...given },
      policy(),
      NOW,
    );

    // Assess
    expect(decision).toMatchObject({ verdict: 'keep', rule });
  });

  it('the bin is checked before sharing, so an unread share does not hide it', () => {
    // Act
    const decision = evaluateSnapshot(
      snapshot(),
      { ...facts(bin({ imageId: BINNED_IMAGE, leavesAt: LEAVES })), sharing: 'unknown' },
      policy(),
      NOW,
    );

    // Assess
    expect(decision.rule).toBe('image-in-recycle-bin');
  });
});
