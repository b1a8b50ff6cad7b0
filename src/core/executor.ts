import { MARKED_AT_TAG, type Policy } from '../config/policy.ts';
import { errorCode, errorMessage, OutcomeUnknownError } from '../errors.ts';
import type { ActionOutcome, Image, Plan, PlannedAction, Snapshot, SnapshotOutcome } from '../model.ts';
import { exemptTagNearMiss, hasExemptTag } from '../rules/exempt-tag.ts';
import { snapshotGuard } from '../rules/snapshot-guards.ts';
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

interface Rechecked {
  images: Recheck;
  /** The current tags of every snapshot about to go with its image; undefined where not read. */
  snapshots: Map<string, Snapshot> | { error: unknown } | undefined;
}

async function recheckTargets(
  actions: readonly PlannedAction[],
  port: ImageActionsPort,
  log: Log,
): Promise<Rechecked> {
  const deregistering = actions.filter((action) => action.kind === 'deregister');
  if (deregistering.length === 0) return { images: new Map(), snapshots: undefined };
  const snapshotIds = deregistering.flatMap((action) => action.snapshotIds ?? []);
  const [images, snapshots] = await Promise.all([
    port.describeImages(deregistering.map((action) => action.imageId)).then(
      (found): Recheck => new Map(found.map((image) => [image.imageId, image])),
      (error: unknown): Recheck => {
        log.error('re-check before deregistering failed; no image will be deregistered this run', {
          error,
        });
        return { error };
      },
    ),
    port.describeSnapshots && snapshotIds.length > 0
      ? port.describeSnapshots(snapshotIds).then(
          (found) => new Map(found.map((snapshot) => [snapshot.snapshotId, snapshot])),
          (error: unknown) => {
            log.warn('re-check of snapshots before deregistering failed; images go without them', {
              error,
            });
            return { error };
          },
        )
      : undefined,
  ]);
  return { images, snapshots };
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
  current: Rechecked,
): Promise<ActionOutcome> {
  if (!(current.images instanceof Map)) {
    return failed(action, current.images.error, 're-check before deregistering failed');
  }
  const image = current.images.get(action.imageId);
  if (!image) {
    // Someone else removed it; what they did with its snapshots is theirs to decide.
    return outcome(action, 'already-gone', 'image no longer exists; its snapshots were left untouched');
  }
  const veto = recheckVeto(image, options);
  if (veto) return outcome(action, 'skipped', veto);

  const { remove, kept } = snapshotsToRemove(action, current.snapshots, options);
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
      const after = await stillThere(action.imageId, port);
      if (after !== 'gone') {
        const detail =
          after === 'present'
            ? 'DeregisterImage got no answer and the image is still there'
            : 'DeregisterImage got no answer and the image could not be read again: its state is unknown';
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
  current: Rechecked['snapshots'],
  options: ExecuteOptions,
): { remove: string[]; kept: { snapshotId: string; reason: string }[] } {
  const kept = [...(action.keptSnapshots ?? [])];
  const planned = action.snapshotIds ?? [];
  if (current !== undefined && !(current instanceof Map)) {
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

/** After a write that got no answer, whether the image is still there. */
async function stillThere(imageId: string, port: ImageActionsPort): Promise<'present' | 'gone' | 'unknown'> {
  try {
    const [image] = await port.describeImages([imageId]);
    return image ? 'present' : 'gone';
  } catch {
    return 'unknown';
  }
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
