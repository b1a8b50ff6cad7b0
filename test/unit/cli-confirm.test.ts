import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { type AccountPorts, type CliDeps, EXIT, main, planChanges } from '../../src/cli/main.ts';
import type { RunReport } from '../../src/core/report.ts';
import { demoAccount } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import type { Plan } from '../../src/model.ts';

const scratch = mkdtempSync(join(tmpdir(), 'ami-janitor-confirm-'));

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI on the demo account kept in `account`; `answer` makes stdin a terminal that types it. */
async function run(argv: string[], account: MemoryAccount, answer?: string): Promise<Run> {
  const ports: AccountPorts = {
    inventory: account,
    actions: account,
    snapshots: account,
    sharing: account,
    trailHealth: { check: async (region) => ({ ok: true, region, reason: 'trail on' }) },
    snapshotPorts: { inventory: account, sharing: account, actions: account },
    usage: account,
    recycleBin: account,
  };
  const deps: CliDeps = { accountPorts: async () => ports };
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

const demo = () => new MemoryAccount(demoAccount(new Date()));

/** Writes to the account: every call but the reads. */
function writes(account: MemoryAccount): string[] {
  return account.calls.filter((call) => !/^(describe|list|get|find)/i.test(call));
}

/** How many of the plan's actions are of each kind, images and snapshots apart. */
function kinds(report: RunReport): { images: Map<string, number>; snapshots: Map<string, number> } {
  const tally = (list: readonly { action: { kind: string } }[]) => {
    const counts = new Map<string, number>();
    for (const { action } of list) counts.set(action.kind, (counts.get(action.kind) ?? 0) + 1);
    return counts;
  };
  return { images: tally(report.actions), snapshots: tally(report.snapshotActions) };
}

describe('apply on a terminal asks first', () => {
  it('lists the image and the snapshot changes of the plan in the question', async () => {
    // Prepare
    const plan = JSON.parse((await run(['plan', '--json'], demo())).stdout) as RunReport;
    const { images, snapshots } = kinds(plan);
    const withImages = plan.actions.reduce((sum, o) => sum + (o.action.snapshotIds?.length ?? 0), 0);

    // Act
    const result = await run(['apply'], demo(), 'n');

    // Assess
    const n = (counts: Map<string, number>, kind: string) => counts.get(kind) ?? 0;
    expect(result.stderr).toContain('About to change account 111122223333 in eu-west-1:\n');
    expect(result.stderr).toContain(
      `  images:    mark ${n(images, 'mark')}, deregister ${n(images, 'deregister')}, unmark ${n(images, 'unmark')}`,
    );
    expect(result.stderr).toContain(
      `  snapshots: mark ${n(snapshots, 'mark')}, delete ${n(snapshots, 'delete')}, unmark ${n(snapshots, 'unmark')}; ${withImages} more deleted with their images\n`,
    );
    expect(n(snapshots, 'mark') + n(snapshots, 'delete')).toBeGreaterThan(0);
    expect(result.stderr).toContain('Proceed? [y/N] ');
  });

  it('declined: prints that nothing changed, no Apply table, exits 4, and changes nothing', async () => {
    // Prepare
    const account = demo();

    // Act
    const result = await run(['apply'], account, 'n');

    // Assess
    expect(result.code).toBe(EXIT.declined);
    expect(EXIT.declined).toBe(4);
    expect(result.stdout).toBe('Not confirmed: nothing changed.\n');
    expect(result.stdout).not.toMatch(/^Apply/m);
    expect(writes(account)).toEqual([]);
  });

  it.each(['', 'no', 'maybe', 'yess'])('anything but y or yes (%j) declines', async (answer) => {
    // Prepare
    const account = demo();

    // Act
    const result = await run(['apply'], account, answer);

    // Assess
    expect(result.code).toBe(EXIT.declined);
    expect(writes(account)).toEqual([]);
  });

  it('declined with --json: the declined plan is still the document on stdout, every action planned', async () => {
    // Prepare
    const account = demo();

    // Act
    const result = await run(['apply', '--json'], account, 'n');

    // Assess
    expect(result.code).toBe(EXIT.declined);
    const report = JSON.parse(result.stdout) as RunReport;
    expect(report.actions.every((o) => o.status === 'planned')).toBe(true);
    expect(report.warnings).toContain('apply was not confirmed: nothing was changed');
    expect(result.stderr).toContain('Not confirmed: nothing changed.');
    expect(writes(account)).toEqual([]);
  });

  it('declined with --html: no page is written', async () => {
    // Prepare
    const file = join(scratch, 'declined.html');

    // Act
    const result = await run(['apply', '--html', file], demo(), 'n');

    // Assess
    expect(result.code).toBe(EXIT.declined);
    expect(existsSync(file)).toBe(false);
    expect(result.stdout).toContain('No HTML report was written');
  });

  it('confirmed with y: applies, and says what was reclaimed', async () => {
    // Prepare
    const account = demo();

    // Act
    const result = await run(['apply'], account, 'y');

    // Assess
    expect(result.code).toBe(EXIT.ok);
    expect(result.stdout).toMatch(/^Apply for account /m);
    expect(result.stdout).toMatch(/^Estimated saving: reclaimed \d/m);
    expect(result.stdout).not.toContain('would reclaim');
    expect(writes(account).length).toBeGreaterThan(0);
  });

  it('--yes does not ask', async () => {
    // Act
    const result = await run(['apply', '--yes'], demo(), '');

    // Assess
    expect(result.code).toBe(EXIT.ok);
    expect(result.stderr).not.toContain('Proceed?');
  });
});

describe('planChanges', () => {
  it('counts the optional steps only when planned, and says when snapshots were not examined', () => {
    // Prepare
    const plan: Plan = {
      accountId: '111122223333',
      region: 'eu-west-1',
      asOf: new Date().toISOString(),
      inventorySize: 3,
      decisions: [],
      actions: [
        { kind: 'disable', imageId: 'ami-1', name: 'a', rule: 'age', reason: 'old' },
        {
          kind: 'deregister',
          imageId: 'ami-2',
          name: 'b',
          rule: 'age',
          reason: 'old',
          snapshotIds: ['s1', 's2'],
        },
        { kind: 'mark', imageId: 'ami-3', name: 'c', rule: 'age', reason: 'old', requestUsageReport: true },
      ],
      deferred: [],
      scheduled: [],
      cap: { limit: 10, eligible: 2, capped: false },
    };

    // Act
    const changes = planChanges(plan);

    // Assess
    expect(changes).toEqual({
      images: 'mark 1, deregister 1, unmark 0, disable 1, request 1 usage report',
      snapshots: 'not examined; 2 more deleted with their images',
    });
  });
});
