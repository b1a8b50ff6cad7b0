import type { AccountCounts, Intended } from './account.ts';
import type { BundleResult, ColdImport, HandlerName } from './bundle.ts';
import { CHAINS, type Chain, drainMs, type Invocation, type MinimumRow } from './harness.ts';

/** Plain-text tables and the target lines: everything `npm run bench` prints. */

export const TARGETS = {
  callsPerMinimum: 1.05,
  wallPerBound: 1.3,
  throttlingFailures: 0,
  peakRssMb: 256,
  evaluationCpuMs: 1000,
  bundleBytes: 1_200_000,
  coldImportMs: 250,
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

export interface CallRow {
  api: string;
  formula: string;
  runs: { calls: number; minimum: number; throttled: number }[];
}

/** One row per API: every API with a minimum, and any other the runs called. */
export function callRows(invocations: readonly Invocation[]): CallRow[] {
  const formulas = new Map<string, string>();
  for (const invocation of invocations) {
    for (const row of invocation.minimum) formulas.set(row.api, row.formula);
  }
  for (const invocation of invocations) {
    for (const api of Object.keys(invocation.calls)) {
      if (!formulas.has(api)) formulas.set(api, '0: not needed by a sweep');
    }
  }
  return [...formulas].map(([api, formula]) => ({
    api,
    formula,
    runs: invocations.map((invocation) => {
      const row = invocation.minimum.find((r) => r.api === api);
      const count = invocation.calls[api];
      return {
        calls: count?.accepted ?? 0,
        minimum: row ? row.decide + row.act : 0,
        throttled: count?.throttled ?? 0,
      };
    }),
  }));
}

export function ratio(calls: number, minimum: number): number {
  if (minimum === 0) return calls === 0 ? 1 : Number.POSITIVE_INFINITY;
  return calls / minimum;
}

export function formatCallTable(rows: readonly CallRow[], labels: readonly string[]): string[] {
  const header = [
    'API'.padEnd(31),
    ...labels.map((label) => `${label.padStart(7)}   min thr`),
    '  minimum =',
  ].join(' ');
  const lines = [header, '-'.repeat(Math.min(160, header.length + 60))];
  for (const row of rows) {
    const cells = row.runs.map((run) => {
      const flag = ratio(run.calls, run.minimum) > TARGETS.callsPerMinimum ? '!' : ' ';
      return `${int(run.calls).padStart(7)}${flag}${int(run.minimum).padStart(5)} ${String(run.throttled).padStart(3)}`;
    });
    lines.push([row.api.padEnd(31), ...cells, ` ${row.formula}`].join(' '));
  }
  lines.push("('!' marks calls above 1.05 × the minimum; thr = throttled requests, each one retried)");
  return lines;
}

export function describeInvocation(invocation: Invocation): string {
  if (invocation.error) {
    return `failed${invocation.timedOut ? ' at the timeout' : ''}: ${invocation.error.name}: ${invocation.error.message}`;
  }
  const report = invocation.report;
  if (!report) return 'no report';
  if (report.complete && !invocation.timedOut) return 'finished in one invocation';
  const notReached = report.totals.notReached;
  return `did NOT finish in one invocation: ${int(notReached)} actions not reached${invocation.timedOut ? ', timed out' : ''}`;
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
    `max(0, calls − 100) / refill, and at least any API's calls drained at once; slowest ${chains.join('; ')}`
  );
}

export interface TargetInputs {
  runs: readonly Invocation[];
  peakRssMb: number;
  atReferenceSize: boolean;
  evaluationCpuMs: number;
  bundles: readonly BundleResult[];
  imports: ReadonlyMap<HandlerName, ColdImport>;
}

export function evaluateTargets(inputs: TargetInputs): TargetLine[] {
  const lines: TargetLine[] = [];

  let worst = { ratio: 0, label: 'no calls' };
  for (const row of callRows(inputs.runs)) {
    row.runs.forEach((run, index) => {
      const r = ratio(run.calls, run.minimum);
      if (r > worst.ratio) {
        worst = {
          ratio: r,
          label: `${row.api} ${int(run.calls)}/${int(run.minimum)} in ${inputs.runs[index]?.mode}`,
        };
      }
    });
  }
  lines.push({
    name: 'api-calls-per-operation',
    pass: worst.ratio <= TARGETS.callsPerMinimum,
    value:
      worst.ratio <= 1
        ? '1.00×, every operation at its minimum'
        : `${Number.isFinite(worst.ratio) ? worst.ratio.toFixed(2) : '∞'}× worst, ${worst.label}`,
    bound: `${TARGETS.callsPerMinimum}× the minimum`,
  });

  let worstWall = { ratio: 0, label: '' };
  for (const run of inputs.runs) {
    const r = run.boundMs > 0 ? run.wallMs / run.boundMs : 1;
    if (r > worstWall.ratio) {
      worstWall = { ratio: r, label: `${run.mode} ${seconds(run.wallMs)} / bound ${seconds(run.boundMs)}` };
    }
  }
  lines.push({
    name: 'simulated-wall-time',
    pass: worstWall.ratio <= TARGETS.wallPerBound,
    value: `${worstWall.ratio.toFixed(2)}× worst, ${worstWall.label}`,
    bound: `${TARGETS.wallPerBound}× the bucket lower bound`,
  });

  const throttlingFailures = inputs.runs.reduce((sum, run) => sum + throttlingFailuresOf(run), 0);
  lines.push({
    name: 'failed-actions-caused-by-throttling',
    pass: throttlingFailures <= TARGETS.throttlingFailures,
    value: String(throttlingFailures),
    bound: String(TARGETS.throttlingFailures),
  });

  lines.push({
    name: 'peak-rss',
    pass: inputs.peakRssMb <= TARGETS.peakRssMb,
    value: `${Number.isFinite(inputs.peakRssMb) ? `${inputs.peakRssMb.toFixed(0)} MB` : 'did not fit'}${inputs.atReferenceSize ? '' : ' (not the 10k/50k account)'}`,
    bound: `${TARGETS.peakRssMb} MB`,
  });

  lines.push({
    name: 'rule-evaluation-plus-planning-cpu',
    pass: inputs.evaluationCpuMs <= TARGETS.evaluationCpuMs,
    value: `${(inputs.evaluationCpuMs / 1000).toFixed(3)} s`,
    bound: `${TARGETS.evaluationCpuMs / 1000} s`,
  });

  for (const bundle of inputs.bundles) {
    lines.push({
      name: `bundle-size-${bundle.handler}`,
      pass: bundle.bytes <= TARGETS.bundleBytes,
      value: `${int(bundle.bytes)} B`,
      bound: `${int(TARGETS.bundleBytes)} B`,
    });
  }
  for (const [handler, result] of inputs.imports) {
    lines.push({
      name: `cold-import-${handler}`,
      pass: result.medianMs <= TARGETS.coldImportMs,
      value: `${result.medianMs.toFixed(0)} ms median`,
      bound: `${TARGETS.coldImportMs} ms`,
    });
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
