import { resolve } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import scheduledSweep from '../../events/scheduled-sweep.json' with { type: 'json' };
import { parsePolicy } from '../../src/config/policy.ts';
import { type Continuation, continuationSchema, MAX_INVOCATIONS } from '../../src/core/continuation.ts';
import type { RunReport } from '../../src/core/report.ts';
import { demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import { OutcomeUnknownError } from '../../src/errors.ts';
import type { SweepResult } from '../../src/handlers/sweep.ts';
import { memoryState, recordingLog } from './factories.ts';

vi.mock('../../src/adapters/ec2.ts', async (original) => ({
  ...(await original<typeof import('../../src/adapters/ec2.ts')>()),
  createInventory: () => {
    throw new Error('the real adapter must not be reached');
  },
}));

let makeSweepHandler: typeof import('../../src/handlers/sweep.ts').makeSweepHandler;

beforeAll(async () => {
  vi.stubEnv('AMI_JANITOR_POLICY_FILE', resolve(import.meta.dirname, '../../policy.yml'));
  vi.stubEnv('AWS_REGION', 'eu-west-1');
  ({ makeSweepHandler } = await import('../../src/handlers/sweep.ts'));
});

const EVENT_TIME = new Date(scheduledSweep.time);
/** Lambda's budget, in calls to getRemainingTimeInMillis: plenty, then below the 20 s reserve. */
function budget(checks: number) {
  let used = 0;
  return {
    getRemainingTimeInMillis: () => {
      used += 1;
      return used <= checks ? 600_000 : 5_000;
    },
  };
}

function asReport(result: SweepResult): RunReport {
  if ('status' in result) throw new Error(`rejected: ${result.reason}`);
  return result;
}

function sqsEvent(message: Continuation) {
  return { Records: [{ eventSource: 'aws:sqs', messageId: '1', body: JSON.stringify(message) }] };
}

/** The real clock of these tests: a day after the scheduled event. */
const REAL_NOW = new Date(EVENT_TIME.getTime() + 86_400_000);

/** What the run that sent `message` recorded before sending it. */
function expectContinuation(state: ReturnType<typeof memoryState>, message: Continuation) {
  state.values.set(
    'continuation/eu-west-1',
    JSON.stringify({ runId: message.runId, invocation: message.invocation, asOf: message.asOf }),
  );
}

function setup(send?: (next: Continuation) => Promise<void>) {
  // Eight days on, the demo's marks from an earlier run are due: a run with many removals.
  const account = new MemoryAccount(demoAccount(new Date(EVENT_TIME.getTime() - 8 * 86_400_000)));
  const handed: Continuation[] = [];
  const state = memoryState();
  const log = recordingLog();
  const handler = makeSweepHandler({
    ports: () => ({
      inventory: account,
      actions: account,
      snapshots: { inventory: account, sharing: account, actions: account },
    }),
    continuation: {
      send:
        send ??
        (async (next) => {
          handed.push(next);
        }),
      state,
    },
    policy: { ...parsePolicy(demoPolicyDocument), dryRun: false, graceDays: 0 },
    region: 'eu-west-1',
    dryRun: false,
    clock: () => REAL_NOW,
    log,
  });
  return { account, handed, handler, state, log };
}

describe('a sweep that outlasts one invocation', () => {
  it('stops before the deadline, hands on, and the next invocation finishes without redoing anything', async () => {
    // Prepare: a reference run with all the time it needs.
    const reference = setup();
    const whole = asReport(await reference.handler(structuredClone(scheduledSweep), budget(1_000)));
    expect(whole.complete).toBe(true);
    const { account, handed, handler } = setup();

    // Act 1: time for the first few deregistrations only.
    const first = asReport(await handler(structuredClone(scheduledSweep), budget(3)));

    // Assess 1
    expect(first.complete).toBe(false);
    expect(first.totals.notReached).toBeGreaterThan(0);
    expect(handed).toHaveLength(1);
    const [message] = handed;
    if (!message) throw new Error('no continuation was handed on');
    expect(continuationSchema.parse(JSON.parse(JSON.stringify(message)))).toEqual(message);
    expect(message).toMatchObject({
      runId: scheduledSweep.id,
      invocation: 2,
      asOf: EVENT_TIME.toISOString(),
      scheduled: true,
    });

    // Act 2: the follow-up invocation, delivered by the queue.
    const callsBefore = account.calls.length;
    const second = asReport(await handler(sqsEvent(message), budget(1_000)));

    // Assess 2: the run is complete, nothing was done twice, and the totals cover the whole run.
    expect(second.complete).toBe(true);
    expect(handed).toHaveLength(1);
    expect(second.run).toEqual({ runId: scheduledSweep.id, invocation: 2, startedAt: first.startedAt });
    const repeated = account.calls
      .slice(callsBefore)
      .filter((call) => account.calls.slice(0, callsBefore).includes(call));
    expect(repeated).toEqual([]);
    for (const key of [
      'deregistered',
      'snapshotsDeleted',
      'orphansDeleted',
      'marked',
      'images',
      'snapshots',
    ] as const) {
      expect(second.totals[key], key).toBe(whole.totals[key]);
    }
    expect(second.cost.reclaimedGiB).toBe(whole.cost.reclaimedGiB);
    expect([...account.images.keys()].sort()).toEqual([...reference.account.images.keys()].sort());
    expect([...account.snapshots.keys()].sort()).toEqual([...reference.account.snapshots.keys()].sort());
  });

  it('stops handing on after the last allowed invocation, and says so', async () => {
    // Prepare
    const { handed, handler, state } = setup();
    const last: Continuation = {
      runId: 'run-1',
      invocation: MAX_INVOCATIONS,
      asOf: EVENT_TIME.toISOString(),
      startedAt: EVENT_TIME.toISOString(),
      scheduled: true,
      totals: asReport(await setup().handler({ mode: 'plan' }, budget(1_000))).totals,
      cost: { reclaimedGiB: 0, reclaimableGiB: 0 },
    };
    expectContinuation(state, last);

    // Act
    const report = asReport(await handler(sqsEvent(last), budget(2)));

    // Assess
    expect(report.complete).toBe(false);
    expect(handed).toEqual([]);
  });

  it('rejects a queue message that is not a continuation, without throwing', async () => {
    const { handler } = setup();

    const result = await handler(
      { Records: [{ eventSource: 'aws:sqs', body: '{"runId":1}' }] },
      budget(1_000),
    );

    expect(result).toMatchObject({ status: 'rejected' });
  });

  it('accepts a continuation only once: a second delivery of the same message changes nothing', async () => {
    // Prepare
    const { account, handed, handler, log } = setup();
    asReport(await handler(structuredClone(scheduledSweep), budget(3)));
    const [message] = handed;
    if (!message) throw new Error('no continuation was handed on');
    asReport(await handler(sqsEvent(message), budget(4)));
    const callsBefore = account.calls.length;

    // Act
    const again = await handler(sqsEvent(message), budget(1_000));

    // Assess
    expect(again).toMatchObject({
      status: 'rejected',
      reason: expect.stringMatching(/not the one this run expects/),
    });
    expect(account.calls.length).toBe(callsBefore);
    expect(log.entries.some((entry) => entry.message === 'event rejected')).toBe(true);
  });

  it('rejects a continuation the run never sent, whatever it says', async () => {
    // Prepare: a well-formed message made by hand, with a clock eight days on.
    const { account, handler, state } = setup();
    const forged: Continuation = {
      runId: 'run-made-by-hand',
      invocation: 2,
      asOf: EVENT_TIME.toISOString(),
      startedAt: EVENT_TIME.toISOString(),
      scheduled: false,
      totals: asReport(await setup().handler({ mode: 'plan' }, budget(1_000))).totals,
      cost: { reclaimedGiB: 0, reclaimableGiB: 0 },
    };
    state.values.set(
      'continuation/eu-west-1',
      JSON.stringify({ runId: 'run-1', invocation: 2, asOf: forged.asOf }),
    );

    // Act
    const result = await handler(sqsEvent(forged), budget(1_000));

    // Assess
    expect(result).toMatchObject({ status: 'rejected' });
    expect(account.calls).toEqual([]);
  });

  it('rejects a continuation whose clock is in the future, even one the run expects, and changes nothing', async () => {
    // Prepare: images marked a day ago would be due on a clock 30 days on.
    const { account, handler, state, log } = setup();
    const future: Continuation = {
      runId: 'run-1',
      invocation: 2,
      asOf: new Date(REAL_NOW.getTime() + 30 * 86_400_000).toISOString(),
      startedAt: EVENT_TIME.toISOString(),
      scheduled: true,
      totals: asReport(await setup().handler({ mode: 'plan' }, budget(1_000))).totals,
      cost: { reclaimedGiB: 0, reclaimableGiB: 0 },
    };
    expectContinuation(state, future);

    // Act
    const result = await handler(sqsEvent(future), budget(1_000));

    // Assess
    expect(result).toMatchObject({
      status: 'rejected',
      reason: expect.stringMatching(/later than the real clock/),
    });
    expect(account.calls).toEqual([]);
    const rejected = log.entries.find((entry) => entry.message === 'event rejected');
    expect(JSON.stringify(rejected?.extra)).toMatch(/continuation clock/);
  });

  it('returns its report, and says the run may not continue, when SQS does not answer the hand-over', async () => {
    // Prepare
    const { handler, log, state } = setup(async () => {
      throw new OutcomeUnknownError('SendMessage', {
        cause: Object.assign(new Error('reset'), { code: 'ECONNRESET' }),
      });
    });

    // Act
    const report = asReport(await handler(structuredClone(scheduledSweep), budget(3)));

    // Assess
    expect(report.complete).toBe(false);
    expect(log.entries.some((entry) => entry.message === 'run may not continue')).toBe(true);
    expect(state.values.get('continuation/eu-west-1')).toContain('"invocation":2');
  });
});
