import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { EXIT, main } from '../../src/cli/main.ts';

/** Runs the CLI in-process on the demo account, with captured streams and a non-interactive stdin. */
async function run(...argv: string[]) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const stdin = Object.assign(new PassThrough(), { isTTY: false });
  const out: string[] = [];
  const err: string[] = [];
  stdout.setEncoding('utf8').on('data', (chunk: string) => out.push(chunk));
  stderr.setEncoding('utf8').on('data', (chunk: string) => err.push(chunk));
  const code = await main(argv, { stdout, stderr, stdin, env: {} });
  await new Promise((done) => setImmediate(done));
  return { code, stdout: out.join(''), stderr: err.join('') };
}

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
