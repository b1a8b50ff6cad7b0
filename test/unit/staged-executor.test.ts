import { describe, expect, it, vi } from 'vitest';
import { defaultPolicy, MARKED_AT_TAG } from '../../src/config/policy.ts';
import { Feed } from '../../src/core/concurrency.ts';
import { type ExecuteOptions, executePlan } from '../../src/core/executor.ts';
import { CapGate, capOrder } from '../../src/core/lifecycle.ts';
import { ChangeGate } from '../../src/core/lifecycle-executor.ts';
import { imageLifecycle } from '../../src/core/planner.ts';
import { unboundedDeadline } from '../../src/core/ports.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import type { Image, PlannedAction } from '../../src/model.ts';
import { ACCOUNT_ID, action, daysBefore, image, NOW, policy, recordingLog } from './factories.ts';

/**
 * The executor's side of streaming: advances that arrive before the plan is complete, re-checked
 * in full batches, carried out once each, and reported in the plan's order; and the cap gate that
 * decides which advances may go before every resource is decided.
 */

function options(overrides: Partial<ExecuteOptions> = {}): ExecuteOptions {
  return {
    dryRun: false,
    now: NOW,
    accountId: ACCOUNT_ID,
    policy: defaultPolicy(),
    deadline: unboundedDeadline,
    reserveMs: 20_000,
    log: recordingLog(),
    ...overrides,
  };
}

function dueImages(count: number): Image[] {
  return Array.from({ length: count }, (_, index) =>
    image({
      creationDate: daysBefore(NOW, 900 - index),
      tags: { [MARKED_AT_TAG]: daysBefore(NOW, 10).toISOString() },
    }),
  );
}

const deregisterOf = (subject: Image): PlannedAction =>
  action('deregister', subject, { snapshotIds: [...subject.snapshotIds], sharedSnapshotIds: [] });

const deferred = <T>() => {
  let resolve: (value: T) => void = () => {};
  const promise = new Promise<T>((done) => {
    resolve = done;
  });
  return { promise, resolve };
};

describe('executePlan with a staged plan', () => {
  it('carries out early advances before the plan is complete, each once, in the plan’s order', async () => {
    // Prepare: 250 deregistrations pushed early, then the plan with a mark added.
    const subjects = dueImages(250);
    const toMark = image();
    const account = new MemoryAccount({
      accountId: ACCOUNT_ID,
      images: structuredClone([...subjects, toMark]),
    });
    const describe = vi.spyOn(account, 'describeImages');
    const early = new Feed<PlannedAction>();
    const whole = deferred<readonly PlannedAction[]>();
    const mark = action('mark', toMark, { removeAfter: NOW.toISOString() });
    let settled = 0;

    // Act
    const run = executePlan({ early, plan: whole.promise, onSettled: () => settled++ }, account, options());
    for (const subject of subjects) early.push(deregisterOf(subject));
    await vi.waitFor(() =>
      expect(account.calls.filter((c) => c.startsWith('deregisterImage '))).toHaveLength(200),
    );
    const beforePlan = account.calls.filter((call) => call.startsWith('tag'));
    early.finish();
    whole.resolve([mark, ...subjects.map(deregisterOf)]);
    const outcomes = await run;

    // Assess: full re-check batches (200, then the rest once nothing more would come), one
    // deregistration each, the mark only with the plan, outcomes in the plan's order.
    expect(beforePlan).toEqual([]);
    expect(describe.mock.calls.map(([ids]) => ids.length)).toEqual([200, 50]);
    const deregistered = account.calls.filter((call) => call.startsWith('deregisterImage '));
    expect(deregistered).toHaveLength(250);
    expect(new Set(deregistered).size).toBe(250);
    expect(outcomes.map((outcome) => `${outcome.action.kind} ${outcome.status}`)).toEqual([
      ...subjects.map(() => 'deregister done'),
      'mark done',
    ]);
    expect(outcomes.map((outcome) => outcome.action.imageId)).toEqual([
      ...subjects.map((subject) => subject.imageId),
      toMark.imageId,
    ]);
    expect(settled).toBe(250);
  });

  it('changes nothing once the run’s change gate is closed, and reports those advances not reached', async () => {
    // Prepare
    const subjects = dueImages(3);
    const account = new MemoryAccount({ accountId: ACCOUNT_ID, images: structuredClone(subjects) });
    const changes = new ChangeGate();
    expect(changes.closeIfUntouched()).toBe(true);

    // Act
    const outcomes = await executePlan(
      { actions: subjects.map(deregisterOf) },
      account,
      options({ changes }),
    );

    // Assess
    expect(account.calls.filter((call) => call.startsWith('deregisterImage'))).toEqual([]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['not-reached', 'not-reached', 'not-reached']);
    expect(changes.changed).toBe(false);
  });

  it('a gate that saw a change stays open', async () => {
    // Prepare
    const subjects = dueImages(1);
    const account = new MemoryAccount({ accountId: ACCOUNT_ID, images: structuredClone(subjects) });
    const changes = new ChangeGate();

    // Act
    await executePlan({ actions: subjects.map(deregisterOf) }, account, options({ changes }));

    // Assess
    expect(changes.changed).toBe(true);
    expect(changes.closeIfUntouched()).toBe(false);
  });

  it('reports an early advance the plan does not hold, and logs the mismatch', async () => {
    // Prepare
    const [subject] = dueImages(1) as [Image];
    const account = new MemoryAccount({ accountId: ACCOUNT_ID, images: structuredClone([subject]) });
    const log = recordingLog();
    const early = new Feed<PlannedAction>();
    early.push(deregisterOf(subject));
    early.finish();

    // Act
    const outcomes = await executePlan({ early, plan: Promise.resolve([]) }, account, options({ log }));

    // Assess
    expect(outcomes.map((outcome) => `${outcome.action.imageId} ${outcome.status}`)).toEqual([
      `${subject.imageId} done`,
    ]);
    expect(log.entries.map((entry) => entry.message)).toContain(
      'an advance carried out early is missing from the plan',
    );
  });
});

describe('CapGate', () => {
  const lifecycle = (cap: number) => imageLifecycle(policy({ maxRemovalsPerRun: cap }), 1000);

  it('releases each resource as soon as it is decided while every due one fits in the cap', () => {
    // Prepare
    const due = dueImages(3);
    const gate = new CapGate(lifecycle(3), due);

    // Act and assess
    expect(gate.settle(due[2] as Image, true)).toEqual([due[2]]);
    expect(gate.settle(due[0] as Image, false)).toEqual([]);
    expect(gate.complete).toBe(false);
    expect(gate.settle(due[1] as Image, true)).toEqual([due[1]]);
    expect(gate.complete).toBe(true);
  });

  it('over the cap, releases in cap order once every older one is decided, and nothing past the cap', () => {
    // Prepare
    const due = dueImages(5);
    const gate = new CapGate(lifecycle(2), [...due].reverse());

    // Act and assess: the youngest first gives nothing; the oldest releases what follows it.
    expect(gate.settle(due[4] as Image, true)).toEqual([]);
    expect(gate.settle(due[1] as Image, true)).toEqual([]);
    expect(gate.settle(due[0] as Image, false)).toEqual([due[1]]);
    expect(gate.settle(due[2] as Image, true)).toEqual([due[2]]);
    expect(gate.complete).toBe(true);
    expect(gate.settle(due[3] as Image, true)).toEqual([]);
    expect(gate.released).toBe(2);
  });

  it('ignores a resource that is not due, and a second decision for the same one', () => {
    // Prepare
    const [first, other] = dueImages(2) as [Image, Image];
    const gate = new CapGate(lifecycle(5), [first]);

    // Act and assess
    expect(gate.settle(other, true)).toEqual([]);
    expect(gate.settle(first, true)).toEqual([first]);
    expect(gate.settle(first, true)).toEqual([]);
  });

  it('selects, whatever the order decisions come in, what the cap takes of the whole plan', () => {
    // Prepare: 40 due, a cap of 15, every third one kept, decided in a scrambled order.
    const due = dueImages(40);
    const kind = lifecycle(15);
    const goes = (subject: Image) => due.indexOf(subject) % 3 !== 0;
    const expected = [...due].sort(capOrder(kind)).filter(goes).slice(0, 15);
    for (const step of [7, 11, 13]) {
      const gate = new CapGate(kind, due);
      const released: Image[] = [];

      // Act
      for (let index = 0; index < due.length; index++) {
        const subject = due[(index * step) % due.length] as Image;
        released.push(...gate.settle(subject, goes(subject)));
      }

      // Assess
      expect(released.map((subject) => subject.imageId)).toEqual(expected.map((subject) => subject.imageId));
    }
  });
});
