/**
 * Honest clocks. A run's clock may come from outside: a scheduled event's `time`, a continuation's
 * `asOf`, a hand-made `asOf`. Grace periods are measured against it, so a clock later than the real
 * one would remove images whose grace has not passed. A forecast is for plans only.
 */

/** How far an event's clock may run ahead of this machine's: EventBridge and Lambda clocks drift a little. */
export const CLOCK_SKEW_MS = 5 * 60_000;

export class FutureClockError extends Error {
  override name = 'FutureClockError';
}

/** Why `runClock` may not be acted on, or undefined when it is no later than the real clock allows. */
export function futureClockReason(runClock: Date, realNow: Date, source: string): string | undefined {
  const ahead = runClock.getTime() - realNow.getTime();
  if (ahead <= CLOCK_SKEW_MS) return undefined;
  return `${source} ${runClock.toISOString()} is later than the real clock (${realNow.toISOString()}) by more than ${CLOCK_SKEW_MS / 60_000} minutes; nothing is changed on a future clock`;
}
