import { countsFor } from './account.ts';
import { Bench, type BenchConfig, bucketDemand, minimumCalls, pipelinedBoundOf } from './harness.ts';
import type { OrganizationShape } from './options.ts';

/**
 * The organisation fan-out: the state machine's Map runs every target (an account in a Region, with
 * buckets of its own) at a bounded concurrency, each target's job invocation after invocation. A
 * slot takes the next target as soon as its current one is done, so the fan-out takes the makespan
 * of list-scheduling the targets' whole-job times, in Map order, on `concurrency` slots.
 */

export interface SampledTarget {
  seed: number;
  /** Simulated ms of the target's whole job. */
  jobMs: number;
  /** Its pipelined bound at the limiter's headroom. */
  boundMs: number;
  invocations: number;
  complete: boolean;
  failed: number;
  realMs: number;
}

export interface OrganizationResult {
  shape: OrganizationShape;
  targets: number;
  sampled: SampledTarget[];
  /** Makespan of the targets' measured job times on the Map's slots. */
  makespanMs: number;
  /** The same schedule of the targets' pipelined bounds: no fan-out of these targets is quicker. */
  boundMs: number;
  /** ⌈targets / concurrency⌉ × the slowest sampled job: the simple bound of waves. */
  wavesMs: number;
  realMs: number;
}

/** Targets in order, each to the slot that frees first: the makespan. */
export function listScheduleMs(durations: readonly number[], slots: number): number {
  if (!(slots >= 1)) throw new RangeError(`slots must be >= 1, got ${slots}`);
  const free = Array.from({ length: Math.min(slots, Math.max(1, durations.length)) }, () => 0);
  for (const duration of durations) {
    let earliest = 0;
    for (let slot = 1; slot < free.length; slot++) {
      if ((free[slot] ?? 0) < (free[earliest] ?? 0)) earliest = slot;
    }
    free[earliest] = (free[earliest] ?? 0) + duration;
  }
  return Math.max(0, ...free);
}

/**
 * Sweeps `shape.samples` targets of the organisation (each its own account, seed and buckets) as
 * whole jobs, and schedules all the targets on the Map's slots, target i taking sample i's times in
 * turn. Every target has the same size, so a few seeds stand for the spread among them.
 */
export async function runOrganization(
  shape: OrganizationShape,
  config: Omit<BenchConfig, 'counts' | 'seed'> & { seed?: number },
): Promise<OrganizationResult> {
  const started = performance.now();
  const targets = shape.accounts * shape.regions;
  const sampled: SampledTarget[] = [];
  for (let sample = 0; sample < Math.min(shape.samples, targets); sample++) {
    const seed = (config.seed ?? 1) * 1000 + sample + 1;
    const bench = new Bench({ ...config, counts: countsFor(shape.imagesPerTarget), seed });
    try {
      const reference = bench.reference();
      const demand = bucketDemand(
        minimumCalls(reference, 'apply', bench.policy),
        reference,
        bench.associatedSnapshots,
      );
      const job = await bench.runJob({ reference });
      const failed = job.invocations.reduce((sum, inv) => sum + (inv.report?.totals.failed ?? 0), 0);
      sampled.push({
        seed,
        jobMs: job.simulatedMs,
        boundMs: pipelinedBoundOf(demand, bench.limiter.headroom).ms,
        invocations: job.invocations.length,
        complete: job.complete,
        failed,
        realMs: job.realMs,
      });
    } finally {
      bench.close();
    }
  }
  const inTurn = <T>(pick: (target: SampledTarget) => T) =>
    Array.from({ length: targets }, (_, index) => pick(sampled[index % sampled.length] as SampledTarget));
  const slowest = Math.max(0, ...sampled.map((target) => target.jobMs));
  return {
    shape,
    targets,
    sampled,
    makespanMs: listScheduleMs(
      inTurn((target) => target.jobMs),
      shape.concurrency,
    ),
    boundMs: listScheduleMs(
      inTurn((target) => target.boundMs),
      shape.concurrency,
    ),
    wavesMs: Math.ceil(targets / shape.concurrency) * slowest,
    realMs: performance.now() - started,
  };
}
