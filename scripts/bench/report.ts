import type { AccountCounts, Intended } from './account.ts';
import type { BundleResult, ColdImport, HandlerName } from './bundle.ts';
import {
  CHAINS,
  type Chain,
  drainMs,
  type Invocation,
  lowerBound,
  type MinimumRow,
  notReachedOf,
} from './harness.ts';
import { type BucketUsage, type CallCounts, type Latency, USAGE_BIN_MS } from './simulator.ts';

/** Plain-text tables and the target lines: everything `npm run bench` prints. */

export const TARGETS = {
  callsPerMinimum: 1.05,
  wallPerBound: 1.3,
  throttlingFailures: 0,
  peakRssMb: 256,
  evaluationCpuMs: 1000,
  bundleBytes: 1_200_000,
  coldImportMs: 250,
  /** The whole job against its pipelined bound at the limiter's headroom. */
  wholeJobPerBound: 1.1,
  /** DescribeImageReferences over the whole job against one uninterrupted run's minimum. */
  referencesPerMinimum: 1.5,
  /** Failed actions under background load and latency. */
  backgroundFailures: 0,
  sweepBundleBytes: 700_000,
  sweepColdImportMs: 100,
} as const;

export interface TargetLine {
  name: string;
  pass: boolean;
  value: string;
  bound: string;
}

export function formatTarget(line: TargetLine): string {
  return `target ${line.name}: ${line.pass ? 'PASS' : 'FAIL'} (${line.value} vs ${line.bound})`;
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
export const seconds = (ms: number) =>
  `${(ms / 1000).toLocaleString('en-US', { maximumFractionDigits: ms < 1000 ? 2 : ms < 10_000 ? 1 : 0 })} s`;
const megabytes = (bytes: number) => `${(bytes / 1_000_000).toFixed(2)} MB`;

export function describeCounts(counts: AccountCounts): string {
  return [
    `${int(counts.images)} images in ${int(counts.families)} families`,
    `${int(counts.snapshots)} snapshots (${int(counts.orphans)} orphans)`,
    `${int(counts.instances)} instances`,
    `${int(counts.launchTemplates)} launch templates × ${counts.versionsPerTemplate} versions`,
  ].join(' · ');
}

export function describeIntended(intended: Intended): string[] {
  return [
    `images: deregister ${int(intended.imagesRemoved)} (marked 30 days ago), mark ${int(intended.imagesMarked)}, unmark ${int(intended.imagesUnmarked)}`,
    `snapshots: delete ${int(intended.orphansDeleted)} orphans, mark ${int(intended.orphansMarked)}, unmark ${int(intended.snapshotsUnmarked)}; ` +
      `${int(intended.orphanCandidates)} of ${int(intended.orphans)} orphans need their sharing read`,
  ];
}

/** One column of a calls table: an invocation, or the sum over a job. */
export interface CallColumn {
  label: string;
  calls: CallCounts;
}

/** Every API's calls summed over `invocations`, throttled requests and errors included. */
export function sumCalls(invocations: readonly { calls: CallCounts }[]): CallCounts {
  const out: CallCounts = {};
  for (const invocation of invocations) {
    for (const [api, count] of Object.entries(invocation.calls)) {
      const total = out[api] ?? { accepted: 0, throttled: 0, errors: {} };
      total.accepted += count.accepted;
      total.throttled += count.throttled;
      for (const [code, n] of Object.entries(count.errors))
        total.errors[code] = (total.errors[code] ?? 0) + n;
      out[api] = total;
    }
  }
  return out;
}

export function ratio(calls: number, minimum: number): number {
  if (minimum === 0) return calls === 0 ? 1 : Number.POSITIVE_INFINITY;
  return calls / minimum;
}

const formatRatio = (r: number) => (Number.isFinite(r) ? `${r.toFixed(2)}×` : '∞');

/**
 * Calls per API beside the minimum from the account's composition: every API with a minimum, and
 * any other a column called. '!' marks calls above 1.05 × the minimum.
 */
export function formatCallTable(minimum: readonly MinimumRow[], columns: readonly CallColumn[]): string[] {
  const apis = new Map<string, MinimumRow | undefined>(minimum.map((row) => [row.api, row]));
  for (const column of columns) {
    for (const api of Object.keys(column.calls)) if (!apis.has(api)) apis.set(api, undefined);
  }
  const header = [
    'API'.padEnd(31),
    'minimum'.padStart(8),
    ...columns.map((column) => `${column.label.padStart(9)}  ratio   thr`),
    '  minimum =',
  ].join(' ');
  const lines = [header, '-'.repeat(Math.min(170, header.length + 60))];
  for (const [api, row] of apis) {
    const least = row ? row.decide + row.act : 0;
    const cells = columns.map((column) => {
      const count = column.calls[api];
      const calls = count?.accepted ?? 0;
      const r = ratio(calls, least);
      const flag = r > TARGETS.callsPerMinimum ? '!' : ' ';
      return `${int(calls).padStart(9)}${flag}${formatRatio(r).padStart(6)} ${int(count?.throttled ?? 0).padStart(5)}`;
    });
    if (least === 0 && cells.every((_, i) => (columns[i]?.calls[api]?.accepted ?? 0) === 0)) continue;
    lines.push(
      [
        api.padEnd(31),
        int(least).padStart(8),
        ...cells,
        ` ${row?.formula ?? '0: not needed by a sweep'}`,
      ].join(' '),
    );
  }
  lines.push(
    "('!' marks calls above 1.05 × the minimum; thr = requests refused with RequestLimitExceeded, each one retried)",
  );
  return lines;
}

export function describeInvocation(invocation: Invocation): string {
  if (invocation.error) {
    return `failed${invocation.timedOut ? ' at the timeout' : ''}: ${invocation.error.name}: ${invocation.error.message}`;
  }
  const report = invocation.report;
  if (!report) return 'no report';
  if (report.complete && !invocation.timedOut) return 'finished the run';
  const left = notReachedOf(report);
  return (
    `did NOT finish: ${int(left.actions)} actions not reached, ${int(left.unread)} orphans' sharing unread` +
    `${invocation.timedOut ? ', timed out' : ''}`
  );
}

/** Busy windows per API (first to last request), in simulated seconds: what ran beside what. */
export function formatWindows(invocation: Invocation): string[] {
  const start = invocation.startMs;
  const rows = Object.entries(invocation.calls)
    .filter(([, count]) => count.firstAt !== undefined && count.lastAt !== undefined)
    .sort((a, b) => (a[1].firstAt ?? 0) - (b[1].firstAt ?? 0));
  return rows.map(
    ([api, count]) =>
      `  ${api.padEnd(31)} ${seconds((count.firstAt ?? 0) - start).padStart(8)} → ${seconds((count.lastAt ?? 0) - start).padStart(8)}` +
      `  ${int(count.accepted).padStart(6)} calls${invocation.limiterWaitMs[api] ? `, limiter held callers ${seconds(invocation.limiterWaitMs[api] ?? 0)} in total` : ''}`,
  );
}

export function boundFormula(rows: readonly MinimumRow[]): string {
  const slowest = (chain: Chain, phase: 'decide' | 'act') => {
    let best: MinimumRow | undefined;
    const calls = (row: MinimumRow) => row.chains[chain]?.[phase] ?? 0;
    for (const row of rows)
      if (calls(row) > 0 && (!best || drainMs(row.api, calls(row)) > drainMs(best.api, calls(best))))
        best = row;
    return best?.api ?? '-';
  };
  const chains = CHAINS.map((chain) => `${chain}: ${slowest(chain, 'decide')} then ${slowest(chain, 'act')}`);
  return (
    'max over the two chains run side by side of Σ over phases (decide, act) of max over APIs of ' +
    `max(0, calls − size) / refill, and at least any API's calls drained at once; slowest ${chains.join('; ')}`
  );
}

// ---------------------------------------------------------------------------------------------
// Buckets over the job

const SHADES = ' .:-=#';

/**
 * Per bucket over [fromMs, toMs) (simulated, from the simulator's start): the tokens the sweep
 * and the other tools took, the sweep's requests refused, its use of what the limiter allows it
 * (size·h + refill·h·T), the share of the time it was busy (10 s bins where it drew at least half
 * its paced rate), and a timeline of that use, one character per column (' ' under 5%, '.' 5–25%,
 * ':' 25–50%, '-' 50–75%, '=' 75–95%, '#' from 95%), with '|' where an invocation started.
 */
export function formatBuckets(
  usage: readonly BucketUsage[],
  window: { fromMs: number; toMs: number; headroom: number; starts: readonly number[] },
  width = 60,
): string[] {
  const firstBin = Math.floor(window.fromMs / USAGE_BIN_MS);
  const lastBin = Math.max(firstBin, Math.ceil(window.toMs / USAGE_BIN_MS) - 1);
  const bins = lastBin - firstBin + 1;
  const perColumn = Math.max(1, Math.ceil(bins / width));
  const columns = Math.ceil(bins / perColumn);
  const spanS = (window.toMs - window.fromMs) / 1000;
  const startColumns = new Set(
    window.starts.slice(1).map((at) => Math.floor((Math.floor(at / USAGE_BIN_MS) - firstBin) / perColumn)),
  );
  const sum = (values: readonly number[], from: number, to: number) => {
    let total = 0;
    for (let i = from; i <= to; i++) total += values[i] ?? 0;
    return total;
  };
  const lines = [
    `${'bucket'.padEnd(31)} ${'size/refill'.padStart(11)} ${'sweep'.padStart(8)} ${'others'.padStart(7)} ${'refused'.padStart(7)} ${'use'.padStart(5)} ${'busy'.padStart(5)}  ` +
      `timeline (${seconds(perColumn * USAGE_BIN_MS)} a column; use of size·h + refill·h·T, h = ${window.headroom})`,
  ];
  const rows = [...usage].sort(
    (a, b) =>
      sum(b.sweep, firstBin, lastBin) / b.bucket.refillPerSecond -
      sum(a.sweep, firstBin, lastBin) / a.bucket.refillPerSecond,
  );
  for (const entry of rows) {
    const { bucket } = entry;
    const sweep = sum(entry.sweep, firstBin, lastBin);
    if (sweep === 0 && sum(entry.refused, firstBin, lastBin) === 0) continue;
    const allowed = bucket.bucket * window.headroom + bucket.refillPerSecond * window.headroom * spanS;
    const pacedPerBin = bucket.refillPerSecond * window.headroom * (USAGE_BIN_MS / 1000);
    let busyBins = 0;
    for (let bin = firstBin; bin <= lastBin; bin++)
      if ((entry.sweep[bin] ?? 0) >= pacedPerBin / 2) busyBins++;
    let timeline = '';
    for (let column = 0; column < columns; column++) {
      const from = firstBin + column * perColumn;
      const to = Math.min(lastBin, from + perColumn - 1);
      const use = sum(entry.sweep, from, to) / (pacedPerBin * (to - from + 1));
      const shade = use < 0.05 ? 0 : use < 0.25 ? 1 : use < 0.5 ? 2 : use < 0.75 ? 3 : use < 0.95 ? 4 : 5;
      timeline += startColumns.has(column) ? '|' : SHADES[shade];
    }
    lines.push(
      `${bucket.key.padEnd(31)} ${`${bucket.bucket}/${bucket.refillPerSecond}`.padStart(11)} ${int(sweep).padStart(8)} ` +
        `${int(sum(entry.background, firstBin, lastBin)).padStart(7)} ${int(sum(entry.refused, firstBin, lastBin)).padStart(7)} ` +
        `${`${Math.round((sweep / allowed) * 100)}%`.padStart(5)} ${`${Math.round((busyBins / bins) * 100)}%`.padStart(5)}  ${timeline}`,
    );
  }
  return lines;
}

/**
 * Where `bucket` fell below half the pace the limiter allows it, invocation by invocation: the
 * 10 s bins in which the sweep drew less than that, and how many of them open the invocation. Such
 * time is what a job spends beyond its pipelined bound on its busiest bucket.
 */
export function describeIdle(
  usage: BucketUsage,
  invocations: readonly { index: number; fromMs: number; toMs: number }[],
  headroom: number,
): string {
  const pacedPerBin = usage.bucket.refillPerSecond * headroom * (USAGE_BIN_MS / 1000);
  let idleInAll = 0;
  let spanInAll = 0;
  const parts = invocations.map(({ index, fromMs, toMs }) => {
    const first = Math.floor(fromMs / USAGE_BIN_MS);
    const last = Math.max(first, Math.ceil(toMs / USAGE_BIN_MS) - 1);
    let idle = 0;
    let leading = 0;
    let opening = true;
    for (let bin = first; bin <= last; bin++) {
      const busy = (usage.sweep[bin] ?? 0) >= pacedPerBin / 2;
      if (!busy) idle++;
      if (opening && !busy) leading++;
      else opening = false;
    }
    idleInAll += idle;
    spanInAll += last - first + 1;
    return `#${index} ${seconds(idle * USAGE_BIN_MS)} (its first ${seconds(leading * USAGE_BIN_MS)})`;
  });
  return (
    `${usage.bucket.key} drew less than half its pace for ${parts.join(', ')}: ` +
    `${seconds(idleInAll * USAGE_BIN_MS)} in all, ${Math.round((idleInAll / Math.max(1, spanInAll)) * 100)}% of the job`
  );
}

// ---------------------------------------------------------------------------------------------
// Targets

export function target(name: string, pass: boolean, value: string, bound: string): TargetLine {
  return { name, pass, value, bound };
}

/** The size a target is named by: `10k`, `50k`, or the image count. */
export function sizeLabel(images: number): string {
  return images % 1000 === 0 ? `${images / 1000}k` : String(images);
}

export interface JobTargetInputs {
  images: number;
  simulatedMs: number;
  boundAtHeadroomMs: number;
  headroom: number;
  references: { calls: number; minimum: number };
  failedActions: number;
  complete: boolean;
  background: number;
  latency: Latency;
}

export function jobTargets(inputs: JobTargetInputs): TargetLine[] {
  const size = sizeLabel(inputs.images);
  const wall = inputs.simulatedMs / Math.max(1, inputs.boundAtHeadroomMs);
  const refs = ratio(inputs.references.calls, inputs.references.minimum);
  return [
    target(
      `whole-job-${size}`,
      inputs.complete && wall <= TARGETS.wholeJobPerBound,
      `${wall.toFixed(2)}×: ${seconds(inputs.simulatedMs)} / ${seconds(inputs.boundAtHeadroomMs)}${inputs.complete ? '' : ', the run did NOT complete'}`,
      `${TARGETS.wholeJobPerBound}× the pipelined bound at ${inputs.headroom} headroom`,
    ),
    target(
      `references-${size}`,
      refs <= TARGETS.referencesPerMinimum,
      `${formatRatio(refs)}: ${int(inputs.references.calls)} DescribeImageReferences / ${int(inputs.references.minimum)}`,
      `${TARGETS.referencesPerMinimum}× one uninterrupted run's minimum`,
    ),
    target(
      'background-load',
      inputs.failedActions <= TARGETS.backgroundFailures && inputs.background > 0,
      `${inputs.failedActions} failed actions over the job` +
        (inputs.background > 0
          ? ` (${Math.round(inputs.background * 100)}% background draw, latency ${inputs.latency.pageMs}/${inputs.latency.callMs} ms)`
          : ' (NO background load: run without --background 0)'),
      String(TARGETS.backgroundFailures),
    ),
  ];
}

export interface InvocationTargetInputs {
  plan?: Invocation;
  planMinimum?: readonly MinimumRow[];
  /** Every invocation of the job, each held to the job's one-run minimum. */
  job: readonly Invocation[];
  jobMinimum: readonly MinimumRow[];
  peakRssMb?: number;
  atReferenceSize: boolean;
  evaluationCpuMs?: number;
}

/** The per-invocation targets: calls, the plan's wall time, throttling, memory and CPU. */
export function invocationTargets(inputs: InvocationTargetInputs): TargetLine[] {
  const lines: TargetLine[] = [];
  const checked: { label: string; calls: CallCounts; minimum: readonly MinimumRow[] }[] = [
    ...(inputs.plan && inputs.planMinimum
      ? [{ label: 'plan', calls: inputs.plan.calls, minimum: inputs.planMinimum }]
      : []),
    ...inputs.job.map((inv) => ({
      label: `invocation ${inv.index}`,
      calls: inv.calls,
      minimum: inputs.jobMinimum,
    })),
  ];
  let worst = { ratio: 0, label: 'no calls' };
  for (const run of checked) {
    const least = new Map(run.minimum.map((row) => [row.api, row.decide + row.act]));
    for (const [api, count] of Object.entries(run.calls)) {
      const r = ratio(count.accepted, least.get(api) ?? 0);
      if (r > worst.ratio)
        worst = {
          ratio: r,
          label: `${api} ${int(count.accepted)}/${int(least.get(api) ?? 0)} in ${run.label}`,
        };
    }
  }
  lines.push(
    target(
      'api-calls-per-operation',
      worst.ratio <= TARGETS.callsPerMinimum,
      worst.ratio <= 1
        ? `${worst.ratio.toFixed(2)}× worst, no invocation above the minimum`
        : `${formatRatio(worst.ratio)} worst, ${worst.label}`,
      `${TARGETS.callsPerMinimum}× the minimum of one uninterrupted run, in every invocation`,
    ),
  );
  if (inputs.plan && inputs.planMinimum) {
    const bound = lowerBound(inputs.planMinimum);
    const r = inputs.plan.wallMs / Math.max(1, bound);
    lines.push(
      target(
        'simulated-wall-time',
        r <= TARGETS.wallPerBound,
        `${r.toFixed(2)}×, plan ${seconds(inputs.plan.wallMs)} / bound ${seconds(bound)}`,
        `${TARGETS.wallPerBound}× the bucket lower bound (a plan: one complete invocation)`,
      ),
    );
  }
  const runs = [...(inputs.plan ? [inputs.plan] : []), ...inputs.job];
  const throttlingFailures = runs.reduce((sum, run) => sum + throttlingFailuresOf(run), 0);
  lines.push(
    target(
      'failed-actions-caused-by-throttling',
      throttlingFailures <= TARGETS.throttlingFailures,
      String(throttlingFailures),
      String(TARGETS.throttlingFailures),
    ),
  );
  if (inputs.peakRssMb !== undefined) {
    lines.push(
      target(
        'peak-rss',
        inputs.peakRssMb <= TARGETS.peakRssMb,
        `${Number.isFinite(inputs.peakRssMb) ? `${inputs.peakRssMb.toFixed(0)} MB` : 'did not fit'}${inputs.atReferenceSize ? '' : ' (not the 10k account)'}`,
        `${TARGETS.peakRssMb} MB`,
      ),
    );
  }
  if (inputs.evaluationCpuMs !== undefined) {
    lines.push(
      target(
        'rule-evaluation-plus-planning-cpu',
        inputs.evaluationCpuMs <= TARGETS.evaluationCpuMs,
        `${(inputs.evaluationCpuMs / 1000).toFixed(3)} s`,
        `${TARGETS.evaluationCpuMs / 1000} s`,
      ),
    );
  }
  return lines;
}

/** The handlers' bundles and cold imports: the sweep's own targets, then every handler's. */
export function handlerTargets(
  bundles: readonly BundleResult[],
  imports: ReadonlyMap<HandlerName, ColdImport>,
): TargetLine[] {
  const lines: TargetLine[] = [];
  const sweepImport = imports.get('sweep');
  if (sweepImport) {
    lines.push(
      target(
        'cold-import',
        sweepImport.medianMs <= TARGETS.sweepColdImportMs,
        `${sweepImport.medianMs.toFixed(0)} ms median of ${sweepImport.samples.length}, sweep handler bundle`,
        `${TARGETS.sweepColdImportMs} ms`,
      ),
    );
  }
  const sweepBundle = bundles.find((bundle) => bundle.handler === 'sweep');
  if (sweepBundle) {
    lines.push(
      target(
        'bundle',
        sweepBundle.bytes <= TARGETS.sweepBundleBytes,
        `${megabytes(sweepBundle.bytes)} (${int(sweepBundle.bytes)} B), sweep handler`,
        `${megabytes(TARGETS.sweepBundleBytes)}`,
      ),
    );
  }
  for (const bundle of bundles) {
    lines.push(
      target(
        `bundle-size-${bundle.handler}`,
        bundle.bytes <= TARGETS.bundleBytes,
        `${int(bundle.bytes)} B`,
        `${int(TARGETS.bundleBytes)} B`,
      ),
    );
  }
  for (const [handler, result] of imports) {
    lines.push(
      target(
        `cold-import-${handler}`,
        result.medianMs <= TARGETS.coldImportMs,
        `${result.medianMs.toFixed(0)} ms median`,
        `${TARGETS.coldImportMs} ms`,
      ),
    );
  }
  return lines;
}

const THROTTLING = /RequestLimitExceeded|Throttl|TooManyRequests|SlowDown/;

/** Outcomes that failed with a throttling code, images, their snapshots and orphans alike. */
export function throttlingFailuresOf(run: Invocation): number {
  const report = run.report;
  if (!report) return run.error && THROTTLING.test(`${run.error.message} ${String(run.error.cause)}`) ? 1 : 0;
  let failures = 0;
  for (const outcome of report.actions) {
    if (outcome.status === 'failed' && THROTTLING.test(`${outcome.errorCode} ${outcome.detail}`)) failures++;
    for (const snapshot of outcome.snapshots) {
      if (snapshot.status === 'failed' && THROTTLING.test(snapshot.detail ?? '')) failures++;
    }
  }
  for (const outcome of report.snapshotActions) {
    if (outcome.status === 'failed' && THROTTLING.test(`${outcome.errorCode} ${outcome.detail}`)) failures++;
  }
  return failures;
}

/** Every failed outcome, whatever the cause: image actions, their snapshots, orphan actions. */
export function failedActionsOf(run: Invocation): number {
  const report = run.report;
  if (!report) return 0;
  let failures = 0;
  for (const outcome of report.actions) {
    if (outcome.status === 'failed') failures++;
    failures += outcome.snapshots.filter((snapshot) => snapshot.status === 'failed').length;
  }
  return failures + report.snapshotActions.filter((outcome) => outcome.status === 'failed').length;
}

export { int, megabytes };
