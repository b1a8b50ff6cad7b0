import { describe, expect, it, vi } from 'vitest';
import { defaultPolicy, MARKED_AT_TAG, type Policy, USAGE_REPORT_TAG } from '../../src/config/policy.ts';
import type { ImageUsagePort, RecycleBinPort } from '../../src/core/ports.ts';
import { unboundedDeadline } from '../../src/core/ports.ts';
import { runSweep } from '../../src/core/sweep.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import { UnsupportedApiError } from '../../src/errors.ts';
import type { Image, ImageUsageReport, RetentionRule, SharePermissions } from '../../src/model.ts';
import { NOT_SHARED } from '../../src/model.ts';
import { ACCOUNT_ID, daysBefore, image, NOW, recordingLog } from './factories.ts';

/**
 * The sweep with the shared-image gate and the undo window: launch permissions and usage reports
 * decide a shared image's removal; the Recycle Bin keeps snapshots of binned images and says what
 * each removal can be restored from.
 */

const OTHER_ACCOUNT = '111111111111';
const SHARED: SharePermissions = { ...NOT_SHARED, accounts: [OTHER_ACCOUNT] };

function report(overrides: Partial<ImageUsageReport>): ImageUsageReport {
  return {
    reportId: 'amiur-00000000000000001',
    imageId: 'ami-0',
    state: 'available',
    createdAt: daysBefore(NOW, 5),
    entries: [],
    ...overrides,
  };
}

/** An image old and idle enough for the age rule, marked `markedDaysAgo` ago (unmarked when undefined). */
function staleImage(markedDaysAgo?: number, tags: Record<string, string> = {}): Image {
  return image({
    creationDate: daysBefore(NOW, 400),
    tags: {
      ...(markedDaysAgo === undefined
        ? {}
        : { [MARKED_AT_TAG]: daysBefore(NOW, markedDaysAgo).toISOString() }),
      ...tags,
    },
  });
}

function usagePort(options: {
  sharing?: SharePermissions | Error;
  report?: ImageUsageReport | Error;
  create?: string | Error;
}): ImageUsagePort & { [K in keyof ImageUsagePort]: ReturnType<typeof vi.fn> } {
  const answer = <T>(value: T | Error | undefined, fallback: T) =>
    vi.fn(async () => {
      if (value instanceof Error) throw value;
      return value ?? fallback;
    });
  return {
    launchPermissions: answer(options.sharing, SHARED),
    usageReport: answer(options.report, undefined as ImageUsageReport | undefined),
    createUsageReport: answer(options.create, 'amiur-00000000000000002'),
  } as never;
}

async function sweep(
  subject: Image,
  usage: ImageUsagePort | undefined,
  overrides: Partial<Policy> = {},
  recycleBin?: RecycleBinPort,
) {
  const account = new MemoryAccount({ accountId: ACCOUNT_ID, images: [structuredClone(subject)] });
  const ports = {
    inventory: account,
    actions: account,
    snapshots: { inventory: account, sharing: account, actions: account },
    log: recordingLog(),
    ...(usage ? { usage } : {}),
    ...(recycleBin ? { recycleBin } : {}),
  };
  const result = await runSweep(ports, {
    policy: { ...defaultPolicy(), dryRun: false, keepLatest: { count: 0, familyTags: [] }, ...overrides },
    region: 'eu-west-1',
    now: NOW,
    mode: 'apply',
    dryRun: false,
    deadline: unboundedDeadline,
  });
  const decision = result.decisions.find((entry) => entry.imageId === subject.imageId);
  const action = result.actions.find((entry) => entry.action.imageId === subject.imageId);
  return { account, result, decision, action };
}

describe('sweep: the shared-image gate', () => {
  it('marks a shared image without deprecating it, and requests its usage report with the mark', async () => {
    const subject = staleImage();
    const usage = usagePort({});

    const { account, action } = await sweep(subject, usage);

    expect(action).toMatchObject({ status: 'done', action: { kind: 'mark', touchDeprecation: false } });
    expect(usage.createUsageReport).toHaveBeenCalledWith(subject.imageId);
    const tags = account.images.get(subject.imageId)?.tags ?? {};
    expect(tags[MARKED_AT_TAG]).toBe(NOW.toISOString());
    expect(tags[USAGE_REPORT_TAG]).toBe(`amiur-00000000000000002 ${NOW.toISOString()}`);
    expect(account.calls.filter((call) => call.startsWith('enableDeprecation'))).toEqual([]);
  });

  it('keeps and unmarks a shared image a trusted report shows in use, naming the account', async () => {
    const subject = staleImage(10, { [USAGE_REPORT_TAG]: 'amiur-00000000000000001 x' });
    const usage = usagePort({
      report: report({
        imageId: subject.imageId,
        createdAt: daysBefore(NOW, 9),
        entries: [{ accountId: OTHER_ACCOUNT, resourceType: 'ec2:Instance', usageCount: 3 }],
      }),
    });

    const { account, decision, action } = await sweep(subject, usage);

    expect(decision).toMatchObject({ verdict: 'keep', rule: 'shared-in-use' });
    expect(decision?.reason).toMatch(/used by 3 instances .*111111111111/);
    expect(action).toMatchObject({ status: 'done', action: { kind: 'unmark' } });
    expect(account.images.get(subject.imageId)?.tags[MARKED_AT_TAG]).toBeUndefined();
  });

  it.each([
    { case: 'a pending report', report: report({ state: 'pending', createdAt: daysBefore(NOW, 9) }) },
    { case: 'a report too young to trust', report: report({ createdAt: daysBefore(NOW, 1) }) },
    {
      case: 'a failed report',
      report: report({ state: 'failed', stateReason: 'internal', createdAt: daysBefore(NOW, 9) }),
    },
    { case: 'an unreadable report', report: Object.assign(new Error('boom'), { name: 'InternalError' }) },
  ])('holds a due shared image, keeping its mark, on $case', async ({ report: answer }) => {
    const subject = staleImage(10, { [USAGE_REPORT_TAG]: 'amiur-00000000000000001 x' });
    const usage = usagePort({
      report: answer instanceof Error ? answer : { ...answer, imageId: subject.imageId },
    });

    const { account, decision } = await sweep(subject, usage);

    expect(decision).toMatchObject({ verdict: 'keep', rule: 'shared-use-unknown' });
    expect(account.images.has(subject.imageId)).toBe(true);
    expect(account.images.get(subject.imageId)?.tags[MARKED_AT_TAG]).toBeDefined();
    expect(account.calls.filter((call) => call.startsWith('deregisterImage'))).toEqual([]);
  });

  it('deregisters a due shared image once a trusted report, made after the mark, shows no use', async () => {
    const subject = staleImage(10, { [USAGE_REPORT_TAG]: 'amiur-00000000000000001 x' });
    const usage = usagePort({ report: report({ imageId: subject.imageId, createdAt: daysBefore(NOW, 9) }) });

    const { account, action } = await sweep(subject, usage);

    expect(action).toMatchObject({ status: 'done', action: { kind: 'deregister' } });
    expect(account.images.has(subject.imageId)).toBe(false);
  });

  it('never removes a shared image where usage reports are unsupported, across the grace period, and says so', async () => {
    // Prepare: the first apply marks it and finds the API missing.
    const subject = staleImage();
    const unsupported = new UnsupportedApiError('CreateImageUsageReport');
    const first = await sweep(subject, usagePort({ create: unsupported }));
    const marked = first.account.images.get(subject.imageId);
    if (!marked) throw new Error('the image went on the first run');
    const later = { ...marked, tags: { ...marked.tags, [MARKED_AT_TAG]: daysBefore(NOW, 10).toISOString() } };

    // Act: the grace period is over.
    const second = await sweep(later, usagePort({ create: unsupported, report: unsupported }));

    // Assess
    expect(first.action?.warnings.some((warning) => /not supported here/.test(warning))).toBe(true);
    expect(marked.tags[USAGE_REPORT_TAG]).toMatch(/^unsupported /);
    expect(second.decision).toMatchObject({ verdict: 'keep', rule: 'shared-use-unknown' });
    expect(second.decision?.reason).toMatch(/not supported/);
    expect(second.account.images.has(subject.imageId)).toBe(true);
  });

  it('keeps a due image whose launch permissions cannot be read', async () => {
    const subject = staleImage(10);
    const usage = usagePort({
      sharing: Object.assign(new Error('denied'), { name: 'UnauthorizedOperation' }),
    });

    const { account, decision } = await sweep(subject, usage);

    expect(decision).toMatchObject({ verdict: 'keep', rule: 'shared-use-unknown' });
    expect(account.images.has(subject.imageId)).toBe(true);
  });

  it('never removes, and unmarks, a shared image with sharedImages: keep', async () => {
    const subject = staleImage(10);

    const { decision, action } = await sweep(subject, usagePort({}), { sharedImages: 'keep' });

    expect(decision).toMatchObject({ verdict: 'keep', rule: 'shared-image-kept' });
    expect(action?.action.kind).toBe('unmark');
  });

  it('reads launch permissions only for the images the other rules would let go', async () => {
    const young = image({ creationDate: daysBefore(NOW, 3) });
    const usage = usagePort({});

    await sweep(young, usage);

    expect(usage.launchPermissions).not.toHaveBeenCalled();
  });
});

describe('sweep: the undo window', () => {
  const imageRule: RetentionRule = {
    identifier: 'rule-images',
    resourceType: 'EC2_IMAGE',
    retentionDays: 14,
    resourceTags: [],
    excludeTags: [],
    status: 'available',
  };
  const snapshotRule: RetentionRule = {
    ...imageRule,
    identifier: 'rule-snapshots',
    resourceType: 'EBS_SNAPSHOT',
    retentionDays: 7,
  };

  it('says each deregistration is recoverable until its rule ends, and finds the snapshot retention too short', async () => {
    const subject = staleImage(10);
    const bin: RecycleBinPort = {
      imagesInRecycleBin: async () => [],
      retentionRules: async () => [imageRule, snapshotRule],
    };

    const { result, action } = await sweep(subject, undefined, {}, bin);

    expect(action).toMatchObject({
      status: 'done',
      recovery: {
        recoverable: true,
        rule: 'rule-images',
        until: new Date(NOW.getTime() + 14 * 86_400_000).toISOString(),
      },
    });
    expect(result.accountFindings.map((finding) => finding.rule)).toContain('recycle-bin');
    expect(result.accountFindings.find((finding) => finding.rule === 'recycle-bin')?.reason).toMatch(
      /7.*14|14.*7/,
    );
    expect(result.cost.billedInRecycleBinUntil).toBe(new Date(NOW.getTime() + 14 * 86_400_000).toISOString());
  });

  it('reports an unknown undo window as a finding, and still sweeps', async () => {
    const subject = staleImage(10);
    const broken: RecycleBinPort = {
      imagesInRecycleBin: async () => {
        throw new UnsupportedApiError('ListImagesInRecycleBin');
      },
      retentionRules: async () => {
        throw new UnsupportedApiError('ListRules');
      },
    };

    const { result, action } = await sweep(subject, undefined, {}, broken);

    expect(action).toMatchObject({ status: 'done', action: { kind: 'deregister' } });
    expect(action?.recovery).toBeUndefined();
    expect(result.accountFindings.find((finding) => finding.rule === 'recycle-bin')?.reason).toMatch(
      /^undo window unknown/,
    );
  });

  it('keeps a snapshot whose image sits in the Recycle Bin until the image leaves it', async () => {
    // Prepare: an orphaned snapshot, made for an image that a retention rule sent to the bin.
    const binnedImageId = 'ami-0b1b1b1b1b1b1b1b1';
    const account = new MemoryAccount({
      accountId: ACCOUNT_ID,
      images: [],
      snapshots: [
        {
          snapshotId: 'snap-0b1b1b1b1b1b1b1b1',
          ownerId: ACCOUNT_ID,
          volumeSizeGiB: 8,
          startTime: daysBefore(NOW, 60),
          description: `Created by CreateImage(i-0123456789abcdef0) for ${binnedImageId}`,
          state: 'completed',
          tags: { [MARKED_AT_TAG]: daysBefore(NOW, 20).toISOString() },
        },
      ],
    });
    const leavesAt = new Date(NOW.getTime() + 5 * 86_400_000);
    const bin: RecycleBinPort = {
      imagesInRecycleBin: async () => [{ imageId: binnedImageId, leavesAt }],
      retentionRules: async () => [imageRule],
    };

    // Act
    const result = await runSweep(
      {
        inventory: account,
        actions: account,
        snapshots: { inventory: account, sharing: account, actions: account },
        recycleBin: bin,
        log: recordingLog(),
      },
      {
        policy: { ...defaultPolicy(), dryRun: false },
        region: 'eu-west-1',
        now: NOW,
        mode: 'apply',
        dryRun: false,
        deadline: unboundedDeadline,
      },
    );

    // Assess
    expect(result.snapshotDecisions).toEqual([
      expect.objectContaining({
        verdict: 'keep',
        rule: 'image-in-recycle-bin',
        reason: expect.stringMatching(leavesAt.toISOString().slice(0, 10)),
      }),
    ]);
    expect(account.snapshots.has('snap-0b1b1b1b1b1b1b1b1')).toBe(true);
  });
});

describe('sweep: shared images checked in the target accounts they are shared with', () => {
  function consumers(answer: Map<string, { resourceType: string; resource: string }[]> | Error | undefined) {
    return {
      referencesIn: vi.fn(async () => {
        if (answer instanceof Error) throw answer;
        return answer;
      }),
    };
  }

  async function sweepWith(subject: Image, port: ReturnType<typeof consumers>) {
    const account = new MemoryAccount({ accountId: ACCOUNT_ID, images: [structuredClone(subject)] });
    const result = await runSweep(
      { inventory: account, actions: account, log: recordingLog(), usage: usagePort({}), consumers: port },
      {
        policy: { ...defaultPolicy(), dryRun: false, keepLatest: { count: 0, familyTags: [] } },
        region: 'eu-west-1',
        now: NOW,
        mode: 'apply',
        dryRun: false,
        deadline: unboundedDeadline,
      },
    );
    return { account, decision: result.decisions.find((entry) => entry.imageId === subject.imageId) };
  }

  it('keeps, naming the account and what uses it, an image a target account it is shared with uses', async () => {
    const subject = staleImage(10);
    const port = consumers(
      new Map([
        [
          subject.imageId,
          [{ resourceType: 'ec2:Instance', resource: 'arn:aws:ec2:eu-west-1:111111111111:instance/i-1' }],
        ],
      ]),
    );

    const { account, decision } = await sweepWith(subject, port);

    expect(port.referencesIn).toHaveBeenCalledWith(OTHER_ACCOUNT, [
      expect.objectContaining({ imageId: subject.imageId }),
    ]);
    expect(decision).toMatchObject({ verdict: 'keep', rule: 'shared-in-use' });
    expect(decision?.reason).toMatch(/in use in target account 111111111111 \(ec2:Instance .*i-1\)/);
    expect(account.images.get(subject.imageId)?.tags[MARKED_AT_TAG]).toBeUndefined();
  });

  it('holds the image when its use in the target account cannot be read', async () => {
    const subject = staleImage(10);

    const { decision } = await sweepWith(
      subject,
      consumers(Object.assign(new Error('denied'), { name: 'AccessDenied' })),
    );

    expect(decision).toMatchObject({ verdict: 'keep', rule: 'shared-use-unknown' });
    expect(decision?.reason).toMatch(/target account 111111111111 could not be read/);
  });

  it('leaves the decision to the usage report where the account is not a target, or nothing uses it there', async () => {
    const subject = staleImage(10);

    const notATarget = await sweepWith(subject, consumers(undefined));
    const unused = await sweepWith(subject, consumers(new Map()));

    for (const { decision } of [notATarget, unused]) {
      expect(decision).toMatchObject({ verdict: 'keep', rule: 'shared-use-unknown' });
      expect(decision?.reason).toMatch(/no usable usage report/);
    }
  });
});
