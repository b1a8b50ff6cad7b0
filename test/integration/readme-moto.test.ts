import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';
import { describeWithMoto, freePort } from './moto.ts';

/**
 * The README's moto recipe, run as written: its shell block in bash, on a free port instead of
 * 5000 (which another server may hold), with moto stopped when the block ends.
 */

const ROOT = resolve(import.meta.dirname, '../..');
const DEADLINE_MS = 90_000;

function recipe(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Against moto or LocalStack\n');
  if (start === -1) throw new Error('README.md has no "## Against moto or LocalStack" section');
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(start));
  if (!block?.[1]) throw new Error('the moto section has no sh block');
  return block[1];
}

function bash(script: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn('bash', ['-e', '-c', script], {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => process.kill(-(child.pid ?? 0), 'SIGKILL'), DEADLINE_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

// describeWithMoto for its CI=true rule: moto_server must be on the PATH. The recipe starts its own.
describeWithMoto('the README moto recipe', () => {
  it(
    'starts moto, plans a forecast and applies, each as the README writes it',
    async () => {
      const port = await freePort();
      const lines = recipe().replaceAll(':5000', `:${port}`).replaceAll('-p 5000', `-p ${port}`);
      expect(lines).toContain('moto_server -H 127.0.0.1');
      const script = `${lines.trim()}\nkill %1\n`;
      const result = await bash(script);
      // moto's own request log and tracebacks (for calls it lacks) go to stderr too.
      expect(result.code, result.stdout).toBe(0);
      expect(result.stdout).toMatch(/^Plan: 0 images/m);
      expect(result.stdout).toContain('Apply');
    },
    DEADLINE_MS + 10_000,
  );
});
