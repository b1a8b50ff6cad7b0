import type { RunReport } from '../core/report.ts';
import type { OutcomeStatus, Recovery, Severity } from '../model.ts';
import { SHARED_USE_UNKNOWN } from '../rules/shared-image.ts';
import {
  context,
  formatCount as count,
  divider,
  escapeMrkdwn,
  formatGiB as gib,
  header,
  message,
  section,
  titledList,
  formatUsd as usd,
} from './blocks.ts';
import type { SlackBlock, SlackMessage } from './slack.ts';

/**
 * The sweep digest: one Block Kit message per scheduled sweep with the counts, what was reclaimed
 * and what it saves, what is scheduled for removal and when, findings, and failures. Pure: the
 * report in, the message out.
 *
 * Lists are cut by item count (and by a character budget) before the block helpers would have to
 * clip anything, so a long list ends with "…and N more" rather than a line cut in half.
 */

/** Items shown per list; the rest are counted in "…and N more". */
export const DIGEST_MAX_ITEMS = 10;
/** Findings shown per severity: the digest says how many, the run log has every one. */
export const DIGEST_MAX_FINDINGS_PER_SEVERITY = 5;
/** One list item at most; a long reason or name is clipped rather than crowding out the others. */
const MAX_ITEM_CHARS = 280;

const SEVERITIES: readonly Severity[] = ['critical', 'high', 'medium', 'low'];

const SEVERITY_MARKER: Readonly<Record<Severity, string>> = {
  critical: ':rotating_light:',
  high: ':warning:',
  medium: ':large_orange_diamond:',
  low: ':information_source:',
};

/** Statuses of an action that took effect or would have: a mark that counts as scheduling. */
const MARK_STATUSES: ReadonlySet<OutcomeStatus> = new Set(['done', 'dry-run', 'planned']);
/** Statuses of an action that would have run: a plan's, or a dry run's. */
const WOULD: ReadonlySet<OutcomeStatus> = new Set(['dry-run', 'planned']);

export function digestMessage(report: RunReport): SlackMessage {
  const blocks: SlackBlock[] = [
    // plain_text: shown verbatim, so not escaped.
    header(`ami-janitor sweep: ${report.accountId} / ${report.region}${modeSuffix(report)}`),
    summarySection(report),
    context(escapeMrkdwn(costNote(report))),
  ];
  if (!report.complete) {
    blocks.push(
      context(
        `:hourglass: The time budget ran out: ${count(report.totals.notReached)} actions were not reached; the next sweep picks them up.`,
      ),
    );
  }
  blocks.push(divider());
  blocks.push(...scheduledSections(report));
  blocks.push(...waitingSections(report));
  blocks.push(...removedSections(report));
  blocks.push(...disabledSections(report));
  blocks.push(...findingSections(report));
  blocks.push(...failureSections(report));
  blocks.push(...deferredSections(report));
  if (report.warnings.length > 0) {
    blocks.push(
      section(
        list(
          `*Warnings* (${count(report.warnings.length)})`,
          report.warnings.map((warning) => `• ${escapeMrkdwn(warning)}`),
        ),
      ),
    );
  }
  blocks.push(
    context(
      `Sent by ami-janitor · ${escapeMrkdwn(report.accountId)}/${escapeMrkdwn(report.region)} · as of ${escapeMrkdwn(report.asOf)} · every decision is in the run report`,
    ),
  );
  return message(fallbackText(report), blocks);
}

function modeSuffix(report: RunReport): string {
  if (report.mode === 'plan') return ' (plan)';
  return report.dryRun ? ' (dry run)' : '';
}

function summarySection(report: RunReport): SlackBlock {
  const t = report.totals;
  // totals.pending counts image and snapshot actions together; each half is shown with its kind.
  const pendingLabel = report.mode === 'plan' ? 'planned' : 'pending (dry run)';
  const imagesPending = report.actions.filter((outcome) => WOULD.has(outcome.status)).length;
  const snapshotsPending = report.snapshotActions.filter((outcome) => WOULD.has(outcome.status)).length;
  const images = [
    '*Images*',
    `${count(t.images)} examined · ${count(t.kept)} kept · ${count(t.eligible)} eligible`,
    `${count(t.marked)} marked · ${count(t.deregistered)} deregistered · ${count(t.unmarked)} unmarked · ${count(t.failed)} failed`,
    ...(imagesPending > 0 ? [`${count(imagesPending)} ${pendingLabel}`] : []),
    ...optionalCounts([
      [t.alreadyGone, 'already gone'],
      [t.skipped, 'skipped'],
      [t.notReached, 'not reached'],
    ]),
  ];
  const snapshots = [
    '*Snapshots*',
    `${count(t.snapshots)} examined · ${count(t.orphans)} orphans`,
    `${count(t.snapshotsMarked)} marked · ${count(t.snapshotsDeleted)} deleted · ${count(t.snapshotsFailed)} failed`,
    ...(snapshotsPending > 0 ? [`${count(snapshotsPending)} ${pendingLabel}`] : []),
    ...optionalCounts([[t.snapshotsUnmarked, 'unmarked']]),
  ];
  return section(undefined, [
    images.join('\n'),
    snapshots.join('\n'),
    `*Reclaimed*\n${reclaimedText(report)}`,
    `*Estimated monthly saving*\n${usd(report.cost.estimatedMonthlySavingUsd)} per month (upper bound)`,
  ]);
}

function optionalCounts(entries: readonly (readonly [number, string])[]): string[] {
  const shown = entries.filter(([value]) => value > 0).map(([value, label]) => `${count(value)} ${label}`);
  return shown.length > 0 ? [shown.join(' · ')] : [];
}

function reclaimedText(report: RunReport): string {
  const { reclaimedGiB, reclaimableGiB, scheduledGiB } = report.cost;
  const lines: string[] = [];
  if (reclaimedGiB > 0 || reclaimableGiB === 0) lines.push(`${gib(reclaimedGiB)} reclaimed`);
  if (reclaimableGiB > 0) lines.push(`would reclaim ${gib(reclaimableGiB)}`);
  if (scheduledGiB > 0) lines.push(`${gib(scheduledGiB)} of snapshots scheduled`);
  const { archivedGiB } = report.cost;
  if (archivedGiB > 0) {
    lines.push(
      report.mode === 'apply' && !report.dryRun
        ? `${gib(archivedGiB)} archived`
        : `would archive ${gib(archivedGiB)}`,
    );
  }
  return lines.join('\n');
}

function costNote(report: RunReport): string {
  const { cost } = report;
  const archive =
    cost.archivedGiB > 0
      ? ` Archived snapshots at ${usd(cost.archivePricePerGbMonthUsd, 4)} per GB-month at their full size, 90 days at least.`
      : '';
  // Money leaves only when the bin lets go of what it keeps, so the saving starts later.
  const bin = cost.billedInRecycleBinUntil
    ? ` Removals kept in the Recycle Bin are billed until ${day(cost.billedInRecycleBinUntil)}; the saving starts then.`
    : '';
  return `The saving is an estimate and an upper bound: snapshots are incremental, so deleting one frees only the blocks no other snapshot still holds. Priced at ${usd(cost.pricePerGbMonthUsd)} per GB-month (standard tier).${archive}${bin}`;
}

interface Dated {
  line: string;
  removeAfter: string;
}

function scheduledSections(report: RunReport): SlackBlock[] {
  const markNote = (status: OutcomeStatus) =>
    status === 'done' ? 'marked now' : status === 'dry-run' ? 'would be marked' : 'to be marked';
  const images: Dated[] = [
    ...report.scheduled.map((entry) => ({
      removeAfter: entry.removeAfter,
      line: `• ${imageLabel(entry.imageId, entry.name)} — ${stepAfter(entry.next, 'deregister')}${day(entry.removeAfter)} (marked ${day(entry.markedAt)})`,
    })),
    ...report.actions.flatMap((outcome) =>
      outcome.action.kind === 'mark' && MARK_STATUSES.has(outcome.status) && outcome.action.removeAfter
        ? [
            {
              removeAfter: outcome.action.removeAfter,
              line: `• ${imageLabel(outcome.action.imageId, outcome.action.name)} — after ${day(outcome.action.removeAfter)} (${markNote(outcome.status)})`,
            },
          ]
        : [],
    ),
  ];
  const snapshots: Dated[] = [
    ...report.snapshotScheduled.map((entry) => ({
      removeAfter: entry.removeAfter,
      line: `• ${snapshotLabel(entry.snapshotId, entry.sizeGiB)} — ${stepAfter(entry.next, 'delete')}${day(entry.removeAfter)} (marked ${day(entry.markedAt)})`,
    })),
    ...report.snapshotActions.flatMap((outcome) =>
      outcome.action.kind === 'mark' && MARK_STATUSES.has(outcome.status) && outcome.action.removeAfter
        ? [
            {
              removeAfter: outcome.action.removeAfter,
              line: `• ${snapshotLabel(outcome.action.snapshotId, outcome.action.sizeGiB)} — after ${day(outcome.action.removeAfter)} (${markNote(outcome.status)})`,
            },
          ]
        : [],
    ),
  ];
  const byDate = (a: Dated, b: Dated) => a.removeAfter.localeCompare(b.removeAfter);
  const blocks: SlackBlock[] = [];
  if (images.length > 0) {
    blocks.push(
      section(
        list(
          `*Images scheduled for removal* (${count(images.length)})`,
          images.sort(byDate).map((entry) => entry.line),
        ),
      ),
    );
  }
  if (snapshots.length > 0) {
    blocks.push(
      section(
        list(
          `*Snapshots scheduled for removal* (${count(snapshots.length)})`,
          snapshots.sort(byDate).map((entry) => entry.line),
        ),
      ),
    );
  }
  return blocks;
}

/** What this run removed, or in a dry run or plan, what it would have removed. */
function removedSections(report: RunReport): SlackBlock[] {
  const done = report.mode === 'apply' && !report.dryRun;
  const wanted: ReadonlySet<OutcomeStatus> = done ? new Set(['done']) : WOULD;
  const lines = [
    ...report.actions
      .filter((outcome) => outcome.action.kind === 'deregister' && wanted.has(outcome.status))
      .map((outcome) => {
        const snapshots = outcome.action.snapshotIds?.length ?? 0;
        const withSnapshots =
          snapshots > 0 ? ` with ${count(snapshots)} snapshot${snapshots === 1 ? '' : 's'}` : '';
        return `• ${imageLabel(outcome.action.imageId, outcome.action.name)}${withSnapshots}${recoveryNote(outcome.recovery)}`;
      }),
    ...report.snapshotActions
      .filter((outcome) => outcome.action.kind === 'delete' && wanted.has(outcome.status))
      .map(
        (outcome) =>
          `• ${snapshotLabel(outcome.action.snapshotId, outcome.action.sizeGiB)} (orphan)${recoveryNote(outcome.recovery)}`,
      ),
  ];
  if (lines.length === 0) return [];
  const title = done
    ? `*Removed this run* (${count(lines.length)})`
    : `*Due for removal now* (${count(lines.length)}): nothing was removed`;
  return [section(list(title, lines))];
}

/**
 * Shared images whose removal is due but held: their use in other accounts is not known yet
 * (no report, one still pending, too young, failed, or none possible here). Each waits for a
 * person or a later report, so each says why.
 */
function waitingSections(report: RunReport): SlackBlock[] {
  const waiting = report.decisions.filter((decision) => decision.rule === SHARED_USE_UNKNOWN);
  if (waiting.length === 0) return [];
  return [
    section(
      list(
        `*Shared images waiting on a usage report* (${count(waiting.length)}): not removed until one shows no use elsewhere`,
        waiting.map(
          (decision) => `• ${imageLabel(decision.imageId, decision.name)} — ${escapeMrkdwn(decision.reason)}`,
        ),
      ),
    ),
  ];
}

/** Disabling stops every launch, in every account the image is shared with: worth its own list. */
function disabledSections(report: RunReport): SlackBlock[] {
  const done = report.mode === 'apply' && !report.dryRun;
  const wanted: ReadonlySet<OutcomeStatus> = done ? new Set(['done']) : WOULD;
  const lines = report.actions
    .filter((outcome) => outcome.action.kind === 'disable' && wanted.has(outcome.status))
    .map((outcome) => `• ${imageLabel(outcome.action.imageId, outcome.action.name)}`);
  if (lines.length === 0) return [];
  const title = done
    ? `*Disabled this run* (${count(lines.length)}): deregistered later if still eligible`
    : `*Due to be disabled now* (${count(lines.length)}): nothing was disabled`;
  return [section(list(title, lines))];
}

/** Briefly, whether a removal can still be undone from the Recycle Bin; nothing where unknown. */
function recoveryNote(recovery: Recovery | undefined): string {
  if (!recovery) return '';
  return recovery.recoverable ? ` — recoverable until ${day(recovery.until)}` : ' — not recoverable';
}

/** `after DATE` when the removal is next; the step's name first when an optional step is. */
function stepAfter(next: string | undefined, removal: string): string {
  return next === undefined || next === removal ? 'after ' : `${escapeMrkdwn(next)} after `;
}

interface FindingLine {
  severity: Severity;
  line: string;
}

function findingSections(report: RunReport): SlackBlock[] {
  const all: FindingLine[] = [
    ...report.accountFindings.map((finding) => ({
      severity: finding.severity,
      line: `• \`${escapeMrkdwn(finding.resourceId)}\` — ${escapeMrkdwn(finding.rule)}: ${escapeMrkdwn(finding.reason)}`,
    })),
    ...report.findings.map((finding) => ({
      severity: finding.severity,
      line: `• ${imageLabel(finding.imageId, finding.name)} — ${escapeMrkdwn(finding.rule)}: ${escapeMrkdwn(finding.reason)}`,
    })),
  ];
  if (all.length === 0) return [];
  const bySeverity = SEVERITIES.map((severity) => ({
    severity,
    lines: all.filter((finding) => finding.severity === severity).map((finding) => finding.line),
  }));
  const tally = bySeverity
    .map(({ severity, lines }) => `${SEVERITY_MARKER[severity]} ${count(lines.length)} ${severity}`)
    .join(' · ');
  const blocks: SlackBlock[] = [section(`*Findings by severity* (${count(all.length)})\n${tally}`)];
  for (const { severity, lines } of bySeverity) {
    if (lines.length === 0) continue;
    blocks.push(
      section(
        list(
          `${SEVERITY_MARKER[severity]} *${capitalize(severity)}* (${count(lines.length)})`,
          lines,
          DIGEST_MAX_FINDINGS_PER_SEVERITY,
        ),
      ),
    );
  }
  return blocks;
}

function failureSections(report: RunReport): SlackBlock[] {
  const code = (value: string | undefined) => `\`${escapeMrkdwn(value ?? 'UnknownError')}\``;
  const detail = (value: string | undefined) => (value ? `: ${escapeMrkdwn(value)}` : '');
  const lines = [
    ...report.actions
      .filter((outcome) => outcome.status === 'failed')
      .map(
        (outcome) =>
          `• ${outcome.action.kind} ${imageLabel(outcome.action.imageId, outcome.action.name)} — ${code(outcome.errorCode)}${detail(outcome.detail)}`,
      ),
    ...report.actions.flatMap((outcome) =>
      outcome.snapshots
        .filter((snapshot) => snapshot.status === 'failed')
        .map(
          (snapshot) =>
            `• delete snapshot \`${escapeMrkdwn(snapshot.snapshotId)}\` of \`${escapeMrkdwn(outcome.action.imageId)}\`${detail(snapshot.detail)}`,
        ),
    ),
    ...report.snapshotActions
      .filter((outcome) => outcome.status === 'failed')
      .map(
        (outcome) =>
          `• ${outcome.action.kind} snapshot \`${escapeMrkdwn(outcome.action.snapshotId)}\` — ${code(outcome.errorCode)}${detail(outcome.detail)}`,
      ),
  ];
  if (lines.length === 0) return [];
  return [section(list(`:x: *Failures* (${count(lines.length)})`, lines))];
}

function deferredSections(report: RunReport): SlackBlock[] {
  const blocks: SlackBlock[] = [];
  if (report.deferred.length > 0) {
    blocks.push(
      section(
        list(
          `*Deferred by the blast-radius cap: images* (${count(report.deferred.length)}; at most ${count(report.cap.limit)} of ${count(report.cap.eligible)} per run)`,
          report.deferred.map(
            (entry) => `• ${imageLabel(entry.imageId, entry.name)} — ${escapeMrkdwn(entry.reason)}`,
          ),
        ),
      ),
    );
  }
  if (report.snapshotDeferred.length > 0) {
    blocks.push(
      section(
        list(
          `*Deferred by the blast-radius cap: snapshots* (${count(report.snapshotDeferred.length)})`,
          report.snapshotDeferred.map(
            (entry) => `• ${snapshotLabel(entry.snapshotId, entry.sizeGiB)} — ${escapeMrkdwn(entry.reason)}`,
          ),
        ),
      ),
    );
  }
  return blocks;
}

function list(title: string, items: readonly string[], maxItems: number = DIGEST_MAX_ITEMS): string {
  return titledList(title, items, maxItems, MAX_ITEM_CHARS);
}

function imageLabel(imageId: string, name: string): string {
  return name ? `\`${escapeMrkdwn(imageId)}\` ${escapeMrkdwn(name)}` : `\`${escapeMrkdwn(imageId)}\``;
}

function snapshotLabel(snapshotId: string, sizeGiB: number): string {
  return `\`${escapeMrkdwn(snapshotId)}\` ${gib(sizeGiB)}`;
}

function fallbackText(report: RunReport): string {
  const t = report.totals;
  const where = `${report.accountId}/${report.region}${modeSuffix(report)}`;
  return escapeMrkdwn(
    `ami-janitor sweep ${where}: images ${count(t.images)} examined, ${count(t.eligible)} eligible, ${count(t.marked)} marked, ${count(t.deregistered)} deregistered, ${count(t.failed)} failed; snapshots ${count(t.snapshots)} examined, ${count(t.orphans)} orphans, ${count(t.snapshotsDeleted)} deleted, ${count(t.snapshotsFailed)} failed; estimated saving ${usd(report.cost.estimatedMonthlySavingUsd)}/month (upper bound)`,
  );
}

/**
 * The message as plain lines (header, section text and fields, context), for a log line that
 * keeps the digest when Slack did not take it.
 */
export function digestPlainText(digest: SlackMessage): string {
  const lines: string[] = [];
  for (const block of digest.blocks) {
    switch (block.type) {
      case 'header':
        lines.push(block.text.text);
        break;
      case 'section':
        if (block.text) lines.push(block.text.text);
        for (const field of block.fields ?? []) lines.push(field.text);
        break;
      case 'context':
        for (const element of block.elements) lines.push(element.text);
        break;
      case 'divider':
        lines.push('---');
        break;
    }
  }
  return lines.join('\n');
}

function day(iso: string): string {
  return escapeMrkdwn(iso.slice(0, 10));
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
