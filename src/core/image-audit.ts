import { createHash } from 'node:crypto';
import type { Policy } from '../config/policy.ts';
import { errorCode, errorMessage } from '../errors.ts';
import type { ImageEvent } from '../events/image-event.ts';
import type { Caller, Finding, Image, Severity, SharePermissions } from '../model.ts';
import {
  type Alert,
  alertMessage,
  blockPublicAccessFixCommand,
  imageFixCommand,
  snapshotFixCommand,
} from '../notify/messages.ts';
import type { Notifier } from '../notify/slack.ts';
import { requiredTags } from '../rules/required-tags.ts';
import { evaluateSharing, isExposed } from '../rules/sharing.ts';
import { DAY_MS, isoDay } from '../rules/types.ts';
import { describeCaller } from './caller.ts';
import type { ImageActionsPort, Log, SharingPort } from './ports.ts';

export const CREATED_BY_TAG = 'ami-janitor:created-by';
export const CREATED_BY_SESSION_TAG = 'ami-janitor:created-by-session';
export const CREATED_AT_TAG = 'ami-janitor:created-at';
/** A digest of the exposure last alerted on, so an unchanged exposure is never alerted twice. */
export const ALERTED_EXPOSURE_TAG = 'ami-janitor:alerted-exposure';

export interface AuditPorts {
  images: Pick<ImageActionsPort, 'describeImages' | 'tagImage'>;
  sharing: SharingPort;
  notifier: Notifier;
  log: Log;
}

export interface AuditOptions {
  policy: Policy;
  /** Dry run never changes permissions; bookkeeping tags (creator, alert state) are still written. */
  dryRun: boolean;
  /** The audited account's name in Organizations, where known: alerts name it. */
  accountName?: string;
}

export type AuditStatus =
  | 'tagged'
  | 'already-tagged'
  | 'not-exposed'
  | 'alerted'
  | 'already-alerted'
  | 'alert-not-delivered'
  /** The POST timed out: Slack may have posted it. Recorded as alerted (see `auditExposure`). */
  | 'alert-unconfirmed'
  | 'skipped';

export interface AuditOutcome {
  status: AuditStatus;
  resourceId?: string;
  detail: string;
  findings: Finding[];
  tagsAdded?: Record<string, string>;
  remediation?: 'removed' | 'failed' | 'off' | 'dry-run';
}

const SEVERITY_ORDER: readonly Severity[] = ['critical', 'high', 'medium', 'low'];

/** Audits the image or snapshot one CloudTrail event touched, reading its current state from AWS. */
export async function auditImageEvent(
  event: ImageEvent,
  ports: AuditPorts,
  options: AuditOptions,
): Promise<AuditOutcome> {
  switch (event.kind) {
    case 'new-image':
      return tagNewImage(event, ports, options);
    case 'image-sharing':
    case 'image-enabled':
      return auditImageSharing(event, event.imageId, ports, options);
    case 'snapshot-sharing':
      return auditSnapshotSharing(event, event.snapshotId, ports, options);
    case 'block-public-access-disabled':
      return alertBlockPublicAccessOff(event, event.resource, ports, options);
  }
}

async function tagNewImage(
  event: ImageEvent & { kind: 'new-image' },
  ports: AuditPorts,
  options: AuditOptions,
): Promise<AuditOutcome> {
  if (!event.imageId) {
    return {
      status: 'skipped',
      detail: `${event.eventName} did not name an image yet${event.importTaskId ? ` (import task ${event.importTaskId})` : ''}`,
      findings: [],
    };
  }
  const image = await currentImage(event.imageId, ports);
  if (!image)
    return { status: 'skipped', resourceId: event.imageId, detail: 'image no longer exists', findings: [] };

  // Existing values win: a replayed event, or a creator tag set by hand, is never overwritten.
  const wanted: Record<string, string> = {
    ...creatorTags(event.caller),
    [CREATED_AT_TAG]: event.eventTime.toISOString(),
  };
  const ttl = options.policy.defaultTtlDays;
  if (ttl !== null) {
    wanted[options.policy.expiryTag.key] = isoDay(new Date(event.eventTime.getTime() + ttl * DAY_MS));
  }
  const missing = Object.fromEntries(Object.entries(wanted).filter(([key]) => image.tags[key] === undefined));
  if (Object.keys(missing).length > 0) await ports.images.tagImage(image.imageId, missing);

  const tagged = { ...image, tags: { ...image.tags, ...missing } };
  const findings = requiredTags
    .evaluate(
      tagged,
      { accountId: event.accountId, references: [], family: '', familyRank: 1, familySize: 1 },
      options.policy,
      event.eventTime,
    )
    .flatMap((verdict) =>
      verdict.kind === 'flag'
        ? [{ rule: requiredTags.id, severity: verdict.severity, reason: verdict.reason }]
        : [],
    );
  for (const finding of findings) {
    ports.log.warn('finding', {
      imageId: image.imageId,
      rule: finding.rule,
      verdict: 'flag',
      severity: finding.severity,
      reason: finding.reason,
    });
  }
  const added = Object.keys(missing);
  return {
    status: added.length > 0 ? 'tagged' : 'already-tagged',
    resourceId: image.imageId,
    detail: added.length > 0 ? `tagged ${added.join(', ')}` : 'already carries the creator tags',
    findings,
    tagsAdded: missing,
  };
}

async function auditImageSharing(
  event: ImageEvent,
  imageId: string,
  ports: AuditPorts,
  options: AuditOptions,
): Promise<AuditOutcome> {
  const image = await currentImage(imageId, ports);
  if (!image)
    return { status: 'skipped', resourceId: imageId, detail: 'image no longer exists', findings: [] };
  // The event says what changed then; a later call may already have undone it, so ask AWS now.
  const permissions = await ports.sharing.imageLaunchPermissions(imageId);
  return auditExposure(
    {
      kind: 'image',
      id: imageId,
      name: image.name,
      tags: image.tags,
      permissions,
      remove: (offending) => ports.sharing.removeImagePermissions(imageId, offending),
      fixCommand: (offending) => imageFixCommand(event.region, imageId, offending),
    },
    event,
    ports,
    options,
  );
}

async function auditSnapshotSharing(
  event: ImageEvent,
  snapshotId: string,
  ports: AuditPorts,
  options: AuditOptions,
): Promise<AuditOutcome> {
  const snapshot = await ports.sharing.describeSnapshot(snapshotId);
  if (!snapshot)
    return { status: 'skipped', resourceId: snapshotId, detail: 'snapshot no longer exists', findings: [] };
  const permissions = await ports.sharing.snapshotPermissions(snapshotId);
  return auditExposure(
    {
      kind: 'snapshot',
      id: snapshotId,
      name: snapshot.tags.Name ?? snapshot.description,
      tags: snapshot.tags,
      permissions,
      remove: (offending) => ports.sharing.removeSnapshotPermissions(snapshotId, offending),
      fixCommand: (offending) => snapshotFixCommand(event.region, snapshotId, offending),
    },
    event,
    ports,
    options,
  );
}

interface Exposed {
  kind: 'image' | 'snapshot';
  id: string;
  name: string;
  tags: Readonly<Record<string, string>>;
  permissions: SharePermissions;
  remove: (offending: SharePermissions) => Promise<void>;
  fixCommand: (offending: SharePermissions) => string | undefined;
}

async function auditExposure(
  subject: Exposed,
  event: ImageEvent,
  ports: AuditPorts,
  options: AuditOptions,
): Promise<AuditOutcome> {
  const { findings, offending } = evaluateSharing(
    subject.kind,
    subject.permissions,
    options.policy.sharing,
    event.accountId,
  );
  const previous = subject.tags[ALERTED_EXPOSURE_TAG];
  if (!isExposed(offending)) {
    // Cleared, so that the next exposure of this resource alerts again.
    if (previous !== undefined) await ports.sharing.untagResource(subject.id, [ALERTED_EXPOSURE_TAG]);
    return {
      status: 'not-exposed',
      resourceId: subject.id,
      detail: `${subject.kind} is not shared beyond the allowlist`,
      findings,
    };
  }
  const digest = exposureDigest(offending);
  const alreadyAlerted: AuditOutcome = {
    status: 'already-alerted',
    resourceId: subject.id,
    detail: 'this exact exposure was alerted before and has not changed',
    findings,
  };
  const remediate = options.policy.sharing.remediate;
  // Remediation is tried on every event, even for an exposure already alerted on: it may have
  // failed before, or been switched on since. Only the alert is deduplicated.
  if (previous === digest && !(remediate && !options.dryRun)) return alreadyAlerted;

  let remediation: AuditOutcome['remediation'] = 'off';
  let remediationText = 'Not remediated: `sharing.remediate` is off.';
  if (remediate && options.dryRun) {
    remediation = 'dry-run';
    remediationText = 'Not remediated: dry run is on (the permissions below would have been removed).';
  } else if (remediate) {
    try {
      await subject.remove(offending);
      remediation = 'removed';
      remediationText = `Removed: ${describeExposure(offending)}.`;
    } catch (error) {
      remediation = 'failed';
      remediationText = `Remediation FAILED (${errorCode(error)}): ${errorMessage(error)}`;
    }
  }
  if (previous === digest && remediation === 'failed') return { ...alreadyAlerted, remediation };

  const severity = highest(findings);
  const alert: Alert = {
    severity,
    title: `${capitalise(subject.kind)} ${subject.id} is ${offending.public ? 'public' : 'shared outside the allowlist'}`,
    resource: { kind: subject.kind, id: subject.id, ...(subject.name ? { name: subject.name } : {}) },
    accountId: event.accountId,
    ...(options.accountName ? { accountName: options.accountName } : {}),
    region: event.region,
    caller: event.caller,
    eventName: event.eventName,
    eventTime: event.eventTime.toISOString(),
    change: `${changeSummary(event)} Now exposed to: ${describeExposure(offending)}.`,
    remediation: remediationText,
    nextStep:
      remediation === 'removed'
        ? `Ask ${describeCaller(event.caller)} why it was shared; if it must be, add the account to the sharing allowlist.`
        : `Ask ${describeCaller(event.caller)} whether it must be shared; if not, run the fix command below.`,
    ...fixCommandUnlessRemediated(remediation, subject.fixCommand(offending)),
  };
  const sent = await sendAlert(alert, ports);
  if (sent.status === 'alert-not-delivered') {
    return { status: sent.status, resourceId: subject.id, detail: sent.detail, findings, remediation };
  }
  // An unconfirmed alert is recorded as alerted. Its POST timed out, which in practice means a slow
  // Slack that posts it late rather than one that drops it; the next events on an unchanged exposure
  // are mostly replays and retries of this one, the very duplicates this tag exists to silence; and
  // the whole alert is already in the error log, so it is not lost even if Slack did drop it.
  // After a successful remediation nothing is exposed any more; the state tag is for what remains.
  if (remediation === 'removed') {
    if (previous !== undefined) await ports.sharing.untagResource(subject.id, [ALERTED_EXPOSURE_TAG]);
  } else {
    await ports.sharing.tagResource(subject.id, { [ALERTED_EXPOSURE_TAG]: digest });
  }
  return { status: sent.status, resourceId: subject.id, detail: sent.detail, findings, remediation };
}

async function alertBlockPublicAccessOff(
  event: ImageEvent,
  resource: 'image' | 'snapshot',
  ports: AuditPorts,
  options: Pick<AuditOptions, 'accountName'>,
): Promise<AuditOutcome> {
  const what = resource === 'image' ? 'AMIs' : 'EBS snapshots';
  const finding: Finding = {
    rule: 'block-public-access',
    severity: 'high',
    reason: `account-level block public access for ${what} was turned off in ${event.region}`,
  };
  const alert: Alert = {
    severity: 'high',
    title: `Block public access for ${what} turned off`,
    resource: { kind: 'account', id: event.accountId },
    accountId: event.accountId,
    ...(options.accountName ? { accountName: options.accountName } : {}),
    region: event.region,
    caller: event.caller,
    eventName: event.eventName,
    eventTime: event.eventTime.toISOString(),
    change: `${event.eventName}: ${what} in ${event.region} can now be made public.`,
    remediation: 'Not remediated: account settings are left to people.',
    nextStep: `Ask ${describeCaller(event.caller)} why; unless a public ${resource} is intended, turn it back on.`,
    fixCommand: blockPublicAccessFixCommand(event.region, resource),
  };
  const sent = await sendAlert(alert, ports);
  return { status: sent.status, resourceId: event.accountId, detail: sent.detail, findings: [finding] };
}

/**
 * Sends an alert. When Slack does not take it, or may not have, the alert goes to the log whole so
 * that it is never lost, even while Slack is down; the outcome's detail says why.
 */
async function sendAlert(
  alert: Alert,
  ports: AuditPorts,
): Promise<{ status: 'alerted' | 'alert-not-delivered' | 'alert-unconfirmed'; detail: string }> {
  const delivery = await ports.notifier.send(alertMessage(alert));
  if (delivery.delivered) return { status: 'alerted', detail: alert.title };
  if (delivery.maybeDelivered) {
    ports.log.error('alert delivery unconfirmed', { alert, delivery });
    return {
      status: 'alert-unconfirmed',
      detail: `${alert.title}; Slack may not have posted it (${delivery.error ?? 'no answer'})`,
    };
  }
  ports.log.error('alert not delivered', { alert, delivery });
  return { status: 'alert-not-delivered', detail: delivery.error ?? 'Slack did not accept the alert' };
}

function fixCommandUnlessRemediated(remediation: AuditOutcome['remediation'], command: string | undefined) {
  return remediation === 'removed' || command === undefined ? {} : { fixCommand: command };
}

async function currentImage(imageId: string, ports: AuditPorts): Promise<Image | undefined> {
  const [image] = await ports.images.describeImages([imageId]);
  return image;
}

/** Stable across the order AWS lists permissions in, so only a real change alerts again. */
export function exposureDigest(exposure: SharePermissions): string {
  const canonical = JSON.stringify([
    exposure.public,
    [...exposure.accounts].sort(),
    [...exposure.organizations].sort(),
    [...exposure.organizationalUnits].sort(),
  ]);
  return createHash('sha256').update(canonical).digest('hex').slice(0, 32);
}

export function describeExposure(exposure: SharePermissions): string {
  return [
    ...(exposure.public ? ['everyone (public)'] : []),
    ...exposure.accounts.map((id) => `account ${id}`),
    ...exposure.organizations.map((arn) => `organization ${arn}`),
    ...exposure.organizationalUnits.map((arn) => `OU ${arn}`),
  ].join(', ');
}

function changeSummary(event: ImageEvent): string {
  if (event.kind === 'image-sharing' || event.kind === 'snapshot-sharing') {
    const added = describeExposure(event.added);
    const removed = describeExposure(event.removed);
    return `${event.eventName} ${[added && `added ${added}`, removed && `removed ${removed}`].filter(Boolean).join('; ') || 'changed permissions'}.`;
  }
  return `${event.eventName}.`;
}

function highest(findings: readonly Finding[]): Severity {
  return (
    SEVERITY_ORDER.find((severity) => findings.some((finding) => finding.severity === severity)) ?? 'high'
  );
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function creatorTags(caller: Caller): Record<string, string> {
  return {
    [CREATED_BY_TAG]: truncateTag(caller.arn),
    ...(caller.sessionName ? { [CREATED_BY_SESSION_TAG]: truncateTag(caller.sessionName) } : {}),
  };
}

/** EC2 tag values are at most 256 characters. */
function truncateTag(value: string): string {
  return value.length <= 256 ? value : value.slice(0, 256);
}
