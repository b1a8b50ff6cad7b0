import { createHash } from 'node:crypto';
import type { Policy } from '../config/policy.ts';
import { errorCode } from '../errors.ts';
import { digestMessage, digestPlainText } from '../notify/digest.ts';
import type { Notifier } from '../notify/slack.ts';
import type { Log, StateStore } from './ports.ts';
import type { RunReport } from './report.ts';

const STATE_KEY = 'digest';

export type DigestOutcome = 'sent' | 'unchanged' | 'disabled' | 'not-delivered' | 'unconfirmed';

/**
 * What would make a person care about a sweep, hashed: which actions ran on what and how they
 * ended, what is scheduled or deferred, which findings stand, and what failed. Timestamps, the
 * run's clock and durations are left out, so an idle account reads the same every day; so are
 * plain counts such as images examined, which move with every build.
 */
export function digestFingerprint(report: RunReport): string {
  // Each entry is a JSON tuple, sorted, so the order AWS lists things in never reads as a change.
  const entries = (values: readonly (readonly (string | undefined)[])[]) =>
    values.map((value) => JSON.stringify(value)).sort();
  const canonical = {
    accountId: report.accountId,
    region: report.region,
    mode: report.mode,
    dryRun: report.dryRun,
    actions: entries(
      report.actions.map((o) => [o.action.kind, o.action.imageId, o.status, o.errorCode ?? '']),
    ),
    snapshotActions: entries(
      report.snapshotActions.map((o) => [o.action.kind, o.action.snapshotId, o.status, o.errorCode ?? '']),
    ),
    scheduled: entries(report.scheduled.map((entry) => [entry.imageId])),
    snapshotScheduled: entries(report.snapshotScheduled.map((entry) => [entry.snapshotId])),
    deferred: entries(report.deferred.map((entry) => [entry.imageId])),
    snapshotDeferred: entries(report.snapshotDeferred.map((entry) => [entry.snapshotId])),
    findings: entries(report.findings.map((f) => [f.imageId, f.rule, f.severity])),
    accountFindings: entries(report.accountFindings.map((f) => [f.resourceId, f.rule, f.severity])),
    failures: entries(
      report.actions.flatMap((o) =>
        o.snapshots.filter((s) => s.status === 'failed').map((s) => [o.action.imageId, s.snapshotId]),
      ),
    ),
  };
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

/** Nothing acted on, scheduled, deferred, found or failed: a digest would only repeat the counts. */
export function reportHasNews(report: RunReport): boolean {
  return (
    report.actions.length > 0 ||
    report.snapshotActions.length > 0 ||
    report.scheduled.length > 0 ||
    report.snapshotScheduled.length > 0 ||
    report.deferred.length > 0 ||
    report.snapshotDeferred.length > 0 ||
    report.findings.length > 0 ||
    report.accountFindings.length > 0
  );
}

/**
 * Sends the sweep digest as the policy asks: `never`, `always`, or (`changes`) only when the
 * fingerprint differs from the last one delivered for the Region. A digest Slack did not take is
 * logged in full at error level and not remembered, so the next sweep sends it again.
 */
export async function sendDigest(
  report: RunReport,
  context: { policy: Pick<Policy, 'digest'>; state: StateStore; notifier: Notifier; log: Log },
): Promise<DigestOutcome> {
  const { policy, state, notifier, log } = context;
  if (policy.digest === 'never') return 'disabled';
  const key = `${STATE_KEY}/${report.region}`;
  const fingerprint = digestFingerprint(report);

  if (policy.digest === 'changes') {
    let previous: string | undefined;
    try {
      previous = await state.get(key);
    } catch (error) {
      log.warn('last digest unreadable; sending as if it changed', { errorCode: errorCode(error) });
    }
    if (previous === fingerprint) return 'unchanged';
    if (!reportHasNews(report)) {
      // Remembered all the same, so findings that come back after a quiet spell are news again.
      await remember(state, key, fingerprint, log);
      return 'unchanged';
    }
  }

  const digest = digestMessage(report);
  const delivery = await notifier.send(digest);
  if (delivery.maybeDelivered) {
    // A digest whose POST timed out is not remembered either. The next chance to send it is the
    // next sweep, a day later: repeating it then costs one extra message, while remembering one
    // Slack dropped would keep its removal dates from the channel until something else changed.
    log.error('sweep digest delivery unconfirmed', { delivery, digest: digestPlainText(digest) });
    return 'unconfirmed';
  }
  if (!delivery.delivered) {
    // Not remembered, so the next sweep tries again; meanwhile the log holds what it said.
    log.error('sweep digest not delivered', { delivery, digest: digestPlainText(digest) });
    return 'not-delivered';
  }
  await remember(state, key, fingerprint, log);
  return 'sent';
}

async function remember(state: StateStore, key: string, fingerprint: string, log: Log): Promise<void> {
  try {
    await state.put(key, fingerprint);
  } catch (error) {
    log.warn('digest state not saved; the digest may repeat', { errorCode: errorCode(error) });
  }
}
