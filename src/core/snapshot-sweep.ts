import type { Policy } from '../config/policy.ts';
import { errorCode } from '../errors.ts';
import type {
  BinnedImage,
  Image,
  SharePermissions,
  Snapshot,
  SnapshotDecision,
  SnapshotFacts,
} from '../model.ts';
import { evaluateSnapshot } from '../rules/snapshot-orphan.ts';
import { forEachConcurrent } from './concurrency.ts';
import { removalLimit } from './planner.ts';
import type { ListProgress, Log, SharingPort, SnapshotInventoryPort } from './ports.ts';
import type { SnapshotActionsPort } from './snapshot-executor.ts';
import { deletionDue } from './snapshot-planner.ts';

export interface SnapshotPorts {
  inventory: SnapshotInventoryPort;
  actions: SnapshotActionsPort;
  sharing: Pick<SharingPort, 'snapshotPermissions'>;
}

export interface SnapshotEvaluation {
  snapshots: Snapshot[];
  decisions: SnapshotDecision[];
  /** Orphan candidates left undecided because the time budget ran out; the run must continue. */
  undecided: number;
}

/**
 * How far an invocation with a deadline may go reading what decides a removal: the sharing of
 * orphans, the references of images due for removal. Share checks are one call per orphan
 * candidate, enough on a large account to fill a whole invocation, and deletions go at a quarter
 * of their pace: reading the sharing of an orphan this invocation cannot delete anyway would only
 * be repeated by the next one. What is not read is decided by the next invocation.
 */
export interface ReadBudget {
  /** False once no check may start, so that time is left to act on what was decided. */
  mayRead(): boolean;
  /**
   * True once this many removals decided (within the cap) fill what is left of the invocation;
   * those already carried out, as removals start while others are decided, no longer count.
   */
  removalsFill(decided: number): boolean;
}

function notReadReason(budget: ReadBudget, due: boolean, decided: number): string | undefined {
  if (!budget.mayRead())
    return 'its sharing was not read before the time budget ran out; decided on the next run';
  if (due && budget.removalsFill(decided)) {
    return 'its sharing was not read: the deletions already decided fill this invocation; decided on the next';
  }
  return undefined;
}

/** Reading sharing costs one call per snapshot, so only orphan candidates pay it, a few at a time. */
const SHARING_CONCURRENCY = 8;

/** What the snapshot inventory calls return; complete, or the call throws. */
export interface SnapshotInventory {
  snapshots: Snapshot[];
  lockedIds: ReadonlySet<string>;
  /** Mode all-unreferenced only: the volumes that exist. */
  volumeIds?: ReadonlySet<string> | undefined;
}

/**
 * Lists the account's snapshots, locks and (mode all-unreferenced) volumes. Any failure throws,
 * and the caller removes nothing: a missing fact never reads as "safe to delete".
 */
export async function gatherSnapshotInventory(
  ports: SnapshotPorts,
  context: { accountId: string; policy: Policy; warnings: string[]; progress?: ListProgress | undefined },
): Promise<SnapshotInventory> {
  const { accountId, policy, warnings } = context;
  const snapshots = await ports.inventory.listOwnedSnapshots(accountId, context.progress);
  const locks = await ports.inventory.lockedSnapshotIds();
  if (!locks.supported) {
    warnings.push(
      'snapshot locks could not be listed here (DescribeLockedSnapshots unsupported); EBS still refuses to delete a locked snapshot',
    );
  }
  const volumeIds =
    policy.snapshots.mode === 'all-unreferenced' ? await ports.inventory.existingVolumeIds() : undefined;
  return { snapshots, lockedIds: locks.ids, volumeIds };
}

/**
 * Decides every snapshot of the inventory. Sharing is read for orphan candidates only, one call
 * each; a snapshot whose sharing cannot be read is kept, so this never throws for one snapshot.
 */
export async function evaluateSnapshots(
  ports: SnapshotPorts,
  inventory: SnapshotInventory,
  context: {
    accountId: string;
    images: readonly Image[];
    policy: Policy;
    now: Date;
    log: Log;
    warnings: string[];
    budget?: ReadBudget | undefined;
    /** Images in the Recycle Bin, where the bin could be read: their snapshots are not orphans. */
    binnedImages?: ReadonlyMap<string, BinnedImage> | undefined;
    /** Told after each orphan candidate's share check (or its being left for the next run). */
    onShareChecked?: ((done: number, total: number) => void) | undefined;
    /** Told the orphan candidates, in the order their sharing is read, before any is read. */
    onCandidates?: ((candidates: readonly Snapshot[]) => void) | undefined;
    /** Told each orphan candidate's final decision as soon as it is made, its sharing read or not. */
    onDecided?: ((snapshot: Snapshot, decision: SnapshotDecision) => void) | undefined;
  },
): Promise<SnapshotEvaluation> {
  const { accountId, images, policy, now, log, warnings } = context;
  const { snapshots, lockedIds, volumeIds: volumes } = inventory;

  const usedBy = new Map<string, string[]>();
  for (const image of images) {
    for (const snapshotId of image.snapshotIds)
      usedBy.set(snapshotId, [...(usedBy.get(snapshotId) ?? []), image.imageId]);
  }
  const existingImageIds = new Set(images.map((image) => image.imageId));
  const factsOf = (snapshot: Snapshot, sharing?: SharePermissions | 'unknown'): SnapshotFacts => ({
    accountId,
    usedBy: usedBy.get(snapshot.snapshotId) ?? [],
    existingImageIds,
    locked: lockedIds.has(snapshot.snapshotId),
    ...(volumes && snapshot.volumeId ? { volumeExists: volumes.has(snapshot.volumeId) } : {}),
    ...(volumes && !snapshot.volumeId ? { volumeExists: false } : {}),
    ...(sharing ? { sharing } : {}),
    ...(context.binnedImages ? { binnedImages: context.binnedImages } : {}),
  });

  const decisions = new Map<string, SnapshotDecision>();
  const candidates: Snapshot[] = [];
  for (const snapshot of snapshots) {
    const decision = evaluateSnapshot(snapshot, factsOf(snapshot), policy, now);
    decisions.set(snapshot.snapshotId, decision);
    if (decision.verdict === 'orphan') candidates.push(snapshot);
  }
  // Oldest first (ties by id), the order the cap takes deletions in, so the share checks a budget
  // allows serve the plan, and a deletion can start once those before it are decided.
  candidates.sort(
    (a, b) => a.startTime.getTime() - b.startTime.getTime() || a.snapshotId.localeCompare(b.snapshotId),
  );
  context.onCandidates?.(candidates);
  const { budget } = context;
  const cap = removalLimit(
    { maxRemovalsPerRun: policy.snapshots.maxDeletionsPerRun, maxRemovalsPercent: policy.maxRemovalsPercent },
    snapshots.length,
  );
  let undecided = 0;
  let dueOrphans = 0;
  let checked = 0;
  context.onShareChecked?.(0, candidates.length);
  await forEachConcurrent(candidates, SHARING_CONCURRENCY, async (snapshot) => {
    await decide(snapshot);
    checked += 1;
    context.onShareChecked?.(checked, candidates.length);
  });
  async function decide(snapshot: Snapshot): Promise<void> {
    const due = deletionDue(snapshot, policy, now);
    const reason = budget && notReadReason(budget, due, Math.min(dueOrphans, cap));
    if (reason) {
      undecided += 1;
      const kept: SnapshotDecision = {
        ...evaluateSnapshot(snapshot, factsOf(snapshot), policy, now),
        verdict: 'keep',
        rule: 'not-reached',
        reason,
      };
      decisions.set(snapshot.snapshotId, kept);
      context.onDecided?.(snapshot, kept);
      return;
    }
    let sharing: SharePermissions | 'unknown';
    try {
      sharing = await ports.sharing.snapshotPermissions(snapshot.snapshotId);
    } catch (error) {
      sharing = 'unknown';
      warnings.push(`snapshot ${snapshot.snapshotId}: sharing not readable (${errorCode(error)}); kept`);
    }
    const decision = evaluateSnapshot(snapshot, factsOf(snapshot, sharing), policy, now);
    decisions.set(snapshot.snapshotId, decision);
    if (due && decision.verdict === 'orphan') dueOrphans += 1;
    context.onDecided?.(snapshot, decision);
  }

  const ordered = snapshots.flatMap((snapshot) => {
    const decision = decisions.get(snapshot.snapshotId);
    return decision ? [decision] : [];
  });
  for (const decision of ordered) {
    log.info('decision', {
      snapshotId: decision.snapshotId,
      rule: decision.rule,
      verdict: decision.verdict,
      reason: decision.reason,
    });
  }
  if (undecided > 0) {
    warnings.push(
      `${undecided} orphan candidates were left undecided to keep time for acting; the run continues`,
    );
  }
  return { snapshots, decisions: ordered, undecided };
}
