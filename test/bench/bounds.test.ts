import { describe, expect, it } from 'vitest';
import { awsBucket, awsBucketFor } from '../../scripts/bench/aws-rates.ts';
import {
  bucketDemand,
  lowerBound,
  type MinimumRow,
  phaseBounds,
  pipelinedBound,
  pipelinedBoundOf,
} from '../../scripts/bench/harness.ts';
import type { ReferenceEvaluation } from '../../scripts/bench/oracle.ts';
import { listScheduleMs } from '../../scripts/bench/organization.ts';

/** A row whose calls all belong to one chain. */
function row(api: string, chain: 'images' | 'snapshots', decide: number, act: number): MinimumRow {
  return { api, decide, act, formula: '', chains: { [chain]: { decide, act } } };
}

describe('the bucket lower bound of a sweep whose two chains run side by side', () => {
  // Prepare: Describe* refill 20/s, DeregisterImage and DeleteSnapshot 5/s, all with a burst of 100.
  const rows: MinimumRow[] = [
    row('DescribeImageReferences', 'images', 1_100, 0), // (1100 − 100) / 20 = 50 s
    row('DeregisterImage', 'images', 0, 600), // (600 − 100) / 5 = 100 s
    row('DescribeSnapshotAttribute', 'snapshots', 4_100, 0), // 200 s
    row('DeleteSnapshot', 'snapshots', 0, 350), // 50 s
  ];

  it('adds up the phases within each chain and takes the longer chain', () => {
    // Act
    const images = phaseBounds(rows, 1, 'images');
    const snapshots = phaseBounds(rows, 1, 'snapshots');

    // Assess
    expect(images).toEqual({ decide: 50_000, act: 100_000 });
    expect(snapshots).toEqual({ decide: 200_000, act: 50_000 });
    expect(lowerBound(rows)).toBe(250_000);
  });

  it('is never below what one API needs for all its calls, whichever chain they serve', () => {
    // Prepare: deletions split between the chains, 1,100 in all on one bucket.
    const shared: MinimumRow = {
      api: 'DeleteSnapshot',
      decide: 0,
      act: 1_100,
      formula: '',
      chains: { images: { decide: 0, act: 550 }, snapshots: { decide: 0, act: 550 } },
    };

    // Act
    const bound = lowerBound([shared]);

    // Assess: each chain alone would allow 90 s; the bucket needs (1100 − 100) / 5 = 200 s.
    expect(pipelinedBound([shared])).toBe(200_000);
    expect(bound).toBe(200_000);
  });

  it('scales burst and refill down by the limiter headroom', () => {
    // Act: at 0.5 the burst is 50 and the refill 10/s for Describe*, 2.5/s for deletions.
    const paced = phaseBounds(rows, 0.5, 'snapshots');

    // Assess
    expect(paced).toEqual({ decide: 405_000, act: 120_000 });
  });
});

describe("the simulator's buckets: AWS's documented table, not the limiter's", () => {
  it('gives each API its documented bucket, by name or by category', () => {
    // Act / Assess
    expect(awsBucket('DeregisterImage')).toMatchObject({ bucket: 100, refillPerSecond: 5 });
    expect(awsBucket('DeleteSnapshot')).toMatchObject({ bucket: 100, refillPerSecond: 5 });
    expect(awsBucket('CreateTags')).toMatchObject({ bucket: 100, refillPerSecond: 10 });
    expect(awsBucket('DescribeImageReferences')).toMatchObject({ bucket: 100, refillPerSecond: 20 });
    // Not in AWS's list of actions with a bucket of their own: a mutating action.
    expect(awsBucket('EnableImageDeprecation')).toMatchObject({ bucket: 50, refillPerSecond: 5 });
    expect(awsBucket('GetCallerIdentity')).toBeUndefined();
  });

  it('sends an unfiltered, unpaginated DescribeSnapshots to the smaller bucket of its own', () => {
    // Act
    const listed = awsBucketFor('DescribeSnapshots', { filtered: true, paginated: true });
    const bare = awsBucketFor('DescribeSnapshots', { filtered: false, paginated: false });

    // Assess
    expect(listed).toMatchObject({ key: 'DescribeSnapshots', bucket: 100, refillPerSecond: 20 });
    expect(bare).toMatchObject({ bucket: 50, refillPerSecond: 10 });
    expect(bare?.key).not.toBe(listed?.key);
  });
});

describe('the pipelined bound of the whole job', () => {
  // Prepare: a plan deregistering 800 images whose 1,200 snapshots go with them, and 600 orphans.
  const minimum: MinimumRow[] = [
    row('DeregisterImage', 'images', 0, 800),
    row('DeleteSnapshot', 'snapshots', 0, 600),
    row('DescribeSnapshotAttribute', 'snapshots', 2_100, 0),
  ];
  const reference = {
    plan: {
      actions: Array.from({ length: 800 }, (_, i) => ({
        kind: 'deregister',
        imageId: `ami-${i}`,
        snapshotIds: i < 400 ? ['a', 'b'] : ['c'],
      })),
    },
  } as unknown as ReferenceEvaluation;

  it('is the busiest bucket drained at once, at 100% and at the headroom', () => {
    // Act
    const demand = bucketDemand(minimum, reference, 'free');

    // Assess: DeregisterImage (800 − 100) / 5 = 140 s; at 0.8, (800 − 80) / 4 = 180 s.
    expect(pipelinedBoundOf(demand, 1)).toEqual({ ms: 140_000, busiest: 'DeregisterImage', tokens: 800 });
    expect(pipelinedBoundOf(demand, 0.8).ms).toBeCloseTo(180_000, 6);
  });

  it('counts the snapshots DeleteAssociatedSnapshots deletes on the DeleteSnapshot bucket when read as metered', () => {
    // Act
    const demand = bucketDemand(minimum, reference, 'metered');

    // Assess: 600 orphans + 400 × 2 + 400 × 1 = 1,800 tokens, (1800 − 100) / 5 = 340 s.
    expect(pipelinedBoundOf(demand, 1)).toEqual({ ms: 340_000, busiest: 'DeleteSnapshot', tokens: 1_800 });
  });
});

describe('the organisation fan-out', () => {
  it('is the makespan of list-scheduling the targets in order on the Map slots', () => {
    // Act / Assess: slots take 5, 3, then the 3-slot frees for 4 (7), the 5-slot for 2 (7).
    expect(listScheduleMs([5, 3, 4, 2], 2)).toBe(7);
    expect(
      listScheduleMs(
        Array.from({ length: 100 }, () => 10),
        10,
      ),
    ).toBe(100);
    expect(listScheduleMs([], 10)).toBe(0);
  });
});
