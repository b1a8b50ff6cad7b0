import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ARCHIVED_AT_TAG,
  DISABLED_AT_TAG,
  defaultPolicy,
  JANITOR_STATE_TAGS,
  MARKED_AT_TAG,
  parsePolicy,
  USAGE_REPORT_TAG,
} from '../../src/config/policy.ts';
import { loadPolicyFile } from '../../src/config/policy-file.ts';
import {
  ALERTED_EXPOSURE_TAG,
  CREATED_AT_TAG,
  CREATED_BY_SESSION_TAG,
  CREATED_BY_TAG,
} from '../../src/core/image-audit.ts';
import { PolicyError } from '../../src/errors.ts';

const SHIPPED_POLICY = resolve(import.meta.dirname, '../../policy.yml');

/** The problems parsePolicy reports for a document, or [] when it is valid. */
function problemsOf(document: unknown): readonly string[] {
  try {
    parsePolicy(document);
    return [];
  } catch (error) {
    if (error instanceof PolicyError) return error.problems;
    throw error;
  }
}

describe('parsePolicy defaults', () => {
  const policy = parsePolicy({});

  it.each([
    { key: 'dryRun', value: policy.dryRun, expected: true },
    { key: 'maxAgeDays', value: policy.maxAgeDays, expected: 90 },
    { key: 'unusedDays', value: policy.unusedDays, expected: 30 },
    { key: 'keepLatest.count', value: policy.keepLatest.count, expected: 2 },
    { key: 'keepLatest.familyTags', value: policy.keepLatest.familyTags, expected: [] },
    { key: 'graceDays', value: policy.graceDays, expected: 7 },
    { key: 'exemptTag', value: policy.exemptTag, expected: { key: 'ami-janitor:keep', value: 'true' } },
    { key: 'expiryTag', value: policy.expiryTag, expected: { key: 'ami-janitor:expires-at' } },
    { key: 'maxRemovalsPerRun', value: policy.maxRemovalsPerRun, expected: 100 },
    { key: 'maxRemovalsPercent', value: policy.maxRemovalsPercent, expected: null },
    { key: 'deleteSnapshots', value: policy.deleteSnapshots, expected: true },
  ])('$key defaults to $expected', ({ value, expected }) => {
    // Assess
    expect(value).toEqual(expected);
  });

  it.each([
    { case: 'an empty document', document: {} },
    { case: 'an empty YAML file (null)', document: null },
    { case: 'undefined', document: undefined },
  ])('treats $case as the default policy', ({ document }) => {
    // Act
    const parsed = parsePolicy(document);

    // Assess
    expect(parsed).toEqual(defaultPolicy());
  });

  it('fills nested defaults next to the keys a document sets', () => {
    // Act
    const parsed = parsePolicy({ keepLatest: { count: 5 }, exemptTag: { key: 'retain' } });

    // Assess
    expect(parsed.keepLatest).toEqual({ count: 5, familyTags: [] });
    expect(parsed.exemptTag).toEqual({ key: 'retain', value: 'true' });
    expect(parsed.maxAgeDays).toBe(90);
  });
});

describe('parsePolicy errors', () => {
  it('names an unknown top-level key and lists the valid top-level keys', () => {
    // Act
    const problems = problemsOf({ maxAgeDay: 30 });

    // Assess
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^maxAgeDay: unknown key; valid keys are /);
    for (const key of [
      'dryRun',
      'maxAgeDays',
      'unusedDays',
      'keepLatest',
      'graceDays',
      'maxRemovalsPerRun',
    ]) {
      expect(problems[0]).toContain(key);
    }
  });

  it.each([
    { document: { keepLatest: { cnt: 3 } }, path: 'keepLatest.cnt', valid: 'count, familyTags' },
    { document: { exemptTag: { name: 'keep' } }, path: 'exemptTag.name', valid: 'key, value' },
    { document: { expiryTag: { tag: 'x' } }, path: 'expiryTag.tag', valid: 'key' },
    {
      document: { requiredTags: { key: ['Owner'] } },
      path: 'requiredTags.key',
      valid: 'keys, severity, expireAfterDays',
    },
    { document: { inUse: { versions: 3 } }, path: 'inUse.versions', valid: 'launchTemplateVersions' },
  ])('names the nested unknown key $path and the valid keys there', ({ document, path, valid }) => {
    // Act
    const problems = problemsOf(document);

    // Assess
    expect(problems).toEqual([`${path}: unknown key; valid keys are ${valid}`]);
  });

  it.each([
    { document: { maxAgeDays: 'ninety' }, path: 'maxAgeDays' },
    { document: { maxAgeDays: -1 }, path: 'maxAgeDays' },
    { document: { graceDays: 1.5 }, path: 'graceDays' },
    { document: { dryRun: 'false' }, path: 'dryRun' },
    { document: { keepLatest: { count: 'two' } }, path: 'keepLatest.count' },
    { document: { keepLatest: { familyTags: 'Application' } }, path: 'keepLatest.familyTags' },
    { document: { keepLatest: { familyTags: ['Application', ''] } }, path: 'keepLatest.familyTags[1]' },
    { document: { maxRemovalsPercent: 0 }, path: 'maxRemovalsPercent' },
    { document: { maxRemovalsPercent: 101 }, path: 'maxRemovalsPercent' },
    { document: { requiredTags: { severity: 'urgent' } }, path: 'requiredTags.severity' },
    { document: { inUse: { launchTemplateVersions: 0 } }, path: 'inUse.launchTemplateVersions' },
  ])('names the path of the ill-typed value $path', ({ document, path }) => {
    // Act
    const problems = problemsOf(document);

    // Assess
    expect(problems).toHaveLength(1);
    expect(problems[0]?.startsWith(`${path}: `)).toBe(true);
    expect(problems[0]?.length).toBeGreaterThan(path.length + 2);
  });

  it('reports every bad path at once, in one PolicyError with a cause', () => {
    // Act
    const attempt = () => parsePolicy({ maxAgeDays: 'ninety', keepLatest: { cnt: 3 }, bogus: true });

    // Assess
    expect(attempt).toThrow(PolicyError);
    try {
      attempt();
    } catch (error) {
      if (!(error instanceof PolicyError)) throw error;
      expect(error.name).toBe('PolicyError');
      expect(error.cause).toBeDefined();
      expect(error.problems).toHaveLength(3);
      expect(error.message).toContain('maxAgeDays');
      expect(error.message).toContain('keepLatest.cnt');
      expect(error.message).toContain('bogus');
    }
  });

  it('rejects a document that is not an object', () => {
    // Act
    const problems = problemsOf(['dryRun', false]);

    // Assess
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^\(policy\): /);
  });
});

describe('parsePolicy bounds', () => {
  it.each([
    { path: 'maxAgeDays', document: { maxAgeDays: 36_501 } },
    { path: 'unusedDays', document: { unusedDays: 100_000_000 } },
    { path: 'graceDays', document: { graceDays: 100_000_000 } },
    { path: 'graceDays', document: { graceDays: 3651 } },
    { path: 'defaultTtlDays', document: { defaultTtlDays: 100_000_000 } },
    { path: 'requiredTags.expireAfterDays', document: { requiredTags: { expireAfterDays: 36_501 } } },
    { path: 'snapshots.minAgeDays', document: { snapshots: { minAgeDays: 36_501 } } },
    { path: 'keepLatest.count', document: { keepLatest: { count: 1001 } } },
    { path: 'maxRemovalsPerRun', document: { maxRemovalsPerRun: 1_000_001 } },
    { path: 'snapshots.maxDeletionsPerRun', document: { snapshots: { maxDeletionsPerRun: 1_000_001 } } },
    { path: 'attribution.maxLookupsPerRun', document: { attribution: { maxLookupsPerRun: 1001 } } },
    { path: 'inUse.launchTemplateVersions', document: { inUse: { launchTemplateVersions: 116 } } },
    { path: 'maxAgeDays', document: { maxAgeDays: Number.POSITIVE_INFINITY } },
  ])('refuses $path = $document beyond its bound, naming the path', ({ path, document }) => {
    // Act
    const problems = problemsOf(document);

    // Assess
    expect(problems).toHaveLength(1);
    expect(problems[0]?.startsWith(`${path}: `)).toBe(true);
  });

  it('accepts every number at its bound, so the bounds are not off by one', () => {
    // Act
    const policy = parsePolicy({
      maxAgeDays: 36_500,
      unusedDays: 36_500,
      graceDays: 3650,
      defaultTtlDays: 36_500,
      requiredTags: { expireAfterDays: 36_500 },
      snapshots: { minAgeDays: 36_500, maxDeletionsPerRun: 1_000_000 },
      keepLatest: { count: 1000 },
      maxRemovalsPerRun: 1_000_000,
    });

    // Assess
    expect(policy.graceDays).toBe(3650);
    expect(policy.maxRemovalsPerRun).toBe(1_000_000);
  });

  it('says what a day count is bounded by', () => {
    // Act
    const problems = problemsOf({ maxAgeDays: 100_000_000 });

    // Assess
    expect(problems).toEqual(['maxAgeDays: at most 36500 days (100 years)']);
  });

  it.each([
    {
      path: 'requiredTags.keys',
      document: { requiredTags: { keys: Array.from({ length: 51 }, (_, i) => `k${i}`) } },
    },
    {
      path: 'keepLatest.familyTags',
      document: { keepLatest: { familyTags: Array.from({ length: 51 }, (_, i) => `k${i}`) } },
    },
    {
      path: 'sharing.allowedAccounts',
      document: {
        sharing: { allowedAccounts: Array.from({ length: 1001 }, (_, i) => String(i).padStart(12, '0')) },
      },
    },
  ])('refuses a list longer than its bound at $path', ({ path, document }) => {
    // Act
    const problems = problemsOf(document);

    // Assess
    expect(problems).toHaveLength(1);
    expect(problems[0]?.startsWith(`${path}: `)).toBe(true);
  });
});

describe('parsePolicy tag keys the janitor writes', () => {
  it('refuses a default TTL written under a key the deployment may not tag', () => {
    // Act
    const problems = problemsOf({ defaultTtlDays: 30, expiryTag: { key: 'ExpiresAt' } });

    // Assess
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^expiryTag\.key: /);
    expect(problems[0]).toContain('ami-janitor:');
    expect(problems[0]).toContain('defaultTtlDays');
  });

  it('accepts any expiry key when nothing writes it (defaultTtlDays null)', () => {
    // Act
    const policy = parsePolicy({ expiryTag: { key: 'ExpiresAt' } });

    // Assess
    expect(policy.expiryTag.key).toBe('ExpiresAt');
  });

  it('accepts a custom expiry key under ami-janitor: with a default TTL', () => {
    // Act
    const policy = parsePolicy({ defaultTtlDays: 30, expiryTag: { key: 'ami-janitor:ttl' } });

    // Assess
    expect(policy.expiryTag.key).toBe('ami-janitor:ttl');
  });

  it.each(['ami-janitor:keep', 'AMI-Janitor:Keep'])(
    'refuses a default TTL written under the exempt tag %s, which no janitor role may write',
    (key) => {
      // Act
      const problems = problemsOf({ defaultTtlDays: 30, expiryTag: { key } });

      // Assess
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(/^expiryTag\.key: /);
    },
  );

  it.each([
    'ami-janitor:marked-at',
    'ami-janitor:created-by',
    'ami-janitor:created-by-session',
    'ami-janitor:created-at',
    'ami-janitor:alerted-exposure',
  ])('refuses %s as the expiry key, since the janitor keeps its own state there', (key) => {
    // Act
    const problems = problemsOf({ expiryTag: { key } });

    // Assess
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^expiryTag\.key: /);
  });

  it('knows every tag the janitor keeps its state in', () => {
    // Assess
    expect([...JANITOR_STATE_TAGS].sort()).toEqual(
      [
        MARKED_AT_TAG,
        DISABLED_AT_TAG,
        ARCHIVED_AT_TAG,
        USAGE_REPORT_TAG,
        CREATED_BY_TAG,
        CREATED_BY_SESSION_TAG,
        CREATED_AT_TAG,
        ALERTED_EXPOSURE_TAG,
      ].sort(),
    );
  });

  it('refuses an expiry key that is also the exempt key', () => {
    // Act
    const problems = problemsOf({ exemptTag: { key: 'Retain' }, expiryTag: { key: 'retain' } });

    // Assess
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^expiryTag\.key: "retain" is also exemptTag\.key/);
  });

  it('accepts any exempt key: the janitor only reads it', () => {
    // Act
    const policy = parsePolicy({ exemptTag: { key: 'Retain' }, defaultTtlDays: 30 });

    // Assess
    expect(policy.exemptTag.key).toBe('Retain');
  });
});

describe('parsePolicy messages stay small', () => {
  it('clips a 1 MB unknown key in the message and says so', () => {
    // Prepare
    const key = 'k'.repeat(1024 * 1024);

    // Act
    const attempt = () => parsePolicy({ [key]: 1 });

    // Assess
    expect(attempt).toThrow(PolicyError);
    try {
      attempt();
    } catch (error) {
      if (!(error instanceof PolicyError)) throw error;
      expect(error.message.length).toBeLessThan(2000);
      expect(error.message).toContain(`[truncated, ${key.length} chars]`);
      expect(error.message).toContain('unknown key; valid keys are dryRun');
    }
  });

  it('replaces control characters of a key in the message', () => {
    // Act
    const problems = problemsOf({ 'evil\u001b]0;pwned\u0007\nkey': 1 });

    // Assess
    expect(problems).toHaveLength(1);
    expect(problems[0]).not.toMatch(/\p{Cc}/u);
  });

  it('lists at most 20 problems and counts the rest', () => {
    // Prepare
    const document = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`bogus${i}`, i]));

    // Act
    const problems = problemsOf(document);

    // Assess
    expect(problems).toHaveLength(21);
    expect(problems[20]).toBe('…and 4980 more problems');
  });
});

describe('the shipped policy.yml', () => {
  it('parses to exactly the defaults', async () => {
    // Act
    const shipped = await loadPolicyFile(SHIPPED_POLICY);

    // Assess
    expect(shipped).toEqual(defaultPolicy());
  });

  it('loads when named relative to the repo root, as the CLI does', async () => {
    // Act
    const shipped = await loadPolicyFile('policy.yml');

    // Assess
    expect(shipped).toStrictEqual(defaultPolicy());
  });

  it('is what esbuild.config.cjs compiles into the Lambda bundles', async () => {
    // Prepare
    const { createRequire } = await import('node:module');
    const config = createRequire(import.meta.url)('../../esbuild.config.cjs') as (sls: unknown) => {
      define: Record<string, string>;
    };

    // Act
    const options = config({ config: { serviceDir: resolve(import.meta.dirname, '../..') } });
    const compiled = JSON.parse(JSON.parse(options.define['process.env.AMI_JANITOR_BUNDLED_POLICY'] ?? '""'));

    // Assess
    expect(parsePolicy(compiled)).toStrictEqual(await loadPolicyFile(SHIPPED_POLICY));
  });
});
