import { ARCHIVED_AT_TAG, type Policy } from '../config/policy.ts';
import type { PlannedSnapshotAction, Snapshot, SnapshotDecision, SnapshotPlan } from '../model.ts';
import { isoDay } from '../rules/types.ts';
import { advanceDue, type KindLifecycle, type Move, planLifecycle, removalLimit } from './lifecycle.ts';

type SnapshotPolicy = Pick<Policy, 'graceDays' | 'snapshots' | 'maxRemovalsPercent'>;

/** Keep verdicts that leave a snapshot marked: not decided this run, or no longer ours. */
const SNAPSHOT_HOLDS_MARK: ReadonlySet<string> = new Set(['not-owned', 'not-reached']);

/**
 * The snapshot's part of the one lifecycle: mark, then delete, or (action `archive`) move to the
 * archive tier and delete only `deleteArchivedAfterDays` later, when that is set.
 */
export function snapshotLifecycle(policy: SnapshotPolicy, inventorySize: number): KindLifecycle<Snapshot> {
  const { action, deleteArchivedAfterDays } = policy.snapshots;
  const archive = action === 'archive';
  return {
    id: (snapshot) => snapshot.snapshotId,
    bornAt: (snapshot) => snapshot.startTime,
    tags: (snapshot) => snapshot.tags,
    graceDays: policy.graceDays,
    steps: archive
      ? [
          {
            kind: 'archive',
            doneTag: ARCHIVED_AT_TAG,
            waitDays: deleteArchivedAfterDays ?? Number.POSITIVE_INFINITY,
          },
        ]
      : [],
    alreadyDone: (snapshot, step) => step.kind === 'archive' && snapshot.storageTier === 'archive',
    remove: archive && deleteArchivedAfterDays === null ? undefined : 'delete',
    cap: removalLimit(
      {
        maxRemovalsPerRun: policy.snapshots.maxDeletionsPerRun,
        maxRemovalsPercent: policy.maxRemovalsPercent,
      },
      inventorySize,
    ),
    holdsMark: (rule) => SNAPSHOT_HOLDS_MARK.has(rule),
  };
}

/** The action advancing an orphan (its deletion or archiving), the same for the plan and for one that starts early. */
export function snapshotAdvanceAction(
  move: Extract<Move<Snapshot>, { move: 'advance' }>,
  decision: SnapshotDecision | undefined,
): PlannedSnapshotAction {
  const common = snapshotBase(move.resource, decision);
  const reason =
    move.markedAt === undefined ? common.reason : `${common.reason}; marked ${isoDay(move.markedAt)}`;
  return { ...common, kind: move.kind === 'archive' ? 'archive' : 'delete', reason };
}

function snapshotBase(snapshot: Snapshot, decision: SnapshotDecision | undefined) {
  return {
    snapshotId: snapshot.snapshotId,
    rule: decision?.rule ?? 'unknown',
    reason: decision?.reason ?? '',
    sizeGiB: decision?.sizeGiB ?? 0,
  };
}

/**
 * The snapshot half of the plan, staged like images: an orphan is first marked, deleted (or
 * archived) once `graceDays` have passed while it is still an orphan, and unmarked if it stops
 * being one.
 */
export function buildSnapshotPlan(input: {
  snapshots: readonly Snapshot[];
  decisions: readonly SnapshotDecision[];
  policy: SnapshotPolicy;
  now: Date;
}): SnapshotPlan {
  const { policy, now } = input;
  const byId = new Map(input.snapshots.map((snapshot) => [snapshot.snapshotId, snapshot]));
  const decisionOf = new Map(input.decisions.map((decision) => [decision.snapshotId, decision]));
  const lifecycle = snapshotLifecycle(policy, input.snapshots.length);
  const staged = planLifecycle(
    lifecycle,
    input.decisions.flatMap((decision) => {
      const snapshot = byId.get(decision.snapshotId);
      return snapshot
        ? [
            {
              resource: snapshot,
              verdict: decision.verdict === 'orphan' ? ('go' as const) : ('keep' as const),
              rule: decision.rule,
            },
          ]
        : [];
    }),
    now,
  );
  const base = (snapshot: Snapshot) => snapshotBase(snapshot, decisionOf.get(snapshot.snapshotId));
  const actions: PlannedSnapshotAction[] = [];
  for (const move of staged.moves) {
    const snapshot = move.resource;
    if (move.move === 'unmark') {
      actions.push({
        ...base(snapshot),
        kind: 'unmark',
        reason: `no longer an orphan: ${base(snapshot).reason}`,
      });
    } else if (move.move === 'mark') {
      actions.push({ ...base(snapshot), kind: 'mark', removeAfter: move.removeAfter.toISOString() });
    } else if (move.move === 'advance') {
      actions.push(snapshotAdvanceAction(move, decisionOf.get(snapshot.snapshotId)));
    }
  }
  const { limit } = staged.cap;
  const withSteps = lifecycle.steps.length > 0;
  return {
    inventorySize: input.snapshots.length,
    decisions: [...input.decisions],
    actions,
    deferred: staged.deferred.map(({ resource }) => ({
      snapshotId: resource.snapshotId,
      sizeGiB: base(resource).sizeGiB,
      reason: `blast-radius cap reached (${limit} snapshot deletions per run); deferred to a later run`,
    })),
    scheduled: staged.scheduled.map((entry) => ({
      snapshotId: entry.resource.snapshotId,
      sizeGiB: base(entry.resource).sizeGiB,
      removeAfter: entry.dueAt.toISOString(),
      markedAt: entry.markedAt.toISOString(),
      ...(withSteps ? { next: entry.next } : {}),
    })),
    cap: staged.cap,
  };
}

/** Whether this run deletes (or archives) an orphan: its grace period, and any step's wait, are over. */
export function deletionDue(snapshot: Snapshot, policy: SnapshotPolicy, now: Date): boolean {
  return advanceDue(snapshotLifecycle(policy, 1), snapshot, now);
}
