import type { Reporter, TestModule } from 'vitest/node';
import { motoAvailable, motoMissingBanner } from './moto.ts';

const INTEGRATION_PROJECT = 'integration';

interface Counts {
  passed: number;
  failed: number;
  skipped: number;
  /** Files that threw while collecting (moto missing in CI, an import error): no test to count. */
  brokenFiles: number;
}

/**
 * Ends every run with plain `N passed, N failed, N skipped` lines: one for the integration tests
 * alone (moto_server, and chromium for the HTML report), then one for the whole run. Without the first, a laptop with no moto
 * shows a green run that tested nothing but mocks; the plain format is what CI's log reader counts.
 * A file that failed to load counts as one failure, so a broken file can never read as "0 failed".
 */
export default class CountReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    if (testModules.length === 0) return;
    const integration = count(testModules.filter((module) => module.project.name === INTEGRATION_PROJECT));
    const all = count(testModules);
    const lines: string[] = [''];

    if (integration.passed + integration.failed + integration.skipped > 0) {
      const broken = integration.brokenFiles > 0 ? `, ${integration.brokenFiles} file(s) failed to load` : '';
      lines.push(
        `integration tests, against a real moto_server on 127.0.0.1 and headless chromium${broken}:`,
      );
      lines.push(`integration: ${format(integration)}`);
    }
    lines.push(`all: ${format(all)}`);
    process.stdout.write(`${lines.join('\n')}\n`);

    if (integration.skipped > 0 && !motoAvailable()) {
      process.stderr.write(`${motoMissingBanner(`${integration.skipped} integration tests NOT run`)}\n`);
    }
  }
}

function count(modules: readonly TestModule[]): Counts {
  const counts: Counts = { passed: 0, failed: 0, skipped: 0, brokenFiles: 0 };
  for (const module of modules) {
    if (module.state() === 'failed' && module.children.size === 0) {
      counts.brokenFiles++;
      counts.failed++;
    }
    for (const test of module.children.allTests()) {
      const { state } = test.result();
      // A pending test at the end of a run never finished: that is a failure, not a pass.
      if (state === 'passed') counts.passed++;
      else if (state === 'skipped') counts.skipped++;
      else counts.failed++;
    }
  }
  return counts;
}

function format(counts: Counts): string {
  return `${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`;
}
