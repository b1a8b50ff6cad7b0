import { describe, expect, it } from 'vitest';
import { defaultPolicy, MARKED_AT_TAG, type Policy, parsePolicy } from '../../src/config/policy.ts';
import type { Image, ImageFacts, Reference } from '../../src/model.ts';
import { age } from '../../src/rules/age.ts';
import { backupManaged } from '../../src/rules/backup-managed.ts';
import { dlmManaged } from '../../src/rules/dlm-managed.ts';
import { exemptTag, hasExemptTag } from '../../src/rules/exempt-tag.ts';
import { expiryTag, parseExpiry } from '../../src/rules/expiry-tag.ts';
import { buildFacts, familyFromName, familyOf } from '../../src/rules/family.ts';
import { inUse } from '../../src/rules/in-use.ts';
import { evaluateImage, rules } from '../../src/rules/index.ts';
import { keepLatest } from '../../src/rules/keep-latest.ts';
import { notOwned } from '../../src/rules/not-owned.ts';
import { pending } from '../../src/rules/pending.ts';
import { deregistrationProtection } from '../../src/rules/protected.ts';
import { requiredTags } from '../../src/rules/required-tags.ts';

const NOW = new Date('2026-11-22T12:00:00Z');
const ACCOUNT = '111122223333';
const daysAgo = (days: number) => new Date(NOW.getTime() - days * 86_400_000);

function image(overrides: Partial<Image> = {}): Image {
  return {
    imageId: 'ami-0123456789abcdef0',
    name: 'web-2026-01-15',
    ownerId: ACCOUNT,
    state: 'available',
    creationDate: daysAgo(10),
    public: false,
    tags: {},
    snapshotIds: ['snap-0123456789abcdef0'],
    ...overrides,
  };
}

function facts(overrides: Partial<ImageFacts> = {}): ImageFacts {
  return {
    accountId: ACCOUNT,
    references: [],
    family: 'name:web',
    familyRank: 5,
    familySize: 5,
    ...overrides,
  };
}

function policy(document: Record<string, unknown> = {}): Policy {
  return parsePolicy(document);
}

describe('age', () => {
  it.each([
    {
      name: 'young and never launched',
      created: 10,
      launched: undefined,
      kind: 'keep',
      reason: /created 10 days ago \(limit 90\)/,
    },
    { name: 'exactly at the age limit', created: 90, launched: undefined, kind: 'keep', reason: /limit 90/ },
    {
      name: 'old and never launched',
      created: 91,
      launched: undefined,
      kind: 'expire',
      reason: /created 91 days ago .* never launched/,
    },
    {
      name: 'old but launched recently',
      created: 200,
      launched: 5,
      kind: 'keep',
      reason: /last launched 5 days ago \(limit 30\)/,
    },
    {
      name: 'old and launched long ago',
      created: 200,
      launched: 31,
      kind: 'expire',
      reason: /last launched 31 days ago/,
    },
    {
      name: 'old, launched exactly at the unused limit',
      created: 200,
      launched: 30,
      kind: 'keep',
      reason: /limit 30/,
    },
  ])('$name → $kind', ({ created, launched, kind, reason }) => {
    // Prepare
    const subject = image({
      creationDate: daysAgo(created),
      ...(launched === undefined ? {} : { lastLaunchedTime: daysAgo(launched) }),
    });

    // Act
    const [verdict] = age.evaluate(subject, facts(), defaultPolicy(), NOW);

    // Assess
    expect(verdict?.kind).toBe(kind);
    expect(verdict?.reason).toMatch(reason);
  });

  it('uses the configured thresholds', () => {
    const [verdict] = age.evaluate(
      image({ creationDate: daysAgo(20) }),
      facts(),
      policy({ maxAgeDays: 14, unusedDays: 7 }),
      NOW,
    );

    expect(verdict).toEqual({ kind: 'expire', reason: expect.stringContaining('limit 14') });
  });

  it('reads the clock it is given, not the wall clock', () => {
    const subject = image({ creationDate: new Date('2020-01-01T00:00:00Z') });

    const [before] = age.evaluate(subject, facts(), defaultPolicy(), new Date('2020-02-01T00:00:00Z'));
    const [after] = age.evaluate(subject, facts(), defaultPolicy(), new Date('2020-12-01T00:00:00Z'));

    expect(before?.kind).toBe('keep');
    expect(after?.kind).toBe('expire');
  });
});

describe('guards', () => {
  const references: Reference[] = [
    { resourceType: 'ec2:Instance', resource: 'i-0aaa', detail: 'stopped' },
    { resourceType: 'ec2:LaunchTemplate', resource: 'lt-0bbb', detail: 'version 3 ($Default)' },
    { resourceType: 'ssm:Parameter', resource: '/golden/latest' },
    { resourceType: 'autoscaling:AutoScalingGroup', resource: 'web-asg' },
  ];

  it.each([
    { rule: notOwned, subject: image({ ownerId: '999999999999' }), reason: /owned by account 999999999999/ },
    { rule: pending, subject: image({ state: 'pending' }), reason: /still pending/ },
    { rule: pending, subject: image({ state: 'transient' }), reason: /still transient/ },
    {
      rule: deregistrationProtection,
      subject: image({ deregistrationProtection: 'enabled' }),
      reason: /protection is enabled/,
    },
    {
      rule: deregistrationProtection,
      subject: image({ deregistrationProtection: 'enabled-with-cooldown' }),
      reason: /enabled-with-cooldown/,
    },
    {
      rule: deregistrationProtection,
      subject: image({ deregistrationProtection: 'disabled-until-2026-11-23T00:00:00Z' }),
      reason: /disabled-until/,
    },
    {
      rule: backupManaged,
      subject: image({ tags: { 'aws:backup:source-resource-arn': 'arn:aws:ec2:::instance/i-1' } }),
      reason: /AWS Backup/,
    },
    {
      rule: backupManaged,
      subject: image({ tags: { 'aws:backup:source-resource': 'x' } }),
      reason: /AWS Backup/,
    },
    {
      rule: dlmManaged,
      subject: image({ tags: { 'aws:dlm:lifecycle-policy-id': 'policy-1' } }),
      reason: /Data Lifecycle/,
    },
    { rule: exemptTag, subject: image({ tags: { 'ami-janitor:keep': 'true' } }), reason: /exempt/ },
    { rule: exemptTag, subject: image({ tags: { 'ami-janitor:keep': 'TRUE' } }), reason: /exempt/ },
  ])('$rule.id keeps with a reason', ({ rule, subject, reason }) => {
    const verdicts = rule.evaluate(subject, facts(), defaultPolicy(), NOW);

    expect(verdicts).toEqual([{ kind: 'keep', reason: expect.stringMatching(reason) }]);
  });

  it.each([
    { rule: notOwned, subject: image() },
    { rule: pending, subject: image({ state: 'available' }) },
    { rule: pending, subject: image({ state: 'disabled' }) },
    { rule: deregistrationProtection, subject: image({ deregistrationProtection: 'disabled' }) },
    { rule: deregistrationProtection, subject: image() },
    { rule: backupManaged, subject: image({ tags: { backup: 'yes' } }) },
    { rule: dlmManaged, subject: image({ tags: { dlm: 'no' } }) },
    { rule: exemptTag, subject: image({ tags: { 'ami-janitor:keep': 'false' } }) },
    { rule: inUse, subject: image() },
  ])('$rule.id has no opinion on an unguarded image', ({ rule, subject }) => {
    expect(rule.evaluate(subject, facts(), defaultPolicy(), NOW)).toEqual([]);
  });

  it('exempt-tag matches the value as the IAM deny does (any case, no blanks), and keeps a near miss with a finding', () => {
    const verdicts = exemptTag.evaluate(
      image({ tags: { 'ami-janitor:keep': ' True ' } }),
      facts(),
      defaultPolicy(),
      NOW,
    );

    expect(verdicts).toEqual([
      {
        kind: 'keep',
        reason: expect.stringMatching(/^kept: tag ami-janitor:keep=" True " looks meant as an exemption/),
      },
      { kind: 'flag', severity: 'medium', reason: expect.stringMatching(/fix the value/) },
    ]);
    expect(hasExemptTag({ 'ami-janitor:keep': ' True ' }, defaultPolicy().exemptTag)).toBe(false);
    expect(hasExemptTag({ 'ami-janitor:keep': 'tRuE' }, defaultPolicy().exemptTag)).toBe(true);
  });

  it('in-use names the first references and counts the rest', () => {
    const [verdict] = inUse.evaluate(image(), facts({ references }), defaultPolicy(), NOW);

    expect(verdict?.kind).toBe('keep');
    expect(verdict?.reason).toBe(
      'in use by 4 resources: ec2:Instance i-0aaa (stopped), ec2:LaunchTemplate lt-0bbb (version 3 ($Default)), ssm:Parameter /golden/latest and 1 more',
    );
  });

  it('the exempt tag key and value are configurable', () => {
    const custom = policy({ exemptTag: { key: 'retain', value: 'forever' } });

    expect(exemptTag.evaluate(image({ tags: { retain: 'forever' } }), facts(), custom, NOW)).toHaveLength(1);
    expect(exemptTag.evaluate(image({ tags: { 'ami-janitor:keep': 'true' } }), facts(), custom, NOW)).toEqual(
      [],
    );
  });
});

describe('keep-latest', () => {
  it.each([
    { rank: 1, count: 2, kept: true },
    { rank: 2, count: 2, kept: true },
    { rank: 3, count: 2, kept: false },
    { rank: 1, count: 0, kept: false },
  ])('rank $rank with count $count → kept: $kept', ({ rank, count, kept }) => {
    const verdicts = keepLatest.evaluate(
      image(),
      facts({ familyRank: rank }),
      policy({ keepLatest: { count } }),
      NOW,
    );

    expect(verdicts.length === 1 && verdicts[0]?.kind === 'keep').toBe(kept);
  });
});

describe('families', () => {
  it.each([
    ['web-2026-01-15', 'web'],
    ['web-v12', 'web'],
    ['web-1.4.2', 'web'],
    ['web_20260115T101500Z', 'web'],
    ['web-1700000000', 'web'],
    ['web-1.2-20260101', 'web'],
    ['api-gateway-v3', 'api-gateway'],
    ['amzn2-base 2026.11.01', 'amzn2-base'],
    ['golden', 'golden'],
    ['2026-01-15', '2026-01-15'],
  ])('%s is family %s', (name, family) => {
    expect(familyFromName(name)).toBe(family);
  });

  it('groups by the configured tags when an image carries all of them, else by name', () => {
    const tagged = image({ tags: { Application: 'shop', Role: 'web' } });
    const partly = image({ name: 'shop-web-v2', tags: { Application: 'shop' } });

    expect(familyOf(tagged, ['Application', 'Role'])).toBe('Application=shop,Role=web');
    expect(familyOf(partly, ['Application', 'Role'])).toBe('name:shop-web');
  });

  it('ranks each family newest first and attaches references', () => {
    // Prepare
    const images = [
      image({ imageId: 'ami-old', name: 'web-v1', creationDate: daysAgo(300) }),
      image({ imageId: 'ami-new', name: 'web-v3', creationDate: daysAgo(1) }),
      image({ imageId: 'ami-mid', name: 'web-v2', creationDate: daysAgo(100) }),
      image({ imageId: 'ami-api', name: 'api-v1', creationDate: daysAgo(500) }),
    ];
    const refs = new Map([['ami-old', [{ resourceType: 'ec2:Instance', resource: 'i-1' }]]]);

    // Act
    const result = buildFacts(images, refs, ACCOUNT, []);

    // Assess
    expect(result.get('ami-new')).toMatchObject({ family: 'name:web', familyRank: 1, familySize: 3 });
    expect(result.get('ami-mid')).toMatchObject({ familyRank: 2 });
    expect(result.get('ami-old')).toMatchObject({ familyRank: 3, references: [{ resource: 'i-1' }] });
    expect(result.get('ami-api')).toMatchObject({
      family: 'name:api',
      familyRank: 1,
      familySize: 1,
      references: [],
    });
  });
});

describe('expiry tag', () => {
  it.each([
    { value: '2026-11-21', kind: 'expire' },
    { value: '2026-11-22', kind: 'keep' }, // the whole day counts
    { value: '2026-11-22T11:00:00Z', kind: 'expire' },
    { value: '2027-01-01', kind: 'keep' },
    { value: 'next friday', kind: 'flag' },
    { value: '31/12/2026', kind: 'flag' },
  ])('$value → $kind', ({ value, kind }) => {
    const verdicts = expiryTag.evaluate(
      image({ tags: { 'ami-janitor:expires-at': value } }),
      facts(),
      defaultPolicy(),
      NOW,
    );

    expect(verdicts.map((verdict) => verdict.kind)).toEqual([kind]);
  });

  it('ignores images without the tag', () => {
    expect(expiryTag.evaluate(image(), facts(), defaultPolicy(), NOW)).toEqual([]);
  });

  it('parses dates as the end of that day in UTC', () => {
    expect(parseExpiry('2026-12-31')?.toISOString()).toBe('2026-12-31T23:59:59.999Z');
    expect(parseExpiry('soon')).toBeUndefined();
  });
});

describe('required tags', () => {
  const required = (extra: Record<string, unknown> = {}) =>
    policy({ requiredTags: { keys: ['Owner', 'CostCenter'], ...extra } });

  it('flags missing and blank tags with the configured severity', () => {
    const verdicts = requiredTags.evaluate(
      image({ tags: { Owner: ' ' } }),
      facts(),
      required({ severity: 'high' }),
      NOW,
    );

    expect(verdicts).toEqual([
      { kind: 'flag', severity: 'high', reason: 'missing required tags: Owner, CostCenter' },
    ]);
  });

  it('is silent when every required tag is present, or none is required', () => {
    const tagged = image({ tags: { Owner: 'team', CostCenter: 'cc' } });

    expect(requiredTags.evaluate(tagged, facts(), required(), NOW)).toEqual([]);
    expect(requiredTags.evaluate(image(), facts(), defaultPolicy(), NOW)).toEqual([]);
  });

  it.each([
    { created: 10, kinds: ['flag'] },
    { created: 31, kinds: ['flag', 'expire'] },
  ])('with expireAfterDays 30, an image created $created days ago → $kinds', ({ created, kinds }) => {
    const subject = image({ creationDate: daysAgo(created) });

    const verdicts = requiredTags.evaluate(subject, facts(), required({ expireAfterDays: 30 }), NOW);

    expect(verdicts.map((verdict) => verdict.kind)).toEqual(kinds);
  });
});

describe('evaluateImage', () => {
  const old = { creationDate: daysAgo(400) };

  it.each([
    {
      name: 'an old image is eligible by age',
      subject: image(old),
      imageFacts: facts(),
      verdict: 'expire',
      rule: 'age',
    },
    {
      name: 'in use beats age',
      subject: image(old),
      imageFacts: facts({
        references: [{ resourceType: 'ec2:Instance', resource: 'i-1', detail: 'stopped' }],
      }),
      verdict: 'keep',
      rule: 'in-use',
    },
    {
      name: 'keep-latest beats age',
      subject: image(old),
      imageFacts: facts({ familyRank: 1 }),
      verdict: 'keep',
      rule: 'keep-latest',
    },
    {
      name: 'an expiry tag beats keep-latest',
      subject: image({ tags: { 'ami-janitor:expires-at': '2026-01-01' } }),
      imageFacts: facts({ familyRank: 1 }),
      verdict: 'expire',
      rule: 'expiry-tag',
    },
    {
      name: 'the exempt tag beats an expiry tag',
      subject: image({ tags: { 'ami-janitor:expires-at': '2026-01-01', 'ami-janitor:keep': 'true' } }),
      imageFacts: facts(),
      verdict: 'keep',
      rule: 'exempt-tag',
    },
    {
      name: 'the first guard in order gives the reason',
      subject: image({ ...old, deregistrationProtection: 'enabled', tags: { 'ami-janitor:keep': 'true' } }),
      imageFacts: facts(),
      verdict: 'keep',
      rule: 'protected',
    },
    {
      name: 'a young image is not eligible, and says why',
      subject: image(),
      imageFacts: facts(),
      verdict: 'keep',
      rule: 'not-eligible',
    },
  ])('$name', ({ subject, imageFacts, verdict, rule }) => {
    const decision = evaluateImage(subject, imageFacts, defaultPolicy(), NOW);

    expect(decision).toMatchObject({ imageId: subject.imageId, verdict, rule });
    expect(decision.reason.length).toBeGreaterThan(10);
  });

  it('keeps findings even when a guard keeps the image', () => {
    const subject = image({ ...old, tags: { 'ami-janitor:keep': 'true' } });

    const decision = evaluateImage(subject, facts(), policy({ requiredTags: { keys: ['Owner'] } }), NOW);

    expect(decision.verdict).toBe('keep');
    expect(decision.findings).toEqual([
      { rule: 'required-tags', severity: 'medium', reason: 'missing required tags: Owner' },
    ]);
  });

  it('does not treat the mark tag as a reason to keep or remove', () => {
    const marked = image({ tags: { [MARKED_AT_TAG]: daysAgo(3).toISOString() } });

    expect(evaluateImage(marked, facts(), defaultPolicy(), NOW).verdict).toBe('keep');
    expect(evaluateImage({ ...marked, ...old }, facts(), defaultPolicy(), NOW).verdict).toBe('expire');
  });

  it('every rule module exposes an id matching its key, a stage and a schema', () => {
    for (const [key, rule] of Object.entries(rules)) {
      expect(rule.id).toBe(key);
      expect(['guard', 'explicit', 'retain', 'eligibility', 'audit']).toContain(rule.stage);
      expect(typeof rule.schema).toBe('object');
    }
  });
});
