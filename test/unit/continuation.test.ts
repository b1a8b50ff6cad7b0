import { resolve } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import scheduledSweep from '../../events/scheduled-sweep.json' with { type: 'json' };
import { parsePolicy } from '../../src/config/policy.ts';
import { FutureClockError } from '../../src/core/clock.ts';
import {
  type Continuation,
  continuationSchema,
  continueReport,
  MAX_INVOCATIONS,
  nextContinuation,
} from '../../src/core/continuation.ts';
import { buildReport, type RunReport } from '../../src/core/report.ts';
import { DEMO_ACCOUNT_ID, demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import type { SweepTargetOutput } from '../../src/handlers/sweep-target.ts';
import { action, decision, image, type LogEntry, NOW, plan, recordingLog } from './factories.ts';

vi.mock('../../src/adapters/ec2.ts', async (original) => ({
  ...(await original<typeof import('../../src/adapters/ec2.ts')>()),
  createInventory: () => {
    throw new Error('the real adapter must not be reached');
  },
}));

let handlers: typeof import('../../src/handlers/sweep-target.ts');

beforeAll(async () => {
  vi.stubEnv('AMI_JANITOR_POLICY_FILE', resolve(import.meta.dirname, '../../policy.yml'));
  vi.stubEnv('AWS_REGION', 'eu-west-1');
  handlers = await import('../../src/handlers/sweep-target.ts');
});

const EVENT_TIME = new Date(scheduledSweep.time);
const TARGET = { accountId: DEMO_ACCOUNT_ID, region: 'eu-west-1' };
/** The execution's name, as list-targets makes it the run's id. */
const RUN_ID = 'sweep-2026-11-22T060000Z';

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

/** What the state machine hands the sweep-target task: the Map item, and the continuation once there is one. */
function input(continuation?: Continuation, asOf = EVENT_TIME.toISOString()) {
  return { target: TARGET, runId: RUN_ID, asOf, ...(continuation ? { continuation } : {}) };
}

/** The real clock of these tests: a day after the scheduled time. */
const REAL_NOW = new Date(EVENT_TIME.getTime() + 86_400_000);

/** The whole run report, which goes to the log rather than into the state machine's payload. */
function lastReport(entries: readonly LogEntry[]): RunReport {
  const entry = entries.findLast((candidate) => candidate.message === 'run report');
  const report = (entry?.extra[0] as { report?: RunReport } | undefined)?.report;
  if (!report) throw new Error('no run report was logged');
  return report;
}

function setup() {
  // Eight days on, the demo's marks from an earlier run are due: a run with many removals.
  const account = new MemoryAccount(demoAccount(new Date(EVENT_TIME.getTime() - 8 * 86_400_000)));
  const log = recordingLog();
  const handler = handlers.makeSweepTargetHandler({
    ports: async () => ({
      inventory: account,
      actions: account,
      snapshots: { inventory: account, sharing: account, actions: account },
    }),
    policy: { ...parsePolicy(demoPolicyDocument), dryRun: false, graceDays: 0 },
    dryRun: false,
    clock: () => REAL_NOW,
    log,
  });
  return { account, handler, log };
}

function continuationOf(output: SweepTargetOutput): Continuation {
  if (!output.continuation) throw new Error(`no continuation was handed on (${output.summary.status})`);
  return output.continuation;
}

describe('a target sweep that outlasts one invocation', () => {
  it('stops before the deadline, hands on, and the next invocation finishes without redoing anything', async () => {
    // Prepare: a reference run with all the time it needs.
    const reference = setup();
    const whole = await reference.handler(input(), budget(1_000));
    expect(whole.summary.status).toBe('done');
    const wholeReport = lastReport(reference.log.entries);
    const { account, handler, log } = setup();

    // Act 1: time for the first few deregistrations only.
    const first = await handler(input(), budget(3));

    // Assess 1: a summary that says to continue, and a continuation that survives the state's JSON.
    expect(first.summary).toMatchObject({ status: 'continue', invocations: 1, accountId: DEMO_ACCOUNT_ID });
    expect(first.summary.totals.notReached).toBeGreaterThan(0);
    const message = continuationOf(first);
    expect(continuationSchema.parse(JSON.parse(JSON.stringify(message)))).toEqual(message);
    expect(message).toMatchObject({
      runId: RUN_ID,
      invocation: 2,
      asOf: EVENT_TIME.toISOString(),
      scheduled: true,
    });
    const firstReport = lastReport(log.entries);

    // Act 2: the follow-up invocation, which the state machine's Choice sends back to the task.
    const callsBefore = account.calls.length;
    const second = await handler(JSON.parse(JSON.stringify(first)), budget(1_000));

    // Assess 2: the run is complete, nothing was done twice, and the totals cover the whole run.
    expect(second.summary).toMatchObject({ status: 'done', invocations: 2 });
    expect(second.continuation).toBeUndefined();
    const report = lastReport(log.entries);
    expect(report.run).toEqual({ runId: RUN_ID, invocation: 2, startedAt: firstReport.startedAt });
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
      expect(report.totals[key], key).toBe(wholeReport.totals[key]);
    }
    expect(second.summary.totals.deregistered).toBe(wholeReport.totals.deregistered);
    expect(report.cost.reclaimedGiB).toBe(wholeReport.cost.reclaimedGiB);
    expect(second.summary.reclaimedGiB).toBe(wholeReport.cost.reclaimedGiB);
    expect([...account.images.keys()].sort()).toEqual([...reference.account.images.keys()].sort());
    expect([...account.snapshots.keys()].sort()).toEqual([...reference.account.snapshots.keys()].sort());
  });

  it('carries on from the account as it is when Step Functions retries an invocation with the same continuation', async () => {
    // Prepare: a hand-over, then its invocation, which finishes the run.
    const { account, handler } = setup();
    const first = await handler(input(), budget(3));
    await handler(input(continuationOf(first)), budget(1_000));
    const callsBefore = account.calls.length;

    // Act: the same input again, as a Retry after a lost answer would send it.
    const again = await handler(input(continuationOf(first)), budget(1_000));

    // Assess: nothing done is done again (an image's snapshot left behind may be new work).
    expect(again.summary.status).toBe('done');
    const before = new Set(account.calls.slice(0, callsBefore));
    expect(account.calls.slice(callsBefore).filter((call) => before.has(call))).toEqual([]);
  });

  it('stops handing on after the last allowed invocation, and says why', async () => {
    // Prepare
    const { handler, log } = setup();
    const earlier = setup();
    await earlier.handler(input(), budget(1_000));
    const last: Continuation = {
      runId: RUN_ID,
      invocation: MAX_INVOCATIONS,
      asOf: EVENT_TIME.toISOString(),
      startedAt: EVENT_TIME.toISOString(),
      scheduled: true,
      totals: lastReport(earlier.log.entries).totals,
      cost: { reclaimedGiB: 0, reclaimableGiB: 0 },
    };

    // Act
    const output = await handler(input(last), budget(2));

    // Assess
    expect(output.continuation).toBeUndefined();
    expect(output.summary).toMatchObject({ status: 'stopped', invocations: MAX_INVOCATIONS });
    const stopped = log.entries.find((entry) => entry.message === 'run stopped unfinished');
    expect(JSON.stringify(stopped?.extra)).toContain(`not finished after ${MAX_INVOCATIONS} invocations`);
  });

  it('rejects a continuation that does not parse, before anything is read', async () => {
    const { account, handler } = setup();
    const listOwnedImages = vi.spyOn(account, 'listOwnedImages');

    const result = handler({ ...input(), continuation: { runId: 1 } }, budget(1_000));

    await expect(result).rejects.toThrow(handlers.SweepTargetInputError);
    await expect(result).rejects.toThrow(/not a sweep-target input/);
    expect(listOwnedImages).not.toHaveBeenCalled();
    expect(account.calls).toEqual([]);
  });

  it("rejects a continuation of another run, or of another clock, than the execution's", async () => {
    // Prepare: well-formed, but not this run's.
    const { account, handler } = setup();
    const first = await setup().handler(input(), budget(3));
    const theirs = { ...continuationOf(first), runId: 'sweep-made-by-hand' };
    const otherClock = {
      ...continuationOf(first),
      asOf: new Date(EVENT_TIME.getTime() - 86_400_000).toISOString(),
    };

    // Act and assess
    await expect(handler(input(theirs), budget(1_000))).rejects.toThrow(/is not this run's/);
    await expect(handler(input(otherClock), budget(1_000))).rejects.toThrow(handlers.SweepTargetInputError);
    expect(account.calls).toEqual([]);
  });

  it('rejects a continuation whose clock is in the future, and changes nothing', async () => {
    // Prepare: images marked a day ago would be due on a clock 30 days on.
    const { account, handler } = setup();
    const future = new Date(REAL_NOW.getTime() + 30 * 86_400_000).toISOString();
    const first = await setup().handler(input(), budget(3));
    const continuation = { ...continuationOf(first), asOf: future };

    // Act
    const result = handler(input(continuation, future), budget(1_000));

    // Assess
    await expect(result).rejects.toThrow(FutureClockError);
    await expect(result).rejects.toThrow(/the continuation clock .* is later than the real clock/);
    expect(account.calls).toEqual([]);
  });

  it('rejects a first invocation on a future run clock, and changes nothing', async () => {
    const { account, handler } = setup();
    const future = new Date(REAL_NOW.getTime() + 3_600_000).toISOString();

    await expect(handler(input(undefined, future), budget(1_000))).rejects.toThrow(
      /the run clock .* is later than the real clock/,
    );
    expect(account.calls).toEqual([]);
  });
});

describe('continueReport and nextContinuation: what a continued run carries', () => {
  function reportOf(options: {
    kept: { rule: string; count: number }[];
    eligible: number;
    deregistered?: number;
    carried?: number;
  }): RunReport {
    const decisions = [
      ...options.kept.flatMap(({ rule, count }) =>
        Array.from({ length: count }, () => decision(image(), 'keep', { rule })),
      ),
      ...Array.from({ length: options.eligible }, () => decision(image())),
    ];
    const deregistered = Array.from({ length: options.deregistered ?? 0 }, () => {
      const subject = image();
      return { action: action('deregister', subject), status: 'done' as const, warnings: [], snapshots: [] };
    });
    const report = buildReport(
      plan(
        deregistered.map((outcome) => outcome.action),
        { decisions, inventorySize: decisions.length },
      ),
      deregistered,
      {
        mode: 'apply',
        dryRun: false,
        startedAt: NOW,
        finishedAt: NOW,
        warnings: [],
        ...(options.carried ? { carried: options.carried } : {}),
      },
    );
    return { ...report, complete: false };
  }

  it('hands on the first invocation’s kept images by rule, those not reached left out', () => {
    // Prepare
    const first = continueReport(
      reportOf({
        kept: [
          { rule: 'in-use', count: 3 },
          { rule: 'keep-latest', count: 2 },
          { rule: 'not-reached', count: 4 },
        ],
        eligible: 5,
      }),
      undefined,
      RUN_ID,
    );

    // Act
    const next = nextContinuation(first, true);

    // Assess
    expect(next?.kept).toEqual({ 'in-use': 3, 'keep-latest': 2 });
    expect(continuationSchema.parse(JSON.parse(JSON.stringify(next)))).toEqual(next);
  });

  it('says in a continued report what the first invocation decided for the decisions it carried', () => {
    // Prepare
    const first = continueReport(
      reportOf({ kept: [{ rule: 'in-use', count: 3 }], eligible: 6 }),
      undefined,
      RUN_ID,
    );
    const previous = nextContinuation(first, true) as Continuation;

    // Act
    const merged = continueReport(
      reportOf({ kept: [{ rule: 'keep-latest', count: 3 }], eligible: 4, deregistered: 2, carried: 3 }),
      previous,
      RUN_ID,
    );

    // Assess: the carried count, the first invocation's rules, and handed on unchanged.
    expect(merged.carried).toEqual({
      decisions: 3,
      firstInvocation: { keptByRule: { 'in-use': 3 } },
      note: expect.stringMatching(/did not read their references again/),
    });
    expect(nextContinuation(merged, true)?.kept).toEqual({ 'in-use': 3 });
  });

  it('counts every eligible image of the run once: deregistered earlier, or decided by this invocation', () => {
    // Prepare: the first invocation read the references of 6 of its 10 candidates and deregistered 2.
    const first = continueReport(
      reportOf({
        kept: [
          { rule: 'keep-latest', count: 5 },
          { rule: 'not-reached', count: 4 },
        ],
        eligible: 6,
        deregistered: 2,
      }),
      undefined,
      RUN_ID,
    );
    const previous = nextContinuation(first, true) as Continuation;

    // Act: the second decides the 8 left (2 were deregistered), every one still eligible.
    const merged = continueReport(
      reportOf({ kept: [{ rule: 'keep-latest', count: 5 }], eligible: 8 }),
      previous,
      RUN_ID,
    );

    // Assess
    expect(merged.totals.images).toBe(first.totals.images);
    expect(merged.totals.eligible).toBe(10);
    expect(merged.totals.kept).toBe(merged.totals.images - 10);
  });

  it('accepts a continuation without kept rules, and refuses one with a malformed rule', () => {
    // Prepare
    const first = continueReport(reportOf({ kept: [], eligible: 1 }), undefined, RUN_ID);
    const { kept: _kept, ...older } = nextContinuation(first, true) as Continuation;

    // Act and assess
    expect(continuationSchema.safeParse(older).success).toBe(true);
    expect(continuationSchema.safeParse({ ...older, kept: { 'In Use!': 1 } }).success).toBe(false);
    expect(continuationSchema.safeParse({ ...older, kept: { 'in-use': -1 } }).success).toBe(false);
  });
});
