import type { Caller, Severity, SharePermissions } from '../model.ts';
import { context, divider, escapeMrkdwn, header, message, SLACK_LIMITS, section } from './blocks.ts';
import type { SlackBlock, SlackMessage } from './slack.ts';

/**
 * Block Kit builders: pure functions from plain data to a Slack message. Every string in an Alert
 * is treated as plain text and escaped, so a resource name or a user agent can never turn into a
 * link or a mention; `*bold*` and `_italic_` written by the caller still render.
 */

export type AlertResourceKind = 'image' | 'snapshot' | 'account';

export interface Alert {
  severity: Severity;
  title: string;
  resource: { kind: AlertResourceKind; id: string; name?: string };
  accountId: string;
  /** The account's name in Organizations, where known. */
  accountName?: string;
  region: string;
  caller?: Caller;
  eventName?: string;
  eventTime?: string;
  /** What happened, e.g. "Launch permission added for everyone (group all)". */
  change: string;
  /** What ami-janitor did about it, e.g. "Removed automatically" or "Not remediated (remediate: false)". */
  remediation: string;
  nextStep: string;
  /** One shell command that undoes the exposure; see the *FixCommand helpers below. */
  fixCommand?: string;
}

const SEVERITY_MARKER: Readonly<Record<Severity, string>> = {
  critical: ':rotating_light:',
  high: ':warning:',
  medium: ':large_orange_diamond:',
  low: ':information_source:',
};

const KIND_LABEL: Readonly<Record<AlertResourceKind, string>> = {
  image: 'Image',
  snapshot: 'Snapshot',
  account: 'Account',
};

export function alertMessage(alert: Alert): SlackMessage {
  const severity = alert.severity.toUpperCase();
  const blocks: SlackBlock[] = [
    // plain_text: Slack shows it verbatim, so the title is not escaped here.
    header(`${SEVERITY_MARKER[alert.severity]} ${severity}: ${alert.title}`),
    section(resourceLine(alert), [
      `*Account*\n${escapeMrkdwn(alert.accountName ? `${alert.accountId} (${alert.accountName})` : alert.accountId)}`,
      `*Region*\n${escapeMrkdwn(alert.region)}`,
    ]),
    whoSection(alert),
    divider(),
    section(`*What changed*\n${escapeMrkdwn(alert.change)}`),
    section(`*Remediation*\n${escapeMrkdwn(alert.remediation)}`),
    section(`*Next step*\n${escapeMrkdwn(alert.nextStep)}`),
  ];
  if (alert.fixCommand) blocks.push(fixSection(alert.fixCommand));
  blocks.push(
    section(`<${consoleUrl(alert.region, alert.resource)}|${consoleLinkLabel(alert.resource.kind)}>`),
    context(`Sent by ami-janitor · ${escapeMrkdwn(alert.accountId)}/${escapeMrkdwn(alert.region)}`),
  );
  return message(fallbackText(alert), blocks);
}

function resourceLine(alert: Alert): string {
  const { kind, id, name } = alert.resource;
  const label = `*${KIND_LABEL[kind]}* \`${escapeMrkdwn(id)}\``;
  return name ? `${label} ${escapeMrkdwn(name)}` : label;
}

function whoSection(alert: Alert): SlackBlock {
  const { caller } = alert;
  const fields: string[] = [];
  if (caller) {
    const session = caller.sessionName ? `\nsession ${escapeMrkdwn(caller.sessionName)}` : '';
    fields.push(`*Caller*\n${escapeMrkdwn(caller.arn)}${session}`);
    fields.push(`*Identity type*\n${escapeMrkdwn(caller.type)}`);
    if (caller.sourceIp) fields.push(`*Source IP*\n${escapeMrkdwn(caller.sourceIp)}`);
    if (caller.userAgent) fields.push(`*User agent*\n${escapeMrkdwn(caller.userAgent)}`);
  }
  if (alert.eventName) fields.push(`*Event*\n${escapeMrkdwn(alert.eventName)}`);
  if (alert.eventTime) fields.push(`*Time*\n${escapeMrkdwn(alert.eventTime)}`);
  return section(caller ? '*Who*' : '*Who*\nUnknown: the alert did not come from a CloudTrail event', fields);
}

function fixSection(command: string): SlackBlock {
  const block = `*Fix*\n\`\`\`${escapeMrkdwn(command)}\`\`\``;
  // A clipped command would run and do the wrong thing; better to show none than half of one.
  if (block.length <= SLACK_LIMITS.sectionText) return section(block);
  return section(
    `*Fix*\nThe fix command is ${command.length} characters long, too long for Slack; see the run log.`,
  );
}

function consoleLinkLabel(kind: AlertResourceKind): string {
  return kind === 'account'
    ? 'Open the EC2 dashboard (Account attributes → Data protection and security)'
    : `Open the ${kind} in the EC2 console`;
}

function fallbackText(alert: Alert): string {
  const { kind, id, name } = alert.resource;
  const where = `${alert.accountId}/${alert.region}`;
  const what = kind === 'account' ? '' : ` ${kind} ${id}${name ? ` (${name})` : ''}`;
  // `text` is rendered as mrkdwn in notifications too, so it is escaped like the blocks.
  return escapeMrkdwn(`${alert.severity.toUpperCase()}:${what} in ${where}: ${alert.title}`);
}

/** Partitions whose console lives on its own domain; the aws partition has a host per Region. */
export function consoleHost(region: string): string {
  if (region.startsWith('cn-')) return 'console.amazonaws.cn';
  if (region.startsWith('us-gov-')) return 'console.amazonaws-us-gov.com';
  return /^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)
    ? `${region}.console.aws.amazon.com`
    : 'console.aws.amazon.com';
}

/** Deep link to the resource in the EC2 console; account-level settings live on the dashboard. */
export function consoleUrl(region: string, resource: { kind: AlertResourceKind; id: string }): string {
  const base = `https://${consoleHost(region)}/ec2/home?region=${encodeURIComponent(region)}`;
  const id = encodeURIComponent(resource.id);
  switch (resource.kind) {
    case 'image':
      return `${base}#ImageDetails:imageId=${id}`;
    case 'snapshot':
      return `${base}#SnapshotDetails:snapshotId=${id}`;
    case 'account':
      return `${base}#Home:`;
  }
}

/**
 * `aws ec2 modify-image-attribute` that removes exactly the offending launch permissions, or
 * undefined when there is nothing to remove.
 */
export function imageFixCommand(
  region: string,
  imageId: string,
  offending: SharePermissions,
): string | undefined {
  const items = [
    ...(offending.public ? ['Group=all'] : []),
    ...unique(offending.accounts).map((id) => `UserId=${id}`),
    ...unique(offending.organizations).map((arn) => `OrganizationArn=${arn}`),
    ...unique(offending.organizationalUnits).map((arn) => `OrganizationalUnitArn=${arn}`),
  ];
  if (items.length === 0) return undefined;
  return [
    'aws ec2 modify-image-attribute',
    `--region ${shellWord(region)}`,
    `--image-id ${shellWord(imageId)}`,
    `--launch-permission ${shorthand(items)}`,
  ].join(' ');
}

/**
 * `aws ec2 modify-snapshot-attribute` that removes exactly the offending create-volume
 * permissions, or undefined when there is nothing to remove. Snapshots cannot be shared with an
 * organization or OU (createVolumePermission has only Group and UserId), so those are ignored.
 */
export function snapshotFixCommand(
  region: string,
  snapshotId: string,
  offending: SharePermissions,
): string | undefined {
  const items = [
    ...(offending.public ? ['Group=all'] : []),
    ...unique(offending.accounts).map((id) => `UserId=${id}`),
  ];
  if (items.length === 0) return undefined;
  return [
    'aws ec2 modify-snapshot-attribute',
    `--region ${shellWord(region)}`,
    `--snapshot-id ${shellWord(snapshotId)}`,
    `--create-volume-permission ${shorthand(items)}`,
  ].join(' ');
}

/**
 * Turns account-level block public access back on. For AMIs `block-new-sharing` is the only
 * blocking state; for snapshots `block-all-sharing` also hides snapshots that are already public.
 */
export function blockPublicAccessFixCommand(region: string, kind: 'image' | 'snapshot'): string {
  return kind === 'image'
    ? `aws ec2 enable-image-block-public-access --region ${shellWord(region)} --image-block-public-access-state block-new-sharing`
    : `aws ec2 enable-snapshot-block-public-access --region ${shellWord(region)} --state block-all-sharing`;
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}

/** CLI shorthand `Remove=[{...},{...}]`, quoted so that zsh does not glob the brackets. */
function shorthand(items: readonly string[]): string {
  return shellQuote(`Remove=[${items.map((item) => `{${item}}`).join(',')}]`);
}

/**
 * Ids come from AWS and are plain tokens; should one ever hold something else, single quotes
 * keep a pasted command from running anything but the CLI.
 */
function shellWord(value: string): string {
  return /^[A-Za-z0-9_.:/-]+$/.test(value) ? value : singleQuote(value);
}

function shellQuote(value: string): string {
  return /^[A-Za-z0-9_.:/=,{}[\]-]+$/.test(value) ? `"${value}"` : singleQuote(value);
}

function singleQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
