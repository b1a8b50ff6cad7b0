import { DISABLED_AT_TAG, MARKED_AT_TAG, USAGE_REPORT_TAG } from '../config/policy.ts';
import { errorCode, errorMessage, OutcomeUnknownError, UnsupportedApiError } from '../errors.ts';
import type { ActionOutcome, Image, Plan, PlannedAction, Snapshot, SnapshotOutcome } from '../model.ts';
import { exemptTagNearMiss, hasExemptTag } from '../rules/exempt-tag.ts';
import { snapshotGuard } from '../rules/snapshot-guards.ts';
import {
  type AdvanceContext,
  type ExecuteOptions,
  type KindExecution,
  runLifecycle,
  type StagedPlan,
} from './lifecycle-executor.ts';
import type { ImageActionsPort, ImageUsagePort } from './ports.ts';
import { UNSUPPORTED_MARK } from './shared-images.ts';

export type { ExecuteOptions } from './lifecycle-executor.ts';

const IMAGE_GONE = new Set(['InvalidAMIID.NotFound', 'InvalidAMIID.Unavailable']);
const SNAPSHOT_GONE = new Set(['InvalidSnapshot.NotFound']);
const SNAPSHOT_IN_USE = new Set(['InvalidSnapshot.InUse']);
/** Partitions or emulators that predate DeleteAssociatedSnapshots reject the parameter. */
const PARAMETER_UNSUPPORTED = new Set([
  'UnknownParameter',
  'InvalidParameter',
  'InvalidParameterCombination',
]);

export interface ImageExecuteOptions extends ExecuteOptions {
  /** Where shared images are checked for use elsewhere: starts their AMI usage reports. */
  usage?: Pick<ImageUsagePort, 'createUsageReport'>;
}

type Snapshots = ReadonlyMap<string, Snapshot> | { error: unknown } | undefined;

/**
 * Carries out the image half of a plan through the one lifecycle executor (lifecycle-executor.ts),
 * which holds the rails: dry run, the re-check right before each image advances, the time budget.
 * What is the image's own: its deprecation, disabling and enabling it, deregistering it with its
 * snapshots (never one another image uses, or one that must outlive it), and usage reports. A
 * staged plan's deregistrations may start before the plan is complete.
 */
export function executePlan(
  plan: Pick<Plan, 'actions'> | StagedPlan<PlannedAction>,
  port: ImageActionsPort,
  options: ImageExecuteOptions,
): Promise<ActionOutcome[]> {
  const describeSnapshots = port.describeSnapshots?.bind(port);
  const kind: KindExecution<PlannedAction, ActionOutcome, Image, Snapshot> = {
    id: (action) => action.imageId,
    phase: (action) => (action.kind === 'mark' ? 'mark' : action.kind === 'unmark' ? 'unmark' : 'advance'),
    log: {
      message: 'action',
      key: 'imageId',
      fields: (result) => ({
        action: result.action.kind,
        rule: result.action.rule,
        reason: result.action.reason,
        status: result.status,
        detail: result.detail,
        errorCode: result.errorCode,
        snapshots: result.snapshots,
        warnings: result.warnings,
      }),
    },
    outcome: (action, status, detail, extra) => ({
      ...outcome(action, status, detail),
      ...(extra?.errorCode ? { errorCode: extra.errorCode } : {}),
      warnings: extra?.warnings ?? [],
    }),
    dryRun: dryRunOutcome,
    gone: IMAGE_GONE,
    say: {
      marked: (action) => `scheduled for removal after ${action.removeAfter}`,
      unmarked: 'removal cancelled',
      gone: 'image no longer exists',
      vanished: 'image no longer exists; its snapshots were left untouched',
      recheckFailed: 're-check before deregistering failed',
      recheckFailedLog: 're-check before deregistering failed; no image will be deregistered this run',
    },
    unmarkKeys: (action) => (action.enable ? [MARKED_AT_TAG, DISABLED_AT_TAG] : [MARKED_AT_TAG]),
    tagResources: (ids, tags) => port.tagResources(ids, tags),
    untagResources: (ids, keys) => port.untagResources(ids, keys),
    async beforeUnmark(action) {
      const warnings: string[] = [];
      if (action.touchDeprecation) {
        try {
          await port.disableDeprecation(action.imageId);
        } catch (error) {
          warnings.push(`deprecation not cancelled (${errorCode(error)}): ${errorMessage(error)}`);
        }
      }
      if (action.enable) {
        try {
          if (!port.enableImage) throw new UnsupportedApiError('EnableImage');
          await port.enableImage(action.imageId);
        } catch (error) {
          return { warnings, error };
        }
      }
      return { warnings };
    },
    async afterMark(action) {
      const warnings: string[] = [];
      // Deprecation has no batch form; a failed one is a warning, since the mark alone stages removal.
      const deprecateAt = action.deprecateAt ?? action.removeAfter;
      if (action.touchDeprecation && deprecateAt) {
        try {
          await port.enableDeprecation(action.imageId, new Date(deprecateAt));
        } catch (error) {
          warnings.push(`deprecation not set (${errorCode(error)}): ${errorMessage(error)}`);
        }
      }
      if (action.requestUsageReport) {
        const requested = await requestUsageReport(action.imageId, port, options);
        if (requested !== undefined) warnings.push(requested);
      }
      return warnings;
    },
    describe: (ids) => port.describeImages(ids),
    // The tags of the snapshots that go with an image are read again too, alongside its re-check.
    ...(describeSnapshots
      ? {
          prepare: {
            ids: (action: PlannedAction) => (action.kind === 'deregister' ? (action.snapshotIds ?? []) : []),
            read: (ids: readonly string[]) => describeSnapshots(ids),
            key: (snapshot: Snapshot) => snapshot.snapshotId,
            failedLog: 're-check of snapshots before deregistering failed; images go without them',
          },
        }
      : {}),
    resourceId: (image) => image.imageId,
    veto: (image) => recheckVeto(image, options),
    advance(action, image, context) {
      if (action.kind === 'disable') return disable(action, image, port, options, context);
      if (action.kind === 'request-usage-report') return usageReportAction(action, port, options);
      return deregister(action, port, options, context.prepared, context);
    },
  };
  return runLifecycle('actions' in plan ? plan.actions : plan, kind, options);
}

/**
 * Disabling stops every new launch, everywhere, and EnableImage undoes it (EC2 drops the image's
 * launch permissions on disabling, and enabling does not bring them back). The tag goes first: it is what
 * says the image was disabled by this janitor, so only such an image is ever enabled again.
 */
async function disable(
  action: PlannedAction,
  image: Image,
  port: ImageActionsPort,
  options: ExecuteOptions,
  context: AdvanceContext<Image, Snapshot>,
): Promise<ActionOutcome> {
  if (image.state === 'disabled') return outcome(action, 'done', 'already disabled');
  if (!port.disableImage) return failed(action, new UnsupportedApiError('DisableImage'));
  try {
    await single(
      port.tagResources([action.imageId], { [DISABLED_AT_TAG]: options.now.toISOString() }),
      action.imageId,
    );
  } catch (error) {
    return failed(action, error, 'not disabled: the tag recording it could not be written');
  }
  try {
    await port.disableImage(action.imageId);
    return outcome(action, 'done', 'disabled');
  } catch (error) {
    if (error instanceof OutcomeUnknownError) {
      const now = await context.reread(action.imageId);
      if (now !== 'unknown' && now?.state === 'disabled') {
        return outcome(action, 'done', 'disabled (no answer came back; the image is disabled)');
      }
    }
    // Not disabled: the tag must not claim it was.
    await port.untagResources([action.imageId], [DISABLED_AT_TAG]).catch(() => undefined);
    return IMAGE_GONE.has(errorCode(error))
      ? outcome(action, 'already-gone', 'image no longer exists')
      : failed(action, error);
  }
}

/** Starts an AMI usage report and records its id on the image; a warning when it cannot. */
async function requestUsageReport(
  imageId: string,
  port: ImageActionsPort,
  options: ImageExecuteOptions,
): Promise<string | undefined> {
  if (!options.usage)
    return 'no usage report requested: usage reports are not checked here; the image is kept while shared';
  try {
    const reportId = await options.usage.createUsageReport(imageId);
    await single(
      port.tagResources([imageId], { [USAGE_REPORT_TAG]: `${reportId} ${options.now.toISOString()}` }),
      imageId,
    );
    return undefined;
  } catch (error) {
    if (error instanceof UnsupportedApiError) {
      // Recorded, so later runs give the fail-safe reason instead of asking again every time.
      await port
        .tagResources([imageId], { [USAGE_REPORT_TAG]: `${UNSUPPORTED_MARK} ${options.now.toISOString()}` })
        .catch(() => undefined);
      return 'no usage report requested: AMI usage reports are not supported here; the image is kept while shared';
    }
    return `usage report not requested (${errorCode(error)}): ${errorMessage(error)}`;
  }
}

async function usageReportAction(
  action: PlannedAction,
  port: ImageActionsPort,
  options: ImageExecuteOptions,
): Promise<ActionOutcome> {
  const problem = await requestUsageReport(action.imageId, port, options);
  if (problem === undefined) return outcome(action, 'done', 'usage report requested');
  return outcome(action, 'skipped', problem);
}

/** Throws the one failure of a single-resource tagging call. */
async function single(result: Promise<Map<string, unknown>>, id: string): Promise<void> {
  const failure = (await result).get(id);
  if (failure !== undefined) throw failure;
}

async function deregister(
  action: PlannedAction,
  port: ImageActionsPort,
  options: ExecuteOptions,
  snapshotsNow: Snapshots,
  context: AdvanceContext<Image, Snapshot>,
): Promise<ActionOutcome> {
  const { remove, kept } = snapshotsToRemove(action, snapshotsNow, options);
  // DeleteAssociatedSnapshots deletes every snapshot of the image, so only when all of them go.
  let withSnapshots = remove.length > 0 && (action.sharedSnapshotIds ?? []).length === 0 && kept.length === 0;
  let results: Map<string, string> | undefined;
  let unanswered = false;
  try {
    results = toResultMap(
      await port.deregisterImage(action.imageId, { deleteAssociatedSnapshots: withSnapshots }),
    );
  } catch (error) {
    const code = errorCode(error);
    if (error instanceof OutcomeUnknownError) {
      const after = await context.reread(action.imageId);
      if (after !== undefined) {
        const detail =
          after === 'unknown'
            ? 'DeregisterImage got no answer and the image could not be read again: its state is unknown'
            : 'DeregisterImage got no answer and the image is still there';
        return failed(action, error, detail);
      }
      // Gone right after our unanswered call: that call removed it, and perhaps its snapshots.
      unanswered = true;
    } else if (IMAGE_GONE.has(code)) {
      return outcome(action, 'already-gone', `image already gone (${code})`);
    } else if (!(withSnapshots && PARAMETER_UNSUPPORTED.has(code))) {
      return failed(action, error);
    } else {
      withSnapshots = false;
      try {
        results = toResultMap(
          await port.deregisterImage(action.imageId, { deleteAssociatedSnapshots: false }),
        );
      } catch (retryError) {
        if (IMAGE_GONE.has(errorCode(retryError)))
          return outcome(action, 'already-gone', 'image already gone');
        return failed(action, retryError);
      }
    }
  }

  const snapshots: SnapshotOutcome[] = [];
  for (const snapshotId of remove) {
    const returnCode = results?.get(snapshotId);
    if (returnCode === 'success')
      snapshots.push({ snapshotId, status: 'deleted', detail: 'DeleteAssociatedSnapshots' });
    else if (returnCode !== undefined && returnCode !== 'skipped') {
      snapshots.push({
        snapshotId,
        status: 'failed',
        detail: `DeleteAssociatedSnapshots returned ${returnCode}`,
      });
    } else snapshots.push(await deleteSnapshot(snapshotId, port, unanswered && withSnapshots));
  }
  for (const { snapshotId, reason } of kept)
    snapshots.push({ snapshotId, status: 'skipped', detail: reason });
  for (const snapshotId of action.sharedSnapshotIds ?? []) {
    snapshots.push({ snapshotId, status: 'skipped', detail: 'kept: another image still uses this snapshot' });
  }
  const detail = unanswered ? 'deregistered (no answer came back; the image is gone)' : 'deregistered';
  return { action, status: 'done', detail, warnings: [], snapshots };
}

/**
 * Which of the image's own snapshots go with it. Those the plan kept stay kept; a snapshot tagged
 * exempt (or taken over by DLM or Backup) since planning is kept too. When their tags could not be
 * read again, none goes: the image is deregistered alone, and a later run decides its snapshots
 * as orphans, under every guard.
 */
function snapshotsToRemove(
  action: PlannedAction,
  current: Snapshots,
  options: ExecuteOptions,
): { remove: string[]; kept: { snapshotId: string; reason: string }[] } {
  const kept = [...(action.keptSnapshots ?? [])];
  const planned = action.snapshotIds ?? [];
  if (current !== undefined && 'error' in current) {
    const reason = `kept for now: its tags could not be read again (${errorCode(current.error)}); a later run decides it`;
    return { remove: [], kept: [...kept, ...planned.map((snapshotId) => ({ snapshotId, reason }))] };
  }
  const remove: string[] = [];
  for (const snapshotId of planned) {
    const snapshot = current?.get(snapshotId);
    const guard = snapshot && snapshotGuard(snapshot, { locked: false }, options.policy);
    if (guard) kept.push({ snapshotId, reason: `${guard.reason} (since planning)` });
    else remove.push(snapshotId);
  }
  return { remove, kept };
}

/** Facts can change between inventory and action; anything that now protects the image wins. */
function recheckVeto(image: Image, options: ExecuteOptions): string | undefined {
  if (image.ownerId !== options.accountId) return `owner is now ${image.ownerId}, not this account`;
  if (image.state === 'pending' || image.state === 'transient') return `image is ${image.state}`;
  const protection = image.deregistrationProtection;
  if (protection && protection !== 'disabled')
    return `deregistration protection was turned on (${protection})`;
  const { key, value } = options.policy.exemptTag;
  if (hasExemptTag(image.tags, options.policy.exemptTag)) return `tagged ${key}=${value} since planning`;
  const nearMiss = exemptTagNearMiss(image.tags, options.policy.exemptTag);
  if (nearMiss) return `since planning, ${nearMiss}`;
  if (options.policy.graceDays > 0 && image.tags[MARKED_AT_TAG] === undefined) {
    return `the ${MARKED_AT_TAG} tag was removed since planning`;
  }
  return undefined;
}

/**
 * `mayBeGoneAlready`: the image's deregistration, with DeleteAssociatedSnapshots, got no answer
 * but took effect, so a snapshot found gone now was deleted by it.
 */
async function deleteSnapshot(
  snapshotId: string,
  port: ImageActionsPort,
  mayBeGoneAlready: boolean,
): Promise<SnapshotOutcome> {
  try {
    await port.deleteSnapshot(snapshotId);
    return { snapshotId, status: 'deleted' };
  } catch (error) {
    const code = errorCode(error);
    if (SNAPSHOT_GONE.has(code)) {
      return mayBeGoneAlready
        ? { snapshotId, status: 'deleted', detail: 'deleted with its image' }
        : { snapshotId, status: 'already-gone', detail: code };
    }
    if (SNAPSHOT_IN_USE.has(code))
      return { snapshotId, status: 'skipped', detail: `in use: ${errorMessage(error)}` };
    if (error instanceof OutcomeUnknownError && port.describeSnapshots) {
      const found = await port.describeSnapshots([snapshotId]).catch(() => undefined);
      if (found?.length === 0)
        return { snapshotId, status: 'deleted', detail: 'no answer came back; the snapshot is gone' };
    }
    return { snapshotId, status: 'failed', detail: `${code}: ${errorMessage(error)}` };
  }
}

function toResultMap(result: { snapshotResults?: { snapshotId: string; returnCode: string }[] }) {
  if (!result.snapshotResults) return undefined;
  return new Map(result.snapshotResults.map((entry) => [entry.snapshotId, entry.returnCode]));
}

function dryRunOutcome(action: PlannedAction): ActionOutcome {
  return {
    ...outcome(action, 'dry-run', 'dry run: nothing was changed'),
    snapshots: (action.snapshotIds ?? []).map((snapshotId) => ({ snapshotId, status: 'dry-run' })),
  };
}

function outcome(action: PlannedAction, status: ActionOutcome['status'], detail?: string): ActionOutcome {
  return { action, status, ...(detail === undefined ? {} : { detail }), warnings: [], snapshots: [] };
}

function failed(action: PlannedAction, error: unknown, context?: string): ActionOutcome {
  const code = errorCode(error);
  const message = errorMessage(error);
  return { ...outcome(action, 'failed', context ? `${context}: ${message}` : message), errorCode: code };
}
