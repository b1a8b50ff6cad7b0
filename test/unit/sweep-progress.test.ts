import { describe, expect, it } from 'vitest';
import { parsePolicy } from '../../src/config/policy.ts';
import type { ProgressEvent } from '../../src/core/ports.ts';
import { runSweep } from '../../src/core/sweep.ts';
import { demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import { recordingLog } from './factories.ts';

const NOW = new Date('2026-11-22T06:00:00.000Z');

async function sweepWithProgress(mode: 'plan' | 'apply') {
  const account = new MemoryAccount(demoAccount(NOW));
  const events: ProgressEvent[] = [];
  const log = recordingLog();
  const report = await runSweep(
    {
      inventory: account,
      actions: account,
      snapshots: { inventory: account, actions: account, sharing: account },
      usage: account,
      recycleBin: account,
      log,
      progress: { report: (event) => events.push(event) },
    },
    {
      policy: parsePolicy(demoPolicyDocument),
      region: 'eu-west-1',
      now: NOW,
      mode,
      dryRun: false,
      deadline: { remainingMs: () => 1e9 },
    },
  );
  return { report, events, log };
}

function last(events: ProgressEvent[], phase: ProgressEvent['phase']): ProgressEvent | undefined {
  return events.filter((event) => event.phase === phase).at(-1);
}

function counts(events: ProgressEvent[], phase: ProgressEvent['phase']): number[] {
  return events.flatMap((event) =>
    event.phase !== phase ? [] : 'listed' in event ? [event.listed] : [event.done],
  );
}

describe('runSweep progress', () => {
  it('counts the inventories, then each check and action up to its total', async () => {
    // Act
    const { report, events } = await sweepWithProgress('apply');

    // Assess
    expect(last(events, 'images')).toEqual({ phase: 'images', listed: report.totals.images });
    expect(last(events, 'snapshots')).toEqual({ phase: 'snapshots', listed: report.totals.snapshots });
    for (const phase of ['references', 'image-shares', 'snapshot-shares'] as const) {
      const final = last(events, phase);
      expect(final && 'total' in final && final.done === final.total, phase).toBe(true);
    }
    expect(last(events, 'image-actions')).toEqual({
      phase: 'image-actions',
      done: report.actions.length,
      total: report.actions.length,
    });
    expect(last(events, 'snapshot-actions')).toEqual({
      phase: 'snapshot-actions',
      done: report.snapshotActions.length,
      total: report.snapshotActions.length,
    });
    for (const phase of ['references', 'image-shares', 'snapshot-shares', 'image-actions'] as const) {
      const seen = counts(events, phase);
      expect(seen, phase).toEqual(seen.toSorted((a, b) => a - b));
      expect(seen[0], phase).toBe(0);
    }
  });

  it('a plan counts its checks and no actions', async () => {
    // Act
    const { events } = await sweepWithProgress('plan');

    // Assess
    expect(events.some((event) => event.phase === 'image-actions')).toBe(false);
    expect(events.some((event) => event.phase === 'snapshot-actions')).toBe(false);
    expect(last(events, 'references')).toBeDefined();
  });

  it('counting the actions still logs every action line', async () => {
    // Act
    const { report, log } = await sweepWithProgress('apply');

    // Assess
    const logged = (message: string) => log.entries.filter((entry) => entry.message === message).length;
    expect(logged('action')).toBe(report.actions.length);
    expect(logged('snapshot action')).toBe(report.snapshotActions.length);
  });
});
