import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { CloudTrailClient, CreateTrailCommand, StartLoggingCommand } from '@aws-sdk/client-cloudtrail';
import { ModifyImageAttributeCommand } from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { AccountAuditReport } from '../../src/core/account-audit.ts';
import { describeWithMoto, MOTO_ACCOUNT_ID, MOTO_REGION, type MotoHandle } from './moto.ts';
import { motoClientConfig, Seeder } from './seed.ts';

/**
 * `ami-janitor audit --json` as a pipeline runs it: the real CLI in a child process, against a
 * seeded moto, gating on its exit code (2 = a critical finding).
 */

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const TRAIL_NAME = 'management-events';
const TRAIL_BUCKET = 'ami-janitor-trail-logs';

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * A single-Region trail created without event selectors, which CloudTrail documents as "every
 * management event". AWS then returns that default selector from GetEventSelectors; moto 5.2.1
 * returns empty classic and advanced lists, which the health check reads as the same default.
 * moto also requires the bucket to exist (S3BucketDoesNotExistException otherwise).
 */
async function createTrail(endpoint: string, cloudTrail: CloudTrailClient): Promise<void> {
  // Path-style PUT without credentials: moto's server routes an unsigned request to S3.
  const bucket = await fetch(`${endpoint}/${TRAIL_BUCKET}`, { method: 'PUT' });
  expect(bucket.ok, `moto CreateBucket answered HTTP ${bucket.status}`).toBe(true);
  await cloudTrail.send(new CreateTrailCommand({ Name: TRAIL_NAME, S3BucketName: TRAIL_BUCKET }));
}

describeWithMoto('audit CLI against moto', (moto: MotoHandle) => {
  let seed: Seeder;
  let cloudTrail: CloudTrailClient;

  beforeEach(async () => {
    await moto.reset();
    seed = new Seeder(moto.endpoint);
    cloudTrail = new CloudTrailClient(motoClientConfig(moto.endpoint));
  });

  afterEach(() => {
    seed.destroy();
    cloudTrail.destroy();
  });

  async function audit(): Promise<CliResult & { report: AccountAuditReport }> {
    let result: CliResult;
    try {
      const { stdout, stderr } = await run(process.execPath, ['bin/ami-janitor.js', 'audit', '--json'], {
        cwd: ROOT,
        env: { ...process.env, ...moto.env() },
      });
      result = { code: 0, stdout, stderr };
    } catch (error) {
      // execFile rejects on a non-zero exit; the code is the verdict under test, not a failure.
      const failed = error as { code?: number; stdout?: string; stderr?: string };
      result = { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
    }
    let report: AccountAuditReport;
    try {
      report = JSON.parse(result.stdout) as AccountAuditReport;
    } catch (error) {
      throw new Error(`audit --json printed no JSON (exit ${result.code}): ${result.stderr}`, {
        cause: error,
      });
    }
    return { ...result, report };
  }

  it('lists a public image as critical and a blind trail as high; a logging trail clears the latter, a private image the former', async () => {
    // Prepare: one public image and one private image, and no CloudTrail trail at all.
    const publicImage = await seed.registerImage('public-image', { Owner: 'platform' });
    await seed.shareImage(publicImage, { public: true });
    const privateImage = await seed.registerImage('private-image', { Owner: 'platform' });

    // Act 1
    const blind = await audit();

    // Assess 1: exit 2 gates the pipeline; both findings are listed, the private image is clean.
    expect(blind.code, blind.stderr).toBe(2);
    expect(blind.report).toMatchObject({ accountId: MOTO_ACCOUNT_ID, region: MOTO_REGION, images: 2 });
    expect(blind.report.findings).toContainEqual(
      expect.objectContaining({
        resourceType: 'image',
        resourceId: publicImage,
        name: 'public-image',
        rule: 'sharing',
        severity: 'critical',
      }),
    );
    expect(blind.report.findings).toContainEqual({
      resourceType: 'account',
      resourceId: MOTO_ACCOUNT_ID,
      name: MOTO_REGION,
      rule: 'trail-health',
      severity: 'high',
      reason: expect.stringContaining(`real-time audit is blind in ${MOTO_REGION}`),
    });
    expect(blind.report.findings.filter((f) => f.resourceId === privateImage)).toEqual([]);
    expect(blind.report.totals).toEqual({ critical: 1, high: 1, medium: 0, low: 0 });
    expect(blind.report.trail?.ok).toBe(false);
    expect(blind.report.warnings).toEqual([]);

    // Act 2: a trail exists, but it is not logging yet (moto's IsLogging is false until StartLogging).
    await createTrail(moto.endpoint, cloudTrail);
    const stopped = await audit();

    // Assess 2: still blind, and the finding says which trail and why.
    expect(stopped.code, stopped.stderr).toBe(2);
    expect(stopped.report.findings).toContainEqual(
      expect.objectContaining({
        rule: 'trail-health',
        severity: 'high',
        reason: expect.stringContaining(`${TRAIL_NAME}: not logging`),
      }),
    );

    // Act 3: the trail starts logging management events in the Region.
    await cloudTrail.send(new StartLoggingCommand({ Name: TRAIL_NAME }));
    const watched = await audit();

    // Assess 3: the trail finding is gone; the public image still fails the gate.
    expect(watched.code, watched.stderr).toBe(2);
    expect(watched.report.findings.filter((f) => f.rule === 'trail-health')).toEqual([]);
    expect(watched.report.trail).toMatchObject({ ok: true, region: MOTO_REGION });
    expect(watched.report.trail?.reason).toContain(TRAIL_NAME);
    expect(watched.report.findings).toEqual([
      expect.objectContaining({ resourceId: publicImage, rule: 'sharing', severity: 'critical' }),
    ]);
    expect(watched.report.totals).toEqual({ critical: 1, high: 0, medium: 0, low: 0 });

    // Act 4: the image is made private again.
    await seed.clients.ec2.send(
      new ModifyImageAttributeCommand({
        ImageId: publicImage,
        LaunchPermission: { Remove: [{ Group: 'all' }] },
      }),
    );
    const clean = await audit();

    // Assess 4: no finding and no warning (every image and snapshot was readable), so exit 0;
    // 1 would mean a resource could not be checked, which must not pass as clean.
    expect(clean.code, clean.stderr).toBe(0);
    expect(clean.report.findings).toEqual([]);
    expect(clean.report.warnings).toEqual([]);
    expect(clean.report.totals).toEqual({ critical: 0, high: 0, medium: 0, low: 0 });
    expect(clean.report.images).toBe(2);
    // moto gives every image one root snapshot; both were checked for sharing too.
    expect(clean.report.snapshots).toBe(2);
  });
});
