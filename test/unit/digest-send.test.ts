import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import scheduledSweep from '../../events/scheduled-sweep.json' with { type: 'json' };
import { type Policy, parsePolicy } from '../../src/config/policy.ts';
import { digestFingerprint, sendDigest } from '../../src/core/digest.ts';
import type { StateStore } from '../../src/core/ports.ts';
import type { RunReport } from '../../src/core/report.ts';
import { runSweep } from '../../src/core/sweep.ts';
import { demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import { createSlackNotifier, type SlackMessage } from '../../src/notify/slack.ts';
import { recordingLog } from './factories.ts';

// The sweep handler module builds its default Lambda handler at import; the tests below inject
// every port, so the real EC2 adapters are replaced by ones that fail if anything reaches them.
vi.mock('../../src/adapters/ec2.ts', () => {
  const unused = () =>
    new Proxy({}, { get: () => () => Promise.reject(new Error('reached the real EC2 adapter')) });
  return { createInventory: unused, createImageActions: unused };
});

const NOW = new Date('2026-11-22T06:00:00.000Z');
const STATE_KEY = 'digest/eu-west-1';
const WEBHOOK_PATH = '/services/T0JANITOR/B0DIGEST/digestSecretToken';

/** A stand-in for hooks.slack.com on 127.0.0.1: answers with the queued statuses, then 200 ok. */
let server: Server;
let webhookUrl: string;
let received: SlackMessage[] = [];
/** A status, or a status Slack answers with only after `delayMs`. */
let replies: (number | { status: number; delayMs: number })[] = [];

beforeAll(async () => {
  server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as SlackMessage);
      const reply = replies.shift() ?? 200;
      const { status, delayMs } = typeof reply === 'number' ? { status: reply, delayMs: 0 } : reply;
      setTimeout(() => {
        if (response.destroyed) return;
        response.writeHead(status, { 'content-type': 'text/plain' });
        response.end(status === 200 ? 'ok' : 'internal_error');
      }, delayMs).unref();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  webhookUrl = `http://127.0.0.1:${port}${WEBHOOK_PATH}`;
});

afterAll(async () => {
  // Keep-alive sockets from fetch would otherwise hold close() open.
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  received = [];
  replies = [];
});

function memoryState(): StateStore & { values: Map<string, string> } {
  const values = new Map<string, string>();
  return {
    values,
    get: async (key) => values.get(key),
    put: async (key, value) => {
      values.set(key, value);
    },
  };
}

function setup(digest: Policy['digest'], options: { timeoutMs?: number } = {}) {
  const log = recordingLog();
  const state = memoryState();
  // The retry waits are skipped, not the HTTP: every attempt reaches the local server.
  const notifier = createSlackNotifier({
    webhookUrl: async () => webhookUrl,
    sleep: async () => {},
    log,
    ...options,
  });
  return { log, state, context: { policy: { digest }, state, notifier, log } };
}

async function demoReport(options: { dryRun?: boolean; account?: MemoryAccount } = {}): Promise<RunReport> {
  const account = options.account ?? new MemoryAccount(demoAccount(NOW));
  return runSweep(
    {
      inventory: account,
      actions: account,
      snapshots: { inventory: account, actions: account, sharing: account },
      log: recordingLog(),
    },
    {
      policy: parsePolicy(demoPolicyDocument),
      region: 'eu-west-1',
      now: NOW,
      mode: 'apply',
      dryRun: options.dryRun ?? true,
      deadline: { remainingMs: () => 1e9 },
    },
  );
}

function fieldText(message: SlackMessage | undefined, title: string): string {
  const found = (message?.blocks ?? [])
    .flatMap((block) => (block.type === 'section' ? (block.fields ?? []) : []))
    .find((field) => field.text.startsWith(`*${title}*`));
  if (!found) throw new Error(`no field titled ${title}`);
  return found.text;
}

function numberBefore(text: string, label: string): number | undefined {
  const match = new RegExp(`([\\d,]+) ${label}`).exec(text);
  return match?.[1] === undefined ? undefined : Number(match[1].replaceAll(',', ''));
}

describe('sendDigest through the Slack webhook', () => {
  it("POSTs a digest whose numbers are the report's totals and cost", async () => {
    // Prepare
    const { context } = setup('always');
    const report = await demoReport();
    const t = report.totals;

    // Act
    const outcome = await sendDigest(report, context);

    // Assess
    expect(outcome).toBe('sent');
    expect(received).toHaveLength(1);
    const [payload] = received;
    const images = fieldText(payload, 'Images');
    const snapshots = fieldText(payload, 'Snapshots');
    expect(
      ['examined', 'kept', 'eligible', 'marked', 'deregistered', 'unmarked', 'failed'].map((label) =>
        numberBefore(images, label),
      ),
    ).toEqual([t.images, t.kept, t.eligible, t.marked, t.deregistered, t.unmarked, t.failed]);
    expect(
      ['examined', 'orphans', 'marked', 'deleted', 'failed'].map((label) => numberBefore(snapshots, label)),
    ).toEqual([t.snapshots, t.orphans, t.snapshotsMarked, t.snapshotsDeleted, t.snapshotsFailed]);
    expect(fieldText(payload, 'Reclaimed')).toContain(`would reclaim ${report.cost.reclaimableGiB} GiB`);
    expect(fieldText(payload, 'Estimated monthly saving')).toContain(
      `$${report.cost.estimatedMonthlySavingUsd.toFixed(2)} per month`,
    );
    expect(payload?.text).toContain(`$${report.cost.estimatedMonthlySavingUsd.toFixed(2)}/month`);
  });

  it("sends once under 'changes', then not again for the same sweep re-run", async () => {
    // Prepare
    const { context, state } = setup('changes');
    const first = await demoReport();
    // The same sweep a day later: only its clock and timings differ.
    const again = {
      ...(await demoReport()),
      asOf: '2026-11-23T06:00:00.000Z',
      startedAt: '2026-11-23T06:00:01.000Z',
      finishedAt: '2026-11-23T06:00:09.000Z',
    };

    // Act
    const outcomes = [await sendDigest(first, context), await sendDigest(again, context)];

    // Assess
    expect(outcomes).toEqual(['sent', 'unchanged']);
    expect(received).toHaveLength(1);
    expect(state.values.get(STATE_KEY)).toBe(digestFingerprint(first));
  });

  it("sends again under 'changes' when the sweep's outcome changed", async () => {
    // Prepare
    const { context, state } = setup('changes');
    const account = new MemoryAccount(demoAccount(NOW));
    const dryRun = await demoReport({ account });
    const applied = await demoReport({ account, dryRun: false });

    // Act
    const outcomes = [await sendDigest(dryRun, context), await sendDigest(applied, context)];

    // Assess
    expect(outcomes).toEqual(['sent', 'sent']);
    expect(received).toHaveLength(2);
    expect(received[1]?.blocks[0]).toMatchObject({
      text: { text: 'ami-janitor sweep: 111122223333 / eu-west-1' },
    });
    expect(state.values.get(STATE_KEY)).toBe(digestFingerprint(applied));
  });

  it("sends after every sweep under 'always'", async () => {
    // Prepare
    const { context } = setup('always');
    const report = await demoReport();

    // Act
    const outcomes = [
      await sendDigest(report, context),
      await sendDigest(report, context),
      await sendDigest(report, context),
    ];

    // Assess
    expect(outcomes).toEqual(['sent', 'sent', 'sent']);
    expect(received).toHaveLength(3);
  });

  it("never sends under 'never'", async () => {
    // Prepare
    const { context, state } = setup('never');
    const report = await demoReport();

    // Act
    const outcome = await sendDigest(report, context);

    // Assess
    expect(outcome).toBe('disabled');
    expect(received).toEqual([]);
    expect(state.values.size).toBe(0);
  });

  it("treats a sweep with nothing to say as unchanged under 'changes', even the first time", async () => {
    // Prepare
    const { context } = setup('changes');
    const quiet = await demoReport({ account: new MemoryAccount({ accountId: '111122223333', images: [] }) });

    // Act
    const outcome = await sendDigest(quiet, context);

    // Assess
    expect(quiet.actions).toEqual([]);
    expect(outcome).toBe('unchanged');
    expect(received).toEqual([]);
  });

  it('logs the whole digest and keeps no state when Slack answers 500', async () => {
    // Prepare
    const { context, state, log } = setup('changes');
    const report = await demoReport();
    replies = [500, 500, 500, 500];

    // Act
    const outcome = await sendDigest(report, context);

    // Assess
    expect(outcome).toBe('not-delivered');
    expect(received).toHaveLength(4);
    expect(state.values.size).toBe(0);
    const errors = log.entries.filter((entry) => entry.level === 'error');
    expect(errors.map((entry) => entry.message)).toEqual(['sweep digest not delivered']);
    const [extra] = errors[0]?.extra ?? [];
    const logged = extra as { digest?: unknown; delivery?: { status?: number; error?: string } };
    expect(logged.delivery?.status).toBe(500);
    expect(logged.digest).toEqual(expect.stringContaining('ami-janitor sweep: 111122223333 / eu-west-1'));
    expect(logged.digest).toEqual(expect.stringContaining('*Images scheduled for removal*'));
    expect(JSON.stringify(errors)).not.toContain('digestSecretToken');
  });

  it('retries on the next sweep after a failed delivery', async () => {
    // Prepare
    const { context, state } = setup('changes');
    const report = await demoReport();
    replies = [500, 500, 500, 500];
    await sendDigest(report, context);

    // Act
    const outcome = await sendDigest(report, context);

    // Assess
    expect(outcome).toBe('sent');
    expect(received).toHaveLength(5);
    expect(state.values.get(STATE_KEY)).toBe(digestFingerprint(report));
  });

  it('keeps no state when the POST timed out, logs the whole digest, and sends it again on the next sweep', async () => {
    // Prepare: Slack answers 200, but after the request gave up waiting.
    const { context, state, log } = setup('changes', { timeoutMs: 150 });
    const report = await demoReport();
    replies = [{ status: 200, delayMs: 600 }];

    // Act
    const outcome = await sendDigest(report, context);
    // Long enough for any second POST to have arrived.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const postsAfterFirst = received.length;
    const next = await sendDigest(report, context);

    // Assess: one POST, not retried; nothing remembered, so the next sweep sends it again.
    expect(outcome).toBe('unconfirmed');
    expect(postsAfterFirst).toBe(1);
    const errors = log.entries.filter((entry) => entry.level === 'error');
    expect(errors.map((entry) => entry.message)).toEqual(['sweep digest delivery unconfirmed']);
    const logged = errors[0]?.extra[0] as { digest?: unknown; delivery?: { maybeDelivered?: boolean } };
    expect(logged.delivery?.maybeDelivered).toBe(true);
    expect(logged.digest).toEqual(expect.stringContaining('*Images scheduled for removal*'));
    expect(next).toBe('sent');
    expect(received).toHaveLength(2);
    expect(state.values.get(STATE_KEY)).toBe(digestFingerprint(report));
  });

  it('sends when the last digest cannot be read, and warns', async () => {
    // Prepare
    const { context, log } = setup('changes');
    const report = await demoReport();
    const broken: StateStore = {
      get: async () => {
        throw Object.assign(new Error('denied'), { name: 'AccessDeniedException' });
      },
      put: async () => {},
    };

    // Act
    const outcome = await sendDigest(report, { ...context, state: broken });

    // Assess
    expect(outcome).toBe('sent');
    expect(received).toHaveLength(1);
    expect(
      log.entries.some(
        (entry) =>
          entry.level === 'warn' && entry.message === 'last digest unreadable; sending as if it changed',
      ),
    ).toBe(true);
  });
});

describe('the sweep handler', () => {
  async function handlerWith(digest: Policy['digest']) {
    vi.stubEnv('AMI_JANITOR_POLICY_FILE', resolve(import.meta.dirname, '../../policy.yml'));
    vi.stubEnv('AWS_REGION', 'eu-west-1');
    const { makeSweepHandler } = await import('../../src/handlers/sweep.ts');
    vi.unstubAllEnvs();
    const { log, state, context } = setup(digest);
    const account = new MemoryAccount(demoAccount(NOW));
    const handler = makeSweepHandler({
      ports: () => ({ inventory: account, actions: account }),
      alerts: { notifier: context.notifier, state },
      policy: { ...parsePolicy(demoPolicyDocument), digest },
      region: 'eu-west-1',
      dryRun: true,
      clock: () => NOW,
      log,
    });
    return { handler, log, state };
  }
  const lambdaContext = { getRemainingTimeInMillis: () => 600_000 };

  it('sends the digest after a scheduled sweep, once while nothing changes', async () => {
    // Prepare
    const { handler, log, state } = await handlerWith('changes');

    // Act
    await handler(structuredClone(scheduledSweep), lambdaContext);
    await handler(structuredClone(scheduledSweep), lambdaContext);

    // Assess
    expect(received).toHaveLength(1);
    expect(received[0]?.blocks[0]).toMatchObject({
      text: { text: 'ami-janitor sweep: 111122223333 / eu-west-1 (dry run)' },
    });
    expect(state.values.has(STATE_KEY)).toBe(true);
    const outcomes = log.entries
      .filter((entry) => entry.message === 'sweep digest')
      .map((entry) => (entry.extra[0] as { digest?: unknown }).digest);
    expect(outcomes).toEqual(['sent', 'unchanged']);
  });

  it('sends no digest for a hand-run plan', async () => {
    // Prepare
    const { handler, state } = await handlerWith('always');

    // Act
    await handler({ mode: 'plan' }, lambdaContext);

    // Assess
    expect(received).toEqual([]);
    expect(state.values.has(STATE_KEY)).toBe(false);
  });
});
