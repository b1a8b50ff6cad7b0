import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/** The bundling options serverless-esbuild reads: they compile the validated policy into each handler. */
const esbuildConfig = createRequire(import.meta.url)('../../esbuild.config.cjs') as (serverless: {
  config: { serviceDir: string };
}) => { define: Record<string, string> };

const scratch = mkdtempSync(join(tmpdir(), 'ami-janitor-package-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function serviceWith(policy: string) {
  const dir = mkdtempSync(join(scratch, 'service-'));
  writeFileSync(join(dir, 'policy.yml'), policy);
  return { config: { serviceDir: dir } };
}

describe('packaging validates the policy it compiles in', () => {
  it('compiles in the policy, validated, with its defaults', () => {
    const options = esbuildConfig(serviceWith('graceDays: 3\n'));

    const compiled = JSON.parse(JSON.parse(options.define['process.env.AMI_JANITOR_BUNDLED_POLICY'] ?? '""'));
    expect(compiled).toMatchObject({ graceDays: 3, dryRun: true, maxRemovalsPerRun: 100 });
  });

  it.each([
    { case: 'an out-of-range number', policy: 'graceDays: 100000000\n', message: /graceDays/ },
    { case: 'an unknown key', policy: 'keepLatest:\n  cnt: 1\n', message: /keepLatest\.cnt: unknown key/ },
    { case: 'an empty file', policy: '# nothing here\n', message: /empty/ },
  ])('fails the package, with the reason, on $case', ({ policy, message }) => {
    expect(() => esbuildConfig(serviceWith(policy))).toThrow(message);
    expect(() => esbuildConfig(serviceWith(policy))).toThrow(/^policy.yml cannot be deployed: /);
  });
});
