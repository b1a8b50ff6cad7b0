import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import {
  CreateSnapshotCommand,
  CreateTagsCommand,
  CreateVolumeCommand,
  DeregisterImageCommand,
  DescribeSnapshotsCommand,
  ModifySnapshotAttributeCommand,
  type Snapshot,
} from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { MARKED_AT_TAG } from '../../src/config/policy.ts';
import { type RunReport, SNAPSHOT_PRICE_PER_GB_MONTH_USD } from '../../src/core/report.ts';
import { describeWithMoto, MOTO_ACCOUNT_ID, MOTO_REGION, type MotoHandle } from './moto.ts';
import { Seeder } from './seed.ts';

/**
 * Orphaned snapshot cleanup against moto (issue 4): images deregistered by hand leave their
 * CreateImage snapshots behind, and only the unguarded ones may go, across the grace period.
 *
 * moto 5.2.1 specifics this file relies on (probed):
 *   - CreateTags accepts keys starting with `aws:` (real EC2 reserves them for AWS services), so the
 *     DLM and AWS Backup guards can be seeded here the way those services tag their snapshots.
 *   - ModifySnapshotAttribute createVolumePermission works and DescribeSnapshotAttribute reports it.
 *   - DescribeLockedSnapshots is not implemented: the lock guard is covered by the unit and adapter
 *     tests only, and the sweep must say in its warnings that locks are unknown here.
 *   - Snapshots never carry FullSnapshotSizeInBytes, so their size is VolumeSize.
 */

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const DAY_MS = 86_400_000;
const GRACE_DAYS = 7;
const OTHER_ACCOUNT_ID = '111122223333';

/**
 * keepLatest 0 and the default 90-day age limit keep every live image for the 40 days this test
 * spans, so the image half of the sweep never acts and every snapshot change is the orphan rule's.
 */
const POLICY = `
dryRun: false
keepLatest:
  count: 0
graceDays: ${GRACE_DAYS}
snapshots:
  mode: ami-orphans
  minAgeDays: 7
`;

/** Every snapshot the seeded account holds, by the case it covers. */
const CASES = [
  'baseImage',
  'liveImageA',
  'liveImageB',
  'orphanA',
  'orphanB',
  'exemptAfterMark',
  'dlmManaged',
  'backupManaged',
  'exempt',
  'sharedOrphan',
  'volumeBackup',
] as const;
type Case = (typeof CASES)[number];

/** What the rule decides for each case once every snapshot is old enough. */
const EXPECTED_RULE: Record<Case, string> = {
  baseImage: 'in-use',
  liveImageA: 'in-use',
  liveImageB: 'in-use',
  orphanA: 'snapshot-orphan',
  orphanB: 'snapshot-orphan',
  exemptAfterMark: 'snapshot-orphan',
  dlmManaged: 'dlm-managed',
  backupManaged: 'backup-managed',
  exempt: 'exempt-tag',
  sharedOrphan: 'shared',
  volumeBackup: 'not-an-image-snapshot',
};

const ORPHANS: readonly Case[] = CASES.filter((name) => EXPECTED_RULE[name] === 'snapshot-orphan');
/** Marked as an orphan, then tagged exempt by hand during the grace period: it must be unmarked, not deleted. */
const RESCUED: Case = 'exemptAfterMark';
const DELETED: readonly Case[] = ORPHANS.filter((name) => name !== RESCUED);
const KEPT: readonly Case[] = CASES.filter((name) => !DELETED.includes(name));
/** Deregistered by hand; each leaves its CreateImage snapshot behind. */
const DEREGISTERED: readonly Case[] = CASES.filter(
  (name) => !['baseImage', 'liveImageA', 'liveImageB', 'volumeBackup'].includes(name),
);

interface SeededAccount {
  /** Case → snapshot id. */
  snapshots: Record<Case, string>;
  /** Case → the image its description names, for the images deregistered by hand. */
  goneImages: Partial<Record<Case, string>>;
  /** Snapshot id → GiB, as moto reports it (VolumeSize). */
  sizes: Map<string, number>;
}

async function seedAccount(seed: Seeder): Promise<SeededAccount> {
  const { ec2 } = seed.clients;
  const base = await seed.registerImage('base-image');
  const builder = await seed.runInstance(base, 'running');

  const images: Partial<Record<Case, string>> = {};
  const snapshots: Partial<Record<Case, string>> = {};
  const only = async (imageId: string): Promise<string> => {
    const ids = await seed.snapshotIdsOf(imageId);
    expect(ids, `snapshots of ${imageId}`).toHaveLength(1);
    return ids[0] ?? '';
  };
  snapshots.baseImage = await only(base);
  // Distinct names, so no two images share a family either way.
  for (const name of CASES.filter((c) => c !== 'baseImage' && c !== 'volumeBackup')) {
    const imageId = await seed.createImage(builder, `app-${name}`);
    images[name] = imageId;
    snapshots[name] = await only(imageId);
  }

  // Deregistered by hand, the way an operator (or another tool) does it: the snapshots stay behind.
  const goneImages: Partial<Record<Case, string>> = {};
  for (const name of DEREGISTERED) {
    const imageId = images[name] ?? '';
    await ec2.send(new DeregisterImageCommand({ ImageId: imageId }));
    goneImages[name] = imageId;
  }

  const tag = (name: Case, Key: string, Value: string) =>
    ec2.send(new CreateTagsCommand({ Resources: [snapshots[name] ?? ''], Tags: [{ Key, Value }] }));
  await tag('dlmManaged', 'aws:dlm:lifecycle-policy-id', 'policy-0123456789abcdef0');
  await tag(
    'backupManaged',
    'aws:backup:source-resource-arn',
    `arn:aws:ec2:${MOTO_REGION}:${MOTO_ACCOUNT_ID}:image/${goneImages.backupManaged}`,
  );
  await tag('exempt', 'ami-janitor:keep', 'true');
  await ec2.send(
    new ModifySnapshotAttributeCommand({
      SnapshotId: snapshots.sharedOrphan,
      Attribute: 'createVolumePermission',
      OperationType: 'add',
      UserIds: [OTHER_ACCOUNT_ID],
    }),
  );

  // A plain volume backup: no image ever used it, so mode ami-orphans must leave it alone.
  const volume = await ec2.send(new CreateVolumeCommand({ AvailabilityZone: `${MOTO_REGION}a`, Size: 8 }));
  const backup = await ec2.send(
    new CreateSnapshotCommand({ VolumeId: volume.VolumeId, Description: 'nightly backup' }),
  );
  snapshots.volumeBackup = backup.SnapshotId;

  const complete = Object.fromEntries(CASES.map((name) => [name, snapshots[name] ?? ''])) as Record<
    Case,
    string
  >;
  const inAccount = await describeOwnedSnapshots(seed);
  expect(new Set(inAccount.keys())).toEqual(new Set(Object.values(complete)));
  const sizes = new Map([...inAccount].map(([id, snapshot]) => [id, snapshot.VolumeSize ?? 0]));
  return { snapshots: complete, goneImages, sizes };
}

/** moto ignores `OwnerIds` on DescribeSnapshots; the owner-id filter is what narrows it to the account. */
async function describeOwnedSnapshots(seed: Seeder): Promise<Map<string, Snapshot>> {
  const result = await seed.clients.ec2.send(
    new DescribeSnapshotsCommand({ Filters: [{ Name: 'owner-id', Values: [MOTO_ACCOUNT_ID] }] }),
  );
  return new Map(
    (result.Snapshots ?? []).flatMap((snapshot) =>
      snapshot.SnapshotId ? [[snapshot.SnapshotId, snapshot] as const] : [],
    ),
  );
}

function tagsOf(snapshot: Snapshot | undefined): Record<string, string | undefined> {
  return Object.fromEntries((snapshot?.Tags ?? []).map((tag) => [tag.Key, tag.Value]));
}

function policyFile(text = POLICY): string {
  const file = join(mkdtempSync(join(tmpdir(), 'ami-janitor-policy-')), 'policy.yml');
  writeFileSync(file, text);
  return file;
}

function daysFromNow(days: number): string {
  return new Date(Date.now() + days * DAY_MS).toISOString();
}

function rulesBySnapshot(report: RunReport): Map<string, string> {
  return new Map(report.snapshotDecisions.map((decision) => [decision.snapshotId, decision.rule]));
}

describeWithMoto('orphaned snapshots against moto', (moto: MotoHandle) => {
  let seed: Seeder;
  let account: SeededAccount;

  beforeEach(async () => {
    await moto.reset();
    seed = new Seeder(moto.endpoint);
    account = await seedAccount(seed);
  });

  afterEach(() => {
    seed.destroy();
  });

  async function cli(...args: string[]): Promise<{ code: number; report: RunReport; stderr: string }> {
    let code = 0;
    let stdout: string;
    let stderr: string;
    try {
      ({ stdout, stderr } = await run(process.execPath, ['bin/ami-janitor.js', ...args], {
        cwd: ROOT,
        env: { ...process.env, ...moto.env(), POWERTOOLS_LOG_LEVEL: 'SILENT' },
      }));
    } catch (error) {
      const failed = error as { code?: number; stdout?: string; stderr?: string };
      code = failed.code ?? -1;
      stdout = failed.stdout ?? '';
      stderr = failed.stderr ?? '';
    }
    let report: RunReport;
    try {
      report = JSON.parse(stdout) as RunReport;
    } catch (error) {
      throw new Error(`ami-janitor ${args.join(' ')} printed no JSON report (exit ${code}): ${stderr}`, {
        cause: error,
      });
    }
    return { code, report, stderr };
  }

  it('CLI: apply run twice across the grace period deletes exactly the unguarded orphans', async () => {
    // Prepare
    const config = policyFile();
    const id = (name: Case) => account.snapshots[name];
    const orphanIds = ORPHANS.map(id).sort();
    const deletedIds = DELETED.map(id).sort();
    const keptIds = KEPT.map(id).sort();
    const before = await describeOwnedSnapshots(seed);
    const markDay = daysFromNow(30);
    // Every apply acts on the real clock, and moto's snapshots are new: the operator lowers
    // minAgeDays to act on them today, and the grace period passes by moving the marks back.
    const actToday = policyFile(POLICY.replace('minAgeDays: 7', 'minAgeDays: 0'));

    // Act 1: today every leftover snapshot is younger than minAgeDays.
    const today = await cli('plan', '--json', '--config', config);

    // Assess 1
    expect(today.code, today.stderr).toBe(0);
    expect(today.report.totals).toMatchObject({ snapshots: CASES.length, orphans: 0 });
    for (const name of DEREGISTERED)
      expect(rulesBySnapshot(today.report).get(id(name)), name).toBe('too-young');
    expect(today.report.snapshotActions).toEqual([]);

    // Act 2: a read-only forecast 30 days out.
    const plan = await cli('plan', '--json', '--config', config, '--as-of', markDay);

    // Assess 2: exactly the unguarded orphans are listed, each guard keeps its snapshot, nothing changed.
    expect(plan.code, plan.stderr).toBe(0);
    const planned = plan.report;
    expect(planned.accountId).toBe(MOTO_ACCOUNT_ID);
    expect(planned.totals).toMatchObject({
      snapshots: CASES.length,
      orphans: ORPHANS.length,
      snapshotsKept: CASES.length - ORPHANS.length,
      snapshotsMarked: 0,
      orphansDeleted: 0,
      snapshotsDeleted: 0,
    });
    const rules = rulesBySnapshot(planned);
    for (const name of CASES) expect(rules.get(id(name)), name).toBe(EXPECTED_RULE[name]);
    for (const name of ORPHANS) {
      const decision = planned.snapshotDecisions.find((d) => d.snapshotId === id(name));
      expect(decision, name).toMatchObject({
        verdict: 'orphan',
        imageId: account.goneImages[name],
        sizeGiB: account.sizes.get(id(name)),
      });
    }
    expect(
      planned.snapshotActions.map((o) => `${o.action.kind} ${o.action.snapshotId} ${o.status}`).sort(),
    ).toEqual(orphanIds.map((snapshotId) => `mark ${snapshotId} planned`));
    // moto has no DescribeLockedSnapshots: the run must say the lock guard could not be checked.
    expect(planned.warnings.some((w) => w.includes('DescribeLockedSnapshots unsupported'))).toBe(true);
    expect(planned.actions).toEqual([]);
    expect(await describeOwnedSnapshots(seed)).toEqual(before);

    // Act 3: apply marks the orphans and deletes nothing.
    const mark = await cli('apply', '--yes', '--json', '--config', actToday);

    // Assess 3
    expect(mark.code, mark.stderr).toBe(0);
    expect(mark.report.totals).toMatchObject({
      snapshotsMarked: ORPHANS.length,
      orphansDeleted: 0,
      snapshotsDeleted: 0,
      snapshotsFailed: 0,
      failed: 0,
    });
    expect(mark.report.actions).toEqual([]);
    expect(mark.report.cost.reclaimedGiB).toBe(0);
    const afterMark = await describeOwnedSnapshots(seed);
    expect(new Set(afterMark.keys())).toEqual(new Set(before.keys()));
    for (const name of ORPHANS) expect(tagsOf(afterMark.get(id(name)))[MARKED_AT_TAG], name).toBeDefined();
    for (const name of CASES.filter((c) => !ORPHANS.includes(c)))
      expect(tagsOf(afterMark.get(id(name)))[MARKED_AT_TAG], name).toBeUndefined();

    // Act 4: during the grace period an operator exempts one marked orphan; then the grace period ends.
    await seed.clients.ec2.send(
      new CreateTagsCommand({ Resources: [id(RESCUED)], Tags: [{ Key: 'ami-janitor:keep', Value: 'true' }] }),
    );
    await seed.backdateMarks(ORPHANS.map(id), GRACE_DAYS + 3);
    const remove = await cli('apply', '--yes', '--json', '--config', actToday);

    // Assess 4: exactly the orphans are gone; every guarded, in-use and volume snapshot remains.
    expect(remove.code, remove.stderr).toBe(0);
    const removed = remove.report;
    const end = await describeOwnedSnapshots(seed);
    expect([...end.keys()].sort()).toEqual(keptIds);
    expect(rulesBySnapshot(removed).get(id(RESCUED))).toBe('exempt-tag');
    expect(
      removed.snapshotActions.map((o) => `${o.action.kind} ${o.action.snapshotId} ${o.status}`).sort(),
    ).toEqual([...deletedIds.map((snapshotId) => `delete ${snapshotId} done`), `unmark ${id(RESCUED)} done`]);
    expect(tagsOf(end.get(id(RESCUED)))).toEqual({ 'ami-janitor:keep': 'true' });
    for (const name of KEPT.filter((c) => c !== RESCUED))
      expect(end.get(id(name)), `${name} untouched`).toEqual(before.get(id(name)));
    expect(removed.actions).toEqual([]);
    // The report's counts match the account: what it examined, less what it deleted, is what is left.
    expect(removed.totals).toMatchObject({
      snapshots: before.size,
      orphans: DELETED.length,
      snapshotsUnmarked: 1,
      orphansDeleted: before.size - end.size,
      snapshotsDeleted: before.size - end.size,
      snapshotsFailed: 0,
      failed: 0,
    });
    const reclaimedGiB = deletedIds.reduce(
      (sum, snapshotId) => sum + (account.sizes.get(snapshotId) ?? 0),
      0,
    );
    expect(reclaimedGiB).toBeGreaterThan(0); // 15 GiB per root snapshot in moto 5.2.1
    expect(removed.cost.reclaimedGiB).toBe(reclaimedGiB);
    expect(removed.cost.pricePerGbMonthUsd).toBe(0.05);
    expect(removed.cost.estimatedMonthlySavingUsd).toBeCloseTo(
      reclaimedGiB * SNAPSHOT_PRICE_PER_GB_MONTH_USD,
      2,
    );
    expect(removed.cost.note).toMatch(/upper bound/);

    // Act 5: running again changes nothing.
    const again = await cli('apply', '--yes', '--json', '--config', actToday);

    // Assess 5
    expect(again.code, again.stderr).toBe(0);
    expect(again.report.snapshotActions).toEqual([]);
    expect(again.report.actions).toEqual([]);
    expect(again.report.totals).toMatchObject({ snapshots: end.size, orphans: 0, orphansDeleted: 0 });
    expect(again.report.cost.reclaimedGiB).toBe(0);
    expect(await describeOwnedSnapshots(seed)).toEqual(end);
  });
});
