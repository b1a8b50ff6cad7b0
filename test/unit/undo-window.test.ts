import { describe, expect, it } from 'vitest';
import type { RetentionRule } from '../../src/model.ts';
import {
  ARCHIVE_PRICE_PER_GB_MONTH_USD,
  type ImageRemoval,
  RECYCLE_BIN_FINDING,
  recoverability,
  ruleCovers,
  savingStartsAt,
  undoWindowFindings,
} from '../../src/rules/undo-window.ts';
import { daysAfter, NOW } from './factories.ts';

function rule(overrides: Partial<RetentionRule> = {}): RetentionRule {
  return {
    identifier: 'rule-region-images',
    resourceType: 'EC2_IMAGE',
    retentionDays: 30,
    resourceTags: [],
    excludeTags: [],
    status: 'available',
    ...overrides,
  };
}
const snapshotRule = (overrides: Partial<RetentionRule> = {}) =>
  rule({ identifier: 'rule-region-snapshots', resourceType: 'EBS_SNAPSHOT', ...overrides });
const removal = (imageId: string, tags: Record<string, string> = {}, extra: Partial<ImageRemoval> = {}) => ({
  imageId,
  tags,
  ...extra,
});

describe('ruleCovers', () => {
  const tagLevel = rule({
    identifier: 'rule-tagged',
    resourceTags: [
      { key: 'env', value: 'prod' },
      { key: 'retain', value: 'yes' },
    ],
  });
  const regionLevel = rule({
    excludeTags: [
      { key: 'env', value: 'scratch' },
      { key: 'ephemeral', value: 'true' },
    ],
  });

  it.each<{ case: string; subject: RetentionRule; tags: Record<string, string>; covers: boolean }>([
    { case: 'tag-level, first pair carried', subject: tagLevel, tags: { env: 'prod' }, covers: true },
    {
      case: 'tag-level, second pair carried',
      subject: tagLevel,
      tags: { retain: 'yes', env: 'dev' },
      covers: true,
    },
    { case: 'tag-level, key with another value', subject: tagLevel, tags: { env: 'dev' }, covers: false },
    { case: 'tag-level, value differs in case', subject: tagLevel, tags: { env: 'Prod' }, covers: false },
    { case: 'tag-level, untagged resource', subject: tagLevel, tags: {}, covers: false },
    { case: 'Region-level, untagged resource', subject: regionLevel, tags: {}, covers: true },
    { case: 'Region-level, unrelated tags', subject: regionLevel, tags: { env: 'prod' }, covers: true },
    {
      case: 'Region-level, first exclusion carried',
      subject: regionLevel,
      tags: { env: 'scratch' },
      covers: false,
    },
    {
      case: 'Region-level, second exclusion carried',
      subject: regionLevel,
      tags: { ephemeral: 'true', env: 'prod' },
      covers: false,
    },
    {
      case: 'Region-level, exclusion key with another value',
      subject: regionLevel,
      tags: { ephemeral: 'false' },
      covers: true,
    },
    { case: 'pending rule', subject: rule({ status: 'pending' }), tags: {}, covers: false },
    {
      case: 'pending tag-level rule, pair carried',
      subject: { ...tagLevel, status: 'pending' },
      tags: { env: 'prod' },
      covers: false,
    },
  ])('$case → $covers', ({ subject, tags, covers }) => {
    expect(ruleCovers(subject, tags)).toBe(covers);
  });
});

describe('recoverability', () => {
  it('the longest-retaining covering rule wins', () => {
    // Prepare
    const rules = [
      rule({ identifier: 'rule-short', retentionDays: 7 }),
      rule({ identifier: 'rule-long', retentionDays: 90, resourceTags: [{ key: 'env', value: 'prod' }] }),
      rule({ identifier: 'rule-longest-but-pending', retentionDays: 365, status: 'pending' }),
      snapshotRule({ identifier: 'rule-snapshots', retentionDays: 180 }),
    ];

    // Act
    const result = recoverability('EC2_IMAGE', { env: 'prod' }, rules, NOW);

    // Assess
    expect(result).toEqual({ recoverable: true, until: daysAfter(NOW, 90), rule: 'rule-long' });
  });

  it('counts from the removal, not from now', () => {
    // Prepare
    const removedAt = new Date('2026-01-01T00:00:00.000Z');

    // Act
    const result = recoverability('EBS_SNAPSHOT', {}, [snapshotRule({ retentionDays: 10 })], removedAt);

    // Assess
    expect(result).toEqual({
      recoverable: true,
      until: new Date('2026-01-11T00:00:00.000Z'),
      rule: 'rule-region-snapshots',
    });
  });

  it('a tie names the lower identifier, whatever the order', () => {
    // Prepare
    const rules = [rule({ identifier: 'rule-b' }), rule({ identifier: 'rule-a' })];

    // Act
    const forward = recoverability('EC2_IMAGE', {}, rules, NOW);
    const backward = recoverability('EC2_IMAGE', {}, [...rules].reverse(), NOW);

    // Assess
    expect(forward).toMatchObject({ rule: 'rule-a' });
    expect(backward).toMatchObject({ rule: 'rule-a' });
  });

  it.each<{ case: string; rules: RetentionRule[]; tags: Record<string, string>; reason: string }>([
    {
      case: 'no rule at all',
      rules: [],
      tags: {},
      reason: 'no Recycle Bin retention rule for images in this Region',
    },
    {
      case: 'only a snapshot rule',
      rules: [snapshotRule()],
      tags: {},
      reason: 'no Recycle Bin retention rule for images in this Region',
    },
    {
      case: 'a tag-level rule for other tags',
      rules: [rule({ identifier: 'rule-prod', resourceTags: [{ key: 'env', value: 'prod' }] })],
      tags: { env: 'dev' },
      reason: 'no available Recycle Bin retention rule for images covers it',
    },
    {
      case: 'a pending rule that would cover it',
      rules: [rule({ identifier: 'rule-new', status: 'pending' })],
      tags: {},
      reason:
        'no available Recycle Bin retention rule for images covers it: rule rule-new would, but is pending',
    },
    {
      case: 'an exclusion',
      rules: [rule({ identifier: 'rule-region', excludeTags: [{ key: 'env', value: 'scratch' }] })],
      tags: { env: 'scratch' },
      reason:
        'no available Recycle Bin retention rule for images covers it: rule rule-region excludes resources tagged env=scratch',
    },
  ])('not recoverable with $case, and says why', ({ rules, tags, reason }) => {
    expect(recoverability('EC2_IMAGE', tags, rules, NOW)).toEqual({ recoverable: false, reason });
  });
});

describe('savingStartsAt', () => {
  it.each([
    {
      case: 'in the bin: billed until it leaves',
      recovery: { recoverable: true as const, until: daysAfter(NOW, 30), rule: 'rule-1' },
      expected: daysAfter(NOW, 30),
    },
    {
      case: 'not retained: saves at once',
      recovery: { recoverable: false as const, reason: 'no rule' },
      expected: NOW,
    },
  ])('$case', ({ recovery, expected }) => {
    expect(savingStartsAt(NOW, recovery)).toEqual(expected);
  });

  it('prices the archive tier at a quarter of the standard tier', () => {
    expect(ARCHIVE_PRICE_PER_GB_MONTH_USD).toBe(0.0125);
  });
});

describe('undoWindowFindings', () => {
  const images = rule({ retentionDays: 30 });
  const snapshots = snapshotRule({ retentionDays: 30 });

  it.each<{ case: string; rules: RetentionRule[]; removals: ImageRemoval[] }>([
    { case: 'images and snapshots kept alike', rules: [images, snapshots], removals: [removal('ami-0a')] },
    {
      case: 'snapshots kept longer than images',
      rules: [images, snapshotRule({ retentionDays: 60 })],
      removals: [removal('ami-0a'), removal('ami-0b')],
    },
    { case: 'no removals', rules: [], removals: [] },
    {
      case: 'no snapshot deleted with the image',
      rules: [images],
      removals: [removal('ami-0a', {}, { snapshotTags: [] })],
    },
  ])('none when every removal can be undone: $case', ({ rules, removals }) => {
    expect(undoWindowFindings({ rules, imageRemovals: removals })).toEqual([]);
  });

  it('names how many removals no rule covers, and that they cannot be restored', () => {
    // Prepare
    const tagged = rule({ identifier: 'rule-prod', resourceTags: [{ key: 'env', value: 'prod' }] });
    const removals = [
      removal('ami-0a', { env: 'prod' }),
      ...['ami-0b', 'ami-0c', 'ami-0d', 'ami-0e', 'ami-0f', 'ami-10'].map((id) =>
        removal(id, { env: 'dev' }),
      ),
    ];

    // Act
    const findings = undoWindowFindings({ rules: [tagged, snapshotRule()], imageRemovals: removals });

    // Assess
    expect(findings).toEqual([
      {
        rule: RECYCLE_BIN_FINDING,
        severity: 'medium',
        reason:
          '6 of 7 image removals in this sweep are covered by no Recycle Bin retention rule: once deregistered, they cannot be restored (ami-0b, ami-0c, ami-0d, ami-0e, ami-0f and 1 more)',
      },
    ]);
  });

  it('a single uncovered removal reads in the singular', () => {
    const [finding] = undoWindowFindings({ rules: [], imageRemovals: [removal('ami-0a')] });

    expect(finding?.reason).toBe(
      '1 of 1 image removals in this sweep is covered by no Recycle Bin retention rule: once deregistered, it cannot be restored (ami-0a)',
    );
  });

  it('pending rules restore nothing', () => {
    const findings = undoWindowFindings({
      rules: [rule({ status: 'pending' }), snapshotRule()],
      imageRemovals: [removal('ami-0a')],
    });

    expect(findings).toHaveLength(1);
    expect(findings[0]?.reason).toMatch(/^1 of 1 image removals .* cannot be restored/);
  });

  it('states both numbers of days when snapshots leave the bin before their image', () => {
    // Prepare
    const rules = [rule({ retentionDays: 90 }), snapshotRule({ retentionDays: 14 })];

    // Act
    const findings = undoWindowFindings({ rules, imageRemovals: [removal('ami-0a'), removal('ami-0b')] });

    // Assess
    expect(findings).toEqual([
      {
        rule: RECYCLE_BIN_FINDING,
        severity: 'medium',
        reason:
          'the Recycle Bin keeps 2 images removed in this sweep for 90 days but their snapshots for only 14 days: an image restored after that lacks its snapshots and cannot be launched (ami-0a, ami-0b)',
      },
    ]);
  });

  it('no snapshot rule: the snapshots are kept 0 days', () => {
    const [finding] = undoWindowFindings({
      rules: [rule({ retentionDays: 7 })],
      imageRemovals: [removal('ami-0a')],
    });

    expect(finding?.reason).toBe(
      'the Recycle Bin keeps 1 image removed in this sweep for 7 days but its snapshots for 0 days (no snapshot retention rule covers them): an image restored after that lacks its snapshots and cannot be launched (ami-0a)',
    );
  });

  it('judges the snapshots by their own tags where given, and the shortest-kept snapshot ends the window', () => {
    // Prepare
    const rules = [
      rule({ retentionDays: 60 }),
      snapshotRule({
        identifier: 'rule-snap-long',
        retentionDays: 60,
        resourceTags: [{ key: 'tier', value: 'gold' }],
      }),
      snapshotRule({ identifier: 'rule-snap-short', retentionDays: 7 }),
    ];
    const covered = removal('ami-0a', {}, { snapshotTags: [{ tier: 'gold' }, { tier: 'gold' }] });
    const mixed = removal('ami-0b', { tier: 'gold' }, { snapshotTags: [{ tier: 'gold' }, {}] });

    // Act
    const findings = undoWindowFindings({ rules, imageRemovals: [covered, mixed] });

    // Assess
    expect(findings.map((finding) => finding.reason)).toEqual([
      expect.stringMatching(/keeps 1 image .* for 60 days but its snapshots for only 7 days: .*\(ami-0b\)$/),
    ]);
  });

  it('gives both findings, one per pair of periods, uncovered removals first', () => {
    // Prepare
    const rules = [
      rule({ identifier: 'rule-prod', retentionDays: 90, resourceTags: [{ key: 'env', value: 'prod' }] }),
      rule({ identifier: 'rule-dev', retentionDays: 30, resourceTags: [{ key: 'env', value: 'dev' }] }),
      snapshotRule({ retentionDays: 14 }),
    ];
    const removals = [
      removal('ami-0a', { env: 'prod' }),
      removal('ami-0b', { env: 'dev' }),
      removal('ami-0c'),
    ];

    // Act
    const findings = undoWindowFindings({ rules, imageRemovals: removals });

    // Assess
    expect(findings.map((finding) => [finding.rule, finding.severity, finding.reason])).toEqual([
      ['recycle-bin', 'medium', expect.stringMatching(/^1 of 3 image removals .* \(ami-0c\)$/)],
      [
        'recycle-bin',
        'medium',
        expect.stringMatching(/for 90 days but its snapshots for only 14 days: .*\(ami-0a\)$/),
      ],
      [
        'recycle-bin',
        'medium',
        expect.stringMatching(/for 30 days but its snapshots for only 14 days: .*\(ami-0b\)$/),
      ],
    ]);
  });
});
