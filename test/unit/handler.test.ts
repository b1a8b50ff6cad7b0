import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import scheduledSweep from '../../events/scheduled-sweep.json' with { type: 'json' };
import { MARKED_AT_TAG, type Policy, parsePolicy } from '../../src/config/policy.ts';
import type { RunReport } from '../../src/core/report.ts';
import { demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import type { SweepDependencies, SweepResult } from '../../src/handlers/sweep.ts';
import { recordingLog } from './factories.ts';

// The module builds its default Lambda handler at import; these tests inject every port, so the
// real adapters are swapped for ports that fail loudly if anything ever reaches them.
vi.mock('../../src/adapters/ec2.ts', () => {
  const unused = (name: string) =>
    new Proxy(
      {},
      {
        get: (_target, method) => () =>
          Promise.reject(new Error(`${name}.${String(method)} reached the real adapter`)),
      },
    );
  return { createInventory: () => unused('inventory'), createImageActions: () => unused('actions') };
});

let makeSweepHandler: typeof import('../../src/handlers/sweep.ts').makeSweepHandler;

beforeAll(async () => {
  vi.stubEnv('AMI_JANITOR_POLICY_FILE', resolve(import.meta.dirname, '../../policy.yml'));
  vi.stubEnv('AWS_REGION', 'eu-west-1');
  ({ makeSweepHandler } = await import('../../src/handlers/sweep.ts'));
});

afterAll(() => {
  vi.unstubAllEnvs();
});

const EVENT_TIME = new Date(scheduledSweep.time);
/** A clock that must lose to the event's own time whenever the event carries one. */
const WALL_CLOCK = new Date('2026-12-25T00:00:00.000Z');

function scheduledEvent() {
  return structuredClone(scheduledSweep);
}

function context(remainingMs = 600_000) {
  return { getRemainingTimeInMillis: vi.fn(() => remainingMs) };
}

function setup(overrides: { policy?: Partial<Policy>; dryRun?: boolean } = {}) {
  const account = new MemoryAccount(demoAccount(EVENT_TIME));
  const log = recordingLog();
  const deps: SweepDependencies = {
    ports: () => ({ inventory: account, actions: account }),
    policy: { ...parsePolicy(demoPolicyDocument), dryRun: false, ...overrides.policy },
    region: 'eu-west-1',
    dryRun: overrides.dryRun ?? false,
    clock: () => WALL_CLOCK,
    log,
  };
  return { account, log, deps, handler: makeSweepHandler(deps) };
}

function asReport(result: SweepResult): RunReport {
  if ('status' in result) throw new Error(`expected a run report, got rejected: ${result.reason}`);
  return result;
}

describe('sweep handler', () => {
  it('runs a scheduled event in apply mode with the event time as the clock', async () => {
    // Prepare
    const { account, handler } = setup();

    // Act
    const report = asReport(await handler(scheduledEvent(), context()));

    // Assess
    expect(report.mode).toBe('apply');
    expect(report.dryRun).toBe(false);
    expect(report.asOf).toBe(EVENT_TIME.toISOString());
    expect(report.totals.marked).toBeGreaterThan(0);
    const marks = [...account.images.values()].filter(
      (image) => image.tags[MARKED_AT_TAG] === EVENT_TIME.toISOString(),
    );
    expect(marks).toHaveLength(report.totals.marked);
    expect(account.calls.some((call) => call.startsWith('tagImage '))).toBe(true);
  });

  it.each([
    { case: 'the deployment', dryRun: true, policy: { dryRun: false } },
    { case: 'the policy', dryRun: false, policy: { dryRun: true } },
    { case: 'both', dryRun: true, policy: { dryRun: true } },
  ])('changes nothing when dry run comes from $case', async ({ dryRun, policy }) => {
    // Prepare
    const { account, handler } = setup({ dryRun, policy });

    // Act
    const report = asReport(await handler(scheduledEvent(), context()));

    // Assess
    expect(report.dryRun).toBe(true);
    expect(report.actions.length).toBeGreaterThan(0);
    expect(report.actions.every((outcome) => outcome.status === 'dry-run')).toBe(true);
    expect(account.calls).toEqual([]);
  });

  it.each([
    { case: 'an S3 event', event: { source: 'aws.s3' } },
    {
      case: 'an SQS record (the retired continuation queue; the state machine carries runs on now)',
      event: { Records: [{ eventSource: 'aws:sqs', body: '{"runId":"run-1","invocation":2}' }] },
    },
    { case: 'a string', event: 'sweep please' },
    { case: 'a number', event: 42 },
    { case: 'an unknown mode', event: { mode: 'destroy' } },
    { case: 'a manual asOf that is not a date', event: { mode: 'plan', asOf: 'tomorrow' } },
    {
      case: 'a scheduled event of another detail-type',
      event: { ...structuredClone(scheduledSweep), 'detail-type': 'EC2 Instance State-change Notification' },
    },
    {
      case: 'a scheduled event without a time',
      event: { ...structuredClone(scheduledSweep), time: undefined },
    },
  ])('rejects $case with a readable reason, without throwing or calling AWS', async ({ event }) => {
    // Prepare
    const { account, log, handler } = setup();
    const listOwnedImages = vi.spyOn(account, 'listOwnedImages');

    // Act
    const result = await handler(event, context());

    // Assess
    expect(result).toEqual({ status: 'rejected', reason: expect.any(String) });
    if (!('status' in result)) throw new Error('expected a rejection');
    expect(result.reason).toMatch(/^not a scheduled event or a \{mode, asOf\} invocation: /);
    expect(result.reason.length).toBeGreaterThan(
      'not a scheduled event or a {mode, asOf} invocation: '.length,
    );
    expect(listOwnedImages).not.toHaveBeenCalled();
    expect(account.calls).toEqual([]);
    expect(log.entries.filter((entry) => entry.message === 'event rejected')).toHaveLength(1);
  });

  it.each([
    { case: '{}', event: {} },
    { case: 'null', event: null },
    { case: 'no payload', event: undefined },
  ])('plans, and changes nothing, on a bare invocation ($case)', async ({ event }) => {
    // Prepare: the policy and the deployment are both live, so only the mode keeps this read-only.
    const { account, log, handler } = setup();

    // Act
    const report = asReport(await handler(event, context()));

    // Assess
    expect(report.mode).toBe('plan');
    expect(report.actions.length).toBeGreaterThan(0);
    expect(report.actions.every((outcome) => outcome.status === 'planned')).toBe(true);
    expect(account.calls).toEqual([]);
    expect(log.entries.some((entry) => entry.message === 'planning only')).toBe(true);
  });

  it.each([
    { case: 'in 2099', time: '2099-01-01T00:00:00Z' },
    {
      case: 'an hour ahead of the real clock',
      time: new Date(WALL_CLOCK.getTime() + 3_600_000).toISOString(),
    },
  ])('rejects a scheduled event whose time is $case, and changes nothing', async ({ time }) => {
    // Prepare
    const { account, log, handler } = setup();
    const listOwnedImages = vi.spyOn(account, 'listOwnedImages');

    // Act
    const result = await handler({ ...scheduledEvent(), time }, context());

    // Assess
    expect(result).toMatchObject({
      status: 'rejected',
      reason: expect.stringMatching(/later than the real clock/),
    });
    expect(listOwnedImages).not.toHaveBeenCalled();
    expect(account.calls).toEqual([]);
    const rejected = log.entries.find((entry) => entry.message === 'event rejected');
    expect(JSON.stringify(rejected?.extra)).toContain(new Date(time).toISOString());
  });

  it('accepts a scheduled event a little ahead of the real clock (clock skew)', async () => {
    // Prepare
    const { handler } = setup();
    const time = new Date(WALL_CLOCK.getTime() + 60_000).toISOString();

    // Act
    const report = asReport(await handler({ ...scheduledEvent(), time }, context()));

    // Assess
    expect(report.mode).toBe('apply');
    expect(report.asOf).toBe(time);
  });

  it('runs a manual {mode: plan} invocation read-only on the injected clock', async () => {
    // Prepare
    const { account, handler } = setup();

    // Act
    const report = asReport(await handler({ mode: 'plan' }, context()));

    // Assess
    expect(report.mode).toBe('plan');
    expect(report.asOf).toBe(WALL_CLOCK.toISOString());
    expect(report.actions.length).toBeGreaterThan(0);
    expect(report.actions.every((outcome) => outcome.status === 'planned')).toBe(true);
    expect(account.calls).toEqual([]);
  });

  it('forecasts a manual {mode: plan, asOf} invocation at that date', async () => {
    // Prepare
    const { account, handler } = setup();
    const asOf = '2030-01-01T00:00:00Z';

    // Act
    const report = asReport(await handler({ mode: 'plan', asOf }, context()));

    // Assess
    expect(report.asOf).toBe(new Date(asOf).toISOString());
    expect(account.calls).toEqual([]);
  });

  it('never changes the account on a manual invocation with a forecast date (asOf is not the real clock)', async () => {
    // Prepare: applying "as of" a later date would count grace periods that have not passed yet,
    // e.g. deregister an image marked 3 days ago.
    const { account, handler } = setup();
    const inGrace = [...account.images.values()].find((image) => image.name === 'reporting-2025-12-01');

    // Act
    await handler({ asOf: '2030-01-01T00:00:00Z' }, context());
    await handler({ mode: 'apply', asOf: '2030-01-01T00:00:00Z' }, context());

    // Assess
    expect(inGrace && account.images.has(inGrace.imageId)).toBe(true);
    expect(account.calls).toEqual([]);
  });

  it("uses the Lambda context's remaining time as the deadline", async () => {
    // Prepare: less than the 20 s the sweep keeps in reserve.
    const { account, handler } = setup();
    const lambda = context(5_000);

    // Act
    const report = asReport(await handler(scheduledEvent(), lambda));

    // Assess
    expect(lambda.getRemainingTimeInMillis).toHaveBeenCalled();
    expect(report.actions.length).toBeGreaterThan(0);
    expect(report.actions.every((outcome) => outcome.status === 'not-reached')).toBe(true);
    expect(report.complete).toBe(false);
    expect(account.calls).toEqual([]);
  });

  it('stops part-way when the remaining time runs low during the run', async () => {
    // Prepare: time runs short as soon as the first deregistration has been sent.
    const { account, handler } = setup();
    const lambda = {
      getRemainingTimeInMillis: () =>
        account.calls.some((call) => call.startsWith('deregisterImage')) ? 1_000 : 600_000,
    };

    // Act
    const report = asReport(await handler(scheduledEvent(), lambda));

    // Assess: what started before is done; nothing started after it, and the run says so.
    const byKind = (kind: string) => report.actions.filter((outcome) => outcome.action.kind === kind);
    const started = byKind('deregister').filter((outcome) => outcome.status !== 'not-reached');
    expect(started.map((outcome) => outcome.status)).toEqual(['done']);
    expect(account.calls.filter((call) => call.startsWith('deregisterImage'))).toHaveLength(1);
    expect(byKind('deregister').length).toBeGreaterThan(1);
    expect(
      [...byKind('mark'), ...byKind('unmark')].every((outcome) => outcome.status === 'not-reached'),
    ).toBe(true);
    expect(report.totals.notReached).toBe(report.actions.length - 1);
    expect(report.complete).toBe(false);
    expect(account.calls.length).toBeGreaterThan(0);
  });
});
