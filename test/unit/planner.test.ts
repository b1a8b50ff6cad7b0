import { describe, expect, it } from 'vitest';
import { MARKED_AT_TAG, type Policy } from '../../src/config/policy.ts';
import { buildPlan, removalLimit } from '../../src/core/planner.ts';
import type { Decision, Image, Plan, PlannedAction } from '../../src/model.ts';
import { ACCOUNT_ID, daysAfter, daysBefore, decision, image, NOW, policy, REGION } from './factories.ts';

function planFor(images: Image[], decisions: Decision[], overrides: Partial<Policy> = {}, now = NOW): Plan {
  return buildPlan({
    accountId: ACCOUNT_ID,
    region: REGION,
    images,
    decisions,
    policy: policy(overrides),
    now,
  });
}

function only(actions: readonly PlannedAction[]): PlannedAction {
  expect(actions).toHaveLength(1);
  const [first] = actions;
  if (!first) throw new Error('expected exactly one action');
  return first;
}

describe('buildPlan: first detection', () => {
  it.each([
    { case: 'no deprecation yet', deprecationTime: undefined, graceDays: 7, touchDeprecation: true },
    {
      case: 'deprecation someone else set',
      deprecationTime: daysAfter(NOW, 30),
      graceDays: 7,
      touchDeprecation: false,
    },
    {
      case: 'a past deprecation',
      deprecationTime: daysBefore(NOW, 3),
      graceDays: 7,
      touchDeprecation: false,
    },
    { case: 'a shorter grace period', deprecationTime: undefined, graceDays: 2, touchDeprecation: true },
  ])('marks an eligible unmarked image ($case)', ({ deprecationTime, graceDays, touchDeprecation }) => {
    // Prepare
    const subject = image(deprecationTime ? { deprecationTime } : {});

    // Act
    const result = planFor([subject], [decision(subject)], { graceDays });

    // Assess
    expect(only(result.actions)).toEqual({
      kind: 'mark',
      imageId: subject.imageId,
      name: subject.name,
      rule: 'age',
      reason: 'created 200 days ago (limit 90)',
      removeAfter: daysAfter(NOW, graceDays).toISOString(),
      touchDeprecation,
    });
    expect(result.scheduled).toEqual([]);
    expect(result.cap).toEqual({ limit: 100, eligible: 0, capped: false });
  });

  it('re-marks an image whose marked-at value is not a date', () => {
    // Prepare
    const subject = image({ tags: { [MARKED_AT_TAG]: 'last tuesday' } });

    // Act
    const result = planFor([subject], [decision(subject)]);

    // Assess
    const marked = only(result.actions);
    expect(marked.kind).toBe('mark');
    expect(marked.removeAfter).toBe(daysAfter(NOW, 7).toISOString());
    expect(result.scheduled).toEqual([]);
  });

  it('records the clock it was given as the plan date and the inventory size', () => {
    // Prepare
    const images = [image(), image(), image()];

    // Act
    const result = planFor(
      images,
      images.map((subject) => decision(subject, 'keep')),
    );

    // Assess
    expect(result.asOf).toBe(NOW.toISOString());
    expect(result.inventorySize).toBe(3);
    expect(result.accountId).toBe(ACCOUNT_ID);
    expect(result.region).toBe(REGION);
    expect(result.decisions).toHaveLength(3);
    expect(result.actions).toEqual([]);
  });
});

describe('buildPlan: marked images', () => {
  it.each([
    { markedDaysAgo: 0, graceDays: 7 },
    { markedDaysAgo: 3, graceDays: 7 },
    { markedDaysAgo: 6.9, graceDays: 7 },
    { markedDaysAgo: 10, graceDays: 30 },
  ])(
    'schedules, without acting, an image marked $markedDaysAgo days ago with graceDays $graceDays',
    ({ markedDaysAgo, graceDays }) => {
      // Prepare
      const markedAt = daysBefore(NOW, markedDaysAgo);
      const subject = image({ tags: { [MARKED_AT_TAG]: markedAt.toISOString() } });

      // Act
      const result = planFor([subject], [decision(subject)], { graceDays });

      // Assess
      expect(result.actions).toEqual([]);
      expect(result.scheduled).toEqual([
        {
          imageId: subject.imageId,
          name: subject.name,
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
    'deregisters an image marked $markedDaysAgo days ago once graceDays $graceDays are over',
    ({ markedDaysAgo, graceDays }) => {
      // Prepare
      const markedAt = daysBefore(NOW, markedDaysAgo);
      const subject = image({ tags: { [MARKED_AT_TAG]: markedAt.toISOString() } });

      // Act
      const result = planFor([subject], [decision(subject)], { graceDays });

      // Assess
      const removal = only(result.actions);
      expect(removal).toMatchObject({ kind: 'deregister', imageId: subject.imageId, rule: 'age' });
      expect(removal.reason).toBe(
        `created 200 days ago (limit 90); marked ${markedAt.toISOString().slice(0, 10)}`,
      );
      expect(removal.snapshotIds).toEqual(subject.snapshotIds);
      expect(removal.sharedSnapshotIds).toEqual([]);
      expect(result.scheduled).toEqual([]);
      expect(result.cap).toEqual({ limit: 100, eligible: 1, capped: false });
    },
  );

  it.each<{ case: string; tags: Record<string, string> }>([
    { case: 'unmarked', tags: {} },
    { case: 'marked earlier', tags: { [MARKED_AT_TAG]: daysBefore(NOW, 1).toISOString() } },
  ])('deregisters at once with graceDays 0 ($case)', ({ tags }) => {
    // Prepare
    const subject = image({ tags });

    // Act
    const result = planFor([subject], [decision(subject)], { graceDays: 0 });

    // Assess
    expect(only(result.actions)).toMatchObject({ kind: 'deregister', imageId: subject.imageId });
    expect(result.scheduled).toEqual([]);
  });
});

describe('buildPlan: a marked image that is kept again', () => {
  const markedAt = daysBefore(NOW, 3);

  it.each([
    { case: 'deprecation is exactly ours', deprecationTime: daysAfter(markedAt, 7), touchDeprecation: true },
    {
      case: 'deprecation within a day of ours',
      deprecationTime: daysAfter(markedAt, 7.5),
      touchDeprecation: true,
    },
    {
      case: 'deprecation someone else set',
      deprecationTime: daysAfter(markedAt, 60),
      touchDeprecation: false,
    },
    { case: 'no deprecation', deprecationTime: undefined, touchDeprecation: false },
  ])('unmarks it ($case)', ({ deprecationTime, touchDeprecation }) => {
    // Prepare
    const subject = image({
      tags: { [MARKED_AT_TAG]: markedAt.toISOString() },
      ...(deprecationTime ? { deprecationTime } : {}),
    });
    const verdict = decision(subject, 'keep', { rule: 'in-use', reason: 'in use by 1 resource' });

    // Act
    const result = planFor([subject], [verdict]);

    // Assess
    expect(only(result.actions)).toEqual({
      kind: 'unmark',
      imageId: subject.imageId,
      name: subject.name,
      rule: 'in-use',
      reason: 'no longer eligible: in use by 1 resource',
      touchDeprecation,
    });
  });

  it('unmarks an image with an unreadable marked-at value but leaves its deprecation alone', () => {
    // Prepare
    const subject = image({ tags: { [MARKED_AT_TAG]: 'garbage' }, deprecationTime: daysAfter(NOW, 7) });

    // Act
    const result = planFor([subject], [decision(subject, 'keep')]);

    // Assess
    expect(only(result.actions)).toMatchObject({ kind: 'unmark', touchDeprecation: false });
  });

  it('does nothing to a kept image that was never marked', () => {
    // Prepare
    const subject = image({ deprecationTime: daysAfter(NOW, 7) });

    // Act
    const result = planFor([subject], [decision(subject, 'keep')]);

    // Assess
    expect(result.actions).toEqual([]);
    expect(result.scheduled).toEqual([]);
  });
});

describe('buildPlan: snapshots', () => {
  it('never lists a snapshot two images use among the snapshots to delete', () => {
    // Prepare: b was copied from a, so both map the same snapshot; c is kept but shares too.
    const a = image({ snapshotIds: ['snap-a', 'snap-shared'] });
    const b = image({ snapshotIds: ['snap-b', 'snap-shared'] });
    const c = image({ snapshotIds: ['snap-c', 'snap-kept-shared'] });
    const d = image({ snapshotIds: ['snap-kept-shared'] });
    const images = [a, b, c, d];

    // Act
    const result = planFor(images, [decision(a), decision(b), decision(c), decision(d, 'keep')], {
      graceDays: 0,
    });

    // Assess
    const removals = new Map(result.actions.map((entry) => [entry.imageId, entry]));
    expect(removals.get(a.imageId)).toMatchObject({
      snapshotIds: ['snap-a'],
      sharedSnapshotIds: ['snap-shared'],
    });
    expect(removals.get(b.imageId)).toMatchObject({
      snapshotIds: ['snap-b'],
      sharedSnapshotIds: ['snap-shared'],
    });
    expect(removals.get(c.imageId)).toMatchObject({
      snapshotIds: ['snap-c'],
      sharedSnapshotIds: ['snap-kept-shared'],
    });
    expect(result.actions.flatMap((entry) => entry.snapshotIds ?? [])).not.toContain('snap-shared');
  });

  it('counts an image that maps the same snapshot twice as one user', () => {
    // Prepare
    const subject = image({ snapshotIds: ['snap-twice', 'snap-twice'] });

    // Act
    const result = planFor([subject], [decision(subject)], { graceDays: 0 });

    // Assess
    expect(only(result.actions).sharedSnapshotIds).toEqual([]);
  });

  it('deletes no snapshot when deleteSnapshots is false', () => {
    // Prepare
    const a = image({ snapshotIds: ['snap-a1', 'snap-a2', 'snap-shared'] });
    const b = image({ snapshotIds: ['snap-shared'] });

    // Act
    const result = planFor([a, b], [decision(a), decision(b, 'keep')], {
      graceDays: 0,
      deleteSnapshots: false,
    });

    // Assess
    const removal = only(result.actions);
    expect(removal.kind).toBe('deregister');
    expect(removal.snapshotIds).toEqual([]);
  });

  it('with deleteSnapshots false, lists as shared only the snapshots another image really uses', () => {
    // Prepare: sharedSnapshotIds means "kept because another image still uses them" (model.ts),
    // and the executor reports each one with that reason; an exclusive snapshot must not be.
    const a = image({ snapshotIds: ['snap-a1', 'snap-a2', 'snap-shared'] });
    const b = image({ snapshotIds: ['snap-shared'] });

    // Act
    const result = planFor([a, b], [decision(a), decision(b, 'keep')], {
      graceDays: 0,
      deleteSnapshots: false,
    });

    // Assess
    expect(only(result.actions).sharedSnapshotIds).toEqual(['snap-shared']);
  });
});

describe('buildPlan: the blast-radius cap', () => {
  /** `count` eligible images, all past their grace period, created 100..100+count days ago. */
  function dueImages(count: number): Image[] {
    return Array.from({ length: count }, (_, index) =>
      image({
        creationDate: daysBefore(NOW, 100 + index * 10),
        tags: { [MARKED_AT_TAG]: daysBefore(NOW, 30).toISOString() },
      }),
    );
  }

  it.each([
    { perRun: 100, percent: null, inventory: 50, limit: 100 },
    { perRun: 2, percent: null, inventory: 50, limit: 2 },
    { perRun: 0, percent: null, inventory: 50, limit: 0 },
    { perRun: 100, percent: 10, inventory: 50, limit: 5 },
    { perRun: 3, percent: 50, inventory: 50, limit: 3 },
    { perRun: 100, percent: 25, inventory: 10, limit: 2 },
    { perRun: 100, percent: 1, inventory: 50, limit: 0 },
    { perRun: 100, percent: 100, inventory: 7, limit: 7 },
  ])(
    'allows $limit removals with maxRemovalsPerRun $perRun, maxRemovalsPercent $percent of $inventory',
    ({ perRun, percent, inventory, limit }) => {
      // Act
      const result = removalLimit({ maxRemovalsPerRun: perRun, maxRemovalsPercent: percent }, inventory);

      // Assess
      expect(result).toBe(limit);
    },
  );

  it('removes the oldest first up to the absolute cap and defers the rest with a reason', () => {
    // Prepare: shuffled so the order cannot come from the input.
    const due = dueImages(5);
    const [d0, d1, d2, d3, d4] = due;
    if (!d0 || !d1 || !d2 || !d3 || !d4) throw new Error('expected five images');
    const images = [d2, d0, d4, d1, d3];

    // Act
    const result = planFor(
      images,
      images.map((subject) => decision(subject)),
      { maxRemovalsPerRun: 2 },
    );

    // Assess
    expect(result.actions.map((entry) => entry.imageId)).toEqual([d4.imageId, d3.imageId]);
    expect(result.actions.every((entry) => entry.kind === 'deregister')).toBe(true);
    expect(result.deferred.map((entry) => entry.imageId)).toEqual([d2.imageId, d1.imageId, d0.imageId]);
    for (const entry of result.deferred) {
      expect(entry.reason).toBe('blast-radius cap reached (2 removals per run); deferred to a later run');
    }
    expect(result.cap).toEqual({ limit: 2, eligible: 5, capped: true });
  });

  it('applies the percentage of the whole inventory when it is the smaller cap', () => {
    // Prepare: 4 due among 20 images; 10% of 20 = 2, smaller than the absolute 3.
    const due = dueImages(4);
    const kept = Array.from({ length: 16 }, () => image());
    const images = [...due, ...kept];
    const decisions = [
      ...due.map((subject) => decision(subject)),
      ...kept.map((subject) => decision(subject, 'keep')),
    ];

    // Act
    const result = planFor(images, decisions, { maxRemovalsPerRun: 3, maxRemovalsPercent: 10 });

    // Assess
    expect(result.cap).toEqual({ limit: 2, eligible: 4, capped: true });
    expect(result.actions.map((entry) => entry.imageId)).toEqual([due[3]?.imageId, due[2]?.imageId]);
    expect(result.deferred).toHaveLength(2);
  });

  it('applies the absolute cap when it is the smaller one', () => {
    // Prepare: 50% of 4 = 2, but only 1 per run.
    const due = dueImages(4);

    // Act
    const result = planFor(
      due,
      due.map((subject) => decision(subject)),
      {
        maxRemovalsPerRun: 1,
        maxRemovalsPercent: 50,
      },
    );

    // Assess
    expect(result.cap).toEqual({ limit: 1, eligible: 4, capped: true });
    expect(result.actions.map((entry) => entry.imageId)).toEqual([due[3]?.imageId]);
  });

  it('breaks a tie in creation date by image id so the order is stable', () => {
    // Prepare
    const creationDate = daysBefore(NOW, 300);
    const marked = { [MARKED_AT_TAG]: daysBefore(NOW, 30).toISOString() };
    const images = ['ami-0000000000000000c', 'ami-0000000000000000a', 'ami-0000000000000000b'].map(
      (imageId) => image({ imageId, creationDate, tags: marked }),
    );

    // Act
    const result = planFor(
      images,
      images.map((subject) => decision(subject)),
      { maxRemovalsPerRun: 2 },
    );

    // Assess
    expect(result.actions.map((entry) => entry.imageId)).toEqual([
      'ami-0000000000000000a',
      'ami-0000000000000000b',
    ]);
    expect(result.deferred.map((entry) => entry.imageId)).toEqual(['ami-0000000000000000c']);
  });

  it('is not capped when every due image fits', () => {
    // Prepare
    const due = dueImages(3);

    // Act
    const result = planFor(
      due,
      due.map((subject) => decision(subject)),
      { maxRemovalsPerRun: 3 },
    );

    // Assess
    expect(result.cap).toEqual({ limit: 3, eligible: 3, capped: false });
    expect(result.actions).toHaveLength(3);
    expect(result.deferred).toEqual([]);
  });

  it('never caps marks: marking is cheap and reversible', () => {
    // Prepare
    const fresh = Array.from({ length: 4 }, () => image());

    // Act
    const result = planFor(
      fresh,
      fresh.map((subject) => decision(subject)),
      { maxRemovalsPerRun: 1 },
    );

    // Assess
    expect(result.actions.map((entry) => entry.kind)).toEqual(['mark', 'mark', 'mark', 'mark']);
    expect(result.cap).toEqual({ limit: 1, eligible: 0, capped: false });
    expect(result.deferred).toEqual([]);
  });
});
