import { describe, expect, it } from 'vitest';
import { lowerBound, type MinimumRow, phaseBounds, pipelinedBound } from '../../scripts/bench/harness.ts';

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
