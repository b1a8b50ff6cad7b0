import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { DescribeImagesCommand, DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import type { RunReport } from '../../src/core/report.ts';
import { describeWithMoto, MOTO_ACCOUNT_ID, type MotoHandle } from './moto.ts';
import { assumeRoleIn, createOrganization, motoClientConfig, Seeder } from './seed.ts';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const DAY_MS = 86_400_000;
const REGIONS = ['eu-west-1', 'us-east-1'] as const;
/** An account moto would let anyone assume; the proxy below refuses it as STS would. */
const UNREACHABLE = '999999999999';

/** Every run acts on the real clock; a grace period passes by moving the marks back. */
const POLICY = `
dryRun: false
graceDays: 7
keepLatest:
  count: 0
`;

const scratch = mkdtempSync(join(tmpdir(), 'ami-janitor-organization-'));
const policyFile = join(scratch, 'policy.yml');
writeFileSync(policyFile, POLICY);
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

interface SeededTarget {
  accountId: string;
  region: string;
  seed: Seeder;
  expired: string;
  inUse: string;
  current: string;
  /** The expired image's snapshots, which go with it. */
  expiredSnapshots: string[];
}

interface TargetsDocument {
  targets: { accountId: string; region: string; status: string; error?: string; report?: RunReport }[];
  totals: Record<string, number>;
}

function day(offsetDays: number): string {
  return new Date(Date.now() + offsetDays * DAY_MS).toISOString().slice(0, 10);
}

/** In one account-Region: an expired image, an expired one a running instance uses, an unexpired one. */
async function seedTarget(seed: Seeder, accountId: string): Promise<SeededTarget> {
  const region = seed.region;
  const expired = await seed.registerImage(`expired-${region}`, { 'ami-janitor:expires-at': day(-1) });
  const inUse = await seed.registerImage(`in-use-${region}`, { 'ami-janitor:expires-at': day(-1) });
  const current = await seed.registerImage(`current-${region}`, { 'ami-janitor:expires-at': day(30) });
  await seed.runInstance(inUse, 'running');
  return {
    accountId,
    region,
    seed,
    expired,
    inUse,
    current,
    expiredSnapshots: await seed.snapshotIdsOf(expired),
  };
}

async function imagesIn(target: SeededTarget): Promise<Set<string>> {
  const result = await target.seed.clients.ec2.send(new DescribeImagesCommand({ Owners: ['self'] }));
  return new Set((result.Images ?? []).flatMap((image) => (image.ImageId ? [image.ImageId] : [])));
}

async function snapshotsIn(target: SeededTarget): Promise<Set<string>> {
  const result = await target.seed.clients.ec2.send(
    new DescribeSnapshotsCommand({ Filters: [{ Name: 'owner-id', Values: [target.accountId] }] }),
  );
  return new Set((result.Snapshots ?? []).flatMap((s) => (s.SnapshotId ? [s.SnapshotId] : [])));
}

function key(target: { accountId: string; region: string }): string {
  return `${target.accountId} ${target.region}`;
}

describeWithMoto('organisation-wide CLI against moto', (moto: MotoHandle) => {
  let members: string[];
  /** Every seeded account-Region: both Regions of both members, and the management account's us-east-1. */
  let seeded: SeededTarget[];

  beforeEach(async () => {
    await moto.reset();
    const organization = await createOrganization(moto.endpoint, ['member-a', 'member-b']);
    expect(organization.managementAccountId).toBe(MOTO_ACCOUNT_ID);
    members = [organization.members['member-a'] ?? '', organization.members['member-b'] ?? ''];
    seeded = [];
    for (const accountId of members) {
      for (const region of REGIONS) {
        seeded.push(await seedTarget(await Seeder.inAccount(moto.endpoint, accountId, region), accountId));
      }
    }
    seeded.push(await seedTarget(new Seeder(moto.endpoint, { region: 'us-east-1' }), MOTO_ACCOUNT_ID));
  });

  afterEach(() => {
    for (const target of seeded) target.seed.destroy();
  });

  async function cli(
    args: string[],
    endpoint = moto.endpoint,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run(process.execPath, ['bin/ami-janitor.js', ...args], {
        cwd: ROOT,
        env: { ...process.env, ...moto.env(), AWS_ENDPOINT_URL: endpoint, POWERTOOLS_LOG_LEVEL: 'SILENT' },
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code?: number; stdout?: string; stderr?: string };
      return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
    }
  }

  /** Moves back the marks the run reported in each account-Region, as ten days passing would. */
  async function letGracePass(document: TargetsDocument): Promise<void> {
    for (const entry of document.targets) {
      const marked = (entry.report?.actions ?? [])
        .filter((outcome) => outcome.action.kind === 'mark' && outcome.status === 'done')
        .map((outcome) => outcome.action.imageId);
      const target = seeded.find((candidate) => key(candidate) === key(entry));
      if (marked.length > 0) {
        expect(target, `a seeded target for ${key(entry)}`).toBeDefined();
        await target?.seed.backdateMarks(marked, 10);
      }
    }
  }

  /** Exactly the expired image (and its snapshots) is gone where `swept`; everything stays elsewhere. */
  async function expectRemovedExactlyIn(swept: readonly string[]): Promise<void> {
    for (const target of seeded) {
      const images = await imagesIn(target);
      const snapshots = await snapshotsIn(target);
      const gone = swept.includes(key(target));
      expect(images.has(target.expired), `${key(target)} expired image ${gone ? 'removed' : 'kept'}`).toBe(
        !gone,
      );
      for (const snapshot of target.expiredSnapshots) {
        expect(snapshots.has(snapshot), `${key(target)} expired image's snapshot`).toBe(!gone);
      }
      expect(images.has(target.inUse), `${key(target)} in-use image kept`).toBe(true);
      expect(images.has(target.current), `${key(target)} unexpired image kept`).toBe(true);
    }
  }

  it('moto lands an assumed member role in the member account, and lets any account be assumed', async () => {
    // Prepare
    const sts = (credentials?: Awaited<ReturnType<typeof assumeRoleIn>>) =>
      new STSClient(motoClientConfig(moto.endpoint, credentials ? { credentials } : {}));
    const own = sts();

    // Act
    const member = sts(await assumeRoleIn(moto.endpoint, members[0] ?? ''));
    const identity = await member.send(new GetCallerIdentityCommand({}));
    const unknown = await own.send(
      new AssumeRoleCommand({
        RoleArn: `arn:aws:iam::${UNREACHABLE}:role/ami-janitor-member`,
        RoleSessionName: 'ami-janitor',
      }),
    );

    // Assess: the premise of the tests below, and why the failing target needs the proxy.
    expect(identity.Account).toBe(members[0]);
    expect(identity.Arn).toBe(`arn:aws:sts::${members[0]}:assumed-role/ami-janitor-member/seed`);
    expect(unknown.Credentials?.AccessKeyId).toBeDefined();
    own.destroy();
    member.destroy();
  });

  it('apply --organization marks, and after the grace period removes exactly the expired image in every account-Region', async () => {
    // Prepare
    const args = [
      'apply',
      '--yes',
      '--organization',
      '--regions',
      REGIONS.join(','),
      '--json',
      '--config',
      policyFile,
    ];
    // In ListAccounts order (the management account, then the members as created), each in its Regions.
    const everyTarget = [MOTO_ACCOUNT_ID, ...members].flatMap((accountId) =>
      REGIONS.map((region) => `${accountId} ${region}`),
    );

    // Act 1
    const mark = await cli(args);

    // Assess 1: one document, every target of the organisation ok, the expired images marked.
    expect(mark.code, mark.stderr).toBe(0);
    const marked = JSON.parse(mark.stdout) as TargetsDocument;
    expect(marked.targets.map(key)).toEqual(everyTarget);
    expect(marked.targets.every((entry) => entry.status === 'ok')).toBe(true);
    expect(marked.totals).toMatchObject({
      targets: 6,
      ok: 6,
      failed: 0,
      marked: seeded.length,
      deregistered: 0,
    });
    for (const entry of marked.targets) {
      expect(entry.report?.accountId).toBe(entry.accountId);
      expect(entry.report?.region).toBe(entry.region);
    }
    await expectRemovedExactlyIn([]);
    expect(mark.stderr.split('\n').filter((line) => line.startsWith('ok '))).toHaveLength(6);

    // Act 2: ten days later.
    await letGracePass(marked);
    const remove = await cli(args);

    // Assess 2
    expect(remove.code, remove.stderr).toBe(0);
    const removed = JSON.parse(remove.stdout) as TargetsDocument;
    expect(removed.targets.every((entry) => entry.status === 'ok')).toBe(true);
    expect(removed.totals).toMatchObject({
      deregistered: seeded.length,
      actionsFailed: 0,
      snapshotsFailed: 0,
    });
    const byTarget = new Map(removed.targets.map((entry) => [key(entry), entry.report?.totals.deregistered]));
    for (const target of seeded) expect(byTarget.get(key(target)), key(target)).toBe(1);
    expect(byTarget.get(`${MOTO_ACCOUNT_ID} eu-west-1`)).toBe(0);
    await expectRemovedExactlyIn(seeded.map(key));
  });

  it('--accounts sweeps exactly the named members, the same way', async () => {
    // Prepare
    const args = [
      'apply',
      '--yes',
      '--accounts',
      members.join(','),
      '--regions',
      REGIONS.join(','),
      '--json',
      '--config',
      policyFile,
    ];
    const memberTargets = seeded.filter((target) => target.accountId !== MOTO_ACCOUNT_ID).map(key);

    // Act
    const mark = await cli(args);
    const marked = JSON.parse(mark.stdout) as TargetsDocument;
    await letGracePass(marked);
    const remove = await cli(args);

    // Assess
    expect(mark.code, mark.stderr).toBe(0);
    // In the order the accounts were named, each in its Regions.
    expect(marked.targets.map(key)).toEqual(memberTargets);
    expect(remove.code, remove.stderr).toBe(0);
    const removed = JSON.parse(remove.stdout) as TargetsDocument;
    expect(removed.targets.every((entry) => entry.status === 'ok')).toBe(true);
    expect(removed.totals).toMatchObject({ targets: 4, deregistered: 4 });
    await expectRemovedExactlyIn(memberTargets);
  });

  it('a target whose role is refused is reported failed, the other completes, and the run exits non-zero', async () => {
    // Prepare: moto assumes any account, so a proxy in front of it refuses this one as STS does.
    const proxy = await refusingProxy(moto.endpoint, UNREACHABLE);
    const member = members[0] ?? '';

    try {
      // Act
      const result = await cli(
        [
          'apply',
          '--yes',
          '--accounts',
          `${member},${UNREACHABLE}`,
          '--regions',
          'us-east-1',
          '--json',
          '--config',
          policyFile,
        ],
        proxy.endpoint,
      );

      // Assess
      expect(result.code).toBe(3);
      const document = JSON.parse(result.stdout) as TargetsDocument;
      expect(document.targets.map((entry) => [entry.accountId, entry.status])).toEqual([
        [member, 'ok'],
        [UNREACHABLE, 'failed'],
      ]);
      expect(document.targets[0]?.report?.totals).toMatchObject({ marked: 1, failed: 0 });
      expect(document.targets[1]?.error).toMatch(
        new RegExp(
          `^AccessDenied: cannot assume arn:aws:iam::${UNREACHABLE}:role/ami-janitor-member: .*not authorized`,
        ),
      );
      expect(document.targets[1]).not.toHaveProperty('report');
      expect(document.totals).toMatchObject({ targets: 2, ok: 1, failed: 1, marked: 1 });
      expect(result.stderr).toContain(`FAILED ${UNREACHABLE} us-east-1: AccessDenied: cannot assume`);
      expect(result.stderr).toContain(`ok ${member} us-east-1: 1 eligible, 0 removed`);
      expect(proxy.refused()).toBeGreaterThan(0);
    } finally {
      await proxy.close();
    }
  });
});

/**
 * Forwards every request to moto, except AssumeRole into `accountId`, answered as STS answers a
 * caller the role's trust policy does not name: 403 AccessDenied.
 */
async function refusingProxy(
  upstream: string,
  accountId: string,
): Promise<{ endpoint: string; refused(): number; close(): Promise<void> }> {
  const target = new URL(upstream);
  let refused = 0;
  const server: Server = createServer((incoming, outgoing) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const body = Buffer.concat(chunks);
      const text = body.toString('utf8');
      if (/Action=AssumeRole(&|$)/.test(text) && text.includes(accountId)) {
        refused += 1;
        outgoing.writeHead(403, { 'content-type': 'text/xml' });
        outgoing.end(
          `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>` +
            `<Code>AccessDenied</Code><Message>User: arn:aws:iam::${MOTO_ACCOUNT_ID}:user/moto is not authorized ` +
            `to perform: sts:AssumeRole on resource: arn:aws:iam::${accountId}:role/ami-janitor-member</Message>` +
            `</Error><RequestId>refused-by-test-proxy</RequestId></ErrorResponse>`,
        );
        return;
      }
      const forward = request(
        {
          hostname: target.hostname,
          port: target.port,
          method: incoming.method,
          path: incoming.url,
          headers: incoming.headers,
        },
        (answer) => {
          outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(outgoing);
        },
      );
      forward.on('error', (error) => {
        outgoing.writeHead(502);
        outgoing.end(String(error));
      });
      forward.end(body);
    });
  });
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', () => ready()));
  const address = server.address();
  const port = address !== null && typeof address === 'object' ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    refused: () => refused,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
