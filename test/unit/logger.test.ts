import { Console } from 'node:console';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { logger } from '../../src/logger.ts';

const MB = 1024 * 1024;

/** The lines the logger prints, captured at the one place Powertools writes through. */
function captureLines(): string[] {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  (logger as unknown as { console: Console }).console = new Console({ stdout: sink, stderr: sink });
  return lines;
}

async function flushed(lines: string[]): Promise<Record<string, unknown>[]> {
  await new Promise((done) => setImmediate(done));
  return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('logger', () => {
  let previous: Console;

  beforeEach(() => {
    previous = (logger as unknown as { console: Console }).console;
    logger.setLogLevel('INFO');
  });

  afterEach(() => {
    (logger as unknown as { console: Console }).console = previous;
    logger.setLogLevel('SILENT');
  });

  it('caps a 1 MB value from outside, saying it was truncated', async () => {
    // Prepare
    const lines = captureLines();

    // Act
    logger.info('event dropped', { errorCode: 'E'.repeat(MB) });

    // Assess
    const [entry] = await flushed(lines);
    expect(lines[0]?.length).toBeLessThan(4096);
    expect(entry?.errorCode).toBe(`${'E'.repeat(1024)}…[truncated, ${MB} chars]`);
  });

  it('caps strings at any depth, in arrays, in the message and in keys', async () => {
    // Prepare
    const lines = captureLines();
    const long = 'x'.repeat(10_000);

    // Act
    logger.warn(`unknown ${long}`, {
      detail: { nested: [{ value: long }], [long]: 'key from outside' },
    });

    // Assess
    const [entry] = await flushed(lines);
    expect(lines[0]?.length).toBeLessThan(8192);
    expect(entry?.message).toMatch(/^unknown x+…\[truncated, 10008 chars\]$/);
    const detail = entry?.detail as { nested: { value: string }[] } & Record<string, string>;
    expect(detail.nested[0]?.value).toMatch(/…\[truncated, 10000 chars\]$/);
    const keys = Object.keys(detail).filter((key) => key !== 'nested');
    expect(keys).toEqual([`${'x'.repeat(1024)}…[truncated, 10000 chars]`]);
    expect(detail[keys[0] ?? '']).toBe('key from outside');
  });

  it('caps an error message and keeps the error structured', async () => {
    // Prepare
    const lines = captureLines();

    // Act
    logger.error('call failed', { error: new RangeError('m'.repeat(MB)) });

    // Assess
    const [entry] = await flushed(lines);
    expect(lines[0]?.length).toBeLessThan(16_384);
    const error = entry?.error as { name: string; message: string };
    expect(error.name).toBe('RangeError');
    expect(error.message).toMatch(/…\[truncated, 1048576 chars\]$/);
  });

  it('keeps a digest Slack did not take whole, since it is built from values already clipped', async () => {
    // Prepare
    const lines = captureLines();
    const digest = `ami-janitor sweep\n${'• `ami-0123456789abcdef0` web-2026-01-01\n'.repeat(300)}`;

    // Act
    logger.error('sweep digest not delivered', { digest, reason: 'r'.repeat(5000) });

    // Assess
    const [entry] = await flushed(lines);
    expect(entry?.digest).toBe(digest);
    expect(entry?.reason).toMatch(/…\[truncated, 5000 chars\]$/);
  });

  it('leaves short values exactly as they were', async () => {
    // Prepare
    const lines = captureLines();

    // Act
    logger.info('decision', { imageId: 'ami-0123456789abcdef0', verdict: 'keep', count: 3, ok: true });

    // Assess
    const [entry] = await flushed(lines);
    expect(entry).toMatchObject({
      message: 'decision',
      imageId: 'ami-0123456789abcdef0',
      verdict: 'keep',
      count: 3,
      ok: true,
    });
  });
});
