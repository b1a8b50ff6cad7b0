import { MARKED_AT_TAG, type Policy } from '../config/policy.ts';
import { errorCode, errorMessage, InventoryError } from '../errors.ts';
import type {
  ActionOutcome,
  Caller,
  Decision,
  Image,
  Plan,
  PlannedAction,
  PlannedSnapshotAction,
  Reference,
  Snapshot,
  SnapshotActionOutcome,
  SnapshotDecision,
  SnapshotPlan,
} from '../model.ts';
import { evaluateImage } from '../rules/index.ts';
import { HOLDING_RULES, usageReportNeeded } from '../rules/shared-image.ts';
import { snapshotGuard } from '../rules/snapshot-guards.ts';
import { snapshotSizeGiB } from '../rules/snapshot-orphan.ts';
import type { TrailHealth, TrailHealthCheck } from './account-audit.ts';
import { FutureClockError, futureClockReason } from './clock.ts';
import { chunk, Feed, forEachConcurrent } from './concurrency.ts';
import { executePlan } from './executor.ts';
import { creatorTags } from './image-audit.ts';
import { decideBeforeReferences, withReferences } from './image-decisions.ts';
import { CapGate, capOrder, dueAdvance, type Move } from './lifecycle.ts';
import { ChangeGate } from './lifecycle-executor.ts';
import { buildPlan, CARRIED, imageLifecycle, imagePlanner, NOT_REACHED } from './planner.ts';
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
import { checkInConsumers, readSharedFacts, type SharedFacts } from './shared-images.ts';
import { executeSnapshotPlan } from './snapshot-executor.ts';
import { buildSnapshotPlan, snapshotAdvanceAction, snapshotLifecycle } from './snapshot-planner.ts';
import {
  evaluateSnapshots,
  gatherSnapshotInventory,
  type ReadBudget,
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
  /**
   * A later invocation of a continued run (the state machine hands the continuation back). The
   * run's first invocation read what uses every image and logged its decisions; this one reads the
   * references of the candidates it may remove (those due), and of those not due yet only while
   * one may still need its mark (`marksLeft`, unless false), and flags the others' decisions as
   * carried.
   */
  continuing?: { invocation: number; marksLeft?: boolean | undefined };
}

const DEFAULT_RESERVE_MS = 20_000;

/** Reference checks in flight at once; the API limiter, not this number, sets the pace. */
const REFERENCE_CONCURRENCY = 4;
/** DescribeImageReferences' batch, where the port does not say its own. */
const DEFAULT_REFERENCE_BATCH = 10;

/**
 * One sweep: gather facts once, evaluate every image and snapshot, plan, and (in apply mode)
 * execute. If the facts cannot be gathered completely the run stops before it changes anything:
 * an image or snapshot whose use is unknown must never be removed.
 *
 * An apply that needs no confirmation streams: nothing changes before both inventories are
 * complete, and then an image whose own references (and sharing) are known, or an orphan whose
 * sharing is, advances as soon as it is certain that the cap selects it, while the others are still
 * being checked. A plan, a dry run and a confirmed apply build the whole plan first.
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
  const accountId = await gatherStep('facts', () => ports.inventory.accountId());
  // Every listing has its own API bucket, so they all go at once: images, snapshots (with locks
  // and volumes), and the account-wide part of the reference checks (launch templates, Auto Scaling).
  ports.inventory.prepareReferences?.();
  const snapshots = ports.snapshots;
  const snapshotInventory = snapshots
    ? listSnapshots(snapshots, request, { accountId, warnings, progress })
    : undefined;
  // Awaited below, or abandoned with the run when the images cannot be listed.
  snapshotInventory?.catch(() => undefined);
  const images = await gatherStep('facts', () =>
    ports.inventory.listOwnedImages(
      progress && { onPage: (listed) => progress.report({ phase: 'images', listed }) },
    ),
  );
  progress?.report({ phase: 'images', listed: images.length });
  const trail = await trailChecked;

  // Images and snapshots are two chains that draw on different API buckets, so they run side by
  // side: references (DescribeImageReferences) → image plan → deregistrations, and snapshot
  // inventory → share checks (DescribeSnapshotAttribute) → snapshot plan → deletions. Nothing
  // changes until both inventories are complete (an image or snapshot whose use is unknown must
  // never be removed) and, on the CLI, the whole plan is confirmed.
  const streaming = request.mode === 'apply' && !request.dryRun && !request.confirm;
  const changes = new ChangeGate();
  const snapshotChain =
    snapshots && snapshotInventory
      ? planSnapshots(snapshots, request, {
          accountId,
          images,
          warnings,
          log,
          undo: undoRead,
          progress,
          inventory: snapshotInventory,
          streaming,
        })
      : undefined;
  const imageChain = planImages(ports, request, {
    accountId,
    images,
    warnings,
    log,
    snapshotInventory,
    streaming,
    changes,
  });
  const snapshotPlanning = snapshotChain?.plan ?? Promise.resolve(undefined);

  const goAhead = streaming
    ? Promise.resolve(true)
    : (async () => {
        const [imagePlan] = await Promise.all([imageChain.plan, snapshotInventory]);
        if (request.mode !== 'apply') return false;
        if (!request.confirm) return true;
        const [decisions, snapshotPart] = await Promise.all([imageChain.decisions, snapshotPlanning]);
        const whole = {
          ...imagePlan,
          decisions,
          ...(snapshotPart ? { snapshots: snapshotPart.plan } : {}),
        };
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
    changes,
  };
  const counted = (phase: 'image-actions' | 'snapshot-actions', message: string, total: () => number) =>
    progress ? { ...executeOptions, log: countingLog(log, message, phase, total, progress) } : executeOptions;
  // While a streaming plan is still being built, its size is what has been released so far.
  let imagePlanSize: number | undefined;
  let snapshotPlanSize: number | undefined;
  const imageActions = imageChain.plan.then((imagePlan) => {
    imagePlanSize = imagePlan.actions.length;
    return imagePlan.actions;
  });
  const imageExecution = streaming
    ? executePlan(
        { early: imageChain.early, plan: imageActions, onSettled: imageChain.onSettled },
        ports.actions,
        {
          ...counted('image-actions', 'action', () => imagePlanSize ?? imageChain.early.pushed.length),
          ...(ports.usage ? { usage: ports.usage } : {}),
        },
      )
    : imageChain.plan.then(async (imagePlan) =>
        (await goAhead)
          ? executePlan(imagePlan, ports.actions, {
              ...counted('image-actions', 'action', () => imagePlan.actions.length),
              ...(ports.usage ? { usage: ports.usage } : {}),
            })
          : imagePlan.actions.map(
              (action): ActionOutcome => ({ action, status: 'planned', warnings: [], snapshots: [] }),
            ),
      );
  const snapshotExecution = (async () => {
    if (!snapshotChain || !snapshots) return undefined;
    const { early } = snapshotChain;
    const outcomes = streaming
      ? executeSnapshotPlan(
          {
            early,
            plan: snapshotPlanning.then((part) => {
              const actions = part?.plan.actions ?? [...early.pushed];
              snapshotPlanSize = actions.length;
              return actions;
            }),
            onSettled: snapshotChain.onSettled,
          },
          snapshots.actions,
          counted('snapshot-actions', 'snapshot action', () => snapshotPlanSize ?? early.pushed.length),
        )
      : snapshotPlanning.then(async (part) => {
          if (!part) return [];
          return (await goAhead)
            ? executeSnapshotPlan(
                part.plan,
                snapshots.actions,
                counted('snapshot-actions', 'snapshot action', () => part.plan.actions.length),
              )
            : part.plan.actions.map((action): SnapshotActionOutcome => ({ action, status: 'planned' }));
        });
    // Deletions that started before deciding the snapshots failed are reported all the same.
    const [part, snapshotOutcomes] = await Promise.all([snapshotPlanning, outcomes]);
    return { ...part, outcomes: snapshotOutcomes };
  })();
  const [plan, decisions, outcomes, snapshotPart, execute] = await Promise.all([
    imageChain.plan,
    imageChain.decisions,
    imageExecution,
    snapshotExecution,
    goAhead,
  ]);
  plan.decisions = decisions;
  if (snapshotPart?.plan) plan.snapshots = snapshotPart.plan;
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

  const carried = decisions.filter((decision) => decision.carried).length;
  const report = buildReport(plan, outcomes, {
    undecided: (snapshotEvaluation?.undecided ?? 0) + imageChain.undecided(),
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
    ...(carried > 0 ? { carried } : {}),
    imageMarksLeft: imageChain.marksLeft(outcomes),
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

interface ImageChain {
  /** The whole image plan; it rejects only when nothing was changed. */
  plan: Promise<Plan>;
  /** Advances final before the plan is, when the run streams. */
  early: Feed<PlannedAction>;
  onSettled: () => void;
  /** Every decision, the reasons of the images kept anyway with what uses them where it was read. */
  decisions: Promise<Decision[]>;
  /** Removal candidates left undecided (rule not-reached), once the plan is built. */
  undecided: () => number;
  /** Whether a candidate not due yet may still need its mark, once the actions are done. */
  marksLeft: (outcomes: readonly ActionOutcome[]) => boolean;
}

/**
 * The image chain: every image decided first as if nothing used it, then the removal candidates'
 * references (and, for those still going, their sharing), a batch at a time and oldest due first,
 * settling the plan; each candidate that still goes once its own facts are known is released to
 * the executor as soon as the cap is certain to select it. Then, alongside the actions, the others'
 * references, which change no verdict and no action, only the reason a kept image gives; a failure
 * to read those costs only the reasons, and a continued invocation does not read them again.
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
    streaming: boolean;
    changes: ChangeGate;
  },
): ImageChain {
  const { policy, now } = request;
  const { accountId, images, warnings, log, streaming } = context;
  const byId = new Map(images.map((image) => [image.imageId, image]));
  const first = decideBeforeReferences(images, accountId, policy, now);
  const firstOf = new Map(first.decisions.map((decision) => [decision.imageId, decision]));
  const candidateIds = new Set(first.candidates.map((image) => image.imageId));
  const isCandidate = (decision: Decision) => candidateIds.has(decision.imageId);
  const lifecycle = imageLifecycle(policy, images.length);
  const dueAdvances = new Map<string, Extract<Move<Image>, { move: 'advance' }>>();
  for (const image of first.candidates) {
    const advance = dueAdvance(lifecycle, image, now);
    if (advance) dueAdvances.set(image.imageId, advance);
  }
  // Due first, in the cap's order, so releases follow the references closely; then the rest.
  const due = first.candidates.filter((image) => dueAdvances.has(image.imageId)).sort(capOrder(lifecycle));
  const notDue = first.candidates.filter((image) => !dueAdvances.has(image.imageId));
  const continued = request.continuing !== undefined;

  const { progress } = ports;
  // A continued invocation re-checks what it may remove: the due candidates. The others were
  // decided by the run's first invocation, with their references, and nothing is removed from
  // them; those not due yet are read again only while one may still need its mark.
  const carryNotDue = continued && request.continuing?.marksLeft === false;
  const referenceTotal =
    due.length + (carryNotDue ? 0 : notDue.length) + (continued ? 0 : first.others.length);
  let referencesDone = 0;
  const referencesChecked = (count: number) => {
    referencesDone += count;
    progress?.report({ phase: 'references', done: referencesDone, total: referenceTotal });
  };
  let sharesDone = 0;
  let sharesTotal = 0;
  const sharesChecked = (done: number, total: number) => {
    sharesDone += done;
    sharesTotal += total;
    if (ports.usage) progress?.report({ phase: 'image-shares', done: sharesDone, total: sharesTotal });
  };

  const early = new Feed<PlannedAction>();
  let settled = 0;
  const final = new Map<string, Decision>();
  const sharedIds = new Set(first.candidates.filter((image) => image.public).map((image) => image.imageId));
  const reportsNeeded = new Set<string>();
  let undecided = 0;
  let dueGoing = 0;
  const budget = readBudget(request, ports.actions.deregistrationsPerSecond, () => settled);

  // What releasing needs is there once the snapshots are listed: nothing goes before both inventories.
  const ready = (context.snapshotInventory ?? Promise.resolve(undefined)).then((listed) => {
    const snapshotGuards = listed ? guardedSnapshots(first.candidates, listed, policy) : undefined;
    const input = {
      accountId,
      region: request.region,
      images,
      policy,
      now,
      ...(snapshotGuards ? { snapshotGuards } : {}),
    };
    return { input, planner: imagePlanner(input), gate: new CapGate(lifecycle, due) };
  });
  ready.catch(() => undefined);

  /**
   * Records final decisions, logged before anything is done about them, and releases what the cap
   * allows, in the order they were made, once the snapshots are listed; reading goes on meanwhile.
   */
  let settling = Promise.resolve();
  function settle(decided: readonly Decision[]): void {
    settling = settling.then(() => release(decided));
    settling.catch(() => undefined);
  }
  async function release(decided: readonly Decision[]): Promise<void> {
    const { planner, gate } = await ready;
    logDecisions(decided, log);
    for (const decision of decided) {
      final.set(decision.imageId, decision);
      const image = byId.get(decision.imageId);
      if (!image) continue;
      for (const released of gate.settle(image, decision.verdict === 'expire')) {
        const move = dueAdvances.get(released.imageId);
        if (streaming && move) early.push(planner.advance(move, final.get(released.imageId)));
      }
    }
    if (streaming && gate.complete && !early.finished) early.finish();
  }

  /** A candidate decided with its own references, and, while it still goes, its sharing. */
  const decideWith = (image: Image, references: readonly Reference[], extra?: SharedFacts) => {
    const facts = first.facts.get(image.imageId);
    const decided = firstOf.get(image.imageId);
    if (!facts || !decided) throw new Error(`image ${image.imageId} was not decided first`);
    const known = { ...facts, references };
    if (extra) {
      const all = { ...known, ...extra };
      if (all.usage !== undefined) sharedIds.add(image.imageId);
      if (usageReportNeeded(image, all, policy, now)) reportsNeeded.add(image.imageId);
      return evaluateImage(image, all, policy, now);
    }
    return references.length > 0 ? evaluateImage(image, known, policy, now) : decided;
  };
  const going = (decision: Decision) => decision.verdict === 'expire' || HOLDING_RULES.has(decision.rule);
  let notDueUndecided = 0;
  const notReached = (image: Image, reason: string): Decision => {
    undecided += 1;
    if (!dueAdvances.has(image.imageId)) notDueUndecided += 1;
    const decided = firstOf.get(image.imageId) as Decision;
    return { ...decided, verdict: 'keep', rule: NOT_REACHED, reason };
  };

  /**
   * A candidate not due in a continued run, as the first invocation left it: still scheduled when
   * it is marked (nothing is done to it before it is due), otherwise kept, since what uses it is
   * not read again and a mark needs that; a later run marks it if nothing does.
   */
  const carriedCandidate = (image: Image): Decision => {
    const decided = firstOf.get(image.imageId) as Decision;
    if (image.tags[MARKED_AT_TAG] !== undefined) return { ...decided, carried: true };
    return {
      ...decided,
      verdict: 'keep',
      rule: CARRIED,
      reason:
        "not due for removal in this run, and its references were not read again: the run's first invocation marked it if nothing used it; a later run decides it",
      carried: true,
    };
  };

  let failure: unknown;
  /** Shared images whose use in target accounts is asked there, once, after every batch. */
  const inTargets: { image: Image; references: readonly Reference[]; facts: SharedFacts }[] = [];
  const sharedFacts = new Map<string, SharedFacts>();

  async function checkBatch(whole: readonly Image[]): Promise<void> {
    if (failure !== undefined) {
      const reason = `its references were not read: another reference check failed (${errorCode(failure)}); decided on the next run`;
      settle(whole.map((image) => notReached(image, reason)));
      referencesChecked(whole.length);
      return;
    }
    // Only images due for removal are held back; the others of a batch are read all the same.
    const held = whole.filter((image) => dueAdvances.has(image.imageId));
    const cut = budget && referencesNotReadReason(budget, held.length > 0, Math.min(dueGoing, lifecycle.cap));
    const batch = cut ? whole.filter((image) => !dueAdvances.has(image.imageId)) : whole;
    if (cut) {
      settle(held.map((image) => notReached(image, cut)));
      referencesChecked(held.length);
      if (batch.length === 0) return;
    }
    let found: Map<string, Reference[]>;
    try {
      found = await ports.inventory.findReferences(batch);
    } catch (error) {
      failure ??= error;
      const reason = `its references could not be read (${errorCode(error)}); decided on the next run`;
      settle(batch.map((image) => notReached(image, reason)));
      referencesChecked(batch.length);
      return;
    }
    referencesChecked(batch.length);
    const decided = batch.map((image) => ({
      image,
      references: found.get(image.imageId) ?? [],
      decision: decideWith(image, found.get(image.imageId) ?? []),
    }));
    const stillGoing = decided.filter((entry) => going(entry.decision));
    let extra: Map<string, SharedFacts> | undefined;
    if (ports.usage && stillGoing.length > 0) {
      sharesChecked(0, stillGoing.length);
      extra = await readSharedFacts(
        stillGoing.map((entry) => entry.image),
        ports.usage,
        { accountId, now, onRead: () => sharesChecked(1, 0) },
      );
    }
    const settledNow: Decision[] = [];
    for (const entry of decided) {
      const facts = extra?.get(entry.image.imageId);
      if (!facts) {
        settledNow.push(entry.decision);
      } else if (ports.consumers && (facts.sharing?.accounts.length ?? 0) > 0) {
        // Its use in the target accounts it is shared with is read there, by account, after all batches.
        sharedFacts.set(entry.image.imageId, facts);
        inTargets.push({ image: entry.image, references: entry.references, facts });
      } else {
        settledNow.push(decideWith(entry.image, entry.references, facts));
      }
    }
    dueGoing += settledNow.filter((d) => d.verdict === 'expire' && dueAdvances.has(d.imageId)).length;
    settle(settledNow);
  }

  const batchSize = ports.inventory.referenceBatchSize ?? DEFAULT_REFERENCE_BATCH;
  const plan = (async (): Promise<Plan> => {
    referencesChecked(0);
    if (carryNotDue) settle(notDue.map(carriedCandidate));
    const batches = chunk([...due, ...(carryNotDue ? [] : notDue)], batchSize);
    await forEachConcurrent(batches, REFERENCE_CONCURRENCY, checkBatch);
    if (inTargets.length > 0 && ports.consumers) {
      await checkInConsumers(
        inTargets.map((entry) => entry.image),
        sharedFacts,
        ports.consumers,
      );
      settle(
        inTargets.map((entry) =>
          decideWith(entry.image, entry.references, sharedFacts.get(entry.image.imageId) ?? entry.facts),
        ),
      );
    }
    await settling;
    if (failure !== undefined) {
      // Nothing changed yet: the run stops as if the facts had never been gathered. Otherwise
      // what was done must be reported, and the candidates left are decided by the next run.
      if (context.changes.closeIfUntouched()) {
        if (failure instanceof InventoryError) throw failure;
        throw new InventoryError(`could not gather the account's facts: ${errorMessage(failure)}`, {
          cause: failure,
        });
      }
      warnings.push(
        `references of ${undecided} removal candidates could not be read (${errorCode(failure)}): they were not decided and nothing was done to them; the run continues`,
      );
      log.error('references not read', { error: failure });
    }
    const { input, planner } = await ready;
    const decisions = first.decisions.map((decision) => final.get(decision.imageId) ?? decision);
    return buildPlan(
      {
        ...input,
        decisions,
        sharedImageIds: sharedIds,
        ...(ports.usage ? { usageReportsNeeded: reportsNeeded } : {}),
      },
      planner,
    );
  })();

  const decisions = plan.then(async (imagePlan) => {
    let all = imagePlan.decisions;
    if (continued) {
      // The run's first invocation read what uses them and logged it; they are kept whatever does.
      all = all.map((decision) => (isCandidate(decision) ? decision : { ...decision, carried: true }));
    } else {
      try {
        const references = await ports.inventory.findReferences(first.others, {
          onChecked: (checked) =>
            progress?.report({
              phase: 'references',
              done: referencesDone + checked,
              total: referenceTotal,
            }),
        });
        referencesChecked(first.others.length);
        all = withReferences(imagePlan.decisions, byId, first, references, policy, now);
      } catch (error) {
        warnings.push(
          `references of the images kept anyway could not be read (${errorCode(error)}): their reasons do not say what uses them`,
        );
      }
    }
    logDecisions(
      all.filter((decision) => !isCandidate(decision)),
      log,
    );
    return all;
  });
  return {
    plan,
    early,
    onSettled: () => {
      settled += 1;
    },
    decisions,
    undecided: () => undecided,
    marksLeft: (outcomes) =>
      !carryNotDue &&
      (notDueUndecided > 0 ||
        outcomes.some(
          (outcome) =>
            outcome.action.kind === 'mark' && outcome.status !== 'done' && outcome.status !== 'already-gone',
        )),
  };
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

/** The snapshot inventory (complete, or it rejects and nothing changes), counted as its pages come. */
function listSnapshots(
  snapshots: SnapshotPorts,
  request: SweepRequest,
  context: { accountId: string; warnings: string[]; progress?: ProgressPort | undefined },
): Promise<SnapshotInventory> {
  const { progress } = context;
  return gatherStep('snapshots', () =>
    gatherSnapshotInventory(snapshots, {
      accountId: context.accountId,
      policy: request.policy,
      warnings: context.warnings,
      progress: progress && { onPage: (listed) => progress.report({ phase: 'snapshots', listed }) },
    }).then((listed) => {
      progress?.report({ phase: 'snapshots', listed: listed.snapshots.length });
      return listed;
    }),
  );
}

/**
 * The snapshot chain: once the inventory is in, every snapshot decided, sharing read within the
 * invocation's budget, and the plan. When the run streams, an orphan due for deletion goes to the
 * executor (`early`) as soon as its sharing shows it is not shared and the cap is certain to take it.
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
    inventory: Promise<SnapshotInventory>;
    streaming: boolean;
  },
): {
  plan: Promise<{ evaluation: SnapshotEvaluation; plan: SnapshotPlan } | undefined>;
  early: Feed<PlannedSnapshotAction>;
  onSettled: () => void;
} {
  const { policy, now } = request;
  const { warnings, log, progress } = context;
  let settled = 0;
  const budget = readBudget(request, snapshots.actions.deletionsPerSecond, () => settled);
  const early = new Feed<PlannedSnapshotAction>();
  const plan = context.inventory.then(async (listed) => {
    try {
      const { binned } = await context.undo;
      const lifecycle = snapshotLifecycle(policy, listed.snapshots.length);
      const decided = new Map<string, SnapshotDecision>();
      let gate: CapGate<Snapshot> | undefined;
      const evaluation = await evaluateSnapshots(snapshots, listed, {
        ...context,
        policy,
        now,
        budget,
        binnedImages: binned,
        onShareChecked:
          progress && ((done, total) => progress.report({ phase: 'snapshot-shares', done, total })),
        onCandidates: (candidates) => {
          if (!context.streaming) return;
          gate = new CapGate(
            lifecycle,
            candidates.filter((snapshot) => dueAdvance(lifecycle, snapshot, now) !== undefined),
          );
        },
        onDecided: (snapshot, decision) => {
          if (!gate) return;
          decided.set(snapshot.snapshotId, decision);
          for (const released of gate.settle(snapshot, decision.verdict === 'orphan')) {
            const move = dueAdvance(lifecycle, released, now);
            if (move) early.push(snapshotAdvanceAction(move, decided.get(released.snapshotId)));
          }
          if (gate.complete && !early.finished) early.finish();
        },
      });
      return { evaluation, plan: buildSnapshotPlan({ ...evaluation, policy, now }) };
    } catch (error) {
      // By now images may be in the middle of being removed: their report must not be lost.
      warnings.push(
        `snapshots were not decided (${errorCode(error)}): ${errorMessage(error)}; ${
          early.pushed.length > 0
            ? `only the ${early.pushed.length} deletions decided before then went ahead`
            : 'none was changed'
        }`,
      );
      log.error('snapshots not decided', { error });
      return undefined;
    }
  });
  return {
    plan,
    early,
    onSettled: () => {
      settled += 1;
    },
  };
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
 * acts, and what was not decided is decided by the next one. Reference checks stop the same way.
 */
const SHARE_CHECKS_LEAVE_FOR_ACTING = 0.4;

/**
 * Share checks (and the reference checks of images due for removal) also stop once the removals
 * decided and not yet carried out would take the rest of the invocation at the pace removals are
 * held to: the next invocation would only read the others again. Runs without a deadline read it all.
 */
function readBudget(
  request: SweepRequest,
  removalsPerSecond: number | undefined,
  carriedOut: () => number,
): ReadBudget | undefined {
  const start = request.deadline.remainingMs();
  if (!Number.isFinite(start) || request.mode !== 'apply') return undefined;
  const reserve = request.reserveMs ?? DEFAULT_RESERVE_MS;
  const floor = reserve + start * SHARE_CHECKS_LEAVE_FOR_ACTING;
  return {
    mayRead: () => request.deadline.remainingMs() > floor,
    removalsFill: (decided) =>
      removalsPerSecond !== undefined &&
      removalsPerSecond > 0 &&
      ((decided - carriedOut()) / removalsPerSecond) * 1000 >= request.deadline.remainingMs() - reserve,
  };
}

/**
 * References cost a call per 10 images, far less than sharing's one per orphan: only those of
 * images due for removal are held back, once the removals decided fill the invocation. The rest
 * are always read, so each candidate's mark (or its being kept) is planned in every invocation.
 */
function referencesNotReadReason(budget: ReadBudget, due: boolean, decided: number): string | undefined {
  if (due && budget.removalsFill(decided)) {
    return 'its references were not read: the removals already decided fill this invocation; decided on the next';
  }
  return undefined;
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
  total: () => number,
  progress: ProgressPort,
): Log {
  let done = 0;
  progress.report({ phase, done, total: total() });
  return {
    debug: (text, ...extra) => log.debug(text, ...extra),
    info: (text, ...extra) => {
      log.info(text, ...extra);
      if (text === message) {
        done += 1;
        progress.report({ phase, done, total: Math.max(done, total()) });
      }
    },
    warn: (text, ...extra) => log.warn(text, ...extra),
    error: (text, ...extra) => log.error(text, ...extra),
  };
}
