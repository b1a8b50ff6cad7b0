import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { z } from 'zod';
import { createImageActions, createInventory } from '../adapters/ec2.ts';
import { readSweepEnvironment } from '../config/env.ts';
import { loadPolicyFile, type Policy } from '../config/policy.ts';
import type { ImageActionsPort, InventoryPort, Log } from '../core/ports.ts';
import type { RunReport } from '../core/report.ts';
import { runSweep } from '../core/sweep.ts';
import { logger } from '../logger.ts';

/** The EventBridge schedule's event; its `time` is the run's clock, so a retried event replays the same run. */
const scheduledEvent = z.looseObject({
  source: z.literal('aws.events'),
  'detail-type': z.literal('Scheduled Event'),
  time: z.iso.datetime(),
});

/** A hand-made invocation (`serverless invoke -f sweep -d '{"mode":"plan"}'`). */
const manualEvent = z.strictObject({
  mode: z.enum(['plan', 'apply']).optional(),
  asOf: z.iso.datetime().optional(),
});

const sweepEvent = z.union([scheduledEvent, manualEvent]);

export interface SweepDependencies {
  inventory: InventoryPort;
  actions: ImageActionsPort;
  policy: Policy;
  region: string;
  dryRun: boolean;
  clock: () => Date;
  log: Log;
}

export type SweepResult = RunReport | { status: 'rejected'; reason: string };

export function makeSweepHandler(deps: SweepDependencies) {
  return async (event: unknown, context: Pick<Context, 'getRemainingTimeInMillis'>): Promise<SweepResult> => {
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
      { inventory: deps.inventory, actions: deps.actions, log: deps.log },
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
    return report;
  };
}

function defaultDependencies(): SweepDependencies {
  const env = readSweepEnvironment();
  const policy = loadPolicyFile(env.policyFile);
  return {
    inventory: createInventory({ launchTemplateVersions: policy.inUse.launchTemplateVersions }),
    actions: createImageActions({}),
    policy,
    region: env.region,
    dryRun: env.dryRun,
    clock: () => new Date(),
    log: logger,
  };
}

export const handler = middy(makeSweepHandler(defaultDependencies())).use(injectLambdaContext(logger));
