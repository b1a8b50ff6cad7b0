import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { CreateTagsCommand, DescribeImagesCommand, DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { RunReport } from '../../src/core/report.ts';
import { describeWithMoto, MOTO_ACCOUNT_ID, type MotoHandle } from './moto.ts';
import { Seeder } from './seed.ts';

/**
 * A snapshot tagged exempt outlives its image: `apply --yes` deregisters the eligible image and
 * deletes its other snapshots, and the exempt one stays, with the reason in the report.
 */

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const POLICY = `
dryRun: false
keepLatest:
  count: 0
graceDays: 0
`;

describeWithMoto('an exempt snapshot survives its image, against moto', (moto: MotoHandle) => {
  let seed: Seeder;

  beforeEach(async () => {
    await moto.reset();
    seed = new Seeder(moto.endpoint);
  });

  afterEach(() => {
    seed.destroy();
  });

  it('apply --yes deregisters the expired images, deletes the plain snapshot and keeps the exempt one', async () => {
    // Prepare: two expired images made the same way; one image's snapshot is exempt.
    const expired = {
      'ami-janitor:expires-at': new Date(Date.now() - 86_400_000).toISOString().slice(0, 10),
    };
    const base = await seed.registerImage('base-image');
    const builder = await seed.runInstance(base, 'terminated');
    const guarded = await seed.createImage(builder, 'app-guarded', expired);
    const plain = await seed.createImage(builder, 'app-plain', expired);
    const [exemptSnapshot] = await seed.snapshotIdsOf(guarded);
    const [plainSnapshot] = await seed.snapshotIdsOf(plain);
    if (!exemptSnapshot || !plainSnapshot) throw new Error('moto made no snapshot for the images');
    await seed.clients.ec2.send(
      new CreateTagsCommand({
        Resources: [exemptSnapshot],
        Tags: [{ Key: 'ami-janitor:keep', Value: 'true' }],
      }),
    );
    const config = join(mkdtempSync(join(tmpdir(), 'ami-janitor-policy-')), 'policy.yml');
    writeFileSync(config, POLICY);

    // Act
    const { stdout } = await run(
      process.execPath,
      ['bin/ami-janitor.js', 'apply', '--yes', '--json', '--config', config],
      {
        cwd: ROOT,
        env: { ...process.env, ...moto.env(), POWERTOOLS_LOG_LEVEL: 'SILENT' },
      },
    );
    const report = JSON.parse(stdout) as RunReport;

    // Assess: the account's end state.
    const images = await seed.clients.ec2.send(new DescribeImagesCommand({ Owners: ['self'] }));
    const imageIds = new Set((images.Images ?? []).map((image) => image.ImageId));
    expect(imageIds.has(guarded)).toBe(false);
    expect(imageIds.has(plain)).toBe(false);
    const snapshots = await seed.clients.ec2.send(
      new DescribeSnapshotsCommand({ Filters: [{ Name: 'owner-id', Values: [MOTO_ACCOUNT_ID] }] }),
    );
    const snapshotIds = new Set((snapshots.Snapshots ?? []).map((snapshot) => snapshot.SnapshotId));
    expect(snapshotIds.has(exemptSnapshot)).toBe(true);
    expect(snapshotIds.has(plainSnapshot)).toBe(false);

    // Assess: the report says the same, and why the snapshot was kept.
    const outcome = (imageId: string) => report.actions.find((entry) => entry.action.imageId === imageId);
    expect(outcome(guarded)).toMatchObject({
      status: 'done',
      snapshots: [
        { snapshotId: exemptSnapshot, status: 'skipped', detail: 'exempt: tagged ami-janitor:keep=true' },
      ],
    });
    expect(outcome(plain)).toMatchObject({
      status: 'done',
      snapshots: [{ snapshotId: plainSnapshot, status: 'deleted' }],
    });
    expect(report.totals).toMatchObject({
      deregistered: 2,
      snapshotsDeleted: 1,
      snapshotsFailed: 0,
      failed: 0,
    });
  });
});
