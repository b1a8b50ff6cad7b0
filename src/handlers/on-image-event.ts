import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { createImageActions } from '../adapters/ec2.ts';
import { createEventTargets, type EventTargets } from '../adapters/event-targets.ts';
import { createSharing } from '../adapters/sharing.ts';
import { createTargetSource } from '../adapters/targets.ts';
import { loadDeployedPolicy } from '../config/deployed-policy.ts';
import { reachesBeyondHome, readEventEnvironment, readTargetSpec } from '../config/env.ts';
import type { Policy } from '../config/policy.ts';
import { type AuditOutcome, auditImageEvent } from '../core/image-audit.ts';
import type { ImageActionsPort, Log, SharingPort } from '../core/ports.ts';
import { imageEventMetrics, type MetricsPort } from '../core/run-metrics.ts';
import { type ImageEvent, parseImageEvent } from '../events/image-event.ts';
import { logger } from '../logger.ts';
import { lambdaMetrics } from '../metrics.ts';
import {
  boundedNotifier,
  createSlackNotifier,
  type Notifier,
  type SlackBudget,
  webhookFromSsm,
} from '../notify/slack.ts';

export interface ImageEventDependencies {
  ports: (signal: AbortSignal | undefined) => { images: ImageActionsPort; sharing: SharingPort };
  notifier: Notifier;
  policy: Policy;
  dryRun: boolean;
  /** This function's Region: an event for another one is dropped. */
  region: string;
  /**
   * This function's account: an event for another one is dropped. Without it, each invocation
   * reads it from the context's `invokedFunctionArn`, which costs no STS call.
   */
  accountId?: string;
  /** How much of an invocation's remaining time one Slack delivery may take. */
  slackBudget?: SlackBudget;
  /**
   * Organisation-wide: the targets whose events are audited, each in its own account through its
   * member role. Without it, only this function's own account and Region are.
   */
  targets?: EventTargets;
  log: Log;
  /** CloudWatch metrics of each audited event; only the Lambda publishes them. */
  metrics?: MetricsPort;
}

/**
 * A third of the time left, and never within 5 s of the timeout: middy's early timeout takes the
 * last 2 s, and the rest is for the alert-state tag and the log lines written after the send. On
 * the 60 s function that is about 20 s, enough for a few attempts and short Retry-After waits.
 */
export const IMAGE_EVENT_SLACK_BUDGET: SlackBudget = { share: 1 / 3, reserveMs: 5_000 };

export type ImageEventContext = Pick<Context, 'getRemainingTimeInMillis'> &
  Partial<Pick<Context, 'invokedFunctionArn'>>;

export type ImageEventResult =
  | ({ status: AuditOutcome['status'] } & AuditOutcome)
  | { status: 'rejected' | 'ignored' | 'failed-call'; reason: string };

export function makeImageEventHandler(deps: ImageEventDependencies) {
  const audit = auditEvent(deps);
  return async (
    event: unknown,
    context: ImageEventContext,
    options?: { signal?: AbortSignal },
  ): Promise<ImageEventResult> => {
    deps.metrics?.startInvocation();
    const result = await audit(event, context, options);
    deps.metrics?.publish(
      imageEventMetrics({
        status: result.status,
        findings: 'findings' in result ? result.findings : [],
        remediation: 'remediation' in result ? result.remediation : undefined,
        throttledCalls: deps.metrics.throttledCalls(),
      }),
    );
    return result;
  };
}

function auditEvent(deps: ImageEventDependencies) {
  return async (
    event: unknown,
    context: ImageEventContext,
    options?: { signal?: AbortSignal },
  ): Promise<ImageEventResult> => {
    const parsed = parseImageEvent(event);
    // None of these can succeed on a retry, so they return instead of throwing into a retry storm.
    if (parsed.outcome === 'malformed') {
      deps.log.error('event rejected', { reason: parsed.reason });
      return { status: 'rejected', reason: parsed.reason };
    }
    if (parsed.outcome === 'ignored') {
      deps.log.info('event ignored', { reason: parsed.reason });
      return { status: 'ignored', reason: parsed.reason };
    }
    if (parsed.outcome === 'failed-call') {
      const reason = `${parsed.eventName} failed with ${parsed.errorCode}; nothing changed, nothing to audit`;
      deps.log.info('failed API call', {
        eventName: parsed.eventName,
        errorCode: parsed.errorCode,
        eventId: parsed.eventId,
      });
      return { status: 'failed-call', reason };
    }
    const { event: imageEvent } = parsed;
    let ports = deps.ports;
    let accountName: string | undefined;
    let elsewhere: string | undefined;
    if (deps.targets) {
      // Organisation-wide: the event is audited in its own account and Region, if that is a target.
      elsewhere = inconsistent(event, imageEvent);
      if (!elsewhere) {
        const target = { accountId: imageEvent.accountId, region: imageEvent.region };
        const reached = await deps.targets.portsFor(target, options?.signal);
        if ('notATarget' in reached) elsewhere = reached.notATarget;
        else {
          ports = () => reached.ports;
          accountName = reached.accountName;
        }
      }
    } else {
      const home = ownAccount(deps, context);
      if (home.warning) deps.log.warn('account check skipped', { reason: home.warning });
      elsewhere = notHere(event, imageEvent, { region: deps.region, accountId: home.accountId });
    }
    if (elsewhere) {
      // Until other accounts are targets, auditing one would tag and alert as if it were this one;
      // dropped, not thrown, since a retry would be dropped the same way.
      deps.log.warn('event ignored', {
        reason: elsewhere,
        eventId: imageEvent.eventId,
        eventName: imageEvent.eventName,
      });
      return { status: 'ignored', reason: elsewhere };
    }
    const notifier = boundedNotifier(
      deps.notifier,
      () => context.getRemainingTimeInMillis(),
      deps.slackBudget ?? IMAGE_EVENT_SLACK_BUDGET,
    );
    const outcome = await auditImageEvent(
      imageEvent,
      { ...ports(options?.signal), notifier, log: deps.log },
      {
        policy: deps.policy,
        dryRun: deps.dryRun || deps.policy.dryRun,
        ...(accountName ? { accountName } : {}),
      },
    );
    deps.log.info('event audited', {
      eventId: imageEvent.eventId,
      eventName: imageEvent.eventName,
      ...resourceKey(imageEvent.kind, outcome.resourceId),
      caller: imageEvent.caller.arn,
      verdict: outcome.status,
      reason: outcome.detail,
      findings: outcome.findings,
      remediation: outcome.remediation,
    });
    return outcome;
  };
}

/** `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`, in any partition. */
const FUNCTION_ARN = /^arn:aws[a-z-]*:lambda:([a-z0-9-]+):(\d{12}):function:[^:]+(?::[^:]+)?$/;

/** The Region and account a Lambda function ARN names, or undefined when it is not one. */
export function parseFunctionArn(arn: unknown): { region: string; accountId: string } | undefined {
  if (typeof arn !== 'string') return undefined;
  const match = FUNCTION_ARN.exec(arn);
  if (!match?.[1] || !match[2]) return undefined;
  return { region: match[1], accountId: match[2] };
}

/**
 * The account this function runs in. `serverless invoke local` passes no `invokedFunctionArn`, and
 * other emulators a made-up one; rather than drop every event there, the account check is skipped
 * with a warning. Lambda itself always passes the real ARN, in the function's own Region, so an ARN
 * naming another Region is taken for a made-up one too.
 */
function ownAccount(
  deps: Pick<ImageEventDependencies, 'accountId' | 'region'>,
  context: ImageEventContext,
): { accountId?: string; warning?: string } {
  if (deps.accountId !== undefined) return { accountId: deps.accountId };
  const arn = context.invokedFunctionArn;
  const parsed = parseFunctionArn(arn);
  if (!parsed) {
    const shown =
      typeof arn === 'string' ? `'${arn.slice(0, 200)}' is not a Lambda function ARN` : 'is absent';
    return {
      warning: `the context's invokedFunctionArn ${shown}, so events from any account are audited as this one's`,
    };
  }
  if (parsed.region !== deps.region) {
    return {
      warning: `the context's invokedFunctionArn names Region ${parsed.region}, not this function's ${deps.region}, so it is not this function's own; events from any account are audited as this one's`,
    };
  }
  return { accountId: parsed.accountId };
}

/**
 * Why the event is not this function's to audit, if it is not: the EventBridge envelope and the
 * CloudTrail record each name an account and a Region, and all of them must be this function's.
 */
function notHere(
  raw: unknown,
  event: ImageEvent,
  home: { region: string; accountId: string | undefined },
): string | undefined {
  // The parser accepted the envelope, so both are strings; `event` holds the CloudTrail record's own.
  const envelope = raw as { account?: unknown; region?: unknown };
  const named = (values: unknown[]) => [
    ...new Set(values.filter((value): value is string => typeof value === 'string')),
  ];
  const regions = named([envelope.region, event.region]).filter((region) => region !== home.region);
  const accounts =
    home.accountId === undefined
      ? []
      : named([envelope.account, event.accountId]).filter((account) => account !== home.accountId);
  const reasons = [
    ...regions.map((region) => `Region ${region}, not this function's ${home.region}`),
    ...accounts.map((account) => `account ${account}, not this function's ${home.accountId}`),
  ];
  if (reasons.length === 0) return undefined;
  return `the event is for ${reasons.join(' and ')}; only this function's own account and Region are audited`;
}

/** The envelope and the CloudTrail record must name the same account and Region. */
function inconsistent(raw: unknown, event: ImageEvent): string | undefined {
  const envelope = raw as { account?: unknown; region?: unknown };
  if (envelope.account !== event.accountId || envelope.region !== event.region) {
    return `the event's envelope (${String(envelope.account)}, ${String(envelope.region)}) and its CloudTrail record (${event.accountId}, ${event.region}) disagree`;
  }
  return undefined;
}

/** Logs key the resource by its kind, so an account id is never logged as an image id. */
function resourceKey(kind: ImageEvent['kind'], resourceId: string | undefined): Record<string, string> {
  if (resourceId === undefined) return {};
  if (kind === 'snapshot-sharing') return { snapshotId: resourceId };
  if (kind === 'block-public-access-disabled') return { accountId: resourceId };
  return { imageId: resourceId };
}

async function defaultDependencies(): Promise<ImageEventDependencies> {
  const env = readEventEnvironment();
  const policy = await loadDeployedPolicy(env.policyFile);
  const spec = readTargetSpec();
  const source = createTargetSource(
    spec.organizationRoleArn ? { organizationRoleArn: spec.organizationRoleArn } : {},
  );
  return {
    ports: (signal) => ({ images: createImageActions({ signal }), sharing: createSharing({ signal }) }),
    ...(reachesBeyondHome(spec, env.region)
      ? { targets: createEventTargets(spec, { callerAccountId: () => source.accountId(), source }) }
      : {}),
    notifier: createSlackNotifier({ webhookUrl: webhookFromSsm(env.slackWebhookParameter), log: logger }),
    policy,
    dryRun: env.dryRun,
    region: env.region,
    log: logger,
    metrics: lambdaMetrics,
  };
}

export const handler = middy(makeImageEventHandler(await defaultDependencies()), {
  timeoutEarlyInMillis: 2_000,
}).use(injectLambdaContext(logger));
