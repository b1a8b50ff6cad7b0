import { createImageActions, createInventory } from '../../src/adapters/ec2.ts';
import { ApiLimiter } from '../../src/adapters/limiter.ts';
import { createSnapshotPorts } from '../../src/adapters/snapshots.ts';
import { type Policy, parsePolicy } from '../../src/config/policy.ts';
import {
  type Continuation,
  continueReport,
  MAX_INVOCATIONS,
  nextContinuation,
} from '../../src/core/continuation.ts';
import type { Log, LogExtra } from '../../src/core/ports.ts';
import type { RunReport } from '../../src/core/report.ts';
import { runSweep } from '../../src/core/sweep.ts';
import { type AccountCounts, DEFAULT_AS_OF, generateAccount, type Intended, mulberry32 } from './account.ts';
import { awsBucket } from './aws-rates.ts';
import { evaluateReference, type ReferenceEvaluation } from './oracle.ts';
import {
  type AssociatedSnapshots,
  type BackgroundLoad,
  type CallCounts,
  type ClockMode,
  callsBetween,
  DEFAULT_BACKGROUND,
  DEFAULT_LATENCY,
  Ec2Simulator,
  type Latency,
  type Redundancy,
  SimClock,
} from './simulator.ts';

/**
 * The machinery shared by `npm run bench` and the smoke test: an account, the simulator, and the
 * real adapters and core wired to them, run as Lambda invocations on the simulated clock.
 */

/** Lambda's maximum timeout: one invocation's budget. */
export const INVOCATION_MS = 900_000;
/** The sweep handler's middy `timeoutEarlyInMillis`: in-flight calls are aborted this long before the end. */
export const EARLY_TIMEOUT_MS = 10_000;

export interface BenchConfig {
  counts: AccountCounts;
  seed?: number;
  /** Simulated seconds per real second of waiting. */
  scale?: number;
  clock?: ClockMode;
  /** The limiter's share of each bucket; the limiter's own default when absent. */
  headroom?: number;
  /** Each invocation's time budget in simulated ms; Infinity for none. */
  invocationMs?: number;
  asOf?: Date;
  /** How long the simulated EC2 takes to answer; DEFAULT_LATENCY when absent. */
  latency?: Latency;
  /** Other tools drawing on the same buckets; DEFAULT_BACKGROUND when absent (share 0 for none). */
  background?: BackgroundLoad;
  /** Whether DeleteAssociatedSnapshots draws on the DeleteSnapshot bucket. */
  associatedSnapshots?: AssociatedSnapshots;
}

/** A full sweep: live, grace period 7 days, caps high enough to remove everything eligible. */
export function benchPolicy(): Policy {
  return parsePolicy({
    dryRun: false,
    graceDays: 7,
    maxRemovalsPerRun: 1_000_000,
    snapshots: { maxDeletionsPerRun: 1_000_000 },
    // CloudTrail attribution is out of scope: the simulator has no CloudTrail.
    attribution: { maxLookupsPerRun: 0 },
  });
}

export interface Invocation {
  index: number;
  mode: 'plan' | 'apply';
  report?: RunReport;
  error?: Error;
  /** The early timeout fired and aborted whatever was in flight. */
  timedOut: boolean;
  /** Simulated clock when the invocation started. */
  startMs: number;
  /** Simulated ms from start to the report (or the failure). */
  wallMs: number;
  /** Process CPU while the invocation ran, in ms (the simulator's included). */
  cpuMs: number;
  calls: CallCounts;
  /** Backoff sleeps withRetry took: one per retried attempt. */
  retries: number;
  /** Simulated ms each API's callers waited in the limiter. */
  limiterWaitMs: Record<string, number>;
  /** What the account held when the invocation started, evaluated by src's pure core. */
  reference: ReferenceEvaluation;
  redundancy: Redundancy;
  warnings: number;
}

/** A run continued over invocations until the account is done, as the state machine runs it. */
export interface Job {
  invocations: Invocation[];
  /** The report covering the whole run, built by src's own continueReport. */
  combined?: RunReport;
  /** The run's report says it is complete. */
  complete: boolean;
  /** Why the loop stopped, when it stopped short of a complete run. */
  stopped?: string;
  startMs: number;
  /** Simulated ms from the first invocation's start to the last one's end. */
  simulatedMs: number;
  realMs: number;
  /** What the account held before the job: the composition its minimum comes from. */
  reference: ReferenceEvaluation;
}

export class Bench {
  readonly counts: AccountCounts;
  readonly intended: Intended;
  readonly clock: SimClock;
  readonly simulator: Ec2Simulator;
  readonly policy: Policy;
  readonly asOf: Date;
  readonly invocationMs: number;
  readonly latency: Latency;
  readonly background: BackgroundLoad;
  readonly associatedSnapshots: AssociatedSnapshots;
  readonly log = new QuietLog();
  readonly invocations: Invocation[] = [];
  /**
   * One limiter for every invocation, like the handler's module-scope one in a warm container: it
   * remembers how far the previous invocation drained each bucket.
   */
  readonly limiter: ApiLimiter;
  private readonly random: () => number;

  constructor(config: BenchConfig) {
    this.policy = benchPolicy();
    this.asOf = config.asOf ?? DEFAULT_AS_OF;
    const account = generateAccount({
      counts: config.counts,
      seed: config.seed ?? 1,
      asOf: this.asOf,
      launchTemplateVersions: this.policy.inUse.launchTemplateVersions,
      maxAgeDays: this.policy.maxAgeDays,
      unusedDays: this.policy.unusedDays,
      keepLatest: this.policy.keepLatest.count,
    });
    this.counts = account.counts;
    this.intended = account.intended;
    this.clock = new SimClock(config.scale ?? 50, config.clock ?? 'idle');
    this.latency = config.latency ?? DEFAULT_LATENCY;
    this.background = { seed: config.seed ?? 1, ...(config.background ?? DEFAULT_BACKGROUND) };
    this.associatedSnapshots = config.associatedSnapshots ?? 'free';
    // The simulator takes the account over; nothing else keeps a copy, so RSS counts it once.
    this.simulator = new Ec2Simulator(account, this.clock, {
      latency: this.latency,
      background: this.background,
      associatedSnapshots: this.associatedSnapshots,
    });
    this.invocationMs = config.invocationMs ?? INVOCATION_MS;
    this.limiter = new ApiLimiter({
      clock: this.clock,
      ...(config.headroom === undefined ? {} : { headroom: config.headroom }),
    });
    this.random = mulberry32((config.seed ?? 1) ^ 0x5eed);
  }

  /** src's own verdicts on the account as it is now. */
  reference(): ReferenceEvaluation {
    return evaluateReference(this.simulator.state(), this.policy, this.asOf);
  }

  /**
   * One Lambda invocation of the sweep, as the handler wires it, on the simulated clock. `continuing`
   * is what the continuation hands a later invocation of a continued run: its invocation number and
   * whether marks were left, as sweep-target passes them.
   */
  async invoke(
    mode: 'plan' | 'apply',
    reference = this.reference(),
    continuing?: { invocation: number; marksLeft?: boolean | undefined },
  ): Promise<Invocation> {
    const { clock, simulator, policy } = this;
    const before = simulator.calls();
    const redundancyBefore = { ...simulator.redundancy };
    const warningsBefore = this.log.warnings;
    simulator.resetWindows();
    const aborter = new AbortController();
    const stopTimer = new AbortController();
    const { limiter } = this;
    const waitedBefore = new Map(limiter.waitedMs);
    let retries = 0;
    const deps = {
      ec2: simulator.ec2,
      autoScaling: simulator.autoScaling,
      ssm: simulator.ssm,
      sts: simulator.sts,
      limiter,
      retry: {
        sleep: (ms: number, signal?: AbortSignal) => {
          retries++;
          return clock.sleep(ms, signal);
        },
        random: this.random,
        maxAttempts: 10,
      },
      log: this.log,
      signal: aborter.signal,
    };
    const start = clock.now();
    const cpuStart = process.cpuUsage();
    let timedOut = false;
    if (Number.isFinite(this.invocationMs)) {
      clock.sleep(this.invocationMs - EARLY_TIMEOUT_MS, stopTimer.signal).then(
        () => {
          timedOut = true;
          aborter.abort(Object.assign(new Error('invocation timed out'), { name: 'AbortError' }));
        },
        () => undefined,
      );
    }
    let report: RunReport | undefined;
    let error: Error | undefined;
    try {
      report = await runSweep(
        {
          inventory: createInventory({
            ...deps,
            launchTemplateVersions: policy.inUse.launchTemplateVersions,
          }),
          actions: createImageActions(deps),
          snapshots: createSnapshotPorts(deps),
          log: this.log,
        },
        {
          policy,
          region: simulator.region,
          now: this.asOf,
          mode,
          dryRun: false,
          deadline: { remainingMs: () => start + this.invocationMs - clock.now() },
          ...(continuing ? { continuing } : {}),
        },
      );
    } catch (caught) {
      error = caught instanceof Error ? caught : new Error(String(caught));
    } finally {
      stopTimer.abort();
    }
    const wallMs = clock.now() - start;
    const cpu = process.cpuUsage(cpuStart);
    const invocation: Invocation = {
      index: this.invocations.length + 1,
      mode,
      ...(report ? { report } : {}),
      ...(error ? { error } : {}),
      timedOut,
      startMs: start,
      wallMs,
      cpuMs: (cpu.user + cpu.system) / 1000,
      calls: callsBetween(before, simulator.calls()),
      retries,
      limiterWaitMs: Object.fromEntries(
        [...limiter.waitedMs].map(([api, ms]) => [api, ms - (waitedBefore.get(api) ?? 0)]),
      ),
      reference,
      redundancy: {
        removedAgain: simulator.redundancy.removedAgain - redundancyBefore.removedAgain,
        markedAgain: simulator.redundancy.markedAgain - redundancyBefore.markedAgain,
        unmarkedAgain: simulator.redundancy.unmarkedAgain - redundancyBefore.unmarkedAgain,
      },
      warnings: this.log.warnings - warningsBefore,
    };
    this.invocations.push(invocation);
    return invocation;
  }

  /**
   * The whole job: apply invocations back to back, each handing its continuation to the next as the
   * state machine does, until the run's report is complete (or MAX_INVOCATIONS, or three invocations
   * in a row that change nothing). A failed invocation leaves its message on the queue: the same
   * continuation is tried again.
   */
  async runJob(
    options: { reference?: ReferenceEvaluation; onInvocation?: (invocation: Invocation) => void } = {},
  ): Promise<Job> {
    const reference = options.reference ?? this.reference();
    const runId = 'bench-run';
    const invocations: Invocation[] = [];
    let previous: Continuation | undefined;
    let combined: RunReport | undefined;
    let stalled = 0;
    let stopped: string | undefined;
    const startMs = this.clock.now();
    const realStart = performance.now();
    for (let index = 1; index <= MAX_INVOCATIONS; index++) {
      const invocation = await this.invoke(
        'apply',
        index === 1 ? reference : undefined,
        previous ? { invocation: previous.invocation, marksLeft: previous.marksLeft } : undefined,
      );
      invocations.push(invocation);
      options.onInvocation?.(invocation);
      const report = invocation.report;
      if (report) {
        combined = continueReport(report, previous, runId);
        previous = nextContinuation(combined, true);
        if (!previous) break;
      }
      const t = report?.totals;
      const progress = t ? t.deregistered + t.orphansDeleted + t.marked + t.unmarked : 0;
      stalled = progress > 0 ? 0 : stalled + 1;
      if (stalled >= 3) {
        stopped = 'three invocations in a row made no progress';
        break;
      }
      if (index === MAX_INVOCATIONS) stopped = `the run stopped at its ${MAX_INVOCATIONS}-invocation limit`;
    }
    return {
      invocations,
      ...(combined ? { combined } : {}),
      complete: combined?.complete === true,
      ...(stopped ? { stopped } : {}),
      startMs,
      simulatedMs: this.clock.now() - startMs,
      realMs: performance.now() - realStart,
      reference,
    };
  }

  close(): void {
    this.simulator.restore();
  }
}

/**
 * What a report leaves undone: actions not reached, and orphans whose sharing was never read
 * (decided `not-reached`), which are as far from deleted as an action never started.
 */
export function notReachedOf(report: RunReport | undefined): { actions: number; unread: number } {
  if (!report) return { actions: 0, unread: 0 };
  return {
    actions: report.totals.notReached,
    unread: report.snapshotDecisions.filter((decision) => decision.rule === 'not-reached').length,
  };
}

// ---------------------------------------------------------------------------------------------
// Minimum calls, from the account's composition

/**
 * The sweep's two chains, which run side by side: images (references, then deregistrations) and
 * snapshots (share checks, then deletions). Each acts once its own decisions are made.
 */
export type Chain = 'images' | 'snapshots';
export const CHAINS: readonly Chain[] = ['images', 'snapshots'];

interface Phases {
  decide: number;
  act: number;
}

/** `decide`: reads a sweep needs before it can act; `act`: the actions and their re-checks. */
export interface MinimumRow extends Phases {
  api: string;
  formula: string;
  /** The calls each chain needs; a read both chains wait for (the image list) counts in each. */
  chains: Partial<Record<Chain, Phases>>;
}

const inImages = (decide: number, act = 0) => ({ images: { decide, act } });
const inSnapshots = (decide: number, act = 0) => ({ snapshots: { decide, act } });

const ceil = (n: number, per: number) => Math.ceil(n / per);
/** EC2 takes at most 200 values in one filter, which bounds a re-check by id. */
const FILTER_VALUES = 200;

/**
 * The fewest calls per API one uninterrupted sweep of `reference` needs, from the account's
 * composition alone (its images, snapshots, orphans and removal candidates, and the page sizes):
 * in apply mode, every action its plan holds. Nothing here comes from what a run did, so a run
 * that leaves work undone is measured against the work, not against itself.
 */
export function minimumCalls(
  reference: ReferenceEvaluation,
  mode: 'plan' | 'apply',
  policy: Policy,
): MinimumRow[] {
  const work = mode === 'apply' ? plannedWork(reference) : undefined;
  const imageList = Math.max(1, ceil(reference.images, 1000));
  const reCheck = work ? ceil(work.deregistrations, FILTER_VALUES) : 0;
  const snapshotList = Math.max(1, ceil(reference.snapshots, 1000));
  const snapshotReCheck = work ? ceil(work.orphanDeletions, FILTER_VALUES) : 0;
  const imageSnapshotReCheck = work ? ceil(work.imageSnapshots, FILTER_VALUES) : 0;
  const volumeList =
    policy.snapshots.mode === 'all-unreferenced' ? Math.max(1, ceil(reference.volumes, 500)) : 0;
  const candidateReferences = ceil(reference.referenceCandidates, 10);
  const otherReferences = ceil(reference.images - reference.referenceCandidates, 10);
  const rows: MinimumRow[] = [
    {
      api: 'GetCallerIdentity',
      decide: 1,
      act: 0,
      formula: '1 (STS, not metered)',
      chains: { ...inImages(1), ...inSnapshots(1) },
    },
    {
      api: 'DescribeImages',
      decide: imageList,
      act: reCheck,
      formula: '⌈images/1000⌉ + ⌈deregistrations/200⌉ (re-check: 200 ids per filter)',
      chains: { ...inImages(imageList, reCheck), ...inSnapshots(imageList) },
    },
    {
      api: 'DescribeImageReferences',
      decide: candidateReferences,
      act: otherReferences,
      formula:
        '⌈images other rules let go/10⌉ before acting + ⌈the rest/10⌉ alongside (their use only explains a keep)',
      chains: inImages(candidateReferences, otherReferences),
    },
    {
      api: 'DescribeLaunchTemplates',
      decide: Math.max(1, ceil(reference.launchTemplates, 200)),
      act: 0,
      formula: '⌈templates/200⌉ (to find $Default versions older than the depth)',
      chains: inImages(Math.max(1, ceil(reference.launchTemplates, 200))),
    },
    {
      api: 'DescribeLaunchTemplateVersions',
      decide: reference.templatesOutsideDepth,
      act: 0,
      formula: 'templates whose $Default is older than the version depth',
      chains: inImages(reference.templatesOutsideDepth),
    },
    {
      api: 'DescribeAutoScalingGroups',
      decide: 1,
      act: 0,
      formula: '1 page (Auto Scaling, not metered)',
      chains: inImages(1),
    },
    {
      api: 'DescribeLaunchConfigurations',
      decide: 1,
      act: 0,
      formula: '1 page (Auto Scaling, not metered)',
      chains: inImages(1),
    },
    {
      api: 'DescribeSnapshots',
      decide: snapshotList,
      act: snapshotReCheck + imageSnapshotReCheck,
      formula:
        '⌈snapshots/1000⌉ + ⌈orphan deletions/200⌉ + ⌈snapshots of deregistrations/200⌉ (re-checks: 200 ids per filter)',
      chains: { ...inSnapshots(snapshotList, snapshotReCheck), ...inImages(0, imageSnapshotReCheck) },
    },
    {
      api: 'DescribeLockedSnapshots',
      decide: Math.max(1, ceil(reference.lockEntries, 1000)),
      act: 0,
      formula: '⌈locked snapshots/1000⌉',
      chains: inSnapshots(Math.max(1, ceil(reference.lockEntries, 1000))),
    },
    {
      api: 'DescribeVolumes',
      decide: volumeList,
      act: 0,
      formula: 'mode all-unreferenced only: ⌈volumes/500⌉',
      chains: inSnapshots(volumeList),
    },
    {
      api: 'DescribeSnapshotAttribute',
      decide: reference.orphanCandidates,
      act: 0,
      formula: 'orphan candidates: every orphan that passes all checks but sharing, read once',
      chains: inSnapshots(reference.orphanCandidates),
    },
    {
      api: 'DescribeImageAttribute',
      decide: 0,
      act: 0,
      formula: '0: no sweep rule reads launch permissions (Public comes with DescribeImages)',
      chains: inImages(0),
    },
    {
      api: 'CreateTags',
      decide: 0,
      act: work ? ceil(work.imageMarks, 1000) + ceil(work.snapshotMarks, 1000) : 0,
      formula: '⌈images to mark/1000⌉ + ⌈snapshots to mark/1000⌉',
      chains: {
        ...inImages(0, work ? ceil(work.imageMarks, 1000) : 0),
        ...inSnapshots(0, work ? ceil(work.snapshotMarks, 1000) : 0),
      },
    },
    {
      api: 'DeleteTags',
      decide: 0,
      act: work ? ceil(work.imageUnmarks, 1000) + ceil(work.snapshotUnmarks, 1000) : 0,
      formula: '⌈images to unmark/1000⌉ + ⌈snapshots to unmark/1000⌉',
      chains: {
        ...inImages(0, work ? ceil(work.imageUnmarks, 1000) : 0),
        ...inSnapshots(0, work ? ceil(work.snapshotUnmarks, 1000) : 0),
      },
    },
    {
      api: 'EnableImageDeprecation',
      decide: 0,
      act: work?.deprecationsSet ?? 0,
      formula: 'images to mark whose deprecation is ours to set (no batch API)',
      chains: inImages(0, work?.deprecationsSet ?? 0),
    },
    {
      api: 'DisableImageDeprecation',
      decide: 0,
      act: work?.deprecationsCancelled ?? 0,
      formula: 'images to unmark whose deprecation was ours',
      chains: inImages(0, work?.deprecationsCancelled ?? 0),
    },
    {
      api: 'DeregisterImage',
      decide: 0,
      act: work?.deregistrations ?? 0,
      formula: 'images to deregister (their snapshots go with DeleteAssociatedSnapshots)',
      chains: inImages(0, work?.deregistrations ?? 0),
    },
    {
      api: 'DeleteSnapshot',
      decide: 0,
      act: work ? work.orphanDeletions + work.separateSnapshotDeletions : 0,
      formula: 'orphans to delete + own snapshots of images to deregister that keep or share another',
      chains: {
        ...inImages(0, work?.separateSnapshotDeletions ?? 0),
        ...inSnapshots(0, work?.orphanDeletions ?? 0),
      },
    },
  ];
  return rows;
}

/** The actions in the plan of the account as it is before the job. */
export interface PlannedWork {
  deregistrations: number;
  /** Snapshots planned to go with their images: read again, 200 per call, before deregistering. */
  imageSnapshots: number;
  /** Own snapshots of deregistered images deleted by DeleteSnapshot (the image shares or keeps another). */
  separateSnapshotDeletions: number;
  /** Own snapshots that go with their image through DeleteAssociatedSnapshots. */
  associatedSnapshotDeletions: number;
  imageMarks: number;
  imageUnmarks: number;
  deprecationsSet: number;
  deprecationsCancelled: number;
  orphanDeletions: number;
  snapshotMarks: number;
  snapshotUnmarks: number;
}

export function plannedWork(reference: ReferenceEvaluation): PlannedWork {
  const plan = reference.plan;
  const deregister = plan.actions.filter((a) => a.kind === 'deregister');
  const marks = plan.actions.filter((a) => a.kind === 'mark');
  const unmarks = plan.actions.filter((a) => a.kind === 'unmark');
  const snapshotActions = plan.snapshots?.actions ?? [];
  // The executor deletes an image's snapshots with it only when every one of them goes.
  const separately = (a: (typeof deregister)[number]) =>
    (a.sharedSnapshotIds ?? []).length > 0 || (a.keptSnapshots ?? []).length > 0;
  const own = (a: (typeof deregister)[number]) => (a.snapshotIds ?? []).length;
  return {
    deregistrations: deregister.length,
    imageSnapshots: deregister.reduce((sum, a) => sum + own(a), 0),
    separateSnapshotDeletions: deregister.filter(separately).reduce((sum, a) => sum + own(a), 0),
    associatedSnapshotDeletions: deregister.filter((a) => !separately(a)).reduce((sum, a) => sum + own(a), 0),
    imageMarks: marks.length,
    imageUnmarks: unmarks.length,
    deprecationsSet: marks.filter((a) => a.touchDeprecation).length,
    deprecationsCancelled: unmarks.filter((a) => a.touchDeprecation).length,
    orphanDeletions: snapshotActions.filter((a) => a.kind === 'delete').length,
    snapshotMarks: snapshotActions.filter((a) => a.kind === 'mark').length,
    snapshotUnmarks: snapshotActions.filter((a) => a.kind === 'unmark').length,
  };
}

// ---------------------------------------------------------------------------------------------
// Lower bounds on time

/**
 * The tokens each bucket must give one uninterrupted sweep: one per call of its API and, when
 * DeleteAssociatedSnapshots is read as drawing on the DeleteSnapshot bucket, one per snapshot
 * deleted with its image.
 */
export function bucketDemand(
  rows: readonly MinimumRow[],
  reference: ReferenceEvaluation,
  associatedSnapshots: AssociatedSnapshots,
): Map<string, number> {
  const demand = new Map<string, number>();
  for (const row of rows) {
    const calls = row.decide + row.act;
    if (calls > 0 && awsBucket(row.api)) demand.set(row.api, (demand.get(row.api) ?? 0) + calls);
  }
  if (associatedSnapshots === 'metered') {
    const extra = plannedWork(reference).associatedSnapshotDeletions;
    if (extra > 0) demand.set('DeleteSnapshot', (demand.get('DeleteSnapshot') ?? 0) + extra);
  }
  return demand;
}

export interface PipelinedBound {
  ms: number;
  /** The bucket that takes longest, and its tokens. */
  busiest: string;
  tokens: number;
}

/**
 * The pipelined bound: every independent stream overlapped, so the job takes as long as its
 * busiest bucket needs to hand out every token, max(0, tokens − size·h) / (refill·h), at `headroom`
 * h of each bucket (1 for all of it). No sweep of this account can be quicker.
 */
export function pipelinedBoundOf(demand: ReadonlyMap<string, number>, headroom = 1): PipelinedBound {
  let best: PipelinedBound = { ms: 0, busiest: '-', tokens: 0 };
  for (const [api, tokens] of demand) {
    const ms = drainMs(api, tokens, headroom);
    if (ms > best.ms || best.busiest === '-') best = { ms, busiest: api, tokens };
  }
  return best;
}

/**
 * The shortest time the buckets allow one invocation's `rows`, in simulated ms. Within a chain,
 * every API drains its own bucket in parallel, so a phase lasts as long as its slowest API,
 * max(0, calls − burst) / refill, and the chain's phases add up, since it acts on what it decided.
 * The two chains run side by side: the sweep takes as long as the longer one, and never less than
 * any API needs for all its calls. With `headroom` < 1 the bucket and refill are scaled down as
 * the limiter scales them.
 */
export function lowerBound(rows: readonly MinimumRow[], headroom = 1): number {
  return Math.max(
    ...CHAINS.map((chain) => {
      const phases = phaseBounds(rows, headroom, chain);
      return phases.decide + phases.act;
    }),
    pipelinedBound(rows, headroom),
  );
}

/** Each phase's slowest API, over every API or over one chain's share of the calls. */
export function phaseBounds(rows: readonly MinimumRow[], headroom = 1, chain?: Chain): Phases {
  const callsOf = (row: MinimumRow): Phases => (chain ? (row.chains[chain] ?? { decide: 0, act: 0 }) : row);
  const slowest = (phase: keyof Phases) =>
    Math.max(0, ...rows.map((row) => drainMs(row.api, callsOf(row)[phase], headroom)));
  return { decide: slowest('decide'), act: slowest('act') };
}

/** Every API of every phase at once: the bound for a sweep that overlapped deciding and acting. */
export function pipelinedBound(rows: readonly MinimumRow[], headroom = 1): number {
  return Math.max(0, ...rows.map((row) => drainMs(row.api, row.decide + row.act, headroom)));
}

/** The time AWS's bucket for `api` needs to hand out `tokens`, at `headroom` of its size and refill. */
export function drainMs(api: string, tokens: number, headroom = 1): number {
  const limit = awsBucket(api);
  if (!limit || tokens === 0) return 0;
  return (Math.max(0, tokens - limit.bucket * headroom) / (limit.refillPerSecond * headroom)) * 1000;
}

// ---------------------------------------------------------------------------------------------

/** The sweep logs every decision; the bench counts warnings and errors and prints nothing. */
export class QuietLog implements Log {
  warnings = 0;
  errors = 0;
  readonly samples: string[] = [];
  debug(): void {}
  info(): void {}
  warn(message: string, ...extra: LogExtra): void {
    // Findings (public images, ...) are the audit's output, not trouble in the run.
    if (message === 'finding') return;
    this.warnings++;
    this.sample('warn', message, extra);
  }
  error(message: string, ...extra: LogExtra): void {
    this.errors++;
    this.sample('error', message, extra);
  }
  private sample(level: string, message: string, extra: LogExtra): void {
    if (this.samples.length >= 10) return;
    const first = extra[0];
    const detail = first instanceof Error ? first.message : typeof first === 'string' ? first : '';
    this.samples.push(`${level}: ${message}${detail ? ` (${detail})` : ''}`);
  }
}
