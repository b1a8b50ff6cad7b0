import { describe, expect, it } from 'vitest';
import { MARKED_AT_TAG, parsePolicy } from '../../src/config/policy.ts';
import { unboundedDeadline } from '../../src/core/ports.ts';
import type { RunReport } from '../../src/core/report.ts';
import { runSweep, type SweepPorts } from '../../src/core/sweep.ts';
import { demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import { daysAfter, recordingLog } from './factories.ts';

const NOW = new Date('2026-11-22T06:00:00.000Z');

/** The images the demo gained for the shared-image gate; every other one predates it. */
const SHARED_SCENARIOS = ['web-2025-09-01', 'web-2025-07-01'];

function setup(options: { gate?: boolean } = {}) {
  const account = new MemoryAccount(demoAccount(NOW));
  const ports: SweepPorts = {
    inventory: account,
    actions: account,
    snapshots: { inventory: account, actions: account, sharing: account },
    log: recordingLog(),
    // As the CLI wires the demo: the in-memory account answers usage reports and the Recycle Bin.
    ...(options.gate === false ? {} : { usage: account, recycleBin: account }),
  };
  const sweep = (mode: 'plan' | 'apply' = 'plan', now = NOW) =>
    runSweep(ports, {
      policy: parsePolicy(demoPolicyDocument),
      region: 'eu-west-1',
      now,
      mode,
      dryRun: false,
      deadline: unboundedDeadline,
    });
  const imageNamed = (name: string) => {
    const found = [...account.images.values()].find((image) => image.name === name);
    if (!found) throw new Error(`no demo image named ${name}`);
    return found;
  };
  const snapshotNamed = (name: string) => {
    const found = [...account.snapshots.values()].find((snapshot) => snapshot.tags.Name === name);
    if (!found) throw new Error(`no demo snapshot named ${name}`);
    return found;
  };
  return { account, sweep, imageNamed, snapshotNamed };
}

function decisionOf(report: RunReport, imageId: string) {
  return report.decisions.find((decision) => decision.imageId === imageId);
}

describe('the demo account: shared images', () => {
  it('keeps and unmarks the old image its partner still launches, naming the account and the counts', async () => {
    // Prepare
    const { sweep, imageNamed, account } = setup();
    const image = imageNamed('web-2025-09-01');

    // Act
    const report = await sweep('apply');

    // Assess
    expect(decisionOf(report, image.imageId)).toMatchObject({
      verdict: 'keep',
      rule: 'shared-in-use',
      reason: expect.stringMatching(
        /^used by 3 instances and 1 launch template in 1 other account: 555566667777 \(usage report amiur-0de70000000000a01 of \d{4}-\d{2}-\d{2}\)$/,
      ),
    });
    expect(
      report.actions.filter((o) => o.action.imageId === image.imageId).map((o) => o.action.kind),
    ).toEqual(['unmark']);
    expect(account.images.get(image.imageId)?.tags[MARKED_AT_TAG]).toBeUndefined();
  });

  it('holds the removal of the old image whose usage report is still pending, and keeps its mark', async () => {
    // Prepare
    const { sweep, imageNamed, account } = setup();
    const image = imageNamed('web-2025-07-01');

    // Act
    const report = await sweep('apply');

    // Assess
    expect(decisionOf(report, image.imageId)).toMatchObject({
      verdict: 'keep',
      rule: 'shared-use-unknown',
      reason: expect.stringContaining(
        'usage report amiur-0de70000000000a02 requested 2026-11-21 is not complete yet (pending)',
      ),
    });
    expect(report.actions.filter((o) => o.action.imageId === image.imageId)).toEqual([]);
    expect(account.images.get(image.imageId)?.tags[MARKED_AT_TAG]).toBe(image.tags[MARKED_AT_TAG]);
    expect(account.calls.filter((call) => call.endsWith(image.imageId))).toEqual([]);
  });

  it('changes no verdict or rule of the images that are not new scenarios', async () => {
    // Prepare
    const gated = setup();
    const plain = setup({ gate: false });

    // Act
    const [withGate, without] = await Promise.all([gated.sweep(), plain.sweep()]);

    // Assess
    const verdicts = (report: RunReport) =>
      report.decisions
        .filter((decision) => !SHARED_SCENARIOS.includes(decision.name))
        .map(({ imageId, verdict, rule }) => ({ imageId, verdict, rule }));
    expect(verdicts(withGate)).toEqual(verdicts(without));
    expect(withGate.decisions).toHaveLength(without.decisions.length);
  });
});

describe('the demo account: the undo window', () => {
  it('keeps the snapshot of the image in the Recycle Bin until the image leaves it', async () => {
    // Prepare
    const { sweep, snapshotNamed } = setup();
    const snapshot = snapshotNamed('snapshot-of-binned-image');

    // Act
    const now = await sweep();
    const afterItLeaves = await sweep('plan', daysAfter(NOW, 12));

    // Assess
    const leaves = daysAfter(NOW, 11).toISOString().slice(0, 10);
    expect(now.snapshotDecisions.find((d) => d.snapshotId === snapshot.snapshotId)).toMatchObject({
      verdict: 'keep',
      rule: 'image-in-recycle-bin',
      reason: `its image ami-0bad000000000000c is in the Recycle Bin until ${leaves}; deleting this snapshot would make the image unrecoverable`,
    });
    expect(afterItLeaves.snapshotDecisions.find((d) => d.snapshotId === snapshot.snapshotId)).toMatchObject({
      verdict: 'orphan',
      rule: 'snapshot-orphan',
    });
  });

  it('says the bin keeps images longer than their snapshots, and until when each removal is recoverable', async () => {
    // Prepare
    const { sweep, imageNamed } = setup();
    const due = imageNamed('reporting-2025-10-01');

    // Act
    const report = await sweep();

    // Assess
    expect(report.accountFindings).toEqual([
      expect.objectContaining({
        rule: 'recycle-bin',
        severity: 'medium',
        reason: expect.stringContaining(`for 14 days but its snapshots for only 7 days`),
      }),
    ]);
    const removal = report.actions.find((o) => o.action.kind === 'deregister');
    expect(removal?.action.imageId).toBe(due.imageId);
    expect(removal?.recovery).toEqual({
      recoverable: true,
      until: daysAfter(NOW, 14).toISOString(),
      rule: 'amiRegion14',
    });
    expect(report.cost.billedInRecycleBinUntil).toBe(daysAfter(NOW, 14).toISOString());
  });

  it('sends the image it deregisters to the Recycle Bin for the image rule’s 14 days', async () => {
    // Prepare
    const { sweep, imageNamed, account } = setup();
    const due = imageNamed('reporting-2025-10-01');

    // Act
    await sweep('apply');

    // Assess
    expect(account.images.has(due.imageId)).toBe(false);
    expect(account.recycleBin.get(due.imageId)?.leavesAt).toEqual(daysAfter(NOW, 14));
  });
});
