import type { Log } from './ports.ts';

/**
 * One sweep of an account-Region at a time. The schedule, a retried step, a person's invoke and
 * the state machine can each start a sweep; two at once would each apply their own cap and race
 * on the same marks. Whoever holds an account-Region's lock sweeps it; any other sweep started
 * meanwhile changes nothing and says who holds it.
 *
 * A lock expires on its own a minute after its holder's invocation must have ended, so a sweep
 * killed before it could release never blocks the next one for long. The steps of one run follow
 * each other (Step Functions starts the next only once the previous one returned), so a run may
 * take over its own lock: its continuation, or a retry after an invocation that died holding it.
 */

/** Past the holder's own deadline: clocks of two Lambdas differ by far less. */
export const LOCK_EXPIRY_MARGIN_MS = 60_000;
/** Lambda's longest timeout: no invocation can still hold its lock after this. */
export const MAX_INVOCATION_MS = 900_000;

export interface LockClaim {
  /** The account-Region swept: `<accountId>/<region>`. */
  key: string;
  /** The run taking it: a run may take over its own lock, never another's. */
  runId: string;
  /** What is sweeping, for the reason a refused sweep gives: `sweep-target`, `sweep` (by hand), .... */
  holder: string;
  acquiredAt: Date;
  expiresAt: Date;
}

/** The lock as stored: who holds it since when, until when at most. */
export interface LockRecord {
  key: string;
  runId: string;
  holder: string;
  acquiredAt: string;
  expiresAt: string;
}

export type LockOutcome =
  | { acquired: true; release: () => Promise<void> }
  /** `current` is undefined when the lock was released again before it could be read. */
  | { acquired: false; current: LockRecord | undefined };

export interface SweepLockPort {
  /** Takes the lock if it is free, expired, or this run's own; atomically. */
  acquire(claim: LockClaim): Promise<LockOutcome>;
}

export function lockKey(accountId: string, region: string): string {
  return `${accountId}/${region}`;
}

/**
 * The claim of an invocation with `remainingMs` left: it expires a margin past the invocation's
 * own end, and never later than Lambda's longest timeout allows.
 */
export function lockClaim(input: {
  accountId: string;
  region: string;
  runId: string;
  holder: string;
  now: Date;
  remainingMs: number;
}): LockClaim {
  const heldMs = Math.min(Math.max(0, input.remainingMs), MAX_INVOCATION_MS) + LOCK_EXPIRY_MARGIN_MS;
  return {
    key: lockKey(input.accountId, input.region),
    runId: input.runId,
    holder: input.holder,
    acquiredAt: input.now,
    expiresAt: new Date(input.now.getTime() + heldMs),
  };
}

/** Whether `claim` may take a lock held as `current`: the rule the adapter's conditional write states. */
export function mayTake(current: LockRecord | undefined, claim: LockClaim): boolean {
  if (!current) return true;
  if (current.runId === claim.runId) return true;
  return new Date(current.expiresAt).getTime() < claim.acquiredAt.getTime();
}

/** Why a sweep changed nothing: which run holds the account-Region, since and until when. */
export function busyReason(claim: LockClaim, current: LockRecord | undefined): string {
  if (!current) {
    return `another sweep of ${claim.key} held it a moment ago; nothing was changed, and the next run sweeps it`;
  }
  return (
    `another sweep of ${claim.key} is running (${current.holder}, run ${current.runId}, since ` +
    `${current.acquiredAt}, held until ${current.expiresAt} at most); nothing was changed`
  );
}

/** The lock could not be taken: the sweep must not run unguarded, so it changes nothing. */
export class SweepBusyError extends Error {
  override name = 'SweepBusyError';
}

/** The lock store could not be reached or answered an error: nothing is swept unguarded. */
export class SweepLockError extends Error {
  override name = 'SweepLockError';
}

/**
 * Runs `sweep` under the account-Region's lock, releasing it however the sweep ends. Throws
 * SweepBusyError, before anything is swept, when another run holds it.
 */
export async function withSweepLock<T>(
  lock: SweepLockPort,
  claim: LockClaim,
  log: Log,
  sweep: () => Promise<T>,
): Promise<T> {
  let outcome: LockOutcome;
  try {
    outcome = await lock.acquire(claim);
  } catch (error) {
    throw new SweepLockError(`the lock of ${claim.key} could not be taken, so nothing was swept`, {
      cause: error,
    });
  }
  if (!outcome.acquired) {
    const reason = busyReason(claim, outcome.current);
    log.warn('sweep not started', { lock: claim.key, runId: claim.runId, reason });
    throw new SweepBusyError(reason);
  }
  log.info('sweep lock taken', {
    lock: claim.key,
    runId: claim.runId,
    expiresAt: claim.expiresAt.toISOString(),
  });
  try {
    return await sweep();
  } finally {
    // A lock left behind only delays the next sweep until it expires; it never blocks for good.
    await outcome.release().catch((error: unknown) => {
      log.warn('sweep lock not released', {
        lock: claim.key,
        runId: claim.runId,
        reason: `it expires at ${claim.expiresAt.toISOString()}`,
        error: error instanceof Error ? error : String(error),
      });
    });
  }
}

/** The lock as a map, for tests and the demo: the same rule as the DynamoDB adapter's condition. */
export function createMemorySweepLock(
  records = new Map<string, LockRecord & { token: number }>(),
): SweepLockPort & {
  records: Map<string, LockRecord & { token: number }>;
} {
  let tokens = 0;
  return {
    records,
    async acquire(claim) {
      const current = records.get(claim.key);
      if (!mayTake(current, claim)) return { acquired: false, current: stripToken(current) };
      const token = ++tokens;
      records.set(claim.key, {
        key: claim.key,
        runId: claim.runId,
        holder: claim.holder,
        acquiredAt: claim.acquiredAt.toISOString(),
        expiresAt: claim.expiresAt.toISOString(),
        token,
      });
      return {
        acquired: true,
        release: async () => {
          if (records.get(claim.key)?.token === token) records.delete(claim.key);
        },
      };
    },
  };
}

function stripToken(record: (LockRecord & { token: number }) | undefined): LockRecord | undefined {
  if (!record) return undefined;
  const { token: _token, ...rest } = record;
  return rest;
}
