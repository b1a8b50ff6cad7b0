import { MARKED_AT_TAG } from '../config/policy.ts';
import { errorCode, errorMessage } from '../errors.ts';
import type { PlannedSnapshotAction, Snapshot, SnapshotActionOutcome, SnapshotPlan } from '../model.ts';
import { hasExemptTag } from '../rules/exempt-tag.ts';
import { BACKUP_TAG_PREFIX, DLM_TAG_PREFIX, managedTag } from '../rules/managed.ts';
import type { ExecuteOptions } from './executor.ts';
import type { ImageActionsPort, SharingPort } from './ports.ts';

export type SnapshotActionsPort = Pick<SharingPort, 'describeSnapshot' | 'tagResource' | 'untagResource'> &
  Pick<ImageActionsPort, 'deleteSnapshot'>;

const ORDER: Record<PlannedSnapshotAction['kind'], number> = { unmark: 0, delete: 1, mark: 2 };

/**
 * Carries out the snapshot half of a plan under the same rails as images: dry run, a fresh
 * re-check right before each deletion, tolerant error codes, the time budget, and one failure
 * never stopping the others.
 */
export async function executeSnapshotPlan(
  plan: SnapshotPlan,
  port: SnapshotActionsPort,
  options: ExecuteOptions,
): Promise<SnapshotActionOutcome[]> {
  const actions = [...plan.actions].sort((a, b) => ORDER[a.kind] - ORDER[b.kind]);
  if (options.dryRun)
    return actions.map((action) => ({ action, status: 'dry-run', detail: 'dry run: nothing was changed' }));
  const outcomes: SnapshotActionOutcome[] = [];
  for (const action of actions) {
    if (options.deadline.remainingMs() < options.reserveMs) {
      outcomes.push({
        action,
        status: 'not-reached',
        detail: 'time budget exhausted before this action started',
      });
      continue;
    }
    const outcome = await run(action, port, options);
    options.log.info('snapshot action', {
      snapshotId: action.snapshotId,
      action: action.kind,
      rule: action.rule,
      status: outcome.status,
      detail: outcome.detail,
      errorCode: outcome.errorCode,
    });
    outcomes.push(outcome);
  }
  return outcomes;
}

async function run(
  action: PlannedSnapshotAction,
  port: SnapshotActionsPort,
  options: ExecuteOptions,
): Promise<SnapshotActionOutcome> {
  try {
    switch (action.kind) {
      case 'mark':
        await port.tagResource(action.snapshotId, { [MARKED_AT_TAG]: options.now.toISOString() });
        return { action, status: 'done', detail: `scheduled for deletion after ${action.removeAfter}` };
      case 'unmark':
        await port.untagResource(action.snapshotId, [MARKED_AT_TAG]);
        return { action, status: 'done', detail: 'deletion cancelled' };
      case 'delete':
        return await remove(action, port, options);
    }
  } catch (error) {
    const code = errorCode(error);
    if (code === 'InvalidSnapshot.NotFound')
      return { action, status: 'already-gone', detail: 'snapshot no longer exists' };
    return { action, status: 'failed', detail: errorMessage(error), errorCode: code };
  }
}

async function remove(
  action: PlannedSnapshotAction,
  port: SnapshotActionsPort,
  options: ExecuteOptions,
): Promise<SnapshotActionOutcome> {
  const current = await port.describeSnapshot(action.snapshotId);
  if (!current) return { action, status: 'already-gone', detail: 'snapshot no longer exists' };
  const veto = recheckVeto(current, options);
  if (veto) return { action, status: 'skipped', detail: veto };
  try {
    await port.deleteSnapshot(action.snapshotId);
    return { action, status: 'done', detail: 'deleted' };
  } catch (error) {
    // EBS itself refuses to delete a snapshot an image still uses: someone registered one since.
    if (errorCode(error) === 'InvalidSnapshot.InUse') {
      return { action, status: 'skipped', detail: `in use: ${errorMessage(error)}` };
    }
    throw error;
  }
}

/** Facts can change between inventory and deletion; anything that now protects the snapshot wins. */
function recheckVeto(snapshot: Snapshot, options: ExecuteOptions): string | undefined {
  if (snapshot.ownerId !== options.accountId) return `owner is now ${snapshot.ownerId}, not this account`;
  const { key, value } = options.policy.exemptTag;
  if (hasExemptTag(snapshot.tags, options.policy.exemptTag)) return `tagged ${key}=${value} since planning`;
  if (managedTag(snapshot.tags, DLM_TAG_PREFIX) || managedTag(snapshot.tags, BACKUP_TAG_PREFIX)) {
    return 'a lifecycle service manages it since planning';
  }
  if (options.policy.graceDays > 0 && snapshot.tags[MARKED_AT_TAG] === undefined) {
    return `the ${MARKED_AT_TAG} tag was removed since planning`;
  }
  return undefined;
}
