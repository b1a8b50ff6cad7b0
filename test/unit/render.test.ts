import { describe, expect, it } from 'vitest';
import { renderAudit, renderReport } from '../../src/cli/render.ts';
import { MARKED_AT_TAG, parsePolicy } from '../../src/config/policy.ts';
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

/** The demo as the CLI wires it, usage reports and the Recycle Bin included. */
async function demoReport(
  options: {
    policy?: Record<string, unknown>;
    mode?: 'plan' | 'apply';
    prepare?: (account: MemoryAccount) => void;
  } = {},
): Promise<{ report: RunReport; account: MemoryAccount }> {
  const account = new MemoryAccount(demoAccount(NOW));
  options.prepare?.(account);
  const report = await runSweep(
    {
      inventory: account,
      actions: account,
      snapshots: { inventory: account, actions: account, sharing: account },
      usage: account,
      recycleBin: account,
      log: recordingLog(),
    },
    {
      policy: parsePolicy({ ...demoPolicyDocument, ...options.policy }),
      region: 'eu-west-1',
      now: NOW,
      mode: options.mode ?? 'plan',
      dryRun: false,
      deadline: { remainingMs: () => 1e9 },
    },
  );
  return { report, account };
}

/** The one line of the table that starts with a resource id. */
function row(text: string, id: string): string {
  const found = text.split('\n').find((line) => line.startsWith(`${id} `));
  if (!found) throw new Error(`no row for ${id}`);
  return found;
}

function imageId(report: RunReport, name: string): string {
  const found = report.decisions.find((decision) => decision.name === name);
  if (!found) throw new Error(`no demo image named ${name}`);
  return found.imageId;
}

function snapshotId(account: MemoryAccount, name: string): string {
  const found = [...account.snapshots.values()].find((snapshot) => snapshot.tags.Name === name);
  if (!found) throw new Error(`no demo snapshot named ${name}`);
  return found.snapshotId;
}

const STEPS = {
  removal: { disableDays: 30 },
  snapshots: { action: 'archive', deleteArchivedAfterDays: 180 },
};

describe('renderReport: the optional steps', () => {
  it('names the disable and archive steps in the ACTION column, and the step a scheduled entry waits for', async () => {
    // Prepare
    const { report, account } = await demoReport({ policy: STEPS });
    const scheduled = report.scheduled.find((entry) => entry.next === 'disable');
    const scheduledSnapshot = report.snapshotScheduled.find((entry) => entry.next === 'archive');
    const mark = report.actions.find((o) => o.action.kind === 'mark')?.action;

    // Act
    const text = renderReport(report, undefined);

    // Assess
    expect(row(text, imageId(report, 'reporting-2025-10-01'))).toMatch(/\s{2,}disable\s{2,}/);
    expect(scheduled?.imageId).toBe(imageId(report, 'reporting-2025-12-01'));
    expect(row(text, scheduled?.imageId ?? '')).toContain(`disable ${scheduled?.removeAfter.slice(0, 10)}`);
    expect(row(text, scheduled?.imageId ?? '')).not.toContain('scheduled ');
    expect(row(text, snapshotId(account, 'orphan-marked-earlier'))).toMatch(/\s{2,}archive\s{2,}/);
    expect(scheduledSnapshot?.snapshotId).toBe(snapshotId(account, 'orphan-in-grace'));
    expect(row(text, scheduledSnapshot?.snapshotId ?? '')).toContain(
      `archive ${scheduledSnapshot?.removeAfter.slice(0, 10)}`,
    );
    // A mark leads to the disabling first; the reason gives the removal date after it.
    const marked = row(text, mark?.imageId ?? '');
    expect(marked).toContain(`mark (disable ${mark?.deprecateAt?.slice(0, 10)})`);
    expect(marked).toContain(`deregistered after ${mark?.removeAfter?.slice(0, 10)} if still eligible`);
  });

  it('keeps "scheduled DATE" for an entry whose removal is its next step', async () => {
    // Prepare
    const { report } = await demoReport();
    const [entry] = report.scheduled;

    // Act
    const text = renderReport(report, undefined);

    // Assess
    expect(entry?.next).toBeUndefined();
    expect(row(text, entry?.imageId ?? '')).toContain(`scheduled ${entry?.removeAfter.slice(0, 10)}`);
  });

  it('shows a usage report requested on its own and an image enabled again on unmark', async () => {
    // Prepare: the pending report is gone (reports expire), so a fresh one is needed.
    const { report } = await demoReport({
      prepare: (account) => account.usageReports.delete('amiur-0de70000000000a02'),
    });
    const waiting = imageId(report, 'web-2025-07-01');
    const unmark = report.actions.find((o) => o.action.kind === 'unmark');
    if (unmark) unmark.action.enable = true;

    // Act
    const text = renderReport(report, undefined);

    // Assess
    expect(report.actions.map((o) => [o.action.kind, o.action.imageId])).toContainEqual([
      'request-usage-report',
      waiting,
    ]);
    expect(row(text, waiting)).toMatch(/\s{2,}request-usage-report\s{2,}shared-use-unknown\s{2,}/);
    expect(row(text, unmark?.action.imageId ?? '')).toContain('unmark + enable');
    expect(text.trimEnd().split('\n').at(-1)).toContain(
      'Also would enable 1 again, request 3 usage reports.',
    );
  });

  it('prints the plan summary scripts parse, with the optional steps only appended', async () => {
    // Prepare
    const { report } = await demoReport({ policy: STEPS });

    // Act
    const last = renderReport(report, undefined).trimEnd().split('\n').at(-1) ?? '';

    // Assess
    expect(last).toMatch(
      /^Plan: \d+ images, \d+ eligible, \d+ kept, \d+ findings; would mark 10, deregister 0 \(0 snapshots\), unmark 2; 1 scheduled, 0 deferred by the cap\. /,
    );
    expect(last.endsWith(' Also would disable 1, request 2 usage reports.')).toBe(true);
  });

  it('prints the apply summary scripts parse, then what the optional steps did', async () => {
    // Prepare
    const { report, account } = await demoReport({ policy: STEPS, mode: 'apply' });

    // Act
    const lines = renderReport(report, undefined).trimEnd().split('\n');

    // Assess
    const last = lines.at(-1) ?? '';
    expect(last).toMatch(
      /^Applied: .*; 10 marked, 0 deregistered, 0 snapshots deleted, 2 unmarked, .* deferred\. /,
    );
    expect(last.endsWith(' Also 1 disabled, 2 usage reports requested.')).toBe(true);
    expect(account.calls.filter((call) => call.startsWith('createUsageReport '))).toHaveLength(2);
    expect(lines.find((line) => line.startsWith('Snapshots: '))).toMatch(/ deferred\. Also 1 archived\.$/);
    expect(lines.find((line) => line.startsWith('Estimated saving: '))).toContain(
      'moved 20 GiB to the archive tier ($0.0125 per GB-month at full size, 90 days at least)',
    );
  });

  it('leaves the summaries as they were when no optional step happens', async () => {
    // Prepare
    const { report } = await demoReport({ mode: 'apply' });
    for (const outcome of report.actions) outcome.action.requestUsageReport = false;

    // Act
    const lines = renderReport(report, undefined).trimEnd().split('\n');

    // Assess
    expect(lines.at(-1)).toMatch(/ deferred\.$/);
    expect(lines.at(-1)).not.toContain('Also');
    expect(lines.find((line) => line.startsWith('Snapshots: '))).toMatch(/ deferred\.$/);
    expect(lines.find((line) => line.startsWith('Estimated saving: '))).not.toContain('archive');
  });
});

describe('renderReport: the undo window', () => {
  it('says until when and by which rule a removal is recoverable, and when its saving starts', async () => {
    // Prepare
    const { report, account } = await demoReport();
    const removal = report.actions.find((o) => o.action.kind === 'deregister');
    const deletion = report.snapshotActions.find((o) => o.action.kind === 'delete');

    // Act
    const lines = renderReport(report, undefined).split('\n');
    const text = lines.join('\n');

    // Assess
    expect(removal?.recovery).toMatchObject({ recoverable: true, rule: 'amiRegion14' });
    const until = removal?.recovery?.recoverable ? removal.recovery.until.slice(0, 10) : '';
    expect(row(text, removal?.action.imageId ?? '')).toContain(
      `recoverable until ${until} (rule amiRegion14)`,
    );
    expect(deletion?.action.snapshotId).toBe(snapshotId(account, 'orphan-marked-earlier'));
    expect(row(text, deletion?.action.snapshotId ?? '')).toContain('(rule snapRegion7)');
    expect(lines.find((line) => line.startsWith('Estimated saving: '))).toContain(
      `removals kept in the Recycle Bin are billed until ${report.cost.billedInRecycleBinUntil?.slice(0, 10)}, so the saving starts then`,
    );
  });

  it('says why a removal is not recoverable', async () => {
    // Prepare
    const { report } = await demoReport();
    const removal = report.actions.find((o) => o.action.kind === 'deregister');
    if (!removal) throw new Error('the demo plan deregisters nothing');
    removal.recovery = {
      recoverable: false,
      reason: 'no Recycle Bin retention rule for images in this Region',
    };

    // Act
    const text = renderReport(report, undefined);

    // Assess
    expect(row(text, removal.action.imageId)).toContain(
      'not recoverable: no Recycle Bin retention rule for images in this Region',
    );
  });

  it('lists the undo-window finding under Account and the snapshot kept for its binned image', async () => {
    // Prepare
    const { report, account } = await demoReport();

    // Act
    const text = renderReport(report, undefined);

    // Assess
    const accountSection = text.slice(text.indexOf('\nAccount:\n'));
    expect(accountSection).toMatch(
      /\n {2}MEDIUM {3}recycle-bin: the Recycle Bin keeps 1 image .* for 14 days but its snapshots for only 7 days/,
    );
    expect(row(text, snapshotId(account, 'snapshot-of-binned-image'))).toMatch(
      /keep\s+-\s+image-in-recycle-bin\s+its image ami-0bad000000000000c is in the Recycle Bin until \d{4}-\d{2}-\d{2}/,
    );
  });
});

describe('renderReport: what was reclaimed', () => {
  const saving = (text: string) =>
    text.split('\n').find((line) => line.startsWith('Estimated saving: ')) ?? '';

  it('a plan says what it would reclaim, images and orphaned snapshots apart', async () => {
    // Prepare
    const { report } = await demoReport();

    // Act
    const line = saving(renderReport(report, undefined));

    // Assess
    expect(line).toContain(
      'Estimated saving: would reclaim 28 GiB from 1 image (1 snapshot, 8 GiB) and 1 orphaned snapshot (20 GiB), up to $1.40/month',
    );
  });

  it('an apply says what it reclaimed, in the past tense, from what succeeded', async () => {
    // Prepare
    const { report } = await demoReport({ mode: 'apply' });

    // Act
    const line = saving(renderReport(report, undefined));

    // Assess
    expect(line).toContain(
      'Estimated saving: reclaimed 28 GiB from 1 image deregistered (1 snapshot, 8 GiB) and 1 orphaned snapshot deleted (20 GiB), up to $1.40/month',
    );
    expect(line).not.toContain('would');
  });

  it('an apply whose orphan deletion failed counts only the image it removed', async () => {
    // Prepare
    const { report } = await demoReport({
      mode: 'apply',
      prepare: (account) =>
        account.failNext('deleteSnapshot', snapshotId(account, 'orphan-marked-earlier'), 'InternalError'),
    });

    // Act
    const line = saving(renderReport(report, undefined));

    // Assess
    expect(report.snapshotActions.find((o) => o.action.kind === 'delete')?.status).toBe('failed');
    expect(line).toContain(
      'reclaimed 8 GiB from 1 image deregistered (1 snapshot, 8 GiB) and 0 orphaned snapshots deleted (0 GiB)',
    );
  });

  it('an apply that removed nothing says so, not what it would reclaim', async () => {
    // Prepare: nothing is past its grace period yet.
    const { report } = await demoReport({
      mode: 'apply',
      prepare: (account) => {
        for (const image of account.images.values()) {
          const { [MARKED_AT_TAG]: _marked, ...tags } = image.tags;
          account.images.set(image.imageId, { ...image, tags });
        }
        for (const snapshot of account.snapshots.values()) delete snapshot.tags[MARKED_AT_TAG];
      },
    });

    // Act
    const line = saving(renderReport(report, undefined));

    // Assess
    expect(report.totals.deregistered + report.totals.snapshotsDeleted).toBe(0);
    expect(line).toContain(
      'reclaimed 0 GiB from 0 images deregistered (0 snapshots, 0 GiB) and 0 orphaned snapshots deleted (0 GiB)',
    );
  });
});
