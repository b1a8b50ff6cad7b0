import { describe, expect, it } from 'vitest';
import { defaultPolicy, MARKED_AT_TAG } from '../../src/config/policy.ts';
import { type Deadline, unboundedDeadline } from '../../src/core/ports.ts';
import { runSweep, type SweepPorts } from '../../src/core/sweep.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import type { Snapshot } from '../../src/model.ts';
import { ACCOUNT_ID, daysBefore, NOW, recordingLog } from './factories.ts';

/**
 * Share checks cost one call per orphan, four times the pace of deletions: an invocation with a
 * deadline reads the sharing of only as many orphans due for deletion as it can still delete.
 */

const DUE = 40;
const TO_MARK = 10;
/** 80 s left to act once the 20 s reserve is kept, at one deletion every 10 s: room for 8. */
const REMAINING_MS = 100_000;
const RESERVE_MS = 20_000;
const DELETIONS_PER_SECOND = 0.1;
const ROOM = 8;
/** evaluateSnapshots' share checks in flight at once. */
const CONCURRENCY = 8;

function orphan(index: number, tags: Record<string, string>): Snapshot {
  const suffix = index.toString(16).padStart(13, '0');
  return {
    snapshotId: `snap-0bud${suffix}`,
    ownerId: ACCOUNT_ID,
    volumeId: `vol-0bud${suffix}`,
    volumeSizeGiB: 8,
    // The orphans due for deletion are the oldest, so they come first in deletion order.
    startTime: daysBefore(NOW, index < DUE ? 300 - index : 50),
    description: `Created by CreateImage(i-0123456789abcdef0) for ami-0bad${suffix}`,
    state: 'completed',
    tags,
  };
}

function setup(deletionsPerSecond: number | undefined) {
  const marked = { [MARKED_AT_TAG]: daysBefore(NOW, 10).toISOString() };
  const snapshots = [
    ...Array.from({ length: DUE }, (_, index) => orphan(index, marked)),
    ...Array.from({ length: TO_MARK }, (_, index) => orphan(DUE + index, {})),
  ];
  const account = new MemoryAccount({
    accountId: ACCOUNT_ID,
    images: [],
    snapshots: structuredClone(snapshots),
  });
  const read: string[] = [];
  const ports: SweepPorts = {
    inventory: account,
    actions: account,
    log: recordingLog(),
    snapshots: {
      inventory: account,
      sharing: {
        snapshotPermissions: (snapshotId) => {
          read.push(snapshotId);
          return account.snapshotPermissions(snapshotId);
        },
      },
      actions: {
        describeSnapshots: (ids) => account.describeSnapshots(ids),
        tagResources: (ids, tags) => account.tagResources(ids, tags),
        untagResources: (ids, keys) => account.untagResources(ids, keys),
        deleteSnapshot: (id) => account.deleteSnapshot(id),
        deletionsPerSecond,
      },
    },
  };
  const dueIds = snapshots.slice(0, DUE).map((snapshot) => snapshot.snapshotId);
  const toMarkIds = snapshots.slice(DUE).map((snapshot) => snapshot.snapshotId);
  return { account, ports, read, dueIds, toMarkIds };
}

function sweep(ports: SweepPorts, deadline: Deadline) {
  return runSweep(ports, {
    policy: defaultPolicy(),
    region: 'eu-west-1',
    now: NOW,
    mode: 'apply',
    dryRun: false,
    deadline,
    reserveMs: RESERVE_MS,
  });
}

const steadyDeadline: Deadline = { remainingMs: () => REMAINING_MS };

describe('share checks under a deadline', () => {
  it('stop, for orphans due for deletion, once those decided fill the time left to delete', async () => {
    // Prepare
    const { account, ports, read, dueIds, toMarkIds } = setup(DELETIONS_PER_SECOND);

    // Act
    const report = await sweep(ports, steadyDeadline);

    // Assess: enough for the room, at most one more per check already in flight, oldest first.
    const dueRead = read.filter((id) => dueIds.includes(id));
    expect(dueRead.length).toBeGreaterThanOrEqual(ROOM);
    expect(dueRead.length).toBeLessThan(ROOM + CONCURRENCY);
    expect([...dueRead].sort()).toEqual(dueIds.slice(0, dueRead.length).sort());
    const deleted = dueIds.filter((id) => !account.snapshots.has(id));
    expect(deleted.sort()).toEqual([...dueRead].sort());
    const waiting = report.snapshotDecisions.filter((decision) => decision.rule === 'not-reached');
    expect(waiting.map((decision) => decision.snapshotId).sort()).toEqual(
      dueIds.filter((id) => !dueRead.includes(id)).sort(),
    );
    expect(waiting[0]?.reason).toMatch(/deletions already decided fill this invocation/);
    for (const id of waiting.map((decision) => decision.snapshotId)) {
      expect(account.snapshots.get(id)?.tags[MARKED_AT_TAG]).toBeDefined();
    }
    // Orphans still to be marked cost a batched tag, not a deletion: every one is read and marked.
    expect(read.filter((id) => toMarkIds.includes(id)).sort()).toEqual([...toMarkIds].sort());
    for (const id of toMarkIds)
      expect(account.snapshots.get(id)?.tags[MARKED_AT_TAG]).toBe(NOW.toISOString());
    expect(report.complete).toBe(false);
  });

  it.each([
    ['deletions are not paced', undefined, steadyDeadline],
    ['the run has no deadline', DELETIONS_PER_SECOND, unboundedDeadline],
  ] as const)('read every candidate when %s', async (_case, pace, deadline) => {
    // Prepare
    const { ports, read } = setup(pace);

    // Act
    const report = await sweep(ports, deadline);

    // Assess
    expect(read).toHaveLength(DUE + TO_MARK);
    expect(report.totals.orphansDeleted).toBe(DUE);
    expect(report.complete).toBe(true);
  });
});
