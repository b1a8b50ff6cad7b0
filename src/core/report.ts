import type { ActionOutcome, DeferredImage, Finding, Plan, ScheduledRemoval } from '../model.ts';
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
  marked: number;
  unmarked: number;
  deregistered: number;
  alreadyGone: number;
  skipped: number;
  failed: number;
  notReached: number;
  scheduled: number;
  deferred: number;
  snapshotsDeleted: number;
  snapshotsFailed: number;
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
  trail?: TrailHealth;
  attribution?: AttributionSummary;
  warnings: string[];
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
}

export function buildReport(plan: Plan, outcomes: ActionOutcome[], meta: ReportMeta): RunReport {
  const findings = plan.decisions.flatMap((decision) =>
    decision.findings.map((finding) => ({ imageId: decision.imageId, name: decision.name, ...finding })),
  );
  const count = (kind: string, ...statuses: string[]) =>
    outcomes.filter((o) => (kind === '*' || o.action.kind === kind) && statuses.includes(o.status)).length;
  const snapshots = outcomes.flatMap((o) => o.snapshots);
  const warnings = [...meta.warnings];
  if (plan.cap.capped) {
    warnings.push(
      `blast-radius cap: ${plan.cap.eligible} images were due for removal but only ${plan.cap.limit} may be removed per run; ${plan.deferred.length} deferred`,
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
    complete: !outcomes.some((o) => o.status === 'not-reached'),
    totals: {
      images: plan.inventorySize,
      kept: plan.decisions.filter((d) => d.verdict === 'keep').length,
      eligible: plan.decisions.filter((d) => d.verdict === 'expire').length,
      findings: findings.length + (meta.accountFindings?.length ?? 0),
      pending: count('*', 'planned', 'dry-run'),
      marked: count('mark', 'done'),
      unmarked: count('unmark', 'done'),
      deregistered: count('deregister', 'done'),
      alreadyGone: count('*', 'already-gone'),
      skipped: count('*', 'skipped'),
      failed: count('*', 'failed'),
      notReached: count('*', 'not-reached'),
      scheduled: plan.scheduled.length,
      deferred: plan.deferred.length,
      snapshotsDeleted: snapshots.filter((s) => s.status === 'deleted').length,
      snapshotsFailed: snapshots.filter((s) => s.status === 'failed').length,
    },
    cap: plan.cap,
    decisions: plan.decisions,
    actions: outcomes,
    scheduled: plan.scheduled,
    deferred: plan.deferred,
    findings,
    accountFindings: meta.accountFindings ?? [],
    ...(meta.trail ? { trail: meta.trail } : {}),
    ...(meta.attribution ? { attribution: meta.attribution } : {}),
    warnings,
  };
}
