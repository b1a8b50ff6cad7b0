import { errorCode } from '../errors.ts';
import { type Alert, alertMessage } from '../notify/messages.ts';
import type { Notifier } from '../notify/slack.ts';
import type { TrailHealth } from './account-audit.ts';
import type { Log, StateStore } from './ports.ts';

const STATE_KEY = 'trail-health';

export type TrailAlertOutcome =
  | 'alerted'
  | 'unchanged'
  | 'recovered'
  | 'not-delivered'
  | 'unconfirmed'
  | 'unknown';

/**
 * Alerts when the Region's real-time audit goes blind, once: the last state is kept so that an
 * unchanged blind Region is not re-alerted by every sweep, and a recovery re-arms the alert.
 */
export async function alertOnTrailChange(
  trail: TrailHealth | undefined,
  context: { accountId: string; state: StateStore; notifier: Notifier; log: Log },
): Promise<TrailAlertOutcome> {
  if (!trail) return 'unknown';
  const { state, notifier, log } = context;
  const current = trail.ok ? 'ok' : 'blind';
  const key = `${STATE_KEY}/${trail.region}`;
  let previous: string | undefined;
  try {
    previous = await state.get(key);
  } catch (error) {
    log.warn('last trail state unreadable; alerting as if it changed', { errorCode: errorCode(error) });
  }
  if (previous === current) return 'unchanged';

  if (current === 'blind') {
    const alert: Alert = {
      severity: 'high',
      title: `Real-time audit is blind in ${trail.region}`,
      resource: { kind: 'account', id: context.accountId },
      accountId: context.accountId,
      region: trail.region,
      change: trail.reason,
      remediation: 'Not remediated: trails are left to people.',
      nextStep: `Log management write events in ${trail.region} with a trail (an organization or multi-Region trail counts); until then public AMIs are found only by the daily sweep.`,
      fixCommand: `aws cloudtrail create-trail --region ${trail.region} --name ami-janitor-audit --is-multi-region-trail --s3-bucket-name <bucket> && aws cloudtrail start-logging --region ${trail.region} --name ami-janitor-audit`,
    };
    const delivery = await notifier.send(alertMessage(alert));
    if (delivery.maybeDelivered) {
      // Not recorded as alerted either: the next chance is the next sweep, a day later, so a repeat
      // then is one extra message, while recording an alert Slack dropped would keep the Region's
      // blindness out of the channel until the trail changed.
      log.error('alert delivery unconfirmed', { alert, delivery });
      return 'unconfirmed';
    }
    if (!delivery.delivered) {
      // Not recorded as alerted, so the next sweep tries again.
      log.error('alert not delivered', { alert, delivery });
      return 'not-delivered';
    }
  }
  try {
    await state.put(key, current);
  } catch (error) {
    log.warn('trail state not saved; the alert may repeat', { errorCode: errorCode(error) });
  }
  return current === 'blind' ? 'alerted' : 'recovered';
}
