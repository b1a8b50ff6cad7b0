import { describe, expect, it } from 'vitest';
import { parsePolicy } from '../../src/config/policy.ts';
import type { RunReport } from '../../src/core/report.ts';
import { runSweep } from '../../src/core/sweep.ts';
import { demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import type { Severity } from '../../src/model.ts';
import { SLACK_LIMITS } from '../../src/notify/blocks.ts';
import { digestMessage } from '../../src/notify/digest.ts';
import type { SlackMessage } from '../../src/notify/slack.ts';
import { daysAfter, recordingLog } from '../unit/factories.ts';

const NOW = new Date('2026-11-22T06:00:00.000Z');

function demo(now: Date = NOW) {
  const account = new MemoryAccount(demoAccount(now));
  const byName = (name: string): string => {
    const found = [...account.images.values()].find((image) => image.name === name);
    if (!found) throw new Error(`no demo image named ${name}`);
    return found.imageId;
  };
  return { account, byName };
}

async function sweep(
  account: MemoryAccount,
  options: { now?: Date; dryRun?: boolean; mode?: 'plan' | 'apply' } = {},
): Promise<RunReport> {
  return runSweep(
    {
      inventory: account,
      actions: account,
      snapshots: { inventory: account, actions: account, sharing: account },
      log: recordingLog(),
    },
    {
      policy: parsePolicy(demoPolicyDocument),
      region: 'eu-west-1',
      now: options.now ?? NOW,
      mode: options.mode ?? 'apply',
      dryRun: options.dryRun ?? true,
      deadline: { remainingMs: () => 1e9 },
    },
  );
}

/** Every mrkdwn or plain text in the message: header, section text and fields, context elements. */
function texts(message: SlackMessage): string[] {
  return message.blocks.flatMap((block): string[] => {
    if (block.type === 'header') return [block.text.text];
    if (block.type === 'section')
      return [...(block.text ? [block.text.text] : []), ...(block.fields ?? []).map((f) => f.text)];
    if (block.type === 'context') return block.elements.map((element) => element.text);
    return [];
  });
}

function field(message: SlackMessage, title: string): string {
  const found = message.blocks
    .flatMap((block) => (block.type === 'section' ? (block.fields ?? []) : []))
    .find((candidate) => candidate.text.startsWith(`*${title}*`));
  if (!found) throw new Error(`no field titled ${title}`);
  return found.text;
}

function sectionStartingWith(message: SlackMessage, start: string): string {
  const found = message.blocks.find(
    (block) => block.type === 'section' && block.text?.text.startsWith(start) === true,
  );
  if (found?.type !== 'section' || !found.text) throw new Error(`no section starting ${start}`);
  return found.text.text;
}

/** "35 examined · 23 kept" → { examined: 35, kept: 23 }. */
function counts(text: string): Record<string, number> {
  const found: Record<string, number> = {};
  for (const match of text.matchAll(/([\d,]+(?:\.\d+)?) ([a-z]+)/g)) {
    const [, value, label] = match;
    if (value !== undefined && label !== undefined) found[label] = Number(value.replaceAll(',', ''));
  }
  return found;
}

function usd(value: number): string {
  return `$${value.toFixed(2)}`;
}

function emptyReport(overrides: Partial<RunReport> = {}): RunReport {
  return {
    mode: 'apply',
    dryRun: false,
    accountId: '111122223333',
    region: 'eu-west-1',
    asOf: NOW.toISOString(),
    startedAt: NOW.toISOString(),
    finishedAt: NOW.toISOString(),
    complete: true,
    totals: {
      images: 0,
      kept: 0,
      eligible: 0,
      findings: 0,
      pending: 0,
      marked: 0,
      unmarked: 0,
      deregistered: 0,
      alreadyGone: 0,
      skipped: 0,
      failed: 0,
      notReached: 0,
      scheduled: 0,
      deferred: 0,
      snapshotsDeleted: 0,
      snapshotsFailed: 0,
      snapshots: 0,
      snapshotsKept: 0,
      orphans: 0,
      snapshotsMarked: 0,
      snapshotsUnmarked: 0,
      orphansDeleted: 0,
      snapshotsScheduled: 0,
      snapshotsDeferred: 0,
    },
    cap: { limit: 100, eligible: 0, capped: false },
    decisions: [],
    actions: [],
    scheduled: [],
    deferred: [],
    findings: [],
    accountFindings: [],
    snapshotDecisions: [],
    snapshotActions: [],
    snapshotScheduled: [],
    snapshotDeferred: [],
    cost: {
      pricePerGbMonthUsd: 0.05,
      reclaimedGiB: 0,
      reclaimableGiB: 0,
      scheduledGiB: 0,
      archivedGiB: 0,
      archivePricePerGbMonthUsd: 0.0125,
      estimatedMonthlySavingUsd: 0,
      note: 'upper bound',
    },
    warnings: [],
    ...overrides,
  };
}

function expectWithinSlackLimits(message: SlackMessage): void {
  expect(message.blocks.length).toBeLessThanOrEqual(SLACK_LIMITS.blocks);
  expect(message.text.length).toBeLessThanOrEqual(SLACK_LIMITS.fallbackText);
  for (const block of message.blocks) {
    if (block.type === 'header') expect(block.text.text.length).toBeLessThanOrEqual(SLACK_LIMITS.headerText);
    if (block.type === 'section') {
      if (block.text) {
        expect(block.text.text.length).toBeLessThanOrEqual(SLACK_LIMITS.sectionText);
        // Cut by item count before the block helpers had to clip the text.
        expect(block.text.text.endsWith('…')).toBe(false);
      }
      for (const f of block.fields ?? []) expect(f.text.length).toBeLessThanOrEqual(SLACK_LIMITS.fieldText);
    }
    if (block.type === 'context') {
      for (const element of block.elements)
        expect(element.text.length).toBeLessThanOrEqual(SLACK_LIMITS.contextText);
    }
  }
}

describe('digestMessage on the demo account', () => {
  it('states the same totals as the report (apply, dry run)', async () => {
    // Prepare
    const { account } = demo();
    const report = await sweep(account);
    const t = report.totals;

    // Act
    const message = digestMessage(report);

    // Assess
    const images = counts(field(message, 'Images'));
    const snapshots = counts(field(message, 'Snapshots'));
    expect(images).toMatchObject({
      examined: t.images,
      kept: t.kept,
      eligible: t.eligible,
      marked: t.marked,
      deregistered: t.deregistered,
      unmarked: t.unmarked,
      failed: t.failed,
    });
    expect(snapshots).toMatchObject({
      examined: t.snapshots,
      orphans: t.orphans,
      marked: t.snapshotsMarked,
      deleted: t.snapshotsDeleted,
      failed: t.snapshotsFailed,
    });
    // Pending is split by kind in the digest; together the halves are the report's total.
    expect(t.pending).toBeGreaterThan(0);
    expect((images.pending ?? 0) + (snapshots.pending ?? 0)).toBe(t.pending);
    expect(report.cost.reclaimedGiB).toBe(0);
    expect(report.cost.reclaimableGiB).toBeGreaterThan(0);
    expect(field(message, 'Reclaimed')).toContain(`would reclaim ${report.cost.reclaimableGiB} GiB`);
    expect(field(message, 'Reclaimed')).not.toContain('0 GiB reclaimed');
    expect(field(message, 'Estimated monthly saving')).toContain(usd(report.cost.estimatedMonthlySavingUsd));
    expect(texts(message).some((text) => /upper bound.*incremental/.test(text))).toBe(true);
    expectWithinSlackLimits(message);
  });

  it('names the account, Region and mode in the header and the one-line fallback', async () => {
    // Prepare
    const { account } = demo();
    const dryRun = await sweep(account);
    const plan = await sweep(account, { mode: 'plan' });

    // Act
    const dryRunMessage = digestMessage(dryRun);
    const planMessage = digestMessage(plan);

    // Assess
    expect(dryRunMessage.blocks[0]).toMatchObject({
      type: 'header',
      text: { text: 'ami-janitor sweep: 111122223333 / eu-west-1 (dry run)' },
    });
    expect(planMessage.blocks[0]).toMatchObject({
      text: { text: 'ami-janitor sweep: 111122223333 / eu-west-1 (plan)' },
    });
    expect(dryRunMessage.text).not.toContain('\n');
    expect(dryRunMessage.text).toContain('111122223333/eu-west-1');
    expect(dryRunMessage.text).toContain(`images ${dryRun.totals.images} examined`);
    expect(dryRunMessage.text).toContain(usd(dryRun.cost.estimatedMonthlySavingUsd));
  });

  it('lists images scheduled for removal with their dates, earliest first, the rest counted', async () => {
    // Prepare
    const { account } = demo();
    const report = await sweep(account);
    const marks = report.actions.filter((outcome) => outcome.action.kind === 'mark');
    const total = report.scheduled.length + marks.length;

    // Act
    const text = sectionStartingWith(digestMessage(report), '*Images scheduled for removal*');

    // Assess
    const lines = text.split('\n');
    expect(lines[0]).toBe(`*Images scheduled for removal* (${total})`);
    expect(lines.filter((line) => line.startsWith('• '))).toHaveLength(Math.min(total, 10));
    if (total > 10) expect(lines.at(-1)).toBe(`…and ${total - 10} more`);
    const [earlier] = report.scheduled;
    expect(earlier).toBeDefined();
    expect(lines[1]).toContain(`\`${earlier?.imageId}\``);
    expect(lines[1]).toContain(`after ${earlier?.removeAfter.slice(0, 10)}`);
    expect(lines[1]).toContain(`marked ${earlier?.markedAt.slice(0, 10)}`);
    const [firstMark] = marks;
    expect(text).toContain(`\`${firstMark?.action.imageId}\``);
    expect(text).toContain(`after ${firstMark?.action.removeAfter?.slice(0, 10)} (would be marked)`);
  });

  it('groups findings by severity with counts that match the report', async () => {
    // Prepare
    const { account } = demo();
    const report = await sweep(account);
    const all: { severity: Severity }[] = [...report.findings, ...report.accountFindings];
    const tally = (severity: Severity) => all.filter((finding) => finding.severity === severity).length;

    // Act
    const message = digestMessage(report);

    // Assess
    const heading = sectionStartingWith(message, '*Findings by severity*');
    expect(heading).toContain(`(${report.totals.findings})`);
    expect(counts(heading)).toEqual({
      critical: tally('critical'),
      high: tally('high'),
      medium: tally('medium'),
      low: tally('low'),
    });
    const critical = sectionStartingWith(message, ':rotating_light: *Critical*');
    for (const finding of report.findings.filter((f) => f.severity === 'critical')) {
      expect(critical).toContain(finding.imageId);
    }
  });

  it('reports what a real apply removed and reclaimed, with no "would"', async () => {
    // Prepare
    const { account } = demo();
    await sweep(account, { dryRun: false });
    const report = await sweep(account, { dryRun: false, now: daysAfter(NOW, 8) });

    // Act
    const message = digestMessage(report);

    // Assess
    expect(report.totals.deregistered).toBeGreaterThan(0);
    expect(report.cost.reclaimedGiB).toBeGreaterThan(0);
    expect(message.blocks[0]).toMatchObject({
      text: { text: 'ami-janitor sweep: 111122223333 / eu-west-1' },
    });
    expect(counts(field(message, 'Images'))).toMatchObject({
      deregistered: report.totals.deregistered,
      marked: report.totals.marked,
    });
    expect(counts(field(message, 'Snapshots'))).toMatchObject({ deleted: report.totals.snapshotsDeleted });
    expect(field(message, 'Reclaimed')).toContain(`${report.cost.reclaimedGiB} GiB reclaimed`);
    expect(field(message, 'Reclaimed')).not.toContain('would');
    const removed = sectionStartingWith(message, '*Removed this run*');
    expect(removed).toContain(`(${report.totals.deregistered + report.totals.orphansDeleted})`);
  });

  it('lists failures with their error code', async () => {
    // Prepare
    const { account, byName } = demo();
    const apiV1 = byName('api-v1');
    const due = byName('reporting-2025-10-01');
    account.failNext('tagImage', apiV1, 'UnauthorizedOperation', 'not allowed to tag');
    account.failNext('deregisterImage', due, 'RequestLimitExceeded', 'slow down');
    const swept = await sweep(account, { dryRun: false });
    const report: RunReport = {
      ...swept,
      snapshotActions: [
        ...swept.snapshotActions,
        {
          action: {
            kind: 'delete',
            snapshotId: 'snap-0orphan',
            rule: 'snapshot-orphan',
            reason: 'r',
            sizeGiB: 8,
          },
          status: 'failed',
          errorCode: 'InvalidSnapshot.Locked',
          detail: 'snapshot is locked',
        },
      ],
    };

    // Act
    const text = sectionStartingWith(digestMessage(report), ':x: *Failures*');

    // Assess
    expect(report.totals.failed).toBe(2);
    expect(text).toContain('(3)');
    expect(text).toMatch(new RegExp(`mark \`${apiV1}\`.*\`UnauthorizedOperation\``));
    expect(text).toMatch(new RegExp(`deregister \`${due}\`.*\`RequestLimitExceeded\``));
    expect(text).toContain('delete snapshot `snap-0orphan` — `InvalidSnapshot.Locked`: snapshot is locked');
  });
});

describe('digestMessage limits', () => {
  it('truncates long lists with "…and N more" and stays within Block Kit limits', () => {
    // Prepare
    const severities: Severity[] = ['critical', 'high', 'medium', 'low'];
    const report = emptyReport({
      accountId: '1'.repeat(200),
      scheduled: Array.from({ length: 200 }, (_, i) => ({
        imageId: `ami-${String(i).padStart(17, '0')}`,
        name: `image-${i}-${'x'.repeat(400)}`,
        removeAfter: '2026-12-01T00:00:00.000Z',
        markedAt: '2026-11-24T00:00:00.000Z',
      })),
      findings: Array.from({ length: 120 }, (_, i) => ({
        imageId: `ami-${String(i).padStart(17, '0')}`,
        name: `image-${i}`,
        rule: 'required-tags',
        severity: severities[i % 4] ?? 'low',
        reason: `missing required tags: ${'Owner, '.repeat(100)}`,
      })),
      deferred: Array.from({ length: 150 }, (_, i) => ({
        imageId: `ami-d${i}`,
        name: `deferred-${i}`,
        reason: 'blast-radius cap',
      })),
      snapshotScheduled: Array.from({ length: 75 }, (_, i) => ({
        snapshotId: `snap-${i}`,
        sizeGiB: 8,
        removeAfter: '2026-12-01T00:00:00.000Z',
        markedAt: '2026-11-24T00:00:00.000Z',
      })),
      warnings: Array.from({ length: 60 }, (_, i) => `warning ${i}: ${'w'.repeat(1000)}`),
    });

    // Act
    const message = digestMessage(report);

    // Assess
    expectWithinSlackLimits(message);
    expect(sectionStartingWith(message, '*Images scheduled for removal* (200)')).toMatch(/\n…and 190 more$/);
    expect(sectionStartingWith(message, '*Snapshots scheduled for removal* (75)')).toMatch(/\n…and 65 more$/);
    expect(sectionStartingWith(message, '*Findings by severity* (120)')).toBeDefined();
    for (const [marker, label] of [
      [':rotating_light:', 'Critical'],
      [':warning:', 'High'],
      [':large_orange_diamond:', 'Medium'],
      [':information_source:', 'Low'],
    ] as const) {
      expect(sectionStartingWith(message, `${marker} *${label}* (30)`)).toMatch(/\n…and 25 more$/);
    }
    expect(sectionStartingWith(message, '*Deferred by the blast-radius cap: images* (150')).toMatch(
      /\n…and 140 more$/,
    );
    // 60 warnings of 1,000 characters: each clipped to one item's share, then cut by count.
    expect(sectionStartingWith(message, '*Warnings* (60)')).toMatch(/\n…and 50 more$/);
  });

  it('escapes names so they cannot mention a channel or carry a link', () => {
    // Prepare
    const report = emptyReport({
      scheduled: [
        {
          imageId: 'ami-0evil',
          name: '<!channel> <https://evil.example|click>',
          removeAfter: '2026-12-01T00:00:00.000Z',
          markedAt: '2026-11-24T00:00:00.000Z',
        },
      ],
    });

    // Act
    const all = texts(digestMessage(report)).join('\n');

    // Assess
    expect(all).not.toContain('<!channel>');
    expect(all).toContain('&lt;!channel&gt;');
  });

  it('replaces control and bidi characters in names, reasons and warnings', () => {
    // Prepare
    const hostile = '\u001b]0;pwned\u0007\r\n• `ami-0forged` fake\u009b\u202e\u0000';
    const report = emptyReport({
      accountId: `111122223333${hostile}`,
      scheduled: [
        {
          imageId: 'ami-0evil',
          name: `web${hostile}`,
          removeAfter: '2026-12-01T00:00:00.000Z',
          markedAt: '2026-11-24T00:00:00.000Z',
        },
      ],
      findings: [
        {
          imageId: 'ami-0evil',
          name: `web${hostile}`,
          rule: 'expiry-tag',
          severity: 'low',
          reason: `tag x=${hostile}`,
        },
      ],
      deferred: [{ imageId: 'ami-0late', name: `late${hostile}`, reason: `cap${hostile}` }],
      warnings: [`could not read ${hostile}`],
    });

    // Act
    const message = digestMessage(report);

    // Assess
    for (const text of [message.text, ...texts(message)]) {
      // Line breaks between a list's items are the layout's own; none may come from a value.
      expect(text.replaceAll('\n', '')).not.toMatch(/[\p{Cc}\u202a-\u202e\u2066-\u2069]/u);
    }
    const all = texts(message).join('\n');
    // The hostile text stays on one line: its forged bullet never starts a line of its own.
    const forged = all.split('\n').filter((line) => line.includes('ami-0forged'));
    expect(forged.length).toBeGreaterThanOrEqual(5);
    for (const line of forged) expect(line).toContain('pwned');
    expect(all.split('\n').filter((line) => line.startsWith('• `ami-0forged`'))).toEqual([]);
    expect(message.blocks[0]?.type === 'header' && message.blocks[0].text.text).not.toContain('\n');
  });

  it('says only the counts when there is nothing to list', () => {
    // Prepare
    const report = emptyReport();

    // Act
    const message = digestMessage(report);

    // Assess
    expect(message.blocks.map((block) => block.type)).toEqual([
      'header',
      'section',
      'context',
      'divider',
      'context',
    ]);
    expect(field(message, 'Reclaimed')).toContain('0 GiB reclaimed');
    expect(field(message, 'Estimated monthly saving')).toContain('$0.00');
  });
});

/** The demo as the CLI wires it, usage reports and the Recycle Bin included. */
async function fullSweep(
  account: MemoryAccount,
  options: { now?: Date; dryRun?: boolean; mode?: 'plan' | 'apply'; policy?: Record<string, unknown> } = {},
): Promise<RunReport> {
  return runSweep(
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
      now: options.now ?? NOW,
      mode: options.mode ?? 'apply',
      dryRun: options.dryRun ?? true,
      deadline: { remainingMs: () => 1e9 },
    },
  );
}

describe('digestMessage: the shared-image gate and the undo window', () => {
  it('lists the shared images waiting on a usage report, each with its reason', async () => {
    // Prepare
    const { account, byName } = demo();
    const report = await fullSweep(account);
    const waiting = report.decisions.filter((decision) => decision.rule === 'shared-use-unknown');

    // Act
    const text = sectionStartingWith(digestMessage(report), '*Shared images waiting on a usage report*');

    // Assess
    expect(waiting.map((decision) => decision.imageId)).toEqual([byName('web-2025-07-01')]);
    const lines = text.split('\n');
    expect(lines[0]).toContain('(1)');
    expect(lines[1]).toBe(`• \`${byName('web-2025-07-01')}\` web-2025-07-01 — ${waiting[0]?.reason}`);
    expect(lines[1]).toContain('is not complete yet (pending)');
    // Kept for its use elsewhere is settled, not waiting.
    expect(text).not.toContain(byName('web-2025-09-01'));
  });

  it('counts the waiting images beyond the limit in "…and N more"', () => {
    // Prepare
    const report = emptyReport({
      decisions: Array.from({ length: 14 }, (_, i) => ({
        imageId: `ami-${String(i).padStart(17, '0')}`,
        name: `shared-${i}`,
        verdict: 'keep' as const,
        rule: 'shared-use-unknown',
        reason: `shared with 1 account: usage report amiur-${i} requested 2026-11-21 is not complete yet (pending)`,
        findings: [],
      })),
    });

    // Act
    const message = digestMessage(report);

    // Assess
    const text = sectionStartingWith(message, '*Shared images waiting on a usage report* (14)');
    expect(text.split('\n').filter((line) => line.startsWith('• '))).toHaveLength(10);
    expect(text).toMatch(/\n…and 4 more$/);
    expectWithinSlackLimits(message);
  });

  it('says briefly whether each removal is recoverable, and when the saving starts', async () => {
    // Prepare
    const { account, byName } = demo();
    const report = await fullSweep(account, { mode: 'plan' });
    const removal = report.actions.find((outcome) => outcome.action.kind === 'deregister');
    const until = removal?.recovery?.recoverable ? removal.recovery.until.slice(0, 10) : 'none';

    // Act
    const message = digestMessage(report);

    // Assess
    const text = sectionStartingWith(message, '*Due for removal now*');
    expect(removal?.action.imageId).toBe(byName('reporting-2025-10-01'));
    expect(text).toMatch(
      new RegExp(
        `• \`${removal?.action.imageId}\` reporting-2025-10-01 with 1 snapshot — recoverable until ${until}`,
      ),
    );
    expect(text).toMatch(/\(orphan\) — recoverable until \d{4}-\d{2}-\d{2}/);
    expect(texts(message).join('\n')).toContain(
      `Removals kept in the Recycle Bin are billed until ${report.cost.billedInRecycleBinUntil?.slice(0, 10)}; the saving starts then.`,
    );
  });

  it('says "not recoverable" on a removal no rule covers, and nothing where the rules were not read', () => {
    // Prepare
    const deregister = (imageId: string) => ({
      kind: 'deregister' as const,
      imageId,
      name: imageId,
      rule: 'age',
      reason: 'old',
      snapshotIds: [],
    });
    const report = emptyReport({
      actions: [
        {
          action: deregister('ami-0uncovered'),
          status: 'done',
          warnings: [],
          snapshots: [],
          recovery: { recoverable: false, reason: 'no Recycle Bin retention rule for images in this Region' },
        },
        { action: deregister('ami-0unknown'), status: 'done', warnings: [], snapshots: [] },
      ],
    });

    // Act
    const lines = sectionStartingWith(digestMessage(report), '*Removed this run*').split('\n');

    // Assess
    expect(lines).toContain('• `ami-0uncovered` ami-0uncovered — not recoverable');
    expect(lines).toContain('• `ami-0unknown` ami-0unknown');
  });

  it('shows the undo-window finding with the other findings, by severity', async () => {
    // Prepare
    const { account } = demo();
    const report = await fullSweep(account, { mode: 'plan' });
    const finding = report.accountFindings.find((f) => f.rule === 'recycle-bin');

    // Act
    const text = sectionStartingWith(digestMessage(report), ':large_orange_diamond: *Medium*');

    // Assess
    expect(finding?.severity).toBe('medium');
    expect(text).toContain(`• \`111122223333\` — recycle-bin: ${finding?.reason}`);
  });

  it('lists the images the disable step disables, and names the step a scheduled image waits for', async () => {
    // Prepare
    const { account, byName } = demo();
    const report = await fullSweep(account, { dryRun: false, policy: { removal: { disableDays: 30 } } });
    const next = report.scheduled.find((entry) => entry.next === 'disable');

    // Act
    const message = digestMessage(report);

    // Assess
    expect(sectionStartingWith(message, '*Disabled this run* (1)')).toContain(
      `• \`${byName('reporting-2025-10-01')}\` reporting-2025-10-01`,
    );
    expect(next?.imageId).toBe(byName('reporting-2025-12-01'));
    expect(sectionStartingWith(message, '*Images scheduled for removal*')).toContain(
      `reporting-2025-12-01 — disable after ${next?.removeAfter.slice(0, 10)}`,
    );
  });

  it('says what would be archived and at which price', async () => {
    // Prepare
    const { account } = demo();
    const report = await fullSweep(account, { mode: 'plan', policy: { snapshots: { action: 'archive' } } });

    // Act
    const message = digestMessage(report);

    // Assess
    expect(report.cost.archivedGiB).toBe(20);
    expect(field(message, 'Reclaimed')).toContain('would archive 20 GiB');
    expect(texts(message).join('\n')).toContain(
      'Archived snapshots at $0.0125 per GB-month at their full size',
    );
  });
});
