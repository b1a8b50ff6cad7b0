import { describe, expect, it } from 'vitest';
import { renderAudit, renderReport } from '../../src/cli/render.ts';
import { parsePolicy } from '../../src/config/policy.ts';
import type { AccountAuditReport } from '../../src/core/account-audit.ts';
import type { RunReport } from '../../src/core/report.ts';
import { runSweep } from '../../src/core/sweep.ts';
import { demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import { recordingLog } from './factories.ts';

const NOW = new Date('2026-11-22T06:00:00.000Z');

/**
 * What anyone who may create an image can put in its name or tags: an OSC title change ended by
 * BEL, a clear-screen CSI, a line break that would forge a row, a C1 CSI, a right-to-left override
 * and a NUL.
 */
const HOSTILE = '\u001b]0;pwned\u0007\u001b[2J\r\nami-0forged  keep  -\u009b31m\u202eevil\u0000\ttab\u007f';

/** C0 (tab and newline too: neither belongs inside a cell), DEL, C1 and the bidi controls. */
const CONTROL = /[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/u;

async function hostileReport(): Promise<RunReport> {
  const seed = demoAccount(NOW);
  const images = seed.images.map((image, index) => ({
    ...image,
    name: `${image.name}${HOSTILE}`,
    // A malformed expiry tag is quoted in the finding's reason.
    tags: index % 3 === 0 ? { ...image.tags, 'ami-janitor:expires-at': `soon${HOSTILE}` } : image.tags,
  }));
  const account = new MemoryAccount({ ...seed, images });
  const report = await runSweep(
    {
      inventory: account,
      actions: account,
      snapshots: { inventory: account, actions: account, sharing: account },
      log: recordingLog(),
    },
    {
      policy: parsePolicy(demoPolicyDocument),
      region: 'eu-west-1',
      now: NOW,
      mode: 'plan',
      dryRun: true,
      deadline: { remainingMs: () => 1e9 },
    },
  );
  // Warnings and failure details quote what AWS answered, which can quote a resource's values.
  report.warnings.push(`could not read ${HOSTILE}`);
  const first = report.actions[0];
  if (first) {
    first.warnings.push(`deprecation not set: ${HOSTILE}`);
    first.status = 'failed';
    first.detail = `failed: ${HOSTILE}`;
  }
  const snapshot = report.snapshotDecisions.find((d) => d.rule !== 'in-use');
  if (snapshot) snapshot.reason = `made for image ${HOSTILE}`;
  return report;
}

function auditReport(): AccountAuditReport {
  return {
    accountId: '111122223333',
    region: 'eu-west-1',
    asOf: NOW.toISOString(),
    images: 2,
    snapshots: 1,
    findings: [
      {
        resourceType: 'image',
        resourceId: 'ami-0123456789abcdef0',
        name: `web${HOSTILE}`,
        rule: 'sharing',
        severity: 'critical',
        reason: `public${HOSTILE}`,
      },
      {
        resourceType: 'snapshot',
        resourceId: `snap-0${HOSTILE}`,
        name: '',
        rule: 'sharing',
        severity: 'high',
        reason: 'shared with 444455556666',
      },
    ],
    totals: { critical: 1, high: 1, medium: 0, low: 0 },
    warnings: [`could not read launch permissions of ${HOSTILE}`],
  };
}

describe('renderReport on hostile resource values', () => {
  it('prints no control or bidi character taken from a resource', async () => {
    // Prepare
    const report = await hostileReport();

    // Act
    const text = renderReport(report, undefined);

    // Assess
    const lines = text.split('\n');
    expect(lines.filter((line) => CONTROL.test(line))).toEqual([]);
    expect(text).toContain('pwned');
  });

  it('keeps each image on one row, so a name cannot forge one', async () => {
    // Prepare
    const report = await hostileReport();

    // Act
    const lines = renderReport(report, undefined).split('\n');

    // Assess
    const rows = lines.filter((line) => /^ami-[0-9a-z]+\s/.test(line));
    expect(rows).toHaveLength(report.decisions.length);
    expect(rows.filter((line) => line.startsWith('ami-0forged'))).toEqual([]);
    for (const decision of report.decisions) {
      expect(lines.filter((line) => line.startsWith(`${decision.imageId} `))).toHaveLength(1);
    }
  });

  it('caps the width of the reason column when there is no terminal to fit', async () => {
    // Prepare
    const report = await hostileReport();
    const target = report.decisions[0];
    if (!target) throw new Error('the demo plan has no decisions');
    target.reason = 'r'.repeat(100_000);

    // Act
    const lines = renderReport(report, undefined).split('\n');

    // Assess
    const row = lines.find((line) => line.startsWith(`${target.imageId} `)) ?? '';
    expect(row).toContain('[truncated, 100000 chars]');
    expect(row.length).toBeLessThan(600);
  });
});

describe('renderAudit on hostile resource values', () => {
  it('prints no control or bidi character taken from a resource, one row per finding', () => {
    // Prepare
    const report = auditReport();

    // Act
    const lines = renderAudit(report, undefined).split('\n');

    // Assess
    expect(lines.filter((line) => CONTROL.test(line))).toEqual([]);
    expect(lines.filter((line) => /^(CRITICAL|HIGH)\s/.test(line))).toHaveLength(2);
    expect(lines.some((line) => line.includes('could not read launch permissions of'))).toBe(true);
  });
});
