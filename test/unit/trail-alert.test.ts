import { describe, expect, it } from 'vitest';
import type { TrailHealth } from '../../src/core/account-audit.ts';
import { alertOnTrailChange } from '../../src/core/trail-alert.ts';
import type { DeliveryResult, Notifier, SlackMessage } from '../../src/notify/slack.ts';
import { memoryState, recordingLog } from './factories.ts';

const ACCOUNT = '111122223333';

function blind(): TrailHealth {
  return { region: 'eu-west-1', ok: false, reason: 'no trail logs management write events in eu-west-1' };
}

/** A Notifier that keeps every message and answers each send with the next of `results`. */
function scriptedNotifier(...results: DeliveryResult[]) {
  const sent: SlackMessage[] = [];
  const notifier: Notifier = {
    async send(message) {
      sent.push(message);
      return results.shift() ?? { delivered: true, attempts: 1, status: 200 };
    },
  };
  return { sent, notifier };
}

describe('alertOnTrailChange: delivery not confirmed', () => {
  it('records nothing when the POST timed out, logs the whole alert, and the next sweep alerts again', async () => {
    // Prepare
    const state = memoryState();
    const log = recordingLog();
    const slack = scriptedNotifier({
      delivered: false,
      maybeDelivered: true,
      attempts: 1,
      error: 'timed out after 5000 ms',
    });
    const context = { accountId: ACCOUNT, state, notifier: slack.notifier, log };

    // Act
    const first = await alertOnTrailChange(blind(), context);
    const next = await alertOnTrailChange(blind(), context);

    // Assess
    expect([first, next]).toEqual(['unconfirmed', 'alerted']);
    expect(slack.sent).toHaveLength(2);
    const errors = log.entries.filter((entry) => entry.level === 'error');
    expect(errors.map((entry) => entry.message)).toEqual(['alert delivery unconfirmed']);
    expect(errors[0]?.extra[0]).toMatchObject({
      alert: {
        severity: 'high',
        title: 'Real-time audit is blind in eu-west-1',
        resource: { kind: 'account', id: ACCOUNT },
        fixCommand: expect.stringContaining('aws cloudtrail create-trail --region eu-west-1'),
      },
      delivery: { maybeDelivered: true },
    });
    expect(state.values.get('trail-health/eu-west-1')).toBe('blind');
  });

  it('logs the whole alert, not just the reason, when Slack did not take it', async () => {
    // Prepare
    const state = memoryState();
    const log = recordingLog();
    const slack = scriptedNotifier({ delivered: false, attempts: 4, status: 503, error: 'HTTP 503' });

    // Act
    const outcome = await alertOnTrailChange(blind(), {
      accountId: ACCOUNT,
      state,
      notifier: slack.notifier,
      log,
    });

    // Assess
    expect(outcome).toBe('not-delivered');
    expect(state.values.size).toBe(0);
    const error = log.entries.find((entry) => entry.level === 'error');
    expect(error?.message).toBe('alert not delivered');
    expect(error?.extra[0]).toMatchObject({
      alert: {
        title: 'Real-time audit is blind in eu-west-1',
        change: 'no trail logs management write events in eu-west-1',
        nextStep: expect.stringContaining('eu-west-1'),
      },
      delivery: { status: 503 },
    });
  });
});
