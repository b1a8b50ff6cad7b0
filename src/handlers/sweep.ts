import { randomUUID } from 'node:crypto';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import * as z from 'zod';
import { createSsmStateStore } from '../adapters/state.ts';
import { createDynamoSweepLock } from '../adapters/sweep-lock.ts';
import { loadDeployedPolicy } from '../config/deployed-policy.ts';
import { readEventEnvironment } from '../config/env.ts';
import type { Policy } from '../config/policy.ts';
import { futureClockReason } from '../core/clock.ts';
import { continueReport } from '../core/continuation.ts';
import { sendDigest } from '../core/digest.ts';
import type { Log } from '../core/ports.ts';
import type { RunReport } from '../core/report.ts';
import { type MetricsPort, sweepMetrics } from '../core/run-metrics.ts';
import { runSweep, type SweepPorts } from '../core/sweep.ts';
import { lockClaim, SweepBusyError, type SweepLockPort, withSweepLock } from '../core/sweep-lock.ts';
import { logger } from '../logger.ts';
import { lambdaMetrics } from '../metrics.ts';
import { createSlackNotifier, webhookFromSsm } from '../notify/slack.ts';
import { alertOnTrail, boundedAlerts, type SweepAlerts, sweepPorts } from './sweep-ports.ts';

/**
 * The sweep of this account and Region in one invocation, for people: `serverless invoke -f sweep`.
 * The schedule starts the state machine instead (statemachine/sweep.asl.json), which sweeps every
 * target and carries an unfinished run on; an unfinished run here is carried on by the next one.
 */

/** A scheduled event's shape; its `time` is the run's clock, so a retried event replays the same run. */
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

const sweepEvent = z.union([scheduledEvent, manualEvent]);

export interface SweepDependencies {
  /** Adapters for one invocation; the signal aborts AWS calls still in flight near the timeout. */
  ports: (signal: AbortSignal | undefined) => Omit<SweepPorts, 'log'>;
  /** Alerts (e.g. the Region's real-time audit going blind) and the state that deduplicates them. */
  alerts?: SweepAlerts;
  policy: Policy;
  region: string;
  dryRun: boolean;
  clock: () => Date;
  log: Log;
  /** One sweep of an account-Region at a time; a plan changes nothing and takes no lock. */
  lock?: SweepLockPort;
  /** CloudWatch metrics of each apply; only the Lambda publishes them. */
  metrics?: MetricsPort;
}

export type SweepResult = RunReport | { status: 'rejected' | 'busy'; reason: string };

export function makeSweepHandler(deps: SweepDependencies) {
  return async (
    event: unknown,
    context: Pick<Context, 'getRemainingTimeInMillis'>,
    options?: { signal?: AbortSignal },
  ): Promise<SweepResult> => {
    const realNow = deps.clock();
    deps.metrics?.startInvocation();
    const accepted = acceptEvent(event, realNow);
    if ('rejected' in accepted) {
      // A bad event will never become valid on retry, so it is dropped, not thrown.
      deps.log.error('event rejected', { reason: accepted.rejected });
      return { status: 'rejected', reason: accepted.rejected };
    }
    if (accepted.note) deps.log.info('planning only', { reason: accepted.note });
    const remainingMs = () => context.getRemainingTimeInMillis();
    const ports = { ...deps.ports(options?.signal), log: deps.log };
    const sweep = () =>
      runSweep(ports, {
        policy: deps.policy,
        region: deps.region,
        now: accepted.at ? new Date(accepted.at) : realNow,
        mode: accepted.mode,
        dryRun: deps.dryRun || deps.policy.dryRun,
        deadline: { remainingMs },
        realNow,
      });
    let ran: Awaited<ReturnType<typeof runSweep>>;
    if (accepted.mode === 'apply' && deps.lock) {
      const claim = lockClaim({
        accountId: await ports.inventory.accountId(),
        region: deps.region,
        runId: accepted.runId,
        holder: accepted.scheduled ? 'sweep (scheduled event)' : 'sweep (by hand)',
        now: realNow,
        remainingMs: remainingMs(),
      });
      try {
        ran = await withSweepLock(deps.lock, claim, deps.log, sweep);
      } catch (error) {
        if (error instanceof SweepBusyError) return { status: 'busy', reason: error.message };
        throw error;
      }
    } else {
      ran = await sweep();
    }
    const report = continueReport(ran, undefined, accepted.runId);
    deps.log.info('run report', { report });
    if (!report.complete) {
      deps.log.warn('run unfinished', { runId: accepted.runId, reason: 'the next run carries on' });
    }
    if (deps.alerts) {
      const alerts = boundedAlerts(deps.alerts, remainingMs);
      await alertOnTrail(report, alerts, deps.log);
      // A scheduled event only: a hand-run plan (perhaps on a forecast clock) must not post to the
      // channel nor move the fingerprint the next digest is compared with.
      if (accepted.scheduled) {
        const digest = await sendDigest(report, { policy: deps.policy, ...alerts, log: deps.log });
        deps.log.info('sweep digest', { digest });
      }
    }
    // A plan, perhaps on a forecast clock, must neither feed the dashboard nor pass for a heartbeat.
    if (deps.metrics && accepted.mode === 'apply') {
      deps.metrics.publish(
        sweepMetrics(ran, {
          invocation: 1,
          durationMs: deps.clock().getTime() - realNow.getTime(),
          throttledCalls: deps.metrics.throttledCalls(),
        }),
        {
          runId: accepted.runId,
          accountId: report.accountId,
          region: report.region,
          dryRun: String(report.dryRun),
        },
      );
    }
    return report;
  };
}

interface AcceptedEvent {
  scheduled: boolean;
  /** The run's clock when the event carries one; otherwise the real clock is used. */
  at: string | undefined;
  runId: string;
  mode: 'plan' | 'apply';
  /** Why a hand-made invocation only plans, when it did not say. */
  note?: string;
}

/** What an event asks for, or why it is refused: a clock from outside is never later than the real one. */
function acceptEvent(event: unknown, realNow: Date): AcceptedEvent | { rejected: string } {
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
    const runId = typeof input.id === 'string' ? input.id : randomUUID();
    return { scheduled: true, at: input.time, runId, mode: 'apply' };
  }
  const named = event !== null && typeof event === 'object' && 'mode' in event;
  return {
    scheduled: false,
    at: input.asOf,
    runId: randomUUID(),
    mode: input.mode,
    ...(named
      ? {}
      : { note: 'no mode named; a hand-made invocation changes something only with {"mode":"apply"}' }),
  };
}

async function defaultDependencies(): Promise<SweepDependencies> {
  const env = readEventEnvironment();
  const policy = await loadDeployedPolicy(env.policyFile);
  return {
    ports: (signal) => sweepPorts(undefined, { policy, signal }),
    alerts: {
      notifier: createSlackNotifier({ webhookUrl: webhookFromSsm(env.slackWebhookParameter), log: logger }),
      state: createSsmStateStore({ prefix: env.stateParameterPrefix }),
    },
    policy,
    region: env.region,
    dryRun: env.dryRun,
    clock: () => new Date(),
    log: logger,
    metrics: lambdaMetrics,
    ...(env.lockTable ? { lock: createDynamoSweepLock({ tableName: env.lockTable, log: logger }) } : {}),
  };
}

/**
 * The executor stops starting actions 20 s before the timeout; middy's early timeout, 10 s before,
 * aborts whatever call is still in flight so the invocation ends with a log rather than a kill.
 */
export const handler = middy(makeSweepHandler(await defaultDependencies()), {
  timeoutEarlyInMillis: 10_000,
}).use(injectLambdaContext(logger));
