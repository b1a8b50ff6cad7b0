import { MARKED_AT_TAG, type Policy } from '../config/policy.ts';
import type { PlannedSnapshotAction, Snapshot, SnapshotDecision, SnapshotPlan } from '../model.ts';
import { isoDay } from '../rules/types.ts';
import { addDays, parseMarkedAt, removalLimit } from './planner.ts';

/**
 * The snapshot half of the plan, staged like images: an orphan is first marked, deleted once
 * `graceDays` have passed while it is still an orphan, and unmarked if it stops being one.
 */
export function buildSnapshotPlan(input: {
  snapshots: readonly Snapshot[];
  decisions: readonly SnapshotDecision[];
  policy: Pick<Policy, 'graceDays' | 'snapshots' | 'maxRemovalsPercent'>;
  now: Date;
}): SnapshotPlan {
  const { policy, now } = input;
  const byId = new Map(input.snapshots.map((snapshot) => [snapshot.snapshotId, snapshot]));
  const actions: PlannedSnapshotAction[] = [];
  const scheduled: SnapshotPlan['scheduled'] = [];
  const removable: { action: PlannedSnapshotAction; snapshot: Snapshot }[] = [];

  for (const decision of input.decisions) {
    const snapshot = byId.get(decision.snapshotId);
    if (!snapshot) continue;
    const marked = snapshot.tags[MARKED_AT_TAG] !== undefined;
    const markedAt = parseMarkedAt(snapshot.tags[MARKED_AT_TAG]);
    const base = {
      snapshotId: decision.snapshotId,
      rule: decision.rule,
      reason: decision.reason,
      sizeGiB: decision.sizeGiB,
    };
    if (decision.verdict === 'keep') {
      // Undecided is not "no longer an orphan": its mark stays until a run decides it.
      if (marked && decision.rule !== 'not-owned' && decision.rule !== 'not-reached') {
        actions.push({ ...base, kind: 'unmark', reason: `no longer an orphan: ${decision.reason}` });
      }
      continue;
    }
    if (markedAt === undefined && policy.graceDays > 0) {
      actions.push({ ...base, kind: 'mark', removeAfter: addDays(now, policy.graceDays).toISOString() });
      continue;
    }
    const removeAfter = markedAt === undefined ? now : addDays(markedAt, policy.graceDays);
    if (!deletionDue(snapshot, policy, now)) {
      scheduled.push({
        snapshotId: decision.snapshotId,
        sizeGiB: decision.sizeGiB,
        removeAfter: removeAfter.toISOString(),
        markedAt: (markedAt ?? now).toISOString(),
      });
      continue;
    }
    const reason =
      markedAt === undefined ? decision.reason : `${decision.reason}; marked ${isoDay(markedAt)}`;
    removable.push({ snapshot, action: { ...base, kind: 'delete', reason } });
  }

  const limit = removalLimit(
    { maxRemovalsPerRun: policy.snapshots.maxDeletionsPerRun, maxRemovalsPercent: policy.maxRemovalsPercent },
    input.snapshots.length,
  );
  removable.sort(
    (a, b) =>
      a.snapshot.startTime.getTime() - b.snapshot.startTime.getTime() ||
      a.snapshot.snapshotId.localeCompare(b.snapshot.snapshotId),
  );
  actions.push(...removable.slice(0, limit).map(({ action }) => action));
  return {
    inventorySize: input.snapshots.length,
    decisions: [...input.decisions],
    actions,
    deferred: removable.slice(limit).map(({ action }) => ({
      snapshotId: action.snapshotId,
      sizeGiB: action.sizeGiB,
      reason: `blast-radius cap reached (${limit} snapshot deletions per run); deferred to a later run`,
    })),
    scheduled,
    cap: { limit, eligible: removable.length, capped: removable.length > limit },
  };
}

/** Whether an orphan is one this run deletes: marked at least `graceDays` ago, or no grace at all. */
export function deletionDue(snapshot: Snapshot, policy: Pick<Policy, 'graceDays'>, now: Date): boolean {
  const markedAt = parseMarkedAt(snapshot.tags[MARKED_AT_TAG]);
  if (markedAt === undefined) return policy.graceDays === 0;
  return addDays(markedAt, policy.graceDays).getTime() <= now.getTime();
}
