import { describe, expect, it, vi } from 'vitest';
import { ARCHIVED_AT_TAG, DISABLED_AT_TAG, MARKED_AT_TAG, type Policy } from '../../src/config/policy.ts';
import { executePlan } from '../../src/core/executor.ts';
import type { ExecuteOptions } from '../../src/core/lifecycle-executor.ts';
import { buildPlan, type PlanInput } from '../../src/core/planner.ts';
import { unboundedDeadline } from '../../src/core/ports.ts';
import { executeSnapshotPlan, type SnapshotActionsPort } from '../../src/core/snapshot-executor.ts';
import { buildSnapshotPlan } from '../../src/core/snapshot-planner.ts';
import type { Image, PlannedAction, Snapshot, SnapshotDecision } from '../../src/model.ts';
import {
  ACCOUNT_ID,
  action,
  daysAfter,
  daysBefore,
  decision,
  image,
  NOW,
  plan,
  policy,
  REGION,
  recordingLog,
} from './factories.ts';

/** The optional steps of the one lifecycle: deprecation as a switch, disable, archive. */

const markedAgo = (days: number) => daysBefore(NOW, days).toISOString();

function imagePlan(images: Image[], overrides: Partial<Policy> = {}, extra: Partial<PlanInput> = {}) {
  return buildPlan({
    accountId: ACCOUNT_ID,
    region: REGION,
    images,
    decisions: images.map((subject) => decision(subject)),
    policy: policy(overrides),
    now: NOW,
    ...extra,
  });
}

const withDisable = (disableDays: number): Partial<Policy> => ({ removal: { deprecate: true, disableDays } });

describe('lifecycle: the disable step', () => {
  it('disables an eligible image once its grace period is over, instead of deregistering it', () => {
    const subject = image({ tags: { [MARKED_AT_TAG]: markedAgo(8) } });

    const result = imagePlan([subject], withDisable(14));

    expect(result.actions.map((a) => a.kind)).toEqual(['disable']);
    expect(result.cap).toMatchObject({ eligible: 1, capped: false });
  });

  it('schedules the deregistration disableDays after the image was disabled, then deregisters it', () => {
    const waiting = image({ tags: { [MARKED_AT_TAG]: markedAgo(20), [DISABLED_AT_TAG]: markedAgo(3) } });
    const due = image({ tags: { [MARKED_AT_TAG]: markedAgo(30), [DISABLED_AT_TAG]: markedAgo(15) } });

    const result = imagePlan([waiting, due], withDisable(14));

    expect(result.actions.map((a) => [a.kind, a.imageId])).toEqual([['deregister', due.imageId]]);
    expect(result.scheduled).toEqual([
      {
        imageId: waiting.imageId,
        name: waiting.name,
        removeAfter: daysAfter(NOW, 11).toISOString(),
        markedAt: markedAgo(20),
        next: 'deregister',
      },
    ]);
  });

  it('announces the deregistration date on the mark, and deprecates at the end of the grace period', () => {
    const subject = image();

    const [mark] = imagePlan([subject], withDisable(14)).actions;

    expect(mark).toMatchObject({
      kind: 'mark',
      removeAfter: daysAfter(NOW, 7 + 14).toISOString(),
      deprecateAt: daysAfter(NOW, 7).toISOString(),
      touchDeprecation: true,
    });
  });

  it('enables again an image this janitor disabled once it is needed, and only such an image', () => {
    const ours = image({
      state: 'disabled',
      tags: { [MARKED_AT_TAG]: markedAgo(20), [DISABLED_AT_TAG]: markedAgo(3) },
    });
    const theirs = image({ state: 'disabled', tags: { [MARKED_AT_TAG]: markedAgo(20) } });

    const result = buildPlan({
      accountId: ACCOUNT_ID,
      region: REGION,
      images: [ours, theirs],
      decisions: [ours, theirs].map((subject) =>
        decision(subject, 'keep', { rule: 'in-use', reason: 'in use by 1 resource: ec2:Instance i-1' }),
      ),
      policy: policy(withDisable(14)),
      now: NOW,
    });

    expect(result.actions.map((a) => [a.kind, a.imageId, a.enable ?? false])).toEqual([
      ['unmark', ours.imageId, true],
      ['unmark', theirs.imageId, false],
    ]);
  });

  it('counts disables and deregistrations against the same cap, oldest first', () => {
    const oldest = image({ creationDate: daysBefore(NOW, 900), tags: { [MARKED_AT_TAG]: markedAgo(8) } });
    const middle = image({
      creationDate: daysBefore(NOW, 600),
      tags: { [MARKED_AT_TAG]: markedAgo(30), [DISABLED_AT_TAG]: markedAgo(20) },
    });
    const newest = image({ creationDate: daysBefore(NOW, 300), tags: { [MARKED_AT_TAG]: markedAgo(8) } });

    const result = imagePlan([newest, middle, oldest], { ...withDisable(14), maxRemovalsPerRun: 2 });

    expect(result.actions.map((a) => [a.kind, a.imageId])).toEqual([
      ['disable', oldest.imageId],
      ['deregister', middle.imageId],
    ]);
    expect(result.deferred.map((d) => d.imageId)).toEqual([newest.imageId]);
    expect(result.cap).toEqual({ limit: 2, eligible: 3, capped: true });
  });
});

describe('lifecycle: deprecation and shared images', () => {
  it('stages by tag alone when removal.deprecate is off', () => {
    const [mark] = imagePlan([image()], { removal: { deprecate: false, disableDays: null } }).actions;
    expect(mark).toMatchObject({ kind: 'mark', touchDeprecation: false });
  });

  it('never deprecates a shared image whose use elsewhere is unknown, and requests its usage report', () => {
    const shared = image();

    const [mark] = imagePlan(
      [shared],
      {},
      {
        sharedImageIds: new Set([shared.imageId]),
        usageReportsNeeded: new Set([shared.imageId]),
      },
    ).actions;

    expect(mark).toMatchObject({ kind: 'mark', touchDeprecation: false, requestUsageReport: true });
  });

  it('keeps the mark of a shared image waiting on its use, and requests a fresh report where needed', () => {
    const waiting = image({ tags: { [MARKED_AT_TAG]: markedAgo(10) } });

    const result = buildPlan({
      accountId: ACCOUNT_ID,
      region: REGION,
      images: [waiting],
      decisions: [decision(waiting, 'keep', { rule: 'shared-use-unknown', reason: 'no usage report yet' })],
      policy: policy(),
      now: NOW,
      usageReportsNeeded: new Set([waiting.imageId]),
    });

    expect(result.actions.map((a) => a.kind)).toEqual(['request-usage-report']);
  });
});

function snapshot(overrides: Partial<Snapshot> = {}): Snapshot {
  return {
    snapshotId: 'snap-0aaaaaaaaaaaaaaa1',
    ownerId: ACCOUNT_ID,
    volumeSizeGiB: 8,
    startTime: daysBefore(NOW, 300),
    description: 'Created by CreateImage(i-0123456789abcdef0) for ami-0123456789abcdef0',
    state: 'completed',
    tags: {},
    ...overrides,
  };
}

function orphanDecision(subject: Snapshot): SnapshotDecision {
  return {
    snapshotId: subject.snapshotId,
    verdict: 'orphan',
    rule: 'snapshot-orphan',
    reason: 'made for a gone image',
    sizeGiB: 8,
  };
}

function snapshotPlan(subjects: Snapshot[], snapshots: Partial<Policy['snapshots']>) {
  return buildSnapshotPlan({
    snapshots: subjects,
    decisions: subjects.map(orphanDecision),
    policy: policy({ snapshots: { ...policy().snapshots, ...snapshots } }),
    now: NOW,
  });
}

describe('lifecycle: the archive step', () => {
  it('archives an orphan after its grace period instead of deleting it', () => {
    const subject = snapshot({ tags: { [MARKED_AT_TAG]: markedAgo(8) } });

    expect(snapshotPlan([subject], { action: 'archive' }).actions.map((a) => a.kind)).toEqual(['archive']);
  });

  it('never deletes an archived orphan unless deleteArchivedAfterDays says so', () => {
    const archived = snapshot({
      storageTier: 'archive',
      tags: { [MARKED_AT_TAG]: markedAgo(200), [ARCHIVED_AT_TAG]: markedAgo(190) },
    });

    const result = snapshotPlan([archived], { action: 'archive', deleteArchivedAfterDays: null });

    expect(result.actions).toEqual([]);
    expect(result.scheduled).toEqual([]);
  });

  it('deletes an archived orphan deleteArchivedAfterDays after archiving it, and schedules it before', () => {
    const young = snapshot({
      snapshotId: 'snap-0aaaaaaaaaaaaaaa2',
      tags: { [MARKED_AT_TAG]: markedAgo(100), [ARCHIVED_AT_TAG]: markedAgo(40) },
    });
    const old = snapshot({
      snapshotId: 'snap-0aaaaaaaaaaaaaaa3',
      tags: { [MARKED_AT_TAG]: markedAgo(200), [ARCHIVED_AT_TAG]: markedAgo(91) },
    });

    const result = snapshotPlan([young, old], { action: 'archive', deleteArchivedAfterDays: 90 });

    expect(result.actions.map((a) => [a.kind, a.snapshotId])).toEqual([['delete', old.snapshotId]]);
    expect(result.scheduled).toEqual([
      expect.objectContaining({
        snapshotId: young.snapshotId,
        removeAfter: daysAfter(NOW, 50).toISOString(),
        next: 'delete',
      }),
    ]);
  });
});

function options(overrides: Partial<ExecuteOptions> = {}): ExecuteOptions {
  return {
    dryRun: false,
    now: NOW,
    accountId: ACCOUNT_ID,
    policy: policy(),
    deadline: unboundedDeadline,
    reserveMs: 20_000,
    log: recordingLog(),
    ...overrides,
  };
}

/** A port over one image, recording every call in order. */
function imagePort(subject: Image) {
  const calls: string[] = [];
  let current = structuredClone(subject);
  const port = {
    calls,
    describeImages: vi.fn(async () => [structuredClone(current)]),
    tagImage: vi.fn(),
    untagImage: vi.fn(),
    tagResources: vi.fn(async (ids: readonly string[], tags: Record<string, string>) => {
      calls.push(`tag ${ids.join(',')} ${Object.keys(tags).join(',')}`);
      current = { ...current, tags: { ...current.tags, ...tags } };
      return new Map<string, unknown>();
    }),
    untagResources: vi.fn(async (ids: readonly string[], keys: readonly string[]) => {
      calls.push(`untag ${ids.join(',')} ${keys.join(',')}`);
      return new Map<string, unknown>();
    }),
    enableDeprecation: vi.fn(async () => {
      calls.push('enableDeprecation');
    }),
    disableDeprecation: vi.fn(async () => {
      calls.push('disableDeprecation');
    }),
    deregisterImage: vi.fn(async () => ({})),
    deleteSnapshot: vi.fn(),
    disableImage: vi.fn(async () => {
      calls.push('disableImage');
      current = { ...current, state: 'disabled' };
    }),
    enableImage: vi.fn(async () => {
      calls.push('enableImage');
      current = { ...current, state: 'available' };
    }),
  };
  return port;
}

describe('lifecycle executor: image steps', () => {
  it('records the disable with its tag first, then disables the image', async () => {
    const subject = image({ tags: { [MARKED_AT_TAG]: markedAgo(8) } });
    const port = imagePort(subject);

    const [result] = await executePlan(plan([action('disable', subject)]), port, options());

    expect(result).toMatchObject({ status: 'done', detail: 'disabled' });
    expect(port.calls).toEqual([`tag ${subject.imageId} ${DISABLED_AT_TAG}`, 'disableImage']);
  });

  it('takes the tag back when the image could not be disabled', async () => {
    const subject = image({ tags: { [MARKED_AT_TAG]: markedAgo(8) } });
    const port = imagePort(subject);
    port.disableImage.mockRejectedValueOnce(
      Object.assign(new Error('denied'), { name: 'UnauthorizedOperation' }),
    );

    const [result] = await executePlan(plan([action('disable', subject)]), port, options());

    expect(result).toMatchObject({ status: 'failed', errorCode: 'UnauthorizedOperation' });
    expect(port.calls).toEqual([
      `tag ${subject.imageId} ${DISABLED_AT_TAG}`,
      `untag ${subject.imageId} ${DISABLED_AT_TAG}`,
    ]);
  });

  it('enables an image it disabled before removing its tags on unmark, and keeps the tags when that fails', async () => {
    const subject = image({
      state: 'disabled',
      tags: { [MARKED_AT_TAG]: markedAgo(20), [DISABLED_AT_TAG]: markedAgo(3) },
    });
    const port = imagePort(subject);
    const unmark: PlannedAction = action('unmark', subject, { enable: true });

    const [result] = await executePlan(plan([unmark]), port, options());
    port.enableImage.mockRejectedValueOnce(new Error('throttled'));
    const [retried] = await executePlan(plan([unmark]), port, options());

    expect(result).toMatchObject({ status: 'done', detail: 'removal cancelled' });
    expect(port.calls.slice(0, 2)).toEqual([
      'enableImage',
      `untag ${subject.imageId} ${MARKED_AT_TAG},${DISABLED_AT_TAG}`,
    ]);
    expect(retried).toMatchObject({ status: 'failed' });
    expect(port.calls).toHaveLength(2);
  });

  it('requests a usage report with the mark of a shared image and records its id on the image', async () => {
    const subject = image();
    const port = imagePort(subject);
    const usage = { createUsageReport: vi.fn(async () => 'amiur-0123456789abcdef0') };

    const [result] = await executePlan(
      plan([
        action('mark', subject, { removeAfter: daysAfter(NOW, 7).toISOString(), requestUsageReport: true }),
      ]),
      port,
      { ...options(), usage },
    );

    expect(result).toMatchObject({ status: 'done', warnings: [] });
    expect(usage.createUsageReport).toHaveBeenCalledWith(subject.imageId);
    expect(port.tagResources).toHaveBeenLastCalledWith([subject.imageId], {
      'ami-janitor:usage-report': `amiur-0123456789abcdef0 ${NOW.toISOString()}`,
    });
  });
});

describe('lifecycle executor: the archive step', () => {
  function snapshotPort(subject: Snapshot): SnapshotActionsPort & { calls: string[] } {
    const calls: string[] = [];
    let current = structuredClone(subject);
    return {
      calls,
      describeSnapshots: async () => [structuredClone(current)],
      tagResources: async (_ids, tags) => {
        calls.push(`tag ${Object.keys(tags).join(',')}`);
        current = { ...current, tags: { ...current.tags, ...tags } };
        return new Map();
      },
      untagResources: async (_ids, keys) => {
        calls.push(`untag ${keys.join(',')}`);
        return new Map();
      },
      deleteSnapshot: async () => {
        calls.push('deleteSnapshot');
      },
      archiveSnapshot: async () => {
        calls.push('archiveSnapshot');
        current = { ...current, storageTier: 'archive' };
      },
    };
  }

  it('records the archive with its tag, then moves the snapshot to the archive tier', async () => {
    const subject = snapshot({ tags: { [MARKED_AT_TAG]: markedAgo(8) } });
    const port = snapshotPort(subject);
    const work = snapshotPlan([subject], { action: 'archive' });

    const [result] = await executeSnapshotPlan(work, port, options());

    expect(result).toMatchObject({ status: 'done', detail: 'moved to the archive tier' });
    expect(port.calls).toEqual([`tag ${ARCHIVED_AT_TAG}`, 'archiveSnapshot']);
  });
});
