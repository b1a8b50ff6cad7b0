import type { OrgDigest } from '../core/org-digest.ts';
import {
  context,
  formatCount as count,
  divider,
  escapeMrkdwn,
  formatGiB as gib,
  header,
  message,
  section,
  titledList,
  formatUsd as usd,
} from './blocks.ts';
import type { SlackBlock, SlackMessage } from './slack.ts';

/**
 * The organisation digest: one Block Kit message per run of the state machine, over every target
 * account and Region it swept. Pure: the digest in, the message out. The Region digest
 * (digest.ts) lists images one by one; this one stays at the level of accounts, since an
 * organisation's images would not fit a message, and points at the run reports in the log.
 */

/** Accounts shown in "Most to reclaim"; the rest are counted. */
export const ORG_DIGEST_MAX_ACCOUNTS = 10;
/** Accounts shown under "Failures by account"; the rest are counted. */
export const ORG_DIGEST_MAX_FAILED_ACCOUNTS = 10;
const MAX_ITEM_CHARS = 600;

export function orgDigestMessage(digest: OrgDigest): SlackMessage {
  const blocks: SlackBlock[] = [
    header(
      `ami-janitor sweep: ${plural(digest.accounts, 'account')}, ${plural(digest.regions, 'Region')}${digest.dryRun ? ' (dry run)' : ''}`,
    ),
    summarySection(digest),
    context(
      'The saving is an estimate and an upper bound: snapshots are incremental, so deleting one frees only the blocks no other snapshot still holds. Removals kept in a Recycle Bin are billed until their retention ends.',
    ),
  ];
  if (digest.listingError) {
    const cause = digest.listingError.cause ? `: ${escapeMrkdwn(digest.listingError.cause)}` : '';
    blocks.push(
      section(
        `:x: *The targets could not be listed*, so nothing was swept: \`${escapeMrkdwn(digest.listingError.error)}\`${cause}`,
      ),
    );
  }
  blocks.push(divider());
  if (digest.mostToReclaim.length > 0) {
    blocks.push(
      section(
        list(
          `*Most to reclaim* (${count(digest.mostToReclaim.length)} account${digest.mostToReclaim.length === 1 ? '' : 's'})`,
          digest.mostToReclaim.map(
            (entry) =>
              `• ${accountLabel(entry.accountId, entry.accountName)} — ${reclaimText(entry.reclaimedGiB, entry.reclaimableGiB)} · ${usd(entry.savingUsd)}/month (${plural(entry.regions, 'Region')})`,
          ),
          ORG_DIGEST_MAX_ACCOUNTS,
        ),
      ),
    );
  }
  if (digest.failures.length > 0) {
    blocks.push(
      section(
        list(
          `:x: *Failures by account* (${count(digest.failures.length)})`,
          digest.failures.map(
            (entry) =>
              `• ${accountLabel(entry.accountId, entry.accountName)} — ${entry.problems
                .map((problem) => `${escapeMrkdwn(problem.region)}: ${problemText(problem)}`)
                .join('; ')}`,
          ),
          ORG_DIGEST_MAX_FAILED_ACCOUNTS,
        ),
      ),
    );
  }
  blocks.push(
    context(
      `Sent by ami-janitor · run ${escapeMrkdwn(digest.runId)} · as of ${escapeMrkdwn(digest.asOf)} · each target's run report, every decision in it, is in the sweep-target log`,
    ),
  );
  return message(fallbackText(digest), blocks);
}

function summarySection(digest: OrgDigest): SlackBlock {
  const t = digest.totals;
  const targets = [
    '*Targets*',
    `${count(digest.targets.done)} swept · ${count(digest.targets.failed)} failed`,
    ...(digest.targets.stopped > 0 ? [`${count(digest.targets.stopped)} unfinished`] : []),
  ];
  const images = [
    '*Images*',
    `${count(t.images)} examined · ${count(t.eligible)} eligible`,
    `${count(t.marked)} marked · ${count(t.deregistered)} deregistered · ${count(t.failed)} failed`,
    ...(t.notReached > 0 ? [`${count(t.notReached)} not reached`] : []),
  ];
  const snapshots = [
    '*Snapshots*',
    `${count(t.snapshots)} examined · ${count(t.orphans)} orphans`,
    `${count(t.snapshotsDeleted)} deleted · ${count(t.snapshotsFailed)} failed`,
  ];
  return section(undefined, [
    targets.join('\n'),
    images.join('\n'),
    snapshots.join('\n'),
    `*Reclaimed*\n${reclaimText(digest.reclaimedGiB, digest.reclaimableGiB).replace(' · ', '\n')}`,
    `*Estimated monthly saving*\n${usd(digest.savingUsd)} per month (upper bound)`,
    `*Findings*\n${count(t.findings)}`,
  ]);
}

function problemText(problem: OrgDigest['failures'][number]['problems'][number]): string {
  const detail = escapeMrkdwn(problem.detail);
  if (problem.kind === 'failed') {
    const code = `\`${escapeMrkdwn(problem.code ?? 'UnknownError')}\``;
    return detail ? `${code} ${detail}` : code;
  }
  if (problem.kind === 'stopped') return `unfinished: ${detail}`;
  return detail;
}

function reclaimText(reclaimedGiB: number, reclaimableGiB: number): string {
  const parts: string[] = [];
  if (reclaimedGiB > 0 || reclaimableGiB === 0) parts.push(`${gib(reclaimedGiB)} reclaimed`);
  if (reclaimableGiB > 0) parts.push(`would reclaim ${gib(reclaimableGiB)}`);
  return parts.join(' · ');
}

function accountLabel(accountId: string, name: string | undefined): string {
  return name ? `\`${escapeMrkdwn(accountId)}\` ${escapeMrkdwn(name)}` : `\`${escapeMrkdwn(accountId)}\``;
}

/**
 * A titled bullet list that fits one section: at most `maxItems` lines and never more than a
 * section's characters, with the rest counted. Every item must already be escaped mrkdwn.
 */
function list(title: string, items: readonly string[], maxItems: number): string {
  return titledList(title, items, maxItems, MAX_ITEM_CHARS);
}

function fallbackText(digest: OrgDigest): string {
  const t = digest.totals;
  return escapeMrkdwn(
    `ami-janitor sweep of ${plural(digest.targets.total, 'target')}${digest.dryRun ? ' (dry run)' : ''}: ${count(digest.targets.done)} swept, ${count(digest.targets.failed)} failed; ${count(t.deregistered)} images deregistered, ${count(t.snapshotsDeleted)} snapshots deleted, ${reclaimText(digest.reclaimedGiB, digest.reclaimableGiB)}; estimated saving ${usd(digest.savingUsd)}/month (upper bound)`,
  );
}

function plural(value: number, noun: string): string {
  return `${count(value)} ${noun}${value === 1 ? '' : 's'}`;
}
