import { MARKED_AT_TAG } from '../config/policy.ts';
import { errorCode, errorMessage, OutcomeUnknownError } from '../errors.ts';
import type { PlannedSnapshotAction, Snapshot, SnapshotActionOutcome, SnapshotPlan } from '../model.ts';
import { hasExemptTag } from '../rules/exempt-tag.ts';
import { snapshotGuard } from '../rules/snapshot-guards.ts';
import { forEachConcurrent } from './concurrency.ts';
import type { ExecuteOptions } from './executor.ts';
import type { ImageActionsPort } from './ports.ts';

export interface SnapshotActionsPort
  extends Pick<ImageActionsPort, 'tagResources' | 'untagResources' | 'deleteSnapshot'> {
  /** Current state of the given snapshots; ids that no longer exist are simply absent. */
  describeSnapshots(snapshotIds: readonly string[]): Promise<Snapshot[]>;
  /** The steady pace of deletions, where they are paced: how many an invocation can still reach. */
  readonly deletionsPerSecond?: number | undefined;
  /** ModifySnapshotTier to `archive`: kept at a quarter of the price, restorable, 90 days billed at least. */
  archiveSnapshot?(snapshotId: string): Promise<void>;
}

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
  const results = new Map<PlannedSnapshotAction, SnapshotActionOutcome>();
  const record = (outcome: SnapshotActionOutcome) => {
    options.log.info('snapshot action', {
      snapshotId: outcome.action.snapshotId,
      action: outcome.action.kind,
      rule: outcome.action.rule,
      reason: outcome.action.reason,
      status: outcome.status,
      detail: outcome.detail,
      errorCode: outcome.errorCode,
    });
    results.set(outcome.action, outcome);
  };
  const ofKind = (kind: PlannedSnapshotAction['kind']) => actions.filter((action) => action.kind === kind);

  await tagInBatches(ofKind('unmark'), options, record, 'deletion cancelled', (ids) =>
    port.untagResources(ids, [MARKED_AT_TAG]),
  );
  // Marks are one CreateTags call per 1,000 snapshots, on another bucket than DeleteSnapshot: they
  // go alongside the deletions rather than waiting behind them.
  const deleting = (async () => {
    const current = await recheck(ofKind('delete'), port, options);
    await forEachConcurrent(ofKind('delete'), ACTION_CONCURRENCY, async (action) => {
      if (options.deadline.remainingMs() < options.reserveMs) return;
      record(await remove(action, port, options, current));
    });
  })();
  await Promise.all([
    deleting,
    tagInBatches(ofKind('mark'), options, record, 'scheduled for deletion', (ids) =>
      port.tagResources(ids, { [MARKED_AT_TAG]: options.now.toISOString() }),
    ),
  ]);
  return actions.map(
    (action) =>
      results.get(action) ?? {
        action,
        status: 'not-reached',
        detail: 'time budget exhausted before this action started',
      },
  );
}

const ACTION_CONCURRENCY = 4;
const TAG_BATCH = 1000;

async function tagInBatches(
  actions: readonly PlannedSnapshotAction[],
  options: ExecuteOptions,
  record: (outcome: SnapshotActionOutcome) => void,
  doneDetail: string,
  tag: (ids: string[]) => Promise<Map<string, unknown>>,
): Promise<void> {
  for (let start = 0; start < actions.length; start += TAG_BATCH) {
    if (options.deadline.remainingMs() < options.reserveMs) return;
    const batch = actions.slice(start, start + TAG_BATCH);
    let failures: Map<string, unknown>;
    try {
      failures = await tag(batch.map((action) => action.snapshotId));
    } catch (error) {
      failures = new Map(batch.map((action) => [action.snapshotId, error]));
    }
    for (const action of batch) {
      const error = failures.get(action.snapshotId);
      if (error === undefined) record({ action, status: 'done', detail: doneDetail });
      else if (errorCode(error) === 'InvalidSnapshot.NotFound') {
        record({ action, status: 'already-gone', detail: 'snapshot no longer exists' });
      } else record({ action, status: 'failed', detail: errorMessage(error), errorCode: errorCode(error) });
    }
  }
}

type Current = Map<string, Snapshot> | { error: unknown };

/** One batched read of every snapshot about to be deleted, right before deleting. */
async function recheck(
  actions: readonly PlannedSnapshotAction[],
  port: SnapshotActionsPort,
  options: ExecuteOptions,
): Promise<Current> {
  if (actions.length === 0) return new Map();
  try {
    const snapshots = await port.describeSnapshots(actions.map((action) => action.snapshotId));
    return new Map(snapshots.map((snapshot) => [snapshot.snapshotId, snapshot]));
  } catch (error) {
    options.log.error(
      're-check before deleting snapshots failed; no snapshot will be deleted this run',
      error as Error,
    );
    return { error };
  }
}

async function remove(
  action: PlannedSnapshotAction,
  port: SnapshotActionsPort,
  options: ExecuteOptions,
  current: Current,
): Promise<SnapshotActionOutcome> {
  if (!(current instanceof Map)) {
    return {
      action,
      status: 'failed',
      detail: `re-check failed: ${errorMessage(current.error)}`,
      errorCode: errorCode(current.error),
    };
  }
  const snapshot = current.get(action.snapshotId);
  if (!snapshot) return { action, status: 'already-gone', detail: 'snapshot no longer exists' };
  const veto = recheckVeto(snapshot, options);
  if (veto) return { action, status: 'skipped', detail: veto };
  try {
    await port.deleteSnapshot(action.snapshotId);
    return { action, status: 'done', detail: 'deleted' };
  } catch (error) {
    const code = errorCode(error);
    if (error instanceof OutcomeUnknownError) {
      // Read it again rather than delete again: a second DeleteSnapshot would answer NotFound and
      // the report would call our own deletion someone else's.
      const after = await port.describeSnapshots([action.snapshotId]).then(
        (found) => (found.length === 0 ? 'gone' : 'present'),
        () => 'unknown',
      );
      if (after === 'gone')
        return { action, status: 'done', detail: 'deleted (no answer came back; the snapshot is gone)' };
      return {
        action,
        status: 'failed',
        detail:
          after === 'present'
            ? 'DeleteSnapshot got no answer and the snapshot is still there'
            : 'DeleteSnapshot got no answer and the snapshot could not be read again: its state is unknown',
        errorCode: code,
      };
    }
    // EBS itself refuses to delete a snapshot an image still uses: someone registered one since.
    if (code === 'InvalidSnapshot.InUse')
      return { action, status: 'skipped', detail: `in use: ${errorMessage(error)}` };
    if (code === 'InvalidSnapshot.NotFound')
      return { action, status: 'already-gone', detail: 'snapshot no longer exists' };
    return { action, status: 'failed', detail: errorMessage(error), errorCode: code };
  }
}
/** Facts can change between inventory and deletion; anything that now protects the snapshot wins. */
function recheckVeto(snapshot: Snapshot, options: ExecuteOptions): string | undefined {
  if (snapshot.ownerId !== options.accountId) return `owner is now ${snapshot.ownerId}, not this account`;
  const { key, value } = options.policy.exemptTag;
  const guard = snapshotGuard(snapshot, { locked: false }, options.policy);
  if (guard?.rule === 'exempt-tag') {
    return hasExemptTag(snapshot.tags, options.policy.exemptTag)
      ? `tagged ${key}=${value} since planning`
      : `since planning, ${guard.reason}`;
  }
  if (guard) return 'a lifecycle service manages it since planning';
  if (options.policy.graceDays > 0 && snapshot.tags[MARKED_AT_TAG] === undefined) {
    return `the ${MARKED_AT_TAG} tag was removed since planning`;
  }
  return undefined;
}
