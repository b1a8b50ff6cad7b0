import {
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotAttributeCommand,
} from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, it } from 'vitest';
import { countsFor, generateAccount } from '../../scripts/bench/account.ts';
import { Ec2Simulator, NO_LATENCY, type SimulatorOptions } from '../../scripts/bench/simulator.ts';
import type { Clock } from '../../src/adapters/limiter.ts';

/**
 * The simulated EC2 itself, on a clock the test moves by hand: it must answer late, share its
 * buckets with other tools, and meter what AWS's table says, or the bench would flatter the sweep.
 */

/** Time moves only when the test (or a simulated answer's delay) moves it. */
class HandClock implements Clock {
  ms = 0;
  now(): number {
    return this.ms;
  }
  sleep(ms: number): Promise<void> {
    this.ms += ms;
    return Promise.resolve();
  }
}

let simulator: Ec2Simulator | undefined;

afterEach(() => {
  simulator?.restore();
  simulator = undefined;
});

function start(options: SimulatorOptions) {
  const clock = new HandClock();
  const account = generateAccount({ counts: countsFor(50), seed: 5 });
  simulator = new Ec2Simulator(account, clock, options);
  return { clock, account, ec2: simulator.ec2, sim: simulator };
}

/** Sends and tells how it ended: accepted (whatever it answered) or refused. */
async function outcome(send: Promise<unknown>): Promise<'accepted' | 'refused'> {
  try {
    await send;
    return 'accepted';
  } catch (error) {
    return (error as { name?: string }).name === 'RequestLimitExceeded' ? 'refused' : 'accepted';
  }
}

/** DeleteSnapshot of an id that does not exist: it takes a token, then answers NotFound. */
const deleteNothing = (n: number) =>
  new DeleteSnapshotCommand({ SnapshotId: `snap-f${String(n).padStart(16, '0')}` });

describe('the simulated EC2', () => {
  it('answers an inventory page after 150 ms and any other call after 50 ms, of simulated time', async () => {
    // Prepare
    const { clock, ec2, account } = start({ background: { share: 0 } });
    const snapshotId = account.snapshots[0]?.snapshotId;

    // Act
    const before = clock.now();
    await ec2.send(new DescribeImagesCommand({ Owners: ['self'], MaxResults: 1000 }));
    const page = clock.now() - before;
    await ec2.send(
      new DescribeSnapshotAttributeCommand({ SnapshotId: snapshotId, Attribute: 'createVolumePermission' }),
    );
    const call = clock.now() - before - page;

    // Assess
    expect({ page, call }).toEqual({ page: 150, call: 50 });
  });

  it('refuses what the bucket cannot cover, and a refused request takes no token', async () => {
    // Prepare: DeleteSnapshot's bucket holds 100 and refills 5 a second (AWS's table).
    const { clock, ec2 } = start({ latency: NO_LATENCY, background: { share: 0 } });

    // Act
    const burst = [];
    for (let n = 0; n < 105; n++) burst.push(await outcome(ec2.send(deleteNothing(n))));
    clock.ms += 1000;
    const after = [];
    for (let n = 0; n < 6; n++) after.push(await outcome(ec2.send(deleteNothing(200 + n))));

    // Assess: 100 then refused; a second later exactly 5 more, the refusals having cost nothing.
    expect(burst.filter((o) => o === 'accepted')).toHaveLength(100);
    expect(after).toEqual(['accepted', 'accepted', 'accepted', 'accepted', 'accepted', 'refused']);
  });

  it('lets other tools draw their share of each bucket, so a sweep at 80% is refused now and then', async () => {
    // Prepare
    const { clock, ec2, sim } = start({ latency: NO_LATENCY, background: { share: 0.2, seed: 3 } });

    // Act: DeleteSnapshot at 4 a second, the limiter’s 80% of 5, for half an hour.
    const outcomes: string[] = [];
    for (let n = 0; n < 7_200; n++) {
      clock.ms = n * 250;
      outcomes.push(await outcome(ec2.send(deleteNothing(n))));
    }
    const usage = sim.usage().find((entry) => entry.bucket.key === 'DeleteSnapshot');
    const others = usage?.background.reduce((sum, n) => sum + n, 0) ?? 0;

    // Assess: the others took about 20% of 5 a second over that time, and bursts left the sweep short.
    expect(others).toBeGreaterThan(0.15 * 5 * 1800);
    expect(others).toBeLessThan(0.25 * 5 * 1800);
    expect(outcomes.filter((o) => o === 'refused').length).toBeGreaterThan(0);
  });

  it.each([
    ['free', 'accepted'],
    ['metered', 'refused'],
  ] as const)(
    'with DeleteAssociatedSnapshots %s, a deregistration when DeleteSnapshot is drained is %s',
    async (reading, expected) => {
      // Prepare: an image whose snapshots are its own, and a DeleteSnapshot bucket emptied.
      const { ec2, account, sim } = start({
        latency: NO_LATENCY,
        background: { share: 0 },
        associatedSnapshots: reading,
      });
      const users = new Map<string, number>();
      for (const image of account.images)
        for (const id of image.snapshotIds) users.set(id, (users.get(id) ?? 0) + 1);
      const image = account.images.find(
        (candidate) =>
          !candidate.deregistrationProtection && candidate.snapshotIds.every((id) => users.get(id) === 1),
      );
      for (let n = 0; n < 100; n++) await outcome(ec2.send(deleteNothing(n)));

      // Act
      const result = await outcome(
        ec2.send(new DeregisterImageCommand({ ImageId: image?.imageId, DeleteAssociatedSnapshots: true })),
      );

      // Assess: refused as a whole, the image still there; or deregistered with its snapshots.
      expect(result).toBe(expected);
      expect(sim.state().images.some((left) => left.imageId === image?.imageId)).toBe(expected === 'refused');
    },
  );
});
