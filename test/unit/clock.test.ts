import { describe, expect, it } from 'vitest';
import { parsePolicy } from '../../src/config/policy.ts';
import { CLOCK_SKEW_MS, FutureClockError, futureClockReason } from '../../src/core/clock.ts';
import { unboundedDeadline } from '../../src/core/ports.ts';
import { runSweep } from '../../src/core/sweep.ts';
import { demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import { recordingLog } from './factories.ts';

const REAL_NOW = new Date('2026-11-22T06:00:00.000Z');

function sweep(mode: 'plan' | 'apply', now: Date) {
  const account = new MemoryAccount(demoAccount(REAL_NOW));
  const run = runSweep(
    { inventory: account, actions: account, log: recordingLog() },
    {
      policy: { ...parsePolicy(demoPolicyDocument), dryRun: false, graceDays: 0 },
      region: 'eu-west-1',
      now,
      mode,
      dryRun: false,
      deadline: unboundedDeadline,
      realNow: REAL_NOW,
    },
  );
  return { account, run };
}

describe('honest clocks', () => {
  it.each([
    { case: 'the real clock', offsetMs: 0, refused: false },
    { case: 'within the skew', offsetMs: CLOCK_SKEW_MS, refused: false },
    { case: 'just past the skew', offsetMs: CLOCK_SKEW_MS + 1, refused: true },
    { case: 'the past', offsetMs: -30 * 86_400_000, refused: false },
  ])('futureClockReason on $case', ({ offsetMs, refused }) => {
    const reason = futureClockReason(new Date(REAL_NOW.getTime() + offsetMs), REAL_NOW, 'the clock');
    expect(reason !== undefined).toBe(refused);
  });

  it('refuses an apply on a future clock before reading or changing anything', async () => {
    // Prepare
    const { account, run } = sweep('apply', new Date(REAL_NOW.getTime() + 30 * 86_400_000));

    // Act / Assess
    await expect(run).rejects.toBeInstanceOf(FutureClockError);
    await expect(run).rejects.toThrow(/later than the real clock/);
    expect(account.calls).toEqual([]);
  });

  it('still forecasts a plan on a future clock, changing nothing', async () => {
    // Prepare
    const { account, run } = sweep('plan', new Date(REAL_NOW.getTime() + 30 * 86_400_000));

    // Act
    const report = await run;

    // Assess
    expect(report.mode).toBe('plan');
    expect(report.actions.some((outcome) => outcome.action.kind === 'deregister')).toBe(true);
    expect(account.calls).toEqual([]);
  });
});
