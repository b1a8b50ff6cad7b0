import { MARKED_AT_TAG, type Policy } from '../config/policy.ts';
import { errorCode, errorMessage } from '../errors.ts';
import type { ActionOutcome, Image, Plan, PlannedAction, SnapshotOutcome } from '../model.ts';
import { hasExemptTag } from '../rules/exempt-tag.ts';
import { forEachConcurrent } from './concurrency.ts';
import type { Deadline, ImageActionsPort, Log } from './ports.ts';

export interface ExecuteOptions {
  dryRun: boolean;
  now: Date;
  accountId: string;
  policy: Pick<Policy, 'exemptTag' | 'graceDays'>;
  deadline: Deadline;
  /** Stop starting new actions when less than this much time is left. */
  reserveMs: number;
  log: Log;
}

const IMAGE_GONE = new Set(['InvalidAMIID.NotFound', 'InvalidAMIID.Unavailable']);
const SNAPSHOT_GONE = new Set(['InvalidSnapshot.NotFound']);
const SNAPSHOT_IN_USE = new Set(['InvalidSnapshot.InUse']);
/** Partitions or emulators that predate DeleteAssociatedSnapshots reject the parameter. */
const PARAMETER_UNSUPPORTED = new Set([
  'UnknownParameter',
  'InvalidParameter',
  'InvalidParameterCombination',
]);

/** Restoring an image someone needs comes first; then reclaiming and marking, side by side. */
const ORDER: Record<PlannedAction['kind'], number> = { unmark: 0, deregister: 1, mark: 2 };

/** Calls in flight per phase; the API limiter, not this number, sets the pace. */
const ACTION_CONCURRENCY = 4;
/** CreateTags and DeleteTags take up to 1,000 resource ids per call. */
const TAG_BATCH = 1000;

/**
 * Carries out a plan with every safety rail in one place: dry run, a fresh re-check of each image
 * right before it is deregistered, tolerant error codes, and the time budget. One failure never
 * stops the others, and every outcome records what actually happened. Marks and unmarks are tagged
 * in batches (one CreateTags call per 1,000 images); deregistrations run a few at a time.
 */
export async function executePlan(
  plan: Plan,
  port: ImageActionsPort,
  options: ExecuteOptions,
): Promise<ActionOutcome[]> {
  const actions = [...plan.actions].sort((a, b) => ORDER[a.kind] - ORDER[b.kind]);
  if (options.dryRun) return actions.map((action) => dryRunOutcome(action));

  const current = await recheckTargets(actions, port, options.log);
  const results = new Map<PlannedAction, ActionOutcome>();
  const record = (action: PlannedAction, result: ActionOutcome) => {
    options.log.info('action', {
      imageId: action.imageId,
      action: action.kind,
      rule: action.rule,
      reason: action.reason,
      status: result.status,
      detail: result.detail,
      errorCode: result.errorCode,
      snapshots: result.snapshots,
      warnings: result.warnings,
    });
    results.set(action, result);
  };
  const ofKind = (kind: PlannedAction['kind']) => actions.filter((action) => action.kind === kind);

  await unmarkAll(ofKind('unmark'), port, options, record);
  // Marking draws on other buckets (CreateTags, EnableImageDeprecation) than deregistering, so it
  // runs alongside rather than waiting behind a long queue of deregistrations.
  await Promise.all([
    inTime(ofKind('deregister'), options, record, (action) => deregister(action, port, options, current)),
    markAll(ofKind('mark'), port, options, record),
  ]);
  return actions.map(
    (action) =>
      results.get(action) ??
      outcome(action, 'not-reached', 'time budget exhausted before this action started'),
  );
}

type Recorder = (action: PlannedAction, result: ActionOutcome) => void;

/** Runs `work` for each action a few at a time, starting none once the time budget is spent. */
async function inTime(
  actions: readonly PlannedAction[],
  options: ExecuteOptions,
  record: Recorder,
  work: (action: PlannedAction) => Promise<ActionOutcome>,
): Promise<void> {
  await forEachConcurrent(actions, ACTION_CONCURRENCY, async (action) => {
    if (options.deadline.remainingMs() < options.reserveMs) return;
    record(action, await work(action));
  });
}

function hasTime(options: ExecuteOptions): boolean {
  return options.deadline.remainingMs() >= options.reserveMs;
}

async function markAll(
  actions: readonly PlannedAction[],
  port: ImageActionsPort,
  options: ExecuteOptions,
  record: Recorder,
): Promise<void> {
  const tagged: PlannedAction[] = [];
  for (const batch of chunk(actions, TAG_BATCH)) {
    if (!hasTime(options)) break;
    const failures = await tagOrFail(batch, () =>
      port.tagResources(
        batch.map((action) => action.imageId),
        { [MARKED_AT_TAG]: options.now.toISOString() },
      ),
    );
    for (const action of batch) {
      const error = failures.get(action.imageId);
      if (error === undefined) tagged.push(action);
      else if (IMAGE_GONE.has(errorCode(error)))
        record(action, outcome(action, 'already-gone', 'image no longer exists'));
      else record(action, failed(action, error));
    }
  }
  // Deprecation has no batch form; a failed one is a warning, since the mark alone stages removal.
  await inTime(tagged, options, record, async (action) => {
    const result = outcome(action, 'done', `scheduled for removal after ${action.removeAfter}`);
    if (action.touchDeprecation && action.removeAfter) {
      try {
        await port.enableDeprecation(action.imageId, new Date(action.removeAfter));
      } catch (error) {
        result.warnings.push(`deprecation not set (${errorCode(error)}): ${errorMessage(error)}`);
      }
    }
    return result;
  });
  for (const action of tagged) {
    // Tagged but out of time before its deprecation: the mark holds, the deprecation waits.
    if (!hasTime(options))
      record(action, outcome(action, 'done', `scheduled for removal after ${action.removeAfter}`));
  }
}

async function unmarkAll(
  actions: readonly PlannedAction[],
  port: ImageActionsPort,
  options: ExecuteOptions,
  record: Recorder,
): Promise<void> {
  const warnings = new Map<PlannedAction, string[]>();
  // Cancel the deprecation before dropping the tag: the tag is what tells a later run to retry.
  await forEachConcurrent(
    actions.filter((action) => action.touchDeprecation),
    ACTION_CONCURRENCY,
    async (action) => {
      if (!hasTime(options)) return;
      try {
        await port.disableDeprecation(action.imageId);
      } catch (error) {
        warnings.set(action, [`deprecation not cancelled (${errorCode(error)}): ${errorMessage(error)}`]);
      }
    },
  );
  for (const batch of chunk(actions, TAG_BATCH)) {
    if (!hasTime(options)) break;
    try {
      await port.untagResources(
        batch.map((action) => action.imageId),
        [MARKED_AT_TAG],
      );
      for (const action of batch) {
        record(action, {
          ...outcome(action, 'done', 'removal cancelled'),
          warnings: warnings.get(action) ?? [],
        });
      }
    } catch (error) {
      for (const action of batch) {
        if (IMAGE_GONE.has(errorCode(error)) && batch.length === 1) {
          record(action, outcome(action, 'already-gone', 'image no longer exists'));
        } else record(action, { ...failed(action, error), warnings: warnings.get(action) ?? [] });
      }
    }
  }
}

/** A tagging call that throws outright (e.g. throttled past every retry) fails its whole batch. */
async function tagOrFail(
  batch: readonly PlannedAction[],
  tag: () => Promise<Map<string, unknown>>,
): Promise<Map<string, unknown>> {
  try {
    return await tag();
  } catch (error) {
    return new Map(batch.map((action) => [action.imageId, error]));
  }
}

type Recheck = Map<string, Image> | { error: unknown };

async function recheckTargets(
  actions: readonly PlannedAction[],
  port: ImageActionsPort,
  log: Log,
): Promise<Recheck> {
  const ids = actions.filter((action) => action.kind === 'deregister').map((action) => action.imageId);
  if (ids.length === 0) return new Map();
  try {
    const images = await port.describeImages(ids);
    return new Map(images.map((image) => [image.imageId, image]));
  } catch (error) {
    log.error('re-check before deregistering failed; no image will be deregistered this run', error as Error);
    return { error };
  }
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size));
  return chunks;
}

async function deregister(
  action: PlannedAction,
  port: ImageActionsPort,
  options: ExecuteOptions,
  current: Recheck,
): Promise<ActionOutcome> {
  if (!(current instanceof Map)) return failed(action, current.error, 're-check before deregistering failed');
  const image = current.get(action.imageId);
  if (!image) {
    // Someone else removed it; what they did with its snapshots is theirs to decide.
    return outcome(action, 'already-gone', 'image no longer exists; its snapshots were left untouched');
  }
  const veto = recheckVeto(image, options);
  if (veto) return outcome(action, 'skipped', veto);

  const exclusive = action.snapshotIds ?? [];
  // DeleteAssociatedSnapshots deletes every snapshot of the image, so only when none is shared.
  let withSnapshots = exclusive.length > 0 && (action.sharedSnapshotIds ?? []).length === 0;
  let results: Map<string, string> | undefined;
  try {
    results = toResultMap(
      await port.deregisterImage(action.imageId, { deleteAssociatedSnapshots: withSnapshots }),
    );
  } catch (error) {
    const code = errorCode(error);
    if (IMAGE_GONE.has(code)) return outcome(action, 'already-gone', `image already gone (${code})`);
    if (!(withSnapshots && PARAMETER_UNSUPPORTED.has(code))) return failed(action, error);
    withSnapshots = false;
    try {
      results = toResultMap(await port.deregisterImage(action.imageId, { deleteAssociatedSnapshots: false }));
    } catch (retryError) {
      if (IMAGE_GONE.has(errorCode(retryError))) return outcome(action, 'already-gone', 'image already gone');
      return failed(action, retryError);
    }
  }

  const snapshots: SnapshotOutcome[] = [];
  for (const snapshotId of exclusive) {
    const returnCode = results?.get(snapshotId);
    if (returnCode === 'success')
      snapshots.push({ snapshotId, status: 'deleted', detail: 'DeleteAssociatedSnapshots' });
    else if (returnCode !== undefined && returnCode !== 'skipped') {
      snapshots.push({
        snapshotId,
        status: 'failed',
        detail: `DeleteAssociatedSnapshots returned ${returnCode}`,
      });
    } else snapshots.push(await deleteSnapshot(snapshotId, port));
  }
  for (const snapshotId of action.sharedSnapshotIds ?? []) {
    snapshots.push({ snapshotId, status: 'skipped', detail: 'kept: another image still uses this snapshot' });
  }
  return { action, status: 'done', detail: 'deregistered', warnings: [], snapshots };
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
  if (options.policy.graceDays > 0 && image.tags[MARKED_AT_TAG] === undefined) {
    return `the ${MARKED_AT_TAG} tag was removed since planning`;
  }
  return undefined;
}

async function deleteSnapshot(snapshotId: string, port: ImageActionsPort): Promise<SnapshotOutcome> {
  try {
    await port.deleteSnapshot(snapshotId);
    return { snapshotId, status: 'deleted' };
  } catch (error) {
    const code = errorCode(error);
    if (SNAPSHOT_GONE.has(code)) return { snapshotId, status: 'already-gone', detail: code };
    if (SNAPSHOT_IN_USE.has(code))
      return { snapshotId, status: 'skipped', detail: `in use: ${errorMessage(error)}` };
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
