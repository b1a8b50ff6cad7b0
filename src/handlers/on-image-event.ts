import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { createImageActions } from '../adapters/ec2.ts';
import { createSharing } from '../adapters/sharing.ts';
import { loadDeployedPolicy } from '../config/deployed-policy.ts';
import { readEventEnvironment } from '../config/env.ts';
import type { Policy } from '../config/policy.ts';
import { type AuditOutcome, auditImageEvent } from '../core/image-audit.ts';
import type { ImageActionsPort, Log, SharingPort } from '../core/ports.ts';
import { type ImageEvent, parseImageEvent } from '../events/image-event.ts';
import { logger } from '../logger.ts';
import { createSlackNotifier, type Notifier, webhookFromSsm } from '../notify/slack.ts';

export interface ImageEventDependencies {
  ports: (signal: AbortSignal | undefined) => { images: ImageActionsPort; sharing: SharingPort };
  notifier: Notifier;
  policy: Policy;
  dryRun: boolean;
  log: Log;
}

export type ImageEventResult =
  | ({ status: AuditOutcome['status'] } & AuditOutcome)
  | { status: 'rejected' | 'ignored' | 'failed-call'; reason: string };

export function makeImageEventHandler(deps: ImageEventDependencies) {
  return async (
    event: unknown,
    _context: Pick<Context, 'getRemainingTimeInMillis'>,
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
    const outcome = await auditImageEvent(
      imageEvent,
      { ...deps.ports(options?.signal), notifier: deps.notifier, log: deps.log },
      { policy: deps.policy, dryRun: deps.dryRun || deps.policy.dryRun },
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
  return {
    ports: (signal) => ({ images: createImageActions({ signal }), sharing: createSharing({ signal }) }),
    notifier: createSlackNotifier({ webhookUrl: webhookFromSsm(env.slackWebhookParameter), log: logger }),
    policy,
    dryRun: env.dryRun,
    log: logger,
  };
}

export const handler = middy(makeImageEventHandler(await defaultDependencies()), {
  timeoutEarlyInMillis: 2_000,
}).use(injectLambdaContext(logger));
