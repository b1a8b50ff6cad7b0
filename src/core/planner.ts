import { DISABLED_AT_TAG, type Policy } from '../config/policy.ts';
import type { Decision, Image, Plan, PlannedAction } from '../model.ts';
import { HOLDING_RULES } from '../rules/shared-image.ts';
import { DAY_MS, isoDay } from '../rules/types.ts';
import { addDays, type KindLifecycle, type Move, planLifecycle, removalLimit } from './lifecycle.ts';

export { addDays, parseMarkedAt, removalLimit } from './lifecycle.ts';

export interface PlanInput {
  accountId: string;
  region: string;
  images: readonly Image[];
  decisions: readonly Decision[];
  policy: Policy;
  now: Date;
  /** Images shared beyond the account: their use elsewhere is unknown until a report clears it. */
  sharedImageIds?: ReadonlySet<string>;
  /** Shared images for which the sweep should request a fresh AMI usage report. */
  usageReportsNeeded?: ReadonlySet<string>;
  /**
   * Why a snapshot must outlive its image (exempt, locked, managed by another service), by id,
   * where the snapshots were listed; the executor checks them again before deregistering.
   */
  snapshotGuards?: ReadonlyMap<string, string>;
}

/** Deprecation times AWS stores are rounded, and graceDays may have changed since marking. */
const DEPRECATION_MATCH_TOLERANCE_MS = DAY_MS;

/** The rule of an image left undecided because the invocation's time went to acting: decided on the next. */
export const NOT_REACHED = 'not-reached';
/** The rule of an unmarked removal candidate a continued invocation leaves as the run's first one did. */
export const CARRIED = 'carried';

/** Keep verdicts that leave an image marked: its fate is undecided, not reversed. */
const IMAGE_HOLDS_MARK: ReadonlySet<string> = new Set(['not-owned', NOT_REACHED, ...HOLDING_RULES]);

/** The image's part of the one lifecycle: mark, optionally disable, then deregister. */
export function imageLifecycle(
  policy: Pick<Policy, 'graceDays' | 'removal' | 'maxRemovalsPerRun' | 'maxRemovalsPercent'>,
  inventorySize: number,
): KindLifecycle<Image> {
  const { disableDays } = policy.removal;
  return {
    id: (image) => image.imageId,
    bornAt: (image) => image.creationDate,
    tags: (image) => image.tags,
    graceDays: policy.graceDays,
    steps: disableDays === null ? [] : [{ kind: 'disable', doneTag: DISABLED_AT_TAG, waitDays: disableDays }],
    // Disabled by someone else: the step is done, and never undone by this janitor.
    alreadyDone: (image, step) => step.kind === 'disable' && image.state === 'disabled',
    remove: 'deregister',
    cap: removalLimit(policy, inventorySize),
    holdsMark: (rule) => IMAGE_HOLDS_MARK.has(rule),
  };
}

/** What advancing an image needs besides its decision: the inventory and the snapshot guards. */
export type PlanContext = Omit<PlanInput, 'decisions'>;

/**
 * The lifecycle of a run's images and the action advancing one of them, written once for the plan
 * and for a deregistration that starts before the plan is complete, so both are the same action.
 */
export function imagePlanner(input: PlanContext) {
  const { policy } = input;
  const snapshotUsers = countSnapshotUsers(input.images);
  const lifecycle = imageLifecycle(policy, input.images.length);

  function snapshotsOf(image: Image) {
    const own = image.snapshotIds.filter((id) => (snapshotUsers.get(id) ?? 0) <= 1);
    const keptSnapshots = own.flatMap((snapshotId) => {
      const reason = input.snapshotGuards?.get(snapshotId);
      return reason === undefined ? [] : [{ snapshotId, reason }];
    });
    const snapshotIds = policy.deleteSnapshots ? own.filter((id) => !input.snapshotGuards?.has(id)) : [];
    const sharedSnapshotIds = image.snapshotIds.filter((id) => (snapshotUsers.get(id) ?? 0) > 1);
    return { snapshotIds, sharedSnapshotIds, ...(keptSnapshots.length > 0 ? { keptSnapshots } : {}) };
  }

  const base = (image: Image, decision: Decision | undefined) => ({
    imageId: image.imageId,
    name: image.name,
    rule: decision?.rule ?? 'unknown',
    reason: decision?.reason ?? '',
  });

  return {
    lifecycle,
    base,
    /** The action that advances an eligible image: its optional step, or its deregistration. */
    advance(move: Extract<Move<Image>, { move: 'advance' }>, decision: Decision | undefined): PlannedAction {
      const image = move.resource;
      const common = base(image, decision);
      const reason =
        move.markedAt === undefined ? common.reason : `${common.reason}; marked ${isoDay(move.markedAt)}`;
      if (move.kind === 'disable') return { ...common, kind: 'disable', reason };
      return { ...common, kind: 'deregister', reason, ...snapshotsOf(image) };
    },
  };
}

/**
 * Turns decisions into a plan: plain data, no AWS calls, so `plan` and `apply` agree and a plan can
 * be printed or diffed. Staged removal: an eligible image is first marked, and only removed once
 * `graceDays` have passed since the mark while it is still eligible (disabled first, and removed
 * `removal.disableDays` later, when that step is on).
 */
export function buildPlan(input: PlanInput, planner = imagePlanner(input)): Plan {
  const { images, decisions, policy, now } = input;
  const byId = new Map(images.map((image) => [image.imageId, image]));
  const decisionOf = new Map(decisions.map((decision) => [decision.imageId, decision]));
  const { lifecycle } = planner;
  const subjects = decisions.flatMap((decision) => {
    const image = byId.get(decision.imageId);
    return image
      ? [
          {
            resource: image,
            verdict: decision.verdict === 'expire' ? ('go' as const) : ('keep' as const),
            rule: decision.rule,
          },
        ]
      : [];
  });
  const staged = planLifecycle(lifecycle, subjects, now);
  const base = (image: Image) => planner.base(image, decisionOf.get(image.imageId));
  const usageReports = input.usageReportsNeeded ?? new Set<string>();
  const shared = input.sharedImageIds ?? new Set<string>();

  const actions: PlannedAction[] = [];
  for (const move of staged.moves) {
    const image = move.resource;
    if (move.move === 'unmark') {
      const decision = decisionOf.get(image.imageId);
      actions.push({
        ...base(image),
        kind: 'unmark',
        reason: `no longer eligible: ${decision?.reason ?? ''}`,
        touchDeprecation:
          move.markedAt !== undefined && deprecationIsOurs(image, move.markedAt, policy.graceDays),
        ...(move.undo.some((step) => step.kind === 'disable') && image.state === 'disabled'
          ? { enable: true }
          : {}),
      });
    } else if (move.move === 'mark') {
      actions.push({
        ...base(image),
        kind: 'mark',
        removeAfter: move.removeAfter.toISOString(),
        ...(lifecycle.steps.length > 0 ? { deprecateAt: move.dueAt.toISOString() } : {}),
        // A deprecation someone else set is theirs; we neither move it nor later cancel it. A
        // shared image's use elsewhere is not known yet: hiding it could break those accounts.
        touchDeprecation:
          policy.removal.deprecate && image.deprecationTime === undefined && !shared.has(image.imageId),
        ...(usageReports.has(image.imageId) ? { requestUsageReport: true } : {}),
      });
    } else if (move.move === 'advance') {
      actions.push(planner.advance(move, decisionOf.get(image.imageId)));
    }
  }
  // Shared images waiting on their use elsewhere: a fresh usage report where none can be trusted.
  for (const decision of decisions) {
    if (decision.rule !== 'shared-use-unknown' || !usageReports.has(decision.imageId)) continue;
    const image = byId.get(decision.imageId);
    if (image) actions.push({ ...base(image), kind: 'request-usage-report' });
  }

  const { limit } = staged.cap;
  const withSteps = lifecycle.steps.length > 0;
  return {
    accountId: input.accountId,
    region: input.region,
    asOf: now.toISOString(),
    inventorySize: images.length,
    decisions: [...decisions],
    actions,
    deferred: staged.deferred.map(({ resource }) => ({
      imageId: resource.imageId,
      name: resource.name,
      reason: `blast-radius cap reached (${limit} removals per run); deferred to a later run`,
    })),
    scheduled: staged.scheduled.map((entry) => ({
      imageId: entry.resource.imageId,
      name: entry.resource.name,
      removeAfter: entry.dueAt.toISOString(),
      markedAt: entry.markedAt.toISOString(),
      ...(withSteps ? { next: entry.next } : {}),
    })),
    cap: staged.cap,
  };
}

function countSnapshotUsers(images: readonly Image[]): Map<string, number> {
  const users = new Map<string, number>();
  for (const image of images) {
    for (const id of new Set(image.snapshotIds)) users.set(id, (users.get(id) ?? 0) + 1);
  }
  return users;
}

function deprecationIsOurs(image: Image, markedAt: Date, graceDays: number): boolean {
  if (!image.deprecationTime) return false;
  const expected = addDays(markedAt, graceDays).getTime();
  return Math.abs(image.deprecationTime.getTime() - expected) <= DEPRECATION_MATCH_TOLERANCE_MS;
}
