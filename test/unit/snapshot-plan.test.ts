import { describe, expect, it, vi } from 'vitest';
import { defaultPolicy, MARKED_AT_TAG, type Policy } from '../../src/config/policy.ts';
import type { ExecuteOptions } from '../../src/core/executor.ts';
import { type Deadline, unboundedDeadline } from '../../src/core/ports.ts';
import { executeSnapshotPlan } from '../../src/core/snapshot-executor.ts';
import { buildSnapshotPlan } from '../../src/core/snapshot-planner.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import { OutcomeUnknownError } from '../../src/errors.ts';
import type {
  PlannedSnapshotAction,
  Snapshot,
  SnapshotActionOutcome,
  SnapshotDecision,
  SnapshotPlan,
} from '../../src/model.ts';
import { ACCOUNT_ID, daysAfter, daysBefore, image, NOW, policy, recordingLog } from './factories.ts';

let sequence = 0;

/** An old, untagged snapshot owned by ACCOUNT_ID, made for an image that is gone. */
function snapshot(overrides: Partial<Snapshot> = {}): Snapshot {
  sequence += 1;
  const suffix = sequence.toString(16).padStart(13, '0');
  return {
    snapshotId: `snap-0fac${suffix}`,
    ownerId: ACCOUNT_ID,
    volumeId: `vol-0fac${suffix}`,
    volumeSizeGiB: 8,
    startTime: daysBefore(NOW, 100),
    description: `Created by CreateImage(i-0123456789abcdef0) for ami-0bad${suffix}`,
    state: 'completed',
    tags: {},
    ...overrides,
  };
}

function marked(at: Date, overrides: Partial<Snapshot> = {}): Snapshot {
  return snapshot({ ...overrides, tags: { ...overrides.tags, [MARKED_AT_TAG]: at.toISOString() } });
}

function orphan(subject: Snapshot, overrides: Partial<SnapshotDecision> = {}): SnapshotDecision {
  return {
    snapshotId: subject.snapshotId,
    verdict: 'orphan',
    rule: 'snapshot-orphan',
    reason: 'made for image ami-0bad, which no longer exists',
    sizeGiB: subject.volumeSizeGiB,
    ...overrides,
  };
}

function kept(subject: Snapshot, rule = 'exempt-tag', reason = 'exempt: tagged ami-janitor:keep=true') {
  return orphan(subject, { verdict: 'keep', rule, reason });
}

function planFor(
  snapshots: Snapshot[],
  decisions: SnapshotDecision[],
  overrides: Partial<Policy> = {},
  now = NOW,
): SnapshotPlan {
  return buildSnapshotPlan({ snapshots, decisions, policy: policy(overrides), now });
}

function snapshotLimits(maxDeletionsPerRun: number): Pick<Policy, 'snapshots'> {
  return { snapshots: { ...defaultPolicy().snapshots, maxDeletionsPerRun } };
}

function only<T>(items: readonly T[]): T {
  expect(items).toHaveLength(1);
  const [first] = items;
  if (first === undefined) throw new Error('expected exactly one item');
  return first;
}

describe('buildSnapshotPlan: staging', () => {
  it.each([7, 1, 30])('marks an orphan on first detection (graceDays %i)', (graceDays) => {
    // Prepare
    const subject = snapshot({ volumeSizeGiB: 30 });

    // Act
    const result = planFor([subject], [orphan(subject, { sizeGiB: 12 })], { graceDays });

    // Assess
    expect(only(result.actions)).toEqual({
      kind: 'mark',
      snapshotId: subject.snapshotId,
      rule: 'snapshot-orphan',
      reason: 'made for image ami-0bad, which no longer exists',
      sizeGiB: 12,
      removeAfter: daysAfter(NOW, graceDays).toISOString(),
    });
    expect(result.scheduled).toEqual([]);
    expect(result.deferred).toEqual([]);
    expect(result.cap).toEqual({ limit: 100, eligible: 0, capped: false });
    expect(result.inventorySize).toBe(1);
  });

  it('re-marks an orphan whose marked-at value is not a date', () => {
    // Prepare
    const subject = snapshot({ tags: { [MARKED_AT_TAG]: 'last tuesday' } });

    // Act
    const result = planFor([subject], [orphan(subject)]);

    // Assess
    expect(only(result.actions)).toMatchObject({
      kind: 'mark',
      removeAfter: daysAfter(NOW, 7).toISOString(),
    });
  });

  it.each([
    { markedDaysAgo: 0, graceDays: 7 },
    { markedDaysAgo: 3, graceDays: 7 },
    { markedDaysAgo: 6.9, graceDays: 7 },
    { markedDaysAgo: 10, graceDays: 30 },
  ])(
    'schedules, without acting, an orphan marked $markedDaysAgo days ago (graceDays $graceDays)',
    ({ markedDaysAgo, graceDays }) => {
      // Prepare
      const markedAt = daysBefore(NOW, markedDaysAgo);
      const subject = marked(markedAt);

      // Act
      const result = planFor([subject], [orphan(subject, { sizeGiB: 16 })], { graceDays });

      // Assess
      expect(result.actions).toEqual([]);
      expect(result.scheduled).toEqual([
        {
          snapshotId: subject.snapshotId,
          sizeGiB: 16,
          markedAt: markedAt.toISOString(),
          removeAfter: daysAfter(markedAt, graceDays).toISOString(),
        },
      ]);
    },
  );

  it.each([
    { markedDaysAgo: 7, graceDays: 7 },
    { markedDaysAgo: 8, graceDays: 7 },
    { markedDaysAgo: 400, graceDays: 7 },
    { markedDaysAgo: 2, graceDays: 1 },
  ])(
    'deletes an orphan marked $markedDaysAgo days ago once graceDays $graceDays are over',
    ({ markedDaysAgo, graceDays }) => {
      // Prepare
      const markedAt = daysBefore(NOW, markedDaysAgo);
      const subject = marked(markedAt);

      // Act
      const result = planFor([subject], [orphan(subject)], { graceDays });

      // Assess
      expect(only(result.actions)).toEqual({
        kind: 'delete',
        snapshotId: subject.snapshotId,
        rule: 'snapshot-orphan',
        reason: `made for image ami-0bad, which no longer exists; marked ${markedAt.toISOString().slice(0, 10)}`,
        sizeGiB: 8,
      });
      expect(result.scheduled).toEqual([]);
      expect(result.cap).toEqual({ limit: 100, eligible: 1, capped: false });
    },
  );

  it.each([
    {
      case: 'unmarked',
      subject: () => snapshot(),
      reason: 'made for image ami-0bad, which no longer exists',
    },
    {
      case: 'marked a moment ago',
      subject: () => marked(NOW),
      reason: `made for image ami-0bad, which no longer exists; marked ${NOW.toISOString().slice(0, 10)}`,
    },
  ])('graceDays 0 deletes an orphan at once ($case)', ({ subject, reason }) => {
    // Prepare
    const target = subject();

    // Act
    const result = planFor([target], [orphan(target)], { graceDays: 0 });

    // Assess
    expect(only(result.actions)).toMatchObject({ kind: 'delete', snapshotId: target.snapshotId, reason });
    expect(result.scheduled).toEqual([]);
  });

  it.each([
    { rule: 'exempt-tag', reason: 'exempt: tagged ami-janitor:keep=true' },
    { rule: 'in-use', reason: 'used by image ami-0123456789abcdef0' },
    { rule: 'locked', reason: 'locked by a snapshot lock; EBS refuses to delete it' },
    { rule: 'shared', reason: 'its sharing could not be read' },
  ])('unmarks a marked snapshot that is kept now ($rule)', ({ rule, reason }) => {
    // Prepare
    const subject = marked(daysBefore(NOW, 3));

    // Act
    const result = planFor([subject], [kept(subject, rule, reason)]);

    // Assess
    expect(only(result.actions)).toEqual({
      kind: 'unmark',
      snapshotId: subject.snapshotId,
      rule,
      reason: `no longer an orphan: ${reason}`,
      sizeGiB: 8,
    });
    expect(result.scheduled).toEqual([]);
  });

  it('leaves alone a kept snapshot that was never marked, and one that is not ours', () => {
    // Prepare
    const plain = snapshot();
    const foreign = marked(daysBefore(NOW, 3), { ownerId: '444455556666' });

    // Act
    const result = planFor(
      [plain, foreign],
      [kept(plain), kept(foreign, 'not-owned', 'owned by account 444455556666, not by this account')],
    );

    // Assess
    expect(result.actions).toEqual([]);
    expect(result.decisions).toHaveLength(2);
  });

  it('ignores a decision for a snapshot outside the inventory', () => {
    // Prepare
    const listed = snapshot();
    const unlisted = snapshot();

    // Act
    const result = planFor([listed], [orphan(unlisted)]);

    // Assess
    expect(result.actions).toEqual([]);
    expect(result.inventorySize).toBe(1);
  });

  it('reads the clock it is given', () => {
    // Prepare
    const markedAt = daysBefore(NOW, 3);
    const subject = marked(markedAt);

    // Act
    const early = planFor([subject], [orphan(subject)], {}, NOW);
    const late = planFor([subject], [orphan(subject)], {}, daysAfter(NOW, 4));

    // Assess
    expect(early.actions).toEqual([]);
    expect(only(late.actions).kind).toBe('delete');
  });
});

describe('buildSnapshotPlan: the blast-radius cap', () => {
  /** `count` orphans past their grace period, each a day older than the next. */
  function due(count: number): Snapshot[] {
    return Array.from({ length: count }, (_, index) =>
      marked(daysBefore(NOW, 10), { startTime: daysBefore(NOW, 100 + index) }),
    );
  }

  it('deletes the oldest first up to maxDeletionsPerRun and defers the rest', () => {
    // Prepare
    const snapshots = due(5);
    const [days100, days101, days102, days103, days104] = snapshots;

    // Act
    const result = planFor(
      snapshots,
      snapshots.map((s) => orphan(s)),
      snapshotLimits(2),
    );

    // Assess
    expect(result.actions.map((a) => a.snapshotId)).toEqual([days104?.snapshotId, days103?.snapshotId]);
    expect(result.deferred).toEqual(
      [days102, days101, days100].map((s) => ({
        snapshotId: s?.snapshotId,
        sizeGiB: 8,
        reason: 'blast-radius cap reached (2 snapshot deletions per run); deferred to a later run',
      })),
    );
    expect(result.cap).toEqual({ limit: 2, eligible: 5, capped: true });
  });

  it('breaks a tie in age by snapshot id', () => {
    // Prepare
    const startTime = daysBefore(NOW, 100);
    const snapshots = [
      marked(daysBefore(NOW, 10), { snapshotId: 'snap-0000000000000000c', startTime }),
      marked(daysBefore(NOW, 10), { snapshotId: 'snap-0000000000000000a', startTime }),
      marked(daysBefore(NOW, 10), { snapshotId: 'snap-0000000000000000b', startTime }),
    ];

    // Act
    const result = planFor(
      snapshots,
      snapshots.map((s) => orphan(s)),
      snapshotLimits(2),
    );

    // Assess
    expect(result.actions.map((a) => a.snapshotId)).toEqual([
      'snap-0000000000000000a',
      'snap-0000000000000000b',
    ]);
    expect(result.deferred.map((d) => d.snapshotId)).toEqual(['snap-0000000000000000c']);
  });

  it.each([
    { percent: 50, inventory: 8, due: 5, limit: 4 },
    { percent: 10, inventory: 8, due: 5, limit: 0 },
    { percent: 25, inventory: 20, due: 3, limit: 5 },
    { percent: 100, inventory: 5, due: 5, limit: 5 },
  ])(
    'maxRemovalsPercent $percent of an inventory of $inventory allows $limit deletions',
    ({ percent, inventory, due: count, limit }) => {
      // Prepare: the percentage counts every snapshot examined, kept ones included.
      const orphans = due(count);
      const others = Array.from({ length: inventory - count }, () => snapshot());
      const decisions = [...orphans.map((s) => orphan(s)), ...others.map((s) => kept(s))];

      // Act
      const result = planFor([...orphans, ...others], decisions, { maxRemovalsPercent: percent });

      // Assess
      expect(result.actions).toHaveLength(Math.min(limit, count));
      expect(result.deferred).toHaveLength(Math.max(0, count - limit));
      expect(result.cap).toEqual({ limit, eligible: count, capped: count > limit });
    },
  );

  it('takes the smaller of the two limits', () => {
    // Prepare
    const snapshots = due(10);

    // Act
    const result = planFor(
      snapshots,
      snapshots.map((s) => orphan(s)),
      {
        ...snapshotLimits(3),
        maxRemovalsPercent: 50,
      },
    );

    // Assess
    expect(result.cap).toEqual({ limit: 3, eligible: 10, capped: true });
  });

  it('is not limited by the image cap maxRemovalsPerRun', () => {
    // Prepare
    const snapshots = due(3);

    // Act
    const result = planFor(
      snapshots,
      snapshots.map((s) => orphan(s)),
      { maxRemovalsPerRun: 1 },
    );

    // Assess
    expect(result.actions).toHaveLength(3);
    expect(result.cap.capped).toBe(false);
  });

  it('never caps marks, unmarks or scheduling', () => {
    // Prepare
    const fresh = snapshot();
    const waiting = marked(daysBefore(NOW, 2));
    const protectedNow = marked(daysBefore(NOW, 2));
    const overdue = due(2);

    // Act
    const result = planFor(
      [fresh, waiting, protectedNow, ...overdue],
      [orphan(fresh), orphan(waiting), kept(protectedNow), ...overdue.map((s) => orphan(s))],
      snapshotLimits(0),
    );

    // Assess
    expect(result.actions.map((a) => [a.kind, a.snapshotId])).toEqual([
      ['mark', fresh.snapshotId],
      ['unmark', protectedNow.snapshotId],
    ]);
    expect(result.scheduled.map((s) => s.snapshotId)).toEqual([waiting.snapshotId]);
    expect(result.deferred).toHaveLength(2);
    expect(result.cap).toEqual({ limit: 0, eligible: 2, capped: true });
  });
});

describe('executeSnapshotPlan', () => {
  function accountWith(...snapshots: Snapshot[]): MemoryAccount {
    return new MemoryAccount({ accountId: ACCOUNT_ID, images: [], snapshots: structuredClone(snapshots) });
  }

  function options(overrides: Partial<ExecuteOptions> = {}): ExecuteOptions {
    return {
      dryRun: false,
      now: NOW,
      accountId: ACCOUNT_ID,
      policy: defaultPolicy(),
      deadline: unboundedDeadline,
      reserveMs: 20_000,
      log: recordingLog(),
      ...overrides,
    };
  }

  function action(
    kind: PlannedSnapshotAction['kind'],
    subject: Snapshot,
    overrides: Partial<PlannedSnapshotAction> = {},
  ): PlannedSnapshotAction {
    return {
      kind,
      snapshotId: subject.snapshotId,
      rule: 'snapshot-orphan',
      reason: 'test',
      sizeGiB: subject.volumeSizeGiB,
      ...(kind === 'mark' ? { removeAfter: daysAfter(NOW, 7).toISOString() } : {}),
      ...overrides,
    };
  }

  function work(actions: PlannedSnapshotAction[]): SnapshotPlan {
    return {
      inventorySize: actions.length,
      decisions: [],
      actions,
      deferred: [],
      scheduled: [],
      cap: { limit: 100, eligible: actions.filter((a) => a.kind === 'delete').length, capped: false },
    };
  }

  /** Changes a snapshot in the account, as if someone did between planning and acting. */
  function change(account: MemoryAccount, snapshotId: string, edit: (tags: Record<string, string>) => void) {
    const current = account.snapshots.get(snapshotId);
    if (!current) throw new Error(`no snapshot ${snapshotId}`);
    edit(current.tags);
  }

  function statusOf(outcomes: readonly SnapshotActionOutcome[]) {
    return outcomes.map((o) => [o.action.kind, o.action.snapshotId, o.status]);
  }

  it('changes nothing in dry run', async () => {
    // Prepare
    const [a, b, c] = [snapshot(), marked(daysBefore(NOW, 10)), marked(daysBefore(NOW, 3))];
    const account = accountWith(a, b, c);
    const before = structuredClone([...account.snapshots.values()]);

    // Act
    const outcomes = await executeSnapshotPlan(
      work([action('mark', a), action('delete', b), action('unmark', c)]),
      account,
      options({ dryRun: true }),
    );

    // Assess
    expect(account.calls).toEqual([]);
    expect([...account.snapshots.values()]).toEqual(before);
    expect(outcomes.map((o) => o.status)).toEqual(['dry-run', 'dry-run', 'dry-run']);
  });

  it('marks with the run clock and unmarks by removing the tag', async () => {
    // Prepare
    const fresh = snapshot({ tags: { Name: 'keep-me' } });
    const cancelled = marked(daysBefore(NOW, 3), { tags: { Name: 'other' } });
    const account = accountWith(fresh, cancelled);

    // Act
    const outcomes = await executeSnapshotPlan(
      work([action('mark', fresh), action('unmark', cancelled)]),
      account,
      options(),
    );

    // Assess
    expect(statusOf(outcomes)).toEqual([
      ['unmark', cancelled.snapshotId, 'done'],
      ['mark', fresh.snapshotId, 'done'],
    ]);
    expect(account.snapshots.get(fresh.snapshotId)?.tags).toEqual({
      Name: 'keep-me',
      [MARKED_AT_TAG]: NOW.toISOString(),
    });
    expect(account.snapshots.get(cancelled.snapshotId)?.tags).toEqual({ Name: 'other' });
    expect(account.calls).toEqual([
      `untagResource ${cancelled.snapshotId}`,
      `tagResource ${fresh.snapshotId}`,
    ]);
  });

  it('deletes a marked orphan', async () => {
    // Prepare
    const subject = marked(daysBefore(NOW, 10));
    const bystander = snapshot();
    const account = accountWith(subject, bystander);

    // Act
    const outcomes = await executeSnapshotPlan(work([action('delete', subject)]), account, options());

    // Assess
    expect(only(outcomes)).toMatchObject({ status: 'done', detail: 'deleted' });
    expect(account.snapshots.has(subject.snapshotId)).toBe(false);
    expect(account.snapshots.has(bystander.snapshotId)).toBe(true);
    expect(account.calls).toEqual([`deleteSnapshot ${subject.snapshotId}`]);
  });

  it('deletes an unmarked orphan when graceDays is 0', async () => {
    // Prepare
    const subject = snapshot();
    const account = accountWith(subject);

    // Act
    const outcomes = await executeSnapshotPlan(
      work([action('delete', subject)]),
      account,
      options({ policy: { ...defaultPolicy(), graceDays: 0 } }),
    );

    // Assess
    expect(only(outcomes).status).toBe('done');
    expect(account.snapshots.has(subject.snapshotId)).toBe(false);
  });

  it.each([
    {
      case: 'the exempt tag was added',
      edit: (tags: Record<string, string>) => {
        tags['ami-janitor:keep'] = 'True';
      },
      detail: /tagged ami-janitor:keep=true since planning/,
    },
    {
      case: 'the marked-at tag was removed',
      edit: (tags: Record<string, string>) => {
        delete tags[MARKED_AT_TAG];
      },
      detail: /ami-janitor:marked-at tag was removed/,
    },
    {
      case: 'DLM took it over',
      edit: (tags: Record<string, string>) => {
        tags['aws:dlm:lifecycle-policy-id'] = 'policy-1';
      },
      detail: /lifecycle service/,
    },
    {
      case: 'AWS Backup took it over',
      edit: (tags: Record<string, string>) => {
        tags['aws:backup:source-resource'] = 'arn:aws:ec2:eu-west-1:1:volume/vol-1';
      },
      detail: /lifecycle service/,
    },
  ])('skips a deletion when $case since planning', async ({ edit, detail }) => {
    // Prepare
    const subject = marked(daysBefore(NOW, 10));
    const account = accountWith(subject);
    change(account, subject.snapshotId, edit);

    // Act
    const outcomes = await executeSnapshotPlan(work([action('delete', subject)]), account, options());

    // Assess
    const outcome = only(outcomes);
    expect(outcome.status).toBe('skipped');
    expect(outcome.detail).toMatch(detail);
    expect(account.snapshots.has(subject.snapshotId)).toBe(true);
    expect(account.calls).toEqual([]);
  });

  it('skips a deletion when the snapshot changed owner since planning', async () => {
    // Prepare
    const subject = marked(daysBefore(NOW, 10));
    const account = accountWith(subject);
    const current = account.snapshots.get(subject.snapshotId);
    if (!current) throw new Error('seed failed');
    account.snapshots.set(subject.snapshotId, { ...current, ownerId: '444455556666' });

    // Act
    const outcomes = await executeSnapshotPlan(work([action('delete', subject)]), account, options());

    // Assess
    expect(only(outcomes)).toMatchObject({
      status: 'skipped',
      detail: expect.stringMatching(/444455556666/),
    });
    expect(account.calls).toEqual([]);
  });

  it('reports a snapshot that vanished since planning as already gone', async () => {
    // Prepare
    const subject = marked(daysBefore(NOW, 10));
    const account = accountWith(subject);
    account.snapshots.delete(subject.snapshotId);

    // Act
    const outcomes = await executeSnapshotPlan(work([action('delete', subject)]), account, options());

    // Assess
    expect(only(outcomes)).toMatchObject({ status: 'already-gone' });
    expect(account.calls).toEqual([]);
  });

  it.each([
    { kind: 'mark' as const, call: 'tagResource' },
    { kind: 'unmark' as const, call: 'untagResource' },
  ])('reports a $kind of a vanished snapshot as already gone', async ({ kind, call }) => {
    // Prepare
    const subject = marked(daysBefore(NOW, 3));
    const account = accountWith(subject);
    account.snapshots.delete(subject.snapshotId);

    // Act
    const outcomes = await executeSnapshotPlan(work([action(kind, subject)]), account, options());

    // Assess
    expect(only(outcomes).status).toBe('already-gone');
    expect(account.calls).toEqual([`${call} ${subject.snapshotId}`]);
  });

  it('reports NotFound from the delete call itself as already gone', async () => {
    // Prepare
    const subject = marked(daysBefore(NOW, 10));
    const account = accountWith(subject);
    account.failNext('deleteSnapshot', subject.snapshotId, 'InvalidSnapshot.NotFound');

    // Act
    const outcomes = await executeSnapshotPlan(work([action('delete', subject)]), account, options());

    // Assess
    expect(only(outcomes).status).toBe('already-gone');
  });

  it.each([
    {
      case: 'took effect',
      effect: true,
      status: 'done',
      detail: /no answer came back; the snapshot is gone/,
    },
    { case: 'did not take effect', effect: false, status: 'failed', detail: /still there/ },
  ])(
    'reads a deletion that got no answer and $case again instead of deleting twice',
    async ({ effect, status, detail }) => {
      // Prepare
      const subject = marked(daysBefore(NOW, 10));
      const account = accountWith(subject);
      const original = account.deleteSnapshot.bind(account);
      const deleteSnapshot = vi.spyOn(account, 'deleteSnapshot').mockImplementationOnce(async (id) => {
        if (effect) await original(id);
        throw new OutcomeUnknownError('DeleteSnapshot', {
          cause: Object.assign(new Error('timed out'), { name: 'TimeoutError' }),
        });
      });

      // Act
      const outcome = only(await executeSnapshotPlan(work([action('delete', subject)]), account, options()));

      // Assess
      expect(outcome.status).toBe(status);
      expect(outcome.detail).toMatch(detail);
      expect(deleteSnapshot).toHaveBeenCalledTimes(1);
      expect(account.snapshots.has(subject.snapshotId)).toBe(!effect);
    },
  );

  it('skips, with the reason, a snapshot an image registered since planning uses', async () => {
    // Prepare
    const subject = marked(daysBefore(NOW, 10));
    const user = image({ imageId: 'ami-0aaaaaaaaaaaaaaa1', snapshotIds: [subject.snapshotId] });
    const account = new MemoryAccount({
      accountId: ACCOUNT_ID,
      images: [user],
      snapshots: [structuredClone(subject)],
    });

    // Act
    const outcomes = await executeSnapshotPlan(work([action('delete', subject)]), account, options());

    // Assess
    const outcome = only(outcomes);
    expect(outcome.status).toBe('skipped');
    expect(outcome.detail).toMatch(/^in use: .*ami-0aaaaaaaaaaaaaaa1/);
    expect(outcome.errorCode).toBeUndefined();
    expect(account.snapshots.has(subject.snapshotId)).toBe(true);
  });

  it('fails one action with its error code and still runs the next', async () => {
    // Prepare
    const [broken, fine, fresh] = [marked(daysBefore(NOW, 10)), marked(daysBefore(NOW, 10)), snapshot()];
    const account = accountWith(broken, fine, fresh);
    account.failNext('deleteSnapshot', broken.snapshotId, 'RequestLimitExceeded', 'Request limit exceeded.');

    // Act
    const outcomes = await executeSnapshotPlan(
      work([action('delete', broken), action('delete', fine), action('mark', fresh)]),
      account,
      options(),
    );

    // Assess
    expect(outcomes[0]).toMatchObject({
      status: 'failed',
      errorCode: 'RequestLimitExceeded',
      detail: 'Request limit exceeded.',
    });
    expect(statusOf(outcomes.slice(1))).toEqual([
      ['delete', fine.snapshotId, 'done'],
      ['mark', fresh.snapshotId, 'done'],
    ]);
    expect(account.snapshots.has(broken.snapshotId)).toBe(true);
    expect(account.snapshots.has(fine.snapshotId)).toBe(false);
  });

  it('fails a mark with its error code', async () => {
    // Prepare
    const subject = snapshot();
    const account = accountWith(subject);
    account.failNext('tagResource', subject.snapshotId, 'UnauthorizedOperation');

    // Act
    const outcomes = await executeSnapshotPlan(work([action('mark', subject)]), account, options());

    // Assess
    expect(only(outcomes)).toMatchObject({ status: 'failed', errorCode: 'UnauthorizedOperation' });
    expect(account.snapshots.get(subject.snapshotId)?.tags).toEqual({});
  });

  it('runs unmarks first, then deletions and marks side by side, whatever the plan order', async () => {
    // Prepare: a deletion that answers only when the test lets it.
    const toMark = snapshot();
    const toDelete = marked(daysBefore(NOW, 10));
    const toUnmark = marked(daysBefore(NOW, 3));
    const account = accountWith(toMark, toDelete, toUnmark);
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const deleteSnapshot = account.deleteSnapshot.bind(account);
    account.deleteSnapshot = async (snapshotId) => {
      await released;
      return deleteSnapshot(snapshotId);
    };

    // Act
    const run = executeSnapshotPlan(
      work([action('mark', toMark), action('delete', toDelete), action('unmark', toUnmark)]),
      account,
      options(),
    );
    await vi.waitFor(() => expect(account.calls).toContain(`tagResource ${toMark.snapshotId}`));
    const callsBeforeRelease = [...account.calls];
    release();
    const outcomes = await run;

    // Assess: the mark did not wait for the deletion in flight.
    expect(callsBeforeRelease).toEqual([
      `untagResource ${toUnmark.snapshotId}`,
      `tagResource ${toMark.snapshotId}`,
    ]);
    expect(account.calls).toEqual([...callsBeforeRelease, `deleteSnapshot ${toDelete.snapshotId}`]);
    expect(outcomes.map((o) => `${o.action.kind} ${o.status}`)).toEqual([
      'unmark done',
      'delete done',
      'mark done',
    ]);
  });

  it.each([0, 1, 2])('stops cleanly after %i actions when the time budget runs low', async (n) => {
    // Prepare: plenty of time until n deletions have started, then less than the reserve.
    const targets = Array.from({ length: 3 }, () => marked(daysBefore(NOW, 10)));
    const account = accountWith(...targets);
    const started = () => account.calls.filter((call) => call.startsWith('deleteSnapshot')).length;
    const deadline: Deadline = { remainingMs: () => (started() < n ? 600_000 : 19_999) };

    // Act
    const outcomes = await executeSnapshotPlan(
      work(targets.map((t) => action('delete', t))),
      account,
      options({ deadline, reserveMs: 20_000 }),
    );

    // Assess
    expect(outcomes.map((o) => o.status)).toEqual([
      ...Array.from({ length: n }, () => 'done'),
      ...Array.from({ length: 3 - n }, () => 'not-reached'),
    ]);
    expect(account.calls).toEqual(targets.slice(0, n).map((t) => `deleteSnapshot ${t.snapshotId}`));
    expect(account.snapshots.size).toBe(3 - n);
  });

  it('logs every action with its snapshot id, rule and status', async () => {
    // Prepare
    const subject = marked(daysBefore(NOW, 10));
    const account = accountWith(subject);
    const log = recordingLog();

    // Act
    await executeSnapshotPlan(work([action('delete', subject)]), account, options({ log }));

    // Assess
    expect(log.entries).toContainEqual({
      level: 'info',
      message: 'snapshot action',
      extra: [
        expect.objectContaining({ snapshotId: subject.snapshotId, rule: 'snapshot-orphan', status: 'done' }),
      ],
    });
  });
});
