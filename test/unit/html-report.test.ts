import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { type DefaultTreeAdapterMap, parse } from 'parse5';
import { afterAll, describe, expect, it } from 'vitest';
import { type HtmlReportSection, renderHtmlReport } from '../../src/cli/html-report.ts';
import { type AccountPorts, type CliDeps, EXIT, main } from '../../src/cli/main.ts';
import { parsePolicy } from '../../src/config/policy.ts';
import type { RunReport } from '../../src/core/report.ts';
import { runSweep } from '../../src/core/sweep.ts';
import { demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount, type MemoryAccountSeed } from '../../src/demo/memory-account.ts';
import { printable } from '../../src/text.ts';
import { recordingLog } from './factories.ts';

/**
 * The HTML report parsed as a browser parses it (parse5 follows the HTML standard), so an escape
 * that failed would show up as an element or attribute here, not merely as a string.
 */

type Node = DefaultTreeAdapterMap['node'];
type Element = DefaultTreeAdapterMap['element'];

const NOW = new Date('2026-11-22T06:00:00.000Z');
const OPTIONS = { generatedAt: NOW, version: '0.0.0-test' };
const scratch = mkdtempSync(join(tmpdir(), 'ami-janitor-html-'));

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

/** Markup, quotes of both kinds, an entity, and the terminal's hostile characters. */
const HOSTILE = `<script>alert(1)</script>"'><img src=x onerror=alert(1)>&amp;\u001b[2J\u202eevil`;

function isElement(node: Node): node is Element {
  return 'tagName' in node;
}

function* walk(node: Node): Generator<Node> {
  yield node;
  if ('childNodes' in node) for (const child of node.childNodes) yield* walk(child);
  // A <template>'s content is a separate fragment.
  if (isElement(node) && node.tagName === 'template' && 'content' in node) {
    yield* walk((node as DefaultTreeAdapterMap['template']).content);
  }
}

function elements(root: Node, tag?: string): Element[] {
  return [...walk(root)].filter(isElement).filter((node) => tag === undefined || node.tagName === tag);
}

function attr(node: Element, name: string): string | undefined {
  return node.attrs.find((a) => a.name === name)?.value;
}

function text(node: Node): string {
  return [...walk(node)].map((n) => ('value' in n && n.nodeName === '#text' ? n.value : '')).join('');
}

function byId(root: Node, id: string): Element {
  const found = elements(root).find((node) => attr(node, 'id') === id);
  if (!found) throw new Error(`no element #${id}`);
  return found;
}

function cells(row: Element): string[] {
  return elements(row, 'td').map(text);
}

async function sweep(
  seed: MemoryAccountSeed,
  mode: 'plan' | 'apply' = 'plan',
): Promise<{ report: RunReport; section: HtmlReportSection }> {
  const account = new MemoryAccount(seed);
  const images = [...account.images.values()].map((image) => structuredClone(image));
  const snapshots = [...account.snapshots.values()].map((snapshot) => structuredClone(snapshot));
  const policy = parsePolicy(demoPolicyDocument);
  const report = await runSweep(
    {
      inventory: account,
      actions: account,
      snapshots: { inventory: account, actions: account, sharing: account },
      usage: account,
      recycleBin: account,
      log: recordingLog(),
    },
    { policy, region: 'eu-west-1', now: NOW, mode, dryRun: false, deadline: { remainingMs: () => 1e9 } },
  );
  return { report, section: { report, images, snapshots, familyTags: policy.keepLatest.familyTags } };
}

/** The demo with hostile text in every value that comes from outside: names, tags, descriptions. */
function hostileSeed(): MemoryAccountSeed {
  const seed = demoAccount(NOW);
  return {
    ...seed,
    images: seed.images.map((image, index) => ({
      ...image,
      name: `${image.name}${HOSTILE}`,
      tags:
        index % 3 === 0
          ? { ...image.tags, 'ami-janitor:expires-at': `soon${HOSTILE}`, Name: HOSTILE }
          : image.tags,
    })),
    snapshots: (seed.snapshots ?? []).map((snapshot) => ({
      ...snapshot,
      description: `${snapshot.description}${HOSTILE}`,
      tags: { ...snapshot.tags, Name: `${snapshot.tags.Name ?? ''}${HOSTILE}` },
    })),
  };
}

describe('renderHtmlReport', () => {
  it('is one self-contained page: no script, nothing fetched, a policy that forbids fetching', async () => {
    // Prepare
    const { section } = await sweep(demoAccount(NOW));

    // Act
    const page = renderHtmlReport([section], OPTIONS);
    const document = parse(page);

    // Assess
    expect(page.startsWith('<!DOCTYPE html>')).toBe(true);
    for (const tag of ['script', 'link', 'img', 'iframe', 'object', 'embed', 'base', 'form']) {
      expect(elements(document, tag), tag).toEqual([]);
    }
    const all = elements(document);
    expect(all.filter((node) => attr(node, 'src') !== undefined)).toEqual([]);
    expect(all.flatMap((node) => node.attrs.filter((a) => a.name.startsWith('on')))).toEqual([]);
    for (const link of all.filter((node) => attr(node, 'href') !== undefined)) {
      expect(attr(link, 'href')).toMatch(/^#[\w-]+$/);
    }
    const styles = elements(document, 'style').map(text).join('\n');
    expect(styles).not.toMatch(/url\(|@import|@font-face/);
    expect(page).not.toMatch(/https?:\/\//);
    const csp = elements(document, 'meta').find((m) => attr(m, 'http-equiv') === 'Content-Security-Policy');
    expect(attr(csp as Element, 'content')).toContain("default-src 'none'");
    const ids = all.map((node) => attr(node, 'id')).filter(Boolean);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('shows the totals of the report and the cost it prices', async () => {
    // Prepare
    const { report, section } = await sweep(demoAccount(NOW));

    // Act
    const document = parse(renderHtmlReport([section], OPTIONS));

    // Assess
    const totals = elements(byId(document, 'totals')).filter((node) => attr(node, 'data-total'));
    expect(totals.length).toBeGreaterThanOrEqual(8);
    for (const node of totals) {
      const key = attr(node, 'data-total') as keyof RunReport['totals'];
      expect(text(node), key).toBe(String(report.totals[key]));
    }
    const cost = Object.fromEntries(
      elements(byId(document, 'totals'))
        .filter((node) => attr(node, 'data-cost'))
        .map((node) => [attr(node, 'data-cost'), text(node)]),
    );
    expect(cost).toEqual({
      reclaimableGiB: String(report.cost.reclaimableGiB),
      estimatedMonthlySavingUsd: report.cost.estimatedMonthlySavingUsd.toFixed(2),
      scheduledGiB: String(report.cost.scheduledGiB),
    });
  });

  it('lists every image and every snapshot with its id, name, verdict, rule and reason', async () => {
    // Prepare
    const { report, section } = await sweep(demoAccount(NOW));
    const snapshotNames = new Map(
      section.snapshots?.map((s) => [s.snapshotId, s.tags.Name ?? s.description]),
    );

    // Act
    const document = parse(renderHtmlReport([section], OPTIONS));

    // Assess
    const imageRows = elements(byId(document, 'images'), 'tr').filter((row) => attr(row, 'data-image'));
    expect(imageRows).toHaveLength(report.decisions.length);
    for (const decision of report.decisions) {
      const row = imageRows.find((r) => attr(r, 'data-image') === decision.imageId) as Element;
      const [id, name, verdict, , rule, reason] = cells(row);
      expect({ id, name, verdict, rule }).toEqual({
        id: decision.imageId,
        name: decision.name,
        verdict: decision.verdict,
        rule: decision.rule,
      });
      expect(reason?.startsWith(decision.reason)).toBe(true);
    }
    const snapshotRows = elements(byId(document, 'snapshots'), 'tr').filter((row) =>
      attr(row, 'data-snapshot'),
    );
    expect(snapshotRows).toHaveLength(report.snapshotDecisions.length);
    expect(report.snapshotDecisions.some((d) => d.rule === 'in-use')).toBe(true);
    for (const decision of report.snapshotDecisions) {
      const row = snapshotRows.find((r) => attr(r, 'data-snapshot') === decision.snapshotId) as Element;
      const [id, name, , verdict, , rule, reason] = cells(row);
      expect({ id, name, verdict, rule }).toEqual({
        id: decision.snapshotId,
        name: snapshotNames.get(decision.snapshotId),
        verdict: decision.verdict,
        rule: decision.rule,
      });
      expect(reason?.startsWith(decision.reason)).toBe(true);
    }
  });

  it('charts GiB by family: this run adds up to what the report would reclaim', async () => {
    // Prepare
    const { report, section } = await sweep(demoAccount(NOW));

    // Act
    const document = parse(renderHtmlReport([section], OPTIONS));

    // Assess
    const bars = elements(byId(document, 'families'), 'g').filter((g) => attr(g, 'data-family'));
    const sum = (key: string) => bars.reduce((total, bar) => total + Number(attr(bar, key)), 0);
    expect(Math.round(sum('data-now') * 100) / 100).toBe(report.cost.reclaimableGiB);
    const families = bars.map((bar) => attr(bar, 'data-family'));
    expect(families).toContain('(orphaned snapshots)');
    expect(families).toContain('web');
    const orphans = bars.find((bar) => attr(bar, 'data-family') === '(orphaned snapshots)') as Element;
    expect(Number(attr(orphans, 'data-later'))).toBe(report.cost.scheduledGiB);
    expect(elements(byId(document, 'families'), 'svg')).toHaveLength(1);
  });

  it('puts every removal on the timeline at its due date, this run first', async () => {
    // Prepare
    const { report, section } = await sweep(demoAccount(NOW));

    // Act
    const document = parse(renderHtmlReport([section], OPTIONS));

    // Assess
    const days = elements(byId(document, 'timeline'), 'li').filter((li) => attr(li, 'data-date'));
    const dates = days.map((li) => attr(li, 'data-date') ?? '');
    expect(dates).toEqual([...dates].sort());
    expect(dates[0]).toBe(report.asOf.slice(0, 10));
    const on = (date: string) => text(days.find((li) => attr(li, 'data-date') === date) as Element);
    for (const outcome of report.actions) {
      if (outcome.action.kind === 'deregister') expect(on(dates[0] ?? '')).toContain(outcome.action.imageId);
      if (outcome.action.kind === 'mark' && outcome.action.removeAfter) {
        expect(on(outcome.action.removeAfter.slice(0, 10))).toContain(outcome.action.imageId);
      }
    }
    for (const entry of [...report.scheduled, ...report.snapshotScheduled]) {
      const id = 'imageId' in entry ? entry.imageId : entry.snapshotId;
      expect(on(entry.removeAfter.slice(0, 10))).toContain(id);
    }
  });

  it('an apply says what it removed, in the past tense', async () => {
    // Prepare
    const { report, section } = await sweep(demoAccount(NOW), 'apply');

    // Act
    const document = parse(renderHtmlReport([section], OPTIONS));

    // Assess
    const totals = byId(document, 'totals');
    expect(text(totals)).toContain('Reclaimed');
    expect(text(totals)).not.toContain('Would reclaim');
    const reclaimed = elements(totals).find((node) => attr(node, 'data-cost') === 'reclaimedGiB') as Element;
    expect(text(reclaimed)).toBe(String(report.cost.reclaimedGiB));
    expect(text(byId(document, 'timeline'))).toContain('deregistered');
  });

  it('escapes every value from outside: a hostile name is text, never markup', async () => {
    // Prepare
    const { report, section } = await sweep(hostileSeed());
    report.warnings.push(`could not read ${HOSTILE}`);

    // Act
    const page = renderHtmlReport([section], OPTIONS);
    const document = parse(page);

    // Assess
    expect(elements(document, 'script')).toEqual([]);
    expect(elements(document, 'img')).toEqual([]);
    expect(elements(document).flatMap((node) => node.attrs.filter((a) => a.name.startsWith('on')))).toEqual(
      [],
    );
    expect(page).not.toMatch(/<script|<img/i);
    // No control or bidi character reaches the page; line breaks of its own only.
    expect(page.replaceAll('\n', '')).not.toMatch(/[\p{Cc}\u202a-\u202e\u2066-\u2069]/u);
    const shown = printable(HOSTILE);
    const imageRows = elements(byId(document, 'images'), 'tr').filter((row) => attr(row, 'data-image'));
    expect(imageRows).toHaveLength(report.decisions.length);
    for (const row of imageRows) expect(cells(row)[1]?.endsWith(shown)).toBe(true);
    // The seeded snapshots carry the hostile Name tag; those the account made for its images do not.
    const seeded = new Set(hostileSeed().snapshots?.map((snapshot) => snapshot.snapshotId));
    const snapshotRows = elements(byId(document, 'snapshots'), 'tr').filter((row) =>
      seeded.has(attr(row, 'data-snapshot') ?? ''),
    );
    expect(snapshotRows.length).toBeGreaterThan(0);
    for (const row of snapshotRows) expect(cells(row)[1]?.endsWith(shown)).toBe(true);
    expect(text(byId(document, 'findings'))).toContain(`soon${shown}`);
    expect(text(byId(document, 'findings'))).toContain(`could not read ${shown}`);
    const families = elements(byId(document, 'families'), 'g').map((g) => attr(g, 'data-family') ?? '');
    expect(families.some((family) => family.includes(shown))).toBe(true);
  });

  it('caps a value of any length', async () => {
    // Prepare
    const { report, section } = await sweep(demoAccount(NOW));
    const [first] = report.decisions;
    if (!first) throw new Error('the demo plan has no decisions');
    first.reason = 'r'.repeat(1_000_000);

    // Act
    const page = renderHtmlReport([section], OPTIONS);

    // Assess
    expect(page).toContain('[truncated, 1000000 chars]');
    expect(page.length).toBeLessThan(200_000);
  });

  it('over several targets: a table of targets and a section each, a failed one saying why', async () => {
    // Prepare
    const { section } = await sweep(demoAccount(NOW));
    const sections: HtmlReportSection[] = [
      { ...section, heading: '=== Account 111122223333 in eu-west-1 ===' },
      { ...section, heading: '=== Account 111122223333 in us-east-1 ===' },
      {
        heading: `=== Account 444455556666 ${HOSTILE} ===`,
        error: `AccessDenied: ${HOSTILE}`,
        familyTags: [],
      },
    ];

    // Act
    const page = renderHtmlReport(sections, OPTIONS);
    const document = parse(page);

    // Assess
    const rows = elements(byId(document, 'targets'), 'tbody').flatMap((body) => elements(body, 'tr'));
    expect(rows).toHaveLength(3);
    expect(text(rows[2] as Element)).toContain(`FAILED: AccessDenied: ${printable(HOSTILE)}`);
    expect(elements(document, 'section').filter((s) => attr(s, 'class') === 'target')).toHaveLength(3);
    expect(byId(document, 't1-totals')).toBeDefined();
    expect(elements(document, 'script')).toEqual([]);
    const ids = elements(document)
      .map((node) => attr(node, 'id'))
      .filter(Boolean);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('ami-janitor plan --html FILE', () => {
  async function run(...args: [CliDeps, ...string[]] | string[]) {
    const [first, ...rest] = args;
    const deps = typeof first === 'object' ? first : {};
    const argv = typeof first === 'object' ? (rest as string[]) : (args as string[]);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const out: string[] = [];
    const err: string[] = [];
    stdout.setEncoding('utf8').on('data', (chunk: string) => out.push(chunk));
    stderr.setEncoding('utf8').on('data', (chunk: string) => err.push(chunk));
    const stdin = Object.assign(new PassThrough(), { isTTY: false });
    const code = await main(argv, { stdout, stderr, stdin, env: {} }, deps);
    await new Promise((done) => setImmediate(done));
    return { code, stdout: out.join(''), stderr: err.join('') };
  }

  it('writes the page and still prints the JSON report, whose totals the page shows', async () => {
    // Prepare
    const file = join(scratch, 'plan.html');

    // Act
    const result = await run('plan', '--demo', '--json', '--html', file);

    // Assess
    expect(result.code).toBe(EXIT.ok);
    const report = JSON.parse(result.stdout) as RunReport;
    const document = parse(readFileSync(file, 'utf8'));
    const images = elements(document).find((node) => attr(node, 'data-total') === 'images') as Element;
    expect(text(images)).toBe(String(report.totals.images));
    expect(
      elements(byId(document, 'snapshots'), 'tr').filter((row) => attr(row, 'data-snapshot')),
    ).toHaveLength(report.snapshotDecisions.length);
  });

  it('prints the same table with --html as without', async () => {
    // Act
    const plain = await run('plan', '--demo', '--as-of', '2026-12-01');
    const withPage = await run(
      'plan',
      '--demo',
      '--as-of',
      '2026-12-01',
      '--html',
      join(scratch, 'same.html'),
    );

    // Assess
    expect(withPage.stdout).toBe(plain.stdout);
  });

  it.each([
    {
      case: 'a missing folder',
      file: () => join(scratch, 'no-such-folder', 'r.html'),
      message: 'does not exist',
    },
    { case: 'a directory', file: () => scratch, message: 'not a regular file' },
  ])(
    'exits 73 before reading the account when the file cannot be written ($case)',
    async ({ file, message }) => {
      // Act
      const result = await run('plan', '--demo', '--html', file());

      // Assess
      expect(result.code).toBe(EXIT.cannotWrite);
      expect(result.stderr).toContain(message);
      expect(result.stderr).not.toContain('Using the built-in demo account');
      expect(result.stdout).toBe('');
    },
  );

  it('exits 73 when the page cannot be written after the run, having printed what the run did', async () => {
    // Prepare: the path becomes a directory while the account is read, after the check.
    const file = join(scratch, 'taken.html');
    const account = new MemoryAccount(demoAccount(new Date()));
    const list = account.listOwnedImages.bind(account);
    account.listOwnedImages = async () => {
      mkdirSync(file);
      return list();
    };
    const ports: AccountPorts = {
      inventory: account,
      actions: account,
      snapshots: account,
      sharing: account,
      trailHealth: { check: async (region) => ({ ok: true, region, reason: 'trail on' }) },
      snapshotPorts: { inventory: account, sharing: account, actions: account },
    };

    // Act
    const result = await run(
      { accountPorts: async () => ports },
      'plan',
      '--region',
      'eu-west-1',
      '--html',
      file,
    );

    // Assess
    expect(result.code).toBe(EXIT.cannotWrite);
    expect(result.stderr).toContain(`cannot write --html ${file}`);
    expect(result.stdout).toMatch(/^Plan: /m);
  });

  it('is a usage error for audit', async () => {
    // Act
    const result = await run('audit', '--demo', '--html', join(scratch, 'audit.html'));

    // Assess
    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toContain('--html is for plan and apply');
  });
});
