import type { AccountAuditReport } from '../core/account-audit.ts';
import type { RunReport } from '../core/report.ts';
import type { ActionOutcome, Recovery, SnapshotActionOutcome } from '../model.ts';
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
  const headers = ['IMAGE', 'NAME', 'VERDICT', 'ACTION', 'RULE', 'REASON'];
  const lines = [
    `${title(report)}`,
    '',
    ...table(headers, sortRows(imageRows(report)), width),
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

/**
 * One row per image, as the table shows it: id, name, verdict, action, rule, reason. The values
 * are raw (names and reasons as the resource has them): the caller makes them printable or escapes them.
 */
export function imageRows(report: RunReport): string[][] {
  // An image can have more than one action in a run, e.g. a mark and its usage report.
  const actionsById = new Map<string, ActionOutcome[]>();
  for (const outcome of report.actions) {
    actionsById.set(outcome.action.imageId, [...(actionsById.get(outcome.action.imageId) ?? []), outcome]);
  }
  const scheduledById = new Map(report.scheduled.map((entry) => [entry.imageId, entry]));
  const deferredById = new Map(report.deferred.map((entry) => [entry.imageId, entry]));

  return report.decisions.map((decision) => {
    const outcomes = actionsById.get(decision.imageId) ?? [];
    const scheduled = scheduledById.get(decision.imageId);
    const deferred = deferredById.get(decision.imageId);
    let action = '-';
    if (outcomes.length > 0)
      action = outcomes.map((outcome) => describeAction(outcome, report.mode)).join(', ');
    else if (scheduled) action = scheduledLabel(scheduled.removeAfter, scheduled.next, 'deregister');
    else if (deferred) action = 'deferred (cap)';
    const reason = [decision.reason, ...outcomes.flatMap(imageNotes)].filter(Boolean).join(' | ');
    return [decision.imageId, decision.name, decision.verdict, action, decision.rule, reason];
  });
}

export function summary(report: RunReport): string {
  const t = report.totals;
  const head = `${t.images} images, ${t.eligible} eligible, ${t.kept} kept, ${t.findings} findings`;
  const enables = (o: ActionOutcome) => o.action.kind === 'unmark' && o.action.enable === true;
  if (report.mode === 'plan') {
    const count = (kind: string) => report.actions.filter((o) => o.action.kind === kind).length;
    const snapshots = report.actions.reduce((sum, o) => sum + (o.action.snapshotIds?.length ?? 0), 0);
    const reports = report.actions.filter(asksForUsageReport).length;
    return (
      `Plan: ${head}; would mark ${count('mark')}, deregister ${count('deregister')} (${snapshots} snapshots), ` +
      `unmark ${count('unmark')}; ${t.scheduled} scheduled, ${t.deferred} deferred by the cap.` +
      optionalSteps('Also would', [
        [count('disable'), 'disable N'],
        [report.actions.filter(enables).length, 'enable N again'],
        [reports, reports === 1 ? 'request N usage report' : 'request N usage reports'],
      ])
    );
  }
  const prefix = report.dryRun ? 'Dry run (nothing changed)' : 'Applied';
  const done = (test: (o: ActionOutcome) => boolean) =>
    report.actions.filter((o) => o.status === 'done' && test(o)).length;
  // A mark whose usage report could not be requested still stands; the failure is its warning.
  const requested = done(
    (o) =>
      o.action.kind === 'request-usage-report' ||
      (asksForUsageReport(o) && !o.warnings.some((warning) => /usage report/i.test(warning))),
  );
  return (
    `${prefix}: ${head}; ${t.marked} marked, ${t.deregistered} deregistered, ${t.snapshotsDeleted} snapshots deleted, ` +
    `${t.unmarked} unmarked, ${t.alreadyGone} already gone, ${t.skipped} skipped, ${t.failed} failed, ` +
    `${t.snapshotsFailed} snapshot failures, ${t.notReached} not reached; ${t.scheduled} scheduled, ${t.deferred} deferred.` +
    optionalSteps('Also', [
      [done((o) => o.action.kind === 'disable'), 'N disabled'],
      [done(enables), 'N enabled again'],
      [requested, requested === 1 ? 'N usage report requested' : 'N usage reports requested'],
    ])
  );
}

/**
 * Steps only some policies take, appended after the sentence scripts parse, and only when one
 * happened, so a run without them prints what it always did. `N` in a label stands for the count.
 */
function optionalSteps(lead: string, steps: readonly (readonly [number, string])[]): string {
  const shown = steps
    .filter(([value]) => value > 0)
    .map(([value, label]) => label.replace('N', String(value)));
  return shown.length > 0 ? ` ${lead} ${shown.join(', ')}.` : '';
}

function asksForUsageReport(outcome: ActionOutcome): boolean {
  return (
    outcome.action.kind === 'request-usage-report' ||
    (outcome.action.kind === 'mark' && outcome.action.requestUsageReport === true)
  );
}

/** Snapshots in use by an image are the normal case; listing them would bury the ones that matter. */
function snapshotTable(report: RunReport, width: number | undefined): string[] {
  if (report.snapshotDecisions.length === 0) return [];
  const acted = new Set(report.snapshotActions.map((o) => o.action.snapshotId));
  const shown = report.snapshotDecisions.filter((d) => d.rule !== 'in-use' || acted.has(d.snapshotId));
  const rows = snapshotRows(report, shown);
  const hidden = report.snapshotDecisions.length - shown.length;
  return [
    ...table(
      ['SNAPSHOT', 'SIZE', 'VERDICT', 'ACTION', 'RULE', 'REASON'],
      sortRows(rows, SNAPSHOT_ORDER),
      width,
    ),
    ...(hidden > 0 ? [`(${hidden} more snapshots are in use by images and are not listed)`] : []),
    '',
  ];
}

export const SNAPSHOT_ORDER = ['orphan', 'keep'] as const;

/**
 * One row per snapshot decision (all of them unless `decisions` narrows it): id, size, verdict,
 * action, rule, reason; raw values, as imageRows.
 */
export function snapshotRows(
  report: RunReport,
  decisions: RunReport['snapshotDecisions'] = report.snapshotDecisions,
): string[][] {
  const actions = new Map(report.snapshotActions.map((o) => [o.action.snapshotId, o]));
  const scheduled = new Map(report.snapshotScheduled.map((entry) => [entry.snapshotId, entry]));
  const deferred = new Set(report.snapshotDeferred.map((entry) => entry.snapshotId));
  const archiving = archiveStepOn(report);
  return decisions.map((d) => {
    const outcome = actions.get(d.snapshotId);
    const entry = scheduled.get(d.snapshotId);
    let action = '-';
    if (outcome) {
      const label = snapshotActionLabel(outcome, archiving);
      action = report.mode === 'plan' ? label : `${label}: ${outcome.status}`;
    } else if (entry) action = scheduledLabel(entry.removeAfter, entry.next, 'delete');
    else if (deferred.has(d.snapshotId)) action = 'deferred (cap)';
    const reason = [
      d.reason,
      ...(outcome?.status === 'failed' ? [outcome.detail ?? ''] : []),
      ...(outcome?.recovery ? [recoveryNote(outcome.recovery)] : []),
    ]
      .filter(Boolean)
      .join(' | ');
    return [d.snapshotId, `${formatGiB(d.sizeGiB)} GiB`, d.verdict, action, d.rule, reason];
  });
}

/**
 * Whether orphans are archived before (or instead of) being deleted. The report carries no policy,
 * only its traces: an archive in this run, or scheduled entries, which name their next step
 * exactly when a step is on. Without either, the default (delete) is assumed.
 */
export function archiveStepOn(report: RunReport): boolean {
  return (
    report.snapshotActions.some((o) => o.action.kind === 'archive') ||
    report.snapshotScheduled.some((entry) => entry.next !== undefined)
  );
}

function snapshotActionLabel(outcome: SnapshotActionOutcome, archiving: boolean): string {
  const { action } = outcome;
  if (action.kind !== 'mark' || !action.removeAfter) return action.kind;
  // With the archive step on, a mark's date is its last step's: the deletion, or the archiving
  // itself when archived orphans are kept.
  return archiving
    ? `mark (last step ${action.removeAfter.slice(0, 10)})`
    : `mark (delete ${action.removeAfter.slice(0, 10)})`;
}

/** `scheduled DATE` when the removal is next; the step's own name when an optional step is. */
function scheduledLabel(dueAt: string, next: string | undefined, removal: string): string {
  const step = next === undefined || next === removal ? 'scheduled' : next;
  return `${step} ${dueAt.slice(0, 10)}`;
}

function recoveryNote(recovery: Recovery): string {
  return recovery.recoverable
    ? `recoverable until ${recovery.until.slice(0, 10)} (rule ${recovery.rule})`
    : `not recoverable: ${recovery.reason}`;
}

export function snapshotSummary(report: RunReport): string {
  const t = report.totals;
  const head = `Snapshots: ${t.snapshots} examined, ${t.orphans} orphans, ${t.snapshotsKept} kept`;
  const archives = (statuses: readonly string[]) =>
    report.snapshotActions.filter((o) => o.action.kind === 'archive' && statuses.includes(o.status)).length;
  if (report.mode === 'plan') {
    const count = (kind: string) => report.snapshotActions.filter((o) => o.action.kind === kind).length;
    return (
      `${head}; would mark ${count('mark')}, delete ${count('delete')}, unmark ${count('unmark')}; ${t.snapshotsScheduled} scheduled, ${t.snapshotsDeferred} deferred by the cap.` +
      optionalSteps('Also would', [[count('archive'), 'archive N']])
    );
  }
  return (
    `${head}; ${t.snapshotsMarked} marked, ${t.orphansDeleted} deleted, ${t.snapshotsUnmarked} unmarked; ${t.snapshotsScheduled} scheduled, ${t.snapshotsDeferred} deferred.` +
    optionalSteps('Also', [[archives(['done']), 'N archived']])
  );
}

export function costSummary(report: RunReport): string {
  const { cost } = report;
  const amount = `$${cost.estimatedMonthlySavingUsd.toFixed(2)}/month`;
  const later = cost.scheduledGiB > 0 ? `; ${formatGiB(cost.scheduledGiB)} GiB more scheduled` : '';
  const moved = report.mode === 'apply' && !report.dryRun ? 'moved' : 'would move';
  const archived =
    cost.archivedGiB > 0
      ? `; ${moved} ${formatGiB(cost.archivedGiB)} GiB to the archive tier ($${cost.archivePricePerGbMonthUsd} per GB-month at full size, 90 days at least)`
      : '';
  const binned = cost.billedInRecycleBinUntil
    ? `; removals kept in the Recycle Bin are billed until ${cost.billedInRecycleBinUntil.slice(0, 10)}, so the saving starts then`
    : '';
  return `Estimated saving: ${reclaimText(report)}, up to ${amount}${later}${archived}${binned} (an upper bound: snapshots are incremental).`;
}

/**
 * What the run removes, images and orphaned snapshots counted apart. An apply counts only what
 * succeeded, in the past tense; a plan (or a dry run) what it would remove.
 */
export function reclaimed(report: RunReport): {
  applied: boolean;
  images: number;
  imageSnapshots: number;
  imageSnapshotsGiB: number;
  orphans: number;
  orphansGiB: number;
  gib: number;
} {
  const applied = report.mode === 'apply' && !report.dryRun;
  const sizes = new Map(report.snapshotDecisions.map((d) => [d.snapshotId, d.sizeGiB]));
  const would = (status: string) => status === 'planned' || status === 'dry-run';
  const removals = report.actions.filter(
    (o) => o.action.kind === 'deregister' && (applied ? o.status === 'done' : would(o.status)),
  );
  const imageSnapshotIds = removals.flatMap((o) =>
    applied
      ? o.snapshots.filter((s) => s.status === 'deleted').map((s) => s.snapshotId)
      : (o.action.snapshotIds ?? []),
  );
  const deletions = report.snapshotActions.filter(
    (o) => o.action.kind === 'delete' && (applied ? o.status === 'done' : would(o.status)),
  );
  const round = (value: number) => Math.round(value * 100) / 100;
  return {
    applied,
    images: removals.length,
    imageSnapshots: imageSnapshotIds.length,
    imageSnapshotsGiB: round(imageSnapshotIds.reduce((sum, id) => sum + (sizes.get(id) ?? 0), 0)),
    orphans: deletions.length,
    orphansGiB: round(deletions.reduce((sum, o) => sum + o.action.sizeGiB, 0)),
    gib: applied ? report.cost.reclaimedGiB : report.cost.reclaimableGiB,
  };
}

function reclaimText(report: RunReport): string {
  const r = reclaimed(report);
  const images = `${plural(r.images, 'image')}${r.applied ? ' deregistered' : ''} (${plural(r.imageSnapshots, 'snapshot')}, ${formatGiB(r.imageSnapshotsGiB)} GiB)`;
  const orphans = `${plural(r.orphans, 'orphaned snapshot')}${r.applied ? ' deleted' : ''} (${formatGiB(r.orphansGiB)} GiB)`;
  return `${r.applied ? 'reclaimed' : 'would reclaim'} ${formatGiB(r.gib)} GiB from ${images} and ${orphans}`;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

export function formatGiB(value: number): string {
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

export function title(report: RunReport): string {
  const mode = report.mode === 'plan' ? 'Plan (read-only)' : report.dryRun ? 'Apply (dry run)' : 'Apply';
  return printable(
    `${mode} for account ${report.accountId} in ${report.region} as of ${report.asOf.slice(0, 10)}`,
  );
}

function describeAction(outcome: ActionOutcome, mode: RunReport['mode']): string {
  const { action } = outcome;
  let text: string = action.kind;
  if (action.kind === 'mark' && action.removeAfter) {
    // With the disable step on, what the mark leads to first is the disabling.
    text =
      action.deprecateAt && action.deprecateAt !== action.removeAfter
        ? `mark (disable ${action.deprecateAt.slice(0, 10)})`
        : `mark (remove ${action.removeAfter.slice(0, 10)})`;
  }
  if (action.kind === 'deregister' && action.snapshotIds?.length) {
    text = `deregister +${action.snapshotIds.length} snap`;
  }
  if (action.kind === 'unmark' && action.enable) text = 'unmark + enable';
  return mode === 'plan' ? text : `${text}: ${outcome.status}`;
}

/** What a row's reason adds about its action: warnings, why it failed or was skipped, recovery. */
function imageNotes(outcome: ActionOutcome): string[] {
  const { action } = outcome;
  const notes = [...outcome.warnings];
  if (
    outcome.status === 'failed' ||
    (outcome.status === 'skipped' && action.kind === 'request-usage-report')
  ) {
    notes.push(outcome.detail ?? '');
  }
  if (
    action.kind === 'mark' &&
    action.deprecateAt &&
    action.removeAfter &&
    action.deprecateAt !== action.removeAfter
  ) {
    notes.push(`deregistered after ${action.removeAfter.slice(0, 10)} if still eligible`);
  }
  if (action.kind === 'mark' && action.requestUsageReport) notes.push('with an AMI usage report');
  if (outcome.recovery) notes.push(recoveryNote(outcome.recovery));
  return notes;
}

/** Removal candidates first, then by name (or id), so the rows that matter lead. */
export function sortRows(rows: string[][], order: readonly string[] = ['expire', 'keep']): string[][] {
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
