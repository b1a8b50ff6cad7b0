import { describe, expect, it, vi } from 'vitest';
import { defaultPolicy, MARKED_AT_TAG } from '../../src/config/policy.ts';
import { type ExecuteOptions, executePlan } from '../../src/core/executor.ts';
import { type Deadline, unboundedDeadline } from '../../src/core/ports.ts';
import { buildReport } from '../../src/core/report.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import { OutcomeUnknownError } from '../../src/errors.ts';
import type { ActionOutcome, Image } from '../../src/model.ts';
import {
  ACCOUNT_ID,
  action,
  daysAfter,
  daysBefore,
  image,
  type LogEntry,
  NOW,
  plan,
  recordingLog,
} from './factories.ts';

function accountWith(...images: Image[]): MemoryAccount {
  return new MemoryAccount({ accountId: ACCOUNT_ID, images: structuredClone(images) });
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

function only(outcomes: readonly ActionOutcome[]): ActionOutcome {
  expect(outcomes).toHaveLength(1);
  const [first] = outcomes;
  if (!first) throw new Error('expected exactly one outcome');
  return first;
}

/** Replaces an image in the account, as if someone changed it between planning and acting. */
function changeImage(account: MemoryAccount, imageId: string, change: (current: Image) => Image): void {
  const current = account.images.get(imageId);
  if (!current) throw new Error(`${imageId} is not in the account`);
  account.images.set(imageId, change(structuredClone(current)));
}

/** An image marked long enough ago that the planner would deregister it. */
function dueImage(overrides: Partial<Image> = {}): Image {
  return image({ tags: { [MARKED_AT_TAG]: daysBefore(NOW, 10).toISOString() }, ...overrides });
}

function deregisterOf(subject: Image, shared: string[] = []) {
  return action('deregister', subject, {
    snapshotIds: subject.snapshotIds.filter((id) => !shared.includes(id)),
    sharedSnapshotIds: shared,
  });
}

describe('executePlan: dry run', () => {
  it('makes no mutating call and reports every action as dry-run', async () => {
    // Prepare
    const toMark = image();
    const toRemove = dueImage({ snapshotIds: ['snap-r1', 'snap-r2'] });
    const toUnmark = image({
      tags: { [MARKED_AT_TAG]: NOW.toISOString() },
      deprecationTime: daysAfter(NOW, 7),
    });
    const account = accountWith(toMark, toRemove, toUnmark);
    const describe = vi.spyOn(account, 'describeImages');
    const work = plan([
      action('mark', toMark, { removeAfter: daysAfter(NOW, 7).toISOString(), touchDeprecation: true }),
      deregisterOf(toRemove),
      action('unmark', toUnmark, { touchDeprecation: true }),
    ]);

    // Act
    const outcomes = await executePlan(work, account, options({ dryRun: true }));

    // Assess
    expect(account.calls).toEqual([]);
    expect(describe).not.toHaveBeenCalled();
    expect(outcomes.map((entry) => entry.status)).toEqual(['dry-run', 'dry-run', 'dry-run']);
    const removal = outcomes.find((entry) => entry.action.kind === 'deregister');
    expect(removal?.snapshots).toEqual([
      { snapshotId: 'snap-r1', status: 'dry-run' },
      { snapshotId: 'snap-r2', status: 'dry-run' },
    ]);
    expect(account.images.get(toMark.imageId)?.tags).toEqual({});
    expect(account.images.has(toRemove.imageId)).toBe(true);
  });
});

describe('executePlan: mark', () => {
  it('tags ami-janitor:marked-at with the run clock and deprecates at removeAfter', async () => {
    // Prepare
    const subject = image({ tags: { Owner: 'team-a' } });
    const account = accountWith(subject);
    const removeAfter = daysAfter(NOW, 7).toISOString();

    // Act
    const outcomes = await executePlan(
      plan([action('mark', subject, { removeAfter, touchDeprecation: true })]),
      account,
      options(),
    );

    // Assess
    const result = only(outcomes);
    expect(result.status).toBe('done');
    expect(result.warnings).toEqual([]);
    expect(account.calls).toEqual([`tagImage ${subject.imageId}`, `enableDeprecation ${subject.imageId}`]);
    const after = account.images.get(subject.imageId);
    expect(after?.tags).toEqual({ Owner: 'team-a', [MARKED_AT_TAG]: NOW.toISOString() });
    expect(after?.deprecationTime?.toISOString()).toBe(removeAfter);
  });

  it('leaves a deprecation that is not ours untouched', async () => {
    // Prepare
    const theirs = daysAfter(NOW, 90);
    const subject = image({ deprecationTime: theirs });
    const account = accountWith(subject);

    // Act
    const outcomes = await executePlan(
      plan([
        action('mark', subject, { removeAfter: daysAfter(NOW, 7).toISOString(), touchDeprecation: false }),
      ]),
      account,
      options(),
    );

    // Assess
    expect(only(outcomes).status).toBe('done');
    expect(account.calls).toEqual([`tagImage ${subject.imageId}`]);
    expect(account.images.get(subject.imageId)?.deprecationTime?.toISOString()).toBe(theirs.toISOString());
  });

  it('counts the mark as done with a warning when the deprecation fails', async () => {
    // Prepare
    const subject = image();
    const account = accountWith(subject);
    account.failNext('enableDeprecation', subject.imageId, 'UnauthorizedOperation');

    // Act
    const outcomes = await executePlan(
      plan([
        action('mark', subject, { removeAfter: daysAfter(NOW, 7).toISOString(), touchDeprecation: true }),
      ]),
      account,
      options(),
    );

    // Assess
    const result = only(outcomes);
    expect(result.status).toBe('done');
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toContain('deprecation not set (UnauthorizedOperation)');
    expect(account.images.get(subject.imageId)?.tags[MARKED_AT_TAG]).toBe(NOW.toISOString());
    expect(account.images.get(subject.imageId)?.deprecationTime).toBeUndefined();
  });

  it('fails the mark, and does not deprecate, when the tag cannot be written', async () => {
    // Prepare
    const subject = image();
    const account = accountWith(subject);
    account.failNext('tagImage', subject.imageId, 'UnauthorizedOperation');

    // Act
    const outcomes = await executePlan(
      plan([
        action('mark', subject, { removeAfter: daysAfter(NOW, 7).toISOString(), touchDeprecation: true }),
      ]),
      account,
      options(),
    );

    // Assess
    const result = only(outcomes);
    expect(result.status).toBe('failed');
    expect(result.errorCode).toBe('UnauthorizedOperation');
    expect(account.calls).toEqual([`tagImage ${subject.imageId}`]);
    expect(account.images.get(subject.imageId)?.deprecationTime).toBeUndefined();
  });
});

describe('executePlan: unmark', () => {
  it('cancels the deprecation first, then removes the tag', async () => {
    // Prepare
    const subject = image({
      tags: { Owner: 'team-a', [MARKED_AT_TAG]: daysBefore(NOW, 2).toISOString() },
      deprecationTime: daysAfter(NOW, 5),
    });
    const account = accountWith(subject);

    // Act
    const outcomes = await executePlan(
      plan([action('unmark', subject, { touchDeprecation: true })]),
      account,
      options(),
    );

    // Assess
    expect(only(outcomes)).toMatchObject({ status: 'done', detail: 'removal cancelled', warnings: [] });
    expect(account.calls).toEqual([`disableDeprecation ${subject.imageId}`, `untagImage ${subject.imageId}`]);
    const after = account.images.get(subject.imageId);
    expect(after?.tags).toEqual({ Owner: 'team-a' });
    expect(after?.deprecationTime).toBeUndefined();
  });

  it('only removes the tag when the deprecation is not ours', async () => {
    // Prepare
    const theirs = daysAfter(NOW, 90);
    const subject = image({
      tags: { [MARKED_AT_TAG]: daysBefore(NOW, 2).toISOString() },
      deprecationTime: theirs,
    });
    const account = accountWith(subject);

    // Act
    const outcomes = await executePlan(
      plan([action('unmark', subject, { touchDeprecation: false })]),
      account,
      options(),
    );

    // Assess
    expect(only(outcomes).status).toBe('done');
    expect(account.calls).toEqual([`untagImage ${subject.imageId}`]);
    expect(account.images.get(subject.imageId)?.deprecationTime?.toISOString()).toBe(theirs.toISOString());
  });
});

describe('executePlan: deregister', () => {
  it('deletes the snapshots with DeleteAssociatedSnapshots and reports each one', async () => {
    // Prepare
    const subject = dueImage({ snapshotIds: ['snap-d1', 'snap-d2'] });
    const account = accountWith(subject);
    const deregisterImage = vi.spyOn(account, 'deregisterImage');

    // Act
    const outcomes = await executePlan(plan([deregisterOf(subject)]), account, options());

    // Assess
    const result = only(outcomes);
    expect(result.status).toBe('done');
    expect(result.snapshots).toEqual([
      { snapshotId: 'snap-d1', status: 'deleted', detail: 'DeleteAssociatedSnapshots' },
      { snapshotId: 'snap-d2', status: 'deleted', detail: 'DeleteAssociatedSnapshots' },
    ]);
    expect(deregisterImage).toHaveBeenCalledWith(subject.imageId, { deleteAssociatedSnapshots: true });
    expect(account.calls).toEqual([`deregisterImage ${subject.imageId}`]);
    expect(account.images.has(subject.imageId)).toBe(false);
    expect([...account.snapshots]).toEqual([]);
  });

  it('deletes only the exclusive snapshots explicitly when one is shared, and reports the shared one skipped', async () => {
    // Prepare
    const subject = dueImage({ snapshotIds: ['snap-own', 'snap-shared'] });
    const sibling = image({ snapshotIds: ['snap-shared'] });
    const account = accountWith(subject, sibling);
    const deregisterImage = vi.spyOn(account, 'deregisterImage');

    // Act
    const outcomes = await executePlan(plan([deregisterOf(subject, ['snap-shared'])]), account, options());

    // Assess
    const result = only(outcomes);
    expect(result.status).toBe('done');
    expect(deregisterImage).toHaveBeenCalledWith(subject.imageId, { deleteAssociatedSnapshots: false });
    expect(account.calls).toEqual([`deregisterImage ${subject.imageId}`, 'deleteSnapshot snap-own']);
    expect(result.snapshots).toEqual([
      { snapshotId: 'snap-own', status: 'deleted' },
      {
        snapshotId: 'snap-shared',
        status: 'skipped',
        detail: 'kept: another image still uses this snapshot',
      },
    ]);
    expect(account.snapshots.has('snap-own')).toBe(false);
    expect(account.snapshots.has('snap-shared')).toBe(true);
    expect(account.images.has(sibling.imageId)).toBe(true);
  });

  it.each(['InvalidAMIID.NotFound', 'InvalidAMIID.Unavailable'])(
    'treats %s on deregister as already gone',
    async (code) => {
      // Prepare
      const subject = dueImage();
      const account = accountWith(subject);
      account.failNext('deregisterImage', subject.imageId, code);

      // Act
      const outcomes = await executePlan(plan([deregisterOf(subject)]), account, options());

      // Assess
      const result = only(outcomes);
      expect(result.status).toBe('already-gone');
      expect(result.detail).toContain(code);
      expect(result.snapshots).toEqual([]);
      expect(account.calls).toEqual([`deregisterImage ${subject.imageId}`]);
    },
  );

  it('skips, with a reason, a snapshot that turns out to be in use (found by DeleteAssociatedSnapshots)', async () => {
    // Prepare: an image registered after planning maps the snapshot the plan thought exclusive.
    const subject = dueImage({ snapshotIds: ['snap-x'] });
    const account = accountWith(subject, image({ snapshotIds: ['snap-x'] }));

    // Act
    const outcomes = await executePlan(plan([deregisterOf(subject)]), account, options());

    // Assess
    const result = only(outcomes);
    expect(result.status).toBe('done');
    expect(result.snapshots).toHaveLength(1);
    expect(result.snapshots[0]).toMatchObject({ snapshotId: 'snap-x', status: 'skipped' });
    expect(result.snapshots[0]?.detail).toMatch(/^in use: /);
    expect(account.snapshots.has('snap-x')).toBe(true);
  });

  it('skips, with a reason, an explicit snapshot deletion that fails with InvalidSnapshot.InUse', async () => {
    // Prepare
    const subject = dueImage({ snapshotIds: ['snap-own', 'snap-shared'] });
    const account = accountWith(subject, image({ snapshotIds: ['snap-shared'] }));
    account.failNext('deleteSnapshot', 'snap-own', 'InvalidSnapshot.InUse', 'snap-own is in use by ami-0123');

    // Act
    const outcomes = await executePlan(plan([deregisterOf(subject, ['snap-shared'])]), account, options());

    // Assess
    const result = only(outcomes);
    expect(result.status).toBe('done');
    expect(result.snapshots[0]).toEqual({
      snapshotId: 'snap-own',
      status: 'skipped',
      detail: 'in use: snap-own is in use by ami-0123',
    });
    expect(account.snapshots.has('snap-own')).toBe(true);
  });

  it('reports a snapshot deletion failure without failing the deregistration', async () => {
    // Prepare
    const subject = dueImage({ snapshotIds: ['snap-own', 'snap-shared'] });
    const account = accountWith(subject, image({ snapshotIds: ['snap-shared'] }));
    account.failNext('deleteSnapshot', 'snap-own', 'UnauthorizedOperation');

    // Act
    const outcomes = await executePlan(plan([deregisterOf(subject, ['snap-shared'])]), account, options());

    // Assess
    const result = only(outcomes);
    expect(result.status).toBe('done');
    expect(result.snapshots[0]).toMatchObject({ snapshotId: 'snap-own', status: 'failed' });
    expect(result.snapshots[0]?.detail).toContain('UnauthorizedOperation');
  });

  it('does not let one failed action stop the next', async () => {
    // Prepare
    const first = dueImage({ creationDate: daysBefore(NOW, 400) });
    const second = dueImage({ creationDate: daysBefore(NOW, 300) });
    const toMark = image();
    const toMarkToo = image();
    const account = accountWith(first, second, toMark, toMarkToo);
    account.failNext('deregisterImage', first.imageId, 'UnauthorizedOperation');
    account.failNext('tagImage', toMark.imageId, 'RequestLimitExceeded');
    const removeAfter = daysAfter(NOW, 7).toISOString();

    // Act
    const outcomes = await executePlan(
      plan([
        deregisterOf(first),
        deregisterOf(second),
        action('mark', toMark, { removeAfter, touchDeprecation: true }),
        action('mark', toMarkToo, { removeAfter, touchDeprecation: true }),
      ]),
      account,
      options(),
    );

    // Assess
    expect(outcomes.map((entry) => [entry.action.imageId, entry.status, entry.errorCode])).toEqual([
      [first.imageId, 'failed', 'UnauthorizedOperation'],
      [second.imageId, 'done', undefined],
      [toMark.imageId, 'failed', 'RequestLimitExceeded'],
      [toMarkToo.imageId, 'done', undefined],
    ]);
    expect(account.images.has(first.imageId)).toBe(true);
    expect(account.images.has(second.imageId)).toBe(false);
    expect(account.images.get(toMarkToo.imageId)?.tags[MARKED_AT_TAG]).toBe(NOW.toISOString());
  });
});

describe('executePlan: the re-check right before deregistering', () => {
  it.each([
    {
      case: 'the exempt tag was added',
      change: (current: Image): Image => ({
        ...current,
        tags: { ...current.tags, 'ami-janitor:keep': 'true' },
      }),
      detail: 'tagged ami-janitor:keep=true since planning',
    },
    {
      case: 'the exempt tag was added with other case and blanks',
      change: (current: Image): Image => ({
        ...current,
        tags: { ...current.tags, 'ami-janitor:keep': ' TRUE ' },
      }),
      detail:
        'since planning, tag ami-janitor:keep=" TRUE " looks meant as an exemption, but only the value "true" (any case, no blanks) is one; fix the value',
    },
    {
      case: 'deregistration protection was enabled',
      change: (current: Image): Image => ({ ...current, deregistrationProtection: 'enabled' }),
      detail: 'deregistration protection was turned on (enabled)',
    },
    {
      case: 'protection with cooldown was enabled',
      change: (current: Image): Image => ({ ...current, deregistrationProtection: 'enabled-with-cooldown' }),
      detail: 'deregistration protection was turned on (enabled-with-cooldown)',
    },
    {
      case: 'the owner changed',
      change: (current: Image): Image => ({ ...current, ownerId: '999988887777' }),
      detail: 'owner is now 999988887777, not this account',
    },
    {
      case: 'the marked-at tag was removed',
      change: (current: Image): Image => ({ ...current, tags: {} }),
      detail: `the ${MARKED_AT_TAG} tag was removed since planning`,
    },
    {
      case: 'the image went back to pending',
      change: (current: Image): Image => ({ ...current, state: 'pending' }),
      detail: 'image is pending',
    },
  ])('vetoes the removal when $case', async ({ change, detail }) => {
    // Prepare
    const subject = dueImage();
    const account = accountWith(subject);
    changeImage(account, subject.imageId, change);

    // Act
    const outcomes = await executePlan(plan([deregisterOf(subject)]), account, options());

    // Assess
    expect(only(outcomes)).toMatchObject({ status: 'skipped', detail });
    expect(account.calls).toEqual([]);
    expect(account.images.has(subject.imageId)).toBe(true);
    expect(account.snapshots.has(subject.snapshotIds[0] ?? '')).toBe(true);
  });

  it('does not require the marked-at tag when graceDays is 0', async () => {
    // Prepare
    const subject = image();
    const account = accountWith(subject);

    // Act
    const outcomes = await executePlan(
      plan([deregisterOf(subject)]),
      account,
      options({ policy: { ...defaultPolicy(), graceDays: 0 } }),
    );

    // Assess
    expect(only(outcomes).status).toBe('done');
    expect(account.images.has(subject.imageId)).toBe(false);
  });

  it('reports an image that vanished since planning as already gone and leaves its snapshots', async () => {
    // Prepare
    const subject = dueImage({ snapshotIds: ['snap-left'] });
    const account = accountWith(subject);
    account.images.delete(subject.imageId);

    // Act
    const outcomes = await executePlan(plan([deregisterOf(subject)]), account, options());

    // Assess
    expect(only(outcomes)).toMatchObject({ status: 'already-gone', snapshots: [] });
    expect(account.calls).toEqual([]);
    expect(account.snapshots.has('snap-left')).toBe(true);
  });

  it('fails every deregistration, and deregisters nothing, when the re-check itself fails', async () => {
    // Prepare
    const first = dueImage();
    const second = dueImage();
    const toMark = image();
    const account = accountWith(first, second, toMark);
    account.failNext('describeImages', '*', 'RequestLimitExceeded');
    const log = recordingLog();

    // Act
    const outcomes = await executePlan(
      plan([
        deregisterOf(first),
        deregisterOf(second),
        action('mark', toMark, { removeAfter: daysAfter(NOW, 7).toISOString(), touchDeprecation: false }),
      ]),
      account,
      options({ log }),
    );

    // Assess
    const removals = outcomes.filter((entry) => entry.action.kind === 'deregister');
    expect(removals.map((entry) => entry.status)).toEqual(['failed', 'failed']);
    for (const entry of removals) {
      expect(entry.errorCode).toBe('RequestLimitExceeded');
      expect(entry.detail).toMatch(/^re-check before deregistering failed/);
    }
    expect(account.calls).toEqual([`tagImage ${toMark.imageId}`]);
    expect(account.images.has(first.imageId)).toBe(true);
    expect(account.images.has(second.imageId)).toBe(true);
    expect(log.entries.filter((entry: LogEntry) => entry.level === 'error')).toHaveLength(1);
  });
});

describe('executePlan: the time budget', () => {
  it.each([0, 1, 3])(
    'stops cleanly after %i deregistrations when the remaining time drops below the reserve',
    async (n) => {
      // Prepare: plenty of time until n deregistrations have started, then less than the reserve.
      const images = Array.from({ length: 4 }, (_, index) =>
        dueImage({ creationDate: daysBefore(NOW, 400 - index) }),
      );
      const account = accountWith(...images);
      const started = () => account.calls.filter((call) => call.startsWith('deregisterImage')).length;
      const deadline: Deadline = { remainingMs: () => (started() < n ? 600_000 : 19_999) };
      const work = plan(images.map((subject) => deregisterOf(subject)));

      // Act
      const outcomes = await executePlan(work, account, options({ deadline, reserveMs: 20_000 }));

      // Assess
      expect(outcomes.map((entry) => entry.status)).toEqual([
        ...Array.from({ length: n }, () => 'done'),
        ...Array.from({ length: 4 - n }, () => 'not-reached'),
      ]);
      expect(account.calls.filter((call) => call.startsWith('deregisterImage'))).toEqual(
        images.slice(0, n).map((subject) => `deregisterImage ${subject.imageId}`),
      );
      const report = buildReport(work, outcomes, {
        mode: 'apply',
        dryRun: false,
        startedAt: NOW,
        finishedAt: NOW,
        warnings: [],
      });
      expect(report.complete).toBe(false);
      expect(report.totals.notReached).toBe(4 - n);
      expect(report.totals.deregistered).toBe(n);
    },
  );

  it('tags marks in one batch, and leaves the whole batch unreached when the budget is spent first', async () => {
    // Prepare
    const images = Array.from({ length: 4 }, () => image());
    const removeAfter = daysAfter(NOW, 7).toISOString();
    const work = plan(
      images.map((subject) => action('mark', subject, { removeAfter, touchDeprecation: false })),
    );
    const inTime = accountWith(...images);
    const late = accountWith(...images);

    // Act
    const done = await executePlan(work, inTime, options());
    const unreached = await executePlan(
      work,
      late,
      options({ deadline: { remainingMs: () => 1 }, reserveMs: 20_000 }),
    );

    // Assess
    expect(done.map((entry) => entry.status)).toEqual(['done', 'done', 'done', 'done']);
    expect(inTime.calls).toEqual(images.map((subject) => `tagImage ${subject.imageId}`));
    expect(unreached.map((entry) => entry.status)).toEqual([
      'not-reached',
      'not-reached',
      'not-reached',
      'not-reached',
    ]);
    expect(late.calls).toEqual([]);
  });

  it('reports the run complete when the budget lasts', async () => {
    // Prepare
    const subject = image();
    const account = accountWith(subject);
    const work = plan([action('mark', subject, { removeAfter: daysAfter(NOW, 7).toISOString() })]);

    // Act
    const outcomes = await executePlan(work, account, options({ deadline: { remainingMs: () => 20_000 } }));

    // Assess
    expect(only(outcomes).status).toBe('done');
    const report = buildReport(work, outcomes, {
      mode: 'apply',
      dryRun: false,
      startedAt: NOW,
      finishedAt: NOW,
      warnings: [],
    });
    expect(report.complete).toBe(true);
  });
});

describe('executePlan: order', () => {
  it('unmarks first, then deregisters and marks', async () => {
    // Prepare
    const toMark = image();
    const toRemove = dueImage();
    const toUnmark = image({
      tags: { [MARKED_AT_TAG]: NOW.toISOString() },
      deprecationTime: daysAfter(NOW, 7),
    });
    const toMarkToo = image();
    const account = accountWith(toMark, toRemove, toUnmark, toMarkToo);
    const removeAfter = daysAfter(NOW, 7).toISOString();

    // Act
    const outcomes = await executePlan(
      plan([
        action('mark', toMark, { removeAfter, touchDeprecation: false }),
        deregisterOf(toRemove),
        action('mark', toMarkToo, { removeAfter, touchDeprecation: false }),
        action('unmark', toUnmark, { touchDeprecation: true }),
      ]),
      account,
      options(),
    );

    // Assess
    expect(outcomes.map((entry) => `${entry.action.kind} ${entry.action.imageId}`)).toEqual([
      `unmark ${toUnmark.imageId}`,
      `deregister ${toRemove.imageId}`,
      `mark ${toMark.imageId}`,
      `mark ${toMarkToo.imageId}`,
    ]);
    expect(account.calls.slice(0, 2)).toEqual([
      `disableDeprecation ${toUnmark.imageId}`,
      `untagImage ${toUnmark.imageId}`,
    ]);
    expect(account.calls.slice(2).sort()).toEqual(
      [
        `deregisterImage ${toRemove.imageId}`,
        `tagImage ${toMark.imageId}`,
        `tagImage ${toMarkToo.imageId}`,
      ].sort(),
    );
  });

  it('marks while deregistrations are still in flight, since they draw on other API buckets', async () => {
    // Prepare: a deregistration that answers only when the test lets it.
    const toMark = image();
    const toRemove = dueImage();
    const account = accountWith(toMark, toRemove);
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const deregisterImage = account.deregisterImage.bind(account);
    account.deregisterImage = async (imageId, options) => {
      await released;
      return deregisterImage(imageId, options);
    };
    const removeAfter = daysAfter(NOW, 7).toISOString();

    // Act
    const run = executePlan(
      plan([deregisterOf(toRemove), action('mark', toMark, { removeAfter, touchDeprecation: false })]),
      account,
      options(),
    );
    await vi.waitFor(() => expect(account.calls).toContain(`tagImage ${toMark.imageId}`));
    const markedBeforeRelease = account.images.get(toMark.imageId)?.tags[MARKED_AT_TAG];
    release();
    const outcomes = await run;

    // Assess
    expect(markedBeforeRelease).toBe(NOW.toISOString());
    expect(outcomes.map((entry) => `${entry.action.kind} ${entry.status}`)).toEqual([
      'deregister done',
      'mark done',
    ]);
  });
});

describe('executePlan: snapshots that outlive their image', () => {
  it('leaves a snapshot the plan kept out of the deletion, deregistering without DeleteAssociatedSnapshots', async () => {
    // Prepare
    const subject = dueImage({ snapshotIds: ['snap-root', 'snap-keep'] });
    const account = accountWith(subject);
    const kept = account.snapshots.get('snap-keep');
    if (kept) kept.tags['ami-janitor:keep'] = 'true';
    const deregisterImage = vi.spyOn(account, 'deregisterImage');
    const work = plan([
      action('deregister', subject, {
        snapshotIds: ['snap-root'],
        sharedSnapshotIds: [],
        keptSnapshots: [{ snapshotId: 'snap-keep', reason: 'exempt: tagged ami-janitor:keep=true' }],
      }),
    ]);

    // Act
    const result = only(await executePlan(work, account, options()));

    // Assess
    expect(result.status).toBe('done');
    expect(deregisterImage).toHaveBeenCalledWith(subject.imageId, { deleteAssociatedSnapshots: false });
    expect(result.snapshots).toEqual([
      { snapshotId: 'snap-root', status: 'deleted' },
      { snapshotId: 'snap-keep', status: 'skipped', detail: 'exempt: tagged ami-janitor:keep=true' },
    ]);
    expect(account.images.has(subject.imageId)).toBe(false);
    expect(account.snapshots.has('snap-root')).toBe(false);
    expect(account.snapshots.has('snap-keep')).toBe(true);
  });

  it.each([
    {
      case: 'the exempt tag',
      tags: { 'ami-janitor:keep': 'TRUE' },
      detail: /exempt: tagged ami-janitor:keep=true \(since planning\)/,
    },
    {
      case: 'the exempt tag with blanks',
      tags: { 'ami-janitor:keep': ' true' },
      detail: /looks meant as an exemption/,
    },
    {
      case: 'a DLM tag',
      tags: { 'aws:dlm:lifecycle-policy-id': 'policy-1' },
      detail: /Data Lifecycle Manager/,
    },
    { case: 'an AWS Backup tag', tags: { 'aws:backup:source-resource': 'arn' }, detail: /AWS Backup/ },
  ])(
    'keeps a snapshot that got $case since planning, and still deregisters the image',
    async ({ tags, detail }) => {
      // Prepare: planned to go with its image, then tagged.
      const subject = dueImage({ snapshotIds: ['snap-root', 'snap-late'] });
      const account = accountWith(subject);
      const work = plan([deregisterOf(subject)]);
      const late = account.snapshots.get('snap-late');
      if (late) Object.assign(late.tags, tags);

      // Act
      const result = only(await executePlan(work, account, options()));

      // Assess
      expect(result.status).toBe('done');
      expect(result.snapshots).toEqual([
        { snapshotId: 'snap-root', status: 'deleted' },
        { snapshotId: 'snap-late', status: 'skipped', detail: expect.stringMatching(detail) },
      ]);
      expect(account.snapshots.has('snap-late')).toBe(true);
      expect(account.snapshots.has('snap-root')).toBe(false);
    },
  );

  it('deregisters the image alone, keeping every snapshot, when the snapshots cannot be read again', async () => {
    // Prepare
    const subject = dueImage({ snapshotIds: ['snap-a', 'snap-b'] });
    const account = accountWith(subject);
    account.failNext('describeSnapshots', '*', 'RequestLimitExceeded');
    const deregisterImage = vi.spyOn(account, 'deregisterImage');

    // Act
    const result = only(await executePlan(plan([deregisterOf(subject)]), account, options()));

    // Assess
    expect(result.status).toBe('done');
    expect(deregisterImage).toHaveBeenCalledWith(subject.imageId, { deleteAssociatedSnapshots: false });
    expect(result.snapshots.map((s) => [s.snapshotId, s.status])).toEqual([
      ['snap-a', 'skipped'],
      ['snap-b', 'skipped'],
    ]);
    expect(result.snapshots[0]?.detail).toMatch(/could not be read again \(RequestLimitExceeded\)/);
    expect([...account.snapshots.keys()].sort()).toEqual(['snap-a', 'snap-b']);
  });
});

describe('executePlan: writes that got no answer', () => {
  /** The call takes effect, then its answer is lost, as with a timeout after EC2 acted. */
  function loseAnswer<K extends 'deregisterImage' | 'deleteSnapshot'>(
    account: MemoryAccount,
    method: K,
    effect: boolean,
  ) {
    const original = account[method].bind(account) as (...args: unknown[]) => Promise<unknown>;
    vi.spyOn(account, method).mockImplementationOnce((async (...args: unknown[]) => {
      if (effect) await original(...args);
      throw new OutcomeUnknownError(method === 'deregisterImage' ? 'DeregisterImage' : 'DeleteSnapshot', {
        cause: Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }),
      });
    }) as never);
  }

  it('reports an unanswered deregistration that took effect as deregistered, and counts its snapshots deleted', async () => {
    // Prepare
    const subject = dueImage({ snapshotIds: ['snap-1', 'snap-2'] });
    const account = accountWith(subject);
    loseAnswer(account, 'deregisterImage', true);
    const work = plan([deregisterOf(subject)]);

    // Act
    const outcomes = await executePlan(work, account, options());
    const report = buildReport(work, outcomes, {
      mode: 'apply',
      dryRun: false,
      startedAt: NOW,
      finishedAt: NOW,
      warnings: [],
    });

    // Assess: the report matches the account's end state.
    const result = only(outcomes);
    expect(result.status).toBe('done');
    expect(result.detail).toMatch(/no answer came back/);
    expect(account.images.has(subject.imageId)).toBe(false);
    expect([...account.snapshots.keys()]).toEqual([]);
    expect(report.totals).toMatchObject({ deregistered: 1, alreadyGone: 0, failed: 0, snapshotsDeleted: 2 });
  });

  it('reports an unanswered deregistration that did not take effect as failed, and touches no snapshot', async () => {
    // Prepare
    const subject = dueImage({ snapshotIds: ['snap-1'] });
    const account = accountWith(subject);
    loseAnswer(account, 'deregisterImage', false);

    // Act
    const result = only(await executePlan(plan([deregisterOf(subject)]), account, options()));

    // Assess
    expect(result).toMatchObject({ status: 'failed', errorCode: 'OutcomeUnknownError' });
    expect(result.detail).toMatch(/still there/);
    expect(result.snapshots).toEqual([]);
    expect(account.images.has(subject.imageId)).toBe(true);
    expect(account.snapshots.has('snap-1')).toBe(true);
  });

  it('counts an unanswered explicit snapshot deletion that took effect as deleted', async () => {
    // Prepare: one snapshot is shared, so the others are deleted one by one.
    const subject = dueImage({ snapshotIds: ['snap-own', 'snap-shared'] });
    const sibling = image({ snapshotIds: ['snap-shared'] });
    const account = accountWith(subject, sibling);
    loseAnswer(account, 'deleteSnapshot', true);

    // Act
    const result = only(
      await executePlan(plan([deregisterOf(subject, ['snap-shared'])]), account, options()),
    );

    // Assess
    expect(result.snapshots[0]).toMatchObject({ snapshotId: 'snap-own', status: 'deleted' });
    expect(account.snapshots.has('snap-own')).toBe(false);
  });
});
