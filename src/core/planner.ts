import { MARKED_AT_TAG, type Policy } from '../config/policy.ts';
import type { Decision, DeferredImage, Image, Plan, PlannedAction, ScheduledRemoval } from '../model.ts';
import { DAY_MS, isoDay } from '../rules/types.ts';

export interface PlanInput {
  accountId: string;
  region: string;
  images: readonly Image[];
  decisions: readonly Decision[];
  policy: Policy;
  now: Date;
  /**
   * Why a snapshot must outlive its image (exempt, locked, managed by another service), by id,
   * where the snapshots were listed; the executor checks them again before deregistering.
   */
  snapshotGuards?: ReadonlyMap<string, string>;
}

/** Deprecation times AWS stores are rounded, and graceDays may have changed since marking. */
const DEPRECATION_MATCH_TOLERANCE_MS = DAY_MS;

/**
 * Turns decisions into a plan: plain data, no AWS calls, so `plan` and `apply` agree and a plan can
 * be printed or diffed. Staged removal: an eligible image is first marked, and only removed once
 * `graceDays` have passed since the mark while it is still eligible.
 */
export function buildPlan(input: PlanInput): Plan {
  const { images, decisions, policy, now } = input;
  const byId = new Map(images.map((image) => [image.imageId, image]));
  const snapshotUsers = countSnapshotUsers(images);

  const actions: PlannedAction[] = [];
  const scheduled: ScheduledRemoval[] = [];
  const removable: { action: PlannedAction; image: Image }[] = [];

  for (const decision of decisions) {
    const image = byId.get(decision.imageId);
    if (!image) continue;
    const markedAt = parseMarkedAt(image.tags[MARKED_AT_TAG]);
    const base = { imageId: image.imageId, name: image.name, rule: decision.rule, reason: decision.reason };

    if (decision.verdict === 'keep') {
      if (image.tags[MARKED_AT_TAG] !== undefined && decision.rule !== 'not-owned') {
        actions.push({
          ...base,
          kind: 'unmark',
          reason: `no longer eligible: ${decision.reason}`,
          touchDeprecation: markedAt !== undefined && deprecationIsOurs(image, markedAt, policy.graceDays),
        });
      }
      continue;
    }

    if (markedAt === undefined && policy.graceDays > 0) {
      actions.push({
        ...base,
        kind: 'mark',
        removeAfter: addDays(now, policy.graceDays).toISOString(),
        // A deprecation someone else set is theirs; we neither move it nor later cancel it.
        touchDeprecation: image.deprecationTime === undefined,
      });
      continue;
    }

    const removeAfter = markedAt === undefined ? now : addDays(markedAt, policy.graceDays);
    if (removeAfter.getTime() > now.getTime()) {
      scheduled.push({
        imageId: image.imageId,
        name: image.name,
        removeAfter: removeAfter.toISOString(),
        markedAt: (markedAt ?? now).toISOString(),
      });
      continue;
    }

    const own = image.snapshotIds.filter((id) => (snapshotUsers.get(id) ?? 0) <= 1);
    const keptSnapshots = own.flatMap((snapshotId) => {
      const reason = input.snapshotGuards?.get(snapshotId);
      return reason === undefined ? [] : [{ snapshotId, reason }];
    });
    const exclusive = policy.deleteSnapshots ? own.filter((id) => !input.snapshotGuards?.has(id)) : [];
    const shared = image.snapshotIds.filter((id) => (snapshotUsers.get(id) ?? 0) > 1);
    removable.push({
      image,
      action: {
        ...base,
        kind: 'deregister',
        reason: markedAt === undefined ? decision.reason : `${decision.reason}; marked ${isoDay(markedAt)}`,
        snapshotIds: exclusive,
        sharedSnapshotIds: shared,
        ...(keptSnapshots.length > 0 ? { keptSnapshots } : {}),
      },
    });
  }

  const limit = removalLimit(policy, images.length);
  // Oldest first, so a capped run still makes the most valuable progress and the order is stable.
  removable.sort(
    (a, b) =>
      a.image.creationDate.getTime() - b.image.creationDate.getTime() ||
      a.image.imageId.localeCompare(b.image.imageId),
  );
  const deferred: DeferredImage[] = removable.slice(limit).map(({ image }) => ({
    imageId: image.imageId,
    name: image.name,
    reason: `blast-radius cap reached (${limit} removals per run); deferred to a later run`,
  }));
  actions.push(...removable.slice(0, limit).map(({ action }) => action));

  return {
    accountId: input.accountId,
    region: input.region,
    asOf: now.toISOString(),
    inventorySize: images.length,
    decisions: [...decisions],
    actions,
    deferred,
    scheduled,
    cap: { limit, eligible: removable.length, capped: removable.length > limit },
  };
}

/** The smaller of the absolute cap and the percentage of the inventory, when one is set. */
export function removalLimit(
  policy: Pick<Policy, 'maxRemovalsPerRun' | 'maxRemovalsPercent'>,
  inventorySize: number,
) {
  const { maxRemovalsPerRun, maxRemovalsPercent } = policy;
  if (maxRemovalsPercent === null) return maxRemovalsPerRun;
  return Math.min(maxRemovalsPerRun, Math.floor((inventorySize * maxRemovalsPercent) / 100));
}

function countSnapshotUsers(images: readonly Image[]): Map<string, number> {
  const users = new Map<string, number>();
  for (const image of images) {
    for (const id of new Set(image.snapshotIds)) users.set(id, (users.get(id) ?? 0) + 1);
  }
  return users;
}

export function parseMarkedAt(value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const parsed = new Date(value);
  return Number.isNaN(parsed.getTime()) ? undefined : parsed;
}

function deprecationIsOurs(image: Image, markedAt: Date, graceDays: number): boolean {
  if (!image.deprecationTime) return false;
  const expected = addDays(markedAt, graceDays).getTime();
  return Math.abs(image.deprecationTime.getTime() - expected) <= DEPRECATION_MATCH_TOLERANCE_MS;
}

export function addDays(date: Date, days: number): Date {
  return new Date(date.getTime() + days * DAY_MS);
}
