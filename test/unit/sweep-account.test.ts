import { describe, expect, it } from 'vitest';
import { parsePolicy } from '../../src/config/policy.ts';
import type { TrailHealth } from '../../src/core/account-audit.ts';
import { CREATED_BY_SESSION_TAG, CREATED_BY_TAG } from '../../src/core/image-audit.ts';
import type { StateStore } from '../../src/core/ports.ts';
import { type CreatorBackfill, runSweep } from '../../src/core/sweep.ts';
import { alertOnTrailChange } from '../../src/core/trail-alert.ts';
import { demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import type { Caller } from '../../src/model.ts';
import type { DeliveryResult, Notifier, SlackMessage } from '../../src/notify/slack.ts';
import { recordingLog } from './factories.ts';

const NOW = new Date('2026-11-22T12:00:00Z');
const BLIND: TrailHealth = {
  ok: false,
  region: 'eu-west-1',
  reason: 'real-time audit is blind in eu-west-1',
};
const HEALTHY: TrailHealth = { ok: true, region: 'eu-west-1', reason: 'trail main logs management events' };

function memoryState(initial: Record<string, string> = {}): StateStore & { values: Map<string, string> } {
  const values = new Map(Object.entries(initial));
  return {
    values,
    get: async (key) => values.get(key),
    put: async (key, value) => {
      values.set(key, value);
    },
  };
}

function notifier(delivered = true): Notifier & { sent: SlackMessage[] } {
  const sent: SlackMessage[] = [];
  const result: DeliveryResult = delivered
    ? { delivered, attempts: 1, status: 200 }
    : { delivered, attempts: 4, error: 'HTTP 503' };
  return {
    sent,
    send: async (message) => {
      sent.push(message);
      return result;
    },
  };
}

function sweep(
  account: MemoryAccount,
  extra: { trail?: TrailHealth | Error; backfill?: CreatorBackfill },
  mode: 'plan' | 'apply' = 'apply',
) {
  const { trail } = extra;
  return runSweep(
    {
      inventory: account,
      actions: account,
      log: recordingLog(),
      ...(trail
        ? {
            trailHealth: {
              check: async () => {
                if (trail instanceof Error) throw trail;
                return trail;
              },
            },
          }
        : {}),
      ...(extra.backfill ? { attribution: extra.backfill } : {}),
    },
    {
      policy: parsePolicy(demoPolicyDocument),
      region: 'eu-west-1',
      now: NOW,
      mode,
      dryRun: true,
      deadline: { remainingMs: () => 600_000 },
    },
  );
}

describe('sweep: CloudTrail health', () => {
  it('reports a blind Region as a high account finding and counts it', async () => {
    // Act
    const report = await sweep(new MemoryAccount(demoAccount(NOW)), { trail: BLIND });

    // Assess
    expect(report.trail).toEqual(BLIND);
    expect(report.accountFindings).toEqual([
      { rule: 'trail-health', severity: 'high', reason: BLIND.reason, resourceId: '111122223333' },
    ]);
    expect(report.totals.findings).toBe(report.findings.length + 1);
  });

  it('reports no account finding when a trail logs management events', async () => {
    const report = await sweep(new MemoryAccount(demoAccount(NOW)), { trail: HEALTHY });

    expect(report.accountFindings).toEqual([]);
    expect(report.trail?.ok).toBe(true);
  });

  it('carries on with a warning when the trails cannot be checked', async () => {
    const report = await sweep(new MemoryAccount(demoAccount(NOW)), { trail: new Error('AccessDenied') });

    expect(report.trail).toBeUndefined();
    expect(
      report.warnings.some((warning) => warning.startsWith('CloudTrail trails could not be checked')),
    ).toBe(true);
    expect(report.decisions).toHaveLength(demoAccount(NOW).images.length);
  });
});

describe('sweep: creator backfill', () => {
  const caller: Caller = {
    arn: 'arn:aws:iam::111122223333:role/ci',
    type: 'AssumedRole',
    sessionName: 'jenkins-42',
  };

  function backfill(found: Record<string, Caller>, calls: { max: number }[] = []): CreatorBackfill {
    return {
      backfill: async (_images, options) => {
        calls.push({ max: options.max });
        return { found: new Map(Object.entries(found)), examined: Object.keys(found).length + 1, skipped: 2 };
      },
    };
  }

  it('tags the creators it finds, even in dry run, and summarises the lookups', async () => {
    // Prepare
    const account = new MemoryAccount(demoAccount(NOW));
    const [first] = account.images.keys();
    const calls: { max: number }[] = [];

    // Act
    const report = await sweep(account, { backfill: backfill({ [first ?? '']: caller }, calls) });

    // Assess
    expect(calls).toEqual([{ max: 50 }]);
    expect(account.images.get(first ?? '')?.tags).toMatchObject({
      [CREATED_BY_TAG]: caller.arn,
      [CREATED_BY_SESSION_TAG]: 'jenkins-42',
    });
    expect(report.attribution).toEqual({ examined: 2, found: 1, tagged: 1, skipped: 2 });
  });

  it('looks nothing up in a read-only plan', async () => {
    const calls: { max: number }[] = [];

    const report = await sweep(
      new MemoryAccount(demoAccount(NOW)),
      { backfill: backfill({}, calls) },
      'plan',
    );

    expect(calls).toEqual([]);
    expect(report.attribution).toBeUndefined();
  });

  it('reports a creator tag that could not be written, and goes on', async () => {
    const account = new MemoryAccount(demoAccount(NOW));
    const [first, second] = account.images.keys();
    account.failNext('tagImage', first ?? '', 'UnauthorizedOperation');

    const report = await sweep(account, {
      backfill: backfill({ [first ?? '']: caller, [second ?? '']: caller }),
    });

    expect(report.attribution).toMatchObject({ found: 2, tagged: 1 });
    expect(report.warnings).toContain(`image ${first}: creator tag not written (UnauthorizedOperation)`);
  });
});

describe('alertOnTrailChange', () => {
  it('alerts once when the Region goes blind, and not again while it stays blind', async () => {
    // Prepare
    const state = memoryState();
    const slack = notifier();
    const context = { accountId: '111122223333', state, notifier: slack, log: recordingLog() };

    // Act
    const first = await alertOnTrailChange(BLIND, context);
    const second = await alertOnTrailChange(BLIND, context);

    // Assess
    expect([first, second]).toEqual(['alerted', 'unchanged']);
    expect(slack.sent).toHaveLength(1);
    expect(slack.sent[0]?.text).toContain('blind in eu-west-1');
    expect(state.values.get('trail-health/eu-west-1')).toBe('blind');
  });

  it('re-arms after a recovery, so going blind again alerts again', async () => {
    const state = memoryState({ 'trail-health/eu-west-1': 'blind' });
    const slack = notifier();
    const context = { accountId: '111122223333', state, notifier: slack, log: recordingLog() };

    const outcomes = [await alertOnTrailChange(HEALTHY, context), await alertOnTrailChange(BLIND, context)];

    expect(outcomes).toEqual(['recovered', 'alerted']);
    expect(slack.sent).toHaveLength(1);
  });

  it('keeps no state when Slack did not take the alert, so the next sweep tries again', async () => {
    const state = memoryState();
    const log = recordingLog();

    const outcome = await alertOnTrailChange(BLIND, {
      accountId: '1',
      state,
      notifier: notifier(false),
      log,
    });

    expect(outcome).toBe('not-delivered');
    expect(state.values.size).toBe(0);
    expect(
      log.entries.some((entry) => entry.level === 'error' && entry.message === 'alert not delivered'),
    ).toBe(true);
  });

  it('does nothing when the trails were not checked', async () => {
    const slack = notifier();

    const outcome = await alertOnTrailChange(undefined, {
      accountId: '1',
      state: memoryState(),
      notifier: slack,
      log: recordingLog(),
    });

    expect(outcome).toBe('unknown');
    expect(slack.sent).toEqual([]);
  });
});

describe('sweep: share checks within the time budget', () => {
  it('stops reading sharing while time is left to act, and leaves the rest to the next invocation', async () => {
    // Prepare: a large budget at the start, then less than the 40% kept for acting.
    const account = new MemoryAccount(demoAccount(NOW));
    let first = true;
    const deadline = {
      remainingMs: () => {
        const remaining = first ? 1_000_000 : 100_000;
        first = false;
        return remaining;
      },
    };

    // Act
    const report = await runSweep(
      {
        inventory: account,
        actions: account,
        log: recordingLog(),
        snapshots: { inventory: account, sharing: account, actions: account },
      },
      {
        policy: parsePolicy(demoPolicyDocument),
        region: 'eu-west-1',
        now: NOW,
        mode: 'apply',
        dryRun: false,
        deadline,
      },
    );

    // Assess: no orphan was decided, so none was marked or deleted; images were still acted on.
    const undecided = report.snapshotDecisions.filter((d) => d.rule === 'not-reached');
    expect(undecided.length).toBeGreaterThan(0);
    expect(report.totals.orphans).toBe(0);
    expect(report.snapshotActions).toEqual([]);
    expect(report.totals.marked).toBeGreaterThan(0);
    expect(report.complete).toBe(false);
    expect(report.warnings).toContain(
      `${undecided.length} orphan candidates were left undecided to keep time for acting; the run continues`,
    );
    expect(account.calls.some((call) => call.startsWith('snapshotPermissions'))).toBe(false);
  });
});
