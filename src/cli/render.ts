import type { AccountAuditReport } from '../core/account-audit.ts';
import type { RunReport } from '../core/report.ts';
import type { ActionOutcome } from '../model.ts';
import { oneLine, printable, truncateText } from '../text.ts';

/**
 * Names, descriptions, tag values and AWS's error messages reach this table, and anyone who can
 * create an image writes the first three: every cell and line is made printable (no terminal
 * escape, no line break to forge a row) and capped, the last column included, so a megabyte-long
 * value cannot flood a log that captured the output.
 */
const MAX_LAST_CELL_CHARS = 300;
const MAX_LINE_CHARS = 500;

/** Renders a run report as the readable table the CLI prints. */
export function renderReport(report: RunReport, width: number | undefined): string {
  const actionsById = new Map<string, ActionOutcome>();
  for (const outcome of report.actions) actionsById.set(outcome.action.imageId, outcome);
  const scheduledById = new Map(report.scheduled.map((entry) => [entry.imageId, entry]));
  const deferredById = new Map(report.deferred.map((entry) => [entry.imageId, entry]));

  const rows = report.decisions.map((decision) => {
    const outcome = actionsById.get(decision.imageId);
    const scheduled = scheduledById.get(decision.imageId);
    const deferred = deferredById.get(decision.imageId);
    let action = '-';
    if (outcome) action = describeAction(outcome, report.mode);
    else if (scheduled) action = `scheduled ${scheduled.removeAfter.slice(0, 10)}`;
    else if (deferred) action = 'deferred (cap)';
    const notes = outcome
      ? [...outcome.warnings, ...(outcome.status === 'failed' ? [outcome.detail ?? ''] : [])]
      : [];
    const reason = [decision.reason, ...notes].filter(Boolean).join(' | ');
    return [decision.imageId, decision.name, decision.verdict, action, decision.rule, reason];
  });

  const headers = ['IMAGE', 'NAME', 'VERDICT', 'ACTION', 'RULE', 'REASON'];
  const lines = [
    `${title(report)}`,
    '',
    ...table(headers, sortRows(rows), width),
    '',
    ...section(
      'Findings',
      report.findings.map((f) => `${f.severity.toUpperCase().padEnd(8)} ${f.imageId} ${f.name}: ${f.reason}`),
    ),
    ...snapshotTable(report, width),
    ...section(
      'Snapshots deleted with their images',
      report.actions.flatMap((o) =>
        o.snapshots.map(
          (s) => `${s.snapshotId} (${o.action.imageId}): ${s.status}${s.detail ? ` - ${s.detail}` : ''}`,
        ),
      ),
    ),
    ...section(
      'Account',
      report.accountFindings.map((f) => `${f.severity.toUpperCase().padEnd(8)} ${f.rule}: ${f.reason}`),
    ),
    ...section('Warnings', report.warnings),
    snapshotSummary(report),
    costSummary(report),
    summary(report),
  ];
  return lines.join('\n');
}

export function summary(report: RunReport): string {
  const t = report.totals;
  const head = `${t.images} images, ${t.eligible} eligible, ${t.kept} kept, ${t.findings} findings`;
  if (report.mode === 'plan') {
    const count = (kind: string) => report.actions.filter((o) => o.action.kind === kind).length;
    const snapshots = report.actions.reduce((sum, o) => sum + (o.action.snapshotIds?.length ?? 0), 0);
    return (
      `Plan: ${head}; would mark ${count('mark')}, deregister ${count('deregister')} (${snapshots} snapshots), ` +
      `unmark ${count('unmark')}; ${t.scheduled} scheduled, ${t.deferred} deferred by the cap.`
    );
  }
  const prefix = report.dryRun ? 'Dry run (nothing changed)' : 'Applied';
  return (
    `${prefix}: ${head}; ${t.marked} marked, ${t.deregistered} deregistered, ${t.snapshotsDeleted} snapshots deleted, ` +
    `${t.unmarked} unmarked, ${t.alreadyGone} already gone, ${t.skipped} skipped, ${t.failed} failed, ` +
    `${t.snapshotsFailed} snapshot failures, ${t.notReached} not reached; ${t.scheduled} scheduled, ${t.deferred} deferred.`
  );
}

/** Snapshots in use by an image are the normal case; listing them would bury the ones that matter. */
function snapshotTable(report: RunReport, width: number | undefined): string[] {
  if (report.snapshotDecisions.length === 0) return [];
  const actions = new Map(report.snapshotActions.map((o) => [o.action.snapshotId, o]));
  const scheduled = new Map(report.snapshotScheduled.map((entry) => [entry.snapshotId, entry]));
  const deferred = new Set(report.snapshotDeferred.map((entry) => entry.snapshotId));
  const shown = report.snapshotDecisions.filter((d) => d.rule !== 'in-use' || actions.has(d.snapshotId));
  const rows = shown.map((d) => {
    const outcome = actions.get(d.snapshotId);
    const entry = scheduled.get(d.snapshotId);
    let action = '-';
    if (outcome) {
      const label =
        outcome.action.kind === 'mark' && outcome.action.removeAfter
          ? `mark (delete ${outcome.action.removeAfter.slice(0, 10)})`
          : outcome.action.kind;
      action = report.mode === 'plan' ? label : `${label}: ${outcome.status}`;
    } else if (entry) action = `scheduled ${entry.removeAfter.slice(0, 10)}`;
    else if (deferred.has(d.snapshotId)) action = 'deferred (cap)';
    const reason = [d.reason, ...(outcome?.status === 'failed' ? [outcome.detail ?? ''] : [])]
      .filter(Boolean)
      .join(' | ');
    return [d.snapshotId, `${formatGiB(d.sizeGiB)} GiB`, d.verdict, action, d.rule, reason];
  });
  const hidden = report.snapshotDecisions.length - shown.length;
  return [
    ...table(
      ['SNAPSHOT', 'SIZE', 'VERDICT', 'ACTION', 'RULE', 'REASON'],
      sortRows(rows, ['orphan', 'keep']),
      width,
    ),
    ...(hidden > 0 ? [`(${hidden} more snapshots are in use by images and are not listed)`] : []),
    '',
  ];
}

function snapshotSummary(report: RunReport): string {
  const t = report.totals;
  const head = `Snapshots: ${t.snapshots} examined, ${t.orphans} orphans, ${t.snapshotsKept} kept`;
  if (report.mode === 'plan') {
    const count = (kind: string) => report.snapshotActions.filter((o) => o.action.kind === kind).length;
    return `${head}; would mark ${count('mark')}, delete ${count('delete')}, unmark ${count('unmark')}; ${t.snapshotsScheduled} scheduled, ${t.snapshotsDeferred} deferred by the cap.`;
  }
  return `${head}; ${t.snapshotsMarked} marked, ${t.orphansDeleted} deleted, ${t.snapshotsUnmarked} unmarked; ${t.snapshotsScheduled} scheduled, ${t.snapshotsDeferred} deferred.`;
}

function costSummary(report: RunReport): string {
  const { cost } = report;
  const amount = `$${cost.estimatedMonthlySavingUsd.toFixed(2)}/month`;
  const what =
    cost.reclaimedGiB > 0
      ? `reclaimed ${formatGiB(cost.reclaimedGiB)} GiB`
      : `would reclaim ${formatGiB(cost.reclaimableGiB)} GiB`;
  const later = cost.scheduledGiB > 0 ? `; ${formatGiB(cost.scheduledGiB)} GiB more scheduled` : '';
  return `Estimated saving: ${what}, up to ${amount}${later} (an upper bound: snapshots are incremental).`;
}

function formatGiB(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

export function renderAudit(report: AccountAuditReport, width: number | undefined): string {
  const rows = report.findings.map((f) => [f.severity.toUpperCase(), f.resourceId, f.name, f.rule, f.reason]);
  const t = report.totals;
  return [
    printable(
      `Audit (read-only) of account ${report.accountId} in ${report.region} as of ${report.asOf.slice(0, 10)}`,
    ),
    '',
    ...(rows.length > 0
      ? table(['SEVERITY', 'RESOURCE', 'NAME', 'RULE', 'REASON'], rows, width)
      : ['No findings.']),
    '',
    ...section('Could not check', report.warnings),
    `Audit: ${report.images} images, ${report.snapshots} snapshots; ${t.critical} critical, ${t.high} high, ` +
      `${t.medium} medium, ${t.low} low findings.`,
  ].join('\n');
}

function title(report: RunReport): string {
  const mode = report.mode === 'plan' ? 'Plan (read-only)' : report.dryRun ? 'Apply (dry run)' : 'Apply';
  return printable(
    `${mode} for account ${report.accountId} in ${report.region} as of ${report.asOf.slice(0, 10)}`,
  );
}

function describeAction(outcome: ActionOutcome, mode: RunReport['mode']): string {
  const { action } = outcome;
  let text: string = action.kind;
  if (action.kind === 'mark' && action.removeAfter) text = `mark (remove ${action.removeAfter.slice(0, 10)})`;
  if (action.kind === 'deregister' && action.snapshotIds?.length) {
    text = `deregister +${action.snapshotIds.length} snap`;
  }
  return mode === 'plan' ? text : `${text}: ${outcome.status}`;
}

/** Removal candidates first, then by name (or id), so the rows that matter lead. */
function sortRows(rows: string[][], order: readonly string[] = ['expire', 'keep']): string[][] {
  const rank = (row: string[]) => {
    const index = order.indexOf(row[2] ?? '');
    return index < 0 ? order.length : index;
  };
  return [...rows].sort((a, b) => rank(a) - rank(b) || (a[1] ?? '').localeCompare(b[1] ?? ''));
}

function section(heading: string, entries: string[]): string[] {
  if (entries.length === 0) return [];
  return [`${heading}:`, ...entries.map((entry) => `  ${oneLine(entry, MAX_LINE_CHARS)}`), ''];
}

/**
 * Pads columns to their widest cell, at most 34 or 40 characters (longer ones end in `~`); the last
 * column is capped at MAX_LAST_CELL_CHARS, and a line is cut to fit a terminal.
 */
function table(headers: string[], rows: string[][], width: number | undefined): string[] {
  const all = [headers, ...rows.map((row) => row.map(printable))];
  const widths = headers.map((_, column) =>
    Math.min(column === 1 ? 34 : 40, Math.max(...all.map((row) => (row[column] ?? '').length))),
  );
  return all.map((row) => {
    const cells = row.map((cell, column) => {
      const limit = widths[column] ?? 0;
      if (column === row.length - 1) return truncateText(cell, MAX_LAST_CELL_CHARS);
      const text = cell.length > limit ? `${cell.slice(0, limit - 1)}~` : cell;
      return text.padEnd(limit);
    });
    const line = cells.join('  ');
    return width && line.length > width ? `${line.slice(0, width - 1)}~` : line;
  });
}
