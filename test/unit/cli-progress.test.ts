import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { type AccountPorts, type CliDeps, EXIT, main } from '../../src/cli/main.ts';
import { TerminalProgress } from '../../src/cli/progress.ts';
import type { ListProgress } from '../../src/core/ports.ts';
import { DEMO_ACCOUNT_ID, demoAccount } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import type { Image } from '../../src/model.ts';

/** What the progress line writes before each redraw, and to erase itself: CR, then CSI 2 K. */
const CLEAR = '\r\u001b[2K';

/** A terminal's stream in memory: isTTY and a width, and every write kept in order. */
function fakeTerminal(columns = 100) {
  const writes: string[] = [];
  const stream = Object.assign(new PassThrough(), { isTTY: true, columns });
  stream.setEncoding('utf8').on('data', (chunk: string) => writes.push(chunk));
  return { stream, text: () => writes.join('') };
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with stderr (and, with `answer`, stdin) on a fake terminal. */
async function run(
  argv: string[],
  options: { stderrTTY?: boolean; answer?: string; deps?: CliDeps; env?: NodeJS.ProcessEnv } = {},
): Promise<Run> {
  const stdout = new PassThrough();
  const out: string[] = [];
  stdout.setEncoding('utf8').on('data', (chunk: string) => out.push(chunk));
  const terminal = fakeTerminal();
  const stderr =
    options.stderrTTY === false ? Object.assign(terminal.stream, { isTTY: false }) : terminal.stream;
  const stdin = Object.assign(new PassThrough(), { isTTY: options.answer !== undefined });
  if (options.answer !== undefined) stdin.write(`${options.answer}\n`);
  const code = await main(argv, { stdout, stderr, stdin, env: options.env ?? {} }, options.deps ?? {});
  await new Promise((done) => setImmediate(done));
  return { code, stdout: out.join(''), stderr: terminal.text() };
}

/** The demo account, with its images listed over several pages as DescribeImages would. */
function pagedDemo(pageSize: number): { deps: CliDeps; account: MemoryAccount } {
  const account = new MemoryAccount(demoAccount(new Date()));
  const list = account.listOwnedImages.bind(account);
  const inventory = {
    accountId: () => account.accountId(),
    findReferences: (images: readonly Image[]) => account.findReferences(images),
    async listOwnedImages(progress?: ListProgress) {
      const all = await list();
      for (let listed = pageSize; listed < all.length; listed += pageSize) progress?.onPage?.(listed);
      progress?.onPage?.(all.length);
      return all;
    },
  };
  const ports: AccountPorts = {
    inventory,
    actions: account,
    snapshots: account,
    sharing: account,
    trailHealth: { check: async (region) => ({ ok: true, region, reason: 'trail on' }) },
    snapshotPorts: { inventory: account, sharing: account, actions: account },
    usage: account,
    recycleBin: account,
  };
  return { deps: { accountPorts: async () => ports }, account };
}

/** Every line the progress drew, in order. */
function drawnLines(stderr: string): string[] {
  return stderr
    .split(CLEAR)
    .slice(1)
    .map((chunk) => chunk.split('\n')[0] ?? '')
    .filter(Boolean);
}

describe('TerminalProgress', () => {
  it('rewrites one line in place with the counts so far, and erases it on clear', () => {
    // Prepare
    const writes: string[] = [];
    const progress = new TerminalProgress(
      { isTTY: true, columns: 200, write: (chunk: string) => writes.push(chunk) },
      { redrawMs: 0, clock: () => 0 },
    );

    // Act
    progress.report({ phase: 'images', listed: 1000 });
    progress.report({ phase: 'images', listed: 2000 });
    progress.report({ phase: 'references', done: 10, total: 2000 });
    progress.report({ phase: 'image-actions', done: 3, total: 12 });
    progress.clear();
    progress.report({ phase: 'image-actions', done: 4, total: 12 });

    // Assess
    expect(writes).toEqual([
      `${CLEAR}1,000 images listed`,
      `${CLEAR}2,000 images listed`,
      `${CLEAR}2,000 images listed · references 10/2000`,
      `${CLEAR}2,000 images listed · references 10/2000 · image actions 3/12`,
      CLEAR,
    ]);
  });

  it('draws again after resume, with what was reported meanwhile', () => {
    // Prepare
    const writes: string[] = [];
    const progress = new TerminalProgress({ write: (chunk: string) => writes.push(chunk) }, { redrawMs: 0 });
    progress.report({ phase: 'snapshots', listed: 5 });
    progress.clear();
    progress.report({ phase: 'snapshot-actions', done: 1, total: 2 });

    // Act
    progress.resume();

    // Assess
    expect(writes.at(-1)).toBe(`${CLEAR}5 snapshots listed · snapshot actions 1/2`);
  });

  it('never draws wider than the terminal: finished phases give way to those under way', () => {
    // Prepare
    const writes: string[] = [];
    const progress = new TerminalProgress(
      { columns: 60, write: (chunk: string) => writes.push(chunk) },
      { redrawMs: 0 },
    );

    // Act
    progress.report({ phase: 'images', listed: 12_000 });
    progress.report({ phase: 'snapshots', listed: 40_000 });
    progress.report({ phase: 'references', done: 12_000, total: 12_000 });
    progress.report({ phase: 'snapshot-shares', done: 40_000, total: 40_000 });
    progress.report({ phase: 'image-actions', done: 7, total: 90 });
    progress.report({ phase: 'snapshot-actions', done: 2, total: 300 });

    // Assess
    for (const write of writes) expect(write.length - CLEAR.length).toBeLessThan(60);
    expect(writes.at(-1)).toBe(`${CLEAR}image actions 7/90 · snapshot actions 2/300`);
  });

  it('redraws at most once per interval, and a finished phase at once', () => {
    // Prepare
    let now = 1000;
    const writes: string[] = [];
    const progress = new TerminalProgress(
      { write: (chunk: string) => writes.push(chunk) },
      { redrawMs: 100, clock: () => now },
    );

    // Act
    progress.report({ phase: 'snapshot-shares', done: 1, total: 3 });
    now += 10;
    progress.report({ phase: 'snapshot-shares', done: 2, total: 3 });
    now += 10;
    progress.report({ phase: 'snapshot-shares', done: 3, total: 3 });
    progress.clear();

    // Assess: the second count waited, and was passed by the finished one.
    expect(writes).toEqual([`${CLEAR}snapshot shares 1/3`, `${CLEAR}snapshot shares 3/3`, CLEAR]);
  });
});

describe('CLI progress on a terminal', () => {
  it('shows the counts on stderr as the run goes and erases the line before the results', async () => {
    // Prepare
    const { deps, account } = pagedDemo(10);

    // Act
    const result = await run(['plan'], { deps, env: { AWS_REGION: 'eu-west-1' } });

    // Assess
    expect(result.code).toBe(EXIT.ok);
    const lines = drawnLines(result.stderr);
    const images = account.images.size;
    expect(lines).toContain('10 images listed');
    expect(lines.some((line) => line.startsWith(`${images} images listed`))).toBe(true);
    expect(lines.some((line) => /references \d+\/\d+/.test(line))).toBe(true);
    expect(lines.some((line) => /snapshot shares (\d+)\/\1/.test(line))).toBe(true);
    // Erased last: nothing of the line is left under the results.
    expect(result.stderr.endsWith(CLEAR)).toBe(true);
    expect(result.stdout).not.toContain('\u001b');
    expect(result.stdout).not.toContain('\r');
    expect(result.stdout.trimEnd().split('\n').at(-1)).toMatch(/^Plan: /);
  });

  it('counts the actions of an apply, and erases the line before the prompt', async () => {
    // Act
    const result = await run(['apply', '--demo'], { answer: 'y' });

    // Assess
    expect(result.code).toBe(EXIT.ok);
    const before = result.stderr.slice(0, result.stderr.indexOf('About to change'));
    expect(before.endsWith(CLEAR)).toBe(true);
    const after = drawnLines(result.stderr.slice(result.stderr.indexOf('Proceed?')));
    expect(after.some((line) => /image actions (\d+)\/\1/.test(line))).toBe(true);
    expect(after.some((line) => /snapshot actions (\d+)\/\1/.test(line))).toBe(true);
    expect(result.stderr.endsWith(CLEAR)).toBe(true);
  });

  it.each([
    { case: '--json', argv: ['plan', '--demo', '--json'], options: {} },
    { case: 'stderr piped', argv: ['plan', '--demo'], options: { stderrTTY: false } },
    { case: 'TERM=dumb', argv: ['plan', '--demo'], options: { env: { TERM: 'dumb' } } },
  ])('shows no progress with $case', async ({ argv, options }) => {
    // Act
    const result = await run(argv, options);

    // Assess
    expect(result.code).toBe(EXIT.ok);
    expect(result.stderr).not.toContain(CLEAR);
    expect(result.stderr).not.toContain('listed');
  });

  it('keeps --json output parseable and stderr empty on a terminal', async () => {
    // Act
    const result = await run(['plan', '--demo', '--json']);

    // Assess
    expect(JSON.parse(result.stdout)).toMatchObject({ accountId: DEMO_ACCOUNT_ID, mode: 'plan' });
    expect(result.stderr).toBe('');
  });
});
