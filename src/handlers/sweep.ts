import { randomUUID } from 'node:crypto';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import * as z from 'zod';
import { backfillCreators, createCreatorLookup, createTrailHealthCheck } from '../adapters/cloudtrail.ts';
import { createContinuationQueue } from '../adapters/continuation-queue.ts';
import { createImageActions, createInventory } from '../adapters/ec2.ts';
import { createRecycleBin } from '../adapters/recycle-bin.ts';
import { createSnapshotPorts } from '../adapters/snapshots.ts';
import { createSsmStateStore } from '../adapters/state.ts';
import { createImageUsage } from '../adapters/usage.ts';
import { loadDeployedPolicy } from '../config/deployed-policy.ts';
import { readEventEnvironment } from '../config/env.ts';
import type { Policy } from '../config/policy.ts';
import { futureClockReason } from '../core/clock.ts';
import {
  type Continuation,
  continuationSchema,
  continueReport,
  MAX_INVOCATIONS,
  nextContinuation,
} from '../core/continuation.ts';
import { sendDigest } from '../core/digest.ts';
import { CREATED_BY_TAG } from '../core/image-audit.ts';
import type { Log, StateStore } from '../core/ports.ts';
import type { RunReport } from '../core/report.ts';
import { runSweep, type SweepPorts } from '../core/sweep.ts';
import { alertOnTrailChange } from '../core/trail-alert.ts';
import { errorCode, OutcomeUnknownError } from '../errors.ts';
import { logger } from '../logger.ts';
import {
  boundedNotifier,
  createSlackNotifier,
  type Notifier,
  type SlackBudget,
  webhookFromSsm,
} from '../notify/slack.ts';

/** The EventBridge schedule's event; its `time` is the run's clock, so a retried event replays the same run. */
const scheduledEvent = z.looseObject({
  source: z.literal('aws.events'),
  'detail-type': z.literal('Scheduled Event'),
  time: z.iso.datetime(),
});

/**
 * A hand-made invocation (`serverless invoke -f sweep -d '{"mode":"plan"}'`). It must name its
 * mode to change anything: a bare one (`{}`, or no payload at all) is a plan, since a console test
 * or a stray invoke must never run an apply. A forecast date is for plans only: an unattended
 * apply on a future clock would cut grace periods short.
 */
const manualEvent = z
  .strictObject({
    mode: z.enum(['plan', 'apply']).default('plan'),
    asOf: z.iso.datetime().optional(),
  })
  .refine((event) => event.asOf === undefined || event.mode === 'plan', {
    message: 'asOf is only allowed with mode "plan"',
    path: ['asOf'],
  });

/** The sweep's own hand-over to a follow-up invocation, delivered by its SQS queue one at a time. */
const continuationEvent = z.looseObject({
  Records: z
    .tuple([z.looseObject({ eventSource: z.literal('aws:sqs'), body: z.string() })])
    .transform(([record], context) => {
      try {
        return continuationSchema.parse(JSON.parse(record.body));
      } catch (error) {
        context.issues.push({
          code: 'custom',
          message: `not a continuation: ${(error as Error).message}`,
          input: record.body,
        });
        return z.NEVER;
      }
    }),
});

const sweepEvent = z.union([scheduledEvent, manualEvent]);

/**
 * Each Slack delivery gets a third of the time left, and never the last 12 s: middy aborts 10 s
 * before the timeout, and the rest is for the state writes and the log lines after it.
 */
const SWEEP_SLACK_BUDGET: SlackBudget = { share: 1 / 3, reserveMs: 12_000 };

/** The state key under which a run that hands on records the continuation it expects next. */
export const EXPECTED_CONTINUATION_KEY = 'continuation';

export interface SweepDependencies {
  /** Adapters for one invocation; the signal aborts AWS calls still in flight near the timeout. */
  ports: (signal: AbortSignal | undefined) => Omit<SweepPorts, 'log'>;
  /** Alerts (e.g. the Region's real-time audit going blind) and the state that deduplicates them. */
  alerts?: { notifier: Notifier; state: StateStore };
  /**
   * Hands an unfinished run to the next invocation; without it, tomorrow's run carries on. The
   * state remembers which continuation the run expects, so only the one it sent is accepted.
   */
  continuation?: { send: (next: Continuation) => Promise<void>; state: StateStore };
  policy: Policy;
  region: string;
  dryRun: boolean;
  clock: () => Date;
  log: Log;
}

export type SweepResult = RunReport | { status: 'rejected'; reason: string };

export function makeSweepHandler(deps: SweepDependencies) {
  return async (
    event: unknown,
    context: Pick<Context, 'getRemainingTimeInMillis'>,
    options?: { signal?: AbortSignal },
  ): Promise<SweepResult> => {
    const realNow = deps.clock();
    const accepted = await acceptEvent(event, realNow, deps);
    if ('rejected' in accepted) {
      // A bad event will never become valid on retry, so it is dropped, not thrown.
      deps.log.error('event rejected', { reason: accepted.rejected });
      return { status: 'rejected', reason: accepted.rejected };
    }
    const { previous, scheduled, at, runId, mode, note } = accepted;
    if (note) deps.log.info('planning only', { reason: note });
    const ran = await runSweep(
      { ...deps.ports(options?.signal), log: deps.log },
      {
        policy: deps.policy,
        region: deps.region,
        now: at ? new Date(at) : realNow,
        mode,
        dryRun: deps.dryRun || deps.policy.dryRun,
        deadline: { remainingMs: () => context.getRemainingTimeInMillis() },
        realNow,
      },
    );
    const report = continueReport(ran, previous, runId);
    deps.log.info('run report', { report });

    const next = nextContinuation(report, scheduled);
    if (next) {
      await handOn(next, deps);
      return report;
    }
    if (previous) await settle(deps, previous);
    if (deps.alerts) {
      const alerts = {
        ...deps.alerts,
        notifier: boundedNotifier(
          deps.alerts.notifier,
          () => context.getRemainingTimeInMillis(),
          SWEEP_SLACK_BUDGET,
        ),
      };
      const trailAlert = await alertOnTrailChange(report.trail, {
        accountId: report.accountId,
        ...alerts,
        log: deps.log,
      });
      deps.log.info('trail health', { verdict: report.trail?.ok ? 'ok' : 'blind', alert: trailAlert });
      // Scheduled runs only, once the whole run is done: a hand-run plan (perhaps on a forecast
      // clock) must not post to the channel nor move the fingerprint the next digest is compared with.
      if (scheduled) {
        const digest = await sendDigest(report, { policy: deps.policy, ...alerts, log: deps.log });
        deps.log.info('sweep digest', { digest });
      }
    }
    return report;
  };
}

interface AcceptedEvent {
  previous: Continuation | undefined;
  scheduled: boolean;
  /** The run's clock when the event carries one; otherwise the real clock is used. */
  at: string | undefined;
  runId: string;
  mode: 'plan' | 'apply';
  /** Why a hand-made invocation only plans, when it did not say. */
  note?: string;
}

/**
 * What an event asks for, or why it is refused. A run's clock from outside (a schedule's `time`, a
 * continuation's `asOf`) is never later than the real clock, and a continuation must be the one
 * the run itself handed on: anyone who can send to the queue could otherwise pick the clock.
 */
async function acceptEvent(
  event: unknown,
  realNow: Date,
  deps: SweepDependencies,
): Promise<AcceptedEvent | { rejected: string }> {
  const continued = continuationEvent.safeParse(event);
  if (continued.success) {
    const previous = continued.data.Records;
    const future = futureClockReason(new Date(previous.asOf), realNow, 'the continuation clock');
    if (future) return { rejected: future };
    const unexpected = await claimContinuation(previous, deps);
    if (unexpected) return { rejected: unexpected };
    return {
      previous,
      scheduled: previous.scheduled,
      at: previous.asOf,
      runId: previous.runId,
      mode: 'apply',
    };
  }
  // Lambda hands a payload-less invocation an empty object; null and undefined mean the same.
  const parsed = sweepEvent.safeParse(event ?? {});
  if (!parsed.success) {
    return {
      rejected: `not a scheduled event or a {mode, asOf} invocation: ${z.prettifyError(parsed.error)}`,
    };
  }
  const input = parsed.data;
  if ('time' in input) {
    const future = futureClockReason(new Date(input.time), realNow, 'the scheduled event time');
    if (future) return { rejected: future };
    return {
      previous: undefined,
      scheduled: true,
      at: input.time,
      runId: typeof input.id === 'string' ? input.id : randomUUID(),
      mode: 'apply',
    };
  }
  const named = event !== null && typeof event === 'object' && 'mode' in event;
  return {
    previous: undefined,
    scheduled: false,
    at: input.asOf,
    runId: randomUUID(),
    mode: input.mode,
    ...(named
      ? {}
      : { note: 'no mode named; a hand-made invocation changes something only with {"mode":"apply"}' }),
  };
}

/** The expected continuation, as the state stores it: the run, the invocation and the clock. */
function expectation(next: Pick<Continuation, 'runId' | 'invocation' | 'asOf'>): string {
  return JSON.stringify({ runId: next.runId, invocation: next.invocation, asOf: next.asOf });
}

/**
 * Accepts a continuation only when it is the one the run recorded before sending it, and records
 * that it was claimed, so a second delivery of the same message (SQS delivers at least once) or a
 * message made by hand is refused.
 */
async function claimContinuation(
  previous: Continuation,
  deps: SweepDependencies,
): Promise<string | undefined> {
  if (!deps.continuation) return 'this deployment has no continuation queue, so no continuation is expected';
  const { state } = deps.continuation;
  const key = `${EXPECTED_CONTINUATION_KEY}/${deps.region}`;
  let expected: string | undefined;
  try {
    expected = await state.get(key);
  } catch (error) {
    return `the expected continuation could not be read (${errorCode(error)}); the next scheduled run carries on`;
  }
  if (expected !== expectation(previous)) {
    return `continuation ${previous.runId} #${previous.invocation} is not the one this run expects (already claimed, superseded or never sent)`;
  }
  try {
    await state.put(key, JSON.stringify({ claimed: expectation(previous) }));
  } catch (error) {
    return `the continuation could not be claimed (${errorCode(error)}); the next scheduled run carries on`;
  }
  return undefined;
}

/** A run that finished clears what it expected, so nothing can pick it up again. */
async function settle(deps: SweepDependencies, previous: Continuation): Promise<void> {
  try {
    await deps.continuation?.state.put(
      `${EXPECTED_CONTINUATION_KEY}/${deps.region}`,
      JSON.stringify({ finished: previous.runId }),
    );
  } catch (error) {
    deps.log.warn('finished run not recorded', { runId: previous.runId, errorCode: errorCode(error) });
  }
}

async function handOn(next: Continuation, deps: SweepDependencies): Promise<void> {
  if (next.invocation > MAX_INVOCATIONS) {
    deps.log.error('run stopped unfinished', {
      runId: next.runId,
      reason: `not finished after ${MAX_INVOCATIONS} invocations; the next scheduled run starts afresh`,
    });
    return;
  }
  if (!deps.continuation) {
    deps.log.warn('run unfinished', {
      runId: next.runId,
      reason: 'no continuation queue; the next scheduled run carries on',
    });
    return;
  }
  // Recorded before sending: the message is accepted only if it matches this.
  await deps.continuation.state.put(`${EXPECTED_CONTINUATION_KEY}/${deps.region}`, expectation(next));
  try {
    await deps.continuation.send(next);
  } catch (error) {
    // Not sent again: a second copy would only be refused as already claimed, and if none arrived
    // the next scheduled run carries on from the account as it is.
    if (!(error instanceof OutcomeUnknownError)) throw error;
    deps.log.warn('run may not continue', {
      runId: next.runId,
      reason:
        'the continuation got no answer from SQS; if it was not sent, the next scheduled run carries on',
    });
    return;
  }
  deps.log.info('run continues', { runId: next.runId, invocation: next.invocation });
}

async function defaultDependencies(): Promise<SweepDependencies> {
  const env = readEventEnvironment();
  const policy = await loadDeployedPolicy(env.policyFile);
  const state = createSsmStateStore({ prefix: env.stateParameterPrefix });
  return {
    ports: (signal) => {
      const lookup = createCreatorLookup({ signal });
      return {
        inventory: createInventory({ launchTemplateVersions: policy.inUse.launchTemplateVersions, signal }),
        actions: createImageActions({ signal }),
        trailHealth: createTrailHealthCheck({ signal }),
        snapshots: createSnapshotPorts({ signal }),
        usage: createImageUsage({ signal }),
        recycleBin: createRecycleBin({ signal }),
        attribution: {
          backfill: (images, { now, max }) =>
            backfillCreators(images, lookup, { now, max, createdByTag: CREATED_BY_TAG }),
        },
      };
    },
    ...(env.continuationQueueUrl
      ? { continuation: { send: createContinuationQueue(env.continuationQueueUrl), state } }
      : {}),
    alerts: {
      notifier: createSlackNotifier({ webhookUrl: webhookFromSsm(env.slackWebhookParameter), log: logger }),
      state,
    },
    policy,
    region: env.region,
    dryRun: env.dryRun,
    clock: () => new Date(),
    log: logger,
  };
}

/**
 * The executor stops starting actions 20 s before the timeout; middy's early timeout, 10 s before,
 * aborts whatever call is still in flight so the invocation ends with a log rather than a kill.
 */
export const handler = middy(makeSweepHandler(await defaultDependencies()), {
  timeoutEarlyInMillis: 10_000,
}).use(injectLambdaContext(logger));
