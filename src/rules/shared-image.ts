import { MARKED_AT_TAG, type Policy } from '../config/policy.ts';
import type { Image, ImageFacts, ImageUsageReport, SharePermissions } from '../model.ts';
import { DAY_MS, isoDay, type Rule } from './types.ts';

/**
 * The shared-image gate. An image whose launch permissions reach other accounts may be used there,
 * where this account's reference checks cannot see; only a complete AMI usage report can say.
 * Three guards, one outcome each, so the planner can tell them apart by rule id:
 *
 * - `shared-image-kept`: the policy (`sharedImages: keep`) never removes shared images. The image
 *   is not worth removing, so a mark is cancelled like for any keep.
 * - `shared-in-use`: a complete report shows use elsewhere. Kept, and unmarked like any keep.
 * - `shared-use-unknown`: the removal is due but its use elsewhere is not known yet. The removal
 *   waits: the image keeps its mark, and the gate is asked again next run.
 */
export const SHARED_IMAGE_KEPT = 'shared-image-kept';
export const SHARED_IN_USE = 'shared-in-use';
export const SHARED_USE_UNKNOWN = 'shared-use-unknown';

/**
 * Rules whose keep only holds a removal back until a fact arrives: the planner keeps the mark
 * instead of unmarking, and evaluateImage lets the keep stand only where the image would
 * otherwise be removed (a hold on an image nothing makes eligible would pin a stale mark).
 */
export const HOLDING_RULES: ReadonlySet<string> = new Set([SHARED_USE_UNKNOWN]);

/**
 * A report older than this says little about today's use: it neither clears an image nor keeps
 * it from being marked again, and a fresh one is requested.
 */
export const USAGE_REPORT_MAX_AGE_DAYS = 30;

/**
 * A report requested in the same run as the mark may carry a creation time a little before the
 * mark's (the mark is dated by the run's clock, taken when the run starts); it still follows it.
 */
const SAME_RUN_MS = 60 * 60_000;
const LISTED_ACCOUNTS = 5;

/** Whether launch permissions reach anyone but the account itself, allowlisted or not. */
export function isSharedBeyondAccount(sharing: SharePermissions, ownAccountId?: string): boolean {
  return (
    sharing.public ||
    sharing.accounts.some((id) => id !== ownAccountId) ||
    sharing.organizations.length > 0 ||
    sharing.organizationalUnits.length > 0
  );
}

/**
 * Whether the sweep should request a fresh usage report: the image is shared, the policy checks
 * usage, nothing already shows it in use, and there is no usable report (none, gone, failed,
 * older than the image's mark, or stale). Ask it for an image the plan marks, schedules or holds:
 * for an image not marked yet it answers for the mark this run sets, so any earlier report is old.
 */
export function usageReportNeeded(image: Image, facts: ImageFacts, policy: Policy, now: Date): boolean {
  const share = knownShare(image, facts);
  if (!share || !isSharedBeyondAccount(share, facts.accountId)) return false;
  if (policy.sharedImages !== 'check-usage') return false;
  const usage = facts.usage;
  if (usage === undefined || usage.status === 'none') return true;
  if (usage.status !== 'report') return false;
  const report = usage.report;
  const markedAt = markedAtOf(image);
  if (usedElsewhere(report, markedAt, now)) return false;
  if (isStale(report, now)) return true;
  const reference = markedAt ?? (policy.graceDays > 0 ? now : undefined);
  if (reference && predates(report, reference)) return true;
  return report.state === 'failed';
}

export type Assessment =
  | { outcome: 'silent' }
  | { outcome: typeof SHARED_IMAGE_KEPT | typeof SHARED_IN_USE | typeof SHARED_USE_UNKNOWN; reason: string };

const SILENT: Assessment = { outcome: 'silent' };

/** One assessment for all three guards, so at most one of them ever speaks. */
export function assessSharedImage(image: Image, facts: ImageFacts, policy: Policy, now: Date): Assessment {
  const markedAt = markedAtOf(image);
  const share = knownShare(image, facts);
  if (!share) {
    // The sweep records a failed read of the launch permissions as a usage error.
    if (facts.usage?.status !== 'error' || !isDue(markedAt, policy, now)) return SILENT;
    return {
      outcome: SHARED_USE_UNKNOWN,
      reason: `its launch permissions could not be read (${facts.usage.errorCode}), so it may be shared with accounts that still use it`,
    };
  }
  if (!isSharedBeyondAccount(share, facts.accountId)) return SILENT;
  const shared = describeShare(share, facts.accountId);
  if (policy.sharedImages === 'keep') {
    return {
      outcome: SHARED_IMAGE_KEPT,
      reason: `${shared}; the policy (sharedImages: keep) never removes shared images`,
    };
  }

  // Read in the consumer accounts themselves, so current: any use there keeps the image at once.
  const users = (facts.usedInTargets ?? []).filter((entry) => entry.references.length > 0);
  if (users.length > 0) {
    const listed = users.map(
      (entry) =>
        `${entry.accountId} (${entry.references
          .slice(0, 2)
          .map((reference) => `${reference.resourceType} ${reference.resource}`)
          .join(', ')}${entry.references.length > 2 ? ` and ${entry.references.length - 2} more` : ''})`,
    );
    return {
      outcome: SHARED_IN_USE,
      reason: `in use in ${users.length === 1 ? 'target account' : `${users.length} target accounts`} ${listed.join('; ')}`,
    };
  }

  const usage = facts.usage;
  const report = usage?.status === 'report' ? usage.report : undefined;
  // Shown use keeps the image whenever it is seen, marked or not, due or not: lag only hides uses,
  // and an image just unmarked for its use must not be marked again on the next run.
  if (report && usedElsewhere(report, markedAt, now)) {
    return {
      outcome: SHARED_IN_USE,
      reason: `${describeUse(report, facts.accountId)} (usage report ${report.reportId} of ${isoDay(report.createdAt)})`,
    };
  }
  // Before the removal is due the image is marked and scheduled as usual; the report is awaited.
  if (!isDue(markedAt, policy, now)) return SILENT;

  let why: string | undefined;
  if (usage === undefined) {
    why = 'no usage report yet, so its use there is unknown; one is requested';
  } else if (usage.status === 'none') {
    why = `no usable usage report (${usage.detail}), so its use there is unknown; one is requested`;
  } else if (usage.status === 'unsupported') {
    why = `AMI usage reports are not available here (${usage.detail}), so its use in the accounts it reaches is unknown; kept to be safe`;
  } else if (usage.status === 'error') {
    why = `its AMI usage could not be read (${usage.errorCode}: ${usage.detail})`;
  } else {
    why = reportHold(usage.report, markedAt, policy, now);
  }
  return why === undefined ? SILENT : { outcome: SHARED_USE_UNKNOWN, reason: `${shared}: ${why}` };
}

/** Why a report cannot clear the image yet, or undefined when it does. */
function reportHold(
  report: ImageUsageReport,
  markedAt: Date | undefined,
  policy: Policy,
  now: Date,
): string | undefined {
  const name = `usage report ${report.reportId}`;
  const created = isoDay(report.createdAt);
  if (isStale(report, now)) {
    return `${name} of ${created} is more than ${USAGE_REPORT_MAX_AGE_DAYS} days old; a fresh one is requested`;
  }
  if (markedAt && predates(report, markedAt)) {
    return `${name} of ${created} predates the mark (${isoDay(markedAt)}); a fresh one is requested`;
  }
  if (report.state === 'failed') {
    return `${name} failed (${report.stateReason ?? 'no reason given'}); a new one is requested`;
  }
  if (report.state !== 'available') {
    return `${name} requested ${created} is not complete yet (${report.state})`;
  }
  const countsFrom = new Date(report.createdAt.getTime() + policy.usageReportMinAgeDays * DAY_MS);
  if (countsFrom.getTime() > now.getTime()) {
    return `${name} of ${created} is too recent to clear it: reports lag, so it counts from ${isoDay(countsFrom)}`;
  }
  return undefined;
}

/** Keep while a complete report shows use elsewhere: reason names the accounts and counts. */
export const sharedInUse: Rule = {
  id: SHARED_IN_USE,
  stage: 'guard',
  schema: {},
  evaluate: (image, facts, policy, now) => keepWhen(SHARED_IN_USE, image, facts, policy, now),
};

/** Keep (and hold the mark) while the removal is due and the image's use elsewhere is unknown. */
export const sharedUseUnknown: Rule = {
  id: SHARED_USE_UNKNOWN,
  stage: 'guard',
  schema: {},
  evaluate: (image, facts, policy, now) => keepWhen(SHARED_USE_UNKNOWN, image, facts, policy, now),
};

/** Keep every shared image when the policy says shared images are never removed. */
export const sharedImageKept: Rule = {
  id: SHARED_IMAGE_KEPT,
  stage: 'guard',
  schema: {},
  evaluate: (image, facts, policy, now) => keepWhen(SHARED_IMAGE_KEPT, image, facts, policy, now),
};

function keepWhen(
  outcome: Exclude<Assessment['outcome'], 'silent'>,
  image: Image,
  facts: ImageFacts,
  policy: Policy,
  now: Date,
) {
  const assessment = assessSharedImage(image, facts, policy, now);
  return assessment.outcome === outcome ? [{ kind: 'keep' as const, reason: assessment.reason }] : [];
}

/**
 * The launch permissions where they were read; otherwise DescribeImages' public flag, which
 * alone proves the image reaches every account. Unread and not public: unknown, not shared.
 */
function knownShare(image: Image, facts: ImageFacts): SharePermissions | undefined {
  if (facts.sharing) return facts.sharing;
  if (!image.public) return undefined;
  return { public: true, accounts: [], organizations: [], organizationalUnits: [] };
}

function markedAtOf(image: Image): Date | undefined {
  const value = image.tags[MARKED_AT_TAG];
  if (value === undefined) return undefined;
  const parsed = new Date(value);
  return Number.isNaN(parsed.getTime()) ? undefined : parsed;
}

/** The planner's own test: removable once the grace period since the mark is over. */
function isDue(markedAt: Date | undefined, policy: Policy, now: Date): boolean {
  if (policy.graceDays === 0) return true;
  return markedAt !== undefined && markedAt.getTime() + policy.graceDays * DAY_MS <= now.getTime();
}

function isStale(report: ImageUsageReport, now: Date): boolean {
  return now.getTime() - report.createdAt.getTime() > USAGE_REPORT_MAX_AGE_DAYS * DAY_MS;
}

function predates(report: ImageUsageReport, markedAt: Date): boolean {
  return report.createdAt.getTime() < markedAt.getTime() - SAME_RUN_MS;
}

/** A complete, current report, not older than the mark, with any use at all. */
function usedElsewhere(report: ImageUsageReport, markedAt: Date | undefined, now: Date): boolean {
  if (report.state !== 'available' || isStale(report, now)) return false;
  if (markedAt && predates(report, markedAt)) return false;
  return report.entries.some((entry) => entry.usageCount > 0);
}

function describeShare(share: SharePermissions, ownAccountId: string): string {
  const accounts = share.accounts.filter((id) => id !== ownAccountId).length;
  const parts = [
    ...(accounts > 0 ? [plural(accounts, 'account')] : []),
    ...(share.organizations.length > 0 ? [plural(share.organizations.length, 'organization')] : []),
    ...(share.organizationalUnits.length > 0 ? [plural(share.organizationalUnits.length, 'OU')] : []),
  ];
  const withWhom = parts.length > 0 ? `shared with ${joinAnd(parts)}` : '';
  if (!share.public) return withWhom;
  return withWhom ? `public and ${withWhom}` : 'public';
}

const TYPE_NAMES: Readonly<Record<string, [string, string]>> = {
  'ec2:Instance': ['instance', 'instances'],
  'ec2:LaunchTemplate': ['launch template', 'launch templates'],
};
const TYPE_ORDER = Object.keys(TYPE_NAMES);

/** e.g. "used by 3 instances and 1 launch template in 2 other accounts: 111111111111, 222222222222". */
function describeUse(report: ImageUsageReport, ownAccountId: string): string {
  const byType = new Map<string, number>();
  const byAccount = new Map<string, number>();
  for (const entry of report.entries) {
    if (entry.usageCount <= 0) continue;
    byType.set(entry.resourceType, (byType.get(entry.resourceType) ?? 0) + entry.usageCount);
    byAccount.set(entry.accountId, (byAccount.get(entry.accountId) ?? 0) + entry.usageCount);
  }
  const rank = (type: string) => {
    const index = TYPE_ORDER.indexOf(type);
    return index === -1 ? TYPE_ORDER.length : index;
  };
  const types = [...byType]
    .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b))
    .map(([type, count]) => {
      const names = TYPE_NAMES[type];
      return names ? `${count} ${count === 1 ? names[0] : names[1]}` : `${count} ${type}`;
    });
  // Most use first, so the accounts a person should ask come before the "and N more".
  const accounts = [...byAccount]
    .sort(([a, x], [b, y]) => y - x || a.localeCompare(b))
    .map(([id]) => (id === ownAccountId ? 'this account' : id));
  const listed = accounts.slice(0, LISTED_ACCOUNTS).join(', ');
  const more = accounts.length > LISTED_ACCOUNTS ? ` and ${accounts.length - LISTED_ACCOUNTS} more` : '';
  const other = byAccount.has(ownAccountId) ? '' : 'other ';
  const where = `${accounts.length} ${other}${accounts.length === 1 ? 'account' : 'accounts'}`;
  return `used by ${joinAnd(types)} in ${where}: ${listed}${more}`;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

function joinAnd(parts: readonly string[]): string {
  if (parts.length <= 1) return parts.join('');
  return `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}`;
}
