import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = resolve(import.meta.dirname, '../..');

/** `npm run bench -- --help` as documented: the options, and no run. */
describe('bench command line', () => {
  it('--help lists every option and exits 0 without running', () => {
    const result = spawnSync(process.execPath, ['scripts/bench/run.ts', '--help'], {
      cwd: REPO,
      encoding: 'utf8',
    });

    expect(result.status).toBe(0);
    for (const option of [
      '--images',
      '--invocations',
      '--scale',
      '--clock',
      '--headroom',
      '--seed',
      '--skip-bundle',
      '--skip-memory',
      '--associated-snapshots',
      '--background',
      '--latency-page',
      '--latency-call',
      '--organization',
      '--org-samples',
      '--skip-organization',
    ]) {
      expect(result.stdout).toContain(option);
    }
    expect(result.stderr).toBe('');
  });

  it('an unknown option is a usage error with the options, not a stack trace', () => {
    const result = spawnSync(process.execPath, ['scripts/bench/run.ts', '--bogus'], {
      cwd: REPO,
      encoding: 'utf8',
    });

    expect(result.status).toBe(64);
    expect(result.stderr).toMatch(/^bench: Unknown option '--bogus'/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it.each([
    ['--background', '1.5'],
    ['--associated-snapshots', 'sometimes'],
    ['--latency-page', 'slow'],
    ['--headroom', '0'],
  ])('%s %s is a usage error before anything runs', (option, value) => {
    const result = spawnSync(process.execPath, ['scripts/bench/run.ts', option, value], {
      cwd: REPO,
      encoding: 'utf8',
    });

    expect(result.status).toBe(64);
    expect(result.stderr).toMatch(new RegExp(`^bench: (--${option.slice(2)}|${option})`));
    expect(result.stdout).toBe('');
  });
});
