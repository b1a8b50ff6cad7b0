import { printable } from '../text.ts';
import type {
  ContextBlock,
  DividerBlock,
  HeaderBlock,
  MrkdwnObject,
  SectionBlock,
  SlackBlock,
  SlackMessage,
} from './slack.ts';

/**
 * Block constructors that enforce Slack's limits. Slack rejects a whole message (400
 * invalid_blocks) when one block is over a limit, and a rejected alert is worse than a clipped one.
 */

export const SLACK_LIMITS = Object.freeze({
  blocks: 50,
  headerText: 150,
  sectionText: 3000,
  sectionFields: 10,
  fieldText: 2000,
  contextElements: 10,
  contextText: 3000,
  /** Slack accepts 40,000; a notification shows a line or two, so keep the fallback short. */
  fallbackText: 1000,
});

/**
 * Escapes the three characters Slack's mrkdwn gives meaning to. Without it a name or a user
 * agent could carry a link (`<https://evil|click>`) or a mention (`<!channel>`). Control, line
 * separator and bidi characters become U+FFFD first, so a value cannot start a line of its own
 * (a forged "*Remediation*" field) or read backwards.
 */
export function escapeMrkdwn(text: string): string {
  return printable(text).replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

/**
 * Clips to `max` characters with a trailing '…'. Never leaves half an escape (`&am`) or half a
 * surrogate pair behind, either of which Slack would render as garbage.
 */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  let head = text.slice(0, Math.max(0, max - 1));
  const last = head.charCodeAt(head.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) head = head.slice(0, -1);
  head = head.replace(/&[a-z]{0,3}$/, '');
  return `${head}…`;
}

export function mrkdwn(text: string, max: number = SLACK_LIMITS.sectionText): MrkdwnObject {
  return { type: 'mrkdwn', text: truncate(text, max) };
}

export function header(text: string): HeaderBlock {
  return {
    type: 'header',
    // plain_text is not escaped, but a header is one line of what it says.
    text: { type: 'plain_text', text: truncate(printable(text), SLACK_LIMITS.headerText), emoji: true },
  };
}

/** `text` and every field must already be escaped mrkdwn; empty fields are dropped. */
export function section(text: string | undefined, fields: readonly string[] = []): SectionBlock {
  const kept = fields
    .filter((field) => field.length > 0)
    .slice(0, SLACK_LIMITS.sectionFields)
    .map((field) => mrkdwn(field, SLACK_LIMITS.fieldText));
  if (text === undefined || text.length === 0) {
    return kept.length > 0 ? { type: 'section', fields: kept } : { type: 'section', text: mrkdwn(' ') };
  }
  return kept.length > 0
    ? { type: 'section', text: mrkdwn(text), fields: kept }
    : { type: 'section', text: mrkdwn(text) };
}

export function context(...elements: string[]): ContextBlock {
  return {
    type: 'context',
    elements: elements
      .filter((element) => element.length > 0)
      .slice(0, SLACK_LIMITS.contextElements)
      .map((element) => mrkdwn(element, SLACK_LIMITS.contextText)),
  };
}

export function divider(): DividerBlock {
  return { type: 'divider' };
}

/** Keeps the message under 50 blocks; what does not fit is counted in a last context block. */
export function message(text: string, blocks: readonly SlackBlock[]): SlackMessage {
  const fallback = truncate(text, SLACK_LIMITS.fallbackText);
  if (blocks.length <= SLACK_LIMITS.blocks) return { text: fallback, blocks: [...blocks] };
  const kept = blocks.slice(0, SLACK_LIMITS.blocks - 1);
  const omitted = blocks.length - kept.length;
  return { text: fallback, blocks: [...kept, context(`… ${omitted} more blocks not shown`)] };
}

/** Room kept for the "…and N more" line of a list. */
const MORE_LINE_RESERVE = 32;

/**
 * A titled bullet list that fits one section: at most `maxItems` lines, each clipped to
 * `maxItemChars`, and never more than a section's characters, with the rest counted. Every item
 * must already be escaped mrkdwn.
 */
export function titledList(
  title: string,
  items: readonly string[],
  maxItems: number,
  maxItemChars: number,
): string {
  const lines = [title];
  let length = title.length;
  for (const item of items) {
    if (lines.length - 1 >= maxItems) break;
    const line = truncate(item, maxItemChars);
    if (length + 1 + line.length + MORE_LINE_RESERVE > SLACK_LIMITS.sectionText) break;
    lines.push(line);
    length += 1 + line.length;
  }
  const more = items.length - (lines.length - 1);
  if (more > 0) lines.push(`…and ${formatCount(more)} more`);
  return lines.join('\n');
}

export function formatCount(value: number): string {
  return value.toLocaleString('en-US');
}

export function formatGiB(value: number): string {
  return `${value.toLocaleString('en-US', { maximumFractionDigits: 2 })} GiB`;
}

export function formatUsd(value: number, maxFractionDigits = 2): string {
  return `$${value.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: maxFractionDigits })}`;
}
