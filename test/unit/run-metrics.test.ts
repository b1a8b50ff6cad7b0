import { describe, expect, it } from 'vitest';
import { MARKED_AT_TAG, parsePolicy } from '../../src/config/policy.ts';
import { continueReport, nextContinuation } from '../../src/core/continuation.ts';
import { executePlan } from '../../src/core/executor.ts';
import { buildOrgDigest, type TargetResult, type TargetSummary } from '../../src/core/org-digest.ts';
import { type Deadline, unboundedDeadline } from '../../src/core/ports.ts';
import { buildReport, type RunReport } from '../../src/core/report.ts';
import {
  imageEventMetrics,
  MAX_ERROR_CODES,
  METRICS,
  type MetricName,
  type MetricPoint,
  organisationMetrics,
  sweepMetrics,
} from '../../src/core/run-metrics.ts';
import { runSweep, type SweepPorts, type SweepRequest } from '../../src/core/sweep.ts';
import { demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import type { ActionOutcome, PlannedSnapshotAction, SnapshotActionOutcome } from '../../src/model.ts';
import {
  ACCOUNT_ID,
  action,
  daysAfter,
  daysBefore,
  decision,
  NOW as FACTORY_NOW,
  image,
  plan,
  policy,
  recordingLog,
} from './factories.ts';

/** The demo's clock, as the sweep and snapshot-sweep tests use it. */
const NOW = new Date('2026-11-22T06:00:00.000Z');
const MEASURES = { invocation: 1, durationMs: 1234.4, throttledCalls: 3 };

function demoPorts(): { account: MemoryAccount; ports: SweepPorts } {
  const account = new MemoryAccount(structuredClone(demoAccount(NOW)));
  return {
    account,
    // As the CLI wires it: the in-memory account implements every snapshot port and the bin.
    ports: {
      inventory: account,
      actions: account,
      log: recordingLog(),
      snapshots: { inventory: account, sharing: account, actions: account },
      recycleBin: account,
    },
  };
}

function request(overrides: Partial<SweepRequest> = {}): SweepRequest {
  return {
    policy: parsePolicy(demoPolicyDocument),
    region: 'eu-west-1',
    now: NOW,
    mode: 'apply',
    dryRun: false,
    deadline: unboundedDeadline,
    ...overrides,
  };
}

/** The value of the one point with this name and exactly these dimensions; throws on none or several. */
function pointValue(
  points: readonly MetricPoint[],
  name: MetricName,
  dimensions: Record<string, string> = {},
): number {
  const wanted = JSON.stringify(sorted(dimensions));
  const [found, ...more] = points.filter(
    (candidate) => candidate.name === name && JSON.stringify(sorted(candidate.dimensions)) === wanted,
  );
  if (!found || more.length > 0) {
    throw new Error(`expected one ${name} ${wanted}, found ${more.length + (found ? 1 : 0)}`);
  }
  return found.value;
}

function sorted(dimensions: Readonly<Record<string, string>>): [string, string][] {
  return Object.entries(dimensions).sort(([a], [b]) => a.localeCompare(b));
}

/** Points of one name whose dimensions have exactly these keys. */
function series(points: readonly MetricPoint[], name: MetricName, keys: string[]): MetricPoint[] {
  return points.filter(
    (candidate) =>
      candidate.name === name &&
      JSON.stringify(Object.keys(candidate.dimensions).sort()) === JSON.stringify([...keys].sort()),
  );
}

function sum(points: readonly MetricPoint[]): number {
  return points.reduce((total, entry) => total + entry.value, 0);
}

/** What holds for every list of points: units as declared, one point per series, bounded dimension values. */
function expectWellFormed(points: readonly MetricPoint[], report?: RunReport): void {
  const keys = points.map((entry) => `${entry.name} ${JSON.stringify(sorted(entry.dimensions))}`);
  expect(new Set(keys).size).toBe(keys.length);
  for (const entry of points) {
    expect(entry.unit).toBe(METRICS[entry.name]);
    expect(Number.isFinite(entry.value)).toBe(true);
    expect(entry.value).toBeGreaterThanOrEqual(0);
    for (const value of Object.values(entry.dimensions)) expect(value).toMatch(/^[A-Za-z0-9._:-]{1,64}$/);
  }
  if (!report) return;
  // No id, name or account ever becomes a dimension.
  const dimensionText = JSON.stringify(points.map((entry) => entry.dimensions));
  const ids = [
    report.accountId,
    report.region,
    ...report.decisions.flatMap((entry) => [entry.imageId, entry.name]),
    ...report.snapshotDecisions.map((entry) => entry.snapshotId),
  ];
  for (const id of ids) expect(dimensionText).not.toContain(`"${id}"`);
}

describe('sweepMetrics: the demo account', () => {
  it('publishes every counter of an apply as the report counts it', async () => {
    // Prepare
    const { ports } = demoPorts();
    const report = await runSweep(ports, request());

    // Act
    const points = sweepMetrics(report, MEASURES);

    // Assess
    const { totals, cost } = report;
    expectWellFormed(points, report);
    expect(pointValue(points, 'SweepCompleted')).toBe(1);
    expect(pointValue(points, 'SweepUnfinished')).toBe(0);
    expect(pointValue(points, 'SweepDuration')).toBe(1234);
    expect(pointValue(points, 'ThrottledCalls')).toBe(3);
    expect(pointValue(points, 'ImagesMarked')).toBe(totals.marked);
    expect(pointValue(points, 'ImagesUnmarked')).toBe(totals.unmarked);
    expect(pointValue(points, 'ImagesDeregistered')).toBe(totals.deregistered);
    expect(pointValue(points, 'SnapshotsMarked')).toBe(totals.snapshotsMarked);
    expect(pointValue(points, 'SnapshotsUnmarked')).toBe(totals.snapshotsUnmarked);
    expect(pointValue(points, 'SnapshotsDeleted')).toBe(totals.snapshotsDeleted);
    expect(pointValue(points, 'ActionsPending')).toBe(totals.pending);
    expect(pointValue(points, 'ActionsNotReached')).toBe(totals.notReached);
    expect(pointValue(points, 'Failures')).toBe(totals.failed);
    expect(pointValue(points, 'ReclaimedGiB')).toBe(cost.reclaimedGiB);
    expect(pointValue(points, 'ReclaimableGiB')).toBe(cost.reclaimableGiB);
    expect(pointValue(points, 'ArchivedGiB')).toBe(cost.archivedGiB);
    expect(pointValue(points, 'EstimatedMonthlySavingUsd')).toBe(cost.estimatedMonthlySavingUsd);
    expect(pointValue(points, 'Images')).toBe(totals.images);
    expect(pointValue(points, 'Snapshots')).toBe(totals.snapshots);
    expect(pointValue(points, 'ImagesScheduled')).toBe(totals.scheduled);
    expect(pointValue(points, 'ImagesDeferred')).toBe(totals.deferred);
    expect(pointValue(points, 'SnapshotsScheduled')).toBe(totals.snapshotsScheduled);
    expect(pointValue(points, 'SnapshotsDeferred')).toBe(totals.snapshotsDeferred);
    // The demo does something of each, so none of these is a trivial zero.
    expect(totals).toMatchObject({ marked: 10, unmarked: 1, deregistered: 3, snapshotsMarked: 3 });
    expect(totals.snapshotsDeleted).toBeGreaterThan(0);
    expect(cost.reclaimedGiB).toBeGreaterThan(0);
  });

  it('counts verdicts by kind, and by rule as the decisions settled them', async () => {
    // Prepare
    const { ports } = demoPorts();
    const report = await runSweep(ports, request());

    // Act
    const points = sweepMetrics(report, MEASURES);

    // Assess: the roll-ups are the report's totals, and the by-rule series add up to them.
    const { totals } = report;
    const rollUps: [string, string, number][] = [
      ['image', 'keep', totals.kept],
      ['image', 'expire', totals.eligible],
      ['snapshot', 'keep', totals.snapshotsKept],
      ['snapshot', 'orphan', totals.orphans],
    ];
    for (const [kind, verdict, expected] of rollUps) {
      expect(pointValue(points, 'Decisions', { kind, verdict })).toBe(expected);
      const byRule = series(points, 'Decisions', ['kind', 'verdict', 'rule']).filter(
        (entry) => entry.dimensions.kind === kind && entry.dimensions.verdict === verdict,
      );
      expect(sum(byRule)).toBe(expected);
    }
    expect(totals.kept + totals.eligible).toBe(totals.images);
    for (const entry of report.decisions) {
      expect(
        pointValue(points, 'Decisions', { kind: 'image', verdict: entry.verdict, rule: entry.rule }),
      ).toBe(
        report.decisions.filter((other) => other.verdict === entry.verdict && other.rule === entry.rule)
          .length,
      );
    }
    for (const entry of report.snapshotDecisions) {
      expect(
        pointValue(points, 'Decisions', { kind: 'snapshot', verdict: entry.verdict, rule: entry.rule }),
      ).toBe(
        report.snapshotDecisions.filter(
          (other) => other.verdict === entry.verdict && other.rule === entry.rule,
        ).length,
      );
    }
    expect(
      pointValue(points, 'Decisions', { kind: 'image', verdict: 'keep', rule: 'in-use' }),
    ).toBeGreaterThan(0);
  });

  it('counts findings by severity, every severity present even at zero, and by severity and rule', async () => {
    // Prepare
    const { ports } = demoPorts();
    const report = await runSweep(ports, request());
    const all = [...report.findings, ...report.accountFindings];

    // Act
    const points = sweepMetrics(report, MEASURES);

    // Assess
    expect(pointValue(points, 'Findings')).toBe(report.totals.findings);
    expect(report.totals.findings).toBe(all.length);
    for (const severity of ['critical', 'high', 'medium', 'low']) {
      expect(pointValue(points, 'Findings', { severity })).toBe(
        all.filter((finding) => finding.severity === severity).length,
      );
    }
    expect(sum(series(points, 'Findings', ['severity']))).toBe(report.totals.findings);
    expect(sum(series(points, 'Findings', ['severity', 'rule']))).toBe(report.totals.findings);
    for (const finding of all) {
      expect(pointValue(points, 'Findings', { severity: finding.severity, rule: finding.rule })).toBe(
        all.filter((other) => other.severity === finding.severity && other.rule === finding.rule).length,
      );
    }
    // The demo has a public image (critical) and no high finding: a zero is published, not left out.
    expect(pointValue(points, 'Findings', { severity: 'critical' })).toBeGreaterThan(0);
    expect(pointValue(points, 'Findings', { severity: 'high' })).toBe(0);
  });

  it('publishes what a dry run would do as pending and reclaimable, and nothing as done', async () => {
    // Prepare
    const { account, ports } = demoPorts();
    const report = await runSweep(ports, request({ dryRun: true }));

    // Act
    const points = sweepMetrics(report, MEASURES);

    // Assess
    expect(account.calls.filter((call) => /^(tag|deregister|delete)/.test(call))).toEqual([]);
    expect(pointValue(points, 'ActionsPending')).toBe(report.totals.pending);
    expect(report.totals.pending).toBe(report.actions.length + report.snapshotActions.length);
    expect(pointValue(points, 'ReclaimableGiB')).toBe(report.cost.reclaimableGiB);
    expect(report.cost.reclaimableGiB).toBeGreaterThan(0);
    expect(pointValue(points, 'EstimatedMonthlySavingUsd')).toBe(report.cost.estimatedMonthlySavingUsd);
    for (const name of ['ImagesMarked', 'ImagesDeregistered', 'SnapshotsDeleted', 'ReclaimedGiB'] as const) {
      expect(pointValue(points, name)).toBe(0);
    }
  });

  it('says an unfinished run is unfinished, with the actions the time budget left', async () => {
    // Prepare: the budget runs out before any action starts.
    const { ports } = demoPorts();
    const spent: Deadline = { remainingMs: () => 0 };
    const report = await runSweep(ports, request({ deadline: spent }));

    // Act
    const points = sweepMetrics(report, MEASURES);

    // Assess
    expect(report.complete).toBe(false);
    expect(pointValue(points, 'SweepUnfinished')).toBe(1);
    expect(pointValue(points, 'SweepCompleted')).toBe(1);
    expect(pointValue(points, 'ActionsNotReached')).toBe(report.totals.notReached);
    expect(report.totals.notReached).toBeGreaterThan(0);
  });
});

describe('sweepMetrics: a run over several invocations', () => {
  it('publishes what each invocation did, and what the run found only in its first', async () => {
    // Prepare: the first invocation runs out of time before any action; the second finishes.
    const { ports } = demoPorts();
    const first = await runSweep(ports, request({ deadline: { remainingMs: () => 0 } }));
    const handedOn = nextContinuation(continueReport(first, undefined, 'run-1'), true);
    const second = await runSweep(ports, request());
    const continued = continueReport(second, handedOn, 'run-1');

    // Act
    const firstPoints = sweepMetrics(first, { ...MEASURES, invocation: 1 });
    const secondPoints = sweepMetrics(second, { ...MEASURES, invocation: 2 });

    // Assess: a day's sums are the whole run's totals, each counted once.
    expect(handedOn?.invocation).toBe(2);
    const done: [MetricName, number][] = [
      ['ImagesMarked', continued.totals.marked],
      ['ImagesDeregistered', continued.totals.deregistered],
      ['SnapshotsDeleted', continued.totals.snapshotsDeleted],
      ['SnapshotsMarked', continued.totals.snapshotsMarked],
    ];
    for (const [name, total] of done) {
      expect(pointValue(firstPoints, name) + pointValue(secondPoints, name)).toBe(total);
    }
    expect(continued.totals.marked).toBeGreaterThan(0);
    expect(pointValue(firstPoints, 'ReclaimedGiB') + pointValue(secondPoints, 'ReclaimedGiB')).toBe(
      continued.cost.reclaimedGiB,
    );
    expect(pointValue(firstPoints, 'Images')).toBe(continued.totals.images);
    for (const name of ['Images', 'Snapshots', 'Decisions', 'Findings', 'ImagesScheduled'] as const) {
      expect(secondPoints.filter((entry) => entry.name === name)).toEqual([]);
    }
    expect(pointValue(secondPoints, 'SweepCompleted')).toBe(1);
  });

  it("refuses a continued report, whose totals hold earlier invocations' work", async () => {
    // Prepare
    const { ports } = demoPorts();
    const first = await runSweep(ports, request({ deadline: { remainingMs: () => 0 } }));
    const handedOn = nextContinuation(continueReport(first, undefined, 'run-1'), true);
    const continued = continueReport(await runSweep(ports, request()), handedOn, 'run-1');

    // Act
    const refused = () => sweepMetrics(continued, { ...MEASURES, invocation: 2 });
    const firstAsContinued = sweepMetrics(continueReport(first, undefined, 'run-1'), MEASURES);

    // Assess: the first invocation's continued report is its own, and reads the same.
    expect(refused).toThrow(/pass invocation 2's own report/);
    expect(firstAsContinued).toEqual(sweepMetrics(first, MEASURES));
  });
});

describe('sweepMetrics: each lifecycle step', () => {
  const meta = {
    mode: 'apply' as const,
    dryRun: false,
    startedAt: FACTORY_NOW,
    finishedAt: FACTORY_NOW,
    warnings: [],
  };
  const executeOptions = {
    dryRun: false,
    now: FACTORY_NOW,
    accountId: ACCOUNT_ID,
    policy: policy(),
    deadline: unboundedDeadline,
    reserveMs: 0,
    log: recordingLog(),
  };

  it('counts deprecations set with a mark, and not one the executor could only warn about', async () => {
    // Prepare
    const deprecated = image();
    const notDeprecated = image();
    const tagOnly = image();
    const markedEarlier = image({ tags: { [MARKED_AT_TAG]: daysBefore(FACTORY_NOW, 20).toISOString() } });
    const account = new MemoryAccount({
      accountId: ACCOUNT_ID,
      images: structuredClone([deprecated, notDeprecated, tagOnly, markedEarlier]),
    });
    account.failNext('enableDeprecation', notDeprecated.imageId, 'UnauthorizedOperation');
    const removeAfter = daysAfter(FACTORY_NOW, 7).toISOString();
    const work = plan([
      action('mark', deprecated, { removeAfter, touchDeprecation: true }),
      action('mark', notDeprecated, { removeAfter, touchDeprecation: true }),
      action('mark', tagOnly, { removeAfter, touchDeprecation: false }),
      action('disable', markedEarlier),
    ]);

    // Act
    const outcomes = await executePlan(work, account, executeOptions);
    const report = buildReport(work, outcomes, meta);
    const points = sweepMetrics(report, MEASURES);

    // Assess
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['done', 'done', 'done', 'done']);
    expect(account.images.get(deprecated.imageId)?.deprecationTime).toEqual(new Date(removeAfter));
    expect(account.images.get(notDeprecated.imageId)?.deprecationTime).toBeUndefined();
    expect(pointValue(points, 'ImagesMarked')).toBe(3);
    expect(pointValue(points, 'ImagesDeprecated')).toBe(1);
    expect(pointValue(points, 'ImagesDisabled')).toBe(1);
    expect(account.images.get(markedEarlier.imageId)?.state).toBe('disabled');
  });

  it('counts archives done, and not those that failed or were only planned', () => {
    // Prepare
    const archive = (snapshotId: string, status: SnapshotActionOutcome['status']): SnapshotActionOutcome => ({
      action: { kind: 'archive', snapshotId, rule: 'snapshot-orphan', reason: 'test', sizeGiB: 8 },
      status,
      ...(status === 'failed' ? { errorCode: 'IncorrectState' } : {}),
    });
    const report = buildReport(plan([]), [], {
      ...meta,
      snapshotOutcomes: [archive('snap-1', 'done'), archive('snap-2', 'done'), archive('snap-3', 'failed')],
    });

    // Act
    const points = sweepMetrics(report, MEASURES);

    // Assess
    expect(pointValue(points, 'SnapshotsArchived')).toBe(2);
    expect(pointValue(points, 'ArchivedGiB')).toBe(report.cost.archivedGiB);
    expect(report.cost.archivedGiB).toBe(16);
    expect(pointValue(points, 'Failures')).toBe(1);
    expect(pointValue(points, 'Failures', { errorCode: 'IncorrectState' })).toBe(1);
  });
});

describe('sweepMetrics: failures by error code', () => {
  const meta = {
    mode: 'apply' as const,
    dryRun: false,
    startedAt: FACTORY_NOW,
    finishedAt: FACTORY_NOW,
    warnings: [],
  };
  const subject = () => image();
  const outcome = (overrides: Partial<ActionOutcome> & Pick<ActionOutcome, 'status'>): ActionOutcome => ({
    action: action('deregister', subject()),
    warnings: [],
    snapshots: [],
    ...overrides,
  });
  const snapshotOutcome = (
    kind: PlannedSnapshotAction['kind'],
    overrides: Partial<SnapshotActionOutcome> & Pick<SnapshotActionOutcome, 'status'>,
  ): SnapshotActionOutcome => ({
    action: { kind, snapshotId: 'snap-0123', rule: 'snapshot-orphan', reason: 'test', sizeGiB: 1 },
    ...overrides,
  });

  it("counts failed actions and an image's failed snapshots, in total and by code", async () => {
    // Prepare: the snapshot details are as the executor writes them (executor.ts: deleteSnapshot and
    // the DeleteAssociatedSnapshots results).
    const outcomes = [
      outcome({ status: 'failed', errorCode: 'UnauthorizedOperation' }),
      outcome({ status: 'failed', errorCode: 'UnauthorizedOperation' }),
      outcome({ status: 'failed' }),
      outcome({
        status: 'done',
        snapshots: [
          { snapshotId: 'snap-a', status: 'failed', detail: 'InvalidSnapshot.InUse: in use by ami-0abc' },
          {
            snapshotId: 'snap-b',
            status: 'failed',
            detail: 'DeleteAssociatedSnapshots returned internal-error',
          },
          { snapshotId: 'snap-c', status: 'failed', detail: 'something unexpected' },
          { snapshotId: 'snap-d', status: 'deleted' },
        ],
      }),
    ];
    const snapshotOutcomes = [
      snapshotOutcome('delete', { status: 'failed', errorCode: 'RequestLimitExceeded' }),
      snapshotOutcome('mark', { status: 'failed', errorCode: 'RequestLimitExceeded' }),
      snapshotOutcome('delete', { status: 'done' }),
    ];
    const report = buildReport(plan(outcomes.map((entry) => entry.action)), outcomes, {
      ...meta,
      snapshotOutcomes,
    });

    // Act
    const points = sweepMetrics(report, MEASURES);

    // Assess: orphan deletions count in both failed and snapshotsFailed, and once here.
    const orphanDeletesFailed = 1;
    expect(pointValue(points, 'Failures')).toBe(8);
    expect(pointValue(points, 'Failures')).toBe(
      report.totals.failed + report.totals.snapshotsFailed - orphanDeletesFailed,
    );
    expect(
      Object.fromEntries(
        series(points, 'Failures', ['errorCode']).map((entry) => [entry.dimensions.errorCode, entry.value]),
      ),
    ).toEqual({
      UnauthorizedOperation: 2,
      RequestLimitExceeded: 2,
      UnknownError: 2,
      'InvalidSnapshot.InUse': 1,
      'internal-error': 1,
    });
    // A detail that does not start with a code counts as UnknownError, as a failure without a code does.
    expect(sum(series(points, 'Failures', ['errorCode']))).toBe(8);
    expectWellFormed(points, report);
  });

  it(`keeps at most ${MAX_ERROR_CODES} codes, folds the rarest into Other, and never prints a code that is not one`, () => {
    // Prepare: twelve codes, the first most frequent, and one that is free text.
    const codes = Array.from({ length: 12 }, (_, index) => `Code${String(index).padStart(2, '0')}`);
    const outcomes = [
      ...codes.flatMap((code, index) =>
        Array.from({ length: 12 - index }, () => outcome({ status: 'failed', errorCode: code })),
      ),
      outcome({ status: 'failed', errorCode: 'ami-0123456789abcdef0 is "gone"\n' }),
    ];
    const report = buildReport(plan(outcomes.map((entry) => entry.action)), outcomes, meta);

    // Act
    const points = sweepMetrics(report, MEASURES);

    // Assess
    const byCode = series(points, 'Failures', ['errorCode']);
    expect(byCode).toHaveLength(MAX_ERROR_CODES);
    expect(byCode.map((entry) => entry.dimensions.errorCode)).toEqual([...codes.slice(0, 9), 'Other']);
    // The free text and the three rarest codes (3 + 2 + 1 failures) are Other.
    expect(pointValue(points, 'Failures', { errorCode: 'Other' })).toBe(1 + 3 + 2 + 1);
    expect(sum(byCode)).toBe(report.totals.failed);
    expect(pointValue(points, 'Failures')).toBe(report.totals.failed);
    expectWellFormed(points, report);
  });

  it('keeps a rule id that is not a plain word out of the dimensions', () => {
    // Prepare
    const subject = image();
    const report = buildReport(
      plan([], { decisions: [decision(subject, 'keep', { rule: `kept ${subject.imageId}` })] }),
      [],
      meta,
    );

    // Act
    const points = sweepMetrics(report, MEASURES);

    // Assess
    expect(pointValue(points, 'Decisions', { kind: 'image', verdict: 'keep', rule: 'other' })).toBe(1);
    expectWellFormed(points, report);
  });
});

describe('imageEventMetrics', () => {
  it('counts the event by outcome, with its findings by severity and rule, and its remediation', () => {
    // Act
    const points = imageEventMetrics({
      status: 'alerted',
      findings: [
        { rule: 'sharing', severity: 'critical', reason: 'public' },
        { rule: 'required-tags', severity: 'medium', reason: 'no owner tag' },
      ],
      remediation: 'removed',
      throttledCalls: 2,
    });

    // Assess
    expectWellFormed(points);
    expect(pointValue(points, 'ImageEvents')).toBe(1);
    expect(pointValue(points, 'ImageEvents', { outcome: 'alerted' })).toBe(1);
    expect(pointValue(points, 'EventFindings')).toBe(2);
    expect(pointValue(points, 'EventFindings', { severity: 'critical' })).toBe(1);
    expect(pointValue(points, 'EventFindings', { severity: 'medium' })).toBe(1);
    expect(pointValue(points, 'EventFindings', { severity: 'critical', rule: 'sharing' })).toBe(1);
    expect(series(points, 'EventFindings', ['severity'])).toHaveLength(2);
    expect(pointValue(points, 'EventRemediations', { result: 'removed' })).toBe(1);
    expect(pointValue(points, 'ThrottledCalls')).toBe(2);
  });

  it('counts a dropped event with no findings and no remediation', () => {
    // Act
    const points = imageEventMetrics({ status: 'ignored', throttledCalls: 0 });

    // Assess
    expectWellFormed(points);
    expect(points.map((entry) => [entry.name, entry.dimensions, entry.value])).toEqual([
      ['ImageEvents', {}, 1],
      ['ImageEvents', { outcome: 'ignored' }, 1],
      ['EventFindings', {}, 0],
      ['ThrottledCalls', {}, 0],
    ]);
  });
});

describe('organisationMetrics', () => {
  function summary(accountId: string, region: string, status: TargetSummary['status']): TargetSummary {
    return {
      status,
      accountId,
      region,
      dryRun: false,
      invocations: 1,
      totals: {
        images: 3,
        eligible: 1,
        marked: 1,
        deregistered: 0,
        failed: 0,
        notReached: 0,
        snapshots: 2,
        orphans: 0,
        snapshotsDeleted: 0,
        snapshotsFailed: 0,
        findings: 0,
      },
      reclaimedGiB: 0,
      reclaimableGiB: 0,
      savingUsd: 0,
      fingerprint: '0123456789abcdef',
      news: true,
    };
  }

  it('counts targets done, stopped and failed, failures by error name, accounts and Regions', () => {
    // Prepare
    const results: TargetResult[] = [
      summary('111111111111', 'eu-west-1', 'done'),
      summary('111111111111', 'us-east-1', 'done'),
      summary('222222222222', 'eu-west-1', 'stopped'),
      { status: 'failed', accountId: '333333333333', region: 'eu-west-1', error: 'TargetAccessError' },
      { status: 'failed', accountId: '333333333333', region: 'us-east-1', error: 'TargetAccessError' },
      { status: 'failed', accountId: '444444444444', region: 'eu-west-1', error: 'States.Timeout' },
    ];
    const digest = buildOrgDigest({ runId: 'run-1', asOf: NOW.toISOString(), results });

    // Act
    const points = organisationMetrics(digest);

    // Assess
    expectWellFormed(points);
    expect(pointValue(points, 'OrgSweepCompleted')).toBe(1);
    expect(pointValue(points, 'Targets')).toBe(digest.targets.total);
    expect(pointValue(points, 'TargetsDone')).toBe(digest.targets.done);
    expect(pointValue(points, 'TargetsStopped')).toBe(digest.targets.stopped);
    expect(pointValue(points, 'TargetsFailed')).toBe(digest.targets.failed);
    expect(digest.targets).toEqual({ total: 6, done: 2, stopped: 1, failed: 3 });
    expect(pointValue(points, 'TargetsFailed', { errorCode: 'TargetAccessError' })).toBe(2);
    expect(pointValue(points, 'TargetsFailed', { errorCode: 'States.Timeout' })).toBe(1);
    expect(pointValue(points, 'TargetListingFailed')).toBe(0);
    expect(pointValue(points, 'Accounts')).toBe(4);
    expect(pointValue(points, 'Regions')).toBe(2);
    expect(JSON.stringify(points.map((entry) => entry.dimensions))).not.toMatch(/\d{12}|eu-west-1|us-east-1/);
  });

  it('says so when the targets could not be listed', () => {
    // Prepare
    const digest = buildOrgDigest({
      runId: 'run-1',
      asOf: NOW.toISOString(),
      results: [],
      listingError: { error: 'AccessDeniedException', cause: 'not allowed' },
    });

    // Act
    const points = organisationMetrics(digest);

    // Assess
    expect(pointValue(points, 'TargetListingFailed')).toBe(1);
    expect(pointValue(points, 'Targets')).toBe(0);
    expect(pointValue(points, 'OrgSweepCompleted')).toBe(1);
  });
});
