import * as z from 'zod';
import { clip } from '../core/org-digest.ts';
import { context, divider, escapeMrkdwn, header, message, section } from './blocks.ts';
import { consoleHost } from './messages.ts';
import type { SlackMessage } from './slack.ts';

/**
 * A CloudWatch alarm's state change, as the alarm topic delivers it, made into a Slack message:
 * the janitor's own failures reach the same channel as its alerts.
 */

/** The fields of CloudWatch's SNS notification that the message uses; the rest are ignored. */
const alarmNotification = z.looseObject({
  AlarmName: z.string().min(1),
  AlarmDescription: z.string().nullish(),
  NewStateValue: z.enum(['ALARM', 'OK', 'INSUFFICIENT_DATA']),
  OldStateValue: z.string().nullish(),
  NewStateReason: z.string().nullish(),
  StateChangeTime: z.string().nullish(),
  AWSAccountId: z.string().nullish(),
  // CloudWatch gives the Region's name ("EU (Ireland)"); the ARN has its code.
  AlarmArn: z.string().nullish(),
  Region: z.string().nullish(),
});

export type AlarmNotification = z.infer<typeof alarmNotification>;

/** An SNS message that is not a CloudWatch alarm notification: no retry will change it. */
export class AlarmNotificationError extends Error {
  override name = 'AlarmNotificationError';
}

/** Longest SNS message read: CloudWatch's are a few kilobytes, SNS allows 256 KB. */
const MAX_MESSAGE_CHARS = 64 * 1024;

export function parseAlarmNotification(text: string): AlarmNotification {
  if (text.length > MAX_MESSAGE_CHARS) {
    throw new AlarmNotificationError(`the message is ${text.length} characters long, more than an alarm's`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new AlarmNotificationError('the message is not JSON', { cause: error });
  }
  const parsed = alarmNotification.safeParse(json);
  if (!parsed.success) {
    throw new AlarmNotificationError(
      `not a CloudWatch alarm notification: ${clip(z.prettifyError(parsed.error), 300)}`,
    );
  }
  return parsed.data;
}

const STATE_LINE: Readonly<Record<AlarmNotification['NewStateValue'], string>> = {
  ALARM: ':rotating_light: ALARM',
  OK: ':white_check_mark: OK',
  INSUFFICIENT_DATA: ':grey_question: INSUFFICIENT DATA',
};

/** The Region code from the alarm's ARN (arn:aws:cloudwatch:<region>:<account>:alarm:<name>). */
function regionOf(alarm: AlarmNotification): string | undefined {
  const region = alarm.AlarmArn?.split(':')[3];
  return region && /^[a-z]{2}(-[a-z]+)+-\d+$/.test(region) ? region : undefined;
}

export function alarmUrl(alarm: AlarmNotification): string | undefined {
  const region = regionOf(alarm);
  if (!region) return undefined;
  return `https://${consoleHost(region)}/cloudwatch/home?region=${encodeURIComponent(region)}#alarmsV2:alarm/${encodeURIComponent(alarm.AlarmName)}`;
}

export function alarmMessage(alarm: AlarmNotification): SlackMessage {
  const state = STATE_LINE[alarm.NewStateValue];
  const where = [alarm.AWSAccountId, regionOf(alarm) ?? alarm.Region].filter(Boolean).join('/');
  const url = alarmUrl(alarm);
  const blocks = [
    header(`${state}: ${alarm.AlarmName}`),
    ...(alarm.AlarmDescription ? [section(`*What it means*\n${escapeMrkdwn(alarm.AlarmDescription)}`)] : []),
    ...(alarm.NewStateReason ? [section(`*Why now*\n${escapeMrkdwn(alarm.NewStateReason)}`)] : []),
    divider(),
    ...(url ? [section(`<${url}|Open the alarm in the CloudWatch console>`)] : []),
    context(
      [
        'Sent by ami-janitor',
        where ? escapeMrkdwn(where) : '',
        alarm.StateChangeTime ? escapeMrkdwn(alarm.StateChangeTime) : '',
        alarm.OldStateValue ? `was ${escapeMrkdwn(alarm.OldStateValue)}` : '',
      ]
        .filter(Boolean)
        .join(' · '),
    ),
  ];
  return message(
    escapeMrkdwn(`${alarm.NewStateValue}: ${alarm.AlarmName}${where ? ` in ${where}` : ''}`),
    blocks,
  );
}
