import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultPolicy, parsePolicy } from '../../src/config/policy.ts';
import { loadPolicyFile } from '../../src/config/policy-file.ts';
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
