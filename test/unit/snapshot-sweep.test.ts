import { describe, expect, it, vi } from 'vitest';
import { MARKED_AT_TAG, parsePolicy } from '../../src/config/policy.ts';
import { type SnapshotInventoryPort, unboundedDeadline } from '../../src/core/ports.ts';
import { buildReport, type RunReport, SNAPSHOT_PRICE_PER_GB_MONTH_USD } from '../../src/core/report.ts';
import { runSweep, type SweepPorts, type SweepRequest } from '../../src/core/sweep.ts';
import { demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import { InventoryError } from '../../src/errors.ts';
import type {
  ActionOutcome,
  Plan,
  PlannedSnapshotAction,
  Snapshot,
  SnapshotActionOutcome,
  SnapshotPlan,
} from '../../src/model.ts';
import { snapshotSizeGiB } from '../../src/rules/snapshot-orphan.ts';
import { action, daysAfter, NOW as FACTORY_NOW, image, plan, recordingLog } from './factories.ts';

/** The demo's clock; the second apply runs past the default seven-day grace period. */
const NOW = new Date('2026-11-22T06:00:00.000Z');
const LATER = daysAfter(NOW, 8);

/** The demo's orphans (by Name tag): made for an image that is gone, old enough, guarded by nothing. */
const ORPHANS = [
  'orphan-of-build-17',
  'orphan-of-copy',
  'orphan-failed-create-image',
  'orphan-marked-earlier',
  'orphan-in-grace',
];
/** Orphans the first apply marks: unmarked before it. */
const FIRST_MARKED = ['orphan-of-build-17', 'orphan-of-copy', 'orphan-failed-create-image'];

/** The demo's guarded snapshots and the rule that keeps each, whenever the sweep runs. */
const GUARDED = [
  { name: 'legal-hold', rule: 'locked' },
  { name: 'exempt-forensics', rule: 'exempt-tag' },
  { name: 'dlm-daily', rule: 'dlm-managed' },
  { name: 'backup-vault-copy', rule: 'backup-managed' },
  { name: 'shared-with-partner', rule: 'shared' },
  { name: 'manual-volume-backup', rule: 'not-an-image-snapshot' },
];
const YOUNG = 'orphan-too-young';

type AccountSnapshot = Snapshot & { tags: Record<string, string> };

function demo() {
  const seed = demoAccount(NOW);
  const account = new MemoryAccount(structuredClone(seed));
  const log = recordingLog();
  const ports: SweepPorts = {
    inventory: account,
    actions: account,
    log,
    // As the CLI wires it: the in-memory account implements every snapshot port and the bin.
    snapshots: { inventory: account, sharing: account, actions: account },
    recycleBin: account,
  };
  const idOf = (name: string): string => {
    const found = seed.snapshots?.find((snapshot) => snapshot.tags.Name === name);
    if (!found) throw new Error(`no demo snapshot named ${name}`);
    return found.snapshotId;
  };
  return { seed, account, log, ports, idOf };
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

function snapshotsOf(account: MemoryAccount): Map<string, AccountSnapshot> {
  return structuredClone(account.snapshots);
}

/** Runs a sweep and reports what it changed in the account, to check the report against. */
async function sweep(ports: SweepPorts, account: MemoryAccount, overrides: Partial<SweepRequest> = {}) {
  const before = snapshotsOf(account);
  account.calls.length = 0;
  const report = await runSweep(ports, request(overrides));
  const after = snapshotsOf(account);
  const gone = [...before.keys()].filter((id) => !after.has(id));
  const newlyMarked = [...after.values()].filter(
    (s) => s.tags[MARKED_AT_TAG] !== undefined && before.get(s.snapshotId)?.tags[MARKED_AT_TAG] === undefined,
  );
  const goneGiB = gone.reduce((sum, id) => {
    const snapshot = before.get(id);
    return sum + (snapshot ? snapshotSizeGiB(snapshot) : 0);
  }, 0);
  return { report, before, after, gone, newlyMarked, goneGiB, calls: [...account.calls] };
}

const cents = (value: number) => Math.round(value * 100) / 100;

function decisionFor(report: RunReport, snapshotId: string) {
  const found = report.snapshotDecisions.find((d) => d.snapshotId === snapshotId);
  if (!found) throw new Error(`no decision for ${snapshotId}`);
  return found;
}

describe('runSweep with snapshots on the demo account', () => {
  it('decides every demo snapshot with the expected rule', async () => {
    // Prepare
    const { account, ports, idOf } = demo();

    // Act
    const report = await runSweep(ports, request({ mode: 'plan' }));

    // Assess
    for (const name of ORPHANS) expect(decisionFor(report, idOf(name)).verdict, name).toBe('orphan');
    for (const { name, rule } of GUARDED) {
      expect(decisionFor(report, idOf(name)), name).toMatchObject({ verdict: 'keep', rule });
    }
    expect(decisionFor(report, idOf(YOUNG))).toMatchObject({ verdict: 'keep', rule: 'too-young' });
    // Every image's own snapshot is in use, disabled and deprecated images included.
    for (const owner of account.images.values()) {
      for (const snapshotId of owner.snapshotIds) {
        expect(decisionFor(report, snapshotId), `${owner.name} (${owner.state})`).toMatchObject({
          verdict: 'keep',
          rule: 'in-use',
        });
      }
    }
    expect(report.totals.snapshots).toBe(account.snapshots.size);
    expect(report.totals.orphans).toBe(ORPHANS.length);
    expect(report.totals.snapshotsKept).toBe(account.snapshots.size - ORPHANS.length);
    expect(account.calls).toEqual([]);
  });

  it('the first apply marks exactly the unmarked orphans and deletes the one past its grace', async () => {
    // Prepare
    const { account, ports, idOf } = demo();

    // Act
    const run = await sweep(ports, account);

    // Assess
    const demoCalls = run.calls.filter((call) => call.includes('snap-0bad0'));
    expect(demoCalls.sort()).toEqual(
      [
        `deleteSnapshot ${idOf('orphan-marked-earlier')}`,
        ...FIRST_MARKED.map((name) => `tagResource ${idOf(name)}`),
      ].sort(),
    );
    for (const name of FIRST_MARKED) {
      expect(account.snapshots.get(idOf(name))?.tags[MARKED_AT_TAG], name).toBe(NOW.toISOString());
    }
    expect(run.report.snapshotScheduled).toEqual([
      expect.objectContaining({ snapshotId: idOf('orphan-in-grace'), sizeGiB: 16 }),
    ]);
    expect(run.report.totals).toMatchObject({ snapshotsMarked: 3, orphansDeleted: 1, snapshotsScheduled: 1 });
    // Waiting out the grace period: the three marked now (11.5 + 50 + 64 GiB) and the one in grace (16).
    expect(run.report.cost.scheduledGiB).toBe(141.5);
    expect(run.report.snapshotActions.every((o) => o.status === 'done')).toBe(true);
  });

  it('a second apply past the grace period deletes exactly the orphans and no guarded snapshot', async () => {
    // Prepare
    const { seed, account, ports, idOf } = demo();
    const first = await sweep(ports, account);

    // Act
    const second = await sweep(ports, account, { now: LATER });

    // Assess
    const demoGone = [...first.gone, ...second.gone].filter((id) => id.startsWith('snap-0bad0'));
    expect(demoGone.sort()).toEqual(ORPHANS.map(idOf).sort());
    for (const { name } of GUARDED) {
      const original = seed.snapshots?.find((s) => s.snapshotId === idOf(name));
      expect(account.snapshots.get(idOf(name)), name).toEqual(original);
      expect(
        [...first.calls, ...second.calls].filter((call) => call.endsWith(idOf(name))),
        name,
      ).toEqual([]);
    }
    // The young one is old enough by now: marked, never deleted.
    expect(account.snapshots.get(idOf(YOUNG))?.tags[MARKED_AT_TAG]).toBe(LATER.toISOString());
    // No image left behind lost a snapshot.
    for (const owner of account.images.values()) {
      for (const snapshotId of owner.snapshotIds)
        expect(account.snapshots.has(snapshotId), owner.name).toBe(true);
    }
    const deleteCalls = [...first.calls, ...second.calls].filter((call) => call.startsWith('deleteSnapshot'));
    for (const call of deleteCalls) {
      const snapshotId = call.split(' ')[1];
      const usedByLiveImage = [...account.images.values()].some(
        (i) => snapshotId && i.snapshotIds.includes(snapshotId),
      );
      expect(usedByLiveImage, call).toBe(false);
    }
  });

  it.each([
    { run: 'first apply', now: NOW },
    { run: 'second apply', now: LATER },
  ])('the $run report totals match the account end state', async ({ now }) => {
    // Prepare
    const { account, ports } = demo();
    if (now !== NOW) await sweep(ports, account);

    // Act
    const { report, before, after, gone, newlyMarked, goneGiB } = await sweep(ports, account, { now });

    // Assess
    const orphanIds = new Set(
      report.snapshotDecisions.filter((d) => d.verdict === 'orphan').map((d) => d.snapshotId),
    );
    expect(report.totals.snapshots).toBe(before.size);
    expect(report.snapshotDecisions).toHaveLength(before.size);
    expect(report.totals.snapshotsKept + report.totals.orphans).toBe(before.size);
    expect(report.totals.orphans).toBe(orphanIds.size);
    // Every orphan ends either deleted or marked.
    for (const id of orphanIds)
      expect(!after.has(id) || after.get(id)?.tags[MARKED_AT_TAG] !== undefined).toBe(true);
    expect(report.totals.snapshotsMarked).toBe(newlyMarked.length);
    expect(report.totals.orphansDeleted).toBe(gone.filter((id) => orphanIds.has(id)).length);
    expect(report.totals.snapshotsDeleted).toBe(before.size - after.size);
    expect(report.totals.snapshotsFailed).toBe(0);
    expect(report.cost.reclaimedGiB).toBe(cents(goneGiB));
    expect(report.cost.reclaimableGiB).toBe(0);
    expect(report.cost.estimatedMonthlySavingUsd).toBe(cents(report.cost.reclaimedGiB * 0.05));
    expect(report.cost.pricePerGbMonthUsd).toBe(SNAPSHOT_PRICE_PER_GB_MONTH_USD);
    expect(report.cost.note).toMatch(/upper bound/);
    expect(report.complete).toBe(true);
  });

  it('prices deleted orphans by their full size where EC2 reports one', async () => {
    // Prepare
    const { account, ports, idOf } = demo();
    await sweep(ports, account);

    // Act
    const { report } = await sweep(ports, account, { now: LATER });

    // Assess: build-17 (30 GiB volume, 11.5 GiB of data), copy (50), failed create (100 GiB volume, 64 of data), in grace (16).
    const deleted = report.snapshotActions.filter((o) => o.action.kind === 'delete' && o.status === 'done');
    expect(Object.fromEntries(deleted.map((o) => [o.action.snapshotId, o.action.sizeGiB]))).toEqual({
      [idOf('orphan-of-build-17')]: 11.5,
      [idOf('orphan-of-copy')]: 50,
      [idOf('orphan-failed-create-image')]: 64,
      [idOf('orphan-in-grace')]: 16,
    });
  });

  it('plan mode prices what an apply would reclaim and reclaims nothing', async () => {
    // Prepare
    const { account, ports } = demo();
    await sweep(ports, account);

    // Act
    const planned = await sweep(ports, account, { now: LATER, mode: 'plan' });
    const applied = await sweep(ports, account, { now: LATER });

    // Assess
    expect(planned.calls).toEqual([]);
    expect(planned.gone).toEqual([]);
    expect(planned.report.cost.reclaimedGiB).toBe(0);
    expect(planned.report.cost.reclaimableGiB).toBeGreaterThan(0);
    expect(planned.report.cost.reclaimableGiB).toBe(applied.report.cost.reclaimedGiB);
    expect(planned.report.cost.estimatedMonthlySavingUsd).toBe(applied.report.cost.estimatedMonthlySavingUsd);
    expect(planned.report.totals).toMatchObject({
      snapshotsMarked: 0,
      orphansDeleted: 0,
      snapshotsDeleted: 0,
    });
    expect(planned.report.snapshotActions.every((o) => o.status === 'planned')).toBe(true);
  });

  it('a dry-run apply prices what it would reclaim and changes nothing', async () => {
    // Prepare
    const { account, ports, idOf } = demo();

    // Act
    const { report, calls, gone } = await sweep(ports, account, { dryRun: true });

    // Assess
    expect(calls).toEqual([]);
    expect(gone).toEqual([]);
    expect(report.dryRun).toBe(true);
    expect(report.cost.reclaimedGiB).toBe(0);
    // At least the orphan marked nine days ago (20 GiB).
    expect(report.cost.reclaimableGiB).toBeGreaterThanOrEqual(20);
    expect(report.snapshotActions).toContainEqual(
      expect.objectContaining({
        action: expect.objectContaining({ kind: 'delete', snapshotId: idOf('orphan-marked-earlier') }),
        status: 'dry-run',
      }),
    );
  });

  it('throws InventoryError and changes nothing when snapshots cannot be listed', async () => {
    // Prepare
    const { account, ports } = demo();
    const images = structuredClone(account.images);
    const snapshots = snapshotsOf(account);
    account.failNext('listOwnedSnapshots', '*', 'UnauthorizedOperation');

    // Act
    const run = runSweep(ports, request());

    // Assess
    await expect(run).rejects.toBeInstanceOf(InventoryError);
    await expect(run).rejects.toThrow(/snapshots/);
    expect(account.calls).toEqual([]);
    expect(account.images).toEqual(images);
    expect(account.snapshots).toEqual(snapshots);
  });

  it('deregisters images while the share checks are still running, and acts on snapshots once they end', async () => {
    // Prepare: share checks that answer only when the test lets them.
    const { account, ports, idOf } = demo();
    const orphanDeletions = (calls: readonly string[]) =>
      calls.filter((call) => ORPHANS.some((name) => call === `deleteSnapshot ${idOf(name)}`));
    await sweep(ports, account);
    account.calls.length = 0;
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let pendingChecks = 0;
    const sharing = {
      snapshotPermissions: async (snapshotId: string) => {
        pendingChecks += 1;
        await released;
        return account.snapshotPermissions(snapshotId);
      },
    };
    const slowPorts: SweepPorts = { ...ports, snapshots: { inventory: account, sharing, actions: account } };

    // Act
    const run = runSweep(slowPorts, request({ now: LATER }));
    await vi.waitFor(() =>
      expect(account.calls.some((call) => call.startsWith('deregisterImage '))).toBe(true),
    );
    const beforeRelease = [...account.calls];
    release();
    const report = await run;

    // Assess: images were removed with every share check still pending, snapshots only after.
    expect(pendingChecks).toBeGreaterThan(0);
    expect(orphanDeletions(beforeRelease)).toEqual([]);
    expect(orphanDeletions(account.calls).length).toBe(report.totals.orphansDeleted);
    expect(report.totals.deregistered).toBeGreaterThan(0);
    expect(report.totals.orphansDeleted).toBeGreaterThan(0);
    expect(report.totals.failed + report.totals.snapshotsFailed).toBe(0);
  });

  it('asks to confirm the whole plan, snapshots included, before it changes anything', async () => {
    // Prepare
    const { account, ports } = demo();
    await sweep(ports, account);
    account.calls.length = 0;
    const asked: { callsBefore: number; imageActions: number; snapshotActions: number }[] = [];
    const confirm = async (whole: Plan) => {
      asked.push({
        callsBefore: account.calls.length,
        imageActions: whole.actions.length,
        snapshotActions: whole.snapshots?.actions.length ?? 0,
      });
      return true;
    };

    // Act
    const report = await runSweep(ports, request({ now: LATER, confirm }));

    // Assess
    expect(asked).toHaveLength(1);
    expect(asked[0]?.callsBefore).toBe(0);
    expect(asked[0]?.imageActions).toBe(report.actions.length);
    expect(asked[0]?.snapshotActions).toBe(report.snapshotActions.length);
    expect(asked[0]?.snapshotActions).toBeGreaterThan(0);
    expect(report.totals.deregistered).toBeGreaterThan(0);
  });

  it('changes nothing until the snapshot inventory is complete, even with the image plan ready', async () => {
    // Prepare: a snapshot listing that fails only after the image plan could have been acted on.
    const { account, ports } = demo();
    await sweep(ports, account);
    account.calls.length = 0;
    const images = structuredClone(account.images);
    const inventory: SnapshotInventoryPort = {
      listOwnedSnapshots: async () => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        throw Object.assign(new Error('not allowed to DescribeSnapshots'), { name: 'UnauthorizedOperation' });
      },
      lockedSnapshotIds: () => account.lockedSnapshotIds(),
      existingVolumeIds: () => account.existingVolumeIds(),
      describeSnapshots: (ids) => account.describeSnapshots(ids),
    };

    // Act
    const run = runSweep(
      { ...ports, snapshots: { inventory, sharing: account, actions: account } },
      request({ now: LATER }),
    );

    // Assess
    await expect(run).rejects.toBeInstanceOf(InventoryError);
    expect(account.calls).toEqual([]);
    expect(account.images).toEqual(images);
  });

  it('still reports the images it removed when deciding the snapshots fails', async () => {
    // Prepare: a listing whose first snapshot the rules cannot read, as a bug would leave it.
    const { account, ports, idOf } = demo();
    await sweep(ports, account);
    account.calls.length = 0;
    const inventory: SnapshotInventoryPort = {
      listOwnedSnapshots: async (accountId) => {
        const [first, ...rest] = await account.listOwnedSnapshots(accountId);
        return [{ ...first, tags: null } as unknown as Snapshot, ...rest];
      },
      lockedSnapshotIds: () => account.lockedSnapshotIds(),
      existingVolumeIds: () => account.existingVolumeIds(),
      describeSnapshots: (ids) => account.describeSnapshots(ids),
    };
    const broken: SweepPorts = { ...ports, snapshots: { inventory, sharing: account, actions: account } };
    const orphansLeft = ORPHANS.map(idOf).filter((id) => account.snapshots.has(id));
    expect(orphansLeft.length).toBeGreaterThan(0);

    // Act
    const report = await runSweep(broken, request({ now: LATER }));

    // Assess: orphans whose deletion had started as their sharing was read are reported as done;
    // every other one is left as it was.
    expect(report.totals.deregistered).toBeGreaterThan(0);
    const deleted = new Set(
      report.snapshotActions
        .filter((outcome) => outcome.action.kind === 'delete' && outcome.status === 'done')
        .map((outcome) => outcome.action.snapshotId),
    );
    for (const id of orphansLeft) expect(account.snapshots.has(id), id).toBe(!deleted.has(id));
    expect(report.snapshotActions.every((outcome) => outcome.action.kind === 'delete')).toBe(true);
    expect(report.totals.orphansDeleted).toBe(deleted.size);
    expect(report.warnings).toContainEqual(
      expect.stringMatching(
        new RegExp(
          `^snapshots were not decided \\(TypeError\\).*; (only the ${deleted.size} deletions decided before then went ahead|none was changed)$`,
        ),
      ),
    );
  });

  it('warns when snapshot locks cannot be listed', async () => {
    // Prepare
    const { account, ports } = demo();
    const inventory: SnapshotInventoryPort = {
      listOwnedSnapshots: (accountId) => account.listOwnedSnapshots(accountId),
      lockedSnapshotIds: async () => ({ supported: false, ids: new Set<string>() }),
      existingVolumeIds: () => account.existingVolumeIds(),
      describeSnapshots: (ids) => account.describeSnapshots(ids),
    };
    const snapshots = { inventory, sharing: account, actions: account };

    // Act
    const report = await runSweep({ ...ports, snapshots }, request({ mode: 'plan' }));

    // Assess
    expect(report.warnings).toContainEqual(expect.stringMatching(/DescribeLockedSnapshots unsupported/));
    expect(report.totals.snapshots).toBe(account.snapshots.size);
  });

  it('keeps, with a warning, an orphan whose sharing cannot be read', async () => {
    // Prepare
    const { account, ports, idOf } = demo();
    const unreadable = idOf('orphan-of-build-17');
    account.failNext('snapshotPermissions', unreadable, 'UnauthorizedOperation');

    // Act
    const { report, calls } = await sweep(ports, account);

    // Assess
    expect(decisionFor(report, unreadable)).toMatchObject({
      verdict: 'keep',
      rule: 'shared',
      reason: 'its sharing could not be read',
    });
    expect(report.warnings).toContain(
      `snapshot ${unreadable}: sharing not readable (UnauthorizedOperation); kept`,
    );
    expect(calls.filter((call) => call.endsWith(unreadable))).toEqual([]);
    expect(account.snapshots.get(unreadable)?.tags[MARKED_AT_TAG]).toBeUndefined();
    for (const name of FIRST_MARKED.filter((n) => n !== 'orphan-of-build-17')) {
      expect(account.snapshots.get(idOf(name))?.tags[MARKED_AT_TAG], name).toBe(NOW.toISOString());
    }
    expect(report.totals.orphans).toBe(ORPHANS.length - 1);
  });

  it('reports a failed deletion with its error code and still deletes the others', async () => {
    // Prepare
    const { account, ports, idOf } = demo();
    await sweep(ports, account);
    const broken = idOf('orphan-of-copy');
    account.failNext('deleteSnapshot', broken, 'RequestLimitExceeded');

    // Act
    const { report, gone } = await sweep(ports, account, { now: LATER });

    // Assess
    expect(report.snapshotActions).toContainEqual(
      expect.objectContaining({
        action: expect.objectContaining({ snapshotId: broken }),
        status: 'failed',
        errorCode: 'RequestLimitExceeded',
      }),
    );
    expect(account.snapshots.has(broken)).toBe(true);
    expect(gone).toEqual(expect.arrayContaining([idOf('orphan-of-build-17'), idOf('orphan-in-grace')]));
    expect(report.totals.snapshotsFailed).toBe(1);
    expect(report.totals.orphansDeleted).toBe(3);
  });
});

describe('buildReport: snapshot totals and cost', () => {
  function snapshotAction(kind: PlannedSnapshotAction['kind'], snapshotId: string, sizeGiB: number) {
    return { kind, snapshotId, rule: 'snapshot-orphan', reason: 'test', sizeGiB };
  }

  function snapshotPlan(overrides: Partial<SnapshotPlan> = {}): SnapshotPlan {
    return {
      inventorySize: 10,
      decisions: [],
      actions: [],
      deferred: [],
      scheduled: [],
      cap: { limit: 100, eligible: 0, capped: false },
      ...overrides,
    };
  }

  function report(
    snapshotOutcomes: SnapshotActionOutcome[],
    options: { snapshots?: SnapshotPlan; outcomes?: ActionOutcome[]; sizes?: Map<string, number> } = {},
  ): RunReport {
    return buildReport(plan([], { snapshots: options.snapshots ?? snapshotPlan() }), options.outcomes ?? [], {
      mode: 'apply',
      dryRun: false,
      startedAt: FACTORY_NOW,
      finishedAt: FACTORY_NOW,
      warnings: [],
      snapshotOutcomes,
      snapshotSizes: options.sizes ?? new Map(),
    });
  }

  it('counts each outcome once, by what actually happened', () => {
    // Prepare
    const outcomes: SnapshotActionOutcome[] = [
      { action: snapshotAction('delete', 'snap-1', 10), status: 'done' },
      { action: snapshotAction('delete', 'snap-2', 5), status: 'failed', errorCode: 'RequestLimitExceeded' },
      { action: snapshotAction('delete', 'snap-3', 3), status: 'skipped' },
      { action: snapshotAction('delete', 'snap-4', 2), status: 'already-gone' },
      { action: snapshotAction('delete', 'snap-5', 1), status: 'not-reached' },
      { action: snapshotAction('mark', 'snap-6', 7), status: 'done' },
      { action: snapshotAction('unmark', 'snap-7', 7), status: 'done' },
    ];

    // Act
    const result = report(outcomes);

    // Assess
    expect(result.totals).toMatchObject({
      orphansDeleted: 1,
      snapshotsDeleted: 1,
      snapshotsFailed: 1,
      snapshotsMarked: 1,
      snapshotsUnmarked: 1,
      skipped: 1,
      alreadyGone: 1,
      notReached: 1,
      failed: 1,
      pending: 0,
    });
    expect(result.complete).toBe(false);
    expect(result.cost).toMatchObject({
      reclaimedGiB: 10,
      reclaimableGiB: 0,
      estimatedMonthlySavingUsd: 0.5,
    });
    expect(result.snapshotActions).toEqual(outcomes);
  });

  it.each(['planned', 'dry-run'] as const)('a %s deletion counts as reclaimable, not reclaimed', (status) => {
    // Act
    const result = report([
      { action: snapshotAction('delete', 'snap-1', 11.5), status },
      { action: snapshotAction('delete', 'snap-2', 64), status },
      { action: snapshotAction('mark', 'snap-3', 100), status },
    ]);

    // Assess
    expect(result.cost).toMatchObject({
      reclaimedGiB: 0,
      reclaimableGiB: 75.5,
      estimatedMonthlySavingUsd: 3.78,
    });
    expect(result.totals).toMatchObject({ pending: 3, orphansDeleted: 0, snapshotsDeleted: 0 });
  });

  it('adds the snapshots deleted with their images, priced by the run’s sizes', () => {
    // Prepare
    const subject = image({ snapshotIds: ['snap-a', 'snap-b', 'snap-c'] });
    const deregistered: ActionOutcome = {
      action: action('deregister', subject, { snapshotIds: ['snap-a', 'snap-b', 'snap-c'] }),
      status: 'done',
      warnings: [],
      snapshots: [
        { snapshotId: 'snap-a', status: 'deleted' },
        { snapshotId: 'snap-b', status: 'deleted' },
        { snapshotId: 'snap-c', status: 'failed', detail: 'InternalError' },
      ],
    };

    // Act
    const result = report([{ action: snapshotAction('delete', 'snap-orphan', 20), status: 'done' }], {
      outcomes: [deregistered],
      sizes: new Map([
        ['snap-a', 8],
        ['snap-b', 12.25],
        ['snap-c', 100],
      ]),
    });

    // Assess
    expect(result.totals).toMatchObject({
      snapshotsDeleted: 3,
      orphansDeleted: 1,
      snapshotsFailed: 1,
      deregistered: 1,
    });
    expect(result.cost.reclaimedGiB).toBe(40.25);
    expect(result.cost.estimatedMonthlySavingUsd).toBe(2.01);
  });

  it('takes the decision counts and the schedule from the snapshot plan', () => {
    // Prepare
    const decision = (snapshotId: string, verdict: 'keep' | 'orphan') => ({
      snapshotId,
      verdict,
      rule: verdict === 'keep' ? 'locked' : 'snapshot-orphan',
      reason: 'test',
      sizeGiB: 1,
    });
    const snapshots = snapshotPlan({
      inventorySize: 4,
      decisions: [
        decision('snap-1', 'keep'),
        decision('snap-2', 'keep'),
        decision('snap-3', 'orphan'),
        decision('snap-4', 'orphan'),
      ],
      scheduled: [{ snapshotId: 'snap-3', sizeGiB: 30, removeAfter: 'x', markedAt: 'y' }],
      deferred: [{ snapshotId: 'snap-4', sizeGiB: 1, reason: 'cap' }],
      cap: { limit: 0, eligible: 1, capped: true },
    });

    // Act
    const result = report([], { snapshots });

    // Assess
    expect(result.totals).toMatchObject({
      snapshots: 4,
      snapshotsKept: 2,
      orphans: 2,
      snapshotsScheduled: 1,
      snapshotsDeferred: 1,
    });
    expect(result.cost.scheduledGiB).toBe(30);
    expect(result.warnings).toContainEqual(
      expect.stringMatching(/1 orphaned snapshots were due .* 1 deferred/),
    );
  });
});
