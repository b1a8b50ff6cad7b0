import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import scheduledSweep from '../../events/scheduled-sweep.json' with { type: 'json' };
import { parsePolicy } from '../../src/config/policy.ts';
import {
  busyReason,
  createMemorySweepLock,
  LOCK_EXPIRY_MARGIN_MS,
  type LockClaim,
  lockClaim,
  MAX_INVOCATION_MS,
  mayTake,
  SweepBusyError,
  SweepLockError,
  type SweepLockPort,
  withSweepLock,
} from '../../src/core/sweep-lock.ts';
import { DEMO_ACCOUNT_ID, demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import type { SweepResult } from '../../src/handlers/sweep.ts';
import { recordingLog } from './factories.ts';

vi.mock('../../src/adapters/ec2.ts', async (original) => ({
  ...(await original<typeof import('../../src/adapters/ec2.ts')>()),
  createInventory: () => {
    throw new Error('the real adapter must not be reached');
  },
}));

let sweepModule: typeof import('../../src/handlers/sweep.ts');
let targetModule: typeof import('../../src/handlers/sweep-target.ts');

beforeAll(async () => {
  vi.stubEnv('AMI_JANITOR_POLICY_FILE', resolve(import.meta.dirname, '../../policy.yml'));
  vi.stubEnv('AWS_REGION', 'eu-west-1');
  sweepModule = await import('../../src/handlers/sweep.ts');
  targetModule = await import('../../src/handlers/sweep-target.ts');
});

afterAll(() => {
  vi.unstubAllEnvs();
});

const EVENT_TIME = new Date(scheduledSweep.time);
const REAL_NOW = new Date(EVENT_TIME.getTime() + 60_000);
const KEY = `${DEMO_ACCOUNT_ID}/eu-west-1`;

function claim(overrides: { runId?: string; holder?: string; now?: Date } = {}): LockClaim {
  return lockClaim({
    accountId: DEMO_ACCOUNT_ID,
    region: 'eu-west-1',
    runId: 'run-a',
    holder: 'test',
    now: REAL_NOW,
    remainingMs: 600_000,
    ...overrides,
  });
}

/** An account whose listing waits until `open()`: a sweep that is still running. */
function gatedAccount() {
  const account = new MemoryAccount(demoAccount(new Date(EVENT_TIME.getTime() - 8 * 86_400_000)));
  let open = () => {};
  const gate = new Promise<void>((resolveGate) => {
    open = resolveGate;
  });
  let listings = 0;
  const inventory = {
    accountId: () => account.accountId(),
    listOwnedImages: async (...args: Parameters<MemoryAccount['listOwnedImages']>) => {
      listings += 1;
      await gate;
      return account.listOwnedImages(...args);
    },
    findReferences: (...args: Parameters<MemoryAccount['findReferences']>) => account.findReferences(...args),
  };
  let actionCalls = 0;
  const actions = new Proxy(account, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        actionCalls += 1;
        return value.apply(target, args);
      };
    },
  });
  return { account: actions, inventory, open, listings: () => listings, actionCalls: () => actionCalls };
}

function context() {
  return { getRemainingTimeInMillis: () => 600_000 };
}

describe('the sweep lock rule', () => {
  it('holds a lock for the invocation and a margin, never past the longest Lambda timeout', () => {
    expect(claim().expiresAt.getTime() - REAL_NOW.getTime()).toBe(600_000 + LOCK_EXPIRY_MARGIN_MS);
    expect(claim().key).toBe(KEY);
    const long = lockClaim({
      accountId: DEMO_ACCOUNT_ID,
      region: 'eu-west-1',
      runId: 'r',
      holder: 't',
      now: REAL_NOW,
      remainingMs: Number.POSITIVE_INFINITY,
    });
    expect(long.expiresAt.getTime() - REAL_NOW.getTime()).toBe(MAX_INVOCATION_MS + LOCK_EXPIRY_MARGIN_MS);
  });

  it('may take a free lock, an expired one, or its own run’s, and nothing else', () => {
    const mine = claim();
    const held = {
      key: KEY,
      runId: 'run-b',
      holder: 'sweep (by hand)',
      acquiredAt: REAL_NOW.toISOString(),
      expiresAt: new Date(REAL_NOW.getTime() + 1).toISOString(),
    };
    expect(mayTake(undefined, mine)).toBe(true);
    expect(mayTake(held, mine)).toBe(false);
    expect(mayTake({ ...held, runId: 'run-a' }, mine)).toBe(true);
    expect(mayTake({ ...held, expiresAt: new Date(REAL_NOW.getTime() - 1).toISOString() }, mine)).toBe(true);
    expect(busyReason(mine, held)).toBe(
      `another sweep of ${KEY} is running (sweep (by hand), run run-b, since ${held.acquiredAt}, held until ${held.expiresAt} at most); nothing was changed`,
    );
  });

  it('releases the lock however the sweep ends, and never runs the sweep unguarded', async () => {
    const lock = createMemorySweepLock();
    const log = recordingLog();
    await expect(withSweepLock(lock, claim(), log, async () => 'swept')).resolves.toBe('swept');
    expect(lock.records.size).toBe(0);
    await expect(
      withSweepLock(lock, claim(), log, async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(lock.records.size).toBe(0);

    const unreachable: SweepLockPort = { acquire: () => Promise.reject(new Error('no table')) };
    const sweep = vi.fn(async () => 'swept');
    const refused = withSweepLock(unreachable, claim(), log, sweep);
    await expect(refused).rejects.toBeInstanceOf(SweepLockError);
    await expect(refused).rejects.toMatchObject({ cause: new Error('no table') });
    expect(sweep).not.toHaveBeenCalled();
  });

  it('does not release a lock another run took over after this one expired', async () => {
    const lock = createMemorySweepLock();
    const first = await lock.acquire(claim());
    const later = new Date(claim().expiresAt.getTime() + 1);
    const second = await lock.acquire(claim({ runId: 'run-b', now: later }));
    expect(first.acquired && second.acquired).toBe(true);
    if (first.acquired) await first.release();
    expect(lock.records.get(KEY)?.runId).toBe('run-b');
  });
});

describe('one sweep of an account-Region at a time', () => {
  it('a second apply started during the first changes nothing and says why; the next one after it runs', async () => {
    // Prepare: one lock for both invocations, as the deployment's table is.
    const lock = createMemorySweepLock();
    const gated = gatedAccount();
    const policy = { ...parsePolicy(demoPolicyDocument), dryRun: false, graceDays: 0 };
    const make = () => {
      const log = recordingLog();
      const handler = sweepModule.makeSweepHandler({
        ports: () => ({ inventory: gated.inventory, actions: gated.account }),
        policy,
        region: 'eu-west-1',
        dryRun: false,
        clock: () => REAL_NOW,
        log,
        lock,
      });
      return { handler, log };
    };
    const first = make();
    const second = make();

    // Act: the first is still listing when the second starts.
    const running = first.handler({ mode: 'apply' }, context());
    await vi.waitFor(() => expect(gated.listings()).toBe(1));
    const refused: SweepResult = await second.handler({ mode: 'apply' }, context());
    const actionsWhileRefused = gated.actionCalls();
    gated.open();
    const done = await running;

    // Assess: the second did nothing, named the holder, and only the first changed the account.
    expect(refused).toEqual({
      status: 'busy',
      reason: expect.stringMatching(
        new RegExp(`^another sweep of ${KEY} is running \\(sweep \\(by hand\\), run [0-9a-f-]+, since `),
      ),
    });
    expect(gated.listings()).toBe(1);
    expect(second.log.entries).toContainEqual(
      expect.objectContaining({ level: 'warn', message: 'sweep not started' }),
    );
    expect(actionsWhileRefused).toBe(0);
    expect('status' in done).toBe(false);
    expect(gated.actionCalls()).toBeGreaterThan(0);
    expect(lock.records.size).toBe(0);
    const after = await make().handler({ mode: 'apply' }, context());
    expect('status' in after).toBe(false);
  });

  it('a plan takes no lock: it changes nothing', async () => {
    const lock = createMemorySweepLock();
    const acquire = vi.spyOn(lock, 'acquire');
    const gated = gatedAccount();
    gated.open();
    const handler = sweepModule.makeSweepHandler({
      ports: () => ({ inventory: gated.inventory, actions: gated.account }),
      policy: { ...parsePolicy(demoPolicyDocument), dryRun: false },
      region: 'eu-west-1',
      dryRun: false,
      clock: () => REAL_NOW,
      log: recordingLog(),
      lock,
    });
    const report = await handler({ mode: 'plan' }, context());
    expect('status' in report).toBe(false);
    expect(acquire).not.toHaveBeenCalled();
  });

  it('the state machine’s step for a target another run holds throws SweepBusyError, for its retry to wait', async () => {
    const lock = createMemorySweepLock();
    await lock.acquire(claim({ runId: 'by-hand', holder: 'sweep (by hand)' }));
    const gated = gatedAccount();
    gated.open();
    const handler = targetModule.makeSweepTargetHandler({
      ports: async () => ({ inventory: gated.inventory, actions: gated.account }),
      policy: { ...parsePolicy(demoPolicyDocument), dryRun: false },
      dryRun: false,
      clock: () => REAL_NOW,
      log: recordingLog(),
      lock,
    });
    const input = {
      target: { accountId: DEMO_ACCOUNT_ID, region: 'eu-west-1' },
      runId: 'sweep-2026-11-22T060000Z',
      asOf: EVENT_TIME.toISOString(),
    };
    const busy = handler(input, context());
    await expect(busy).rejects.toBeInstanceOf(SweepBusyError);
    await expect(busy).rejects.toThrow(`another sweep of ${KEY} is running (sweep (by hand), run by-hand`);
    expect(gated.listings()).toBe(0);

    // The same run's next invocation (its continuation, or a retry after one that died holding
    // the lock) takes its own lock back.
    lock.records.clear();
    await lock.acquire(claim({ runId: input.runId }));
    expect(lock.records.get(KEY)?.runId).toBe(input.runId);
    const output = await handler(input, context());
    expect(output.summary.status).toBe('done');
    expect(lock.records.size).toBe(0);
  });
});
