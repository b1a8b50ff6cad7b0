import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countsFor } from '../../scripts/bench/account.ts';
import {
  Bench,
  type Invocation,
  type Job,
  type MinimumRow,
  minimumCalls,
  notReachedOf,
} from '../../scripts/bench/harness.ts';
import type { ReferenceEvaluation } from '../../scripts/bench/oracle.ts';
import { sumCalls } from '../../scripts/bench/report.ts';
import { type CallCounts, DEFAULT_BACKGROUND, DEFAULT_LATENCY } from '../../scripts/bench/simulator.ts';

/**
 * `npm run bench` in miniature: a 500-image account through the real adapters, limiter and core,
 * against the simulated EC2 with its default latency and other tools drawing on its buckets. A
 * plan, then the whole job (apply invocations of 900 s until the account is done), each pinned
 * exactly to the calls the account's composition needs, and the job must remove everything
 * eligible. No timing is asserted.
 */

/** Accepted calls per API, for every API that has a minimum or was called. */
function accepted(calls: CallCounts, minimum: readonly MinimumRow[]): Record<string, number> {
  const apis = new Set([...minimum.map((row) => row.api), ...Object.keys(calls)]);
  return Object.fromEntries([...apis].sort().map((api) => [api, calls[api]?.accepted ?? 0]));
}

function least(calls: CallCounts, minimum: readonly MinimumRow[]): Record<string, number> {
  const apis = new Set([...minimum.map((row) => row.api), ...Object.keys(calls)]);
  return Object.fromEntries(
    [...apis].sort().map((api) => {
      const row = minimum.find((r) => r.api === api);
      return [api, row ? row.decide + row.act : 0];
    }),
  );
}

describe('bench smoke: a 500-image account under latency and background load, a plan then the whole job', () => {
  let bench: Bench;
  let before: ReferenceEvaluation;
  let plan: Invocation;
  let job: Job;
  let after: ReferenceEvaluation;

  beforeAll(async () => {
    // Prepare
    bench = new Bench({
      counts: countsFor(500),
      seed: 7,
      scale: 100,
      latency: DEFAULT_LATENCY,
      background: DEFAULT_BACKGROUND,
    });
    before = bench.reference();
    // Act
    plan = await bench.invoke('plan', before);
    job = await bench.runJob({ reference: before });
    after = bench.reference();
  }, 60_000);

  afterAll(() => bench.close());

  it('builds an account that src evaluates the way the generator intended', () => {
    const { intended } = bench;
    const imageKinds = before.plan.actions.map((action) => action.kind);
    const snapshotKinds = (before.plan.snapshots?.actions ?? []).map((action) => action.kind);

    expect(intended.imagesRemoved).toBeGreaterThan(100);
    expect(intended.imagesMarked).toBeGreaterThan(0);
    expect(intended.orphansMarked).toBeGreaterThan(0);
    expect({
      deregister: imageKinds.filter((kind) => kind === 'deregister').length,
      mark: imageKinds.filter((kind) => kind === 'mark').length,
      unmark: imageKinds.filter((kind) => kind === 'unmark').length,
      orphanCandidates: before.orphanCandidates,
      delete: snapshotKinds.filter((kind) => kind === 'delete').length,
      markSnapshots: snapshotKinds.filter((kind) => kind === 'mark').length,
      unmarkSnapshots: snapshotKinds.filter((kind) => kind === 'unmark').length,
    }).toEqual({
      deregister: intended.imagesRemoved,
      mark: intended.imagesMarked,
      unmark: intended.imagesUnmarked,
      orphanCandidates: intended.orphanCandidates,
      delete: intended.orphansDeleted,
      markSnapshots: intended.orphansMarked,
      unmarkSnapshots: intended.snapshotsUnmarked,
    });
  });

  it('runs with the latency and the background load on: other tools drew on the buckets the sweep used', () => {
    const drawn = Object.fromEntries(
      bench.simulator
        .usage()
        .map((usage) => [usage.bucket.key, usage.background.reduce((sum, n) => sum + n, 0)]),
    );

    expect(bench.latency).toEqual({ pageMs: 150, callMs: 50 });
    expect(drawn.DeleteSnapshot).toBeGreaterThan(0);
    expect(drawn.DeregisterImage).toBeGreaterThan(0);
    expect(drawn.DescribeSnapshotAttribute).toBeGreaterThan(0);
  });

  it('makes exactly the minimum API calls per operation in a plan, refused requests aside', () => {
    const minimum = minimumCalls(before, 'plan', bench.policy);

    expect(plan.error).toBeUndefined();
    expect(accepted(plan.calls, minimum)).toEqual(least(plan.calls, minimum));
  });

  it('makes exactly the minimum API calls per operation over the whole job, in one invocation', () => {
    const minimum = minimumCalls(before, 'apply', bench.policy);
    const calls = sumCalls(job.invocations);

    expect(job.invocations).toHaveLength(1);
    expect(job.invocations[0]?.error).toBeUndefined();
    expect(accepted(calls, minimum)).toEqual(least(calls, minimum));
  });

  it('sends only commands the simulator implements, and never repeats an action', () => {
    expect([...bench.simulator.unsupported.keys()]).toEqual([]);
    expect(job.invocations[0]?.redundancy).toEqual({ removedAgain: 0, markedAgain: 0, unmarkedAgain: 0 });
  });

  it('removes everything eligible, with no failed action and nothing left unread', () => {
    const report = job.combined;
    expect(job.complete).toBe(true);
    expect(notReachedOf(report)).toEqual({ actions: 0, unread: 0 });
    expect(report?.totals).toMatchObject({
      deregistered: bench.intended.imagesRemoved,
      orphansDeleted: bench.intended.orphansDeleted,
      failed: 0,
      snapshotsFailed: 0,
      notReached: 0,
    });
    expect(after.plan.actions).toEqual([]);
    // What the job marked is now waiting out its grace period, not marked again.
    expect(after.plan.scheduled).toHaveLength(bench.intended.imagesMarked);
  });

  it('leaves only snapshots it just orphaned, which the next sweep will mark', () => {
    const deregistered = new Set(
      (job.combined?.actions ?? [])
        .filter((outcome) => outcome.action.kind === 'deregister' && outcome.status === 'done')
        .map((outcome) => outcome.action.imageId),
    );
    const snapshotPlan = after.plan.snapshots;
    const decisions = new Map((snapshotPlan?.decisions ?? []).map((d) => [d.snapshotId, d]));
    const left = (snapshotPlan?.actions ?? []).map((action) => ({
      kind: action.kind,
      namesImageJustDeregistered: deregistered.has(decisions.get(action.snapshotId)?.imageId ?? ''),
    }));

    expect(left.filter((entry) => !(entry.kind === 'mark' && entry.namesImageJustDeregistered))).toEqual([]);
  });
});
