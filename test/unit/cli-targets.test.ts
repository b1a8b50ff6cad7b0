import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { TargetAccessError } from '../../src/adapters/targets.ts';
import { type AccountPorts, type CliDeps, EXIT, main, type TargetRuntime } from '../../src/cli/main.ts';
import type { TrailHealthCheck } from '../../src/core/account-audit.ts';
import type { RunReport } from '../../src/core/report.ts';
import type { ResolvedTarget, TargetSource } from '../../src/core/targets.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import { image } from './factories.ts';

const CALLER = '111111111111';
const MEMBER = '222222222222';
const UNREACHABLE = '999999999999';
const DAY_MS = 86_400_000;

const scratch = mkdtempSync(join(tmpdir(), 'ami-janitor-cli-targets-'));
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

/** Removes what it finds on first detection, so one apply shows removals. */
const REMOVE_AT_ONCE = (() => {
  const path = join(scratch, 'remove-at-once.yml');
  writeFileSync(path, 'graceDays: 0\nkeepLatest:\n  count: 0\n');
  return path;
})();

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in-process with captured streams; `answer` makes stdin a terminal that types it. */
async function run(deps: CliDeps, argv: string[], answer?: string): Promise<Run> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const stdin = Object.assign(new PassThrough(), { isTTY: answer !== undefined });
  if (answer !== undefined) stdin.write(`${answer}\n`);
  const out: string[] = [];
  const err: string[] = [];
  stdout.setEncoding('utf8').on('data', (chunk: string) => out.push(chunk));
  stderr.setEncoding('utf8').on('data', (chunk: string) => err.push(chunk));
  const code = await main(argv, { stdout, stderr, stdin, env: { AWS_REGION: 'eu-west-1' } }, deps);
  await new Promise((done) => setImmediate(done));
  return { code, stdout: out.join(''), stderr: err.join('') };
}

const healthyTrail: TrailHealthCheck = {
  check: async (region) => ({ ok: true, region, reason: `trail logs management events in ${region}` }),
};

function portsOf(account: MemoryAccount): AccountPorts {
  return {
    inventory: account,
    actions: account,
    snapshots: account,
    sharing: account,
    trailHealth: healthyTrail,
    snapshotPorts: { inventory: account, sharing: account, actions: account },
    usage: account,
    recycleBin: account,
  };
}

/** One expired image and one kept by an expiry date to come, owned by the account. */
function seededAccount(accountId: string, extra: Partial<Parameters<typeof image>[0]> = {}): MemoryAccount {
  const now = new Date();
  const yesterday = new Date(now.getTime() - DAY_MS).toISOString().slice(0, 10);
  const nextYear = new Date(now.getTime() + 365 * DAY_MS).toISOString().slice(0, 10);
  return new MemoryAccount({
    accountId,
    now,
    images: [
      image({
        name: `expired-${accountId}`,
        ownerId: accountId,
        creationDate: new Date(now.getTime() - 10 * DAY_MS),
        tags: { 'ami-janitor:expires-at': yesterday },
        ...extra,
      }),
      image({
        name: `current-${accountId}`,
        ownerId: accountId,
        creationDate: new Date(now.getTime() - 10 * DAY_MS),
        tags: { 'ami-janitor:expires-at': nextYear },
      }),
    ],
  });
}

/**
 * A runtime whose accounts are MemoryAccounts, one per account-Region; an account listed in
 * `unreachable` is refused as AssumeRole refuses it.
 */
function fakeRuntime(
  options: {
    organization?: { accountId: string; name?: string }[];
    regions?: string[];
    unreachable?: string[];
    account?: (target: ResolvedTarget) => MemoryAccount;
    onPorts?: (target: ResolvedTarget, callerAccountId: string) => void;
  } = {},
) {
  const accounts = new Map<string, MemoryAccount>();
  const source = {
    accountId: vi.fn(async () => CALLER),
    organizationAccounts: vi.fn(async (_units: readonly string[]) => options.organization ?? []),
    enabledRegions: vi.fn(async () => options.regions ?? ['eu-west-1']),
  } satisfies TargetSource;
  const runtime: TargetRuntime = {
    source,
    async ports(target, callerAccountId) {
      options.onPorts?.(target, callerAccountId);
      if (options.unreachable?.includes(target.accountId)) {
        const roleArn = `arn:aws:iam::${target.accountId}:role/ami-janitor-member`;
        const refusal = Object.assign(new Error(`not authorized to perform sts:AssumeRole on ${roleArn}`), {
          name: 'AccessDenied',
        });
        throw new TargetAccessError(target.accountId, roleArn, { cause: refusal });
      }
      const key = `${target.accountId} ${target.region}`;
      let account = accounts.get(key);
      if (!account) {
        account = options.account?.(target) ?? seededAccount(target.accountId);
        accounts.set(key, account);
      }
      return portsOf(account);
    },
  };
  const factory = vi.fn(async () => runtime);
  return { deps: { targetRuntime: factory } satisfies CliDeps, factory, source, accounts };
}

interface TargetsDocument {
  targets: { accountId: string; region: string; status: string; error?: string; report?: RunReport }[];
  totals: Record<string, number>;
}

describe('target flags', () => {
  it.each([
    { argv: ['--concurrency', '0'], message: "--concurrency '0' is not a whole number from 1 to 64" },
    { argv: ['--concurrency', '65'], message: "--concurrency '65' is not a whole number from 1 to 64" },
    { argv: ['--concurrency', 'many'], message: "--concurrency 'many' is not a whole number" },
    { argv: ['--accounts', '12345'], message: '--accounts: "12345" is not a 12-digit account id' },
    { argv: ['--accounts', ','], message: '--accounts: no account id given' },
    { argv: ['--regions', 'moon-1'], message: '--regions: "moon-1" is not a Region name' },
    { argv: ['--organization', '--regions', 'all,eu-west-1'], message: '--regions: "all" is not a Region' },
    { argv: ['--exclude-accounts', 'prod'], message: '--exclude-accounts: "prod" is not a 12-digit' },
    { argv: ['--role', 'a/b'], message: '--role: "a/b" is not an IAM role name' },
    { argv: ['--organization', '--organization-role', 'reader'], message: '--organization-role: "reader"' },
    {
      argv: ['--organization', '--organizational-units', 'engineering'],
      message: '--organizational-units: "engineering" is not an OU id',
    },
    {
      argv: ['--accounts', CALLER, '--organization'],
      message: '--accounts and --organization exclude each other',
    },
    {
      argv: ['--organizational-units', 'ou-ab12-abcdefgh'],
      message: '--organizational-units only applies with --organization',
    },
    { argv: ['--demo', '--regions', 'eu-west-1'], message: '--demo is one built-in account' },
  ])('exits 64 naming the flag on $argv', async ({ argv, message }) => {
    // Prepare
    const { deps, factory } = fakeRuntime();

    // Act
    const result = await run(deps, ['plan', ...argv]);

    // Assess
    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toContain(message);
    expect(result.stdout).toBe('');
    expect(factory).not.toHaveBeenCalled();
  });

  it('without target flags runs the single-account path and never builds a target runtime', async () => {
    // Prepare
    const { deps, factory } = fakeRuntime();

    // Act
    const result = await run(deps, ['plan', '--demo', '--json']);

    // Assess
    expect(result.code).toBe(EXIT.ok);
    expect((JSON.parse(result.stdout) as RunReport).accountId).toBeDefined();
    expect(factory).not.toHaveBeenCalled();
  });

  it('hands the runtime the spec of the flags, and sweeps the organisation less the exclusions in every enabled Region', async () => {
    // Prepare
    const { deps, factory, source } = fakeRuntime({
      organization: [{ accountId: CALLER }, { accountId: MEMBER }, { accountId: '333333333333' }],
      regions: ['us-east-1', 'eu-west-1'],
    });

    // Act
    const result = await run(deps, [
      'plan',
      '--json',
      '--organization',
      '--organizational-units',
      'ou-ab12-abcdefgh',
      '--exclude-accounts',
      '333333333333',
      '--regions',
      'all',
      '--role',
      'janitor',
    ]);

    // Assess
    expect(result.code, result.stderr).toBe(EXIT.ok);
    expect(factory).toHaveBeenCalledWith(
      expect.objectContaining({
        region: 'eu-west-1',
        spec: expect.objectContaining({
          accounts: { kind: 'organization', organizationalUnits: ['ou-ab12-abcdefgh'] },
          excludeAccounts: ['333333333333'],
          regions: { kind: 'all' },
          memberRoleName: 'janitor',
        }),
      }),
    );
    expect(source.organizationAccounts).toHaveBeenCalledWith(['ou-ab12-abcdefgh']);
    const document = JSON.parse(result.stdout) as TargetsDocument;
    expect(document.targets.map((t) => `${t.accountId} ${t.region}`)).toEqual([
      `${CALLER} eu-west-1`,
      `${CALLER} us-east-1`,
      `${MEMBER} eu-west-1`,
      `${MEMBER} us-east-1`,
    ]);
  });
});

describe('a run over several targets', () => {
  it('--json prints one document: each target with the report plan --json prints for one account, and the totals', async () => {
    // Prepare
    const { deps } = fakeRuntime();
    const single = JSON.parse((await run({}, ['plan', '--demo', '--json'])).stdout) as RunReport;

    // Act
    const result = await run(deps, [
      'plan',
      '--json',
      '--accounts',
      `${CALLER},${MEMBER}`,
      '--regions',
      'us-east-1,eu-west-1',
    ]);

    // Assess
    expect(result.code, result.stderr).toBe(EXIT.ok);
    const document = JSON.parse(result.stdout) as TargetsDocument;
    expect(Object.keys(document)).toEqual(['targets', 'totals']);
    expect(document.targets).toHaveLength(4);
    for (const entry of document.targets) {
      expect(Object.keys(entry)).toEqual(['accountId', 'region', 'status', 'report']);
      expect(entry.status).toBe('ok');
      expect(Object.keys(entry.report ?? {}).sort()).toEqual(Object.keys(single).sort());
      expect(entry.report).toMatchObject({ mode: 'plan', accountId: entry.accountId, region: entry.region });
      expect(entry.report?.totals).toMatchObject({ images: 2, eligible: 1 });
    }
    expect(document.totals).toMatchObject({
      targets: 4,
      ok: 4,
      failed: 0,
      images: 8,
      eligible: 4,
      kept: 4,
      actionsFailed: 0,
      deregistered: 0,
    });
    // Progress goes to stderr, one line per target; stdout is the document alone.
    const progress = result.stderr.split('\n').filter((line) => line.startsWith('ok '));
    expect(progress.sort()).toEqual([
      `ok ${CALLER} eu-west-1: 1 eligible, 0 to remove`,
      `ok ${CALLER} us-east-1: 1 eligible, 0 to remove`,
      `ok ${MEMBER} eu-west-1: 1 eligible, 0 to remove`,
      `ok ${MEMBER} us-east-1: 1 eligible, 0 to remove`,
    ]);
  });

  it('a target whose role is refused is reported failed; the others complete; exit 3', async () => {
    // Prepare
    const { deps, accounts } = fakeRuntime({ unreachable: [UNREACHABLE] });

    // Act
    const result = await run(deps, [
      'apply',
      '--yes',
      '--json',
      '--config',
      REMOVE_AT_ONCE,
      '--accounts',
      `${MEMBER},${UNREACHABLE}`,
    ]);

    // Assess
    expect(result.code).toBe(EXIT.factsUnavailable);
    const document = JSON.parse(result.stdout) as TargetsDocument;
    const [member, unreachable] = document.targets;
    expect(member).toMatchObject({ accountId: MEMBER, status: 'ok' });
    expect(member?.report?.totals).toMatchObject({ deregistered: 1, failed: 0 });
    expect(unreachable).toEqual({
      accountId: UNREACHABLE,
      region: 'eu-west-1',
      status: 'failed',
      error: `AccessDenied: cannot assume arn:aws:iam::${UNREACHABLE}:role/ami-janitor-member: not authorized to perform sts:AssumeRole on arn:aws:iam::${UNREACHABLE}:role/ami-janitor-member`,
    });
    expect(document.totals).toMatchObject({ targets: 2, ok: 1, failed: 1, deregistered: 1 });
    expect(result.stderr).toContain(`FAILED ${UNREACHABLE} eu-west-1: AccessDenied: cannot assume`);
    expect(result.stderr).toContain(`ok ${MEMBER} eu-west-1: 1 eligible, 1 removed`);
    expect(accounts.get(`${MEMBER} eu-west-1`)?.images.size).toBe(1);
  });

  it('a target whose facts cannot be gathered fails alone, changing nothing there', async () => {
    // Prepare
    const { deps, accounts } = fakeRuntime({
      account: (target) => {
        const account = seededAccount(target.accountId);
        if (target.accountId === MEMBER) account.failNext('listOwnedImages', '*', 'RequestLimitExceeded');
        return account;
      },
    });

    // Act
    const result = await run(deps, [
      'apply',
      '--yes',
      '--json',
      '--config',
      REMOVE_AT_ONCE,
      '--accounts',
      `${CALLER},${MEMBER}`,
    ]);

    // Assess
    expect(result.code).toBe(EXIT.factsUnavailable);
    const document = JSON.parse(result.stdout) as TargetsDocument;
    expect(document.targets.map((t) => t.status)).toEqual(['ok', 'failed']);
    expect(document.targets[1]?.error).toMatch(/RequestLimitExceeded.*\(nothing was changed\)$/);
    expect(accounts.get(`${MEMBER} eu-west-1`)?.calls).toEqual([]);
    expect(accounts.get(`${CALLER} eu-west-1`)?.images.size).toBe(1);
  });

  it('--html over targets writes one page with a section per target, a failed one saying why', async () => {
    // Prepare
    const { deps } = fakeRuntime({ unreachable: [UNREACHABLE] });
    const file = join(scratch, 'targets.html');

    // Act
    const result = await run(deps, [
      'plan',
      '--html',
      file,
      '--accounts',
      `${CALLER},${MEMBER},${UNREACHABLE}`,
    ]);

    // Assess
    expect(result.code).toBe(EXIT.factsUnavailable);
    const page = readFileSync(file, 'utf8');
    expect(page.match(/<section class="target"/g)).toHaveLength(3);
    expect(page).toContain(`<h2 class="target-heading">Account ${MEMBER} in eu-west-1</h2>`);
    expect(page).toMatch(/FAILED: AccessDenied: cannot assume/);
    expect(page).not.toMatch(/<script/i);
    expect(result.stdout).toContain('Targets: 2 ok, 1 failed');
  });

  it('failed actions in one target exit 1 while every target is ok', async () => {
    // Prepare
    const { deps } = fakeRuntime({
      account: (target) => {
        const account = seededAccount(target.accountId, { imageId: `ami-0${target.accountId}0000` });
        if (target.accountId === MEMBER)
          account.failNext('deregisterImage', `ami-0${MEMBER}0000`, 'InternalError');
        return account;
      },
    });

    // Act
    const result = await run(deps, [
      'apply',
      '--yes',
      '--json',
      '--config',
      REMOVE_AT_ONCE,
      '--accounts',
      `${CALLER},${MEMBER}`,
    ]);

    // Assess
    expect(result.code).toBe(EXIT.actionsFailed);
    const document = JSON.parse(result.stdout) as TargetsDocument;
    expect(document.targets.map((t) => t.status)).toEqual(['ok', 'ok']);
    expect(document.totals.actionsFailed).toBeGreaterThan(0);
    expect(result.stderr).toMatch(new RegExp(`ok ${MEMBER} eu-west-1: 1 eligible, 0 removed, \\d+ failed`));
  });

  it('refuses credentials that land in another account than the target', async () => {
    // Prepare
    const { deps } = fakeRuntime({
      account: (target) => seededAccount(target.accountId === MEMBER ? '333333333333' : target.accountId),
    });

    // Act
    const result = await run(deps, ['plan', '--json', '--accounts', MEMBER]);

    // Assess
    expect(result.code).toBe(EXIT.factsUnavailable);
    const document = JSON.parse(result.stdout) as TargetsDocument;
    expect(document.targets[0]?.error).toBe(
      `TargetMismatchError: the credentials for ${MEMBER} act in account 333333333333`,
    );
  });

  it('works on at most --concurrency targets at once', async () => {
    // Prepare
    let inFlight = 0;
    let most = 0;
    const { deps } = fakeRuntime({
      regions: ['us-east-1', 'us-east-2', 'us-west-1', 'us-west-2', 'eu-west-1'],
      account: (target) => {
        const account = seededAccount(target.accountId);
        const list = account.listOwnedImages.bind(account);
        account.listOwnedImages = async () => {
          inFlight += 1;
          most = Math.max(most, inFlight);
          await new Promise((done) => setTimeout(done, 20));
          inFlight -= 1;
          return list();
        };
        return account;
      },
    });

    // Act
    const result = await run(deps, ['plan', '--json', '--regions', 'all', '--concurrency', '2']);

    // Assess
    expect(result.code, result.stderr).toBe(EXIT.ok);
    expect((JSON.parse(result.stdout) as TargetsDocument).targets).toHaveLength(5);
    expect(most).toBe(2);
    expect(result.stderr).toContain('Planning 5 targets (1 accounts, 5 Regions), 2 at a time...');
  });

  it('the table output heads each report with its target and ends with the summary table', async () => {
    // Prepare
    const { deps } = fakeRuntime({
      organization: [
        { accountId: CALLER, name: 'management' },
        { accountId: MEMBER, name: 'evil\u001b[2Jname' },
        { accountId: UNREACHABLE },
      ],
      unreachable: [UNREACHABLE],
    });

    // Act
    const result = await run(deps, ['plan', '--organization']);

    // Assess
    expect(result.code).toBe(EXIT.factsUnavailable);
    expect(result.stdout).toContain(
      `=== Account ${CALLER} (management) in eu-west-1 ===\nPlan (read-only) for account ${CALLER}`,
    );
    expect(result.stdout).toContain(`=== Account ${MEMBER} (evil\uFFFD[2Jname) in eu-west-1 ===`);
    expect(result.stdout).toContain(
      `=== Account ${UNREACHABLE} in eu-west-1 ===\nFAILED: AccessDenied: cannot assume`,
    );
    const table = result.stdout.slice(result.stdout.indexOf('Targets: 2 ok, 1 failed'));
    const rows = table.split('\n').slice(2, -1);
    expect(rows[0]).toMatch(/^ACCOUNT\s+REGION\s+IMAGES\s+ELIGIBLE\s+TO REMOVE\s+SNAPSHOTS\s+GIB\s+STATUS$/);
    expect(rows[1]).toMatch(new RegExp(`^${CALLER}\\s+eu-west-1\\s+2\\s+1\\s+0\\s+0\\s+0\\s+ok$`));
    expect(rows[3]).toMatch(
      new RegExp(`^${UNREACHABLE}\\s+eu-west-1(\\s+-){5}\\s+FAILED: AccessDenied: cannot assume`),
    );
    expect(rows[4]).toMatch(/^TOTAL\s+3 targets\s+4\s+2\s+0\s+0\s+0\s+1 FAILED$/);
    expect(result.stdout.replaceAll('\n', '')).not.toMatch(/\p{Cc}/u);
  });

  it('apply on a terminal asks once for every target, even with one at a time, and then applies them all', async () => {
    // Prepare
    const { deps, accounts } = fakeRuntime({ regions: ['eu-west-1', 'us-east-1'] });

    // Act
    const result = await run(
      deps,
      [
        'apply',
        '--config',
        REMOVE_AT_ONCE,
        '--accounts',
        `${CALLER},${MEMBER}`,
        '--regions',
        'all',
        '--concurrency',
        '1',
      ],
      'y',
    );

    // Assess
    expect(result.code, result.stderr).toBe(EXIT.ok);
    expect(result.stderr.match(/Proceed with all of them\?/g)).toHaveLength(1);
    expect(result.stderr).toContain('About to change 4 account-Regions:');
    expect(result.stderr).toContain(
      `  ${MEMBER} us-east-1: images mark 0, deregister 1, unmark 0; snapshots mark 0, delete 0, unmark 0`,
    );
    for (const account of accounts.values()) expect(account.images.size).toBe(1);
  });

  it('declining the question changes no target and exits 4; --json still prints the plans', async () => {
    // Prepare
    const { deps, accounts } = fakeRuntime();

    // Act
    const result = await run(
      deps,
      ['apply', '--json', '--config', REMOVE_AT_ONCE, '--accounts', `${CALLER},${MEMBER}`],
      'n',
    );

    // Assess
    expect(result.code).toBe(EXIT.declined);
    expect(result.stderr).toContain('Not confirmed: nothing changed.');
    const document = JSON.parse(result.stdout) as TargetsDocument;
    for (const entry of document.targets) {
      expect(entry.report?.warnings).toContain('apply was not confirmed: nothing was changed');
    }
    for (const account of accounts.values()) {
      expect(account.images.size).toBe(2);
      expect(account.calls).toEqual([]);
    }
  });

  it('declining in text prints that nothing changed and no target report', async () => {
    // Prepare
    const { deps, accounts } = fakeRuntime();

    // Act
    const result = await run(
      deps,
      ['apply', '--config', REMOVE_AT_ONCE, '--accounts', `${CALLER},${MEMBER}`],
      'n',
    );

    // Assess
    expect(result.code).toBe(EXIT.declined);
    expect(result.stdout).toBe('Not confirmed: nothing changed.\n');
    for (const account of accounts.values()) expect(account.calls).toEqual([]);
  });

  it('apply without --yes off a terminal exits 64 before anything is read', async () => {
    // Prepare
    const { deps, factory } = fakeRuntime();

    // Act
    const result = await run(deps, ['apply', '--accounts', MEMBER]);

    // Assess
    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toContain('pass --yes');
    expect(factory).not.toHaveBeenCalled();
  });

  it('audit over targets prints one document with severity totals; the worst exit wins', async () => {
    // Prepare
    const { deps } = fakeRuntime({
      unreachable: [UNREACHABLE],
      account: (target) => seededAccount(target.accountId, { public: target.accountId === MEMBER }),
    });

    // Act
    const critical = await run(deps, ['audit', '--json', '--accounts', `${CALLER},${MEMBER}`]);
    const withFailure = await run(deps, ['audit', '--json', '--accounts', `${MEMBER},${UNREACHABLE}`]);

    // Assess
    expect(critical.code).toBe(EXIT.criticalFinding);
    const document = JSON.parse(critical.stdout) as TargetsDocument;
    expect(document.targets.map((t) => [t.accountId, t.status])).toEqual([
      [CALLER, 'ok'],
      [MEMBER, 'ok'],
    ]);
    expect(document.totals).toMatchObject({ targets: 2, ok: 2, failed: 0, images: 4 });
    expect(document.totals.critical).toBeGreaterThan(0);
    expect(critical.stderr).toMatch(new RegExp(`ok ${MEMBER} eu-west-1: \\d+ findings \\(\\d+ critical\\)`));
    expect(withFailure.code).toBe(EXIT.factsUnavailable);
  });

  it('the targets could not be resolved: exit 3, nothing swept', async () => {
    // Prepare
    const { deps, source } = fakeRuntime();
    source.organizationAccounts.mockRejectedValueOnce(
      Object.assign(new Error('not in an organisation'), { name: 'AWSOrganizationsNotInUseException' }),
    );

    // Act
    const result = await run(deps, ['plan', '--organization']);

    // Assess
    expect(result.code).toBe(EXIT.factsUnavailable);
    expect(result.stderr).toContain(
      'the targets could not be resolved: AWSOrganizationsNotInUseException: not in an organisation',
    );
    expect(result.stdout).toBe('');
  });

  it('exits 64 when the exclusions leave nothing', async () => {
    // Prepare
    const { deps } = fakeRuntime();

    // Act
    const result = await run(deps, ['plan', '--accounts', MEMBER, '--exclude-accounts', MEMBER]);

    // Assess
    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toContain('these flags leave no account-Region to sweep');
  });
});
