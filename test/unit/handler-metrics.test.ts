import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import scheduledSweep from '../../events/scheduled-sweep.json' with { type: 'json' };
import { defaultPolicy, parsePolicy } from '../../src/config/policy.ts';
import type { MetricPoint, MetricsPort } from '../../src/core/run-metrics.ts';
import { DEMO_ACCOUNT_ID, demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import { recordingLog } from './factories.ts';

vi.mock('../../src/adapters/ec2.ts', async (original) => ({
  ...(await original<typeof import('../../src/adapters/ec2.ts')>()),
  createInventory: () => {
    throw new Error('the real adapter must not be reached');
  },
}));

let sweepModule: typeof import('../../src/handlers/sweep.ts');
let targetModule: typeof import('../../src/handlers/sweep-target.ts');
let eventModule: typeof import('../../src/handlers/on-image-event.ts');

beforeAll(async () => {
  vi.stubEnv('AMI_JANITOR_POLICY_FILE', resolve(import.meta.dirname, '../../policy.yml'));
  vi.stubEnv('AWS_REGION', 'eu-west-1');
  sweepModule = await import('../../src/handlers/sweep.ts');
  targetModule = await import('../../src/handlers/sweep-target.ts');
  eventModule = await import('../../src/handlers/on-image-event.ts');
});

const EVENT_TIME = new Date(scheduledSweep.time);
const REAL_NOW = new Date(EVENT_TIME.getTime() + 60_000);

function recordingMetrics(throttled = 3) {
  const published: { points: MetricPoint[]; metadata: unknown }[] = [];
  let started = 0;
  const port: MetricsPort = {
    startInvocation: () => {
      started += 1;
    },
    throttledCalls: () => throttled,
    publish: (points, metadata) => void published.push({ points: [...points], metadata }),
  };
  return { port, published, started: () => started };
}

function value(points: readonly MetricPoint[], name: string): number | undefined {
  return points.find((point) => point.name === name && Object.keys(point.dimensions).length === 0)?.value;
}

const context = { getRemainingTimeInMillis: () => 600_000 };

describe('each handler publishes its figures once per invocation', () => {
  it('the sweep: an apply publishes the heartbeat and what it did; a plan publishes nothing', async () => {
    const account = new MemoryAccount(demoAccount(new Date(EVENT_TIME.getTime() - 8 * 86_400_000)));
    const metrics = recordingMetrics();
    const handler = sweepModule.makeSweepHandler({
      ports: () => ({ inventory: account, actions: account }),
      policy: { ...parsePolicy(demoPolicyDocument), dryRun: false, graceDays: 0 },
      region: 'eu-west-1',
      dryRun: false,
      clock: () => REAL_NOW,
      log: recordingLog(),
      metrics: metrics.port,
    });

    await handler({ mode: 'plan' }, context);
    expect(metrics.published).toEqual([]);

    const report = await handler({ mode: 'apply' }, context);
    if ('status' in report) throw new Error(report.reason);
    expect(metrics.started()).toBe(2);
    expect(metrics.published).toHaveLength(1);
    const [{ points, metadata }] = metrics.published as [{ points: MetricPoint[]; metadata: unknown }];
    expect(value(points, 'SweepCompleted')).toBe(1);
    expect(value(points, 'ThrottledCalls')).toBe(3);
    expect(value(points, 'ImagesDeregistered')).toBe(report.totals.deregistered);
    expect(value(points, 'ImagesMarked')).toBe(report.totals.marked);
    expect(metadata).toMatchObject({ accountId: DEMO_ACCOUNT_ID, region: 'eu-west-1' });
    // Ids never become dimensions.
    expect(JSON.stringify(points.map((point) => point.dimensions))).not.toMatch(/ami-|snap-|\d{12}/);
  });

  it('the state machine step: every invocation, with the target in the metadata', async () => {
    const account = new MemoryAccount(demoAccount(new Date(EVENT_TIME.getTime() - 8 * 86_400_000)));
    const metrics = recordingMetrics(0);
    const handler = targetModule.makeSweepTargetHandler({
      ports: async () => ({ inventory: account, actions: account }),
      policy: { ...parsePolicy(demoPolicyDocument), dryRun: false, graceDays: 0 },
      dryRun: false,
      clock: () => REAL_NOW,
      log: recordingLog(),
      metrics: metrics.port,
    });
    const output = await handler(
      {
        target: { accountId: DEMO_ACCOUNT_ID, region: 'eu-west-1' },
        runId: 'run-1',
        asOf: EVENT_TIME.toISOString(),
      },
      context,
    );
    expect(metrics.published).toHaveLength(1);
    const [{ points, metadata }] = metrics.published as [{ points: MetricPoint[]; metadata: unknown }];
    expect(value(points, 'SweepCompleted')).toBe(1);
    expect(value(points, 'ImagesDeregistered')).toBe(output.summary.totals.deregistered);
    expect(metadata).toEqual({
      runId: 'run-1',
      invocation: 1,
      accountId: DEMO_ACCOUNT_ID,
      region: 'eu-west-1',
    });
  });

  it('the event handler: a malformed event is counted too', async () => {
    const metrics = recordingMetrics(0);
    const handler = eventModule.makeImageEventHandler({
      ports: () => {
        throw new Error('no port is needed for a malformed event');
      },
      notifier: { send: async () => ({ delivered: true, attempts: 1 }) },
      policy: defaultPolicy(),
      dryRun: true,
      region: 'eu-west-1',
      accountId: '111122223333',
      log: recordingLog(),
      metrics: metrics.port,
    });
    const malformed = JSON.parse(
      readFileSync(resolve(import.meta.dirname, '../../events/malformed.json'), 'utf8'),
    );
    const result = await handler(malformed, context);
    expect(result.status).toBe('rejected');
    expect(metrics.published).toHaveLength(1);
    expect(metrics.published[0]?.points).toContainEqual(
      expect.objectContaining({ name: 'ImageEvents', dimensions: { outcome: 'rejected' }, value: 1 }),
    );
  });
});
