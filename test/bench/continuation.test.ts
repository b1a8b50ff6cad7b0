import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countsFor } from '../../scripts/bench/account.ts';
import { Bench, type Invocation } from '../../scripts/bench/harness.ts';
import type { ReferenceEvaluation } from '../../scripts/bench/oracle.ts';
import type { RunReport } from '../../src/core/report.ts';

/**
 * A run that cannot finish in one invocation, against the simulated EC2 behind aws-sdk-client-mock,
 * with its latency and other tools drawing on its buckets: each invocation stops at its deadline,
 * hands on as the handler does, and the next carries on with the same clock until the run is complete.
 */
describe('a sweep continued over several short invocations of the simulated account', () => {
  let bench: Bench;
  let invocations: Invocation[] = [];
  let combined: RunReport | undefined;
  let reference: ReferenceEvaluation | undefined;

  beforeAll(async () => {
    // Prepare: 60 simulated seconds per invocation, far too little for the whole job.
    bench = new Bench({ counts: countsFor(400), seed: 11, scale: 100, invocationMs: 60_000 });
    reference = bench.reference();

    // Act
    const job = await bench.runJob({ reference });
    invocations = job.invocations;
    combined = job.combined;
  }, 120_000);

  afterAll(() => bench.close());

  it('needs more than one invocation, and the last one completes the run', () => {
    expect(invocations.length).toBeGreaterThan(1);
    expect(invocations.slice(0, -1).every((invocation) => invocation.report?.complete === false)).toBe(true);
    expect(combined?.complete).toBe(true);
  });

  it('never does an action twice, and fails none', () => {
    for (const invocation of invocations) {
      expect(invocation.error).toBeUndefined();
      expect(invocation.redundancy).toEqual({ removedAgain: 0, markedAgain: 0, unmarkedAgain: 0 });
      expect(invocation.report?.totals.failed).toBe(0);
    }
  });

  it('removes everything the run was due to remove, and its combined report says so', () => {
    const after = bench.reference();
    const left = [...after.plan.actions, ...(after.plan.snapshots?.actions ?? [])].filter(
      (action) => action.kind === 'deregister' || action.kind === 'delete',
    );
    expect(left).toEqual([]);
    const done = invocations.reduce(
      (sum, invocation) => sum + (invocation.report?.totals.deregistered ?? 0),
      0,
    );
    expect(combined?.totals.deregistered).toBe(done);
    expect(done).toBe(bench.intended.imagesRemoved);
  });

  it('counts every orphan of the run once, those an early invocation left unread included', () => {
    const orphans = (evaluation: ReferenceEvaluation | undefined) =>
      evaluation?.plan.snapshots?.decisions.filter((d) => d.verdict === 'orphan').length ?? 0;
    const unread = invocations[0]?.report?.snapshotDecisions.filter((d) => d.rule === 'not-reached').length;
    expect(unread).toBeGreaterThan(0);
    // Deleted during the run, or still an orphan at its end (marked, in its grace period); a few
    // became orphans during the run, when the last image using them was deregistered.
    const deleted = combined?.totals.orphansDeleted ?? 0;
    expect(deleted).toBe(bench.intended.orphansDeleted);
    expect(combined?.totals.orphans).toBe(deleted + orphans(bench.reference()));
    expect(combined?.totals.orphans).toBeGreaterThanOrEqual(orphans(reference));
  });
});
