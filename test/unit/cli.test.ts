import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT, main } from '../../src/cli/main.ts';
import type { RunReport } from '../../src/core/report.ts';
import { demoAccount } from '../../src/demo/demo-account.ts';

const REPO = resolve(import.meta.dirname, '../..');
const scratch = mkdtempSync(join(tmpdir(), 'ami-janitor-cli-'));

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in-process with captured streams and a non-interactive stdin. */
async function run(...argv: string[]): Promise<Run> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const stdin = Object.assign(new PassThrough(), { isTTY: false });
  const out: string[] = [];
  const err: string[] = [];
  stdout.setEncoding('utf8').on('data', (chunk: string) => out.push(chunk));
  stderr.setEncoding('utf8').on('data', (chunk: string) => err.push(chunk));
  const code = await main(argv, { stdout, stderr, stdin, env: {} });
  // Let the streams flush what main wrote before it returned.
  await new Promise((done) => setImmediate(done));
  return { code, stdout: out.join(''), stderr: err.join('') };
}

function policyFile(name: string, text: string): string {
  const path = join(scratch, name);
  writeFileSync(path, text);
  return path;
}

function imageRows(stdout: string): string[] {
  return stdout.split('\n').filter((line) => /^ami-[0-9a-f]+\s/.test(line));
}

function lastLine(text: string): string {
  return text.trimEnd().split('\n').at(-1) ?? '';
}

describe('ami-janitor CLI', () => {
  it('plan --demo prints one row per demo image and the plan summary', async () => {
    // Prepare
    const images = demoAccount(new Date()).images.length;

    // Act
    const result = await run('plan', '--demo');

    // Assess
    expect(result.code).toBe(EXIT.ok);
    expect(imageRows(result.stdout)).toHaveLength(images);
    expect(lastLine(result.stdout)).toMatch(new RegExp(`^Plan: ${images} images, \\d+ eligible, \\d+ kept`));
    expect(result.stderr).toContain('built-in demo account');
  });

  it('plan is the default command', async () => {
    // Act
    const result = await run('--demo');

    // Assess
    expect(result.code).toBe(EXIT.ok);
    expect(lastLine(result.stdout)).toMatch(/^Plan: /);
  });

  it('--json emits a parseable run report with totals', async () => {
    // Prepare
    const images = demoAccount(new Date()).images.length;

    // Act
    const result = await run('plan', '--demo', '--json');

    // Assess
    expect(result.code).toBe(EXIT.ok);
    const report = JSON.parse(result.stdout) as RunReport;
    expect(report.mode).toBe('plan');
    expect(report.totals.images).toBe(images);
    expect(report.totals.kept + report.totals.eligible).toBe(images);
    expect(report.decisions).toHaveLength(images);
    expect(report.actions.every((outcome) => outcome.status === 'planned')).toBe(true);
    expect(result.stderr).toBe('');
  });

  it('--as-of forecasts the same account at a later date, so verdicts change', async () => {
    // Act
    const today = JSON.parse((await run('plan', '--demo', '--json')).stdout) as RunReport;
    const forecast = JSON.parse(
      (await run('plan', '--demo', '--json', '--as-of', '2030-01-01')).stdout,
    ) as RunReport;

    // Assess
    expect(forecast.asOf).toBe('2030-01-01T00:00:00.000Z');
    const verdictsToday = new Map(today.decisions.map((entry) => [entry.imageId, entry.verdict]));
    const changed = forecast.decisions.filter((entry) => verdictsToday.get(entry.imageId) !== entry.verdict);
    expect(changed.length).toBeGreaterThan(0);
    expect(forecast.totals.eligible).toBeGreaterThan(today.totals.eligible);
  });

  it('rejects an --as-of that is not a date', async () => {
    // Act
    const result = await run('plan', '--demo', '--as-of', 'next week');

    // Assess
    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toContain("--as-of 'next week' is not a date");
  });

  it('apply --as-of a past date acts on that clock; a future one is refused (a forecast is for plans)', async () => {
    // Prepare
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);

    // Act
    const past = await run('apply', '--demo', '--yes', '--json', '--as-of', yesterday);
    const future = await run('apply', '--demo', '--yes', '--json', '--as-of', '2030-01-01');

    // Assess
    expect(past.code).toBe(EXIT.ok);
    const report = JSON.parse(past.stdout) as RunReport;
    expect(report.asOf).toBe(`${yesterday}T00:00:00.000Z`);
    expect(report.totals.marked).toBeGreaterThan(0);
    expect(future.code).toBe(EXIT.usage);
    expect(future.stdout).toBe('');
  });

  it('apply without --yes on a non-terminal stdin exits 64 and changes nothing', async () => {
    // Act
    const result = await run('apply', '--demo');

    // Assess
    expect(result.code).toBe(64);
    expect(result.stderr).toContain('pass --yes');
    expect(result.stdout).toBe('');
  });

  it('apply --demo --yes applies and exits 0', async () => {
    // Act
    const result = await run('apply', '--demo', '--yes');

    // Assess
    expect(result.code).toBe(EXIT.ok);
    expect(lastLine(result.stdout)).toMatch(
      /^Applied: .* [1-9]\d* marked, [1-9]\d* deregistered, .* 0 failed, /,
    );
  });

  it.each([
    { argv: ['plan', '--demo', '--frobnicate'], message: '--frobnicate' },
    { argv: ['destroy', '--demo'], message: "unknown command 'destroy'" },
    { argv: ['plan', 'extra', '--demo'], message: "unexpected argument 'extra'" },
  ])('exits 64 with usage on $argv', async ({ argv, message }) => {
    // Act
    const result = await run(...argv);

    // Assess
    expect(result.code).toBe(64);
    expect(result.stderr).toContain(message);
    expect(result.stderr).toContain('Usage: ami-janitor');
    expect(result.stdout).toBe('');
  });

  it('prints no control character of an argument it quotes in a usage error', async () => {
    // Act
    const result = await run('plan', '--demo', '--as-of', '\u001b]0;pwned\u0007\u001b[2J');

    // Assess
    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toContain('pwned');
    expect(result.stderr.replaceAll('\n', '')).not.toMatch(/\p{Cc}/u);
  });

  it('exits 78 on a policy file with an unknown key, naming the path and the valid keys', async () => {
    // Prepare
    const config = policyFile('typo.yml', 'keepLatest:\n  cnt: 3\n');

    // Act
    const result = await run('plan', '--demo', '--config', config);

    // Assess
    expect(result.code).toBe(78);
    expect(result.stderr).toContain('keepLatest.cnt');
    expect(result.stderr).toContain('count, familyTags');
    expect(result.stdout).toBe('');
  });

  it('exits 78 on a policy file with an ill-typed key, naming its path', async () => {
    // Prepare
    const config = policyFile('ill-typed.yml', 'maxAgeDays: "ninety"\n');

    // Act
    const result = await run('plan', '--demo', '--config', config);

    // Assess
    expect(result.code).toBe(78);
    expect(result.stderr).toMatch(/maxAgeDays: .*number/);
  });

  it('exits 78 on a policy file that does not exist', async () => {
    // Act
    const result = await run('plan', '--demo', '--config', join(scratch, 'missing.yml'));

    // Assess
    expect(result.code).toBe(78);
    expect(result.stderr).toContain('cannot read policy file');
  });

  it('the real binary runs plan --demo and exits 0', async () => {
    // Act
    const child = spawn(process.execPath, ['bin/ami-janitor.js', 'plan', '--demo'], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    const [code] = (await once(child, 'close')) as [number | null];

    // Assess
    expect(code).toBe(0);
    expect(lastLine(stdout)).toMatch(/^Plan: \d+ images, /);
    expect(imageRows(stdout).length).toBeGreaterThan(0);
  }, 30_000);
});

/** Runs the real binary, as an operator would, and collects both streams. */
async function spawnCli(...argv: string[]): Promise<Run> {
  const child = spawn(process.execPath, ['bin/ami-janitor.js', ...argv], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const [code] = (await once(child, 'close')) as [number | null];
  return { code: code ?? -1, stdout, stderr };
}

describe('ami-janitor CLI on a bad policy file', () => {
  it('exits 78 naming graceDays when it is huge, with no stack trace', async () => {
    // Prepare
    const config = policyFile('huge-grace.yml', 'graceDays: 100000000\n');

    // Act
    const result = await spawnCli('plan', '--demo', '--config', config);

    // Assess
    expect(result.code).toBe(EXIT.policy);
    expect(result.stderr).toContain('graceDays: at most 3650 days');
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.stdout).toBe('');
  }, 30_000);

  it('exits 78 naming defaultTtlDays when it is huge', async () => {
    // Prepare
    const config = policyFile('huge-ttl.yml', 'defaultTtlDays: 100000000\n');

    // Act
    const result = await run('plan', '--demo', '--config', config);

    // Assess
    expect(result.code).toBe(EXIT.policy);
    expect(result.stderr).toContain('defaultTtlDays: at most 36500 days');
    expect(result.stdout).toBe('');
  });

  it.each([
    { case: 'empty', text: '' },
    { case: 'blank', text: '\n   \n' },
    { case: 'comment-only', text: '# every key has a default\n# dryRun: false\n' },
  ])('exits 78 on a policy file that is $case, saying how to ask for the defaults', async ({ text }) => {
    // Prepare
    const config = policyFile('empty.yml', text);

    // Act
    const result = await run('plan', '--demo', '--config', config);

    // Assess
    expect(result.code).toBe(EXIT.policy);
    expect(result.stderr).toContain(`${config} is empty`);
    expect(result.stderr).toContain('{}');
    expect(result.stdout).toBe('');
  });

  it('accepts {} as every default on purpose', async () => {
    // Prepare
    const config = policyFile('defaults.yml', '# all defaults, on purpose\n{}\n');

    // Act
    const result = await run('plan', '--demo', '--config', config);

    // Assess
    expect(result.code).toBe(EXIT.ok);
    expect(lastLine(result.stdout)).toMatch(/^Plan: /);
  });

  it('exits 78 on a file over 1 MiB without parsing it', async () => {
    // Prepare
    const config = policyFile('big.yml', `dryRun: true\n# ${'x'.repeat(1024 * 1024)}\n`);

    // Act
    const result = await run('plan', '--demo', '--config', config);

    // Assess
    expect(result.code).toBe(EXIT.policy);
    expect(result.stderr).toContain('larger than 1 MiB');
    expect(result.stdout).toBe('');
  });

  it('exits 78 on a directory given as --config', async () => {
    // Prepare
    const directory = join(scratch, 'a-directory.yml');
    mkdirSync(directory);

    // Act
    const result = await run('plan', '--demo', '--config', directory);

    // Assess
    expect(result.code).toBe(EXIT.policy);
    expect(result.stderr).toContain(`${directory} is not a regular file (a directory)`);
  });

  it('exits 78 on /dev/zero given as --config, reading nothing from it', async () => {
    // Act
    const result = await run('plan', '--demo', '--config', '/dev/zero');

    // Assess
    expect(result.code).toBe(EXIT.policy);
    expect(result.stderr).toContain('/dev/zero is not a regular file (a character device)');
  });

  it('exits 78 on a named pipe without waiting for a writer', async () => {
    // Prepare
    const fifo = join(scratch, 'policy.fifo');
    const made = spawnSync('mkfifo', [fifo]);
    if (made.status !== 0) throw new Error(`mkfifo failed: ${made.stderr}`);

    // Act
    const result = await run('plan', '--demo', '--config', fifo);

    // Assess
    expect(result.code).toBe(EXIT.policy);
    expect(result.stderr).toContain(`${fifo} is not a regular file (a named pipe)`);
  });

  it('exits 78 on a 1 MB unknown key, printing the key clipped', async () => {
    // Prepare
    // JSON: YAML itself allows an implicit key of at most 1,024 characters.
    const key = 'k'.repeat(1_000_000);
    const config = policyFile('long-key.json', `{"${key}": 1}\n`);

    // Act
    const result = await run('plan', '--demo', '--config', config);

    // Assess
    expect(result.code).toBe(EXIT.policy);
    expect(result.stderr).toContain('[truncated, 1000000 chars]: unknown key; valid keys are dryRun');
    expect(result.stderr.length).toBeLessThan(2000);
  });

  it('exits 78 naming expiryTag.key when a default TTL would be written where the deployment may not tag', async () => {
    // Prepare
    const config = policyFile('ttl-key.yml', 'defaultTtlDays: 30\nexpiryTag:\n  key: ExpiresAt\n');

    // Act
    const result = await run('plan', '--demo', '--config', config);

    // Assess
    expect(result.code).toBe(EXIT.policy);
    expect(result.stderr).toContain('expiryTag.key: ');
    expect(result.stderr).toContain('ami-janitor:');
  });

  it('prints no control character of a policy key on the terminal', async () => {
    // Prepare
    const config = policyFile('escape-key.json', '{"\\u001b]0;pwned\\u0007\\u001b[2J": 1}\n');

    // Act
    const result = await run('plan', '--demo', '--config', config);

    // Assess
    expect(result.code).toBe(EXIT.policy);
    expect(result.stderr).toContain('unknown key');
    expect(result.stderr.replaceAll('\n', '')).not.toMatch(/\p{Cc}/u);
  });
});

const inDays = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);

describe('CLI: a forecast is for plans only', () => {
  it('refuses apply --as-of a future date with a usage error, before reading the account', async () => {
    const result = await run('apply', '--demo', '--yes', '--as-of', inDays(30));

    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toMatch(/later than the real clock/);
    expect(result.stderr).toMatch(/is for plan and audit; apply acts on the real clock/);
    expect(result.stderr).not.toMatch(/Using the built-in demo account/);
    expect(result.stdout).toBe('');
  });

  it('still forecasts with plan --as-of a future date', async () => {
    const result = await run('plan', '--demo', '--json', '--as-of', inDays(30));

    expect(result.code).toBe(EXIT.ok);
    expect(JSON.parse(result.stdout)).toMatchObject({ mode: 'plan', asOf: `${inDays(30)}T00:00:00.000Z` });
  });

  it('applies --as-of a past date (a replay is never later than the real clock)', async () => {
    const result = await run('apply', '--demo', '--yes', '--json', '--as-of', inDays(-1));

    expect(result.code).toBe(EXIT.ok);
    expect(JSON.parse(result.stdout)).toMatchObject({ mode: 'apply', dryRun: false });
  });
});

describe('CLI: version and help', () => {
  it('--version prints the package version and exits 0, as the real binary', () => {
    const version = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string })
      .version;

    const result = spawnSync(process.execPath, ['bin/ami-janitor.js', '--version'], {
      cwd: REPO,
      encoding: 'utf8',
    });

    expect(result.status).toBe(0);
    expect(result.stdout).toBe(`${version}\n`);
    expect(result.stderr).toBe('');
  });

  it.each([
    { argv: ['help', 'plan'], first: /^ami-janitor plan \[options\] \[--html FILE\]: what a sweep would do/ },
    {
      argv: ['apply', '--help'],
      first: /^ami-janitor apply \[options\] \[--html FILE\]: carries the plan out/,
    },
    { argv: ['help'], first: /^Usage: ami-janitor <command> \[options\]/ },
  ])('$argv prints help and exits 0', async ({ argv, first }) => {
    const result = await run(...argv);

    expect(result.code).toBe(EXIT.ok);
    expect(result.stdout).toMatch(first);
    expect(result.stdout).toContain('Exit codes:');
  });

  it('help for an unknown command is a usage error', async () => {
    const result = await run('help', 'destroy');

    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toMatch(/no help for 'destroy'/);
  });
});
