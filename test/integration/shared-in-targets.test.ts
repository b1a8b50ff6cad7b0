import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { RunReport } from '../../src/core/report.ts';
import { describeWithMoto, type MotoHandle } from './moto.ts';
import { createOrganization, Seeder } from './seed.ts';

/**
 * A golden image lives in one account and runs in another. Both are targets, so the account it is
 * shared with is asked directly, through its member role, what uses the image there: the instance
 * keeps it, named, although moto has no usage reports.
 */

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const POLICY = `
dryRun: false
keepLatest:
  count: 0
graceDays: 0
`;

interface TargetsDocument {
  targets: { accountId: string; region: string; status: string; report?: RunReport }[];
}

describeWithMoto(
  'shared images checked in the target accounts using them, against moto',
  (moto: MotoHandle) => {
    const seeders: Seeder[] = [];

    beforeEach(async () => {
      await moto.reset();
    });

    afterEach(() => {
      for (const seeder of seeders.splice(0)) seeder.destroy();
    });

    it('keeps a golden image a target account it is shared with runs, naming that account', async () => {
      // Prepare: the golden image in account A, expired there, shared with B, which runs it.
      const { members } = await createOrganization(moto.endpoint, ['golden', 'workloads']);
      const golden = members.golden ?? '';
      const workloads = members.workloads ?? '';
      const home = await Seeder.inAccount(moto.endpoint, golden, 'us-east-1');
      const consumer = await Seeder.inAccount(moto.endpoint, workloads, 'us-east-1');
      seeders.push(home, consumer);
      const expired = {
        'ami-janitor:expires-at': new Date(Date.now() - 86_400_000).toISOString().slice(0, 10),
      };
      const base = await home.registerImage('base');
      const builder = await home.runInstance(base, 'terminated');
      const image = await home.createImage(builder, 'golden-2025-01-01', expired);
      const idle = await home.createImage(builder, 'golden-2024-01-01', expired);
      await home.shareImage(image, { accountIds: [workloads] });
      await consumer.runInstance(image, 'running');
      const config = join(mkdtempSync(join(tmpdir(), 'ami-janitor-policy-')), 'policy.yml');
      writeFileSync(config, POLICY);

      // Act
      const { stdout } = await run(
        process.execPath,
        [
          'bin/ami-janitor.js',
          'plan',
          '--json',
          '--accounts',
          `${golden},${workloads}`,
          '--regions',
          'us-east-1',
          '--config',
          config,
        ],
        { cwd: ROOT, env: { ...process.env, ...moto.env(), POWERTOOLS_LOG_LEVEL: 'SILENT' } },
      );
      const document = JSON.parse(stdout) as TargetsDocument;

      // Assess
      const report = document.targets.find((target) => target.accountId === golden)?.report;
      expect(document.targets.every((target) => target.status === 'ok')).toBe(true);
      const decision = report?.decisions.find((entry) => entry.imageId === image);
      expect(decision).toMatchObject({ verdict: 'keep', rule: 'shared-in-use' });
      expect(decision?.reason).toContain(`in use in target account ${workloads}`);
      expect(report?.decisions.find((entry) => entry.imageId === idle)).toMatchObject({ verdict: 'expire' });
    });
  },
);
