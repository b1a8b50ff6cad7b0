import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { DescribeImagesCommand, DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import { build } from 'esbuild';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { packagingOptions, temporaryDirectory } from '../../scripts/bench/bundle.ts';
import type { RunReport } from '../../src/core/report.ts';
import { describeWithMoto, MOTO_ACCOUNT_ID, type MotoHandle } from './moto.ts';
import { Seeder } from './seed.ts';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const DAY_MS = 86_400_000;

/**
 * Families by tag, so keep-latest is decided by the seeding order rather than by moto's
 * one-second CreationDate resolution; the newest of each family is created last, after a pause.
 * Every run acts on the real clock and moto's images are new, so the stale ones are made eligible
 * the way a person does it, with an expiry date in the past; a grace period passes by moving the
 * marks back (Seeder.backdateMarks).
 */
const POLICY = `
dryRun: false
keepLatest:
  count: 1
  familyTags: [Family]
graceDays: 7
`;

interface SeededAccount {
  /** Name → image id. */
  ids: Record<string, string>;
  /** Name → snapshot ids. */
  snapshots: Record<string, string[]>;
  removable: string[];
  kept: string[];
}

/** An account with every kind of reference moto can hold, exempt and expired images, and two families. */
async function seedAccount(seed: Seeder): Promise<SeededAccount> {
  const base = await seed.registerImage('base-image', { Family: 'base' });
  const builder = await seed.runInstance(base, 'terminated');
  const svc = (name: string, tags: Record<string, string> = {}) =>
    seed.createImage(builder, name, { Family: 'svc', ...tags });

  // Expired, yet every guard must still win: in use, exempt.
  const expired = { 'ami-janitor:expires-at': new Date(Date.now() - DAY_MS).toISOString().slice(0, 10) };
  const ids: Record<string, string> = {};
  ids.runningInstance = await svc('svc-running', expired);
  ids.stoppedInstance = await svc('svc-stopped', expired);
  ids.terminatedInstanceOnly = await svc('svc-terminated', expired);
  ids.launchTemplate = await svc('svc-launch-template', expired);
  ids.launchConfiguration = await svc('svc-launch-configuration', expired);
  ids.ssmParameter = await svc('svc-ssm-parameter', expired);
  ids.exempt = await svc('svc-exempt', { 'ami-janitor:keep': 'true', ...expired });
  ids.staleA = await svc('svc-stale-a', expired);
  ids.staleB = await svc('svc-stale-b', expired);
  ids.webOld = await seed.createImage(builder, 'web-v1', { Family: 'web', ...expired });
  await pauseForNextSecond();
  ids.svcNewest = await svc('svc-newest');
  ids.webNewest = await seed.createImage(builder, 'web-v2', { Family: 'web' });

  await seed.runInstance(ids.runningInstance, 'running');
  await seed.runInstance(ids.stoppedInstance, 'stopped');
  await seed.runInstance(ids.terminatedInstanceOnly, 'terminated');
  await seed.createLaunchTemplate('svc-template', ids.launchTemplate);
  await seed.createLaunchConfigurationGroup('svc-legacy', ids.launchConfiguration);
  await seed.putImageParameter('/golden/svc/latest', ids.ssmParameter);

  const snapshots: Record<string, string[]> = {};
  for (const [name, id] of Object.entries(ids)) snapshots[name] = await seed.snapshotIdsOf(id);

  const removable = ['terminatedInstanceOnly', 'staleA', 'staleB', 'webOld'];
  const kept = Object.keys(ids).filter((name) => !removable.includes(name));
  return { ids, snapshots, removable, kept };
}

async function pauseForNextSecond(): Promise<void> {
  await new Promise((done) => setTimeout(done, 1_100));
}

async function imageIdsInAccount(seed: Seeder): Promise<Set<string>> {
  const result = await seed.clients.ec2.send(new DescribeImagesCommand({ Owners: ['self'] }));
  return new Set((result.Images ?? []).flatMap((image) => (image.ImageId ? [image.ImageId] : [])));
}

async function snapshotIdsInAccount(seed: Seeder): Promise<Set<string>> {
  const result = await seed.clients.ec2.send(
    new DescribeSnapshotsCommand({ Filters: [{ Name: 'owner-id', Values: [MOTO_ACCOUNT_ID] }] }),
  );
  return new Set(
    (result.Snapshots ?? []).flatMap((snapshot) => (snapshot.SnapshotId ? [snapshot.SnapshotId] : [])),
  );
}

async function tagsOf(seed: Seeder, imageId: string): Promise<Record<string, string>> {
  const result = await seed.clients.ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
  return Object.fromEntries((result.Images?.[0]?.Tags ?? []).map((tag) => [tag.Key, tag.Value]));
}

function policyFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'ami-janitor-policy-')), 'policy.yml');
  writeFileSync(file, POLICY);
  return file;
}

function daysFromNow(days: number): string {
  return new Date(Date.now() + days * DAY_MS).toISOString();
}

async function expectRemovedExactly(seed: Seeder, account: SeededAccount): Promise<void> {
  const images = await imageIdsInAccount(seed);
  const snapshots = await snapshotIdsInAccount(seed);
  for (const name of account.removable) {
    expect(images.has(account.ids[name] ?? ''), `${name} deregistered`).toBe(false);
    for (const snapshot of account.snapshots[name] ?? [])
      expect(snapshots.has(snapshot), `${name} snapshot`).toBe(false);
  }
  for (const name of account.kept) {
    expect(images.has(account.ids[name] ?? ''), `${name} kept`).toBe(true);
    for (const snapshot of account.snapshots[name] ?? [])
      expect(snapshots.has(snapshot), `${name} snapshot`).toBe(true);
  }
}

describeWithMoto('sweep against moto', (moto: MotoHandle) => {
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

  async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run(process.execPath, ['bin/ami-janitor.js', ...args], {
        cwd: ROOT,
        env: { ...process.env, ...moto.env(), POWERTOOLS_LOG_LEVEL: 'SILENT' },
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code?: number; stdout?: string; stderr?: string };
      return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
    }
  }

  it('CLI: plan lists the candidates, apply marks them, apply after the grace period removes exactly them', async () => {
    const config = policyFile();
    const removable = account.removable.map((name) => account.ids[name]).sort();

    // Act 1: a read-only forecast 120 days out.
    const plan = await cli('plan', '--json', '--config', config, '--as-of', daysFromNow(120));

    // Assess 1: exactly the unprotected stale images are candidates, nothing changed.
    expect(plan.code, plan.stderr).toBe(0);
    const planned = JSON.parse(plan.stdout) as RunReport;
    expect(planned.accountId).toBe(MOTO_ACCOUNT_ID);
    expect(planned.totals.images).toBe(Object.keys(account.ids).length + 1);
    const candidates = planned.decisions.filter((d) => d.verdict === 'expire').map((d) => d.imageId);
    expect(candidates.sort()).toEqual(removable);
    expect(planned.actions.map((o) => `${o.action.kind} ${o.status}`)).toEqual(
      removable.map(() => 'mark planned'),
    );
    const keptBy = Object.fromEntries(planned.decisions.map((d) => [d.imageId, d.rule]));
    expect(keptBy[account.ids.runningInstance ?? '']).toBe('in-use');
    expect(keptBy[account.ids.stoppedInstance ?? '']).toBe('in-use');
    expect(keptBy[account.ids.launchTemplate ?? '']).toBe('in-use');
    expect(keptBy[account.ids.launchConfiguration ?? '']).toBe('in-use');
    expect(keptBy[account.ids.ssmParameter ?? '']).toBe('in-use');
    expect(keptBy[account.ids.exempt ?? '']).toBe('exempt-tag');
    expect(keptBy[account.ids.svcNewest ?? '']).toBe('keep-latest');
    expect((await imageIdsInAccount(seed)).size).toBe(Object.keys(account.ids).length + 1);

    // Act 2: apply marks them; moto lacks deprecation, which is only a warning.
    const mark = await cli('apply', '--yes', '--json', '--config', config);

    // Assess 2
    expect(mark.code, mark.stderr).toBe(0);
    const marked = JSON.parse(mark.stdout) as RunReport;
    expect(marked.totals).toMatchObject({ marked: 4, deregistered: 0, failed: 0 });
    expect(marked.actions.every((o) => o.warnings.some((w) => w.startsWith('deprecation not set')))).toBe(
      true,
    );
    for (const name of account.removable) {
      expect(await tagsOf(seed, account.ids[name] ?? '')).toHaveProperty('ami-janitor:marked-at');
    }
    expect(await imageIdsInAccount(seed)).toHaveProperty('size', Object.keys(account.ids).length + 1);

    // Act 3: an apply on a forecast clock is refused and changes nothing.
    const early = await cli('apply', '--yes', '--json', '--config', config, '--as-of', daysFromNow(10));

    // Assess 3
    expect(early.code).toBe(64);
    expect(early.stderr).toMatch(/--as-of .* is for plan/);
    await expect(imageIdsInAccount(seed)).resolves.toHaveProperty(
      'size',
      Object.keys(account.ids).length + 1,
    );

    // Act 4: ten days later the grace period is over.
    await seed.backdateMarks(
      account.removable.map((name) => account.ids[name] ?? ''),
      10,
    );
    const remove = await cli('apply', '--yes', '--config', config);

    // Assess 4: the table run succeeded and exactly the eligible images and their snapshots are gone.
    expect(remove.code, remove.stderr).toBe(0);
    expect(remove.stdout).toMatch(/Applied: .* 4 deregistered, 4 snapshots deleted/);
    await expectRemovedExactly(seed, account);

    // Act 5: running again changes nothing.
    const again = await cli('apply', '--yes', '--json', '--config', config);

    // Assess 5
    expect(again.code, again.stderr).toBe(0);
    expect((JSON.parse(again.stdout) as RunReport).actions).toEqual([]);
    await expectRemovedExactly(seed, account);
  });

  type SweepHandler = (event: unknown, context: unknown) => Promise<unknown>;

  /**
   * Two scheduled runs, the marks moved eight days back between them: the first marks, the second
   * deregisters exactly the expired.
   */
  async function markThenRemove(handler: SweepHandler): Promise<void> {
    const event = (run: number) => ({
      version: '0',
      id: `sweep-${run}`,
      'detail-type': 'Scheduled Event',
      source: 'aws.events',
      account: MOTO_ACCOUNT_ID,
      time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      region: 'us-east-1',
      resources: ['arn:aws:events:us-east-1:123456789012:rule/ami-janitor-sweep'],
      detail: {},
    });
    const context = {
      getRemainingTimeInMillis: () => 850_000,
      functionName: 'ami-janitor-sweep',
      awsRequestId: 'req-1',
    };

    // Act 1
    const first = (await handler(event(1), context)) as RunReport;

    // Assess 1
    expect(first.totals).toMatchObject({ marked: 4, deregistered: 0, failed: 0 });
    expect((await imageIdsInAccount(seed)).size).toBe(Object.keys(account.ids).length + 1);

    // Act 2
    await seed.backdateMarks(
      account.removable.map((name) => account.ids[name] ?? ''),
      8,
    );
    const second = (await handler(event(2), context)) as RunReport;

    // Assess 2
    expect(second.totals).toMatchObject({
      deregistered: 4,
      snapshotsDeleted: 4,
      failed: 0,
      snapshotsFailed: 0,
    });
    expect(second.complete).toBe(true);
    await expectRemovedExactly(seed, account);
  }

  it('Lambda handler: scheduled events mark, then deregister after the grace period', async () => {
    // Prepare: the handler module reads its environment and builds its clients when first imported.
    const env = { ...moto.env(), AMI_JANITOR_POLICY_FILE: policyFile(), AMI_JANITOR_DRY_RUN: 'false' };
    Object.assign(process.env, env);
    try {
      const { handler } = await import('../../src/handlers/sweep.ts');

      // Act and assess
      await markThenRemove(handler as SweepHandler);
    } finally {
      for (const key of Object.keys(env)) delete process.env[key];
    }
  });

  it('the bundled Lambda handler, built as serverless package builds it, does the same', async () => {
    // Prepare: serverless.yml's esbuild options, with this test's policy compiled in where the
    // deployment compiles policy.yml.
    const packaging = packagingOptions(`${ROOT}/`);
    const directory = temporaryDirectory();
    const file = join(directory.path, `sweep${packaging.extension}`);
    await build({
      ...packaging.esbuild,
      define: {
        ...packaging.esbuild.define,
        'process.env.AMI_JANITOR_BUNDLED_POLICY': JSON.stringify(JSON.stringify(parseYaml(POLICY))),
      },
      entryPoints: [join(ROOT, 'src', 'handlers', 'sweep.ts')],
      outfile: file,
      absWorkingDir: ROOT,
      logLevel: 'silent',
    });
    const env = { ...moto.env(), AMI_JANITOR_DRY_RUN: 'false' };
    Object.assign(process.env, env);
    try {
      const { handler } = (await import(pathToFileURL(file).href)) as { handler: SweepHandler };

      // Act and assess
      await markThenRemove(handler);
    } finally {
      for (const key of Object.keys(env)) delete process.env[key];
      directory.remove();
    }
  });
});
