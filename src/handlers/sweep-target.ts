import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import * as z from 'zod';
import type { AwsClients } from '../adapters/clients.ts';
import { createConsumerReferences } from '../adapters/consumer-references.ts';
import { ApiLimiter, defaultLimiter } from '../adapters/limiter.ts';
import { createSsmStateStore } from '../adapters/state.ts';
import { createDynamoSweepLock } from '../adapters/sweep-lock.ts';
import {
  clientsForTarget,
  createTargetSource,
  type RoleSessions,
  TargetAccessError,
} from '../adapters/targets.ts';
import { loadDeployedPolicy } from '../config/deployed-policy.ts';
import { readEventEnvironment, readTargetSpec } from '../config/env.ts';
import type { Policy } from '../config/policy.ts';
import { FutureClockError, futureClockReason } from '../core/clock.ts';
import {
  type Continuation,
  continuationSchema,
  continueReport,
  MAX_INVOCATIONS,
  nextContinuation,
} from '../core/continuation.ts';
import { clip, MAX_REASON_CHARS, summarizeTarget, type TargetSummary } from '../core/org-digest.ts';
import type { Log } from '../core/ports.ts';
import { type MetricsPort, sweepMetrics } from '../core/run-metrics.ts';
import { runSweep, type SweepPorts } from '../core/sweep.ts';
import { lockClaim, SweepBusyError, type SweepLockPort, withSweepLock } from '../core/sweep-lock.ts';
import type { ResolvedTarget } from '../core/targets.ts';
import { errorCode, errorMessage } from '../errors.ts';
import { logger } from '../logger.ts';
import { lambdaMetrics } from '../metrics.ts';
import { createSlackNotifier, webhookFromSsm } from '../notify/slack.ts';
import { alertOnTrail, boundedAlerts, type SweepAlerts, scopedState, sweepPorts } from './sweep-ports.ts';

/**
 * One invocation of the sweep for one target, as the state machine's Map runs it: the same sweep
 * as the sweep handler's, in the target's account (through its member role) and Region. It
 * returns a compact summary and, when its time ran out, the continuation the state machine hands
 * back to it; the whole run report goes to the log.
 */

/** Thrown for an input no retry can fix; the state machine records the target as failed. */
export class SweepTargetInputError extends Error {
  override name = 'SweepTargetInputError';
}

/** The role answered for another account than the target's: nothing is swept there. */
export class TargetMismatchError extends Error {
  override name = 'TargetMismatchError';
}

/**
 * The target could not be swept. Its message is short and its stack one line, since Step
 * Functions carries the error into the run's state (256 KB for every target); the log has the
 * whole error. A member role that could not be assumed keeps its name, TargetAccessError, which
 * the state machine does not retry.
 */
export class TargetSweepError extends Error {
  override name = 'TargetSweepError';

  constructor(target: ResolvedTarget, cause: unknown) {
    super(
      clip(
        `${target.accountId}/${target.region}: ${errorCode(cause)}: ${errorMessage(cause)}`,
        MAX_REASON_CHARS,
      ),
      { cause },
    );
    if (cause instanceof TargetAccessError) this.name = cause.name;
    // Lambda reports the stack beside the message; the message alone says it all.
    this.stack = this.name;
  }
}

const targetSchema = z.strictObject({
  accountId: z.string().regex(/^\d{12}$/),
  region: z.string().regex(/^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/),
  accountName: z.string().max(200).optional(),
});

/**
 * The Map iteration's state: the target and the run, with the continuation once an invocation
 * handed on (and the last summary, which is not read).
 */
const sweepTargetInput = z.looseObject({
  target: targetSchema,
  runId: z.string().min(1).max(100),
  asOf: z.iso.datetime({ offset: true }),
  continuation: continuationSchema.optional(),
});

export interface SweepTargetOutput {
  target: ResolvedTarget;
  runId: string;
  asOf: string;
  /** Only while the run continues: the state machine's Choice sends it back to this task. */
  continuation?: Continuation;
  summary: TargetSummary;
}

export interface SweepTargetDependencies {
  /** The target's adapters: its account's clients in its Region. The signal aborts calls near the timeout. */
  ports: (target: ResolvedTarget, signal: AbortSignal | undefined) => Promise<Omit<SweepPorts, 'log'>>;
  /** Trail alerts, as the sweep handler sends them; the organisation digest is the aggregate's. */
  alerts?: SweepAlerts;
  /** The deployment's own account, whose trail state keeps the keys it had before targets existed. */
  homeAccountId?: () => Promise<string>;
  policy: Policy;
  dryRun: boolean;
  clock: () => Date;
  log: Log;
  /** One sweep of an account-Region at a time: a target another run is sweeping is retried later. */
  lock?: SweepLockPort;
  /** CloudWatch metrics of each invocation; only the Lambda publishes them. */
  metrics?: MetricsPort;
}

export function makeSweepTargetHandler(deps: SweepTargetDependencies) {
  return async (
    event: unknown,
    context: Pick<Context, 'getRemainingTimeInMillis'>,
    options?: { signal?: AbortSignal },
  ): Promise<SweepTargetOutput> => {
    const realNow = deps.clock();
    deps.metrics?.startInvocation();
    const { target, runId, asOf, previous } = acceptInput(event, realNow);
    const remainingMs = () => context.getRemainingTimeInMillis();
    let report: Awaited<ReturnType<typeof runSweep>>;
    /** This invocation's own report, before continueReport adds the earlier invocations'. */
    let ran: Awaited<ReturnType<typeof runSweep>>;
    try {
      const ports = await deps.ports(target, options?.signal);
      const sweep = () =>
        runSweep(
          { ...ports, log: deps.log },
          {
            policy: deps.policy,
            region: target.region,
            now: new Date(asOf),
            mode: 'apply',
            dryRun: deps.dryRun || deps.policy.dryRun,
            deadline: { remainingMs },
            realNow,
            // A later invocation reads what uses removal candidates only; the first one read the rest.
            ...(previous
              ? { continuing: { invocation: previous.invocation, marksLeft: previous.marksLeft } }
              : {}),
          },
        );
      const claim = lockClaim({
        accountId: target.accountId,
        region: target.region,
        runId,
        holder: 'the sweep state machine',
        now: realNow,
        remainingMs: remainingMs(),
      });
      ran = deps.lock ? await withSweepLock(deps.lock, claim, deps.log, sweep) : await sweep();
      report = continueReport(ran, previous, runId);
    } catch (error) {
      // Its own name, so the state machine retries it later instead of recording a failure at once.
      if (error instanceof FutureClockError || error instanceof SweepBusyError) throw error;
      deps.log.error('target not swept', { target, runId, error });
      throw new TargetSweepError(target, error);
    }
    if (report.accountId !== target.accountId) {
      throw new TargetMismatchError(
        `the credentials for ${target.accountId} answered as ${report.accountId}; nothing was changed there`,
      );
    }
    deps.log.info('run report', { target, report });
    const invocation = report.run?.invocation ?? 1;
    deps.metrics?.publish(
      sweepMetrics(ran, {
        invocation,
        durationMs: deps.clock().getTime() - realNow.getTime(),
        throttledCalls: deps.metrics.throttledCalls(),
      }),
      { runId, invocation, accountId: target.accountId, region: target.region },
    );

    const next = nextContinuation(report, true);
    if (next && next.invocation <= MAX_INVOCATIONS) {
      deps.log.info('run continues', { target, runId, invocation: next.invocation });
      return {
        target,
        runId,
        asOf,
        continuation: next,
        summary: summarizeTarget(report, target, 'continue'),
      };
    }
    const reason = next
      ? `not finished after ${MAX_INVOCATIONS} invocations; the next scheduled run starts afresh`
      : undefined;
    if (reason) deps.log.error('run stopped unfinished', { target, runId, reason });
    if (deps.alerts) {
      const home = await deps.homeAccountId?.().catch(() => undefined);
      const state =
        home === target.accountId ? deps.alerts.state : scopedState(deps.alerts.state, target.accountId);
      await alertOnTrail(report, boundedAlerts({ ...deps.alerts, state }, remainingMs), deps.log);
    }
    return {
      target,
      runId,
      asOf,
      summary: summarizeTarget(report, target, reason ? 'stopped' : 'done'),
    };
  };
}

/**
 * The input, or a named error: a run's clock is never later than the real one, and a continuation
 * belongs to the run it is handed back in (same id, same clock).
 */
function acceptInput(
  event: unknown,
  realNow: Date,
): { target: ResolvedTarget; runId: string; asOf: string; previous: Continuation | undefined } {
  const parsed = sweepTargetInput.safeParse(event);
  if (!parsed.success) {
    throw new SweepTargetInputError(
      clip(`not a sweep-target input: ${z.prettifyError(parsed.error)}`, MAX_REASON_CHARS),
    );
  }
  const { target, runId, asOf, continuation } = parsed.data;
  const clock = new Date(asOf);
  const future = futureClockReason(clock, realNow, continuation ? 'the continuation clock' : 'the run clock');
  if (future) throw new FutureClockError(future);
  if (
    continuation &&
    (continuation.runId !== runId || new Date(continuation.asOf).getTime() !== clock.getTime())
  ) {
    throw new SweepTargetInputError(
      `the continuation of run ${clip(continuation.runId, 100)} at ${continuation.asOf} is not this run's (${runId} at ${asOf})`,
    );
  }
  return {
    target: {
      accountId: target.accountId,
      region: target.region,
      ...(target.accountName ? { accountName: target.accountName } : {}),
    },
    runId,
    asOf: clock.toISOString(),
    previous: continuation,
  };
}

async function defaultDependencies(): Promise<SweepTargetDependencies> {
  const env = readEventEnvironment();
  const policy = await loadDeployedPolicy(env.policyFile);
  // Parsed as list-targets parses it, so a bad role name fails the cold start naming the param.
  const spec = readTargetSpec();
  const roleName = spec.memberRoleName;
  const home = createTargetSource(
    spec.organizationRoleArn ? { organizationRoleArn: spec.organizationRoleArn } : {},
  );
  const homeAccountId = () => home.accountId();
  // Kept per account and Region for a warm container: an assumed role's session is reused across
  // the invocations of one target's run, and EC2 meters each account-Region on its own buckets.
  const sessions: RoleSessions = new Map();
  const reached = new Map<string, { clients: AwsClients; limiter: ApiLimiter }>();
  return {
    ports: async (target, signal) => {
      const key = `${target.accountId}/${target.region}`;
      let entry = reached.get(key);
      if (!entry) {
        const clients = await clientsForTarget(target, {
          roleName,
          callerAccountId: await homeAccountId(),
          sessions,
        });
        entry = { clients, limiter: new ApiLimiter({ headroom: defaultLimiter.headroom }) };
        reached.set(key, entry);
      }
      return {
        ...sweepPorts(entry.clients, { policy, signal, limiter: entry.limiter }),
        // Images shared with other targets are checked there too, where their use is current.
        consumers: createConsumerReferences(spec, {
          region: target.region,
          source: home,
          clientsFor: async (consumer) =>
            clientsForTarget(consumer, { roleName, callerAccountId: await homeAccountId(), sessions }),
          launchTemplateVersions: policy.inUse.launchTemplateVersions,
          signal,
        }),
      };
    },
    alerts: {
      notifier: createSlackNotifier({ webhookUrl: webhookFromSsm(env.slackWebhookParameter), log: logger }),
      state: createSsmStateStore({ prefix: env.stateParameterPrefix }),
    },
    homeAccountId,
    policy,
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
export const handler = middy(makeSweepTargetHandler(await defaultDependencies()), {
  timeoutEarlyInMillis: 10_000,
}).use(injectLambdaContext(logger));
