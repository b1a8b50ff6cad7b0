import { createHash } from 'node:crypto';
import type { Policy } from '../config/policy.ts';
import { errorCode } from '../errors.ts';
import { digestPlainText } from '../notify/digest.ts';
import { orgDigestMessage } from '../notify/org-digest.ts';
import type { Notifier } from '../notify/slack.ts';
import { type DigestOutcome, digestFingerprint, reportHasNews } from './digest.ts';
import type { Log, StateStore } from './ports.ts';
import type { RunReport, RunTotals } from './report.ts';
import type { ResolvedTarget } from './targets.ts';

/**
 * The organisation digest: one Slack message per run of the state machine, built from each
 * target's compact summary. Step Functions caps a state's data at 256 KB, so a target's whole run
 * report never leaves its sweep-target invocation (it goes to that function's log); what travels
 * is a summary of a few hundred bytes, with a fingerprint of the report for the digest's dedup.
 */

/** The counters a summary carries; the run report in the sweep-target log has every one. */
export const SUMMARY_TOTALS = [
  'images',
  'eligible',
  'marked',
  'deregistered',
  'failed',
  'notReached',
  'snapshots',
  'orphans',
  'snapshotsDeleted',
  'snapshotsFailed',
  'findings',
] as const satisfies readonly (keyof RunTotals)[];

export type SummaryTotals = Pick<RunTotals, (typeof SUMMARY_TOTALS)[number]>;

/**
 * `continue`: the invocation ran out of time and hands on; `done`: the run is complete;
 * `stopped`: still unfinished after the last invocation a run may take.
 */
export type TargetStatus = 'done' | 'continue' | 'stopped';

export interface TargetSummary {
  status: TargetStatus;
  accountId: string;
  region: string;
  accountName?: string;
  dryRun: boolean;
  /** Invocations the run has taken so far. */
  invocations: number;
  totals: SummaryTotals;
  reclaimedGiB: number;
  reclaimableGiB: number;
  savingUsd: number;
  /** The start of digestFingerprint(report): enough to tell runs apart, small enough for the payload. */
  fingerprint: string;
  /** Anything acted on, scheduled, deferred or found: what makes a digest worth sending. */
  news: boolean;
}

/** What the state machine's RecordFailure state makes of a target that failed after its retries. */
export interface FailedTarget {
  status: 'failed';
  accountId: string;
  region: string;
  accountName?: string;
  /** The error's name, as Step Functions reports it (the Lambda error type, or States.Timeout, ...). */
  error: string;
  /** Its message, or for a Lambda error the JSON Lambda reports. */
  cause?: string;
}

export type TargetResult = TargetSummary | FailedTarget;

const FINGERPRINT_CHARS = 16;
/** An error's message: enough to act on, small enough for the payload of hundreds of targets. */
export const MAX_REASON_CHARS = 200;
/** Organizations allows 50 characters; a longer name only comes from elsewhere. */
const MAX_ACCOUNT_NAME_CHARS = 64;

/** The compact summary of one target's run report (the report after continueReport). */
export function summarizeTarget(
  report: RunReport,
  target: ResolvedTarget,
  status: TargetStatus,
): TargetSummary {
  const totals = Object.fromEntries(SUMMARY_TOTALS.map((key) => [key, report.totals[key]])) as SummaryTotals;
  const invocations = report.run?.invocation ?? 1;
  return {
    status,
    accountId: target.accountId,
    region: target.region,
    ...(target.accountName ? { accountName: clip(target.accountName, MAX_ACCOUNT_NAME_CHARS) } : {}),
    dryRun: report.dryRun,
    invocations,
    totals,
    reclaimedGiB: report.cost.reclaimedGiB,
    reclaimableGiB: report.cost.reclaimableGiB,
    savingUsd: report.cost.estimatedMonthlySavingUsd,
    fingerprint: digestFingerprint(report).slice(0, FINGERPRINT_CHARS),
    // A run that took several invocations did something in the earlier ones.
    news: reportHasNews(report) || invocations > 1,
  };
}

/** The input of the aggregate step: the run, and every target's result. */
export interface OrgRun {
  runId: string;
  asOf: string;
  results: readonly TargetResult[];
  /** Set when the targets could not be listed, so nothing was swept. */
  listingError?: { error: string; cause?: string | undefined };
}

export interface AccountReclaim {
  accountId: string;
  accountName?: string;
  regions: number;
  reclaimedGiB: number;
  reclaimableGiB: number;
  savingUsd: number;
}

/** What went wrong in one Region of an account, as the digest says it. */
export interface TargetProblem {
  region: string;
  kind: 'failed' | 'stopped' | 'actions-failed';
  /** The error's name, for a failed target. */
  code?: string;
  detail: string;
}

export interface AccountFailures {
  accountId: string;
  accountName?: string;
  problems: TargetProblem[];
}

/** Everything the organisation digest shows, computed from the summaries. */
export interface OrgDigest {
  runId: string;
  asOf: string;
  /** Any target swept in dry run (the deployment's and the policy's switch apply to all alike). */
  dryRun: boolean;
  targets: { total: number; done: number; stopped: number; failed: number };
  accounts: number;
  regions: number;
  totals: SummaryTotals;
  reclaimedGiB: number;
  reclaimableGiB: number;
  savingUsd: number;
  /** Accounts by GiB reclaimed and reclaimable, most first; those with nothing are left out. */
  mostToReclaim: AccountReclaim[];
  failures: AccountFailures[];
  listingError?: { error: string; cause?: string };
}

export function isFailed(result: TargetResult): result is FailedTarget {
  return result.status === 'failed';
}

export function buildOrgDigest(run: OrgRun): OrgDigest {
  const names = new Map<string, string>();
  for (const result of run.results) if (result.accountName) names.set(result.accountId, result.accountName);
  const named = (accountId: string) => {
    const name = names.get(accountId);
    return name ? { accountName: name } : {};
  };
  const swept = run.results.filter((result): result is TargetSummary => !isFailed(result));
  const totals = Object.fromEntries(
    SUMMARY_TOTALS.map((key) => [key, swept.reduce((sum, summary) => sum + (summary.totals[key] ?? 0), 0)]),
  ) as SummaryTotals;

  const byAccount = new Map<string, AccountReclaim>();
  for (const summary of swept) {
    const entry = byAccount.get(summary.accountId) ?? {
      accountId: summary.accountId,
      ...named(summary.accountId),
      regions: 0,
      reclaimedGiB: 0,
      reclaimableGiB: 0,
      savingUsd: 0,
    };
    entry.regions += 1;
    entry.reclaimedGiB = round(entry.reclaimedGiB + summary.reclaimedGiB);
    entry.reclaimableGiB = round(entry.reclaimableGiB + summary.reclaimableGiB);
    entry.savingUsd = round(entry.savingUsd + summary.savingUsd);
    byAccount.set(summary.accountId, entry);
  }
  const mostToReclaim = [...byAccount.values()]
    .filter((entry) => entry.reclaimedGiB + entry.reclaimableGiB > 0 || entry.savingUsd > 0)
    .sort(
      (a, b) =>
        b.reclaimedGiB + b.reclaimableGiB - (a.reclaimedGiB + a.reclaimableGiB) ||
        b.savingUsd - a.savingUsd ||
        a.accountId.localeCompare(b.accountId),
    );

  const problems = new Map<string, TargetProblem[]>();
  const add = (accountId: string, problem: TargetProblem) =>
    problems.set(accountId, [...(problems.get(accountId) ?? []), problem]);
  for (const result of run.results) {
    if (isFailed(result)) {
      add(result.accountId, {
        region: result.region,
        kind: 'failed',
        code: result.error,
        detail: result.cause ? causeText(result.cause) : '',
      });
      continue;
    }
    if (result.status === 'stopped') {
      add(result.accountId, {
        region: result.region,
        kind: 'stopped',
        detail: `not finished after ${result.invocations} invocations; the next run starts afresh`,
      });
    }
    const failedActions = result.totals.failed + result.totals.snapshotsFailed;
    if (failedActions > 0) {
      add(result.accountId, {
        region: result.region,
        kind: 'actions-failed',
        detail: `${failedActions} action${failedActions === 1 ? '' : 's'} failed (the run report in the log names them)`,
      });
    }
  }
  const failures = [...problems]
    .map(([accountId, list]) => ({
      accountId,
      ...named(accountId),
      problems: list.sort((a, b) => a.region.localeCompare(b.region)),
    }))
    .sort((a, b) => b.problems.length - a.problems.length || a.accountId.localeCompare(b.accountId));

  const reclaimedGiB = round(swept.reduce((sum, summary) => sum + summary.reclaimedGiB, 0));
  const reclaimableGiB = round(swept.reduce((sum, summary) => sum + summary.reclaimableGiB, 0));
  return {
    runId: run.runId,
    asOf: run.asOf,
    dryRun: swept.some((summary) => summary.dryRun),
    targets: {
      total: run.results.length,
      done: swept.filter((summary) => summary.status === 'done').length,
      stopped: swept.filter((summary) => summary.status !== 'done').length,
      failed: run.results.length - swept.length,
    },
    accounts: new Set(run.results.map((result) => result.accountId)).size,
    regions: new Set(run.results.map((result) => result.region)).size,
    totals,
    reclaimedGiB,
    reclaimableGiB,
    savingUsd: round(swept.reduce((sum, summary) => sum + summary.savingUsd, 0)),
    mostToReclaim,
    failures,
    ...(run.listingError
      ? {
          listingError: {
            error: run.listingError.error,
            ...(run.listingError.cause ? { cause: causeText(run.listingError.cause) } : {}),
          },
        }
      : {}),
  };
}

/**
 * What would make a person care about the run, hashed: each target's report fingerprint, status
 * and failure, in a stable order. Counts and clocks are left out, as the Region digest does, so an
 * idle organisation reads the same every day.
 */
export function orgFingerprint(run: OrgRun): string {
  const entries = run.results
    .map((result) =>
      JSON.stringify(
        isFailed(result)
          ? [result.accountId, result.region, 'failed', result.error]
          : [result.accountId, result.region, result.status, result.fingerprint],
      ),
    )
    .sort();
  const canonical = { entries, listingError: run.listingError?.error ?? null };
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

function hasNews(run: OrgRun): boolean {
  return (
    run.listingError !== undefined ||
    run.results.some((result) => isFailed(result) || result.status !== 'done' || result.news)
  );
}

export const ORG_DIGEST_STATE_KEY = 'digest/organization';

/**
 * Sends the organisation digest as the policy asks, the way the Region digest does (see
 * sendDigest in digest.ts): `never`, `always`, or (`changes`) only when the fingerprint differs
 * from the last one delivered. A digest Slack did not take is logged in full and not remembered,
 * so the next run sends it again.
 */
export async function sendOrgDigest(
  run: OrgRun,
  context: { policy: Pick<Policy, 'digest'>; state: StateStore; notifier: Notifier; log: Log },
): Promise<{ outcome: DigestOutcome; digest: OrgDigest }> {
  const { policy, state, notifier, log } = context;
  const digest = buildOrgDigest(run);
  if (policy.digest === 'never') return { outcome: 'disabled', digest };
  const fingerprint = orgFingerprint(run);

  if (policy.digest === 'changes') {
    let previous: string | undefined;
    try {
      previous = await state.get(ORG_DIGEST_STATE_KEY);
    } catch (error) {
      log.warn('last digest unreadable; sending as if it changed', { errorCode: errorCode(error) });
    }
    if (previous === fingerprint) return { outcome: 'unchanged', digest };
    if (!hasNews(run)) {
      // Remembered all the same, so news that comes back after a quiet spell is news again.
      await remember(state, fingerprint, log);
      return { outcome: 'unchanged', digest };
    }
  }

  const message = orgDigestMessage(digest);
  const delivery = await notifier.send(message);
  if (delivery.maybeDelivered) {
    log.error('organisation digest delivery unconfirmed', { delivery, digest: digestPlainText(message) });
    return { outcome: 'unconfirmed', digest };
  }
  if (!delivery.delivered) {
    log.error('organisation digest not delivered', { delivery, digest: digestPlainText(message) });
    return { outcome: 'not-delivered', digest };
  }
  await remember(state, fingerprint, log);
  return { outcome: 'sent', digest };
}

async function remember(state: StateStore, fingerprint: string, log: Log): Promise<void> {
  try {
    await state.put(ORG_DIGEST_STATE_KEY, fingerprint);
  } catch (error) {
    log.warn('digest state not saved; the digest may repeat', { errorCode: errorCode(error) });
  }
}

/** An error's message; Lambda reports a function's error as JSON with its message in it. */
function causeText(cause: string): string {
  let text = cause;
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: unknown };
    if (typeof parsed.errorMessage === 'string') text = parsed.errorMessage;
  } catch {
    // Not JSON: a plain message (States.Timeout, a local run).
  }
  return clip(text, MAX_REASON_CHARS);
}

export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
