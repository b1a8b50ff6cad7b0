import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import * as z from 'zod';
import { readEventEnvironment } from '../config/env.ts';
import type { Log } from '../core/ports.ts';
import { logger } from '../logger.ts';
import { AlarmNotificationError, alarmMessage, parseAlarmNotification } from '../notify/alarm.ts';
import {
  boundedNotifier,
  createSlackNotifier,
  NO_WEBHOOK,
  type Notifier,
  type SlackBudget,
  webhookFromSsm,
} from '../notify/slack.ts';

/**
 * The alarm topic's Slack subscriber: each CloudWatch alarm notification becomes a Block Kit message
 * in the janitor's channel. The topic delivers to its other subscribers (the email param) whatever
 * happens here; a message Slack did not take is thrown back to Lambda, which retries the invocation
 * and then keeps it in the alarm dead-letter queue.
 */

/** Slack did not take the message; Lambda's retry (and then the dead-letter queue) has it. */
export class AlarmNotDeliveredError extends Error {
  override name = 'AlarmNotDeliveredError';
}

const snsEvent = z.looseObject({
  Records: z
    .array(
      z.looseObject({
        Sns: z.looseObject({ MessageId: z.string().optional(), Message: z.string() }),
      }),
    )
    .min(1),
});

export interface AlarmDependencies {
  notifier: Notifier;
  log: Log;
}

export interface AlarmResult {
  delivered: number;
  /** Timed out: Slack may have posted them. Not sent again, so the channel sees no duplicate. */
  maybeDelivered: number;
  /** Not alarm notifications; logged and dropped, since no retry changes them. */
  rejected: number;
  /** No webhook is configured: the alarms are in the log (and with the topic's other subscribers). */
  notConfigured: number;
}

/** Each message may take half the time left, and never the last 3 s. */
const ALARM_SLACK_BUDGET: SlackBudget = { share: 1 / 2, reserveMs: 3_000 };

export function makeAlarmHandler(deps: AlarmDependencies) {
  return async (event: unknown, context: Pick<Context, 'getRemainingTimeInMillis'>): Promise<AlarmResult> => {
    const result: AlarmResult = { delivered: 0, maybeDelivered: 0, rejected: 0, notConfigured: 0 };
    const parsed = snsEvent.safeParse(event);
    if (!parsed.success) {
      deps.log.error('event rejected', { reason: `not an SNS event: ${z.prettifyError(parsed.error)}` });
      result.rejected += 1;
      return result;
    }
    const notifier = boundedNotifier(
      deps.notifier,
      () => context.getRemainingTimeInMillis(),
      ALARM_SLACK_BUDGET,
    );
    const failures: string[] = [];
    for (const record of parsed.data.Records) {
      let alarm: ReturnType<typeof parseAlarmNotification>;
      try {
        alarm = parseAlarmNotification(record.Sns.Message);
      } catch (error) {
        if (!(error instanceof AlarmNotificationError)) throw error;
        deps.log.error('notification rejected', { messageId: record.Sns.MessageId, reason: error.message });
        result.rejected += 1;
        continue;
      }
      const summary = { alarm: alarm.AlarmName, state: alarm.NewStateValue, reason: alarm.NewStateReason };
      const delivery = await notifier.send(alarmMessage(alarm));
      if (delivery.delivered) {
        result.delivered += 1;
        deps.log.info('alarm sent', summary);
      } else if (delivery.maybeDelivered) {
        result.maybeDelivered += 1;
        deps.log.warn('alarm maybe sent', { ...summary, error: delivery.error });
      } else if (delivery.error === NO_WEBHOOK) {
        result.notConfigured += 1;
        deps.log.warn('alarm not sent', { ...summary, reason: 'no Slack webhook is configured' });
      } else {
        deps.log.error('alarm not sent', { ...summary, error: delivery.error, status: delivery.status });
        failures.push(`${alarm.AlarmName}: ${delivery.error ?? `HTTP ${delivery.status}`}`);
      }
    }
    if (failures.length > 0) {
      throw new AlarmNotDeliveredError(
        `Slack did not take ${failures.length} alarm(s): ${failures.join('; ')}`,
      );
    }
    return result;
  };
}

function defaultDependencies(): AlarmDependencies {
  const env = readEventEnvironment();
  return {
    notifier: createSlackNotifier({ webhookUrl: webhookFromSsm(env.slackWebhookParameter), log: logger }),
    log: logger,
  };
}

export const handler = middy(makeAlarmHandler(defaultDependencies())).use(injectLambdaContext(logger));
