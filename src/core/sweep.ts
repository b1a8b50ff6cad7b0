import type { Policy } from '../config/policy.ts';
import { errorCode, errorMessage, InventoryError } from '../errors.ts';
import type {
  ActionOutcome,
  Caller,
  Decision,
  Image,
  Plan,
  Reference,
  SnapshotActionOutcome,
  SnapshotPlan,
} from '../model.ts';
import { evaluateImage } from '../rules/index.ts';
import { HOLDING_RULES, usageReportNeeded } from '../rules/shared-image.ts';
import { snapshotGuard } from '../rules/snapshot-guards.ts';
import { snapshotSizeGiB } from '../rules/snapshot-orphan.ts';
import type { TrailHealth, TrailHealthCheck } from './account-audit.ts';
import { FutureClockError, futureClockReason } from './clock.ts';
import { executePlan } from './executor.ts';
import { creatorTags } from './image-audit.ts';
import { decideBeforeReferences, withReferences } from './image-decisions.ts';
import { buildPlan } from './planner.ts';
import type {
  ConsumerReferences,
  Deadline,
  ImageActionsPort,
  ImageUsagePort,
  InventoryPort,
  Log,
  ProgressPort,
  RecycleBinPort,
} from './ports.ts';
import {
  type AttributionSummary,
  buildReport,
  type AccountFinding as ReportAccountFinding,
  type RunReport,
} from './report.ts';
import { gatherSharedFacts } from './shared-images.ts';
import { executeSnapshotPlan } from './snapshot-executor.ts';
import { buildSnapshotPlan } from './snapshot-planner.ts';
import {
  evaluateSnapshots,
  gatherSnapshotInventory,
  type ShareCheckBudget,
  type SnapshotEvaluation,
  type SnapshotInventory,
  type SnapshotPorts,
} from './snapshot-sweep.ts';
import {
  annotateRecovery,
  readUndoWindow,
  type UndoWindow,
  undoWindowAccountFindings,
} from './undo-window.ts';

export interface SweepPorts {
  inventory: InventoryPort;
  actions: ImageActionsPort;
  log: Log;
  /** Whether CloudTrail feeds the real-time audit; checked first, reported as an account finding. */
  trailHealth?: TrailHealthCheck;
  /** Finds who created images that lack the creator tag (made before deployment). */
  attribution?: CreatorBackfill;
  /** Orphaned snapshots; without these ports the sweep looks at images only. */
  snapshots?: SnapshotPorts;
  /** Shared images' use in other accounts; without it only this account's references count. */
  usage?: ImageUsagePort;
  /** Organisation-wide: the target accounts an image is shared with, asked directly what uses it. */
  consumers?: ConsumerReferences;
  /** The undo window: what the Recycle Bin holds and which of its rules cover removals. */
  recycleBin?: RecycleBinPort;
  /** How far the run has got, for a progress line on a terminal. */
  progress?: ProgressPort;
}

export interface CreatorBackfill {
  backfill(
    images: readonly Image[],
    options: { now: Date; max: number },
  ): Promise<{ found: Map<string, Caller>; examined: number; skipped: number; error?: Error }>;
}

export interface SweepRequest {
  policy: Policy;
  region: string;
  /** The clock of the run: decisions, marks and grace periods are all measured against it. */
  now: Date;
  mode: 'plan' | 'apply';
  dryRun: boolean;
  deadline: Deadline;
  reserveMs?: number;
  /** Asked with the finished plan before anything changes; declining leaves the account untouched. */
  confirm?: (plan: Plan) => Promise<boolean>;
  /**
   * The real clock. Every entry point (the handler, the CLI) passes it: an apply on a clock later
   * than this (beyond a small skew) is refused before anything is read. Simulations leave it out.
   */
  realNow?: Date;
}

const DEFAULT_RESERVE_MS = 20_000;

/**
 * One sweep: gather facts once, evaluate every image and snapshot, plan, and (in apply mode)
 * execute. If the facts cannot be gathered completely the run stops before it changes anything:
 * an image or snapshot whose use is unknown must never be removed.
 */
export async function runSweep(ports: SweepPorts, request: SweepRequest): Promise<RunReport> {
  const { policy, now } = request;
  const { log } = ports;
  const startedAt = new Date();
  if (request.mode === 'apply' && request.realNow) {
    const future = futureClockReason(now, request.realNow, 'the run clock');
    if (future) throw new FutureClockError(future);
  }

  const accountFindings: AccountFinding[] = [];
  const warnings: string[] = [];
  // CloudTrail, the Recycle Bin and EC2 answer independently: neither holds up the inventory.
  const trailChecked = checkTrail(ports, request.region, accountFindings, warnings);
  const undoRead = readUndoWindow(ports.recycleBin);
  const { progress } = ports;
  const { accountId, images } = await gatherStep('facts', async () => ({
    accountId: await ports.inventory.accountId(),
    images: await ports.inventory.listOwnedImages(
      progress && { onPage: (listed) => progress.report({ phase: 'images', listed }) },
    ),
  }));
  progress?.report({ phase: 'images', listed: images.length });
  const trail = await trailChecked;
  // Images and snapshots are two chains that draw on different API buckets, so they run side by
  // side: references (DescribeImageReferences) → image plan → deregistrations, and snapshot
  // inventory → share checks (DescribeSnapshotAttribute) → snapshot plan → deletions. Nothing
  // changes until both inventories are complete and the image plan is built (an image or snapshot
  // whose use is unknown must never be removed) and, on the CLI, the whole plan is confirmed.
  // Then each chain acts as soon as its own plan is ready: deregistering need not wait for the
  // share checks, the longest phase of a large account.
  const snapshots = ports.snapshots;
  const snapshotChain = snapshots
    ? planSnapshots(snapshots, request, { accountId, images, warnings, log, undo: undoRead, progress })
    : undefined;
  const imageChain = planImages(ports, request, {
    accountId,
    images,
    warnings,
    log,
    snapshotInventory: snapshotChain?.inventory,
  });
  const snapshotPlanning = snapshotChain?.plan ?? Promise.resolve(undefined);

  const goAhead = (async () => {
    const [imagePlan] = await Promise.all([imageChain.plan, snapshotChain?.inventory]);
    if (request.mode !== 'apply') return false;
    if (!request.confirm) return true;
    const [decisions, snapshotPart] = await Promise.all([imageChain.decisions, snapshotPlanning]);
    const whole = { ...imagePlan, decisions, ...(snapshotPart ? { snapshots: snapshotPart.plan } : {}) };
    if (whole.actions.length + (whole.snapshots?.actions.length ?? 0) === 0) return true;
    if (await request.confirm(whole)) return true;
    warnings.push('apply was not confirmed: nothing was changed');
    return false;
  })();

  const executeOptions = {
    dryRun: request.dryRun,
    now,
    accountId,
    policy,
    deadline: request.deadline,
    reserveMs: request.reserveMs ?? DEFAULT_RESERVE_MS,
    log,
  };
  const counted = (phase: 'image-actions' | 'snapshot-actions', message: string, total: number) =>
    progress ? { ...executeOptions, log: countingLog(log, message, phase, total, progress) } : executeOptions;
  const [plan, decisions, outcomes, snapshotPart, execute] = await Promise.all([
    imageChain.plan,
    imageChain.decisions,
    imageChain.plan.then(async (imagePlan) =>
      (await goAhead)
        ? executePlan(imagePlan, ports.actions, {
            ...counted('image-actions', 'action', imagePlan.actions.length),
            ...(ports.usage ? { usage: ports.usage } : {}),
          })
        : imagePlan.actions.map(
            (action): ActionOutcome => ({ action, status: 'planned', warnings: [], snapshots: [] }),
          ),
    ),
    snapshotPlanning.then(async (part) => {
      if (!part || !snapshots) return undefined;
      const snapshotOutcomes = (await goAhead)
        ? await executeSnapshotPlan(
            part.plan,
            snapshots.actions,
            counted('snapshot-actions', 'snapshot action', part.plan.actions.length),
          )
        : part.plan.actions.map((action): SnapshotActionOutcome => ({ action, status: 'planned' }));
      return { ...part, outcomes: snapshotOutcomes };
    }),
    goAhead,
  ]);
  plan.decisions = decisions;
  if (snapshotPart) plan.snapshots = snapshotPart.plan;
  const snapshotEvaluation = snapshotPart?.evaluation;
  const snapshotOutcomes = snapshotPart?.outcomes ?? [];

  const attribution =
    execute && ports.attribution && policy.attribution.maxLookupsPerRun > 0
      ? await backfillCreators(
          ports.attribution,
          ports.actions,
          images,
          { now, max: policy.attribution.maxLookupsPerRun },
          warnings,
          log,
        )
      : undefined;

  const undo = await undoRead;
  const imagesById = new Map(images.map((image) => [image.imageId, image]));
  const snapshotsById = new Map((snapshotEvaluation?.snapshots ?? []).map((s) => [s.snapshotId, s]));
  annotateRecovery(undo, now, { outcomes, snapshotOutcomes, images: imagesById, snapshots: snapshotsById });
  accountFindings.push(
    ...undoWindowAccountFindings(undo, { outcomes, images: imagesById, snapshots: snapshotsById }),
  );

  const report = buildReport(plan, outcomes, {
    undecided: snapshotEvaluation?.undecided ?? 0,
    snapshotOutcomes,
    snapshotSizes: new Map(
      (snapshotEvaluation?.snapshots ?? []).map((s) => [s.snapshotId, snapshotSizeGiB(s)]),
    ),
    mode: request.mode,
    dryRun: request.mode === 'apply' && request.dryRun,
    startedAt,
    finishedAt: new Date(),
    warnings,
    accountFindings: accountFindings.map((finding) => ({ ...finding, resourceId: accountId })),
    ...(trail ? { trail } : {}),
    ...(attribution ? { attribution } : {}),
  });
  log.info('sweep summary', {
    mode: report.mode,
    dryRun: report.dryRun,
    accountId,
    region: request.region,
    asOf: report.asOf,
    complete: report.complete,
    totals: report.totals,
  });
  return report;
}

type AccountFinding = Omit<ReportAccountFinding, 'resourceId'>;

/**
 * The image chain: every image decided, the references of those other rules would let go
 * settling the plan (`plan`), and then, alongside the actions, the others' references, which
 * change no verdict and no action, only the reason a kept image gives (`decisions`); a failure to
 * read those costs only the reasons.
 */
function planImages(
  ports: SweepPorts,
  request: SweepRequest,
  context: {
    accountId: string;
    images: readonly Image[];
    warnings: string[];
    log: Log;
    /** Where snapshots are listed, the image plan leaves guarded ones out of each deregistration. */
    snapshotInventory?: Promise<SnapshotInventory> | undefined;
  },
): { plan: Promise<Plan>; decisions: Promise<Decision[]> } {
  const { policy, now } = request;
  const { accountId, images, warnings, log } = context;
  const byId = new Map(images.map((image) => [image.imageId, image]));
  const first = decideBeforeReferences(images, accountId, policy, now);
  const candidateIds = new Set(first.candidates.map((image) => image.imageId));
  const isCandidate = (decision: Decision) => candidateIds.has(decision.imageId);
  // The candidates' references settle the plan; the others' follow, counted on from there.
  const { progress } = ports;
  const referenceTotal = first.candidates.length + first.others.length;
  const referencesChecked = (before: number) => (done: number) =>
    progress?.report({ phase: 'references', done: before + done, total: referenceTotal });
  const plan = Promise.all([
    gatherStep('facts', async () => {
      referencesChecked(0)(0);
      const found = await ports.inventory.findReferences(
        first.candidates,
        progress && { onChecked: referencesChecked(0) },
      );
      referencesChecked(0)(first.candidates.length);
      return found;
    }),
    context.snapshotInventory,
  ]).then(async ([references, listed]) => {
    let decisions = withReferences(first.decisions, byId, first, references, policy, now);
    const shared = ports.usage ? await sharedImageGate(decisions, ports.usage, references) : undefined;
    if (shared) decisions = shared.decisions;
    // Public is known from DescribeImages alone, with or without the launch permissions.
    const sharedIds = new Set([
      ...(shared?.sharedIds ?? []),
      ...first.candidates.filter((image) => image.public).map((image) => image.imageId),
    ]);
    // The candidates' decisions are final: logged before anything is done about them.
    logDecisions(decisions.filter(isCandidate), log);
    const snapshotGuards = listed ? guardedSnapshots(first.candidates, listed, policy) : undefined;
    return buildPlan({
      accountId,
      region: request.region,
      images,
      decisions,
      policy,
      now,
      ...(snapshotGuards ? { snapshotGuards } : {}),
      sharedImageIds: sharedIds,
      ...(shared ? { usageReportsNeeded: shared.reportsNeeded } : {}),
    });
  });

  /**
   * The images still going after their references: who they are shared with and, where that
   * reaches other accounts, whether a usage report shows them used there. Those are decided again.
   */
  async function sharedImageGate(
    decided: Decision[],
    usage: ImageUsagePort,
    references: ReadonlyMap<string, readonly Reference[]>,
  ) {
    const going = decided.flatMap((decision) => {
      const onItsWay = decision.verdict === 'expire' || HOLDING_RULES.has(decision.rule);
      const image = onItsWay ? byId.get(decision.imageId) : undefined;
      return image ? [image] : [];
    });
    const found = await gatherSharedFacts(going, usage, {
      accountId,
      now,
      consumers: ports.consumers,
      onChecked: progress && ((done, total) => progress.report({ phase: 'image-shares', done, total })),
    });
    const sharedIds = new Set<string>();
    const reportsNeeded = new Set<string>();
    const decisions = decided.map((decision) => {
      const extra = found.get(decision.imageId);
      const image = byId.get(decision.imageId);
      const facts = first.facts.get(decision.imageId);
      if (!extra || !image || !facts) return decision;
      const all = { ...facts, references: references.get(decision.imageId) ?? [], ...extra };
      if (all.usage !== undefined) sharedIds.add(image.imageId);
      if (usageReportNeeded(image, all, policy, now)) reportsNeeded.add(image.imageId);
      return evaluateImage(image, all, policy, now);
    });
    return { decisions, sharedIds, reportsNeeded };
  }
  const decisions = plan.then(async (imagePlan) => {
    let final = imagePlan.decisions;
    try {
      const before = first.candidates.length;
      const references = await ports.inventory.findReferences(
        first.others,
        progress && { onChecked: referencesChecked(before) },
      );
      referencesChecked(before)(first.others.length);
      final = withReferences(imagePlan.decisions, byId, first, references, policy, now);
    } catch (error) {
      warnings.push(
        `references of the images kept anyway could not be read (${errorCode(error)}): their reasons do not say what uses them`,
      );
    }
    logDecisions(
      final.filter((decision) => !isCandidate(decision)),
      log,
    );
    return final;
  });
  return { plan, decisions };
}

/** The snapshots of `images` that must outlive them, with the reason, from the snapshot inventory. */
function guardedSnapshots(
  images: readonly Image[],
  listed: SnapshotInventory,
  policy: Policy,
): Map<string, string> {
  const wanted = new Set(images.flatMap((image) => image.snapshotIds));
  const guards = new Map<string, string>();
  for (const snapshot of listed.snapshots) {
    if (!wanted.has(snapshot.snapshotId)) continue;
    const guard = snapshotGuard(snapshot, { locked: listed.lockedIds.has(snapshot.snapshotId) }, policy);
    if (guard) guards.set(snapshot.snapshotId, guard.reason);
  }
  return guards;
}

/**
 * The snapshot chain: the inventory (`inventory`: complete, or it rejects and nothing changes),
 * then every snapshot decided, sharing read within the invocation's budget, and the plan.
 */
function planSnapshots(
  snapshots: SnapshotPorts,
  request: SweepRequest,
  context: {
    accountId: string;
    images: readonly Image[];
    warnings: string[];
    log: Log;
    undo: Promise<UndoWindow>;
    progress?: ProgressPort | undefined;
  },
): {
  inventory: Promise<SnapshotInventory>;
  plan: Promise<{ evaluation: SnapshotEvaluation; plan: SnapshotPlan } | undefined>;
} {
  const { policy, now } = request;
  const { accountId, warnings, log, progress } = context;
  const budget = shareCheckBudget(request, snapshots.actions.deletionsPerSecond);
  const inventory = gatherStep('snapshots', () =>
    gatherSnapshotInventory(snapshots, {
      accountId,
      policy,
      warnings,
      progress: progress && { onPage: (listed) => progress.report({ phase: 'snapshots', listed }) },
    }).then((listed) => {
      progress?.report({ phase: 'snapshots', listed: listed.snapshots.length });
      return listed;
    }),
  );
  const plan = inventory.then(async (listed) => {
    try {
      const { binned } = await context.undo;
      const evaluation = await evaluateSnapshots(snapshots, listed, {
        ...context,
        policy,
        now,
        budget,
        binnedImages: binned,
        onShareChecked:
          progress && ((done, total) => progress.report({ phase: 'snapshot-shares', done, total })),
      });
      return { evaluation, plan: buildSnapshotPlan({ ...evaluation, policy, now }) };
    } catch (error) {
      // By now images may be in the middle of being removed: their report must not be lost.
      warnings.push(
        `snapshots were not decided (${errorCode(error)}): ${errorMessage(error)}; none was changed`,
      );
      log.error('snapshots not decided', { error });
      return undefined;
    }
  });
  return { inventory, plan };
}

/** Every image's verdict, with its reason, and each finding as a warning. */
function logDecisions(decisions: readonly Decision[], log: Log): void {
  for (const decision of decisions) {
    log.info('decision', {
      imageId: decision.imageId,
      rule: decision.rule,
      verdict: decision.verdict,
      reason: decision.reason,
    });
    for (const finding of decision.findings) {
      log.warn('finding', {
        imageId: decision.imageId,
        rule: finding.rule,
        verdict: 'flag',
        severity: finding.severity,
        reason: finding.reason,
      });
    }
  }
}

async function checkTrail(
  ports: SweepPorts,
  region: string,
  findings: AccountFinding[],
  warnings: string[],
): Promise<TrailHealth | undefined> {
  if (!ports.trailHealth) return undefined;
  try {
    const trail = await ports.trailHealth.check(region);
    if (!trail.ok) findings.push({ rule: 'trail-health', severity: 'high', reason: trail.reason });
    return trail;
  } catch (error) {
    // Not knowing whether CloudTrail is on is worth a warning, never a reason to skip the sweep.
    warnings.push(`CloudTrail trails could not be checked (${errorCode(error)}): ${errorMessage(error)}`);
    return undefined;
  }
}

/**
 * Tags the creator of images made before ami-janitor was deployed. These are bookkeeping tags on
 * the image, like the real-time audit's, so they are written in dry run too.
 */
async function backfillCreators(
  attribution: CreatorBackfill,
  actions: ImageActionsPort,
  images: readonly Image[],
  options: { now: Date; max: number },
  warnings: string[],
  log: Log,
): Promise<AttributionSummary> {
  const result = await attribution.backfill(images, options);
  if (result.error) warnings.push(`creator lookup stopped early: ${result.error.message}`);
  let tagged = 0;
  for (const [imageId, caller] of result.found) {
    try {
      await actions.tagImage(imageId, creatorTags(caller));
      tagged += 1;
      log.info('creator found', { imageId, rule: 'attribution', verdict: 'tagged', reason: caller.arn });
    } catch (error) {
      warnings.push(`image ${imageId}: creator tag not written (${errorCode(error)})`);
    }
  }
  return { examined: result.examined, found: result.found.size, tagged, skipped: result.skipped };
}

/**
 * Share checks are one call per orphan candidate, enough on a large account to fill a whole
 * invocation. They stop while this much of the starting budget is left, so every invocation also
 * acts, and what was not decided is decided by the next one.
 */
const SHARE_CHECKS_LEAVE_FOR_ACTING = 0.4;

/**
 * Share checks also stop, for the orphans due for deletion, once those already decided would take
 * the rest of the invocation to delete at the pace deletions are held to: the next invocation
 * would only read the sharing of the others again. Runs without a deadline read it all.
 */
function shareCheckBudget(
  request: SweepRequest,
  deletionsPerSecond: number | undefined,
): ShareCheckBudget | undefined {
  const start = request.deadline.remainingMs();
  if (!Number.isFinite(start) || request.mode !== 'apply') return undefined;
  const reserve = request.reserveMs ?? DEFAULT_RESERVE_MS;
  const floor = reserve + start * SHARE_CHECKS_LEAVE_FOR_ACTING;
  return {
    mayRead: () => request.deadline.remainingMs() > floor,
    deletionsFill: (decided) =>
      deletionsPerSecond !== undefined &&
      deletionsPerSecond > 0 &&
      (decided / deletionsPerSecond) * 1000 >= request.deadline.remainingMs() - reserve,
  };
}

async function gatherStep<T>(what: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    if (error instanceof InventoryError) throw error;
    throw new InventoryError(`could not gather the account's ${what}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * The executors log one line per action as it settles, with this message: counting those lines
 * gives the actions' progress without reaching into the executors.
 */
function countingLog(
  log: Log,
  message: string,
  phase: 'image-actions' | 'snapshot-actions',
  total: number,
  progress: ProgressPort,
): Log {
  let done = 0;
  progress.report({ phase, done, total });
  return {
    debug: (text, ...extra) => log.debug(text, ...extra),
    info: (text, ...extra) => {
      log.info(text, ...extra);
      if (text === message) progress.report({ phase, done: ++done, total });
    },
    warn: (text, ...extra) => log.warn(text, ...extra),
    error: (text, ...extra) => log.error(text, ...extra),
  };
}
