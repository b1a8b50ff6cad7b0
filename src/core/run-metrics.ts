import type { Finding, Severity } from '../model.ts';
import type { OrgDigest } from './org-digest.ts';
import type { RunReport } from './report.ts';

/**
 * What a run measures, as CloudWatch metric data points: plain data built from the run report (or
 * the organisation digest, or an audited event), which src/metrics.ts publishes in CloudWatch's
 * embedded metric format. Nothing here reads a clock or the environment.
 *
 * CloudWatch bills every distinct name and set of dimension values as a metric of its own, so
 * dimensions take only values from a small, fixed vocabulary: image or snapshot, a verdict, a rule
 * id, a severity, an error code. Ids, names, tags and messages never become dimensions. Neither do
 * account ids and Regions: an organisation of 400 targets would turn each series into 400. Each
 * point's blob carries the account and Region as metadata instead (src/metrics.ts), which Logs
 * Insights can group by at no metric cost, and the run report in the log names everything.
 */

/** The CloudWatch units used here; the whole list is in @aws-lambda-powertools/metrics. */
export type MetricUnit = 'Count' | 'Milliseconds' | 'Gigabytes' | 'None';

/** Every metric and its unit, so a name always comes with the same unit. */
export const METRICS = {
  // Each sweep invocation (sweep, sweep-target).
  SweepCompleted: 'Count',
  SweepUnfinished: 'Count',
  SweepDuration: 'Milliseconds',
  ThrottledCalls: 'Count',
  ImagesMarked: 'Count',
  ImagesUnmarked: 'Count',
  ImagesDeprecated: 'Count',
  ImagesDisabled: 'Count',
  ImagesDeregistered: 'Count',
  SnapshotsMarked: 'Count',
  SnapshotsUnmarked: 'Count',
  SnapshotsArchived: 'Count',
  SnapshotsDeleted: 'Count',
  ActionsPending: 'Count',
  ActionsNotReached: 'Count',
  Failures: 'Count',
  ReclaimedGiB: 'Gigabytes',
  ReclaimableGiB: 'Gigabytes',
  ArchivedGiB: 'Gigabytes',
  EstimatedMonthlySavingUsd: 'None',
  // A run's first invocation only: the account as the run found it.
  Images: 'Count',
  Snapshots: 'Count',
  Decisions: 'Count',
  ImagesScheduled: 'Count',
  ImagesDeferred: 'Count',
  SnapshotsScheduled: 'Count',
  SnapshotsDeferred: 'Count',
  Findings: 'Count',
  // Each audited event (on-image-event).
  ImageEvents: 'Count',
  EventFindings: 'Count',
  EventRemediations: 'Count',
  // Each organisation run (aggregate).
  OrgSweepCompleted: 'Count',
  Targets: 'Count',
  TargetsDone: 'Count',
  TargetsStopped: 'Count',
  TargetsFailed: 'Count',
  TargetListingFailed: 'Count',
  Accounts: 'Count',
  Regions: 'Count',
} as const satisfies Record<string, MetricUnit>;

export type MetricName = keyof typeof METRICS;

export interface MetricPoint {
  name: MetricName;
  unit: MetricUnit;
  value: number;
  /** Beyond the default dimensions (service, stage) that every point has; empty for most. */
  dimensions: Readonly<Record<string, string>>;
}

/** Context for the blobs that is not a dimension: searchable in the log, never a metric of its own. */
export type MetricMetadata = Readonly<Record<string, string | number>>;

/** How a handler publishes its points; src/metrics.ts implements it over Powertools. */
export interface MetricsPort {
  /** First thing in an invocation: the throttle count starts from zero. */
  startInvocation(): void;
  /** AWS attempts refused by throttling since startInvocation. */
  throttledCalls(): number;
  /** Publishes the points; never throws, since a metric is never worth failing a run for. */
  publish(points: readonly MetricPoint[], metadata?: MetricMetadata): void;
}

const SEVERITIES: readonly Severity[] = ['critical', 'high', 'medium', 'low'];

/** Error codes per blob set, the most frequent first; the rest are counted as `Other`. */
export const MAX_ERROR_CODES = 10;
export const OTHER = 'Other';

/** AWS error codes and error names: `RequestLimitExceeded`, `InvalidAMIID.NotFound`, `States.Timeout`. */
const ERROR_CODE = /^[A-Za-z][A-Za-z0-9._:-]{0,63}$/;
/** Rule ids and the other vocabularies here are kebab-case words. */
const WORD = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** What one invocation measured beside its report. */
export interface SweepMeasures {
  /** Which invocation of its run this is: 1 for the first, and for a run that never continues. */
  invocation: number;
  durationMs: number;
  throttledCalls: number;
}

/**
 * A sweep invocation's points, from its own report: the one runSweep returned, before
 * continueReport adds what earlier invocations did (those were published by their invocations).
 * What was done counts in every invocation, so sums over any period add up. What the run found
 * (the inventory's verdicts, findings, what is scheduled or deferred) is re-read by each
 * invocation of a continued run, so only the first one publishes it: a day's sum is one count of
 * the account, as the report's own inventory totals are.
 */
export function sweepMetrics(report: RunReport, measures: SweepMeasures): MetricPoint[] {
  if ((report.run?.invocation ?? 1) > 1) {
    throw new RangeError(
      `a continued report holds earlier invocations' totals; pass invocation ${report.run?.invocation}'s own report, as runSweep returned it`,
    );
  }
  const { totals, cost } = report;
  const points = [
    point('SweepCompleted', 1),
    point('SweepUnfinished', report.complete ? 0 : 1),
    point('SweepDuration', Math.max(0, Math.round(measures.durationMs))),
    point('ThrottledCalls', measures.throttledCalls),
    point('ImagesMarked', totals.marked),
    point('ImagesUnmarked', totals.unmarked),
    point('ImagesDeprecated', report.actions.filter(deprecated).length),
    point(
      'ImagesDisabled',
      report.actions.filter((o) => o.action.kind === 'disable' && o.status === 'done').length,
    ),
    point('ImagesDeregistered', totals.deregistered),
    point('SnapshotsMarked', totals.snapshotsMarked),
    point('SnapshotsUnmarked', totals.snapshotsUnmarked),
    point(
      'SnapshotsArchived',
      report.snapshotActions.filter((o) => o.action.kind === 'archive' && o.status === 'done').length,
    ),
    point('SnapshotsDeleted', totals.snapshotsDeleted),
    point('ActionsPending', totals.pending),
    point('ActionsNotReached', totals.notReached),
    ...failurePoints(report),
    point('ReclaimedGiB', cost.reclaimedGiB),
    point('ReclaimableGiB', cost.reclaimableGiB),
    point('ArchivedGiB', cost.archivedGiB),
    point('EstimatedMonthlySavingUsd', cost.estimatedMonthlySavingUsd),
  ];
  if (measures.invocation === 1) points.push(...inventoryPoints(report));
  return points;
}

/** A mark that set the image's deprecation: the executor warns instead when it could not. */
function deprecated(outcome: RunReport['actions'][number]): boolean {
  const { action } = outcome;
  return (
    action.kind === 'mark' &&
    outcome.status === 'done' &&
    action.touchDeprecation === true &&
    (action.deprecateAt ?? action.removeAfter) !== undefined &&
    !outcome.warnings.some((warning) => warning.startsWith('deprecation not set'))
  );
}

/**
 * Every failed action and every snapshot that failed to go with its image, in total and by error
 * code. An image's snapshots carry no code of their own, only a detail the executor starts with
 * it (`InvalidSnapshot.InUse: ...`) or with the code DeleteAssociatedSnapshots returned.
 */
function failurePoints(report: RunReport): MetricPoint[] {
  const codes: string[] = [];
  for (const outcome of report.actions) {
    if (outcome.status === 'failed') codes.push(outcome.errorCode ?? 'UnknownError');
    for (const snapshot of outcome.snapshots) {
      if (snapshot.status === 'failed') codes.push(snapshotFailureCode(snapshot.detail));
    }
  }
  for (const outcome of report.snapshotActions) {
    if (outcome.status === 'failed') codes.push(outcome.errorCode ?? 'UnknownError');
  }
  return [
    point('Failures', codes.length),
    ...countBounded(codes.map(errorCodeValue)).map(([errorCode, count]) =>
      point('Failures', count, { errorCode }),
    ),
  ];
}

function snapshotFailureCode(detail: string | undefined): string {
  const associated = /^DeleteAssociatedSnapshots returned ([\w-]+)$/.exec(detail ?? '');
  if (associated?.[1]) return associated[1];
  const code = /^([^\s:]+): /.exec(detail ?? '');
  return code?.[1] ?? 'UnknownError';
}

function inventoryPoints(report: RunReport): MetricPoint[] {
  const { totals } = report;
  const byRule = (kind: 'image' | 'snapshot', decisions: readonly { verdict: string; rule: string }[]) =>
    countBy(decisions, (decision) => `${decision.verdict}\u0000${wordValue(decision.rule)}`).map(
      ([key, count]) => {
        const [verdict = '', rule = ''] = key.split('\u0000');
        return point('Decisions', count, { kind, verdict, rule });
      },
    );
  const findings: Finding[] = [...report.findings, ...report.accountFindings];
  return [
    point('Images', totals.images),
    point('Snapshots', totals.snapshots),
    point('Decisions', totals.kept, { kind: 'image', verdict: 'keep' }),
    point('Decisions', totals.eligible, { kind: 'image', verdict: 'expire' }),
    point('Decisions', totals.snapshotsKept, { kind: 'snapshot', verdict: 'keep' }),
    point('Decisions', totals.orphans, { kind: 'snapshot', verdict: 'orphan' }),
    ...byRule('image', report.decisions),
    ...byRule('snapshot', report.snapshotDecisions),
    point('ImagesScheduled', totals.scheduled),
    point('ImagesDeferred', totals.deferred),
    point('SnapshotsScheduled', totals.snapshotsScheduled),
    point('SnapshotsDeferred', totals.snapshotsDeferred),
    ...findingPoints('Findings', totals.findings, findings, true),
  ];
}

/**
 * Findings in total, by severity (every severity, zero included, when `allSeverities`) and by
 * severity and rule.
 */
function findingPoints(
  name: 'Findings' | 'EventFindings',
  total: number,
  findings: readonly Finding[],
  allSeverities: boolean,
): MetricPoint[] {
  const present = new Set(findings.map((finding) => finding.severity));
  return [
    point(name, total),
    ...SEVERITIES.filter((severity) => allSeverities || present.has(severity)).map((severity) =>
      point(name, findings.filter((finding) => finding.severity === severity).length, { severity }),
    ),
    ...countBy(findings, (finding) => `${finding.severity}\u0000${wordValue(finding.rule)}`).map(
      ([key, count]) => {
        const [severity = '', rule = ''] = key.split('\u0000');
        return point(name, count, { severity, rule });
      },
    ),
  ];
}

/** What the event handler returned, as far as the metrics read it. */
export interface ImageEventMeasures {
  /** The handler's result status: `tagged`, `alerted`, `ignored`, `rejected`, ... */
  status: string;
  findings?: readonly Finding[];
  remediation?: string;
  throttledCalls: number;
}

/** One audited (or dropped) CloudTrail event: its outcome, its findings and any remediation. */
export function imageEventMetrics(event: ImageEventMeasures): MetricPoint[] {
  const findings = event.findings ?? [];
  return [
    point('ImageEvents', 1),
    point('ImageEvents', 1, { outcome: wordValue(event.status) }),
    ...findingPoints('EventFindings', findings.length, findings, false),
    ...(event.remediation ? [point('EventRemediations', 1, { result: wordValue(event.remediation) })] : []),
    point('ThrottledCalls', event.throttledCalls),
  ];
}

/** One organisation run, from its digest: how many targets were swept, stopped and failed, and why. */
export function organisationMetrics(digest: OrgDigest): MetricPoint[] {
  const failedCodes = digest.failures.flatMap((account) =>
    account.problems.filter((problem) => problem.kind === 'failed').map((problem) => problem.code ?? ''),
  );
  return [
    point('OrgSweepCompleted', 1),
    point('Targets', digest.targets.total),
    point('TargetsDone', digest.targets.done),
    point('TargetsStopped', digest.targets.stopped),
    point('TargetsFailed', digest.targets.failed),
    ...countBounded(failedCodes.map(errorCodeValue)).map(([errorCode, count]) =>
      point('TargetsFailed', count, { errorCode }),
    ),
    point('TargetListingFailed', digest.listingError ? 1 : 0),
    point('Accounts', digest.accounts),
    point('Regions', digest.regions),
  ];
}

function point(name: MetricName, value: number, dimensions: Record<string, string> = {}): MetricPoint {
  return { name, unit: METRICS[name], value, dimensions };
}

/** An error code as a dimension value: itself when it looks like one, else `Other`. */
export function errorCodeValue(code: string): string {
  return ERROR_CODE.test(code) ? code : OTHER;
}

/** A rule id, verdict or status as a dimension value: itself when it is a plain word, else `other`. */
export function wordValue(value: string): string {
  return WORD.test(value) ? value : OTHER.toLowerCase();
}

/** Counts by key, the most frequent first, then by key, so the points come out in a stable order. */
function countBy<T>(items: readonly T[], key: (item: T) => string): [string, number][] {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

/** Counts of values, at most MAX_ERROR_CODES of them: the least frequent are folded into `Other`. */
function countBounded(values: readonly string[]): [string, number][] {
  const counts = countBy(values, (value) => value);
  if (counts.length <= MAX_ERROR_CODES) return counts;
  const kept = counts.filter(([value]) => value !== OTHER).slice(0, MAX_ERROR_CODES - 1);
  const folded = values.length - kept.reduce((sum, [, count]) => sum + count, 0);
  return [...kept, [OTHER, folded]];
}
