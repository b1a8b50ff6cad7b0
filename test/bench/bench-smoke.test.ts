import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countsFor } from '../../scripts/bench/account.ts';
import { Bench, type Invocation } from '../../scripts/bench/harness.ts';
import type { ReferenceEvaluation } from '../../scripts/bench/oracle.ts';

/**
 * `npm run bench` in miniature: a 500-image account through the real adapters, limiter and core,
 * against the simulated EC2. It pins the API calls per operation to the computed minimum exactly
 * and checks that a full sweep removes everything eligible. No timing is asserted: time here is
 * scaled 2000× and has no deadline.
 */

/** Accepted calls per API, for every API that has a minimum or was called. */
function calls(invocation: Invocation): Record<string, number> {
  const apis = new Set([...invocation.minimum.map((row) => row.api), ...Object.keys(invocation.calls)]);
  return Object.fromEntries([...apis].sort().map((api) => [api, invocation.calls[api]?.accepted ?? 0]));
}

function minimum(invocation: Invocation): Record<string, number> {
  const apis = new Set([...invocation.minimum.map((row) => row.api), ...Object.keys(invocation.calls)]);
  return Object.fromEntries(
    [...apis].sort().map((api) => {
      const row = invocation.minimum.find((r) => r.api === api);
      return [api, row ? row.decide + row.act : 0];
    }),
  );
}

describe('bench smoke: a 500-image account, plan then apply', () => {
  let bench: Bench;
  let before: ReferenceEvaluation;
  let plan: Invocation;
  let apply: Invocation;
  let after: ReferenceEvaluation;

  beforeAll(async () => {
    // Prepare
    bench = new Bench({
      counts: countsFor(500),
      seed: 7,
      scale: 2000,
      invocationMs: Number.POSITIVE_INFINITY,
    });
    before = bench.reference();
    // Act
    plan = await bench.invoke('plan', before);
    apply = await bench.invoke('apply', before);
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

  it('makes exactly the minimum API calls per operation in plan mode', () => {
    expect(plan.error).toBeUndefined();
    expect(calls(plan)).toEqual(minimum(plan));
  });

  it('makes exactly the minimum API calls per operation in apply mode', () => {
    expect(apply.error).toBeUndefined();
    expect(calls(apply)).toEqual(minimum(apply));
  });

  it('sends only commands the simulator implements, and never repeats an action', () => {
    expect([...bench.simulator.unsupported.keys()]).toEqual([]);
    expect(apply.redundancy).toEqual({ removedAgain: 0, markedAgain: 0, unmarkedAgain: 0 });
  });

  it('removes everything eligible in one apply, with no failed action', () => {
    const report = apply.report;
    expect(report?.complete).toBe(true);
    expect(report?.totals).toMatchObject({
      deregistered: bench.intended.imagesRemoved,
      orphansDeleted: bench.intended.orphansDeleted,
      failed: 0,
      snapshotsFailed: 0,
      notReached: 0,
    });
    expect(after.plan.actions).toEqual([]);
    // What the apply marked is now waiting out its grace period, not marked again.
    expect(after.plan.scheduled).toHaveLength(bench.intended.imagesMarked);
  });

  it('leaves only snapshots it just orphaned, which the next sweep will mark', () => {
    const deregistered = new Set(
      (apply.report?.actions ?? [])
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
