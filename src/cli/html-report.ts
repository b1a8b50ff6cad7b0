import type { RunReport } from '../core/report.ts';
import type { Image, Snapshot } from '../model.ts';
import { familyFromName, familyOf } from '../rules/family.ts';
import { printable, truncateText } from '../text.ts';
import {
  archiveStepOn,
  costSummary,
  formatGiB,
  imageRows,
  reclaimed,
  SNAPSHOT_ORDER,
  snapshotRows,
  snapshotSummary,
  sortRows,
  summary,
  title,
} from './render.ts';

/**
 * The run report as one self-contained HTML page: totals, reclaimable GiB by family, a timeline of
 * the removals to come, the findings and every decision. Nothing is fetched (the CSS is inline,
 * the chart inline SVG, there is no script) and the page's own policy forbids fetching anything.
 *
 * Names, descriptions, tag values and AWS's messages reach the page, and anyone who may create an
 * image writes the first three. Every value goes through the `html` template, which escapes each
 * interpolation unless it is already a fragment the template built; values are made printable
 * (no control or bidi character) and capped first, as on the terminal.
 */

/** What one account-Region contributes: its report, or why it has none. */
export interface HtmlReportSection {
  report?: RunReport;
  /** Why there is no report (a target that could not be reached). */
  error?: string;
  /** Over several targets: the section's heading. */
  heading?: string;
  /** The images and snapshots the run listed, where the CLI kept them: families, names, sizes. */
  images?: readonly Image[];
  snapshots?: readonly Snapshot[];
  /** policy.keepLatest.familyTags: how images are grouped into families, as keep-latest does. */
  familyTags: readonly string[];
}

export interface HtmlReportOptions {
  generatedAt: Date;
  version: string;
}

/** The longest value a cell shows; a name or reason can be any length. */
const MAX_CELL_CHARS = 2000;
/** Families shown in the chart; the rest are summed into one bar. */
const MAX_FAMILY_BARS = 20;
/** A date's removals are listed open when there are at most this many. */
const OPEN_TIMELINE_ITEMS = 20;

/** A piece of markup the template built: interpolated as it is. Anything else is escaped. */
class Html {
  readonly markup: string;
  constructor(markup: string) {
    this.markup = markup;
  }
}

type Part = Html | string | number | boolean | undefined | null | readonly Part[];

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escapes text for an element's content or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => ESCAPES[character] ?? character);
}

function part(value: Part): string {
  if (value === undefined || value === null || value === false || value === true) return '';
  if (value instanceof Html) return value.markup;
  if (Array.isArray(value)) return value.map(part).join('');
  return escapeHtml(truncateText(printable(String(value)), MAX_CELL_CHARS));
}

/** The one way markup is made here: every `${value}` is escaped unless it is itself `html`. */
function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  let markup = strings[0] ?? '';
  values.forEach((value, index) => {
    markup += part(value) + (strings[index + 1] ?? '');
  });
  return new Html(markup);
}

export function renderHtmlReport(sections: readonly HtmlReportSection[], options: HtmlReportOptions): string {
  const [only] = sections;
  const single = sections.length === 1 && only?.report ? only.report : undefined;
  const pageTitle = single
    ? `ami-janitor ${single.mode} · ${single.accountId} ${single.region}`
    : `ami-janitor · ${sections.length} account-Regions`;
  const body =
    sections.length === 1 && only
      ? sectionBody(only, '')
      : html`${targetsTable(sections)}${sections.map(
          (section, index) => html`<section class="target" id="t${index}">
<h2 class="target-heading">${section.heading ?? `Target ${index + 1}`}</h2>
${sectionBody(section, `t${index}-`)}
</section>`,
        )}`;
  const page = html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="generator" content="ami-janitor ${options.version}">
<title>${pageTitle}</title>
<style>${new Html(CSS)}</style>
</head>
<body>
<header class="page">
<h1>${single ? title(single) : pageTitle}</h1>
<p class="meta">Generated ${options.generatedAt.toISOString()} by ami-janitor ${options.version}.${
    single && single.mode === 'plan' ? ' Read-only: nothing was changed.' : ''
  }</p>
</header>
<main>
${body}
</main>
</body>
</html>
`;
  return page.markup;
}

function sectionBody(section: HtmlReportSection, prefix: string): Html {
  const { report } = section;
  if (!report) return html`<p class="failed">FAILED: ${section.error ?? 'unknown error'}</p>`;
  const context = new Context(report, section);
  return html`<nav class="toc">
<a href="#${prefix}totals">Totals</a><a href="#${prefix}families">By family</a><a href="#${prefix}timeline">Timeline</a><a href="#${prefix}findings">Findings</a><a href="#${prefix}images">Images</a><a href="#${prefix}snapshots">Snapshots</a>
</nav>
${totals(report, prefix)}
${familyChart(context, prefix)}
${timeline(context, prefix)}
${findings(report, prefix)}
${decisionTables(context, prefix)}`;
}

/** What the report says about the run, joined with what the CLI listed (families, sizes, names). */
class Context {
  readonly report: RunReport;
  readonly applied: boolean;
  private readonly images: ReadonlyMap<string, Image>;
  private readonly snapshots: ReadonlyMap<string, Snapshot>;
  private readonly familyTags: readonly string[];
  private readonly sizes: ReadonlyMap<string, number>;
  /** How many listed images use each snapshot: one that another image shares stays. */
  private readonly users = new Map<string, number>();

  constructor(report: RunReport, section: HtmlReportSection) {
    this.report = report;
    this.applied = report.mode === 'apply' && !report.dryRun;
    this.images = new Map((section.images ?? []).map((image) => [image.imageId, image]));
    this.snapshots = new Map((section.snapshots ?? []).map((snapshot) => [snapshot.snapshotId, snapshot]));
    this.familyTags = section.familyTags;
    this.sizes = new Map(report.snapshotDecisions.map((d) => [d.snapshotId, d.sizeGiB]));
    for (const image of section.images ?? []) {
      for (const id of image.snapshotIds) this.users.set(id, (this.users.get(id) ?? 0) + 1);
    }
  }

  /** An action counts when it happened (apply) or would happen (plan). */
  counts(status: string): boolean {
    return this.applied ? status === 'done' : status === 'planned' || status === 'dry-run';
  }

  family(imageId: string, name: string): string {
    const image = this.images.get(imageId);
    const family = image ? familyOf(image, this.familyTags) : `name:${familyFromName(name || imageId)}`;
    return family.startsWith('name:') ? family.slice('name:'.length) : family;
  }

  size(snapshotId: string): number {
    return this.sizes.get(snapshotId) ?? 0;
  }

  /** GiB of the snapshots only this image uses: what its removal would free. Unknown images count 0. */
  ownGiB(imageId: string): number {
    const image = this.images.get(imageId);
    if (!image) return 0;
    return image.snapshotIds
      .filter((id) => (this.users.get(id) ?? 0) <= 1)
      .reduce((sum, id) => sum + this.size(id), 0);
  }

  snapshotName(snapshotId: string): string {
    const snapshot = this.snapshots.get(snapshotId);
    return snapshot?.tags.Name ?? snapshot?.description ?? '';
  }
}

function totals(report: RunReport, prefix: string): Html {
  const t = report.totals;
  const r = reclaimed(report);
  const severities = (['critical', 'high', 'medium', 'low'] as const).map((severity) => ({
    severity,
    count:
      report.findings.filter((f) => f.severity === severity).length +
      report.accountFindings.filter((f) => f.severity === severity).length,
  }));
  const actions = r.applied
    ? html`<dd><span data-total="marked">${t.marked}</span> marked, <span data-total="deregistered">${t.deregistered}</span> deregistered, <span data-total="unmarked">${t.unmarked}</span> unmarked</dd>
<dd><span data-total="failed">${t.failed}</span> failed, <span data-total="notReached">${t.notReached}</span> not reached</dd>`
    : html`<dd>would mark ${count(report, 'mark')}, deregister ${count(report, 'deregister')}, unmark ${count(report, 'unmark')}</dd>
<dd><span data-total="scheduled">${t.scheduled}</span> scheduled, <span data-total="deferred">${t.deferred}</span> deferred by the cap</dd>`;
  return html`<section id="${prefix}totals">
<h2>Totals</h2>
<div class="cards">
<dl class="card"><dt>Images</dt><dd class="big" data-total="images">${t.images}</dd>
<dd><span data-total="eligible">${t.eligible}</span> eligible, <span data-total="kept">${t.kept}</span> kept</dd></dl>
<dl class="card"><dt>Snapshots</dt><dd class="big" data-total="snapshots">${t.snapshots}</dd>
<dd><span data-total="orphans">${t.orphans}</span> orphans, <span data-total="snapshotsKept">${t.snapshotsKept}</span> kept</dd></dl>
<dl class="card"><dt>${r.applied ? 'Actions done' : 'Actions planned'}</dt><dd class="big">${
    r.applied ? t.marked + t.deregistered + t.unmarked : t.pending
  }</dd>
${actions}</dl>
<dl class="card"><dt>${r.applied ? 'Reclaimed' : 'Would reclaim'}</dt><dd class="big"><span data-cost="${
    r.applied ? 'reclaimedGiB' : 'reclaimableGiB'
  }">${formatGiB(r.gib)}</span> GiB</dd>
<dd>${plural(r.images, 'image')} (${plural(r.imageSnapshots, 'snapshot')}), ${plural(r.orphans, 'orphaned snapshot')}</dd>
<dd>up to $<span data-cost="estimatedMonthlySavingUsd">${report.cost.estimatedMonthlySavingUsd.toFixed(2)}</span>/month; <span data-cost="scheduledGiB">${formatGiB(report.cost.scheduledGiB)}</span> GiB more scheduled</dd></dl>
<dl class="card"><dt>Findings</dt><dd class="big" data-total="findings">${t.findings}</dd>
<dd>${severities.map(
    ({ severity, count: n }, index) =>
      html`${index > 0 ? ' · ' : ''}<span class="sev-count sev-${severity}">${n} ${severity}</span>`,
  )}</dd></dl>
</div>
<div class="summary">
<p>${summary(report)}</p>
<p>${snapshotSummary(report)}</p>
<p>${costSummary(report)}</p>
${report.complete ? '' : html`<p class="warn">This run is not complete: the time budget stopped it before every action was attempted.</p>`}
</div>
</section>`;
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function count(report: RunReport, kind: string): number {
  return report.actions.filter((o) => o.action.kind === kind).length;
}

interface FamilyBar {
  family: string;
  /** GiB this run removes (or removed). */
  now: number;
  /** GiB of what is marked, scheduled or deferred: removed by later runs if still eligible. */
  later: number;
}

const ORPHANS = '(orphaned snapshots)';

function familyBars(context: Context): FamilyBar[] {
  const { report } = context;
  const bars = new Map<string, FamilyBar>();
  const add = (family: string, field: 'now' | 'later', gib: number) => {
    const bar = bars.get(family) ?? { family, now: 0, later: 0 };
    bar[field] += gib;
    bars.set(family, bar);
  };
  const laterImages = new Set<string>();
  for (const outcome of report.actions) {
    const { action } = outcome;
    if (!context.counts(outcome.status)) continue;
    const family = context.family(action.imageId, action.name);
    if (action.kind === 'deregister') {
      const ids = context.applied
        ? outcome.snapshots.filter((s) => s.status === 'deleted').map((s) => s.snapshotId)
        : (action.snapshotIds ?? []);
      add(
        family,
        'now',
        ids.reduce((sum, id) => sum + context.size(id), 0),
      );
    } else if (action.kind === 'mark' || action.kind === 'disable') laterImages.add(action.imageId);
  }
  for (const entry of [...report.scheduled, ...report.deferred]) laterImages.add(entry.imageId);
  const names = new Map(report.decisions.map((d) => [d.imageId, d.name]));
  for (const imageId of laterImages) {
    add(context.family(imageId, names.get(imageId) ?? ''), 'later', context.ownGiB(imageId));
  }
  for (const outcome of report.snapshotActions) {
    if (!context.counts(outcome.status)) continue;
    if (outcome.action.kind === 'delete') add(ORPHANS, 'now', outcome.action.sizeGiB);
    if (outcome.action.kind === 'mark') add(ORPHANS, 'later', outcome.action.sizeGiB);
  }
  for (const entry of [...report.snapshotScheduled, ...report.snapshotDeferred]) {
    add(ORPHANS, 'later', entry.sizeGiB);
  }
  const sorted = [...bars.values()]
    .filter((bar) => bar.now + bar.later > 0)
    .sort((a, b) => b.now + b.later - (a.now + a.later) || a.family.localeCompare(b.family));
  if (sorted.length <= MAX_FAMILY_BARS) return sorted;
  const rest = sorted.slice(MAX_FAMILY_BARS - 1);
  return [
    ...sorted.slice(0, MAX_FAMILY_BARS - 1),
    {
      family: `(${rest.length} more families)`,
      now: rest.reduce((sum, bar) => sum + bar.now, 0),
      later: rest.reduce((sum, bar) => sum + bar.later, 0),
    },
  ];
}

const CHART = { width: 960, label: 250, row: 30, bar: 18, value: 150 };

function familyChart(context: Context, prefix: string): Html {
  const bars = familyBars(context);
  const nowWord = context.applied ? 'removed this run' : 'this run';
  const heading = html`<h2>${context.applied ? 'Reclaimed and reclaimable GiB by family' : 'Reclaimable GiB by family'}</h2>
<p class="note">Snapshot storage freed by removing each family's images (only snapshots no other image uses), and orphaned snapshots: ${nowWord} and by later runs (marked, scheduled or deferred by the cap, if still eligible then). An upper bound: snapshots are incremental.</p>`;
  if (bars.length === 0) {
    return html`<section id="${prefix}families">${heading}<p class="empty">Nothing to reclaim.</p></section>`;
  }
  const max = Math.max(...bars.map((bar) => bar.now + bar.later));
  const span = CHART.width - CHART.label - CHART.value;
  const scale = (gib: number) => (max > 0 ? (gib / max) * span : 0);
  const height = bars.length * CHART.row + 30;
  const rows = bars.map((bar, index) => {
    const y = index * CHART.row;
    const now = scale(bar.now);
    const later = scale(bar.later);
    const label = bar.family.length > 34 ? `${bar.family.slice(0, 33)}…` : bar.family;
    const value = `${formatGiB(round(bar.now + bar.later))} GiB`;
    return html`<g class="bar" data-family="${bar.family}" data-now="${round(bar.now)}" data-later="${round(bar.later)}">
<title>${bar.family}: ${formatGiB(round(bar.now))} GiB ${nowWord}, ${formatGiB(round(bar.later))} GiB later</title>
<text x="${CHART.label - 10}" y="${y + 19}" text-anchor="end" class="label">${label}</text>
<rect x="${CHART.label}" y="${y + 6}" width="${px(now)}" height="${CHART.bar}" class="now"></rect>
<rect x="${CHART.label + now}" y="${y + 6}" width="${px(later)}" height="${CHART.bar}" class="later"></rect>
<text x="${CHART.label + now + later + 8}" y="${y + 19}" class="value">${value}</text>
</g>`;
  });
  const legendY = bars.length * CHART.row + 14;
  return html`<section id="${prefix}families">${heading}
<svg class="chart" viewBox="0 0 ${CHART.width} ${height}" width="100%" role="img" aria-label="GiB by family">
${rows}
<g class="legend"><rect x="${CHART.label}" y="${legendY - 10}" width="12" height="12" class="now"></rect><text x="${CHART.label + 18}" y="${legendY}">${nowWord}</text>
<rect x="${CHART.label + 150}" y="${legendY - 10}" width="12" height="12" class="later"></rect><text x="${CHART.label + 168}" y="${legendY}">later runs</text></g>
</svg>
</section>`;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

function px(value: number): string {
  return value.toFixed(1);
}

interface TimelineItem {
  date: string;
  resource: 'image' | 'snapshot';
  id: string;
  name: string;
  step: string;
  gib: number;
}

/** What is removed (or disabled, archived) when: this run's steps on its date, and every due date after. */
function timelineItems(context: Context): TimelineItem[] {
  const { report } = context;
  const today = report.asOf.slice(0, 10);
  const items: TimelineItem[] = [];
  const image = (date: string, id: string, name: string, step: string, gib: number) =>
    items.push({ date: date.slice(0, 10), resource: 'image', id, name, step, gib });
  const snapshot = (date: string, id: string, step: string, gib: number) =>
    items.push({
      date: date.slice(0, 10),
      resource: 'snapshot',
      id,
      name: context.snapshotName(id),
      step,
      gib,
    });
  const past = context.applied;
  // With the archive step on, a snapshot's mark names its last step's date: archived, or deleted after.
  const lastStep = archiveStepOn(report) ? 'last step' : 'delete';
  for (const outcome of report.actions) {
    const { action } = outcome;
    if (!context.counts(outcome.status)) continue;
    if (action.kind === 'deregister') {
      const ids = past
        ? outcome.snapshots.filter((s) => s.status === 'deleted').map((s) => s.snapshotId)
        : (action.snapshotIds ?? []);
      const gib = ids.reduce((sum, id) => sum + context.size(id), 0);
      image(today, action.imageId, action.name, past ? 'deregistered' : 'deregister', gib);
    } else if (action.kind === 'disable') {
      image(today, action.imageId, action.name, past ? 'disabled' : 'disable', 0);
    } else if (action.kind === 'mark' && action.removeAfter) {
      const gib = context.ownGiB(action.imageId);
      if (action.deprecateAt && action.deprecateAt !== action.removeAfter) {
        image(action.deprecateAt, action.imageId, action.name, 'disable', 0);
      }
      image(action.removeAfter, action.imageId, action.name, 'deregister', gib);
    }
  }
  for (const entry of report.scheduled) {
    image(
      entry.removeAfter,
      entry.imageId,
      entry.name,
      entry.next ?? 'deregister',
      context.ownGiB(entry.imageId),
    );
  }
  for (const outcome of report.snapshotActions) {
    const { action } = outcome;
    if (!context.counts(outcome.status)) continue;
    if (action.kind === 'delete')
      snapshot(today, action.snapshotId, past ? 'deleted' : 'delete', action.sizeGiB);
    if (action.kind === 'archive') snapshot(today, action.snapshotId, past ? 'archived' : 'archive', 0);
    if (action.kind === 'mark' && action.removeAfter) {
      snapshot(action.removeAfter, action.snapshotId, lastStep, action.sizeGiB);
    }
  }
  for (const entry of report.snapshotScheduled) {
    snapshot(entry.removeAfter, entry.snapshotId, entry.next ?? 'delete', entry.sizeGiB);
  }
  return items.sort(
    (a, b) =>
      a.date.localeCompare(b.date) || a.resource.localeCompare(b.resource) || a.id.localeCompare(b.id),
  );
}

function timeline(context: Context, prefix: string): Html {
  const items = timelineItems(context);
  const heading = html`<h2>Timeline</h2>
<p class="note">What is removed when. Dates after today are due dates: a later run carries each step out then, if the resource is still eligible.</p>`;
  if (items.length === 0) {
    return html`<section id="${prefix}timeline">${heading}<p class="empty">Nothing scheduled.</p></section>`;
  }
  const byDate = new Map<string, TimelineItem[]>();
  for (const item of items) byDate.set(item.date, [...(byDate.get(item.date) ?? []), item]);
  const today = context.report.asOf.slice(0, 10);
  const entries = [...byDate].map(([date, dated]) => {
    const images = dated.filter((item) => item.resource === 'image').length;
    const snapshots = dated.length - images;
    const gib = round(dated.reduce((sum, item) => sum + item.gib, 0));
    const what = [
      images > 0 ? `${images} ${images === 1 ? 'image' : 'images'}` : '',
      snapshots > 0 ? `${snapshots} ${snapshots === 1 ? 'snapshot' : 'snapshots'}` : '',
    ]
      .filter(Boolean)
      .join(', ');
    const list = html`<ul>${dated.map(
      (item) =>
        html`<li><span class="step step-${item.step.split(' ')[0]}">${item.step}</span> <code>${item.id}</code>${
          item.name ? html` ${item.name}` : ''
        }${item.gib > 0 ? html` <span class="gib">${formatGiB(round(item.gib))} GiB</span>` : ''}</li>`,
    )}</ul>`;
    return html`<li class="day${date === today ? ' today' : ''}" data-date="${date}">
<div class="when"><time datetime="${date}">${date}</time><span class="rel">${relativeDay(date, today)}</span></div>
<details${dated.length <= OPEN_TIMELINE_ITEMS ? html` open` : ''}><summary><strong>${what}</strong>${
      gib > 0 ? html` · ${formatGiB(gib)} GiB` : ''
    }</summary>${list}</details>
</li>`;
  });
  return html`<section id="${prefix}timeline">${heading}<ol class="timeline">${entries}</ol></section>`;
}

function relativeDay(date: string, today: string): string {
  const days = Math.round((Date.parse(date) - Date.parse(today)) / 86_400_000);
  if (days === 0) return 'this run';
  if (days === 1) return 'in 1 day';
  return days > 0 ? `in ${days} days` : `${-days} days ago`;
}

const SEVERITY_ORDER = ['critical', 'high', 'medium', 'low'];

function findings(report: RunReport, prefix: string): Html {
  const rows = [
    ...report.findings.map((f) => ({ ...f, resource: f.imageId })),
    ...report.accountFindings.map((f) => ({ ...f, resource: f.resourceId, name: '' })),
  ].sort((a, b) => SEVERITY_ORDER.indexOf(a.severity) - SEVERITY_ORDER.indexOf(b.severity));
  const table =
    rows.length === 0
      ? html`<p class="empty">No findings.</p>`
      : html`<table class="findings"><thead><tr><th>Severity</th><th>Resource</th><th>Name</th><th>Rule</th><th>Reason</th></tr></thead>
<tbody>${rows.map(
          (f) =>
            html`<tr><td class="nowrap"><span class="sev sev-${f.severity}">${f.severity}</span></td><td><code>${f.resource}</code></td><td class="name">${f.name}</td><td class="nowrap">${f.rule}</td><td>${f.reason}</td></tr>`,
        )}</tbody></table>`;
  const warnings =
    report.warnings.length === 0
      ? ''
      : html`<h3>Warnings</h3><ul class="warnings">${report.warnings.map((w) => html`<li>${w}</li>`)}</ul>`;
  return html`<section id="${prefix}findings"><h2>Findings</h2>${table}${warnings}</section>`;
}

function decisionTables(context: Context, prefix: string): Html {
  const { report } = context;
  const images = sortRows(imageRows(report));
  const snapshots = sortRows(snapshotRows(report), SNAPSHOT_ORDER);
  const imageTable = html`<table class="decisions"><thead><tr><th>Image</th><th>Name</th><th>Verdict</th><th>Action</th><th>Rule</th><th>Reason</th></tr></thead>
<tbody>${images.map(
    ([id, name, verdict, action, rule, reason]) =>
      html`<tr data-image="${id}"><td><code>${id}</code></td><td class="name">${name}</td><td><span class="verdict verdict-${verdict}">${verdict}</span></td><td class="action">${action}</td><td class="nowrap">${rule}</td><td>${reason}</td></tr>`,
  )}</tbody></table>`;
  const snapshotTable =
    snapshots.length === 0
      ? html`<p class="empty">Snapshots were not examined.</p>`
      : html`<table class="decisions"><thead><tr><th>Snapshot</th><th>Name</th><th class="num">Size</th><th>Verdict</th><th>Action</th><th>Rule</th><th>Reason</th></tr></thead>
<tbody>${snapshots.map(
          ([id = '', size, verdict, action, rule, reason]) =>
            html`<tr data-snapshot="${id}"><td><code>${id}</code></td><td class="name">${context.snapshotName(id)}</td><td class="num">${size}</td><td><span class="verdict verdict-${verdict}">${verdict}</span></td><td class="action">${action}</td><td class="nowrap">${rule}</td><td>${reason}</td></tr>`,
        )}</tbody></table>`;
  return html`<section id="${prefix}images"><h2>Images (${images.length})</h2>${imageTable}</section>
<section id="${prefix}snapshots"><h2>Snapshots (${snapshots.length})</h2>${snapshotTable}</section>`;
}

/** Over several targets: one row per account-Region, linking to its section. */
function targetsTable(sections: readonly HtmlReportSection[]): Html {
  return html`<section id="targets"><h2>Targets</h2>
<table class="targets"><thead><tr><th>Target</th><th class="num">Images</th><th class="num">Eligible</th><th class="num">Snapshots</th><th class="num">Orphans</th><th class="num">GiB</th><th>Status</th></tr></thead>
<tbody>${sections.map((section, index) => {
    const { report } = section;
    const heading = html`<a href="#t${index}">${section.heading ?? `Target ${index + 1}`}</a>`;
    if (!report) {
      return html`<tr><td>${heading}</td><td colspan="5"></td><td class="failed">FAILED: ${section.error ?? 'unknown error'}</td></tr>`;
    }
    const t = report.totals;
    return html`<tr><td>${heading}</td><td class="num">${t.images}</td><td class="num">${t.eligible}</td><td class="num">${t.snapshots}</td><td class="num">${t.orphans}</td><td class="num">${formatGiB(reclaimed(report).gib)}</td><td>${report.complete ? 'ok' : 'not complete'}</td></tr>`;
  })}</tbody></table></section>`;
}

const CSS = `
:root { color-scheme: light; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --panel: #f6f8fa;
  --now: #1f6feb; --later: #9ecbff; --keep: #1a7f37; --expire: #cf222e; --orphan: #bc4c00; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink); background: #fff; }
header.page { padding: 20px 32px 12px; border-bottom: 1px solid var(--line); background: var(--panel); }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h2.target-heading { font-size: 19px; border-bottom: 2px solid var(--ink); }
h3 { font-size: 15px; margin: 18px 0 6px; }
main { padding: 0 32px 40px; max-width: 1400px; }
.meta, .note { color: var(--muted); margin: 0 0 8px; }
nav.toc { margin: 14px 0 0; display: flex; gap: 16px; flex-wrap: wrap; }
nav.toc a { color: var(--now); text-decoration: none; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap: 12px; }
.card { margin: 0; padding: 12px 14px; border: 1px solid var(--line); border-radius: 8px; background: var(--panel); }
.card dt { font-weight: 600; color: var(--muted); text-transform: uppercase; font-size: 12px; letter-spacing: .04em; }
.card dd { margin: 2px 0 0; }
.card dd.big { font-size: 28px; font-weight: 650; }
.summary { margin-top: 14px; }
.summary p { margin: 4px 0; color: var(--muted); }
.warn, .failed { color: var(--expire); font-weight: 600; }
.empty { color: var(--muted); font-style: italic; }
svg.chart { max-width: 960px; display: block; }
svg.chart text { font: 13px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill: var(--ink); }
svg.chart text.value { fill: var(--muted); }
svg.chart .now { fill: var(--now); }
svg.chart .later { fill: var(--later); }
ol.timeline { list-style: none; margin: 0; padding: 0 0 0 4px; border-left: 3px solid var(--line); }
ol.timeline li.day { position: relative; display: grid; grid-template-columns: 150px 1fr; gap: 12px; padding: 8px 0 8px 16px; }
ol.timeline li.day::before { content: ""; position: absolute; left: -9px; top: 13px; width: 12px; height: 12px; border-radius: 50%; background: var(--later); border: 2px solid #fff; }
ol.timeline li.day.today::before { background: var(--now); }
.when time { font-weight: 600; display: block; }
.when .rel { color: var(--muted); font-size: 12px; }
details summary { cursor: default; }
details ul { margin: 6px 0 0; padding-left: 18px; }
details li { margin: 2px 0; }
.gib { color: var(--muted); }
.step { display: inline-block; min-width: 96px; font-size: 12px; font-weight: 600; color: var(--orphan); }
.step-disable, .step-archive { color: var(--muted); }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-bottom: 1px solid var(--line); }
th { position: sticky; top: 0; background: var(--panel); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
tbody tr:nth-child(even) { background: #fafbfc; }
td.num, th.num { text-align: right; white-space: nowrap; }
td { overflow-wrap: anywhere; }
code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: nowrap; }
.verdict { font-weight: 600; }
.verdict-keep { color: var(--keep); }
.verdict-expire { color: var(--expire); }
.verdict-orphan { color: var(--orphan); }
.sev { font-weight: 600; text-transform: uppercase; font-size: 12px; white-space: nowrap; }
.sev-count { font-weight: 600; white-space: nowrap; }
td.nowrap { white-space: nowrap; }
td.name { min-width: 160px; }
td.action { white-space: nowrap; }
.sev.sev-critical { color: #fff; background: var(--expire); padding: 1px 6px; border-radius: 4px; }
.sev-critical { color: var(--expire); }
.sev-high { color: var(--expire); }
.sev-medium { color: var(--orphan); }
.sev-low { color: var(--muted); }
ul.warnings li { color: var(--orphan); }
@media print { th { position: static; } details > * { display: block; } }
`;
