import type {
  ActionOutcome,
  DeferredImage,
  Finding,
  Plan,
  ScheduledRemoval,
  SnapshotActionOutcome,
  SnapshotPlan,
} from '../model.ts';
import { ARCHIVE_PRICE_PER_GB_MONTH_USD } from '../rules/undo-window.ts';
import type { TrailHealth } from './account-audit.ts';

export interface ImageFinding extends Finding {
  imageId: string;
  name: string;
}

/** A finding about the account or Region rather than one image (e.g. no CloudTrail trail). */
export interface AccountFinding extends Finding {
  resourceId: string;
}

export interface AttributionSummary {
  /** Images without the creator tag that were looked up in CloudTrail. */
  examined: number;
  found: number;
  tagged: number;
  /** Untagged images older than CloudTrail's 90-day event history, which cannot be looked up. */
  skipped: number;
}

export interface RunTotals {
  images: number;
  kept: number;
  eligible: number;
  findings: number;
  /** Actions that would run: planned (plan) or skipped by dry run (apply with dryRun). */
  pending: number;
  /** Images marked and unmarked; snapshots have snapshotsMarked and snapshotsUnmarked. */
  marked: number;
  unmarked: number;
  deregistered: number;
  /** Actions on images and snapshots alike that found their resource gone, were vetoed, failed or never started. */
  alreadyGone: number;
  skipped: number;
  failed: number;
  notReached: number;
  scheduled: number;
  deferred: number;
  /** Every snapshot deleted this run: with its image, or as an orphan. */
  snapshotsDeleted: number;
  snapshotsFailed: number;
  /** Snapshots examined for orphans, and how they were decided and handled. */
  snapshots: number;
  snapshotsKept: number;
  orphans: number;
  snapshotsMarked: number;
  snapshotsUnmarked: number;
  orphansDeleted: number;
  snapshotsScheduled: number;
  snapshotsDeferred: number;
}

/** Standard-tier EBS snapshot storage, per GB-month, in US East; other Regions differ slightly. */
export const SNAPSHOT_PRICE_PER_GB_MONTH_USD = 0.05;

export interface CostEstimate {
  pricePerGbMonthUsd: number;
  /** Snapshot GiB actually deleted this run. */
  reclaimedGiB: number;
  /** Snapshot GiB this run would delete: a plan's or a dry run's deletions. */
  reclaimableGiB: number;
  /** Orphaned snapshot GiB marked (before or by this run) and waiting for the grace period to end. */
  scheduledGiB: number;
  /** Snapshot GiB moved (or, in a plan, to be moved) to the archive tier, at their full size. */
  archivedGiB: number;
  archivePricePerGbMonthUsd: number;
  /** (reclaimed + reclaimable) × price, plus archived × (price − archive price). */
  estimatedMonthlySavingUsd: number;
  /** The last day a removal of this run stays in the Recycle Bin, still billed: the saving starts after. */
  billedInRecycleBinUntil?: string;
  note: string;
}

export interface RunReport {
  mode: 'plan' | 'apply';
  dryRun: boolean;
  accountId: string;
  region: string;
  asOf: string;
  startedAt: string;
  finishedAt: string;
  /** False when the time budget stopped the run before every action was attempted. */
  complete: boolean;
  totals: RunTotals;
  cap: Plan['cap'];
  decisions: Plan['decisions'];
  actions: ActionOutcome[];
  scheduled: ScheduledRemoval[];
  deferred: DeferredImage[];
  findings: ImageFinding[];
  accountFindings: AccountFinding[];
  snapshotDecisions: SnapshotPlan['decisions'];
  snapshotActions: SnapshotActionOutcome[];
  snapshotScheduled: SnapshotPlan['scheduled'];
  snapshotDeferred: SnapshotPlan['deferred'];
  cost: CostEstimate;
  trail?: TrailHealth;
  attribution?: AttributionSummary;
  /** Which invocation of a run this is, for a run that continued across invocations. */
  run?: { runId: string; invocation: number; startedAt: string };
  /**
   * A continued invocation did not read again what uses the images it does not remove (kept
   * whatever uses them, or not due yet): their decisions are flagged `carried`. `firstInvocation`
   * is what the run's first invocation, which read it, decided: its kept images by rule (`in-use`
   * among them).
   */
  carried?: CarriedDecisions;
  /**
   * Whether a removal candidate not due yet may still need its mark (left undecided, or its mark
   * not done): the next invocation of a continued run then reads those candidates again.
   */
  imageMarksLeft?: boolean;
  warnings: string[];
}

export interface CarriedDecisions {
  /** This invocation's decisions flagged `carried`. */
  decisions: number;
  firstInvocation?: { keptByRule: Record<string, number> };
  note: string;
}

export interface ReportMeta {
  mode: 'plan' | 'apply';
  dryRun: boolean;
  startedAt: Date;
  finishedAt: Date;
  warnings: string[];
  accountFindings?: AccountFinding[];
  trail?: TrailHealth;
  attribution?: AttributionSummary;
  snapshotOutcomes?: SnapshotActionOutcome[];
  /** GiB by snapshot id, for every snapshot the run knows, to price what it removes. */
  snapshotSizes?: ReadonlyMap<string, number>;
  /** Removal candidates (orphans, images) not decided for lack of time: the run is not complete. */
  undecided?: number;
  /** Decisions a continued invocation carried (see RunReport.carried). */
  carried?: number;
  imageMarksLeft?: boolean;
}

/** What the report says of carried decisions. */
export const CARRIED_NOTE =
  "images this continued invocation does not remove (kept whatever uses them, or not due yet): it did not read their references again, so their reasons may leave out what uses them; the run's first invocation read them and logged its decisions";

export function buildReport(plan: Plan, outcomes: ActionOutcome[], meta: ReportMeta): RunReport {
  const findings = plan.decisions.flatMap((decision) =>
    decision.findings.map((finding) => ({ imageId: decision.imageId, name: decision.name, ...finding })),
  );
  const snapshotOutcomes = meta.snapshotOutcomes ?? [];
  const snapshotPlan = plan.snapshots;
  const all: { action: { kind: string }; status: string }[] = [...outcomes, ...snapshotOutcomes];
  const count = (kind: string, ...statuses: string[]) =>
    all.filter((o) => (kind === '*' || o.action.kind === kind) && statuses.includes(o.status)).length;
  // Images and snapshots each have their own mark counters (marked, snapshotsMarked).
  const countImages = (kind: string, status: string) =>
    outcomes.filter((o) => o.action.kind === kind && o.status === status).length;
  const countSnapshots = (kind: string, status: string) =>
    snapshotOutcomes.filter((o) => o.action.kind === kind && o.status === status).length;
  const imageSnapshots = outcomes.flatMap((o) => o.snapshots);
  const orphansDeleted = countSnapshots('delete', 'done');
  const warnings = [...meta.warnings];
  if (plan.cap.capped) {
    warnings.push(
      `blast-radius cap: ${plan.cap.eligible} images were due for removal but only ${plan.cap.limit} may be removed per run; ${plan.deferred.length} deferred`,
    );
  }
  if (snapshotPlan?.cap.capped) {
    warnings.push(
      `blast-radius cap: ${snapshotPlan.cap.eligible} orphaned snapshots were due for deletion but only ${snapshotPlan.cap.limit} may be deleted per run; ${snapshotPlan.deferred.length} deferred`,
    );
  }
  return {
    mode: meta.mode,
    dryRun: meta.dryRun,
    accountId: plan.accountId,
    region: plan.region,
    asOf: plan.asOf,
    startedAt: meta.startedAt.toISOString(),
    finishedAt: meta.finishedAt.toISOString(),
    complete: !all.some((o) => o.status === 'not-reached') && !meta.undecided,
    totals: {
      images: plan.inventorySize,
      kept: plan.decisions.filter((d) => d.verdict === 'keep').length,
      eligible: plan.decisions.filter((d) => d.verdict === 'expire').length,
      findings: findings.length + (meta.accountFindings?.length ?? 0),
      pending: count('*', 'planned', 'dry-run'),
      marked: countImages('mark', 'done'),
      unmarked: countImages('unmark', 'done'),
      deregistered: count('deregister', 'done'),
      alreadyGone: count('*', 'already-gone'),
      skipped: count('*', 'skipped'),
      failed: count('*', 'failed'),
      notReached: count('*', 'not-reached'),
      scheduled: plan.scheduled.length,
      deferred: plan.deferred.length,
      snapshotsDeleted: imageSnapshots.filter((s) => s.status === 'deleted').length + orphansDeleted,
      snapshotsFailed:
        imageSnapshots.filter((s) => s.status === 'failed').length + countSnapshots('delete', 'failed'),
      snapshots: snapshotPlan?.inventorySize ?? 0,
      snapshotsKept: snapshotPlan?.decisions.filter((d) => d.verdict === 'keep').length ?? 0,
      orphans: snapshotPlan?.decisions.filter((d) => d.verdict === 'orphan').length ?? 0,
      snapshotsMarked: countSnapshots('mark', 'done'),
      snapshotsUnmarked: countSnapshots('unmark', 'done'),
      orphansDeleted,
      snapshotsScheduled: snapshotPlan?.scheduled.length ?? 0,
      snapshotsDeferred: snapshotPlan?.deferred.length ?? 0,
    },
    cap: plan.cap,
    decisions: plan.decisions,
    actions: outcomes,
    scheduled: plan.scheduled,
    deferred: plan.deferred,
    findings,
    accountFindings: meta.accountFindings ?? [],
    snapshotDecisions: snapshotPlan?.decisions ?? [],
    snapshotActions: snapshotOutcomes,
    snapshotScheduled: snapshotPlan?.scheduled ?? [],
    snapshotDeferred: snapshotPlan?.deferred ?? [],
    cost: estimateCost(plan, outcomes, snapshotOutcomes, meta.snapshotSizes ?? new Map()),
    ...(meta.trail ? { trail: meta.trail } : {}),
    ...(meta.attribution ? { attribution: meta.attribution } : {}),
    ...(meta.carried ? { carried: { decisions: meta.carried, note: CARRIED_NOTE } } : {}),
    ...(meta.imageMarksLeft === undefined ? {} : { imageMarksLeft: meta.imageMarksLeft }),
    warnings,
  };
}

const WOULD = new Set(['planned', 'dry-run']);

/**
 * Prices the snapshots a run removes. An upper bound: snapshots are incremental, so deleting one
 * frees only the blocks no other snapshot of the same volume still holds.
 */
function estimateCost(
  plan: Plan,
  outcomes: readonly ActionOutcome[],
  snapshotOutcomes: readonly SnapshotActionOutcome[],
  sizes: ReadonlyMap<string, number>,
): CostEstimate {
  const size = (snapshotId: string) => sizes.get(snapshotId) ?? 0;
  let reclaimed = 0;
  let reclaimable = 0;
  for (const outcome of outcomes) {
    if (outcome.action.kind !== 'deregister') continue;
    if (WOULD.has(outcome.status)) {
      for (const id of outcome.action.snapshotIds ?? []) reclaimable += size(id);
    }
    for (const snapshot of outcome.snapshots)
      if (snapshot.status === 'deleted') reclaimed += size(snapshot.snapshotId);
  }
  let marked = 0;
  let archived = 0;
  let binnedUntil: string | undefined;
  const inBin = (recovery: ActionOutcome['recovery']) => {
    if (recovery?.recoverable && (binnedUntil === undefined || recovery.until > binnedUntil))
      binnedUntil = recovery.until;
  };
  for (const outcome of outcomes) inBin(outcome.recovery);
  for (const outcome of snapshotOutcomes) {
    inBin(outcome.recovery);
    if (outcome.action.kind === 'archive' && (outcome.status === 'done' || WOULD.has(outcome.status))) {
      archived += outcome.action.sizeGiB;
    }
    if (outcome.action.kind === 'mark' && (outcome.status === 'done' || WOULD.has(outcome.status))) {
      marked += outcome.action.sizeGiB;
    }
    if (outcome.action.kind !== 'delete') continue;
    if (outcome.status === 'done') reclaimed += outcome.action.sizeGiB;
    if (WOULD.has(outcome.status)) reclaimable += outcome.action.sizeGiB;
  }
  const scheduled = (plan.snapshots?.scheduled ?? []).reduce((sum, entry) => sum + entry.sizeGiB, marked);
  const round = (value: number) => Math.round(value * 100) / 100;
  const notes = [
    'upper bound: snapshots are incremental, so deleting one frees only the blocks no other snapshot still holds; priced at standard-tier $0.05 per GB-month',
  ];
  if (archived > 0) {
    notes.push(
      'archived snapshots are priced at the archive tier ($0.0125 per GB-month) at their full size, since archiving stores an incremental snapshot in full, and are billed 90 days at least',
    );
  }
  if (binnedUntil !== undefined) {
    notes.push(
      `removals kept in the Recycle Bin are still billed until their retention ends (the last on ${binnedUntil.slice(0, 10)}): the saving starts then`,
    );
  }
  return {
    pricePerGbMonthUsd: SNAPSHOT_PRICE_PER_GB_MONTH_USD,
    reclaimedGiB: round(reclaimed),
    reclaimableGiB: round(reclaimable),
    scheduledGiB: round(scheduled),
    archivedGiB: round(archived),
    archivePricePerGbMonthUsd: ARCHIVE_PRICE_PER_GB_MONTH_USD,
    estimatedMonthlySavingUsd: round(
      (reclaimed + reclaimable) * SNAPSHOT_PRICE_PER_GB_MONTH_USD +
        archived * (SNAPSHOT_PRICE_PER_GB_MONTH_USD - ARCHIVE_PRICE_PER_GB_MONTH_USD),
    ),
    ...(binnedUntil === undefined ? {} : { billedInRecycleBinUntil: binnedUntil }),
    note: notes.join('; '),
  };
}
