import { randomUUID } from 'node:crypto';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import * as z from 'zod';
import { backfillCreators, createCreatorLookup, createTrailHealthCheck } from '../adapters/cloudtrail.ts';
import { createContinuationQueue } from '../adapters/continuation-queue.ts';
import { createImageActions, createInventory } from '../adapters/ec2.ts';
import { createSnapshotPorts } from '../adapters/snapshots.ts';
import { createSsmStateStore } from '../adapters/state.ts';
import { loadDeployedPolicy } from '../config/deployed-policy.ts';
import { readEventEnvironment } from '../config/env.ts';
import type { Policy } from '../config/policy.ts';
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
import { logger } from '../logger.ts';
import { createSlackNotifier, type Notifier, webhookFromSsm } from '../notify/slack.ts';

/** The EventBridge schedule's event; its `time` is the run's clock, so a retried event replays the same run. */
const scheduledEvent = z.looseObject({
  source: z.literal('aws.events'),
  'detail-type': z.literal('Scheduled Event'),
  time: z.iso.datetime(),
});

/**
 * A hand-made invocation (`serverless invoke -f sweep -d '{"mode":"plan"}'`). A forecast date is
 * for plans only: an unattended apply on a future clock would cut grace periods short.
 */
const manualEvent = z
  .strictObject({
    mode: z.enum(['plan', 'apply']).optional(),
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

export interface SweepDependencies {
  /** Adapters for one invocation; the signal aborts AWS calls still in flight near the timeout. */
  ports: (signal: AbortSignal | undefined) => Omit<SweepPorts, 'log'>;
  /** Alerts (e.g. the Region's real-time audit going blind) and the state that deduplicates them. */
  alerts?: { notifier: Notifier; state: StateStore };
  /** Hands an unfinished run to the next invocation; without it, tomorrow's run carries on. */
  continueWith?: (next: Continuation) => Promise<void>;
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
    const continued = continuationEvent.safeParse(event);
    const previous: Continuation | undefined = continued.success ? continued.data.Records : undefined;
    const parsed = previous ? undefined : sweepEvent.safeParse(event);
    if (parsed && !parsed.success) {
      // A malformed event will never become valid on retry, so it is dropped, not thrown.
      const reason = `not a scheduled event or a {mode, asOf} invocation: ${z.prettifyError(parsed.error)}`;
      deps.log.error('event rejected', { reason });
      return { status: 'rejected', reason };
    }
    const input = parsed?.data;
    const scheduled = previous ? previous.scheduled : input !== undefined && 'time' in input;
    const at = previous?.asOf ?? (input && ('time' in input ? input.time : input.asOf));
    const runId =
      previous?.runId ?? (input && 'id' in input && typeof input.id === 'string' ? input.id : randomUUID());
    const mode = input && 'mode' in input && input.mode === 'plan' ? 'plan' : 'apply';
    const ran = await runSweep(
      { ...deps.ports(options?.signal), log: deps.log },
      {
        policy: deps.policy,
        region: deps.region,
        now: at ? new Date(at) : deps.clock(),
        mode,
        dryRun: deps.dryRun || deps.policy.dryRun,
        deadline: { remainingMs: () => context.getRemainingTimeInMillis() },
      },
    );
    const report = continueReport(ran, previous, runId);
    deps.log.info('run report', { report });

    const next = nextContinuation(report, scheduled);
    if (next) {
      await handOn(next, deps);
      return report;
    }
    if (deps.alerts) {
      const trailAlert = await alertOnTrailChange(report.trail, {
        accountId: report.accountId,
        ...deps.alerts,
        log: deps.log,
      });
      deps.log.info('trail health', { verdict: report.trail?.ok ? 'ok' : 'blind', alert: trailAlert });
      // Scheduled runs only, once the whole run is done: a hand-run plan (perhaps on a forecast
      // clock) must not post to the channel nor move the fingerprint the next digest is compared with.
      if (scheduled) {
        const digest = await sendDigest(report, { policy: deps.policy, ...deps.alerts, log: deps.log });
        deps.log.info('sweep digest', { digest });
      }
    }
    return report;
  };
}

async function handOn(next: Continuation, deps: SweepDependencies): Promise<void> {
  if (next.invocation > MAX_INVOCATIONS) {
    deps.log.error('run stopped unfinished', {
      runId: next.runId,
      reason: `not finished after ${MAX_INVOCATIONS} invocations; the next scheduled run starts afresh`,
    });
    return;
  }
  if (!deps.continueWith) {
    deps.log.warn('run unfinished', {
      runId: next.runId,
      reason: 'no continuation queue; the next scheduled run carries on',
    });
    return;
  }
  await deps.continueWith(next);
  deps.log.info('run continues', { runId: next.runId, invocation: next.invocation });
}

async function defaultDependencies(): Promise<SweepDependencies> {
  const env = readEventEnvironment();
  const policy = await loadDeployedPolicy(env.policyFile);
  return {
    ports: (signal) => {
      const lookup = createCreatorLookup({ signal });
      return {
        inventory: createInventory({ launchTemplateVersions: policy.inUse.launchTemplateVersions, signal }),
        actions: createImageActions({ signal }),
        trailHealth: createTrailHealthCheck({ signal }),
        snapshots: createSnapshotPorts({ signal }),
        attribution: {
          backfill: (images, { now, max }) =>
            backfillCreators(images, lookup, { now, max, createdByTag: CREATED_BY_TAG }),
        },
      };
    },
    ...(env.continuationQueueUrl ? { continueWith: createContinuationQueue(env.continuationQueueUrl) } : {}),
    alerts: {
      notifier: createSlackNotifier({ webhookUrl: webhookFromSsm(env.slackWebhookParameter), log: logger }),
      state: createSsmStateStore({ prefix: env.stateParameterPrefix }),
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
