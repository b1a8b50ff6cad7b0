import { ARCHIVED_AT_TAG, MARKED_AT_TAG } from '../config/policy.ts';
import { errorCode, errorMessage, OutcomeUnknownError, UnsupportedApiError } from '../errors.ts';
import type { PlannedSnapshotAction, Snapshot, SnapshotActionOutcome, SnapshotPlan } from '../model.ts';
import { hasExemptTag } from '../rules/exempt-tag.ts';
import { snapshotGuard } from '../rules/snapshot-guards.ts';
import {
  type AdvanceContext,
  type ExecuteOptions,
  type KindExecution,
  runLifecycle,
  type StagedPlan,
} from './lifecycle-executor.ts';
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

const SNAPSHOT_GONE = new Set(['InvalidSnapshot.NotFound']);

/**
 * Carries out the snapshot half of a plan through the one lifecycle executor, under the same
 * rails as images. What is the snapshot's own: deleting it, or moving it to the archive tier. A
 * staged plan's deletions may start before the plan is complete.
 */
export function executeSnapshotPlan(
  plan: Pick<SnapshotPlan, 'actions'> | StagedPlan<PlannedSnapshotAction>,
  port: SnapshotActionsPort,
  options: ExecuteOptions,
): Promise<SnapshotActionOutcome[]> {
  const kind: KindExecution<PlannedSnapshotAction, SnapshotActionOutcome, Snapshot> = {
    id: (action) => action.snapshotId,
    phase: (action) => (action.kind === 'mark' ? 'mark' : action.kind === 'unmark' ? 'unmark' : 'advance'),
    log: {
      message: 'snapshot action',
      key: 'snapshotId',
      fields: (result) => ({
        action: result.action.kind,
        rule: result.action.rule,
        reason: result.action.reason,
        status: result.status,
        detail: result.detail,
        errorCode: result.errorCode,
      }),
    },
    outcome: (action, status, detail, extra) => ({
      action,
      status,
      ...(detail === undefined ? {} : { detail }),
      ...(extra?.errorCode ? { errorCode: extra.errorCode } : {}),
    }),
    dryRun: (action) => ({ action, status: 'dry-run', detail: 'dry run: nothing was changed' }),
    gone: SNAPSHOT_GONE,
    say: {
      marked: () => 'scheduled for deletion',
      unmarked: 'deletion cancelled',
      gone: 'snapshot no longer exists',
      vanished: 'snapshot no longer exists',
      recheckFailed: 're-check failed',
      recheckFailedLog: 're-check before deleting snapshots failed; no snapshot will be deleted this run',
    },
    unmarkKeys: () => [MARKED_AT_TAG],
    tagResources: (ids, tags) => port.tagResources(ids, tags),
    untagResources: (ids, keys) => port.untagResources(ids, keys),
    describe: (ids) => port.describeSnapshots(ids),
    resourceId: (snapshot) => snapshot.snapshotId,
    veto: (snapshot) => recheckVeto(snapshot, options),
    advance: (action, snapshot, context) =>
      action.kind === 'archive'
        ? archive(action, snapshot, port, options, context)
        : remove(action, port, context),
  };
  return runLifecycle('actions' in plan ? plan.actions : plan, kind, options);
}

async function remove(
  action: PlannedSnapshotAction,
  port: SnapshotActionsPort,
  context: AdvanceContext<Snapshot>,
): Promise<SnapshotActionOutcome> {
  try {
    await port.deleteSnapshot(action.snapshotId);
    return { action, status: 'done', detail: 'deleted' };
  } catch (error) {
    const code = errorCode(error);
    if (error instanceof OutcomeUnknownError) {
      // Read it again rather than delete again: a second DeleteSnapshot would answer NotFound and
      // the report would call our own deletion someone else's.
      const after = await context.reread(action.snapshotId);
      if (after === undefined) {
        return { action, status: 'done', detail: 'deleted (no answer came back; the snapshot is gone)' };
      }
      return {
        action,
        status: 'failed',
        detail:
          after === 'unknown'
            ? 'DeleteSnapshot got no answer and the snapshot could not be read again: its state is unknown'
            : 'DeleteSnapshot got no answer and the snapshot is still there',
        errorCode: code,
      };
    }
    // EBS itself refuses to delete a snapshot an image still uses: someone registered one since.
    if (code === 'InvalidSnapshot.InUse')
      return { action, status: 'skipped', detail: `in use: ${errorMessage(error)}` };
    if (SNAPSHOT_GONE.has(code))
      return { action, status: 'already-gone', detail: 'snapshot no longer exists' };
    return { action, status: 'failed', detail: errorMessage(error), errorCode: code };
  }
}

/** The tag goes first, so a later run knows when the 90-day archive minimum started. */
async function archive(
  action: PlannedSnapshotAction,
  snapshot: Snapshot,
  port: SnapshotActionsPort,
  options: ExecuteOptions,
  context: AdvanceContext<Snapshot>,
): Promise<SnapshotActionOutcome> {
  if (snapshot.storageTier === 'archive')
    return { action, status: 'done', detail: 'already in the archive tier' };
  const fail = (error: unknown, detail = errorMessage(error)): SnapshotActionOutcome => ({
    action,
    status: 'failed',
    detail,
    errorCode: errorCode(error),
  });
  if (!port.archiveSnapshot) return fail(new UnsupportedApiError('ModifySnapshotTier'));
  const tagged = await port.tagResources([action.snapshotId], {
    [ARCHIVED_AT_TAG]: options.now.toISOString(),
  });
  const tagError = tagged.get(action.snapshotId);
  if (tagError !== undefined)
    return fail(
      tagError,
      `not archived: the tag recording it could not be written (${errorMessage(tagError)})`,
    );
  try {
    await port.archiveSnapshot(action.snapshotId);
    return { action, status: 'done', detail: 'moved to the archive tier' };
  } catch (error) {
    if (error instanceof OutcomeUnknownError) {
      const after = await context.reread(action.snapshotId);
      if (after !== 'unknown' && after?.storageTier === 'archive') {
        return {
          action,
          status: 'done',
          detail: 'moved to the archive tier (no answer came back; it is archived)',
        };
      }
    }
    await port.untagResources([action.snapshotId], [ARCHIVED_AT_TAG]).catch(() => undefined);
    if (SNAPSHOT_GONE.has(errorCode(error)))
      return { action, status: 'already-gone', detail: 'snapshot no longer exists' };
    return fail(error);
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
