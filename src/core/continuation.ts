import * as z from 'zod';
import { CARRIED, NOT_REACHED } from './planner.ts';
import type { CostEstimate, RunReport, RunTotals } from './report.ts';

/**
 * A sweep that cannot finish inside one Lambda invocation stops before its deadline and hands on
 * this small record, so the next invocation carries on the same run: same clock (so the plan it
 * rebuilds from the account's current state holds only what is left), and running totals (so the
 * last report covers the whole run). Nothing done is ever redone: a marked image is now scheduled,
 * a deregistered one is gone.
 *
 * The state machine carries it (statemachine/sweep.asl.json): the sweep-target task returns it,
 * and a Choice sends it back to the same task for the same target until the run is done.
 */
export interface Continuation {
  runId: string;
  /** 1 for the first invocation. */
  invocation: number;
  /** The run's clock, shared by every invocation. */
  asOf: string;
  startedAt: string;
  /** Runs started by the schedule end with the Slack digest; hand-started ones do not. */
  scheduled: boolean;
  /** What earlier invocations did; counts of the run's inventory come from the first one. */
  totals: RunTotals;
  cost: Pick<CostEstimate, 'reclaimedGiB' | 'reclaimableGiB'>;
  /**
   * The first invocation's kept images by rule. Later invocations do not read again what uses the
   * images kept whatever uses them; their reports say with this what the first one decided.
   */
  kept?: Record<string, number>;
  /**
   * Whether a removal candidate not due yet may still need its mark: an invocation left one
   * undecided, or a mark not done. A continued invocation reads those candidates' references only
   * then. Absent (a continuation made before it existed) counts as true.
   */
  marksLeft?: boolean;
}

/** How many invocations one run may take before it stops and says so, rather than loop forever. */
export const MAX_INVOCATIONS = 20;

/** Every counter of RunTotals, so a hand-over can be checked as strictly as a policy. */
const totalsSchema = z.custom<RunTotals>(
  (value) =>
    typeof value === 'object' &&
    value !== null &&
    Object.values(value).every((entry) => typeof entry === 'number' && Number.isInteger(entry) && entry >= 0),
  { message: 'totals must map counters to whole numbers' },
);

/** Rule ids are short words; a rule map never holds more entries than there are rules. */
const MAX_RULES = 64;
const keptSchema = z
  .record(z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/), z.number().int().min(0))
  .refine((kept) => Object.keys(kept).length <= MAX_RULES, { message: `at most ${MAX_RULES} rules` });

export const continuationSchema = z.strictObject({
  runId: z.string().min(1).max(100),
  invocation: z.number().int().min(1).max(MAX_INVOCATIONS),
  asOf: z.iso.datetime(),
  startedAt: z.iso.datetime(),
  scheduled: z.boolean(),
  totals: totalsSchema,
  cost: z.strictObject({ reclaimedGiB: z.number().min(0), reclaimableGiB: z.number().min(0) }),
  // Absent from continuations made before they existed.
  kept: keptSchema.optional(),
  marksLeft: z.boolean().optional(),
});

/** Counts of what was done, which add up across invocations. */
const DONE: readonly (keyof RunTotals)[] = [
  'pending',
  'marked',
  'unmarked',
  'deregistered',
  'alreadyGone',
  'skipped',
  'failed',
  'snapshotsDeleted',
  'snapshotsFailed',
  'snapshotsMarked',
  'snapshotsUnmarked',
  'orphansDeleted',
];

/**
 * Counts of the account as the run found it, which the first invocation measured. Orphans and
 * eligible images are not among them: an invocation leaves the sharing of some orphans, and the
 * references of some images due for removal, unread for the next one.
 */
const INVENTORY: readonly (keyof RunTotals)[] = ['images', 'findings', 'snapshots', 'snapshotsKept'];

/**
 * The report of an invocation that continues a run, made to cover the whole run: its actions and
 * decisions stay this invocation's own (earlier ones were logged by their invocations), while the
 * totals and the cost add up everything done since the run began.
 */
export function continueReport(
  report: RunReport,
  previous: Continuation | undefined,
  runId: string,
): RunReport {
  const run = {
    runId,
    invocation: previous?.invocation ?? 1,
    startedAt: previous?.startedAt ?? report.startedAt,
  };
  if (!previous) return { ...report, run };
  const totals = { ...report.totals };
  for (const key of DONE) totals[key] = (previous.totals[key] ?? 0) + report.totals[key];
  for (const key of INVENTORY) totals[key] = previous.totals[key] ?? report.totals[key];
  // Every orphan of the run was either deleted by an earlier invocation or is decided by this one
  // (or a later one, which then counts it).
  totals.orphans = Math.max(
    previous.totals.orphans ?? 0,
    (previous.totals.orphansDeleted ?? 0) + report.totals.orphans,
  );
  // Likewise every eligible image: deregistered by an earlier invocation, or decided by this one.
  totals.eligible = Math.max(
    previous.totals.eligible ?? 0,
    (previous.totals.deregistered ?? 0) + report.totals.eligible,
  );
  totals.kept = Math.max(0, totals.images - totals.eligible);
  const reclaimedGiB = round(previous.cost.reclaimedGiB + report.cost.reclaimedGiB);
  const reclaimableGiB = round(previous.cost.reclaimableGiB + report.cost.reclaimableGiB);
  const carried = report.carried && {
    ...report.carried,
    ...(previous.kept ? { firstInvocation: { keptByRule: previous.kept } } : {}),
  };
  return {
    ...report,
    run,
    startedAt: previous.startedAt,
    totals,
    ...(carried ? { carried } : {}),
    cost: {
      ...report.cost,
      reclaimedGiB,
      reclaimableGiB,
      estimatedMonthlySavingUsd: round((reclaimedGiB + reclaimableGiB) * report.cost.pricePerGbMonthUsd),
    },
  };
}

/** What the next invocation needs, or undefined when the run is complete. */
export function nextContinuation(report: RunReport, scheduled: boolean): Continuation | undefined {
  if (report.complete || !report.run || report.mode !== 'apply') return undefined;
  return {
    runId: report.run.runId,
    invocation: report.run.invocation + 1,
    asOf: report.asOf,
    startedAt: report.run.startedAt,
    scheduled,
    totals: report.totals,
    cost: { reclaimedGiB: report.cost.reclaimedGiB, reclaimableGiB: report.cost.reclaimableGiB },
    marksLeft: report.imageMarksLeft ?? true,
    // A carried report knows the first invocation's counts only from its continuation.
    ...(report.carried
      ? report.carried.firstInvocation && { kept: report.carried.firstInvocation.keptByRule }
      : { kept: keptByRule(report) }),
  };
}

/** A report's kept images by rule; those it left undecided are not kept, only not reached yet. */
function keptByRule(report: RunReport): Record<string, number> {
  const kept: Record<string, number> = {};
  for (const decision of report.decisions) {
    if (decision.verdict !== 'keep' || decision.rule === NOT_REACHED || decision.rule === CARRIED) continue;
    kept[decision.rule] = (kept[decision.rule] ?? 0) + 1;
  }
  return kept;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
