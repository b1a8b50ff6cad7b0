import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import * as z from 'zod';
import { createTargetSource } from '../adapters/targets.ts';
import { readTargetSpec } from '../config/env.ts';
import { FutureClockError, futureClockReason } from '../core/clock.ts';
import type { Log } from '../core/ports.ts';
import {
  type ResolvedTarget,
  resolveTargets,
  TargetError,
  type TargetSource,
  type TargetSpec,
} from '../core/targets.ts';
import { logger } from '../logger.ts';

/**
 * The state machine's first step: the run's id and clock, and every target it sweeps, from the
 * deploy params (accounts, organizationalUnits, excludeAccounts, regions, ...).
 */

/**
 * Step Functions keeps a state's data under 256 KB, and the Map's output holds one summary per
 * target (a few hundred bytes; a failed one's error is capped too). Past this many targets a run
 * could fail at the end, after sweeping everything but before the digest, so it is refused first.
 */
export const MAX_TARGETS = 400;

export class TooManyTargetsError extends TargetError {
  override name = 'TooManyTargetsError';
}

export class ListTargetsInputError extends Error {
  override name = 'ListTargetsInputError';
}

/** What the state machine passes: its execution's name and start, and the execution's input. */
const listTargetsInput = z.strictObject({
  executionName: z.string().min(1).max(80),
  startTime: z.iso.datetime({ offset: true }),
  /** The starter's input: the schedule's time. An execution started by hand may carry nothing. */
  input: z.looseObject({ time: z.iso.datetime({ offset: true }).optional() }).nullish(),
});

export interface ListTargetsOutput {
  runId: string;
  /** The run's clock: the schedule's time, or the execution's start when it was started by hand. */
  asOf: string;
  targets: ResolvedTarget[];
}

export interface ListTargetsDependencies {
  spec: TargetSpec;
  source: TargetSource;
  clock: () => Date;
  log: Log;
  maxTargets?: number;
}

export function makeListTargetsHandler(deps: ListTargetsDependencies) {
  return async (event: unknown): Promise<ListTargetsOutput> => {
    const realNow = deps.clock();
    const parsed = listTargetsInput.safeParse(event);
    if (!parsed.success) {
      throw new ListTargetsInputError(`not a list-targets input: ${z.prettifyError(parsed.error)}`);
    }
    const { executionName, startTime, input } = parsed.data;
    const asOf = new Date(input?.time ?? startTime);
    const future = futureClockReason(
      asOf,
      realNow,
      input?.time ? 'the scheduled time' : 'the execution start time',
    );
    if (future) throw new FutureClockError(future);

    const targets = await resolveTargets(deps.spec, deps.source);
    const max = deps.maxTargets ?? MAX_TARGETS;
    if (targets.length > max) {
      throw new TooManyTargetsError(
        `${targets.length} targets (accounts × Regions) is more than the ${max} one run can sweep: narrow the accounts, organizationalUnits or regions params, or split the organisation across deployments`,
      );
    }
    deps.log.info('targets', {
      runId: executionName,
      asOf: asOf.toISOString(),
      count: targets.length,
      accounts: new Set(targets.map((target) => target.accountId)).size,
    });
    return { runId: executionName, asOf: asOf.toISOString(), targets };
  };
}

/** The deploy params, as serverless.yml passes them; the event handler reads the same. */
export const targetSpecFromEnvironment = readTargetSpec;

function defaultDependencies(): ListTargetsDependencies {
  const spec = targetSpecFromEnvironment();
  return {
    spec,
    source: createTargetSource({
      ...(spec.organizationRoleArn ? { organizationRoleArn: spec.organizationRoleArn } : {}),
    }),
    clock: () => new Date(),
    log: logger,
  };
}

export const handler = middy(makeListTargetsHandler(defaultDependencies())).use(injectLambdaContext(logger));
