import { createImageActions, createInventory } from '../../src/adapters/ec2.ts';
import { ApiLimiter } from '../../src/adapters/limiter.ts';
import { createSnapshotPorts } from '../../src/adapters/snapshots.ts';
import { type Policy, parsePolicy } from '../../src/config/policy.ts';
import type { Log, LogExtra } from '../../src/core/ports.ts';
import type { RunReport } from '../../src/core/report.ts';
import { runSweep } from '../../src/core/sweep.ts';
import { type AccountCounts, DEFAULT_AS_OF, generateAccount, type Intended, mulberry32 } from './account.ts';
import { evaluateReference, type ReferenceEvaluation } from './oracle.ts';
import {
  type CallCounts,
  type ClockMode,
  callsBetween,
  Ec2Simulator,
  ec2Bucket,
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
  minimum: MinimumRow[];
  /** Bound for the work this invocation actually did (see lowerBound). */
  boundMs: number;
  boundAtHeadroomMs: number;
  /** Bound for everything the account needed when the invocation started. */
  fullBoundMs: number;
  redundancy: Redundancy;
  warnings: number;
}

export class Bench {
  readonly counts: AccountCounts;
  readonly intended: Intended;
  readonly clock: SimClock;
  readonly simulator: Ec2Simulator;
  readonly policy: Policy;
  readonly asOf: Date;
  readonly invocationMs: number;
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
    // The simulator takes the account over; nothing else keeps a copy, so RSS counts it once.
    this.simulator = new Ec2Simulator(account, this.clock);
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

  /** One Lambda invocation of the sweep, as the handler wires it, on the simulated clock. */
  async invoke(mode: 'plan' | 'apply', reference = this.reference()): Promise<Invocation> {
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
        },
      );
    } catch (caught) {
      error = caught instanceof Error ? caught : new Error(String(caught));
    } finally {
      stopTimer.abort();
    }
    const wallMs = clock.now() - start;
    const cpu = process.cpuUsage(cpuStart);
    const calls = callsBetween(before, simulator.calls());
    const minimum = minimumCalls(reference, report, mode, policy);
    const full = minimumCalls(reference, undefined, mode, policy);
    const invocation: Invocation = {
      index: this.invocations.length + 1,
      mode,
      ...(report ? { report } : {}),
      ...(error ? { error } : {}),
      timedOut,
      startMs: start,
      wallMs,
      cpuMs: (cpu.user + cpu.system) / 1000,
      calls,
      retries,
      limiterWaitMs: Object.fromEntries(
        [...limiter.waitedMs].map(([api, ms]) => [api, ms - (waitedBefore.get(api) ?? 0)]),
      ),
      reference,
      minimum,
      boundMs: lowerBound(minimum),
      boundAtHeadroomMs: lowerBound(minimum, limiter.headroom),
      fullBoundMs: lowerBound(full),
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

  close(): void {
    this.simulator.restore();
  }
}

// ---------------------------------------------------------------------------------------------
// Minimum calls

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
 * The fewest calls per API a sweep of `reference` needs, for the actions `report` shows were
 * actually carried out (every planned action when no report is given: the whole job).
 */
export function minimumCalls(
  reference: ReferenceEvaluation,
  report: RunReport | undefined,
  mode: 'plan' | 'apply',
  policy: Policy,
): MinimumRow[] {
  const work = mode === 'apply' ? actionsDone(reference, report) : undefined;
  const imageList = Math.max(1, ceil(reference.images, 1000));
  const reCheck = work ? ceil(work.deregistrationsPlanned, FILTER_VALUES) : 0;
  const snapshotList = Math.max(1, ceil(reference.snapshots, 1000));
  const snapshotReCheck = work ? ceil(work.deletionsPlanned, FILTER_VALUES) : 0;
  const imageSnapshotReCheck = work ? ceil(work.imageSnapshotsPlanned, FILTER_VALUES) : 0;
  const volumeList =
    policy.snapshots.mode === 'all-unreferenced' ? Math.max(1, ceil(reference.volumes, 500)) : 0;
  // Candidates left undecided (rule not-reached) had no share check: the next invocation reads them.
  const undecided = report?.snapshotDecisions.filter((d) => d.rule === 'not-reached').length ?? 0;
  const shareChecks = reference.orphanCandidates - undecided;
  const candidateReferences = ceil(reference.referenceCandidates, 10);
  const otherReferences = ceil(reference.images - reference.referenceCandidates, 10);
  const rows: MinimumRow[] = [
    {
      api: 'GetCallerIdentity',
      decide: 1,
      act: 0,
      formula: '1 per invocation (STS, not metered)',
      chains: { ...inImages(1), ...inSnapshots(1) },
    },
    {
      api: 'DescribeImages',
      decide: imageList,
      act: reCheck,
      formula: '⌈images/1000⌉ + ⌈deregistrations planned/200⌉ (re-check: 200 ids per filter)',
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
        '⌈snapshots/1000⌉ + ⌈orphan deletions planned/200⌉ + ⌈snapshots of deregistrations planned/200⌉ (re-checks: 200 ids per filter)',
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
      decide: shareChecks,
      act: 0,
      formula: 'orphan candidates decided (sharing is the last check; the rest wait for the next invocation)',
      chains: inSnapshots(shareChecks),
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
      formula: '⌈images marked/1000⌉ + ⌈snapshots marked/1000⌉',
      chains: {
        ...inImages(0, work ? ceil(work.imageMarks, 1000) : 0),
        ...inSnapshots(0, work ? ceil(work.snapshotMarks, 1000) : 0),
      },
    },
    {
      api: 'DeleteTags',
      decide: 0,
      act: work ? ceil(work.imageUnmarks, 1000) + ceil(work.snapshotUnmarks, 1000) : 0,
      formula: '⌈images unmarked/1000⌉ + ⌈snapshots unmarked/1000⌉',
      chains: {
        ...inImages(0, work ? ceil(work.imageUnmarks, 1000) : 0),
        ...inSnapshots(0, work ? ceil(work.snapshotUnmarks, 1000) : 0),
      },
    },
    {
      api: 'EnableImageDeprecation',
      decide: 0,
      act: work?.deprecationsSet ?? 0,
      formula: 'images marked whose deprecation is ours to set (no batch API)',
      chains: inImages(0, work?.deprecationsSet ?? 0),
    },
    {
      api: 'DisableImageDeprecation',
      decide: 0,
      act: work?.deprecationsCancelled ?? 0,
      formula: 'images unmarked whose deprecation was ours',
      chains: inImages(0, work?.deprecationsCancelled ?? 0),
    },
    {
      api: 'DeregisterImage',
      decide: 0,
      act: work?.deregistrations ?? 0,
      formula: 'images deregistered (snapshots go with DeleteAssociatedSnapshots)',
      chains: inImages(0, work?.deregistrations ?? 0),
    },
    {
      api: 'DeleteSnapshot',
      decide: 0,
      act: work ? work.orphanDeletions + work.separateSnapshotDeletions : 0,
      formula: 'orphans deleted + exclusive snapshots of deregistered images that also had a shared one',
      chains: {
        ...inImages(0, work?.separateSnapshotDeletions ?? 0),
        ...inSnapshots(0, work?.orphanDeletions ?? 0),
      },
    },
  ];
  return rows;
}

interface ActionsDone {
  deregistrationsPlanned: number;
  /** Snapshots planned to go with their images: read again, 200 per call, before deregistering. */
  imageSnapshotsPlanned: number;
  deregistrations: number;
  separateSnapshotDeletions: number;
  imageMarks: number;
  imageUnmarks: number;
  deprecationsSet: number;
  deprecationsCancelled: number;
  deletionsPlanned: number;
  orphanDeletions: number;
  snapshotMarks: number;
  snapshotUnmarks: number;
}

/** What needed a call: the actions a report shows were carried out, or the whole plan. */
function actionsDone(reference: ReferenceEvaluation, report: RunReport | undefined): ActionsDone {
  const plan = reference.plan;
  const snapshotPlan = plan.snapshots;
  if (!report) {
    const deregister = plan.actions.filter((a) => a.kind === 'deregister');
    const marks = plan.actions.filter((a) => a.kind === 'mark');
    const unmarks = plan.actions.filter((a) => a.kind === 'unmark');
    const snapshotActions = snapshotPlan?.actions ?? [];
    return {
      deregistrationsPlanned: deregister.length,
      imageSnapshotsPlanned: deregister.reduce((sum, a) => sum + (a.snapshotIds ?? []).length, 0),
      deregistrations: deregister.length,
      separateSnapshotDeletions: deregister
        .filter((a) => (a.sharedSnapshotIds ?? []).length > 0)
        .reduce((sum, a) => sum + (a.snapshotIds ?? []).length, 0),
      imageMarks: marks.length,
      imageUnmarks: unmarks.length,
      deprecationsSet: marks.filter((a) => a.touchDeprecation).length,
      deprecationsCancelled: unmarks.filter((a) => a.touchDeprecation).length,
      deletionsPlanned: snapshotActions.filter((a) => a.kind === 'delete').length,
      orphanDeletions: snapshotActions.filter((a) => a.kind === 'delete').length,
      snapshotMarks: snapshotActions.filter((a) => a.kind === 'mark').length,
      snapshotUnmarks: snapshotActions.filter((a) => a.kind === 'unmark').length,
    };
  }
  const acted = (status: string) => status === 'done' || status === 'failed';
  const images = report.actions;
  const snapshots = report.snapshotActions;
  const deregistered = images.filter((o) => o.action.kind === 'deregister' && acted(o.status));
  const marks = images.filter((o) => o.action.kind === 'mark' && acted(o.status));
  const unmarks = images.filter(
    (o) => o.action.kind === 'unmark' && (acted(o.status) || o.status === 'already-gone'),
  );
  return {
    deregistrationsPlanned: images.filter((o) => o.action.kind === 'deregister').length,
    imageSnapshotsPlanned: images
      .filter((o) => o.action.kind === 'deregister')
      .reduce((sum, o) => sum + (o.action.snapshotIds ?? []).length, 0),
    deregistrations: deregistered.length,
    separateSnapshotDeletions: deregistered
      .filter((o) => (o.action.sharedSnapshotIds ?? []).length > 0)
      .reduce((sum, o) => sum + (o.action.snapshotIds ?? []).length, 0),
    imageMarks: marks.length,
    imageUnmarks: unmarks.length,
    deprecationsSet: marks.filter((o) => o.status === 'done' && o.action.touchDeprecation).length,
    deprecationsCancelled: unmarks.filter((o) => o.action.touchDeprecation).length,
    deletionsPlanned: snapshots.filter((o) => o.action.kind === 'delete').length,
    orphanDeletions: snapshots.filter(
      (o) =>
        o.action.kind === 'delete' &&
        (acted(o.status) || (o.status === 'skipped' && o.detail?.startsWith('in use') === true)),
    ).length,
    snapshotMarks: snapshots.filter((o) => o.action.kind === 'mark' && acted(o.status)).length,
    snapshotUnmarks: snapshots.filter(
      (o) => o.action.kind === 'unmark' && (acted(o.status) || o.status === 'already-gone'),
    ).length,
  };
}

// ---------------------------------------------------------------------------------------------
// Lower bound on time

/**
 * The shortest time the buckets allow the sweep for `rows`, in simulated ms. Within a chain, every
 * API drains its own bucket in parallel, so a phase lasts as long as its slowest API,
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

export function drainMs(api: string, calls: number, headroom = 1): number {
  const limit = METERED_BY_SIMULATOR.has(api) ? ec2Bucket(api) : undefined;
  if (!limit || calls === 0) return 0;
  return (Math.max(0, calls - limit.bucket * headroom) / (limit.refillPerSecond * headroom)) * 1000;
}

/** STS, Auto Scaling and SSM are not metered (their buckets are far from anything a sweep sends). */
const METERED_BY_SIMULATOR = new Set([
  'DescribeImages',
  'DescribeImageReferences',
  'DescribeInstances',
  'DescribeLaunchTemplates',
  'DescribeLaunchTemplateVersions',
  'DescribeSnapshots',
  'DescribeLockedSnapshots',
  'DescribeVolumes',
  'DescribeSnapshotAttribute',
  'DescribeImageAttribute',
  'CreateTags',
  'DeleteTags',
  'EnableImageDeprecation',
  'DisableImageDeprecation',
  'DeregisterImage',
  'DeleteSnapshot',
  'ModifyImageAttribute',
  'ModifySnapshotAttribute',
]);

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
