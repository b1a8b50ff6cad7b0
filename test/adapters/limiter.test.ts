import { describe, expect, it } from 'vitest';
import { ApiLimiter, type Clock, rateLimitFor } from '../../src/adapters/limiter.ts';

/** A clock that only moves when someone sleeps, so pacing is measured exactly. */
function fakeClock(): Clock & { slept: number[] } {
  let now = 0;
  const slept: number[] = [];
  return {
    slept,
    now: () => now,
    sleep: async (ms, signal) => {
      if (signal?.aborted) throw signal.reason;
      slept.push(ms);
      now += ms;
    },
  };
}

async function acquireTimes(
  limiter: ApiLimiter,
  clock: Clock,
  api: string,
  count: number,
): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    await limiter.acquire(api);
    times.push(clock.now());
  }
  return times;
}

describe('rateLimitFor', () => {
  it.each([
    ['DescribeImages', 100, 20],
    ['DescribeImageReferences', 100, 20],
    ['GetCallerIdentity', 100, 20],
    ['DeregisterImage', 100, 5],
    ['DeleteSnapshot', 100, 5],
    ['ModifyImageAttribute', 100, 5],
    ['CreateTags', 100, 10],
    ['DeleteTags', 100, 10],
    ['EnableImageDeprecation', 50, 5],
    ['DisableImage', 50, 5],
    ['ModifySnapshotTier', 50, 5],
    ['CreateImageUsageReport', 50, 5],
    ['LookupEvents', 2, 2],
  ])('%s has a bucket of %i refilling %i per second', (api, bucket, refillPerSecond) => {
    expect(rateLimitFor(api)).toEqual({ bucket, refillPerSecond });
  });

  it('never assumes a bucket larger or faster than AWS documents for an EC2 call the sweep makes', async () => {
    // The bench's table of AWS's documented rates, kept apart from the limiter's on purpose: this
    // only checks that the limiter stays within it.
    const { awsBucket } = await import('../../scripts/bench/aws-rates.ts');
    const calls = [
      'DescribeImages',
      'DescribeSnapshots',
      'DescribeImageReferences',
      'DescribeSnapshotAttribute',
      'DeregisterImage',
      'DeleteSnapshot',
      'ModifyImageAttribute',
      'ModifySnapshotAttribute',
      'CreateTags',
      'DeleteTags',
      'EnableImageDeprecation',
      'DisableImageDeprecation',
      'DisableImage',
      'EnableImage',
      'ModifySnapshotTier',
      'CreateImageUsageReport',
    ];
    for (const api of calls) {
      const aws = awsBucket(api);
      const ours = rateLimitFor(api);
      expect(aws, api).toBeDefined();
      expect(ours?.bucket, api).toBeLessThanOrEqual(aws?.bucket ?? 0);
      expect(ours?.refillPerSecond, api).toBeLessThanOrEqual(aws?.refillPerSecond ?? 0);
    }
  });

  it('holds no call to an API without a known limit', () => {
    expect(rateLimitFor('SendMessage')).toBeUndefined();
  });
});

describe('ApiLimiter', () => {
  it('lets the burst through at once, then paces at the refill rate, both scaled by the headroom', async () => {
    // Prepare: DeregisterImage, 100 / 5 per second, at 80%: a burst of 80, then one every 250 ms.
    const clock = fakeClock();
    const limiter = new ApiLimiter({ headroom: 0.8, clock });

    // Act
    const times = await acquireTimes(limiter, clock, 'DeregisterImage', 84);

    // Assess
    expect(times.slice(0, 80).every((time) => time === 0)).toBe(true);
    expect(times.slice(80)).toEqual([250, 500, 750, 1000]);
  });

  it('refills while callers are idle, never beyond the bucket', async () => {
    // Prepare
    const clock = fakeClock();
    const limiter = new ApiLimiter({ headroom: 1, clock });
    await acquireTimes(limiter, clock, 'CreateTags', 100);

    // Act: an hour idle refills at most one bucket.
    await clock.sleep(3_600_000);
    const start = clock.now();
    const times = await acquireTimes(limiter, clock, 'CreateTags', 101);

    // Assess
    expect(times.slice(0, 100).every((time) => time === start)).toBe(true);
    expect(times[100]).toBe(start + 100);
  });

  it('keeps one bucket per API, so a busy API never slows another', async () => {
    // Prepare: drain DeleteSnapshot completely.
    const clock = fakeClock();
    const limiter = new ApiLimiter({ headroom: 1, clock });
    await acquireTimes(limiter, clock, 'DeleteSnapshot', 100);
    const before = clock.now();

    // Act
    await limiter.acquire('DescribeSnapshots');
    await limiter.acquire('DeregisterImage');

    // Assess
    expect(clock.now()).toBe(before);
    expect(clock.slept).toEqual([]);
  });

  it('serves concurrent callers of one API in arrival order at the paced rate', async () => {
    // Prepare: LookupEvents, 2 / 2 per second, full headroom.
    const clock = fakeClock();
    const limiter = new ApiLimiter({ headroom: 1, clock });
    const order: number[] = [];

    // Act
    await Promise.all(
      [0, 1, 2, 3].map((index) =>
        limiter.acquire('LookupEvents').then(() => {
          order.push(index);
        }),
      ),
    );

    // Assess: two at once, then one each 500 ms.
    expect(order).toEqual([0, 1, 2, 3]);
    expect(clock.now()).toBe(1000);
  });

  it('lets an aborted caller go without blocking the callers behind it', async () => {
    // Prepare
    const clock = fakeClock();
    const limiter = new ApiLimiter({ headroom: 1, clock });
    await acquireTimes(limiter, clock, 'LookupEvents', 2);
    const aborted = AbortSignal.abort(new Error('deadline'));

    // Act
    const gaveUp = limiter.acquire('LookupEvents', aborted);
    const next = limiter.acquire('LookupEvents');

    // Assess
    await expect(gaveUp).rejects.toThrow('deadline');
    await expect(next).resolves.toBeUndefined();
  });

  it('records how long callers waited, per API', async () => {
    const clock = fakeClock();
    const limiter = new ApiLimiter({ headroom: 1, clock });

    await acquireTimes(limiter, clock, 'DeregisterImage', 102);

    expect(limiter.waitedMs.get('DeregisterImage')).toBe(400);
  });

  it('tells the steady pace it holds an API to: the refill rate scaled by the headroom', async () => {
    // Prepare
    const clock = fakeClock();
    const limiter = new ApiLimiter({ headroom: 0.8, clock });

    // Act: past the burst of 80, calls go one every 250 ms.
    const times = await acquireTimes(limiter, clock, 'DeleteSnapshot', 84);

    // Assess
    expect(limiter.ratePerSecond('DeleteSnapshot')).toBe(4);
    expect(times.slice(80)).toEqual([250, 500, 750, 1000]);
    expect(limiter.ratePerSecond('DescribeSnapshotAttribute')).toBe(16);
    expect(limiter.ratePerSecond('SendMessage')).toBeUndefined();
  });

  it.each([0, -0.5, 1.5, Number.NaN])('refuses a headroom of %s', (headroom) => {
    expect(() => new ApiLimiter({ headroom })).toThrow(RangeError);
  });
});
