import { describe, expect, it } from 'vitest';
import { type Policy, parsePolicy } from '../../src/config/policy.ts';
import { NOT_SHARED, type SharePermissions, type Snapshot, type SnapshotFacts } from '../../src/model.ts';
import { evaluateSnapshot, imageNamedBy, snapshotSizeGiB } from '../../src/rules/snapshot-orphan.ts';
import { ACCOUNT_ID, DAY_MS, daysBefore, NOW } from './factories.ts';

const OTHER_ACCOUNT = '444455556666';
const INSTANCE = 'i-0123456789abcdef0';
/** The image the default snapshot was made for; it is not in the inventory, so the snapshot is an orphan. */
const GONE_IMAGE = 'ami-0123456789abcdef0';
const LIVE_IMAGE = 'ami-0fedcba9876543210';
const DISABLED_IMAGE = 'ami-0d15ab1ed0000000a';
const GIB = 1024 ** 3;

const createdFor = (imageId: string) => `Created by CreateImage(${INSTANCE}) for ${imageId}`;
const copiedFor = (imageId: string) =>
  `Copied for DestinationAmi ${imageId} from SourceAmi ami-0aaaaaaaaaaaaaaa1 for SourceSnapshot snap-0aaaaaaaaaaaaaaa1. Task created on 1,700,000,000,000.`;

/** An old snapshot, owned here, made by CreateImage for an image that no longer exists: an orphan. */
function snapshot(overrides: Partial<Snapshot> = {}): Snapshot {
  return {
    snapshotId: 'snap-0123456789abcdef0',
    ownerId: ACCOUNT_ID,
    volumeId: 'vol-0123456789abcdef0',
    volumeSizeGiB: 8,
    startTime: daysBefore(NOW, 30),
    description: createdFor(GONE_IMAGE),
    state: 'completed',
    tags: {},
    ...overrides,
  };
}

/** Facts of a snapshot no image uses, not locked, with sharing read and found private. */
function facts(overrides: Partial<SnapshotFacts> = {}): SnapshotFacts {
  return {
    accountId: ACCOUNT_ID,
    usedBy: [],
    existingImageIds: new Set([LIVE_IMAGE]),
    locked: false,
    sharing: NOT_SHARED,
    ...overrides,
  };
}

function policy(snapshots: Record<string, unknown> = {}, rest: Record<string, unknown> = {}): Policy {
  return parsePolicy({ snapshots, ...rest });
}

describe('imageNamedBy', () => {
  it.each([
    { case: 'CreateImage', description: createdFor(GONE_IMAGE), expected: GONE_IMAGE },
    {
      case: 'CreateImage with trailing text',
      description: `${createdFor(GONE_IMAGE)} from vol-0123456789abcdef0`,
      expected: GONE_IMAGE,
    },
    {
      case: 'CreateImage with an 8-digit id',
      description: createdFor('ami-1234abcd'),
      expected: 'ami-1234abcd',
    },
    { case: 'CopyImage', description: copiedFor(GONE_IMAGE), expected: GONE_IMAGE },
    {
      case: 'CopyImage names the destination, not the source',
      description: copiedFor(LIVE_IMAGE),
      expected: LIVE_IMAGE,
    },
  ])('reads the image from a $case description', ({ description, expected }) => {
    // Act
    const imageId = imageNamedBy(description);

    // Assess
    expect(imageId).toBe(expected);
  });

  it.each([
    { case: 'empty', description: '' },
    { case: 'no instance and no id', description: 'Created by CreateImage for ami-' },
    { case: 'no instance', description: `Created by CreateImage for ${GONE_IMAGE}` },
    { case: 'an empty image id', description: `Created by CreateImage(${INSTANCE}) for ami-` },
    { case: 'a bare id', description: GONE_IMAGE },
    { case: 'a non-hex id', description: 'ami-xyz' },
    { case: 'an id too short to be one', description: createdFor('ami-0123') },
    {
      case: 'a non-hex id after CreateImage',
      description: `Created by CreateImage(${INSTANCE}) for ami-xyz`,
    },
    { case: 'a non-hex id after CopyImage', description: 'Copied for DestinationAmi ami-xyz' },
    { case: 'free text', description: 'nightly backup of the reporting database volume' },
    { case: 'a lower-case prefix', description: `created by createimage(${INSTANCE}) for ${GONE_IMAGE}` },
    { case: 'an upper-case prefix', description: `CREATED BY CREATEIMAGE(${INSTANCE}) FOR ${GONE_IMAGE}` },
    { case: 'an upper-case copy prefix', description: `copied for destinationami ${GONE_IMAGE}` },
    { case: 'an upper-case AMI- prefix', description: createdFor('AMI-0123456789ABCDEF0') },
    // EC2 ids are lower-case hex; reading the leading digits of `ami-0123456789ABCDEF0` would name
    // `ami-0123456789`, an image that never existed, and so turn the snapshot into an orphan.
    { case: 'an id with upper-case hex', description: createdFor('ami-0123456789ABCDEF0') },
    { case: 'a copy id with upper-case hex', description: copiedFor('ami-0123456789ABCDEF0') },
  ])('names no image for a malformed description ($case)', ({ description }) => {
    // Act
    const imageId = imageNamedBy(description);

    // Assess
    expect(imageId).toBeUndefined();
  });
});

describe('snapshotSizeGiB', () => {
  it.each([
    { case: 'full size present', fullSizeBytes: 12 * GIB, volumeSizeGiB: 100, expected: 12 },
    { case: 'fractional full size', fullSizeBytes: 11.5 * GIB, volumeSizeGiB: 30, expected: 11.5 },
    { case: 'full size of zero', fullSizeBytes: 0, volumeSizeGiB: 30, expected: 0 },
    { case: 'no full size', fullSizeBytes: undefined, volumeSizeGiB: 30, expected: 30 },
  ])('$case → $expected GiB', ({ fullSizeBytes, volumeSizeGiB, expected }) => {
    // Prepare
    const subject = snapshot({ volumeSizeGiB, ...(fullSizeBytes === undefined ? {} : { fullSizeBytes }) });

    // Act
    const size = snapshotSizeGiB(subject);

    // Assess
    expect(size).toBe(expected);
  });
});

describe('evaluateSnapshot: the orphan verdict', () => {
  it.each([
    { case: 'CreateImage', description: createdFor(GONE_IMAGE) },
    { case: 'CopyImage', description: copiedFor(GONE_IMAGE) },
  ])('a $case snapshot whose image is gone is an orphan', ({ description }) => {
    // Prepare
    const subject = snapshot({ description, volumeSizeGiB: 30, fullSizeBytes: 12 * GIB });

    // Act
    const decision = evaluateSnapshot(subject, facts(), policy(), NOW);

    // Assess
    expect(decision).toEqual({
      snapshotId: subject.snapshotId,
      verdict: 'orphan',
      rule: 'snapshot-orphan',
      reason: `made for image ${GONE_IMAGE}, which no longer exists`,
      sizeGiB: 12,
      imageId: GONE_IMAGE,
    });
  });

  it.each([
    { case: 'CreateImage', description: createdFor(LIVE_IMAGE) },
    { case: 'CopyImage', description: copiedFor(LIVE_IMAGE) },
  ])('a $case snapshot whose image still exists is kept', ({ description }) => {
    // Act
    const decision = evaluateSnapshot(snapshot({ description }), facts(), policy(), NOW);

    // Assess
    expect(decision).toMatchObject({
      verdict: 'keep',
      rule: 'image-exists',
      reason: `its image ${LIVE_IMAGE} still exists`,
      imageId: LIVE_IMAGE,
    });
  });

  it('sharing not read yet does not count: the sweep reads it for candidates only', () => {
    // Prepare
    const { sharing: _unread, ...unread } = facts();

    // Act
    const decision = evaluateSnapshot(snapshot(), unread, policy(), NOW);

    // Assess
    expect(decision.verdict).toBe('orphan');
  });

  it('reads the clock it is given, not the wall clock', () => {
    // Prepare
    const subject = snapshot({ startTime: new Date('2020-01-01T00:00:00Z') });

    // Act
    const before = evaluateSnapshot(subject, facts(), policy(), new Date('2020-01-03T00:00:00Z'));
    const after = evaluateSnapshot(subject, facts(), policy(), new Date('2020-01-09T00:00:00Z'));

    // Assess
    expect(before.rule).toBe('too-young');
    expect(after.verdict).toBe('orphan');
  });
});

describe('evaluateSnapshot: guards', () => {
  const shared = (overrides: Partial<SharePermissions>): SharePermissions => ({
    ...NOT_SHARED,
    ...overrides,
  });

  it.each([
    {
      case: 'owned by another account',
      subject: snapshot({ ownerId: OTHER_ACCOUNT }),
      facts: facts(),
      rule: 'not-owned',
      reason: new RegExp(`owned by account ${OTHER_ACCOUNT}`),
    },
    {
      case: 'used by an image',
      subject: snapshot(),
      facts: facts({ usedBy: [LIVE_IMAGE] }),
      rule: 'in-use',
      reason: new RegExp(`used by image ${LIVE_IMAGE}`),
    },
    {
      // The facts carry only ids: a disabled or deprecated image is listed like any other.
      case: 'used by a disabled or deprecated image',
      subject: snapshot(),
      facts: facts({ usedBy: [DISABLED_IMAGE], existingImageIds: new Set([LIVE_IMAGE, DISABLED_IMAGE]) }),
      rule: 'in-use',
      reason: new RegExp(`used by image ${DISABLED_IMAGE}`),
    },
    {
      case: 'used by two images',
      subject: snapshot(),
      facts: facts({ usedBy: [LIVE_IMAGE, 'ami-0bbbbbbbbbbbbbbb2'] }),
      rule: 'in-use',
      reason: new RegExp(`${LIVE_IMAGE}, ami-0bbbbbbbbbbbbbbb2`),
    },
    {
      case: 'locked',
      subject: snapshot(),
      facts: facts({ locked: true }),
      rule: 'locked',
      reason: /locked by a snapshot lock/,
    },
    {
      case: 'exempt',
      subject: snapshot({ tags: { 'ami-janitor:keep': 'true' } }),
      facts: facts(),
      rule: 'exempt-tag',
      reason: /exempt: tagged ami-janitor:keep=true/,
    },
    {
      case: 'exempt, value in another case',
      subject: snapshot({ tags: { 'ami-janitor:keep': 'TRUE' } }),
      facts: facts(),
      rule: 'exempt-tag',
      reason: /exempt/,
    },
    {
      case: 'exempt, value with blanks and mixed case',
      subject: snapshot({ tags: { 'ami-janitor:keep': ' True ' } }),
      facts: facts(),
      rule: 'exempt-tag',
      reason: /exempt/,
    },
    {
      case: 'DLM-managed',
      subject: snapshot({ tags: { 'aws:dlm:lifecycle-policy-id': 'policy-0123456789abcdef0' } }),
      facts: facts(),
      rule: 'dlm-managed',
      reason: /Data Lifecycle Manager \(tag aws:dlm:lifecycle-policy-id\)/,
    },
    {
      case: 'DLM-managed (another aws:dlm: key)',
      subject: snapshot({ tags: { 'aws:dlm:lifecycle-schedule-name': 'daily' } }),
      facts: facts(),
      rule: 'dlm-managed',
      reason: /aws:dlm:lifecycle-schedule-name/,
    },
    {
      case: 'Backup-managed',
      subject: snapshot({ tags: { 'aws:backup:source-resource': 'arn:aws:ec2:eu-west-1:1:volume/vol-1' } }),
      facts: facts(),
      rule: 'backup-managed',
      reason: /AWS Backup \(tag aws:backup:source-resource\)/,
    },
    {
      case: 'Backup-managed (source-resource-arn)',
      subject: snapshot({
        tags: { 'aws:backup:source-resource-arn': 'arn:aws:ec2:eu-west-1:1:volume/vol-1' },
      }),
      facts: facts(),
      rule: 'backup-managed',
      reason: /aws:backup:source-resource-arn/,
    },
    {
      case: 'shared with an account',
      subject: snapshot(),
      facts: facts({ sharing: shared({ accounts: [OTHER_ACCOUNT] }) }),
      rule: 'shared',
      reason: /shared with other accounts/,
    },
    {
      case: 'public',
      subject: snapshot(),
      facts: facts({ sharing: shared({ public: true }) }),
      rule: 'shared',
      reason: /shared with other accounts/,
    },
    {
      case: 'shared with an organization',
      subject: snapshot(),
      facts: facts({
        sharing: shared({ organizations: ['arn:aws:organizations::123456789012:organization/o-abc'] }),
      }),
      rule: 'shared',
      reason: /shared/,
    },
    {
      case: 'shared with an OU',
      subject: snapshot(),
      facts: facts({
        sharing: shared({ organizationalUnits: ['arn:aws:organizations::123456789012:ou/o-abc/ou-ab-cd'] }),
      }),
      rule: 'shared',
      reason: /shared/,
    },
    {
      case: 'sharing could not be read',
      subject: snapshot(),
      facts: facts({ sharing: 'unknown' }),
      rule: 'shared',
      reason: /could not be read/,
    },
  ])('keeps a snapshot $case', ({ subject, facts: given, rule, reason }) => {
    // Act
    const decision = evaluateSnapshot(subject, given, policy(), NOW);

    // Assess
    expect(decision.verdict).toBe('keep');
    expect(decision.rule).toBe(rule);
    expect(decision.reason).toMatch(reason);
    expect(decision.snapshotId).toBe(subject.snapshotId);
  });

  it('an exempt tag with another value does not protect', () => {
    // Act
    const decision = evaluateSnapshot(
      snapshot({ tags: { 'ami-janitor:keep': 'false' } }),
      facts(),
      policy(),
      NOW,
    );

    // Assess
    expect(decision.verdict).toBe('orphan');
  });

  it('honours a configured exempt tag', () => {
    // Prepare
    const custom = policy({}, { exemptTag: { key: 'retain', value: 'Yes' } });

    // Act
    const exempt = evaluateSnapshot(snapshot({ tags: { retain: 'yes' } }), facts(), custom, NOW);
    const defaultKey = evaluateSnapshot(
      snapshot({ tags: { 'ami-janitor:keep': 'true' } }),
      facts(),
      custom,
      NOW,
    );

    // Assess
    expect(exempt).toMatchObject({
      verdict: 'keep',
      rule: 'exempt-tag',
      reason: 'exempt: tagged retain=Yes',
    });
    expect(defaultKey.verdict).toBe('orphan');
  });

  it.each<{ case: string; tags: Record<string, string> }>([
    { case: 'a tag merely mentioning backup', tags: { 'aws:backup:vault': 'main' } },
    { case: 'a user tag named like DLM', tags: { 'dlm:policy': 'x' } },
  ])('$case is no guard', ({ tags }) => {
    // Act
    const decision = evaluateSnapshot(snapshot({ tags }), facts(), policy(), NOW);

    // Assess
    expect(decision.verdict).toBe('orphan');
  });
});

describe('evaluateSnapshot: minimum age', () => {
  it.each([
    { ageDays: 0, minAgeDays: 7, verdict: 'keep' },
    { ageDays: 6, minAgeDays: 7, verdict: 'keep' },
    { ageDays: 6.99, minAgeDays: 7, verdict: 'keep' },
    { ageDays: 7, minAgeDays: 7, verdict: 'orphan' },
    { ageDays: 8, minAgeDays: 7, verdict: 'orphan' },
    { ageDays: 29, minAgeDays: 30, verdict: 'keep' },
    { ageDays: 30, minAgeDays: 30, verdict: 'orphan' },
    { ageDays: 0, minAgeDays: 0, verdict: 'orphan' },
  ])(
    'started $ageDays days ago with minAgeDays $minAgeDays → $verdict',
    ({ ageDays, minAgeDays, verdict }) => {
      // Prepare
      const subject = snapshot({ startTime: new Date(NOW.getTime() - ageDays * DAY_MS) });

      // Act
      const decision = evaluateSnapshot(subject, facts(), policy({ minAgeDays }), NOW);

      // Assess
      expect(decision.verdict).toBe(verdict);
      if (verdict === 'keep') {
        expect(decision.rule).toBe('too-young');
        expect(decision.reason).toBe(`started ${Math.floor(ageDays)} days ago (minimum ${minAgeDays})`);
      }
    },
  );

  it('defaults to seven days', () => {
    // Act
    const six = evaluateSnapshot(snapshot({ startTime: daysBefore(NOW, 6) }), facts(), parsePolicy({}), NOW);
    const seven = evaluateSnapshot(
      snapshot({ startTime: daysBefore(NOW, 7) }),
      facts(),
      parsePolicy({}),
      NOW,
    );

    // Assess
    expect(six.rule).toBe('too-young');
    expect(seven.verdict).toBe('orphan');
  });
});

describe('evaluateSnapshot: guard order', () => {
  const everything = {
    'ami-janitor:keep': 'true',
    'aws:dlm:lifecycle-policy-id': 'policy-1',
    'aws:backup:source-resource': 'arn:aws:ec2:eu-west-1:1:volume/vol-1',
  };

  it.each([
    {
      case: 'not owned beats everything',
      subject: snapshot({ ownerId: OTHER_ACCOUNT, startTime: daysBefore(NOW, 1), tags: everything }),
      facts: facts({ usedBy: [LIVE_IMAGE], locked: true, sharing: 'unknown' }),
      rule: 'not-owned',
    },
    {
      case: 'in use beats too young, locked and tags',
      subject: snapshot({ startTime: daysBefore(NOW, 1), tags: everything }),
      facts: facts({ usedBy: [LIVE_IMAGE], locked: true }),
      rule: 'in-use',
    },
    {
      case: 'too young beats locked and tags',
      subject: snapshot({ startTime: daysBefore(NOW, 1), tags: everything }),
      facts: facts({ locked: true }),
      rule: 'too-young',
    },
    {
      case: 'locked beats exempt',
      subject: snapshot({ tags: { 'ami-janitor:keep': 'true' } }),
      facts: facts({ locked: true }),
      rule: 'locked',
    },
    {
      case: 'exempt beats DLM and Backup',
      subject: snapshot({ tags: everything }),
      facts: facts(),
      rule: 'exempt-tag',
    },
    {
      case: 'DLM beats Backup',
      subject: snapshot({
        tags: {
          'aws:dlm:lifecycle-policy-id': 'policy-1',
          'aws:backup:source-resource': 'arn:aws:ec2:eu-west-1:1:volume/vol-1',
        },
      }),
      facts: facts(),
      rule: 'dlm-managed',
    },
    {
      case: 'Backup beats an existing image',
      subject: snapshot({
        description: createdFor(LIVE_IMAGE),
        tags: { 'aws:backup:source-resource': 'arn:aws:ec2:eu-west-1:1:volume/vol-1' },
      }),
      facts: facts(),
      rule: 'backup-managed',
    },
    {
      case: 'an existing image beats sharing',
      subject: snapshot({ description: createdFor(LIVE_IMAGE) }),
      facts: facts({ sharing: 'unknown' }),
      rule: 'image-exists',
    },
  ])('$case', ({ subject, facts: given, rule }) => {
    // Act
    const decision = evaluateSnapshot(subject, given, policy(), NOW);

    // Assess
    expect(decision).toMatchObject({ verdict: 'keep', rule });
  });
});

describe('evaluateSnapshot: modes', () => {
  const manual = (overrides: Partial<Snapshot> = {}) =>
    snapshot({ description: 'nightly backup of the reporting database volume', ...overrides });

  it.each([
    { case: 'volume gone', volumeExists: false },
    { case: 'volume still there', volumeExists: true },
    { case: 'volumes not listed', volumeExists: undefined },
  ])('ami-orphans keeps a snapshot not made for an image ($case)', ({ volumeExists }) => {
    // Prepare
    const given = facts(volumeExists === undefined ? {} : { volumeExists });

    // Act
    const decision = evaluateSnapshot(manual(), given, policy(), NOW);

    // Assess
    expect(decision).toMatchObject({ verdict: 'keep', rule: 'not-an-image-snapshot' });
    expect(decision.reason).toMatch(/mode ami-orphans/);
    expect(decision.imageId).toBeUndefined();
  });

  it('ami-orphans is the default mode', () => {
    expect(parsePolicy({}).snapshots.mode).toBe('ami-orphans');
  });

  it('all-unreferenced: a snapshot whose volume is gone is an orphan', () => {
    // Prepare
    const subject = manual({ volumeId: 'vol-0aaaaaaaaaaaaaaa1' });

    // Act
    const decision = evaluateSnapshot(
      subject,
      facts({ volumeExists: false }),
      policy({ mode: 'all-unreferenced' }),
      NOW,
    );

    // Assess
    expect(decision).toEqual({
      snapshotId: subject.snapshotId,
      verdict: 'orphan',
      rule: 'snapshot-orphan',
      reason: 'no image uses it and its source volume vol-0aaaaaaaaaaaaaaa1 no longer exists',
      sizeGiB: 8,
    });
  });

  it('all-unreferenced: a snapshot whose volume exists is kept', () => {
    // Act
    const decision = evaluateSnapshot(
      manual({ volumeId: 'vol-0aaaaaaaaaaaaaaa1' }),
      facts({ volumeExists: true }),
      policy({ mode: 'all-unreferenced' }),
      NOW,
    );

    // Assess
    expect(decision).toMatchObject({
      verdict: 'keep',
      rule: 'volume-exists',
      reason: 'its source volume vol-0aaaaaaaaaaaaaaa1 still exists',
    });
  });

  it('all-unreferenced: a snapshot whose volume was not checked is kept', () => {
    // Act
    const decision = evaluateSnapshot(manual(), facts(), policy({ mode: 'all-unreferenced' }), NOW);

    // Assess
    expect(decision.verdict).toBe('keep');
    expect(decision.reason).toMatch(/not checked/);
  });

  it.each([
    {
      case: 'an image snapshot whose image is gone',
      description: createdFor(GONE_IMAGE),
      rule: 'snapshot-orphan',
    },
    {
      case: 'an image snapshot whose image exists',
      description: createdFor(LIVE_IMAGE),
      rule: 'image-exists',
    },
  ])('all-unreferenced still decides $case by its image, whatever the volume', ({ description, rule }) => {
    // Act
    const decision = evaluateSnapshot(
      snapshot({ description }),
      facts({ volumeExists: true }),
      policy({ mode: 'all-unreferenced' }),
      NOW,
    );

    // Assess
    expect(decision.rule).toBe(rule);
  });

  it.each([
    { case: 'in use', facts: facts({ usedBy: [LIVE_IMAGE], volumeExists: false }), rule: 'in-use' },
    { case: 'locked', facts: facts({ locked: true, volumeExists: false }), rule: 'locked' },
    {
      case: 'shared',
      facts: facts({ volumeExists: false, sharing: { ...NOT_SHARED, public: true } }),
      rule: 'shared',
    },
    { case: 'sharing unknown', facts: facts({ volumeExists: false, sharing: 'unknown' }), rule: 'shared' },
  ])('all-unreferenced keeps the guards ($case)', ({ facts: given, rule }) => {
    // Act
    const decision = evaluateSnapshot(manual(), given, policy({ mode: 'all-unreferenced' }), NOW);

    // Assess
    expect(decision).toMatchObject({ verdict: 'keep', rule });
  });
});
