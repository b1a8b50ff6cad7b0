import type { AccountAuditReport } from '../core/account-audit.ts';
import type { RunReport, RunTotals } from '../core/report.ts';
import type { ResolvedTarget } from '../core/targets.ts';
import type { Severity } from '../model.ts';
import { oneLine, printable } from '../text.ts';

/**
 * What the CLI prints for a run over several targets: a line per target as it finishes, a heading
 * over each target's own report, a summary table, and the one JSON document of `--json`. Account
 * names and AWS's error messages reach these lines, so each is made printable and capped.
 */

/** One target's run: a report when it ran, the reason when it could not. */
export interface TargetResult<R> {
  target: ResolvedTarget;
  status: 'ok' | 'failed';
  /** Why the target has no report: a role that could not be assumed, facts that could not be gathered. */
  error?: string;
  report?: R;
  /** What this target alone would exit with. */
  exitCode: number;
}

export type SweepTargetResult = TargetResult<RunReport>;
export type AuditTargetResult = TargetResult<AccountAuditReport>;

/** An error quoted in a progress line or the table's STATUS column. */
const MAX_ERROR_CHARS = 300;
const MAX_STATUS_CHARS = 120;
const MAX_NAME_CHARS = 64;

/** What a sweep report counts as removed: done in an apply, to be done in a plan (or a dry run). */
export function removals(report: RunReport): { images: number; snapshots: number; gib: number } {
  if (report.mode === 'apply' && !report.dryRun) {
    return {
      images: report.totals.deregistered,
      snapshots: report.totals.snapshotsDeleted,
      gib: report.cost.reclaimedGiB,
    };
  }
  const deregistrations = report.actions.filter((o) => o.action.kind === 'deregister');
  return {
    images: deregistrations.length,
    snapshots:
      deregistrations.reduce((sum, o) => sum + (o.action.snapshotIds?.length ?? 0), 0) +
      report.snapshotActions.filter((o) => o.action.kind === 'delete').length,
    gib: report.cost.reclaimableGiB,
  };
}

function label(target: ResolvedTarget): string {
  return `${target.accountId} ${target.region}`;
}

/** Over each target's report in the text output. */
export function targetHeading(target: ResolvedTarget): string {
  const name = target.accountName ? ` (${oneLine(target.accountName, MAX_NAME_CHARS)})` : '';
  return printable(`=== Account ${target.accountId}${name} in ${target.region} ===`);
}

function failureLine(result: TargetResult<unknown>): string {
  return `FAILED ${printable(label(result.target))}: ${oneLine(result.error ?? 'unknown error', MAX_ERROR_CHARS)}`;
}

/** `ok 111111111111 eu-west-1: 3 eligible, 2 removed`, or `FAILED …: why`. */
export function sweepProgressLine(result: SweepTargetResult): string {
  const { report } = result;
  if (result.status === 'failed' || !report) return failureLine(result);
  const removed = removals(report);
  const verb = report.mode === 'apply' && !report.dryRun ? 'removed' : 'to remove';
  const failed = report.totals.failed + report.totals.snapshotsFailed;
  const notes = [...(failed > 0 ? [`${failed} failed`] : []), ...(report.complete ? [] : ['not complete'])];
  return printable(
    `ok ${label(result.target)}: ${report.totals.eligible} eligible, ${removed.images} ${verb}` +
      notes.map((note) => `, ${note}`).join(''),
  );
}

/** `ok 111111111111 eu-west-1: 4 findings (1 critical)`, or `FAILED …: why`. */
export function auditProgressLine(result: AuditTargetResult): string {
  const { report } = result;
  if (result.status === 'failed' || !report) return failureLine(result);
  const findings = report.findings.length;
  const critical = report.totals.critical > 0 ? ` (${report.totals.critical} critical)` : '';
  const unreadable = report.warnings.length > 0 ? `, ${report.warnings.length} not checked` : '';
  return printable(`ok ${label(result.target)}: ${findings} findings${critical}${unreadable}`);
}

function statusCell(result: TargetResult<unknown>, notes: string[]): string {
  if (result.status === 'failed')
    return `FAILED: ${oneLine(result.error ?? 'unknown error', MAX_STATUS_CHARS)}`;
  return ['ok', ...notes].join(', ');
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

function formatGiB(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

/** The summary table after the targets' reports: one row per target and a total. */
export function renderSweepTargets(
  results: readonly SweepTargetResult[],
  mode: 'plan' | 'apply',
  width: number | undefined,
): string {
  const applied = mode === 'apply';
  const headers = [
    'ACCOUNT',
    'REGION',
    'IMAGES',
    'ELIGIBLE',
    applied ? 'REMOVED' : 'TO REMOVE',
    'SNAPSHOTS',
    'GIB',
    'STATUS',
  ];
  const sum = { images: 0, eligible: 0, removed: 0, snapshots: 0, gib: 0 };
  const rows = results.map((result) => {
    const { report } = result;
    if (!report)
      return [result.target.accountId, result.target.region, '-', '-', '-', '-', '-', statusCell(result, [])];
    const removed = removals(report);
    sum.images += report.totals.images;
    sum.eligible += report.totals.eligible;
    sum.removed += removed.images;
    sum.snapshots += removed.snapshots;
    sum.gib += removed.gib;
    const failed = report.totals.failed + report.totals.snapshotsFailed;
    const notes = [
      ...(failed > 0 ? [`${failed} failed`] : []),
      ...(report.complete ? [] : ['not complete']),
      ...(report.warnings.length > 0 ? [plural(report.warnings.length, 'warning')] : []),
    ];
    return [
      result.target.accountId,
      result.target.region,
      String(report.totals.images),
      String(report.totals.eligible),
      String(removed.images),
      String(removed.snapshots),
      formatGiB(removed.gib),
      statusCell(result, notes),
    ];
  });
  const failedTargets = results.filter((result) => result.status === 'failed').length;
  const total = [
    'TOTAL',
    `${results.length} targets`,
    String(sum.images),
    String(sum.eligible),
    String(sum.removed),
    String(sum.snapshots),
    formatGiB(sum.gib),
    failedTargets > 0 ? `${failedTargets} FAILED` : 'ok',
  ];
  return [
    `Targets: ${results.length - failedTargets} ok, ${failedTargets} failed`,
    '',
    ...table(headers, [...rows, total], width),
  ].join('\n');
}

export function renderAuditTargets(results: readonly AuditTargetResult[], width: number | undefined): string {
  const severities: readonly Severity[] = ['critical', 'high', 'medium', 'low'];
  const headers = [
    'ACCOUNT',
    'REGION',
    'IMAGES',
    'SNAPSHOTS',
    ...severities.map((s) => s.toUpperCase()),
    'STATUS',
  ];
  const sum = { images: 0, snapshots: 0, critical: 0, high: 0, medium: 0, low: 0 };
  const rows = results.map((result) => {
    const { report } = result;
    if (!report)
      return [
        result.target.accountId,
        result.target.region,
        '-',
        '-',
        '-',
        '-',
        '-',
        '-',
        statusCell(result, []),
      ];
    sum.images += report.images;
    sum.snapshots += report.snapshots;
    for (const severity of severities) sum[severity] += report.totals[severity];
    const notes = report.warnings.length > 0 ? [`${report.warnings.length} not checked`] : [];
    return [
      result.target.accountId,
      result.target.region,
      String(report.images),
      String(report.snapshots),
      ...severities.map((severity) => String(report.totals[severity])),
      statusCell(result, notes),
    ];
  });
  const failedTargets = results.filter((result) => result.status === 'failed').length;
  const total = [
    'TOTAL',
    `${results.length} targets`,
    String(sum.images),
    String(sum.snapshots),
    ...severities.map((severity) => String(sum[severity])),
    failedTargets > 0 ? `${failedTargets} FAILED` : 'ok',
  ];
  return [
    `Targets: ${results.length - failedTargets} ok, ${failedTargets} failed`,
    '',
    ...table(headers, [...rows, total], width),
  ].join('\n');
}

interface TargetEntry<R> {
  accountId: string;
  region: string;
  status: 'ok' | 'failed';
  error?: string;
  report?: R;
}

function entry<R>(result: TargetResult<R>): TargetEntry<R> {
  return {
    accountId: result.target.accountId,
    region: result.target.region,
    status: result.status,
    ...(result.error === undefined ? {} : { error: result.error }),
    ...(result.report === undefined ? {} : { report: result.report }),
  };
}

/** Every numeric total of the run reports, summed; `failed` (actions) is `actionsFailed` here, beside failed targets. */
export type SweepTargetsTotals = { targets: number; ok: number; failed: number } & Omit<
  RunTotals,
  'failed'
> & {
    actionsFailed: number;
    reclaimedGiB: number;
    reclaimableGiB: number;
    estimatedMonthlySavingUsd: number;
  };

/** Money and GiB are summed in floating point; two decimals are what a report shows anyway. */
function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/** The `--json` document: each target's entry, its report exactly as `plan --json` prints one, and the totals. */
export function sweepTargetsDocument(results: readonly SweepTargetResult[]): {
  targets: TargetEntry<RunReport>[];
  totals: SweepTargetsTotals;
} {
  const reports = results.flatMap((result) => (result.report ? [result.report] : []));
  const summed: Record<string, number> = {};
  for (const report of reports) {
    for (const [key, value] of Object.entries(report.totals)) summed[key] = (summed[key] ?? 0) + value;
  }
  const { failed: actionsFailed = 0, ...rest } = summed;
  const cost = (pick: (report: RunReport) => number) => round(reports.reduce((sum, r) => sum + pick(r), 0));
  return {
    targets: results.map(entry),
    totals: {
      targets: results.length,
      ok: results.filter((result) => result.status === 'ok').length,
      failed: results.filter((result) => result.status === 'failed').length,
      ...(rest as Omit<RunTotals, 'failed'>),
      actionsFailed,
      reclaimedGiB: cost((r) => r.cost.reclaimedGiB),
      reclaimableGiB: cost((r) => r.cost.reclaimableGiB),
      estimatedMonthlySavingUsd: cost((r) => r.cost.estimatedMonthlySavingUsd),
    },
  };
}

export interface AuditTargetsTotals extends Record<Severity, number> {
  targets: number;
  ok: number;
  failed: number;
  images: number;
  snapshots: number;
  findings: number;
  /** Resources that could not be checked, over every target. */
  warnings: number;
}

export function auditTargetsDocument(results: readonly AuditTargetResult[]): {
  targets: TargetEntry<AccountAuditReport>[];
  totals: AuditTargetsTotals;
} {
  const reports = results.flatMap((result) => (result.report ? [result.report] : []));
  const add = (pick: (report: AccountAuditReport) => number) => reports.reduce((sum, r) => sum + pick(r), 0);
  return {
    targets: results.map(entry),
    totals: {
      targets: results.length,
      ok: results.filter((result) => result.status === 'ok').length,
      failed: results.filter((result) => result.status === 'failed').length,
      images: add((r) => r.images),
      snapshots: add((r) => r.snapshots),
      findings: add((r) => r.findings.length),
      critical: add((r) => r.totals.critical),
      high: add((r) => r.totals.high),
      medium: add((r) => r.totals.medium),
      low: add((r) => r.totals.low),
      warnings: add((r) => r.warnings.length),
    },
  };
}

/** Columns padded to their widest cell; the last (STATUS) is left as long as it is, already capped. */
function table(headers: string[], rows: string[][], width: number | undefined): string[] {
  const all = [headers, ...rows.map((row) => row.map(printable))];
  const widths = headers.map((_, column) => Math.max(...all.map((row) => (row[column] ?? '').length)));
  return all.map((row) => {
    const line = row
      .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  ');
    return width && line.length > width ? `${line.slice(0, width - 1)}~` : line;
  });
}
