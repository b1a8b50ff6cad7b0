import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type DefaultTreeAdapterMap, parse } from 'parse5';
import { afterAll, describe, expect, it } from 'vitest';
import { renderHtmlReport } from '../../src/cli/html-report.ts';
import { parsePolicy } from '../../src/config/policy.ts';
import type { RunReport } from '../../src/core/report.ts';
import { runSweep } from '../../src/core/sweep.ts';
import { demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';

/**
 * The HTML report as a real browser renders it: Debian's chromium, headless. The page must load
 * without a console message (a blocked fetch or a script error would log one), and the numbers in
 * the rendered DOM must be those of the JSON report of the same run.
 *
 * Without chromium on PATH the test is skipped loudly on a laptop and fails under CI=true, so a
 * green CI build means a browser rendered the page. Install it with `apt-get install -y chromium`.
 */

const REPO = resolve(import.meta.dirname, '../..');
const CHROMIUM_NAMES = ['chromium', 'chromium-browser', 'google-chrome-stable', 'google-chrome'];
const INSTALL_HINT = 'apt-get update && apt-get install -y chromium';

function findOnPath(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory; keep looking.
    }
  }
  return undefined;
}

/** `CHROMIUM=/path/to/chrome` picks another browser; otherwise the first of CHROMIUM_NAMES on PATH. */
const chromium = process.env.CHROMIUM || CHROMIUM_NAMES.map(findOnPath).find(Boolean);
const inCi = process.env.CI === 'true';

if (!chromium && !inCi) {
  const lines = [
    'CHROMIUM NOT FOUND: the HTML report browser test is NOT run',
    `Install it with: ${INSTALL_HINT}`,
  ];
  const width = Math.max(...lines.map((line) => line.length)) + 2;
  const bar = '#'.repeat(width + 4);
  process.stderr.write(
    `${['', bar, ...lines.map((line) => `## ${line.padEnd(width - 1)}##`), bar, ''].join('\n')}\n`,
  );
}

const scratch = mkdtempSync(join(tmpdir(), 'ami-janitor-browser-'));

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function spawnAndWait(command: string, args: string[], timeoutMs: number): Promise<Ran> {
  const child = spawn(command, args, {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? '', HOME: scratch },
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
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    const [code] = (await once(child, 'close')) as [number | null];
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Chromium, headless, on one local file: `--dump-dom` prints the DOM once the page has loaded, and
 * `--enable-logging=stderr` writes every console message (CSP refusals and uncaught errors among
 * them) to stderr as `...:CONSOLE...] "message", source: ...`.
 */
function browse(file: string, mode: string[]): Promise<Ran> {
  if (!chromium) throw new Error(`chromium is not on PATH; ${INSTALL_HINT}`);
  return spawnAndWait(
    chromium,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--hide-scrollbars',
      `--user-data-dir=${join(scratch, 'profile')}`,
      '--enable-logging=stderr',
      '--v=0',
      ...mode,
      pathToFileURL(file).href,
    ],
    60_000,
  );
}

/** Console messages and page errors in chromium's log; its own start-up warnings are not the page's. */
function consoleMessages(stderr: string): string[] {
  return stderr.split('\n').filter((line) => /:CONSOLE[:(\]]|Uncaught|Refused to/.test(line));
}

type Node = DefaultTreeAdapterMap['node'];
type Element = DefaultTreeAdapterMap['element'];

function* walk(node: Node): Generator<Node> {
  yield node;
  if ('childNodes' in node) for (const child of node.childNodes) yield* walk(child);
}

function elements(root: Node): Element[] {
  return [...walk(root)].filter((node): node is Element => 'tagName' in node);
}

function attr(node: Element, name: string): string | undefined {
  return node.attrs.find((a) => a.name === name)?.value;
}

function text(node: Node): string {
  return [...walk(node)].map((n) => (n.nodeName === '#text' && 'value' in n ? n.value : '')).join('');
}

describe('HTML report in headless chromium', () => {
  it.runIf(chromium !== undefined || inCi)(
    'renders plan --demo --html without a console message, showing the totals of the same run’s JSON',
    async () => {
      if (!chromium)
        throw new Error(`chromium is not on PATH and CI=true: this test must run in CI. ${INSTALL_HINT}`);
      // Prepare: one run, both outputs.
      const file = join(scratch, 'plan.html');
      const cli = await spawnAndWait(
        process.execPath,
        ['bin/ami-janitor.js', 'plan', '--demo', '--json', '--html', file],
        30_000,
      );
      expect(cli.code, cli.stderr).toBe(0);
      const report = JSON.parse(cli.stdout) as RunReport;

      // Act
      const dumped = await browse(file, ['--dump-dom']);
      const shot = join(scratch, 'plan.png');
      const screenshot = await browse(file, [`--screenshot=${shot}`, '--window-size=1200,2000']);

      // Assess
      expect(dumped.code, dumped.stderr).toBe(0);
      expect(consoleMessages(dumped.stderr)).toEqual([]);
      const dom = parse(dumped.stdout);
      const all = elements(dom);
      const totals = all.filter((node) => attr(node, 'data-total'));
      expect(totals.map((node) => attr(node, 'data-total'))).toEqual(
        expect.arrayContaining(['images', 'eligible', 'kept', 'snapshots', 'orphans', 'findings']),
      );
      for (const node of totals) {
        const key = attr(node, 'data-total') as keyof RunReport['totals'];
        expect(text(node), key).toBe(String(report.totals[key]));
      }
      const cost = all.find((node) => attr(node, 'data-cost') === 'reclaimableGiB');
      expect(cost && text(cost)).toBe(String(report.cost.reclaimableGiB));
      const rows = (marker: string) => all.filter((node) => node.tagName === 'tr' && attr(node, marker));
      expect(rows('data-image')).toHaveLength(report.decisions.length);
      expect(rows('data-snapshot')).toHaveLength(report.snapshotDecisions.length);
      expect(all.filter((node) => node.tagName === 'svg')).toHaveLength(1);

      expect(screenshot.code, screenshot.stderr).toBe(0);
      expect(consoleMessages(screenshot.stderr)).toEqual([]);
      const png = readFileSync(shot);
      expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
      // IHDR: width and height, big-endian, at bytes 16 and 20.
      expect(png.readUInt32BE(16)).toBe(1200);
      expect(png.length).toBeGreaterThan(20_000);
    },
  );

  it.runIf(chromium !== undefined || inCi)(
    'reports a console message when a page breaks its policy, so "none" above means none',
    async () => {
      if (!chromium) {
        throw new Error(`chromium is not on PATH and CI=true: this test must run in CI. ${INSTALL_HINT}`);
      }
      // Prepare: the report's own policy, and a page that asks for an outside image anyway.
      const file = join(scratch, 'broken.html');
      writeFileSync(
        file,
        `<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"><title>t</title></head><body><img src="https://example.invalid/x.png"></body></html>`,
      );

      // Act
      const dumped = await browse(file, ['--dump-dom']);

      // Assess
      expect(dumped.code).toBe(0);
      expect(consoleMessages(dumped.stderr).join('\n')).toContain('Content Security Policy');
    },
  );

  it.runIf(chromium !== undefined || inCi)(
    'shows a hostile name as text: no script runs, no element is made',
    async () => {
      if (!chromium)
        throw new Error(`chromium is not on PATH and CI=true: this test must run in CI. ${INSTALL_HINT}`);
      // Prepare
      const now = new Date();
      const seed = demoAccount(now);
      const hostile = `<script>console.error("pwned")</script>"'><img src=x onerror=console.error(2)>`;
      const account = new MemoryAccount({
        ...seed,
        images: seed.images.map((image) => ({ ...image, name: `${image.name}${hostile}` })),
      });
      const policy = parsePolicy(demoPolicyDocument);
      const report = await runSweep(
        {
          inventory: account,
          actions: account,
          snapshots: { inventory: account, actions: account, sharing: account },
          log: { debug() {}, info() {}, warn() {}, error() {} },
        },
        {
          policy,
          region: 'eu-west-1',
          now,
          mode: 'plan',
          dryRun: false,
          deadline: { remainingMs: () => 1e9 },
        },
      );
      const file = join(scratch, 'hostile.html');
      writeFileSync(
        file,
        renderHtmlReport([{ report, familyTags: [] }], { generatedAt: now, version: 'test' }),
      );

      // Act
      const dumped = await browse(file, ['--dump-dom']);

      // Assess
      expect(dumped.code, dumped.stderr).toBe(0);
      expect(consoleMessages(dumped.stderr)).toEqual([]);
      const all = elements(parse(dumped.stdout));
      expect(all.filter((node) => node.tagName === 'script' || node.tagName === 'img')).toEqual([]);
      const names = all
        .filter((node) => node.tagName === 'tr' && attr(node, 'data-image'))
        .map((row) => text(elements(row).filter((node) => node.tagName === 'td')[1] as Element));
      expect(names).toHaveLength(report.decisions.length);
      for (const name of names) expect(name.endsWith(hostile)).toBe(true);
    },
  );
});
