import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import * as z from 'zod';
import { backfillCreators, createCreatorLookup, createTrailHealthCheck } from '../adapters/cloudtrail.ts';
import { createImageActions, createInventory } from '../adapters/ec2.ts';
import { createSnapshotPorts } from '../adapters/snapshots.ts';
import { createSsmStateStore } from '../adapters/state.ts';
import { readEventEnvironment } from '../config/env.ts';
import { loadPolicyFile, type Policy } from '../config/policy.ts';
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

const sweepEvent = z.union([scheduledEvent, manualEvent]);

export interface SweepDependencies {
  /** Adapters for one invocation; the signal aborts AWS calls still in flight near the timeout. */
  ports: (signal: AbortSignal | undefined) => Omit<SweepPorts, 'log'>;
  /** Alerts (e.g. the Region's real-time audit going blind) and the state that deduplicates them. */
  alerts?: { notifier: Notifier; state: StateStore };
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
    const parsed = sweepEvent.safeParse(event);
    if (!parsed.success) {
      // A malformed event will never become valid on retry, so it is dropped, not thrown.
      const reason = `not a scheduled event or a {mode, asOf} invocation: ${z.prettifyError(parsed.error)}`;
      deps.log.error('event rejected', { reason });
      return { status: 'rejected', reason };
    }
    const input = parsed.data;
    const at = 'time' in input ? input.time : input.asOf;
    const report = await runSweep(
      { ...deps.ports(options?.signal), log: deps.log },
      {
        policy: deps.policy,
        region: deps.region,
        now: at ? new Date(at) : deps.clock(),
        mode: 'mode' in input && input.mode === 'plan' ? 'plan' : 'apply',
        dryRun: deps.dryRun || deps.policy.dryRun,
        deadline: { remainingMs: () => context.getRemainingTimeInMillis() },
      },
    );
    deps.log.info('run report', { report });
    if (deps.alerts) {
      const trailAlert = await alertOnTrailChange(report.trail, {
        accountId: report.accountId,
        ...deps.alerts,
        log: deps.log,
      });
      deps.log.info('trail health', { verdict: report.trail?.ok ? 'ok' : 'blind', alert: trailAlert });
      // Scheduled sweeps only: a hand-run plan (perhaps on a forecast clock) must not post to the
      // channel nor move the fingerprint the next scheduled digest is compared with.
      if ('time' in input) {
        const digest = await sendDigest(report, { policy: deps.policy, ...deps.alerts, log: deps.log });
        deps.log.info('sweep digest', { digest });
      }
    }
    return report;
  };
}

function defaultDependencies(): SweepDependencies {
  const env = readEventEnvironment();
  const policy = loadPolicyFile(env.policyFile);
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
export const handler = middy(makeSweepHandler(defaultDependencies()), { timeoutEarlyInMillis: 10_000 }).use(
  injectLambdaContext(logger),
);
