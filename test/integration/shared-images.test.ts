import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { DescribeImagesCommand, ModifyImageAttributeCommand } from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { RunReport } from '../../src/core/report.ts';
import { describeWithMoto, type MotoHandle } from './moto.ts';
import { Seeder } from './seed.ts';

/**
 * Images shared with other accounts, an organisation or an OU may be used there, where this
 * account cannot look. moto has no AMI usage reports, so the only safe answer is to keep them,
 * saying why, however long after the grace period. A launch template's old `$Default` version
 * still guards its image, too.
 */

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const DAY_MS = 86_400_000;
const OTHER_ACCOUNT = '111122223333';
const ORGANIZATION = 'arn:aws:organizations::123456789012:organization/o-exampleorgid';
const OU = 'arn:aws:organizations::123456789012:ou/o-exampleorgid/ou-examplerootid-exampleouid';
const POLICY = `
dryRun: false
keepLatest:
  count: 0
graceDays: 7
`;

describeWithMoto('shared images against moto', (moto: MotoHandle) => {
  let seed: Seeder;

  beforeEach(async () => {
    await moto.reset();
    seed = new Seeder(moto.endpoint);
  });

  afterEach(() => {
    seed.destroy();
  });

  async function apply(config: string): Promise<RunReport> {
    const { stdout } = await run(
      process.execPath,
      ['bin/ami-janitor.js', 'apply', '--yes', '--json', '--config', config],
      {
        cwd: ROOT,
        env: { ...process.env, ...moto.env(), POWERTOOLS_LOG_LEVEL: 'SILENT' },
      },
    );
    return JSON.parse(stdout) as RunReport;
  }

  async function imageIds(): Promise<Set<string | undefined>> {
    const result = await seed.clients.ec2.send(new DescribeImagesCommand({ Owners: ['self'] }));
    return new Set((result.Images ?? []).map((image) => image.ImageId));
  }

  it('apply twice across the grace period removes no image shared with an account, an organisation or an OU, and says why', async () => {
    // Prepare: expired images, the way a person makes an image eligible today.
    const expired = { 'ami-janitor:expires-at': new Date(Date.now() - DAY_MS).toISOString().slice(0, 10) };
    const base = await seed.registerImage('base-image');
    const builder = await seed.runInstance(base, 'terminated');
    const withAccount = await seed.createImage(builder, 'shared-with-account', expired);
    const withOrganization = await seed.createImage(builder, 'shared-with-organization', expired);
    const withOu = await seed.createImage(builder, 'shared-with-ou', expired);
    const plain = await seed.createImage(builder, 'not-shared', expired);
    const templated = await seed.createImage(builder, 'old-default-version', expired);
    await seed.shareImage(withAccount, { accountIds: [OTHER_ACCOUNT] });
    for (const [imageId, permission] of [
      [withOrganization, { OrganizationArn: ORGANIZATION }],
      [withOu, { OrganizationalUnitArn: OU }],
    ] as const) {
      await seed.clients.ec2.send(
        new ModifyImageAttributeCommand({ ImageId: imageId, LaunchPermission: { Add: [permission] } }),
      );
    }
    // Version 1 stays $Default while six newer versions push it past the five checked by depth.
    const newer = await Promise.all([1, 2, 3, 4, 5, 6].map((n) => seed.createImage(builder, `newer-${n}`)));
    await seed.createLaunchTemplate('app', templated, newer);
    const shared = [withAccount, withOrganization, withOu];
    const config = join(mkdtempSync(join(tmpdir(), 'ami-janitor-policy-')), 'policy.yml');
    writeFileSync(config, POLICY);

    // Act 1: the first apply marks what is eligible.
    const first = await apply(config);

    // Assess 1: the shared images are marked like the rest, but without a deprecation, and the run
    // says usage reports cannot be had here.
    const marked = first.actions
      .filter((outcome) => outcome.action.kind === 'mark')
      .map((outcome) => outcome.action.imageId);
    expect(marked.sort()).toEqual([...shared, plain].sort());
    for (const imageId of shared) {
      const outcome = first.actions.find((entry) => entry.action.imageId === imageId);
      expect(outcome?.action.touchDeprecation, imageId).toBe(false);
      expect(outcome?.warnings.join(' '), imageId).toMatch(/usage reports are not supported here/);
    }
    expect(first.decisions.find((decision) => decision.imageId === templated)).toMatchObject({
      verdict: 'keep',
      rule: 'in-use',
      reason: expect.stringMatching(/\$Default/),
    });

    // Act 2: the grace period passes, and the janitor runs again.
    await seed.backdateMarks([...shared, plain], 10);
    const second = await apply(config);

    // Assess 2: only the unshared image went; each shared one is kept with the fail-safe reason.
    const left = await imageIds();
    expect(left.has(plain)).toBe(false);
    expect(second.totals.deregistered).toBe(1);
    for (const imageId of [...shared, templated]) expect(left.has(imageId), imageId).toBe(true);
    for (const imageId of shared) {
      const decision = second.decisions.find((entry) => entry.imageId === imageId);
      expect(decision, imageId).toMatchObject({ verdict: 'keep', rule: 'shared-use-unknown' });
      expect(decision?.reason, imageId).toMatch(/not supported/);
    }
    expect(
      second.actions.filter((outcome) => shared.includes(outcome.action.imageId)).map((o) => o.action.kind),
    ).not.toContain('unmark');
  });
});
