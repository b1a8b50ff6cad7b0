import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { ListExecutionsCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import middy from '@middy/core';
import * as z from 'zod';
import { clientConfig } from '../adapters/clients.ts';
import { makeCall, paginate } from '../adapters/common.ts';
import { futureClockReason } from '../core/clock.ts';
import type { Log } from '../core/ports.ts';
import { errorCode } from '../errors.ts';
import { logger } from '../logger.ts';

/**
 * The schedule's target: starts one execution of the sweep state machine per schedule tick, and
 * none while another is still running, so two runs never sweep the same target at once.
 *
 * An EventBridge schedule that targets Step Functions directly cannot name the execution, so
 * this function does, after the schedule time (`sweep-2026-11-22T060000Z`). Step Functions keeps
 * an execution name for 90 days: a tick delivered twice, or retried by Lambda, starts nothing
 * new. Before starting, it asks for RUNNING executions: a run that outlasts the interval between
 * ticks makes the next tick a no-op that says why, and the tick after it starts afresh.
 */

export class StartSweepConfigError extends Error {
  override name = 'StartSweepConfigError';
}

const scheduledEvent = z.looseObject({
  source: z.literal('aws.events'),
  'detail-type': z.literal('Scheduled Event'),
  time: z.iso.datetime(),
});

/** A start by hand (`serverless invoke -f startSweep -d '{"mode":"apply"}'`), through the same guard. */
const manualEvent = z.strictObject({ mode: z.literal('apply') });

export interface RunningExecution {
  name: string;
  startedAt: string;
}

export interface ExecutionsPort {
  /** The state machine's RUNNING executions. */
  running(): Promise<RunningExecution[]>;
  /** `exists` when an execution of that name was already started (Step Functions keeps names 90 days). */
  start(
    name: string,
    input: string,
  ): Promise<{ status: 'started'; executionArn: string } | { status: 'exists' }>;
}

export type StartSweepResult =
  | { status: 'started'; executionName: string; executionArn: string }
  | { status: 'skipped'; executionName: string; reason: string }
  | { status: 'rejected'; reason: string };

export interface StartSweepDependencies {
  executions: ExecutionsPort;
  clock: () => Date;
  log: Log;
}

export function makeStartSweepHandler(deps: StartSweepDependencies) {
  return async (event: unknown): Promise<StartSweepResult> => {
    const realNow = deps.clock();
    const tick = acceptEvent(event, realNow);
    if ('rejected' in tick) {
      // A bad event never becomes valid on a retry: dropped, not thrown.
      deps.log.error('event rejected', { reason: tick.rejected });
      return { status: 'rejected', reason: tick.rejected };
    }
    const { executionName, input } = tick;
    const skip = (reason: string): StartSweepResult => {
      deps.log.warn('sweep not started', { executionName, reason });
      return { status: 'skipped', executionName, reason };
    };

    const running = await deps.executions.running();
    if (running.some((execution) => execution.name === executionName)) {
      return skip(`execution ${executionName} for this schedule time is already running`);
    }
    const [other] = [...running].sort((a, b) => a.startedAt.localeCompare(b.startedAt));
    if (other) {
      return skip(
        `execution ${other.name}, started ${other.startedAt}, is still running: two runs must never sweep the same target at once, so this tick starts nothing and the next one carries on`,
      );
    }
    const started = await deps.executions.start(executionName, JSON.stringify(input));
    if (started.status === 'exists') {
      return skip(`execution ${executionName} was already started for this schedule time`);
    }
    deps.log.info('sweep started', { executionName, executionArn: started.executionArn });
    return { status: 'started', executionName, executionArn: started.executionArn };
  };
}

/**
 * The execution's name and input. The input carries only the schedule's time, the run's clock; the
 * same tick always gives the same name and input, which is what makes a repeated start a no-op.
 */
function acceptEvent(
  event: unknown,
  realNow: Date,
): { executionName: string; input: { time: string; trigger: 'schedule' | 'manual' } } | { rejected: string } {
  const scheduled = scheduledEvent.safeParse(event);
  if (scheduled.success) {
    const time = new Date(scheduled.data.time);
    const future = futureClockReason(time, realNow, 'the scheduled event time');
    if (future) return { rejected: future };
    return {
      executionName: `sweep-${compact(time)}`,
      input: { time: time.toISOString(), trigger: 'schedule' },
    };
  }
  if (manualEvent.safeParse(event).success) {
    // To the second: an invocation retried within it is the same start.
    const time = new Date(Math.floor(realNow.getTime() / 1000) * 1000);
    return {
      executionName: `manual-${compact(time)}`,
      input: { time: time.toISOString(), trigger: 'manual' },
    };
  }
  return {
    rejected:
      'not a scheduled event or {"mode":"apply"}: a bare invocation starts nothing (plan by hand with serverless invoke -f sweep)',
  };
}

/** `2026-11-22T060000Z`: execution names allow letters, digits, `-` and `_` only. */
function compact(time: Date): string {
  return time
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replaceAll(':', '');
}

/** The executions of one state machine, through Step Functions. */
export function stepFunctionsExecutions(stateMachineArn: string, client: SFNClient): ExecutionsPort {
  const call = makeCall({});
  return {
    async running() {
      const found: RunningExecution[] = [];
      await paginate(
        'ListExecutions',
        (nextToken) =>
          call('ListExecutions', (options) =>
            client.send(
              new ListExecutionsCommand({
                stateMachineArn,
                statusFilter: 'RUNNING',
                maxResults: 100,
                ...(nextToken ? { nextToken } : {}),
              }),
              options,
            ),
          ).then((page) => ({ ...page, NextToken: page.nextToken })),
        (page) => {
          for (const execution of page.executions ?? []) {
            if (execution.name) {
              found.push({ name: execution.name, startedAt: execution.startDate?.toISOString() ?? '' });
            }
          }
        },
      );
      return found;
    },
    async start(name, input) {
      try {
        const output = await call('StartExecution', (options) =>
          client.send(new StartExecutionCommand({ stateMachineArn, name, input }), options),
        );
        return { status: 'started', executionArn: output.executionArn ?? '' };
      } catch (error) {
        if (errorCode(error) === 'ExecutionAlreadyExists') return { status: 'exists' };
        throw error;
      }
    },
  };
}

function defaultDependencies(): StartSweepDependencies {
  // Read per call rather than at import: the bundle must load where no state machine exists yet.
  let executions: ExecutionsPort | undefined;
  const port = (): ExecutionsPort => {
    if (executions) return executions;
    const arn = process.env.AMI_JANITOR_STATE_MACHINE_ARN?.trim();
    if (!arn) throw new StartSweepConfigError('AMI_JANITOR_STATE_MACHINE_ARN is not set');
    executions = stepFunctionsExecutions(arn, new SFNClient(clientConfig()));
    return executions;
  };
  return {
    executions: { running: () => port().running(), start: (name, input) => port().start(name, input) },
    clock: () => new Date(),
    log: logger,
  };
}

export const handler = middy(makeStartSweepHandler(defaultDependencies())).use(injectLambdaContext(logger));
