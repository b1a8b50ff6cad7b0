import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT, main } from '../../src/cli/main.ts';
import { type Policy, parsePolicy } from '../../src/config/policy.ts';
import {
  type AccountAuditReport,
  type AuditFinding,
  auditAccount,
  type TrailHealth,
  type TrailHealthCheck,
} from '../../src/core/account-audit.ts';
import { DEMO_ACCOUNT_ID, demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import type { Severity } from '../../src/model.ts';
import { recordingLog } from './factories.ts';

const NOW = new Date('2026-11-22T06:00:00.000Z');
const REGION = 'eu-west-1';
const OUTSIDER = '999988887777';
const SEVERITY_ORDER: readonly Severity[] = ['critical', 'high', 'medium', 'low'];

const scratch = mkdtempSync(join(tmpdir(), 'ami-janitor-audit-'));

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

/** A trail check that answers `health`, or throws it when it is an Error. */
function trailCheck(health: Partial<TrailHealth> | Error = {}): TrailHealthCheck {
  return {
    check: async (region) => {
      if (health instanceof Error) throw health;
      return { ok: true, region, reason: `trail main logs management events in ${region}`, ...health };
    },
  };
}

function setup(options: { trailHealth?: TrailHealthCheck; policy?: (policy: Policy) => Policy } = {}) {
  const account = new MemoryAccount(demoAccount(NOW));
  const log = recordingLog();
  const basePolicy = parsePolicy(demoPolicyDocument);
  const policy = options.policy ? options.policy(basePolicy) : basePolicy;
  const run = () =>
    auditAccount(
      {
        inventory: account,
        snapshots: account,
        sharing: account,
        trailHealth: options.trailHealth ?? trailCheck(),
        log,
      },
      { policy, region: REGION, now: NOW },
    );
  return { account, log, run };
}

function imageNamed(account: MemoryAccount, name: string): string {
  const found = [...account.images.values()].find((candidate) => candidate.name === name);
  if (!found) throw new Error(`no demo image named ${name}`);
  return found.imageId;
}

/** The demo's public snapshot: the first one of web-2026-06-15. */
function publicSnapshot(account: MemoryAccount): string {
  const id = account.images.get(imageNamed(account, 'web-2026-06-15'))?.snapshotIds[0];
  if (!id) throw new Error('the demo image web-2026-06-15 has no snapshot');
  return id;
}

function findingsFor(report: AccountAuditReport, resourceId: string, rule?: string): AuditFinding[] {
  return report.findings.filter(
    (finding) => finding.resourceId === resourceId && (rule === undefined || finding.rule === rule),
  );
}

const BLIND_REASON = `no CloudTrail trail logs management write events in ${REGION}: real-time audit is blind in ${REGION}`;

describe('auditAccount on the demo account', () => {
  it('finds the public image, the over-shared image, the public snapshot and the missing tags', async () => {
    // Prepare
    const { account, run } = setup();

    // Act
    const report = await run();

    // Assess
    expect(report).toMatchObject({ accountId: DEMO_ACCOUNT_ID, region: REGION, asOf: NOW.toISOString() });
    expect(report.images).toBe(account.images.size);
    expect(report.snapshots).toBe(account.snapshots.size);
    expect(report.findings).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          resourceType: 'image',
          resourceId: imageNamed(account, 'api-v3'),
          name: 'api-v3',
          rule: 'sharing',
          severity: 'critical',
        }),
        expect.objectContaining({
          resourceType: 'image',
          resourceId: imageNamed(account, 'api-v4'),
          rule: 'sharing',
          severity: 'high',
          reason: expect.stringContaining(`account ${OUTSIDER}`),
        }),
        expect.objectContaining({
          resourceType: 'snapshot',
          resourceId: publicSnapshot(account),
          rule: 'sharing',
          severity: 'critical',
        }),
        expect.objectContaining({
          resourceType: 'image',
          resourceId: imageNamed(account, 'experiment-2026-10-01'),
          rule: 'required-tags',
          severity: 'medium',
          reason: 'missing required tags: Owner, CostCenter',
        }),
      ]),
    );
    expect(report.warnings).toEqual([]);
    expect(report.trail).toMatchObject({ ok: true, region: REGION });
  });

  it('sorts findings critical first and totals them by severity', async () => {
    // Prepare
    const { run } = setup();

    // Act
    const report = await run();

    // Assess
    const ranks = report.findings.map((finding) => SEVERITY_ORDER.indexOf(finding.severity));
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
    expect(report.findings[0]?.severity).toBe('critical');
    for (const severity of SEVERITY_ORDER) {
      expect(report.totals[severity]).toBe(report.findings.filter((f) => f.severity === severity).length);
    }
    expect(report.totals.critical).toBe(2);
  });

  it('logs every finding once, under imageId or snapshotId', async () => {
    // Prepare
    const { account, log, run } = setup();

    // Act
    const report = await run();

    // Assess
    const logged = log.entries.filter((entry) => entry.message === 'finding');
    expect(logged).toHaveLength(report.findings.length);
    expect(logged.map((entry) => entry.extra[0])).toContainEqual(
      expect.objectContaining({ snapshotId: publicSnapshot(account), severity: 'critical', verdict: 'flag' }),
    );
  });

  it('raises one high trail-health finding when no trail feeds the real-time audit', async () => {
    // Prepare
    const { run } = setup({ trailHealth: trailCheck({ ok: false, reason: BLIND_REASON }) });

    // Act
    const report = await run();

    // Assess
    const trail = report.findings.filter((finding) => finding.rule === 'trail-health');
    expect(trail).toEqual([
      {
        resourceType: 'account',
        resourceId: DEMO_ACCOUNT_ID,
        name: REGION,
        rule: 'trail-health',
        severity: 'high',
        reason: BLIND_REASON,
      },
    ]);
    expect(trail[0]?.reason).toContain(`real-time audit is blind in ${REGION}`);
    expect(report.trail?.ok).toBe(false);
  });

  it('reports a trail check that throws as a warning, and still audits everything else', async () => {
    // Prepare
    const denied = Object.assign(new Error('not allowed'), { name: 'AccessDeniedException' });
    const { run } = setup({ trailHealth: trailCheck(denied) });

    // Act
    const report = await run();

    // Assess
    expect(report.warnings).toEqual(['CloudTrail trails could not be checked (AccessDeniedException)']);
    expect(report.findings.some((finding) => finding.rule === 'trail-health')).toBe(false);
    expect(report.trail).toBeUndefined();
    expect(report.totals.critical).toBe(2);
  });

  it('names an image whose launch permissions cannot be read, and audits the others', async () => {
    // Prepare
    const { account, run } = setup();
    const shared = imageNamed(account, 'api-v4');
    const baseline = await run();
    account.failNext('imageLaunchPermissions', shared, 'AccessDenied');

    // Act
    const report = await run();

    // Assess
    expect(report.warnings).toEqual([`image ${shared}: launch permissions not readable (AccessDenied)`]);
    expect(report.images).toBe(baseline.images);
    // Only what needed the unreadable permissions is missing; every other finding is still there.
    expect(report.findings).toEqual(baseline.findings.filter((finding) => finding.resourceId !== shared));
  });

  it('names a snapshot whose permissions cannot be read', async () => {
    // Prepare
    const { account, run } = setup();
    const snapshotId = publicSnapshot(account);
    account.failNext('snapshotPermissions', snapshotId, 'AccessDenied');

    // Act
    const report = await run();

    // Assess
    expect(report.warnings).toEqual([`snapshot ${snapshotId}: sharing not readable (AccessDenied)`]);
    expect(findingsFor(report, snapshotId)).toEqual([]);
    expect(report.totals.critical).toBe(1);
  });

  it.each([
    // The demo shares one image and one orphaned snapshot with the same outside account.
    { case: 'allowlisted', allowedAccounts: [OUTSIDER], imageFindings: 0, high: 0 },
    { case: 'not allowlisted', allowedAccounts: ['123456789012'], imageFindings: 1, high: 2 },
  ])(
    'an image and a snapshot shared with an account that is $case raise $high high findings',
    async ({ allowedAccounts, imageFindings, high }) => {
      // Prepare
      const { account, run } = setup({
        // Added to the demo's own allowlist (its partner account), not in place of it.
        policy: (policy) => ({
          ...policy,
          sharing: {
            ...policy.sharing,
            allowedAccounts: [...policy.sharing.allowedAccounts, ...allowedAccounts],
          },
        }),
      });

      // Act
      const report = await run();

      // Assess
      expect(findingsFor(report, imageNamed(account, 'api-v4'), 'sharing')).toHaveLength(imageFindings);
      expect(report.totals.high).toBe(high);
    },
  );

  it('changes nothing in the account', async () => {
    // Prepare
    const { account, run } = setup();

    // Act
    await run();

    // Assess
    expect(account.calls).toEqual([]);
  });
});

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in-process with captured streams and a non-interactive stdin. */
async function cli(...argv: string[]): Promise<CliRun> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const stdin = Object.assign(new PassThrough(), { isTTY: false });
  const out: string[] = [];
  const err: string[] = [];
  stdout.setEncoding('utf8').on('data', (chunk: string) => out.push(chunk));
  stderr.setEncoding('utf8').on('data', (chunk: string) => err.push(chunk));
  const code = await main(argv, { stdout, stderr, stdin, env: {} });
  // Let the streams flush what main wrote before it returned.
  await new Promise((done) => setImmediate(done));
  return { code, stdout: out.join(''), stderr: err.join('') };
}

function parseReport(stdout: string): AccountAuditReport {
  return JSON.parse(stdout) as AccountAuditReport;
}

describe('ami-janitor audit', () => {
  it('--demo --json exits 2 on the critical public image and prints the report as JSON', async () => {
    // Act
    const result = await cli('audit', '--demo', '--json');

    // Assess
    expect(result.code).toBe(EXIT.criticalFinding);
    const report = parseReport(result.stdout);
    expect(report.totals.critical).toBeGreaterThanOrEqual(1);
    expect(report.findings).toContainEqual(
      expect.objectContaining({ name: 'api-v3', rule: 'sharing', severity: 'critical' }),
    );
    expect(report.findings).toContainEqual(
      expect.objectContaining({ name: 'api-v4', rule: 'sharing', severity: 'high' }),
    );
  });

  it('still exits 2 with a config that allowlists the outside account: the public image remains', async () => {
    // Prepare
    const config = join(scratch, 'allowlist.yml');
    writeFileSync(config, `sharing:\n  allowedAccounts: ["${OUTSIDER}"]\n`);

    // Act
    const result = await cli('audit', '--demo', '--json', '--config', config);

    // Assess
    expect(result.code).toBe(EXIT.criticalFinding);
    const report = parseReport(result.stdout);
    expect(report.findings).not.toContainEqual(expect.objectContaining({ name: 'api-v4', rule: 'sharing' }));
    expect(report.totals.critical).toBeGreaterThanOrEqual(1);
  });

  it('prints a table by default, with the critical finding in it', async () => {
    // Act
    const result = await cli('audit', '--demo');

    // Assess
    expect(result.code).toBe(EXIT.criticalFinding);
    expect(result.stdout).toMatch(/^CRITICAL\s+ami-\S+\s+api-v3\s+sharing/m);
    expect(result.stdout).toMatch(/^Audit: \d+ images, \d+ snapshots; 2 critical/m);
  });
});
