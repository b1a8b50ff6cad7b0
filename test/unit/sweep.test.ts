import { describe, expect, it, vi } from 'vitest';
import { MARKED_AT_TAG, parsePolicy } from '../../src/config/policy.ts';
import { decideBeforeReferences } from '../../src/core/image-decisions.ts';
import { unboundedDeadline } from '../../src/core/ports.ts';
import { runSweep, type SweepRequest } from '../../src/core/sweep.ts';
import { DEMO_ACCOUNT_ID, demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import { InventoryError } from '../../src/errors.ts';
import type { Image } from '../../src/model.ts';
import { daysAfter, type LogEntry, recordingLog } from './factories.ts';

const NOW = new Date('2026-11-22T06:00:00.000Z');

/** Old, idle and not protected by anything: the demo's first apply marks exactly these. */
const ELIGIBLE_UNMARKED = [
  'api-v1',
  'api-v2',
  'api-v3',
  'api-v4',
  'batch-worker-0.8.1',
  'hotfix-test-1',
  'web-2025-11-01',
  'web-2026-01-20',
  'web-2026-04-02',
  'web-2026-06-15',
];

/** In use, protected, exempt, Backup- or DLM-managed, pending, or not ours: never to be touched. */
const GUARDED = [
  'batch-worker-1.0.3',
  'batch-worker-0.9.0',
  'queue-consumer-2025-05-01',
  'legacy-app-2024-09-09',
  'golden-base-2025-02-02',
  'payments-release-2025-01-10',
  'compliance-baseline-2024-01-01',
  'db-host-backup-2025-06-01',
  'nightly-dlm-2025-07-07',
  'ml-training-2026-11-21',
  'vendor-appliance-3.2',
];

function demo() {
  const seed = demoAccount(NOW);
  const account = new MemoryAccount(structuredClone(seed));
  const log = recordingLog();
  const byName = (name: string): Image => {
    const found = seed.images.find((candidate) => candidate.name === name);
    if (!found) throw new Error(`no demo image named ${name}`);
    return found;
  };
  const ports = { inventory: account, actions: account, log };
  return { seed, account, log, byName, ports };
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

function messages(entries: readonly LogEntry[], message: string): LogEntry[] {
  return entries.filter((entry) => entry.message === message);
}

describe('runSweep on the demo account', () => {
  it('plan mode makes no mutating call', async () => {
    // Prepare
    const { seed, account, ports } = demo();

    // Act
    const report = await runSweep(ports, request({ mode: 'plan' }));

    // Assess
    expect(account.calls).toEqual([]);
    expect([...account.images.values()]).toEqual(seed.images);
    expect(report.mode).toBe('plan');
    expect(report.dryRun).toBe(false);
    expect(report.actions.length).toBeGreaterThan(0);
    expect(report.actions.every((entry) => entry.status === 'planned')).toBe(true);
    expect(report.totals.images).toBe(seed.images.length);
  });

  it('apply with dry run on makes no mutating call', async () => {
    // Prepare
    const { account, ports } = demo();

    // Act
    const report = await runSweep(ports, request({ dryRun: true }));

    // Assess
    expect(account.calls).toEqual([]);
    expect(report.dryRun).toBe(true);
    expect(report.actions.every((entry) => entry.status === 'dry-run')).toBe(true);
  });

  it('apply marks exactly the eligible unmarked images', async () => {
    // Prepare
    const { account, byName, ports } = demo();

    // Act
    const report = await runSweep(ports, request());

    // Assess
    const tagged = account.calls.filter((call) => call.startsWith('tagImage '));
    const expected = ELIGIBLE_UNMARKED.map((name) => byName(name).imageId);
    expect(tagged.map((call) => call.slice('tagImage '.length)).sort()).toEqual([...expected].sort());
    for (const imageId of expected) {
      expect(account.images.get(imageId)?.tags[MARKED_AT_TAG]).toBe(NOW.toISOString());
    }
    expect(report.totals.marked).toBe(ELIGIBLE_UNMARKED.length);
    expect(report.totals.failed).toBe(0);
    expect(report.complete).toBe(true);
  });

  it('a second apply after the grace period deregisters the marked images and their exclusive snapshots', async () => {
    // Prepare
    const { seed, account, byName, ports } = demo();
    await runSweep(ports, request());
    account.calls.length = 0;
    const later = daysAfter(NOW, 8);

    // Act
    const report = await runSweep(ports, request({ now: later }));

    // Assess: the ten marked a week ago, plus the one an earlier run marked 3 days before the first
    // apply; but not the public api-v3, whose use in other accounts no usage report has cleared.
    const due = [...ELIGIBLE_UNMARKED.filter((name) => name !== 'api-v3'), 'reporting-2025-12-01'].map(
      byName,
    );
    const publicImage = byName('api-v3');
    expect(account.images.has(publicImage.imageId)).toBe(true);
    expect(report.decisions.find((d) => d.imageId === publicImage.imageId)).toMatchObject({
      verdict: 'keep',
      rule: 'shared-use-unknown',
    });
    const deregistered = account.calls.filter((call) => call.startsWith('deregisterImage '));
    expect(deregistered.map((call) => call.slice('deregisterImage '.length)).sort()).toEqual(
      due.map((subject) => subject.imageId).sort(),
    );
    for (const subject of due) expect(account.images.has(subject.imageId)).toBe(false);
    // api-v2 was copied from api-v1 and maps its snapshot too: that one is no image's alone.
    const users = new Map<string, number>();
    for (const snapshotId of seed.images.flatMap((subject) => subject.snapshotIds)) {
      users.set(snapshotId, (users.get(snapshotId) ?? 0) + 1);
    }
    const exclusive = due.flatMap((subject) => subject.snapshotIds).filter((id) => users.get(id) === 1);
    expect(exclusive).toHaveLength(due.length - 1);
    for (const snapshotId of exclusive) expect(account.snapshots.has(snapshotId)).toBe(false);
    expect(report.totals.deregistered).toBe(due.length);
    expect(report.totals.snapshotsDeleted).toBe(exclusive.length);
    expect(report.totals.failed).toBe(0);
  });

  it('never touches an image that is in use, protected, exempt, Backup- or DLM-managed, pending or not owned', async () => {
    // Prepare
    const { account, byName, ports } = demo();
    const guarded = GUARDED.map(byName);

    // Act
    await runSweep(ports, request());
    await runSweep(ports, request({ now: daysAfter(NOW, 8) }));
    await runSweep(ports, request({ now: daysAfter(NOW, 400) }));

    // Assess
    for (const subject of guarded) {
      expect(account.calls.filter((call) => call.endsWith(` ${subject.imageId}`))).toEqual([]);
      expect(account.images.get(subject.imageId)).toEqual(subject);
      for (const snapshotId of subject.snapshotIds) expect(account.snapshots.has(snapshotId)).toBe(true);
    }
  });

  it('acts once the references of the images it may remove are known, reading the rest alongside', async () => {
    // Prepare: the lookup of the images kept whatever uses them answers only when the test lets it.
    const { account, ports } = demo();
    await runSweep(ports, request());
    account.calls.length = 0;
    const later = daysAfter(NOW, 8);
    const present = [...account.images.values()];
    const keptAnyway = new Set(
      decideBeforeReferences(present, DEMO_ACCOUNT_ID, request().policy, later).others.map(
        (subject) => subject.imageId,
      ),
    );
    const asked: string[][] = [];
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const inventory = {
      accountId: () => account.accountId(),
      listOwnedImages: () => account.listOwnedImages(),
      findReferences: async (images: readonly Image[]) => {
        asked.push(images.map((subject) => subject.imageId));
        if (images.some((subject) => keptAnyway.has(subject.imageId))) await released;
        return account.findReferences(images);
      },
    };

    // Act
    const run = runSweep({ ...ports, inventory }, request({ now: later }));
    await vi.waitFor(() =>
      expect(account.calls.some((call) => call.startsWith('deregisterImage '))).toBe(true),
    );
    release();
    const report = await run;

    // Assess: every image looked up once, the candidates ten at a time and never with the others;
    // removals did not wait for the others' lookup.
    expect(asked.flat().sort()).toEqual(present.map((subject) => subject.imageId).sort());
    const [others, ...rest] = asked.filter((ids) => ids.some((id) => keptAnyway.has(id)));
    expect(rest).toEqual([]);
    expect([...(others ?? [])].sort()).toEqual([...keptAnyway].sort());
    for (const ids of asked.filter((lookup) => lookup !== others)) expect(ids.length).toBeLessThanOrEqual(10);
    for (const decision of report.decisions.filter((d) => d.verdict === 'expire')) {
      expect(keptAnyway.has(decision.imageId)).toBe(false);
    }
    // Kept anyway, yet the reason still says what uses them.
    const inUse = report.decisions.filter((d) => d.rule === 'in-use').map((d) => d.name);
    expect(inUse).toEqual(expect.arrayContaining(['batch-worker-1.0.3', 'legacy-app-2024-09-09']));
    expect(report.totals.deregistered).toBeGreaterThan(0);
  });

  it('logs each image decision once, a removal candidate’s before anything is done to it, and every action with its reason', async () => {
    // Prepare
    const { ports, log, seed } = demo();

    // Act
    await runSweep(ports, request());

    // Assess
    const lines = log.entries.map((entry, index) => ({
      index,
      message: entry.message,
      extra: (entry.extra[0] ?? {}) as Record<string, unknown>,
    }));
    const decided = lines.filter((line) => line.message === 'decision' && 'imageId' in line.extra);
    expect(decided.map((line) => line.extra.imageId).sort()).toEqual(
      seed.images.map((subject) => subject.imageId).sort(),
    );
    const actions = lines.filter((line) => line.message === 'action');
    expect(actions.length).toBeGreaterThan(0);
    for (const action of actions) expect(action.extra.reason).toEqual(expect.any(String));
    // Marks and deregistrations act on candidates, whose decisions are final with the plan; an
    // unmark may come before the line of an image kept anyway, whose references are read alongside.
    const onCandidates = actions.filter((line) => line.extra.action !== 'unmark');
    expect(onCandidates.length).toBeGreaterThan(0);
    for (const action of onCandidates) {
      const decision = decided.find((line) => line.extra.imageId === action.extra.imageId);
      expect(decision?.index).toBeLessThan(action.index);
    }
  });

  it('keeps acting, with a warning, when the references of the images kept anyway cannot be read', async () => {
    // Prepare
    const { account, ports, seed } = demo();
    const keptAnyway = new Set(
      decideBeforeReferences(seed.images, DEMO_ACCOUNT_ID, request().policy, NOW).others.map(
        (subject) => subject.imageId,
      ),
    );
    const inventory = {
      accountId: () => account.accountId(),
      listOwnedImages: () => account.listOwnedImages(),
      findReferences: async (images: readonly Image[]) => {
        if (images.some((subject) => keptAnyway.has(subject.imageId))) {
          throw Object.assign(new Error('denied'), { name: 'UnauthorizedOperation' });
        }
        return account.findReferences(images);
      },
    };

    // Act
    const report = await runSweep({ ...ports, inventory }, request());

    // Assess
    expect(report.totals.marked).toBe(ELIGIBLE_UNMARKED.length);
    expect(report.warnings).toContainEqual(
      expect.stringMatching(
        /^references of the images kept anyway could not be read \(UnauthorizedOperation\)/,
      ),
    );
    expect(report.decisions.find((d) => d.name === 'legacy-app-2024-09-09')?.verdict).toBe('keep');
  });

  it('throws InventoryError and changes nothing when the references cannot be found', async () => {
    // Prepare
    const { seed, account, ports } = demo();
    account.failNext(
      'findReferences',
      '*',
      'UnauthorizedOperation',
      'not allowed to DescribeImageReferences',
    );

    // Act
    const run = runSweep(ports, request());

    // Assess
    await expect(run).rejects.toBeInstanceOf(InventoryError);
    await expect(run).rejects.toMatchObject({
      name: 'InventoryError',
      message: expect.stringContaining('not allowed to DescribeImageReferences'),
      cause: expect.objectContaining({ name: 'UnauthorizedOperation' }),
    });
    expect(account.calls).toEqual([]);
    expect([...account.images.values()]).toEqual(seed.images);
  });

  it('leaves the account untouched, with a warning, when apply is not confirmed', async () => {
    // Prepare
    const { seed, account, ports } = demo();
    const asked: number[] = [];
    const confirm = async (plan: { actions: unknown[] }) => {
      asked.push(plan.actions.length);
      return false;
    };

    // Act
    const report = await runSweep(ports, request({ confirm }));

    // Assess
    expect(asked).toHaveLength(1);
    expect(asked[0]).toBeGreaterThan(0);
    expect(account.calls).toEqual([]);
    expect([...account.images.values()]).toEqual(seed.images);
    expect(report.warnings).toContain('apply was not confirmed: nothing was changed');
    expect(report.totals.marked).toBe(0);
    expect(report.totals.deregistered).toBe(0);
  });

  it('logs one decision line per image and exactly one summary', async () => {
    // Prepare
    const { seed, log, ports } = demo();

    // Act
    const report = await runSweep(ports, request({ mode: 'plan' }));

    // Assess
    const decisions = messages(log.entries, 'decision');
    expect(decisions).toHaveLength(seed.images.length);
    const logged = decisions.map((entry) => entry.extra[0] as Record<string, unknown>);
    expect(logged.map((fields) => fields.imageId).sort()).toEqual(
      seed.images.map((subject) => subject.imageId).sort(),
    );
    for (const fields of logged) {
      expect(fields).toEqual({
        imageId: expect.stringMatching(/^ami-/),
        rule: expect.any(String),
        verdict: expect.stringMatching(/^(keep|expire)$/),
        reason: expect.any(String),
      });
      expect(String(fields.reason).length).toBeGreaterThan(0);
    }
    const summaries = messages(log.entries, 'sweep summary');
    expect(summaries).toHaveLength(1);
    expect(summaries[0]?.extra[0]).toMatchObject({
      mode: 'plan',
      accountId: DEMO_ACCOUNT_ID,
      region: 'eu-west-1',
      asOf: NOW.toISOString(),
      totals: report.totals,
    });
  });
});
