/**
 * Paces calls to each API below its EC2 token bucket, so a large sweep runs near the account's
 * rate limit instead of into RequestLimitExceeded storms. One bucket per API, as EC2 meters them:
 * calls to different APIs never wait on each other, and a busy API never slows an idle one.
 */

export interface RateLimit {
  /** Burst: requests the bucket holds when full. */
  bucket: number;
  /** Steady rate: requests added per second. */
  refillPerSecond: number;
}

/** EC2's published request token buckets (per account and Region) and CloudTrail's lookup limit. */
const DESCRIBE: RateLimit = { bucket: 100, refillPerSecond: 20 };
/** The image and snapshot actions EC2 gives a bucket of their own. */
const OWN_MUTATING: RateLimit = { bucket: 100, refillPerSecond: 5 };
/** Every other mutating action: deprecation, disabling, archiving, usage reports. */
const MUTATING: RateLimit = { bucket: 50, refillPerSecond: 5 };
const TAGGING: RateLimit = { bucket: 100, refillPerSecond: 10 };
const LOOKUP_EVENTS: RateLimit = { bucket: 2, refillPerSecond: 2 };

export function rateLimitFor(api: string): RateLimit | undefined {
  if (api === 'LookupEvents') return LOOKUP_EVENTS;
  if (api === 'CreateTags' || api === 'DeleteTags') return TAGGING;
  // EC2 meters List* (ListImagesInRecycleBin) as a non-mutating action, like Describe*; the Recycle
  // Bin's ListRules and GetRule are held to the same pace, well under what one sweep asks of them.
  if (/^(Describe|Get|List)/.test(api)) return DESCRIBE;
  if (/^(DeregisterImage|DeleteSnapshot|ModifyImageAttribute|ModifySnapshotAttribute)$/.test(api)) {
    return OWN_MUTATING;
  }
  if (
    /^(EnableImageDeprecation|DisableImageDeprecation|DisableImage|EnableImage|ModifySnapshotTier|CreateImageUsageReport)$/.test(
      api,
    )
  ) {
    return MUTATING;
  }
  return undefined;
}

export interface Clock {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, signal) =>
    new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const timer = setTimeout(resolve, ms);
      signal?.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          reject(signal.reason);
        },
        { once: true },
      );
    }),
};

interface BucketState {
  tokens: number;
  updatedAt: number;
  /** Callers for one API take tokens in arrival order, so none starves and none bursts past the pace. */
  queue: Promise<void>;
}

export interface LimiterOptions {
  /** Share of each bucket this process may use, leaving the rest to other tools in the account. */
  headroom?: number;
  clock?: Clock;
  limits?: (api: string) => RateLimit | undefined;
}

export class ApiLimiter {
  readonly headroom: number;
  private readonly clock: Clock;
  private readonly limits: (api: string) => RateLimit | undefined;
  private readonly buckets = new Map<string, BucketState>();
  /** Milliseconds callers spent waiting, per API: what pacing cost. */
  readonly waitedMs = new Map<string, number>();

  constructor(options: LimiterOptions = {}) {
    const headroom = options.headroom ?? 0.8;
    if (!(headroom > 0 && headroom <= 1)) throw new RangeError(`headroom must be in (0, 1], got ${headroom}`);
    this.headroom = headroom;
    this.clock = options.clock ?? realClock;
    this.limits = options.limits ?? rateLimitFor;
  }

  /** The steady pace this limiter allows `api`, in calls per second; undefined when it is not held. */
  ratePerSecond(api: string): number | undefined {
    const limit = this.limits(api);
    return limit ? limit.refillPerSecond * this.headroom : undefined;
  }

  /** Resolves when a call to `api` may be sent. APIs without a known limit are never held. */
  acquire(api: string, signal?: AbortSignal): Promise<void> {
    const limit = this.limits(api);
    if (!limit) return Promise.resolve();
    const state = this.state(api, limit);
    const turn = state.queue.then(() => this.take(api, limit, state, signal));
    // A caller that gave up (aborted) must not block those behind it.
    state.queue = turn.catch(() => undefined);
    return turn;
  }

  private state(api: string, limit: RateLimit): BucketState {
    let state = this.buckets.get(api);
    if (!state) {
      state = { tokens: limit.bucket * this.headroom, updatedAt: this.clock.now(), queue: Promise.resolve() };
      this.buckets.set(api, state);
    }
    return state;
  }

  private async take(api: string, limit: RateLimit, state: BucketState, signal?: AbortSignal): Promise<void> {
    const capacity = limit.bucket * this.headroom;
    const perMs = (limit.refillPerSecond * this.headroom) / 1000;
    for (;;) {
      const now = this.clock.now();
      state.tokens = Math.min(capacity, state.tokens + (now - state.updatedAt) * perMs);
      state.updatedAt = now;
      if (state.tokens >= 1) {
        state.tokens -= 1;
        return;
      }
      const wait = Math.ceil((1 - state.tokens) / perMs);
      this.waitedMs.set(api, (this.waitedMs.get(api) ?? 0) + wait);
      await this.clock.sleep(wait, signal);
    }
  }
}

function headroomFromEnv(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return 0.8;
  const parsed = Number(value);
  if (!(parsed > 0 && parsed <= 1)) {
    throw new RangeError(`AMI_JANITOR_API_HEADROOM must be a number in (0, 1], got '${value}'`);
  }
  return parsed;
}

/** One limiter per process: every adapter shares the account's buckets. */
export const defaultLimiter = new ApiLimiter({
  headroom: headroomFromEnv(process.env.AMI_JANITOR_API_HEADROOM),
});
