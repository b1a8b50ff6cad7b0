import { afterEach, describe, expect, it } from 'vitest';
import { countsFor, MARKED_AT_TAG, mulberry32 } from '../../scripts/bench/account.ts';
import { Bench } from '../../scripts/bench/harness.ts';
import type { RunReport } from '../../src/core/report.ts';

/**
 * The report is the truth under faults. A simulated account behind the real adapters, limiter and
 * core, where a share of EC2 calls fail: half before EC2 acts (a 500), half after (the connection
 * drops before the answer). Every counter of the report must then equal what changed in the account.
 */

type Send = (command: { constructor: { name: string } }, options?: unknown) => Promise<unknown>;

/** Wraps the simulated client's send; returns how many faults of each kind were injected. */
function injectFaults(client: { send: unknown }, rate: number, random: () => number) {
  const injected = { beforeEffect: 0, answerLost: 0 };
  const send = (client.send as Send).bind(client);
  client.send = async (command: { constructor: { name: string } }, options?: unknown) => {
    const roll = random();
    if (roll < rate / 2) {
      injected.beforeEffect += 1;
      throw Object.assign(new Error('We encountered an internal error. Please try again.'), {
        name: 'InternalError',
        $fault: 'server',
        $metadata: { httpStatusCode: 500 },
      });
    }
    const result = await send(command, options);
    if (roll < rate) {
      injected.answerLost += 1;
      throw Object.assign(new Error(`${command.constructor.name}: socket hang up before the answer`), {
        code: 'ECONNRESET',
      });
    }
    return result;
  };
  return injected;
}

let bench: Bench | undefined;

afterEach(() => {
  bench?.close();
  bench = undefined;
});

describe('the report is the truth under faults', () => {
  it.each([0, 0.1, 0.3])(
    'with %s of EC2 calls failing, every counter equals the account’s end state',
    async (rate) => {
      // Prepare
      bench = new Bench({
        counts: countsFor(300),
        seed: 3,
        scale: 2000,
        invocationMs: Number.POSITIVE_INFINITY,
      });
      const before = structuredClone(bench.simulator.state());
      const injected = injectFaults(bench.simulator.ec2, rate, mulberry32(17));

      // Act
      const apply = await bench.invoke('apply');

      // Assess
      expect(apply.error).toBeUndefined();
      const report = apply.report as RunReport;
      const after = bench.simulator.state();
      if (rate > 0) expect(injected.beforeEffect + injected.answerLost).toBeGreaterThan(20);

      const imagesAfter = new Map(after.images.map((image) => [image.imageId, image]));
      const snapshotsAfter = new Map(after.snapshots.map((snapshot) => [snapshot.snapshotId, snapshot]));
      const asOf = report.asOf;
      const gone = before.images.filter((image) => !imagesAfter.has(image.imageId));
      const newlyMarked = before.images.filter(
        (image) =>
          image.tags[MARKED_AT_TAG] === undefined &&
          imagesAfter.get(image.imageId)?.tags[MARKED_AT_TAG] === asOf,
      );
      const unmarked = before.images.filter(
        (image) =>
          image.tags[MARKED_AT_TAG] !== undefined &&
          imagesAfter.has(image.imageId) &&
          imagesAfter.get(image.imageId)?.tags[MARKED_AT_TAG] === undefined,
      );
      const snapshotsGone = before.snapshots.filter((snapshot) => !snapshotsAfter.has(snapshot.snapshotId));
      const snapshotsMarked = before.snapshots.filter(
        (snapshot) =>
          snapshot.tags[MARKED_AT_TAG] === undefined &&
          snapshotsAfter.get(snapshot.snapshotId)?.tags[MARKED_AT_TAG] === asOf,
      );
      const snapshotsUnmarked = before.snapshots.filter(
        (snapshot) =>
          snapshot.tags[MARKED_AT_TAG] !== undefined &&
          snapshotsAfter.has(snapshot.snapshotId) &&
          snapshotsAfter.get(snapshot.snapshotId)?.tags[MARKED_AT_TAG] === undefined,
      );
      const ofDeregistered = new Set(gone.flatMap((image) => image.snapshotIds));

      expect(gone.length).toBeGreaterThan(0);
      expect({
        deregistered: report.totals.deregistered,
        marked: report.totals.marked,
        unmarked: report.totals.unmarked,
        snapshotsDeleted: report.totals.snapshotsDeleted,
        orphansDeleted: report.totals.orphansDeleted,
        snapshotsMarked: report.totals.snapshotsMarked,
        snapshotsUnmarked: report.totals.snapshotsUnmarked,
      }).toEqual({
        deregistered: gone.length,
        marked: newlyMarked.length,
        unmarked: unmarked.length,
        snapshotsDeleted: snapshotsGone.length,
        orphansDeleted: snapshotsGone.filter((snapshot) => !ofDeregistered.has(snapshot.snapshotId)).length,
        snapshotsMarked: snapshotsMarked.length,
        snapshotsUnmarked: snapshotsUnmarked.length,
      });
      // Every action the run planned is accounted for: done, or said not to be.
      const deregisterOutcomes = report.actions.filter((outcome) => outcome.action.kind === 'deregister');
      for (const outcome of deregisterOutcomes) {
        const removed = !imagesAfter.has(outcome.action.imageId);
        expect(
          outcome.status === 'done',
          `${outcome.action.imageId}: ${outcome.status} ${outcome.detail}`,
        ).toBe(removed);
      }
    },
  );
});
