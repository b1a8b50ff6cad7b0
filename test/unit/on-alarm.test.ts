import { describe, expect, it, vi } from 'vitest';
import alarmEvent from '../../events/cloudwatch-alarm.json' with { type: 'json' };
import { AlarmNotDeliveredError, makeAlarmHandler } from '../../src/handlers/on-alarm.ts';
import { alarmMessage, parseAlarmNotification } from '../../src/notify/alarm.ts';
import {
  createSlackNotifier,
  type DeliveryResult,
  type Notifier,
  type SlackMessage,
} from '../../src/notify/slack.ts';
import { recordingLog } from './factories.ts';

vi.stubEnv('AWS_REGION', 'eu-west-1');

function event(change: (message: Record<string, unknown>) => void = () => {}) {
  const copy = structuredClone(alarmEvent);
  for (const record of copy.Records) {
    const message = JSON.parse(record.Sns.Message) as Record<string, unknown>;
    change(message);
    record.Sns.Message = JSON.stringify(message);
  }
  return copy;
}

function notifier(result: DeliveryResult): Notifier & { sent: SlackMessage[] } {
  const sent: SlackMessage[] = [];
  return {
    sent,
    send: async (message) => {
      sent.push(message);
      return result;
    },
  };
}

const context = { getRemainingTimeInMillis: () => 25_000 };

describe('an alarm in Slack', () => {
  it('says which alarm, its state, what it means and why now, with a link to the alarm', () => {
    const alarm = parseAlarmNotification(alarmEvent.Records[0]?.Sns.Message ?? '');
    const message = alarmMessage(alarm);
    const text = JSON.stringify(message.blocks);
    expect(message.text).toBe('ALARM: ami-janitor-prod sweepTarget errors in 111122223333/eu-west-1');
    expect(message.blocks[0]).toEqual({
      type: 'header',
      text: {
        type: 'plain_text',
        text: ':rotating_light: ALARM: ami-janitor-prod sweepTarget errors',
        emoji: true,
      },
    });
    expect(text).toContain('*What it means*\\nsweepTarget failed');
    expect(text).toContain('*Why now*\\nThreshold Crossed: 1 out of the last 1 datapoints');
    expect(text).toContain(
      '<https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#alarmsV2:alarm/ami-janitor-prod%20sweepTarget%20errors|Open the alarm in the CloudWatch console>',
    );
    expect(text).toContain('was OK');
  });

  it('escapes what it did not write: a reason cannot carry a link or a mention', () => {
    const alarm = parseAlarmNotification(
      JSON.stringify({
        AlarmName: 'x',
        NewStateValue: 'OK',
        NewStateReason: '<!channel> <https://evil|click>',
      }),
    );
    const text = JSON.stringify(alarmMessage(alarm).blocks);
    expect(text).not.toContain('<!channel>');
    expect(text).toContain('&lt;!channel&gt; &lt;https://evil|click&gt;');
    expect(text).not.toContain('console.aws.amazon.com');
  });
});

describe('the alarm subscriber', () => {
  it('posts each alarm of the event and reports it', async () => {
    const slack = notifier({ delivered: true, attempts: 1, status: 200 });
    const log = recordingLog();
    const result = await makeAlarmHandler({ notifier: slack, log })(event(), context);
    expect(result).toEqual({ delivered: 1, maybeDelivered: 0, rejected: 0, notConfigured: 0 });
    expect(slack.sent).toHaveLength(1);
    expect(log.entries).toContainEqual(expect.objectContaining({ level: 'info', message: 'alarm sent' }));
  });

  it('drops what is not an alarm notification with a reason, and throws nothing a retry would repeat', async () => {
    const slack = notifier({ delivered: true, attempts: 1, status: 200 });
    const log = recordingLog();
    const handler = makeAlarmHandler({ notifier: slack, log });
    await expect(handler({ hello: 'world' }, context)).resolves.toMatchObject({ rejected: 1 });
    const notJson = structuredClone(alarmEvent);
    for (const record of notJson.Records) record.Sns.Message = 'not json';
    await expect(handler(notJson, context)).resolves.toMatchObject({ rejected: 1, delivered: 0 });
    await expect(
      handler(
        event((message) => delete message.NewStateValue),
        context,
      ),
    ).resolves.toMatchObject({
      rejected: 1,
    });
    expect(slack.sent).toHaveLength(0);
    expect(log.entries.filter((entry) => entry.level === 'error')).toHaveLength(3);
  });

  it('throws when Slack did not take it, so Lambda retries and the dead-letter queue keeps it', async () => {
    const slack = notifier({ delivered: false, attempts: 4, status: 500, error: 'HTTP 500' });
    const handler = makeAlarmHandler({ notifier: slack, log: recordingLog() });
    await expect(handler(event(), context)).rejects.toBeInstanceOf(AlarmNotDeliveredError);
    await expect(handler(event(), context)).rejects.toThrow(
      'Slack did not take 1 alarm(s): ami-janitor-prod sweepTarget errors: HTTP 500',
    );
  });

  it('does not send again what may have been posted, nor fail when no webhook is configured', async () => {
    const maybe = notifier({ delivered: false, maybeDelivered: true, attempts: 1, error: 'timed out' });
    await expect(
      makeAlarmHandler({ notifier: maybe, log: recordingLog() })(event(), context),
    ).resolves.toMatchObject({
      maybeDelivered: 1,
    });
    const off = createSlackNotifier({ webhookUrl: async () => undefined });
    await expect(
      makeAlarmHandler({ notifier: off, log: recordingLog() })(event(), context),
    ).resolves.toMatchObject({
      notConfigured: 1,
    });
  });

  it('gives up at once on a Slack that asks to wait longer than the invocation has', async () => {
    const fetch = vi.fn(
      async () => new Response('rate limited', { status: 429, headers: { 'retry-after': '3600' } }),
    );
    const slack = createSlackNotifier({
      webhookUrl: async () => 'https://hooks.slack.com/services/T/B/X',
      fetch,
    });
    const started = Date.now();
    await expect(
      makeAlarmHandler({ notifier: slack, log: recordingLog() })(event(), context),
    ).rejects.toThrow(/HTTP 429/);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(fetch).toHaveBeenCalledTimes(1);
  });
});
