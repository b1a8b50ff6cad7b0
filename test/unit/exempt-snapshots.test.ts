import { describe, expect, it } from 'vitest';
import { defaultPolicy, MARKED_AT_TAG } from '../../src/config/policy.ts';
import { unboundedDeadline } from '../../src/core/ports.ts';
import { runSweep } from '../../src/core/sweep.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import { ACCOUNT_ID, daysBefore, image, NOW, recordingLog } from './factories.ts';

/**
 * A snapshot that is exempt, locked, or owned by DLM or AWS Backup outlives its image: the image
 * still goes, without the snapshot, and the report says which snapshot was kept and why.
 */
describe('sweep: guarded snapshots survive the deregistration of their image', () => {
  function setup(snapshotTags: Record<string, string>, locked = false) {
    const subject = image({
      name: 'web-2025-01-01',
      creationDate: daysBefore(NOW, 400),
      tags: { [MARKED_AT_TAG]: daysBefore(NOW, 30).toISOString() },
      snapshotIds: ['snap-0root000000000001', 'snap-0data000000000001'],
    });
    const newest = image({ name: 'web-2026-06-01', creationDate: daysBefore(NOW, 14) });
    const newer = image({ name: 'web-2026-05-01', creationDate: daysBefore(NOW, 45) });
    const account = new MemoryAccount({ accountId: ACCOUNT_ID, images: [subject, newer, newest] });
    const data = account.snapshots.get('snap-0data000000000001');
    if (data) Object.assign(data.tags, snapshotTags);
    if (locked) account.lockedSnapshots.add('snap-0data000000000001');
    const ports = {
      inventory: account,
      actions: account,
      snapshots: { inventory: account, sharing: account, actions: account },
      log: recordingLog(),
    };
    const run = (mode: 'plan' | 'apply') =>
      runSweep(ports, {
        policy: { ...defaultPolicy(), dryRun: false, keepLatest: { count: 2, familyTags: [] } },
        region: 'eu-west-1',
        now: NOW,
        mode,
        dryRun: false,
        deadline: unboundedDeadline,
      });
    return { subject, account, run };
  }

  it.each<{ case: string; tags: Record<string, string>; locked: boolean; reason: RegExp }>([
    {
      case: 'exempt',
      tags: { 'ami-janitor:keep': 'true' },
      locked: false,
      reason: /exempt: tagged ami-janitor:keep=true/,
    },
    {
      case: 'DLM-managed',
      tags: { 'aws:dlm:lifecycle-policy-id': 'policy-1' },
      locked: false,
      reason: /Data Lifecycle Manager/,
    },
    {
      case: 'Backup-managed',
      tags: { 'aws:backup:source-resource-arn': 'arn:x' },
      locked: false,
      reason: /AWS Backup/,
    },
    { case: 'locked', tags: {}, locked: true, reason: /locked/ },
  ])(
    'plans the image without its $case snapshot, and the apply leaves that snapshot',
    async ({ tags, locked, reason }) => {
      // Prepare
      const { subject, account, run } = setup(tags, locked);

      // Act
      const plan = await run('plan');
      const applied = await run('apply');

      // Assess
      const planned = plan.actions.find((outcome) => outcome.action.imageId === subject.imageId)?.action;
      expect(planned).toMatchObject({
        kind: 'deregister',
        snapshotIds: ['snap-0root000000000001'],
        keptSnapshots: [{ snapshotId: 'snap-0data000000000001', reason: expect.stringMatching(reason) }],
      });
      const outcome = applied.actions.find((entry) => entry.action.imageId === subject.imageId);
      expect(outcome?.status).toBe('done');
      expect(outcome?.snapshots).toEqual([
        { snapshotId: 'snap-0root000000000001', status: 'deleted' },
        { snapshotId: 'snap-0data000000000001', status: 'skipped', detail: expect.stringMatching(reason) },
      ]);
      expect(account.images.has(subject.imageId)).toBe(false);
      expect(account.snapshots.has('snap-0root000000000001')).toBe(false);
      expect(account.snapshots.has('snap-0data000000000001')).toBe(true);
      expect(applied.totals).toMatchObject({ deregistered: 1, snapshotsDeleted: 1, snapshotsFailed: 0 });
    },
  );
});
