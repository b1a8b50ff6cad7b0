import { describe, expect, it, vi } from 'vitest';
import { MARKED_AT_TAG, type Policy } from '../../src/config/policy.ts';
import { continueReport, nextContinuation } from '../../src/core/continuation.ts';
import { decideBeforeReferences } from '../../src/core/image-decisions.ts';
import type { SnapshotInventoryPort } from '../../src/core/ports.ts';
import { runSweep, type SweepPorts, type SweepRequest } from '../../src/core/sweep.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import type { Image, Reference, Snapshot } from '../../src/model.ts';
import { ACCOUNT_ID, daysBefore, NOW, policy, REGION, recordingLog } from './factories.ts';

/**
 * A streaming apply acts on each image and orphan as soon as its own facts are known, while the
 * others are still being checked. These tests hold the rails that streaming must keep: nothing
 * removed before both inventories are complete, never an image before its own references are
 * known, the cap selecting exactly what the whole plan would, and a continued invocation reading
 * the references of removal candidates only.
 */

const MARKED = daysBefore(NOW, 30).toISOString();
const IN_USE: Reference = {
  resourceType: 'ec2:Instance',
  resource: 'i-0123456789abcdef0',
  detail: 'running',
};

/** `count` due images of one family (oldest first), plus its two newest, which keep-latest keeps. */
function images(count: number): Image[] {
  return Array.from({ length: count + 2 }, (_, index): Image => {
    const id = `ami-0a${index.toString(16).padStart(15, '0')}`;
    return {
      imageId: id,
      name: `app-${index + 1}`,
      ownerId: ACCOUNT_ID,
      state: 'available',
      creationDate: daysBefore(NOW, 900 - index),
      public: false,
      tags: index < count ? { [MARKED_AT_TAG]: MARKED } : ({} as Record<string, string>),
      snapshotIds: [`snap-0a${index.toString(16).padStart(15, '0')}`],
    };
  });
}

/** `count` orphans due for deletion (oldest first), and `toMark` younger ones not marked yet. */
function orphans(count: number, toMark = 0): Snapshot[] {
  return Array.from({ length: count + toMark }, (_, index): Snapshot => {
    const suffix = index.toString(16).padStart(15, '0');
    return {
      snapshotId: `snap-0b${suffix}`,
      ownerId: ACCOUNT_ID,
      volumeId: `vol-0b${suffix}`,
      volumeSizeGiB: 8,
      startTime: daysBefore(NOW, index < count ? 800 - index : 100),
      description: `Created by CreateImage(i-0123456789abcdef0) for ami-0dead${suffix.slice(-12)}`,
      state: 'completed',
      tags: index < count ? { [MARKED_AT_TAG]: MARKED } : ({} as Record<string, string>),
    };
  });
}

function setup(options: { images?: number; orphans?: number; toMark?: number; inUse?: number[] }) {
  const subjects = images(options.images ?? 0);
  const references: Record<string, Reference[]> = {};
  for (const index of options.inUse ?? []) references[subjects[index]?.imageId ?? ''] = [IN_USE];
  const account = new MemoryAccount({
    accountId: ACCOUNT_ID,
    images: structuredClone(subjects),
    snapshotIds: subjects.flatMap((subject) => subject.snapshotIds),
    snapshots: orphans(options.orphans ?? 0, options.toMark),
    references,
  });
  const ports: SweepPorts = {
    inventory: account,
    actions: account,
    log: recordingLog(),
    snapshots: { inventory: account, actions: account, sharing: account },
  };
  return { account, ports, subjects };
}

function request(overrides: Partial<SweepRequest> = {}, caps: Partial<Policy> = {}): SweepRequest {
  const base = policy({ graceDays: 7, maxRemovalsPerRun: 1000, ...caps });
  return {
    policy: {
      ...base,
      snapshots: { ...base.snapshots, maxDeletionsPerRun: caps.snapshots?.maxDeletionsPerRun ?? 1000 },
    },
    region: REGION,
    now: NOW,
    mode: 'apply',
    dryRun: false,
    deadline: { remainingMs: () => Number.POSITIVE_INFINITY },
    ...overrides,
  };
}

const CHANGES = /^(deregisterImage|deleteSnapshot|tag|untag|enable|disable)/;
const changes = (account: MemoryAccount) => account.calls.filter((call) => CHANGES.test(call));
const idsOf = (account: MemoryAccount, prefix: string) =>
  account.calls.filter((call) => call.startsWith(`${prefix} `)).map((call) => call.slice(prefix.length + 1));

/** A promise to hold a port call on until the test lets it go. */
function gate() {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

/** Deterministic waits of 0 to 3 ms, so answers come back out of the order they were asked in. */
function jitter(seed: number) {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return new Promise<void>((resolve) => setTimeout(resolve, state % 4));
  };
}

describe('streaming: nothing is removed before both inventories are complete', () => {
  it('removes no image and no orphan while the snapshot listing is still coming', async () => {
    // Prepare: the snapshot listing answers only when the test lets it; references answer at once.
    const { account, ports } = setup({ images: 230, orphans: 20 });
    const listing = gate();
    let referencesAsked = 0;
    const inventory: SnapshotInventoryPort = {
      listOwnedSnapshots: async (accountId) => {
        await listing.opened;
        return account.listOwnedSnapshots(accountId);
      },
      lockedSnapshotIds: () => account.lockedSnapshotIds(),
      existingVolumeIds: () => account.existingVolumeIds(),
      describeSnapshots: (ids) => account.describeSnapshots(ids),
    };
    const held: SweepPorts = {
      ...ports,
      inventory: {
        accountId: () => account.accountId(),
        listOwnedImages: () => account.listOwnedImages(),
        findReferences: (subjects) => {
          referencesAsked += subjects.length;
          return account.findReferences(subjects);
        },
      },
      snapshots: { inventory, actions: account, sharing: account },
    };

    // Act
    const run = runSweep(held, request());
    await vi.waitFor(() => expect(referencesAsked).toBe(230));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const before = changes(account);
    listing.open();
    const report = await run;

    // Assess: every due image's references were known and yet nothing changed until then.
    expect(before).toEqual([]);
    expect(report.totals.deregistered).toBe(230);
    expect(report.totals.orphansDeleted).toBe(20);
  });

  it('deletes no orphan while the image listing is still coming', async () => {
    // Prepare: the image listing answers only when the test lets it.
    const { account, ports } = setup({ images: 2, orphans: 20 });
    const listing = gate();
    let snapshotsListed = false;
    const inventory: SnapshotInventoryPort = {
      listOwnedSnapshots: async (accountId) => {
        const listed = await account.listOwnedSnapshots(accountId);
        snapshotsListed = true;
        return listed;
      },
      lockedSnapshotIds: () => account.lockedSnapshotIds(),
      existingVolumeIds: () => account.existingVolumeIds(),
      describeSnapshots: (ids) => account.describeSnapshots(ids),
    };
    const held: SweepPorts = {
      ...ports,
      inventory: {
        accountId: () => account.accountId(),
        listOwnedImages: async () => {
          await listing.opened;
          return account.listOwnedImages();
        },
        findReferences: (subjects) => account.findReferences(subjects),
      },
      snapshots: { inventory, actions: account, sharing: account },
    };

    // Act
    const run = runSweep(held, request());
    await vi.waitFor(() => expect(snapshotsListed).toBe(true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const before = changes(account);
    listing.open();
    const report = await run;

    // Assess: the listings overlapped, and no orphan went before the images were all known.
    expect(before).toEqual([]);
    expect(report.totals.orphansDeleted).toBe(20);
  });
});

describe('streaming: an image is never removed before its own references are known', () => {
  it('deregisters the others while one image’s references are still coming, and keeps it when they show use', async () => {
    // Prepare: the lookup of one due image is held; when it answers, something uses the image.
    const { account, ports, subjects } = setup({ images: 230 });
    const watched = subjects[5] as Image;
    const lookup = gate();
    const inventory = {
      accountId: () => account.accountId(),
      listOwnedImages: () => account.listOwnedImages(),
      findReferences: async (asked: readonly Image[]) => {
        if (asked.some((subject) => subject.imageId === watched.imageId)) await lookup.opened;
        return account.findReferences(asked);
      },
    };

    // Act
    const run = runSweep({ ...ports, inventory }, request());
    await vi.waitFor(() => expect(idsOf(account, 'deregisterImage').length).toBeGreaterThan(100));
    const whileHeld = idsOf(account, 'deregisterImage');
    account.references.set(watched.imageId, [IN_USE]);
    lookup.open();
    const report = await run;

    // Assess
    expect(whileHeld).not.toContain(watched.imageId);
    expect(idsOf(account, 'deregisterImage')).not.toContain(watched.imageId);
    expect(account.images.has(watched.imageId)).toBe(true);
    expect(report.decisions.find((d) => d.imageId === watched.imageId)).toMatchObject({
      verdict: 'keep',
      rule: 'in-use',
    });
    expect(report.totals.deregistered).toBe(229);
  });

  it('deletes orphans while the sharing of one still to be marked is coming', async () => {
    // Prepare: the share check of an orphan that is only to be marked is held.
    const { account, ports } = setup({ orphans: 20, toMark: 1 });
    const toMark = orphans(20, 1)[20] as Snapshot;
    const check = gate();
    const sharing = {
      snapshotPermissions: async (snapshotId: string) => {
        if (snapshotId === toMark.snapshotId) await check.opened;
        return account.snapshotPermissions(snapshotId);
      },
    };

    // Act
    const run = runSweep(
      { ...ports, snapshots: { inventory: account, actions: account, sharing } },
      request(),
    );
    await vi.waitFor(() => expect(idsOf(account, 'deleteSnapshot')).toHaveLength(20));
    check.open();
    const report = await run;

    // Assess: the deletions did not wait for the last share check, and the mark came after it.
    expect(report.totals.orphansDeleted).toBe(20);
    expect(report.totals.snapshotsMarked).toBe(1);
  });
});

describe('streaming: the cap selects exactly what the whole plan selects', () => {
  it.each([1, 2, 3])(
    'images, answers out of order (seed %i): the oldest that still go, up to the cap',
    async (seed) => {
      // Prepare: 240 due images, a cap of 210, three of the oldest in use; lookups answer out of order.
      const inUse = [0, 3, 150];
      const planned = setup({ images: 240, inUse });
      const { account, ports, subjects } = setup({ images: 240, inUse });
      const wait = jitter(seed);
      const inventory = {
        accountId: () => account.accountId(),
        listOwnedImages: () => account.listOwnedImages(),
        findReferences: async (asked: readonly Image[]) => {
          await wait();
          return account.findReferences(asked);
        },
      };
      const caps = { maxRemovalsPerRun: 210 };

      // Act
      const plan = await runSweep(planned.ports, request({ mode: 'plan' }, caps));
      const report = await runSweep({ ...ports, inventory }, request({}, caps));

      // Assess
      const selected = plan.actions
        .filter((o) => o.action.kind === 'deregister')
        .map((o) => o.action.imageId);
      const oldest = subjects
        .slice(0, 240)
        .filter((_, index) => !inUse.includes(index))
        .slice(0, 210)
        .map((subject) => subject.imageId);
      expect(selected).toEqual(oldest);
      expect(idsOf(account, 'deregisterImage').sort()).toEqual([...oldest].sort());
      expect(report.deferred.map((entry) => entry.imageId)).toEqual(
        plan.deferred.map((entry) => entry.imageId),
      );
      expect(report.cap).toEqual(plan.cap);
    },
  );

  it.each([1, 2, 3])(
    'orphans, share checks out of order (seed %i): the oldest not shared, up to the cap',
    async (seed) => {
      // Prepare: 230 due orphans, a cap of 205, two of the oldest shared; checks answer out of order.
      const shared = [1, 4];
      const all = orphans(230);
      const sharedWith = Object.fromEntries(
        shared.map((index) => [
          all[index]?.snapshotId ?? '',
          { public: false, accounts: ['210987654321'], organizations: [], organizationalUnits: [] },
        ]),
      );
      const build = () => {
        const account = new MemoryAccount({
          accountId: ACCOUNT_ID,
          images: [],
          snapshots: orphans(230),
          sharing: sharedWith,
        });
        return {
          account,
          ports: { inventory: account, actions: account, log: recordingLog() } as SweepPorts,
        };
      };
      const planned = build();
      const { account, ports } = build();
      const wait = jitter(seed);
      const sharing = {
        snapshotPermissions: async (snapshotId: string) => {
          await wait();
          return account.snapshotPermissions(snapshotId);
        },
      };
      const caps = { snapshots: { ...policy().snapshots, maxDeletionsPerRun: 205 } };

      // Act
      const plan = await runSweep(
        {
          ...planned.ports,
          snapshots: { inventory: planned.account, actions: planned.account, sharing: planned.account },
        },
        request({ mode: 'plan' }, caps),
      );
      const report = await runSweep(
        { ...ports, snapshots: { inventory: account, actions: account, sharing } },
        request({}, caps),
      );

      // Assess
      const oldest = all
        .filter((_, index) => !shared.includes(index))
        .slice(0, 205)
        .map((snapshot) => snapshot.snapshotId);
      const selected = plan.snapshotActions
        .filter((o) => o.action.kind === 'delete')
        .map((o) => o.action.snapshotId);
      expect(selected).toEqual(oldest);
      expect(idsOf(account, 'deleteSnapshot').sort()).toEqual([...oldest].sort());
      expect(report.snapshotDeferred.map((entry) => entry.snapshotId)).toEqual(
        plan.snapshotDeferred.map((entry) => entry.snapshotId),
      );
    },
  );
});

describe('references under a deadline', () => {
  it('are held back for images due for removal only, never for those still to be marked', async () => {
    // Prepare: 55 due images and 5 to mark (the last batch of due images is not a full one), and
    // 80 s to act at one deregistration every 10 s.
    const { account, ports, subjects } = setup({ images: 55 });
    const toMark = Array.from({ length: 5 }, (_, index) => ({
      ...(subjects[index] as Image),
      imageId: `ami-0c${index.toString(16).padStart(15, '0')}`,
      name: `app-0${index}`,
      tags: {},
    }));
    for (const subject of toMark) account.images.set(subject.imageId, structuredClone(subject));
    const actions = Object.assign(Object.create(account) as MemoryAccount, { deregistrationsPerSecond: 0.1 });

    // Act
    const report = await runSweep(
      { ...ports, actions },
      request({ deadline: { remainingMs: () => 100_000 } }),
    );

    // Assess: the first batches of due images are read (four in flight at once), the rest wait
    // for the next invocation; every image to mark is read and marked all the same.
    const waiting = report.decisions.filter((decision) => decision.rule === 'not-reached');
    expect(waiting.length).toBeGreaterThan(0);
    const due = new Set(subjects.slice(0, 55).map((subject) => subject.imageId));
    expect(waiting.every((decision) => due.has(decision.imageId))).toBe(true);
    expect(waiting[0]?.reason).toMatch(/removals already decided fill this invocation/);
    for (const subject of toMark) {
      expect(account.images.get(subject.imageId)?.tags[MARKED_AT_TAG]).toBe(NOW.toISOString());
    }
    expect(report.imageMarksLeft).toBe(false);
    expect(report.complete).toBe(false);
  });
});

describe('a continued invocation', () => {
  it('reads the references of the candidates it may remove only, and carries the decisions of the rest', async () => {
    // Prepare: 12 due images, one eligible but not marked yet, one marked 3 days ago (not due),
    // and the family's two newest, kept by keep-latest and in use, which only their references say.
    const { account, ports, subjects } = setup({ images: 12, inUse: [12, 13] });
    const unmarked = {
      ...(subjects[0] as Image),
      imageId: 'ami-0c0000000000000001',
      name: 'app-0',
      tags: {},
    };
    const waiting = {
      ...(subjects[1] as Image),
      imageId: 'ami-0c0000000000000002',
      name: 'app-00',
      tags: { [MARKED_AT_TAG]: daysBefore(NOW, 3).toISOString() },
    };
    for (const subject of [unmarked, waiting]) account.images.set(subject.imageId, structuredClone(subject));
    const all = [...subjects, unmarked, waiting];
    const first = await runSweep(ports, request({ mode: 'apply', dryRun: true }));
    const firstRun = continueReport(first, undefined, 'run-1');
    // As if its marks were done: nothing not due yet needs reading again.
    const previous = nextContinuation({ ...firstRun, complete: false, imageMarksLeft: false }, true);
    if (!previous) throw new Error('expected a continuation');
    expect(previous.marksLeft).toBe(false);
    const candidates = decideBeforeReferences(all, ACCOUNT_ID, request().policy, NOW).candidates;
    const due = subjects.slice(0, 12).map((subject) => subject.imageId);
    expect(candidates.map((subject) => subject.imageId).sort()).toEqual(
      [...due, unmarked.imageId, waiting.imageId].sort(),
    );
    const asked: string[] = [];
    const inventory = {
      accountId: () => account.accountId(),
      listOwnedImages: () => account.listOwnedImages(),
      findReferences: (lookup: readonly Image[]) => {
        asked.push(...lookup.map((subject) => subject.imageId));
        return account.findReferences(lookup);
      },
    };

    // Act
    account.calls.length = 0;
    const ran = await runSweep(
      { ...ports, inventory },
      request({ continuing: { invocation: 2, marksLeft: previous.marksLeft } }),
    );
    const merged = continueReport(ran, previous, 'run-1');

    // Assess: only the due candidates were looked up, each once; the rest is carried, and nothing
    // is done to a candidate whose references were not read.
    expect([...asked].sort()).toEqual([...due].sort());
    const carried = ran.decisions.filter((decision) => decision.carried);
    expect(carried.map((decision) => decision.imageId).sort()).toEqual(
      [unmarked.imageId, waiting.imageId, ...subjects.slice(12).map((subject) => subject.imageId)].sort(),
    );
    expect(ran.decisions.find((d) => d.imageId === unmarked.imageId)).toMatchObject({
      verdict: 'keep',
      rule: 'carried',
    });
    expect(ran.scheduled.map((entry) => entry.imageId)).toEqual([waiting.imageId]);
    expect(
      account.calls.filter((call) => call.endsWith(unmarked.imageId) || call.endsWith(waiting.imageId)),
    ).toEqual([]);
    expect(ran.totals.deregistered).toBe(12);
    expect(ran.complete).toBe(true);
    // The merged report says what the first invocation decided for them, which read their use.
    expect(first.decisions.filter((decision) => decision.rule === 'in-use')).toHaveLength(2);
    expect(merged.carried).toEqual({
      decisions: 4,
      firstInvocation: { keptByRule: { 'in-use': 2 } },
      note: expect.stringMatching(/did not read their references again/),
    });
    expect(previous.kept).toEqual({ 'in-use': 2 });
  });

  it('reads again the candidates not due yet while one may still need its mark, and marks it', async () => {
    // Prepare: the first invocation ran out of time before its mark; a continuation that says so.
    const { account, ports, subjects } = setup({ images: 2 });
    const unmarked = {
      ...(subjects[0] as Image),
      imageId: 'ami-0c0000000000000001',
      name: 'app-0',
      tags: {},
    };
    account.images.set(unmarked.imageId, structuredClone(unmarked));
    const short = { remainingMs: () => 1_000 };
    const first = await runSweep(ports, request({ deadline: short }));
    expect(first.actions.find((o) => o.action.kind === 'mark')?.status).toBe('not-reached');
    const previous = nextContinuation(continueReport(first, undefined, 'run-1'), true);
    expect(previous?.marksLeft).toBe(true);
    const asked: string[] = [];
    const inventory = {
      accountId: () => account.accountId(),
      listOwnedImages: () => account.listOwnedImages(),
      findReferences: (lookup: readonly Image[]) => {
        asked.push(...lookup.map((subject) => subject.imageId));
        return account.findReferences(lookup);
      },
    };

    // Act
    const ran = await runSweep(
      { ...ports, inventory },
      request({ continuing: { invocation: 2, marksLeft: previous?.marksLeft } }),
    );

    // Assess
    expect(asked).toContain(unmarked.imageId);
    expect(account.images.get(unmarked.imageId)?.tags[MARKED_AT_TAG]).toBe(NOW.toISOString());
    expect(ran.imageMarksLeft).toBe(false);
    expect(
      nextContinuation({ ...continueReport(ran, previous, 'run-1'), complete: false }, true)?.marksLeft,
    ).toBe(false);
  });

  it('reads every image’s references when it is the run’s first', async () => {
    // Prepare
    const { account, ports, subjects } = setup({ images: 3 });
    const asked: string[] = [];
    const inventory = {
      accountId: () => account.accountId(),
      listOwnedImages: () => account.listOwnedImages(),
      findReferences: (lookup: readonly Image[]) => {
        asked.push(...lookup.map((subject) => subject.imageId));
        return account.findReferences(lookup);
      },
    };

    // Act
    const report = await runSweep({ ...ports, inventory }, request());

    // Assess
    expect([...asked].sort()).toEqual(subjects.map((subject) => subject.imageId).sort());
    expect(report.decisions.some((decision) => decision.carried)).toBe(false);
    expect(report.carried).toBeUndefined();
  });
});
