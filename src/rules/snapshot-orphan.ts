import * as z from 'zod';
import type { Policy } from '../config/policy.ts';
import type { Snapshot, SnapshotDecision, SnapshotFacts } from '../model.ts';
import { ARCHIVE_MINIMUM_DAYS, dayCount, MAX_DAYS, perRunCap } from './schema-parts.ts';
import { isExposed } from './sharing.ts';
import { snapshotGuard } from './snapshot-guards.ts';
import { daysBetween, isoDay } from './types.ts';

export const snapshotSchema = {
  snapshots: z
    .strictObject({
      /**
       * `ami-orphans`: only snapshots made for an image (by CreateImage or CopyImage) whose image is
       * gone. `all-unreferenced`: also snapshots no image uses whose source volume is gone.
       */
      mode: z.enum(['ami-orphans', 'all-unreferenced']).default('ami-orphans'),
      minAgeDays: dayCount.default(7),
      maxDeletionsPerRun: perRunCap.default(100),
      /**
       * `delete` removes an orphan after the grace period; `archive` moves it to the archive tier
       * (ModifySnapshotTier) instead: a quarter of the price, restorable, billed 90 days at least.
       */
      action: z.enum(['delete', 'archive']).default('delete'),
      /** With `archive`: delete an archived orphan this many days after archiving; never when null. */
      deleteArchivedAfterDays: z
        .number()
        .int()
        .min(
          ARCHIVE_MINIMUM_DAYS,
          `at least ${ARCHIVE_MINIMUM_DAYS} days (the archive tier bills 90 days at least)`,
        )
        .max(MAX_DAYS, `at most ${MAX_DAYS} days (100 years)`)
        .nullable()
        .default(null),
    })
    .prefault({}),
};

// Ids are 8 or 17 lower-case hex digits; the look-ahead stops `ami-0ABC…` from reading as `ami-0`.
const CREATED_FOR_IMAGE =
  /Created by CreateImage\((i-[0-9a-f]{8,17})\) for (ami-[0-9a-f]{8,17})(?![0-9A-Za-z])/;
const COPIED_FOR_IMAGE = /Copied for DestinationAmi (ami-[0-9a-f]{8,17})(?![0-9A-Za-z])/;
/** EC2 reports this placeholder for snapshots that were not taken from a volume (copies, imports). */
const NO_VOLUME = 'vol-ffffffff';
const GIB = 1024 ** 3;

/** The image a snapshot's description says it was made for, by CreateImage or CopyImage. */
export function imageNamedBy(description: string): string | undefined {
  return CREATED_FOR_IMAGE.exec(description)?.[2] ?? COPIED_FOR_IMAGE.exec(description)?.[1];
}

/** The data size where EC2 reports it, else the volume size: either way an upper bound on the bill. */
export function snapshotSizeGiB(snapshot: Pick<Snapshot, 'fullSizeBytes' | 'volumeSizeGiB'>): number {
  return snapshot.fullSizeBytes === undefined ? snapshot.volumeSizeGiB : snapshot.fullSizeBytes / GIB;
}

type Verdict = Pick<SnapshotDecision, 'verdict' | 'rule' | 'reason'>;
const keep = (rule: string, reason: string): Verdict => ({ verdict: 'keep', rule, reason });

/**
 * A deregistered image a retention rule sent to the Recycle Bin is missing from DescribeImages,
 * so its snapshots look orphaned; restoring it needs them, so they stay until it leaves the bin.
 * Where the bin could not be read, nothing is known and the snapshot is judged as before.
 */
function binnedImageOf(imageId: string, facts: SnapshotFacts, now: Date): Verdict | undefined {
  const binned = facts.binnedImages?.get(imageId);
  if (!binned) return undefined;
  if (binned.leavesAt && binned.leavesAt.getTime() <= now.getTime()) return undefined;
  const until = binned.leavesAt ? ` until ${isoDay(binned.leavesAt)}` : '';
  return keep(
    'image-in-recycle-bin',
    `its image ${imageId} is in the Recycle Bin${until}; deleting this snapshot would make the image unrecoverable`,
  );
}

/**
 * Whether a snapshot is an orphan: owned here, used by no image, old enough, not locked, exempt or
 * managed by another service, not shared, and (by mode) made for an image that no longer exists
 * and cannot be restored from the Recycle Bin.
 * `facts.sharing` is read only for snapshots that pass every other check; until then it is unknown
 * and does not count, and `'unknown'` (the read failed) keeps the snapshot.
 */
export function evaluateSnapshot(
  snapshot: Snapshot,
  facts: SnapshotFacts,
  policy: Pick<Policy, 'snapshots' | 'exemptTag'>,
  now: Date,
): SnapshotDecision {
  const imageId = imageNamedBy(snapshot.description);
  const base = {
    snapshotId: snapshot.snapshotId,
    sizeGiB: snapshotSizeGiB(snapshot),
    ...(imageId ? { imageId } : {}),
  };
  return { ...base, ...verdictFor(snapshot, facts, policy, now, imageId) };
}

function verdictFor(
  snapshot: Snapshot,
  facts: SnapshotFacts,
  policy: Pick<Policy, 'snapshots' | 'exemptTag'>,
  now: Date,
  imageId: string | undefined,
): Verdict {
  if (snapshot.ownerId !== facts.accountId) {
    return keep('not-owned', `owned by account ${snapshot.ownerId}, not by this account`);
  }
  if (facts.usedBy.length > 0) {
    return keep('in-use', `used by image ${facts.usedBy.join(', ')}`);
  }
  const ageDays = daysBetween(snapshot.startTime, now);
  if (ageDays < policy.snapshots.minAgeDays) {
    return keep('too-young', `started ${ageDays} days ago (minimum ${policy.snapshots.minAgeDays})`);
  }
  const guard = snapshotGuard(snapshot, facts, policy);
  if (guard) return keep(guard.rule, guard.reason);

  let orphan: Verdict;
  if (imageId) {
    if (facts.existingImageIds.has(imageId)) {
      return keep('image-exists', `its image ${imageId} still exists`);
    }
    const binned = binnedImageOf(imageId, facts, now);
    if (binned) return binned;
    orphan = {
      verdict: 'orphan',
      rule: 'snapshot-orphan',
      reason: `made for image ${imageId}, which no longer exists`,
    };
  } else if (policy.snapshots.mode === 'all-unreferenced') {
    const volume = snapshot.volumeId ?? NO_VOLUME;
    if (facts.volumeExists === undefined) return keep('not-an-image-snapshot', 'source volume not checked');
    if (facts.volumeExists) return keep('volume-exists', `its source volume ${volume} still exists`);
    orphan = {
      verdict: 'orphan',
      rule: 'snapshot-orphan',
      reason: `no image uses it and its source volume ${volume} no longer exists`,
    };
  } else {
    return keep(
      'not-an-image-snapshot',
      'not made for an image (mode ami-orphans removes only image snapshots)',
    );
  }

  if (facts.sharing === 'unknown') return keep('shared', 'its sharing could not be read');
  if (facts.sharing && isExposed(facts.sharing)) {
    return keep('shared', 'shared with other accounts, which may still need it');
  }
  return orphan;
}
