import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import * as z from 'zod';
import { createSsmStateStore } from '../adapters/state.ts';
import { loadDeployedPolicy } from '../config/deployed-policy.ts';
import { readEventEnvironment } from '../config/env.ts';
import type { Policy } from '../config/policy.ts';
import type { DigestOutcome } from '../core/digest.ts';
import {
  type OrgDigest,
  type OrgRun,
  sendOrgDigest,
  type TargetResult,
  type TargetSummary,
} from '../core/org-digest.ts';
import type { Log, StateStore } from '../core/ports.ts';
import { type MetricsPort, organisationMetrics } from '../core/run-metrics.ts';
import { logger } from '../logger.ts';
import { lambdaMetrics } from '../metrics.ts';
import {
  boundedNotifier,
  createSlackNotifier,
  type Notifier,
  type SlackBudget,
  webhookFromSsm,
} from '../notify/slack.ts';

/**
 * The state machine's last step: one organisation digest from every target's summary, sent as the
 * policy's `digest` setting says and deduplicated through the state store.
 */

export class AggregateInputError extends Error {
  override name = 'AggregateInputError';
}

const count = z.number().int().min(0);

const summarySchema = z.looseObject({
  status: z.enum(['done', 'continue', 'stopped']),
  accountId: z.string(),
  region: z.string(),
  accountName: z.string().optional(),
  dryRun: z.boolean(),
  invocations: count,
  totals: z.looseObject({
    images: count,
    eligible: count,
    marked: count,
    deregistered: count,
    failed: count,
    notReached: count,
    snapshots: count,
    orphans: count,
    snapshotsDeleted: count,
    snapshotsFailed: count,
    findings: count,
  }),
  reclaimedGiB: z.number().min(0),
  reclaimableGiB: z.number().min(0),
  savingUsd: z.number().min(0),
  fingerprint: z.string(),
  news: z.boolean(),
});

/** The state machine's RecordFailure: the target as the Map listed it, and Step Functions' error. */
const failedSchema = z.looseObject({
  status: z.literal('failed'),
  target: z.looseObject({ accountId: z.string(), region: z.string(), accountName: z.string().optional() }),
  error: z.string(),
  // Step Functions sets Cause to null for errors without one.
  cause: z.string().nullish(),
});

/** Each target's entry, replaced by the Map with its outcome. */
const aggregateInput = z.looseObject({
  runId: z.string().min(1),
  asOf: z.string().min(1),
  targets: z.array(z.union([failedSchema, summarySchema])),
  listingError: z.looseObject({ error: z.string(), cause: z.string().nullish() }).optional(),
});

export interface AggregateOutput {
  runId: string;
  asOf: string;
  targets: OrgDigest['targets'];
  reclaimedGiB: number;
  reclaimableGiB: number;
  savingUsd: number;
  digest: DigestOutcome;
}

export interface AggregateDependencies {
  notifier: Notifier;
  state: StateStore;
  policy: Pick<Policy, 'digest'>;
  log: Log;
  /** The organisation run's figures in CloudWatch; only the Lambda publishes them. */
  metrics?: MetricsPort;
}

/**
 * The digest may take half the time left, and never the last 5 s: the aggregate sends only the
 * one message, then writes its state and a log line.
 */
const AGGREGATE_SLACK_BUDGET: SlackBudget = { share: 1 / 2, reserveMs: 5_000 };

export function makeAggregateHandler(deps: AggregateDependencies) {
  return async (
    event: unknown,
    context: Pick<Context, 'getRemainingTimeInMillis'>,
  ): Promise<AggregateOutput> => {
    const parsed = aggregateInput.safeParse(event);
    if (!parsed.success) {
      throw new AggregateInputError(`not an aggregate input: ${z.prettifyError(parsed.error)}`);
    }
    const { runId, asOf, targets, listingError } = parsed.data;
    const run: OrgRun = {
      runId,
      asOf,
      results: targets.map(
        (result): TargetResult =>
          result.status === 'failed'
            ? {
                status: 'failed',
                accountId: result.target.accountId,
                region: result.target.region,
                ...(result.target.accountName ? { accountName: result.target.accountName } : {}),
                error: result.error,
                ...(result.cause ? { cause: result.cause } : {}),
              }
            : (result as TargetSummary),
      ),
      ...(listingError
        ? {
            listingError: {
              error: listingError.error,
              ...(listingError.cause ? { cause: listingError.cause } : {}),
            },
          }
        : {}),
    };
    const notifier = boundedNotifier(
      deps.notifier,
      () => context.getRemainingTimeInMillis(),
      AGGREGATE_SLACK_BUDGET,
    );
    const { outcome, digest } = await sendOrgDigest(run, {
      policy: deps.policy,
      state: deps.state,
      notifier,
      log: deps.log,
    });
    deps.metrics?.publish(organisationMetrics(digest), { runId: run.runId });
    deps.log.info('organisation digest', {
      runId: run.runId,
      digest: outcome,
      targets: digest.targets,
      failures: digest.failures,
    });
    return {
      runId: run.runId,
      asOf: run.asOf,
      targets: digest.targets,
      reclaimedGiB: digest.reclaimedGiB,
      reclaimableGiB: digest.reclaimableGiB,
      savingUsd: digest.savingUsd,
      digest: outcome,
    };
  };
}

async function defaultDependencies(): Promise<AggregateDependencies> {
  const env = readEventEnvironment();
  const policy = await loadDeployedPolicy(env.policyFile);
  return {
    notifier: createSlackNotifier({ webhookUrl: webhookFromSsm(env.slackWebhookParameter), log: logger }),
    state: createSsmStateStore({ prefix: env.stateParameterPrefix }),
    policy,
    log: logger,
    metrics: lambdaMetrics,
  };
}

export const handler = middy(makeAggregateHandler(await defaultDependencies())).use(
  injectLambdaContext(logger),
);
