import type { Finding, RetentionRule } from '../model.ts';
import { DAY_MS } from './types.ts';

/**
 * The undo window: what the Recycle Bin keeps of what a sweep removes, and for how long. Pure
 * functions over the Region's retention rules (rbin ListRules), so a plan can say before acting
 * which removals can be undone and when their saving begins.
 */

export type RecycleBinResourceType = RetentionRule['resourceType'];

export type Recoverability =
  | { recoverable: true; until: Date; rule: string }
  | { recoverable: false; reason: string };

/** The rule id of every undo-window finding, so digests and filters can rely on it. */
export const RECYCLE_BIN_FINDING = 'recycle-bin';

/**
 * EBS archive tier, per GB-month (us-east-1; the standard tier is $0.05). Archiving stores a
 * snapshot in full: an incremental snapshot is billed at its full size there, not at the blocks
 * it alone holds, so archiving a small increment can cost more than keeping it. The archive tier
 * also bills 90 days at least (ARCHIVE_MINIMUM_DAYS), however soon the snapshot is deleted or
 * restored.
 */
export const ARCHIVE_PRICE_PER_GB_MONTH_USD = 0.0125;

const LISTED = 5;

/**
 * Whether a retention rule would retain a resource with these tags on deletion. Only `available`
 * rules retain. A tag-level rule covers a resource carrying any one of its pairs; a Region-level
 * rule (no resource tags) covers every resource of its type except one carrying any exclude pair.
 * Tag values match exactly, as the Recycle Bin matches them.
 */
export function ruleCovers(rule: RetentionRule, tags: Readonly<Record<string, string>>): boolean {
  if (rule.status !== 'available') return false;
  if (rule.resourceTags.length > 0) return carriesAny(tags, rule.resourceTags);
  return !carriesAny(tags, rule.excludeTags);
}

/**
 * Whether a resource removed at `removedAt` could be restored from the Recycle Bin, until when and
 * by which rule: where several rules cover it the bin keeps it for the longest of their periods.
 */
export function recoverability(
  resourceType: RecycleBinResourceType,
  tags: Readonly<Record<string, string>>,
  rules: readonly RetentionRule[],
  removedAt: Date,
): Recoverability {
  const rule = longestCovering(resourceType, tags, rules);
  if (rule) {
    return {
      recoverable: true,
      until: new Date(removedAt.getTime() + rule.retentionDays * DAY_MS),
      rule: rule.identifier,
    };
  }
  return { recoverable: false, reason: whyNotCovered(resourceType, tags, rules) };
}

/**
 * When removing a resource starts to save money: a resource in the Recycle Bin is billed as
 * before until it leaves, so the saving starts when it leaves, not when it is removed. For an
 * image, pass its snapshots' recoverability: an image itself is free, its snapshots are billed.
 */
export function savingStartsAt(removedAt: Date, recovery: Recoverability): Date {
  return recovery.recoverable ? recovery.until : removedAt;
}

export interface ImageRemoval {
  imageId: string;
  tags: Readonly<Record<string, string>>;
  /**
   * The tags of the snapshots deleted with the image; an empty list when none is deleted. Where
   * not given, the image's own tags stand in (CreateImage tags both alike when asked to).
   */
  snapshotTags?: readonly Readonly<Record<string, string>>[];
}

/**
 * What the Recycle Bin cannot undo of this sweep's image removals: images no rule covers, and
 * images the bin keeps longer than their snapshots, since a restored image lacks any snapshot
 * the bin has already let go of.
 */
export function undoWindowFindings(input: {
  rules: readonly RetentionRule[];
  imageRemovals: readonly ImageRemoval[];
}): Finding[] {
  const { rules, imageRemovals } = input;
  const findings: Finding[] = [];

  const uncovered = imageRemovals.filter((removal) => !longestCovering('EC2_IMAGE', removal.tags, rules));
  if (uncovered.length > 0) {
    const n = uncovered.length;
    findings.push({
      rule: RECYCLE_BIN_FINDING,
      severity: 'medium',
      reason: `${n} of ${imageRemovals.length} image removals in this sweep ${n === 1 ? 'is' : 'are'} covered by no Recycle Bin retention rule: once deregistered, ${n === 1 ? 'it' : 'they'} cannot be restored (${listIds(uncovered)})`,
    });
  }

  // One finding per pair of periods, so each states its own numbers of days.
  const shortfalls = new Map<string, { imageDays: number; snapshotDays: number; removals: ImageRemoval[] }>();
  for (const removal of imageRemovals) {
    const imageRule = longestCovering('EC2_IMAGE', removal.tags, rules);
    if (!imageRule) continue;
    const snapshotTags = removal.snapshotTags ?? [removal.tags];
    if (snapshotTags.length === 0) continue;
    // The image needs every snapshot back, so the first snapshot to leave the bin ends the window.
    const snapshotDays = Math.min(
      ...snapshotTags.map((tags) => longestCovering('EBS_SNAPSHOT', tags, rules)?.retentionDays ?? 0),
    );
    if (snapshotDays >= imageRule.retentionDays) continue;
    const key = `${imageRule.retentionDays}/${snapshotDays}`;
    const entry = shortfalls.get(key) ?? { imageDays: imageRule.retentionDays, snapshotDays, removals: [] };
    entry.removals.push(removal);
    shortfalls.set(key, entry);
  }
  for (const { imageDays, snapshotDays, removals } of shortfalls.values()) {
    const n = removals.length;
    const their = n === 1 ? 'its' : 'their';
    const kept =
      snapshotDays === 0
        ? `${their} snapshots for 0 days (no snapshot retention rule covers them)`
        : `${their} snapshots for only ${snapshotDays} ${snapshotDays === 1 ? 'day' : 'days'}`;
    findings.push({
      rule: RECYCLE_BIN_FINDING,
      severity: 'medium',
      reason: `the Recycle Bin keeps ${n} ${n === 1 ? 'image' : 'images'} removed in this sweep for ${imageDays} days but ${kept}: an image restored after that lacks its snapshots and cannot be launched (${listIds(removals)})`,
    });
  }
  return findings;
}

function carriesAny(
  tags: Readonly<Record<string, string>>,
  pairs: readonly { key: string; value: string }[],
): boolean {
  return pairs.some(({ key, value }) => tags[key] === value);
}

/** Ties go to the lower identifier, so the same rules always name the same rule. */
function longestCovering(
  resourceType: RecycleBinResourceType,
  tags: Readonly<Record<string, string>>,
  rules: readonly RetentionRule[],
): RetentionRule | undefined {
  let best: RetentionRule | undefined;
  for (const rule of rules) {
    if (rule.resourceType !== resourceType || !ruleCovers(rule, tags)) continue;
    if (
      !best ||
      rule.retentionDays > best.retentionDays ||
      (rule.retentionDays === best.retentionDays && rule.identifier < best.identifier)
    ) {
      best = rule;
    }
  }
  return best;
}

function whyNotCovered(
  resourceType: RecycleBinResourceType,
  tags: Readonly<Record<string, string>>,
  rules: readonly RetentionRule[],
): string {
  const noun = resourceType === 'EC2_IMAGE' ? 'images' : 'snapshots';
  const ofType = rules.filter((rule) => rule.resourceType === resourceType);
  if (ofType.length === 0) return `no Recycle Bin retention rule for ${noun} in this Region`;
  const near = ofType.flatMap((rule) => {
    if (rule.status !== 'available' && ruleCovers({ ...rule, status: 'available' }, tags)) {
      return [`rule ${rule.identifier} would, but is ${rule.status}`];
    }
    const excluded =
      rule.resourceTags.length === 0
        ? rule.excludeTags.find(({ key, value }) => tags[key] === value)
        : undefined;
    return excluded && rule.status === 'available'
      ? [`rule ${rule.identifier} excludes resources tagged ${excluded.key}=${excluded.value}`]
      : [];
  });
  const detail = near.length > 0 ? `: ${near.join('; ')}` : '';
  return `no available Recycle Bin retention rule for ${noun} covers it${detail}`;
}

function listIds(removals: readonly ImageRemoval[]): string {
  const listed = removals.slice(0, LISTED).map((removal) => removal.imageId);
  const more = removals.length > LISTED ? ` and ${removals.length - LISTED} more` : '';
  return `${listed.join(', ')}${more}`;
}
