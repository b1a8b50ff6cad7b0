import { setTimeout as sleepFor } from 'node:timers/promises';
import type {
  AdvancedEventSelector,
  CloudTrailClient,
  Event as CloudTrailEventSummary,
  EventSelector,
  LookupEventsCommandOutput,
  Trail,
} from '@aws-sdk/client-cloudtrail';
import {
  DescribeTrailsCommand,
  GetEventSelectorsCommand,
  GetTrailStatusCommand,
  LookupEventsCommand,
} from '@aws-sdk/client-cloudtrail';
import * as z from 'zod';
import type {
  TrailHealth as CoreTrailHealth,
  TrailHealthCheck as CoreTrailHealthCheck,
} from '../core/account-audit.ts';
import { resolveCaller, userIdentitySchema } from '../core/caller.ts';
import type { Log } from '../core/ports.ts';
import { errorCode, errorMessage } from '../errors.ts';
import { logger } from '../logger.ts';
import type { Caller, Image } from '../model.ts';
import { awsClients } from './clients.ts';
import { makeCall } from './common.ts';
import type { ApiLimiter } from './limiter.ts';
import { isRetryableError, type RetryOptions } from './retry.ts';

/**
 * CloudTrail, for two jobs: proving the real-time audit can see anything at all (a trail must log
 * management write events in the Region, or no CreateImage/ModifyImageAttribute event ever reaches
 * EventBridge), and finding who created images that predate the deployment (LookupEvents).
 */

export class TrailCheckError extends Error {
  override name = 'TrailCheckError';
}

export class CreatorLookupError extends Error {
  override name = 'CreatorLookupError';
}

interface CloudTrailDeps {
  cloudTrail?: CloudTrailClient;
  /** Passed to every `client.send` and to withRetry, so a deadline stops both the call and its retries. */
  signal?: AbortSignal;
  /** Test seams for backoff (sleep, random, maxAttempts). */
  retry?: Omit<RetryOptions, 'signal' | 'operation'>;
  /** Paces each API below its token bucket; defaults to the process-wide limiter. */
  limiter?: ApiLimiter;
  log?: Log;
}

// ---------------------------------------------------------------------------------------------
// Trail health
// ---------------------------------------------------------------------------------------------

export interface TrailHealthEntry {
  name: string;
  arn?: string;
  /** Where the trail was created; differs from the checked Region for shadow trails. */
  homeRegion?: string;
  isLogging: boolean;
  /** The trail's event selectors include management write events. */
  managementWrites: boolean;
  multiRegion: boolean;
  /** Why the trail could not be read (e.g. an organization trail owned by the management account). */
  error?: string;
}

/** The core's trail health, with the trails behind the verdict. */
export interface TrailHealth extends CoreTrailHealth {
  /** The trails that apply to the Region, in DescribeTrails order. */
  trails: TrailHealthEntry[];
}

/** `region` must be the Region the CloudTrail client talks to: DescribeTrails answers for that one. */
export interface TrailHealthCheck extends CoreTrailHealthCheck {
  check(region: string): Promise<TrailHealth>;
}

export type TrailHealthDeps = CloudTrailDeps;

export function createTrailHealthCheck(deps: TrailHealthDeps = {}): TrailHealthCheck {
  const cloudTrail = deps.cloudTrail ?? awsClients.cloudTrail;
  const log = deps.log ?? logger;
  const call = makeCall(deps);

  /**
   * A trail we may not read (AccessDenied on an organization trail, a trail deleted since it was
   * listed) simply does not qualify. A failure that says nothing about the trail itself (throttling
   * that outlived the retries, the deadline) makes the whole answer unknown: reporting "blind" then
   * would be a false alarm, so the check throws instead.
   */
  function tolerable(error: unknown): boolean {
    return !deps.signal?.aborted && errorCode(error) !== 'AbortError' && !isRetryableError(error);
  }

  async function inspect(trail: Trail, region: string): Promise<TrailHealthEntry> {
    const name = trail.Name ?? trail.TrailARN ?? 'unnamed trail';
    const entry: TrailHealthEntry = {
      name,
      ...(trail.TrailARN ? { arn: trail.TrailARN } : {}),
      ...(trail.HomeRegion ? { homeRegion: trail.HomeRegion } : {}),
      isLogging: false,
      managementWrites: false,
      multiRegion: trail.IsMultiRegionTrail === true,
    };
    // Shadow trails (homed elsewhere, or an organization trail seen from a member account) are
    // only found by ARN; a bare name resolves to this account's trails in this Region.
    const shadow =
      (trail.HomeRegion !== undefined && trail.HomeRegion !== region) || trail.IsOrganizationTrail;
    const id = (shadow ? trail.TrailARN : undefined) ?? trail.Name ?? trail.TrailARN;
    if (id === undefined) return { ...entry, error: 'DescribeTrails returned it without a name or ARN' };

    const problems: string[] = [];
    const [status, selectors] = await Promise.all([
      call('GetTrailStatus', (options) =>
        cloudTrail.send(new GetTrailStatusCommand({ Name: id }), options),
      ).catch((error: unknown) => {
        if (!tolerable(error)) throw error;
        problems.push(`GetTrailStatus failed: ${errorCode(error)}`);
        return undefined;
      }),
      call('GetEventSelectors', (options) =>
        cloudTrail.send(new GetEventSelectorsCommand({ TrailName: id }), options),
      ).catch((error: unknown) => {
        if (!tolerable(error)) throw error;
        problems.push(`GetEventSelectors failed: ${errorCode(error)}`);
        return undefined;
      }),
    ]);
    if (status) entry.isLogging = status.IsLogging === true;
    if (selectors) {
      entry.managementWrites = logsManagementWrites(
        selectors.EventSelectors,
        selectors.AdvancedEventSelectors,
      );
    }
    if (problems.length > 0) entry.error = problems.join('; ');
    return entry;
  }

  return {
    async check(region) {
      let trails: Trail[];
      try {
        const described = await call('DescribeTrails', (options) =>
          // Shadow trails are how a multi-Region trail homed elsewhere, or an organization trail,
          // shows up here; without them a well-covered member account would look blind.
          cloudTrail.send(new DescribeTrailsCommand({ includeShadowTrails: true }), options),
        );
        trails = described.trailList ?? [];
      } catch (error) {
        throw new TrailCheckError(`cannot list CloudTrail trails in ${region}: ${errorCode(error)}`, {
          cause: error,
        });
      }

      const applicable = trails.filter(
        (t) => t.IsMultiRegionTrail === true || (t.HomeRegion ?? region) === region,
      );
      let entries: TrailHealthEntry[];
      try {
        entries = await Promise.all(applicable.map((trail) => inspect(trail, region)));
      } catch (error) {
        throw new TrailCheckError(`cannot read CloudTrail trail status in ${region}: ${errorCode(error)}`, {
          cause: error,
        });
      }

      const qualifying = entries.filter((t) => t.isLogging && t.managementWrites);
      const ok = qualifying.length > 0;
      const health: TrailHealth = {
        ok,
        region,
        reason: healthReason(region, entries, qualifying),
        trails: entries,
      };
      log.debug('CloudTrail trail health', { region, ok, reason: health.reason, trails: entries.length });
      return health;
    },
  };
}

function healthReason(
  region: string,
  entries: readonly TrailHealthEntry[],
  qualifying: readonly TrailHealthEntry[],
): string {
  if (qualifying.length === 1 && qualifying[0]) {
    return `trail ${qualifying[0].name} logs management write events in ${region}`;
  }
  if (qualifying.length > 1) {
    return `trails ${qualifying.map((t) => t.name).join(', ')} log management write events in ${region}`;
  }
  const blind = `no CloudTrail trail logs management write events in ${region}: real-time audit is blind in ${region}`;
  if (entries.length === 0) return `${blind} (no trail applies to ${region})`;
  return `${blind} (${entries.map(whyNot).join('; ')})`;
}

function whyNot(entry: TrailHealthEntry): string {
  if (entry.error) return `${entry.name}: ${entry.error}`;
  if (!entry.isLogging) return `${entry.name}: not logging`;
  return `${entry.name}: does not log management write events`;
}

/**
 * Whether a trail's selectors capture management write events (CreateImage, ModifyImageAttribute).
 * Classic and advanced selectors are mutually exclusive on a trail, so either list decides.
 */
export function logsManagementWrites(
  classic: readonly EventSelector[] | undefined,
  advanced: readonly AdvancedEventSelector[] | undefined,
): boolean {
  if (advanced && advanced.length > 0) return advanced.some(advancedSelectsManagementWrites);
  if (classic && classic.length > 0) {
    // Both fields default as CloudTrail documents them: management events included, read and write.
    return classic.some(
      (s) => s.IncludeManagementEvents !== false && (s.ReadWriteType ?? 'All') !== 'ReadOnly',
    );
  }
  // No selector at all is CloudTrail's documented default for a trail created without any: every
  // read and write management event. AWS returns that default explicitly; emulators return [].
  return true;
}

function advancedSelectsManagementWrites(selector: AdvancedEventSelector): boolean {
  const fields = selector.FieldSelectors ?? [];
  const management = fields.some((f) => f.Field === 'eventCategory' && f.Equals?.includes('Management'));
  const readOnlyOnly = fields.some(
    (f) =>
      f.Field === 'readOnly' &&
      ((f.Equals !== undefined && f.Equals.length > 0 && f.Equals.every((v) => v === 'true')) ||
        f.NotEquals?.includes('false') === true),
  );
  return management && !readOnlyOnly;
}

// ---------------------------------------------------------------------------------------------
// Attribution backfill
// ---------------------------------------------------------------------------------------------

/** CloudTrail event history, which LookupEvents reads, keeps 90 days. */
export const EVENT_HISTORY_DAYS = 90;
const DAY_MS = 86_400_000;
/** LookupEvents allows 2 requests per second per account and Region. */
export const DEFAULT_LOOKUP_INTERVAL_MS = 500;
/** The largest page LookupEvents returns. */
const LOOKUP_PAGE_SIZE = 50;
/**
 * How far past an image's CreationDate its creation event may be stamped. The creation call comes
 * before (ImportImage: hours before) the CreationDate, so this only absorbs clock skew.
 */
const CREATION_EVENT_SLACK_MS = 3_600_000;

const CREATION_EVENTS: ReadonlySet<string> = new Set([
  'CreateImage',
  'CopyImage',
  'RegisterImage',
  'ImportImage',
]);
const EC2_EVENT_SOURCE = 'ec2.amazonaws.com';

const optionalString = z.string().optional();

/** The part of a CloudTrail record attribution reads; everything else is left alone. */
const creationRecordSchema = z.looseObject({
  eventTime: optionalString,
  eventSource: optionalString,
  eventName: optionalString,
  errorCode: optionalString,
  sourceIPAddress: optionalString,
  userAgent: optionalString,
  userIdentity: userIdentitySchema,
  responseElements: z.looseObject({ imageId: z.unknown().optional() }).nullish(),
});

export interface CreatorLookupDeps extends CloudTrailDeps {
  /**
   * Waits between paced requests. Injected in tests: vitest's fake timers do not reach the
   * default's node:timers/promises.
   */
  sleep?: (ms: number) => Promise<void>;
  /** Milliseconds since the epoch; default Date.now. */
  now?: () => number;
  /** Least time between two LookupEvents requests; default 500 (2 requests/s). */
  minIntervalMs?: number;
}

export interface FindCreatorOptions {
  /**
   * The image's CreationDate. The creation event comes no later than that, so the window can end
   * there (plus slack) instead of at `now`, which skips the pages of later events (RunInstances,
   * CreateTags, ...) a busy image collects.
   */
  createdAt?: Date;
}

export interface CreatorLookup {
  /** Who created the image, from its creation event in the last 90 days; undefined when none is found. */
  findCreator(imageId: string, now: Date, options?: FindCreatorOptions): Promise<Caller | undefined>;
  /** LookupEvents requests sent so far, retries included: what CloudTrail's rate limit counts. */
  readonly lookups: number;
}

export function createCreatorLookup(deps: CreatorLookupDeps = {}): CreatorLookup {
  const cloudTrail = deps.cloudTrail ?? awsClients.cloudTrail;
  const log = deps.log ?? logger;
  const call = makeCall(deps);
  const minIntervalMs = deps.minIntervalMs ?? DEFAULT_LOOKUP_INTERVAL_MS;
  if (!Number.isFinite(minIntervalMs) || minIntervalMs < 0) {
    throw new RangeError(`minIntervalMs must be a finite number >= 0, got ${minIntervalMs}`);
  }
  const now = deps.now ?? Date.now;
  const { signal } = deps;
  const sleep =
    deps.sleep ??
    (async (ms: number) => {
      await sleepFor(ms, undefined, signal ? { signal } : undefined);
    });

  let requests = 0;
  let nextAllowedAt = Number.NEGATIVE_INFINITY;
  // Turns are handed out in order, so concurrent findCreator calls share one pace instead of each
  // reading the same "next allowed" time and firing together.
  let queue: Promise<void> = Promise.resolve();

  function awaitTurn(): Promise<void> {
    const turn = queue.then(async () => {
      const waitMs = nextAllowedAt - now();
      if (waitMs > 0) await sleep(waitMs);
      nextAllowedAt = now() + minIntervalMs;
    });
    // A turn whose wait was aborted must not jam every later caller.
    queue = turn.catch(() => undefined);
    return turn;
  }

  function candidateFrom(event: CloudTrailEventSummary, imageId: string): Candidate | undefined {
    if (!event.EventName || !CREATION_EVENTS.has(event.EventName)) return undefined;
    if (event.EventSource !== undefined && event.EventSource !== EC2_EVENT_SOURCE) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(event.CloudTrailEvent ?? '');
    } catch (error) {
      log.debug('skipping a CloudTrail event whose record is not JSON', {
        imageId,
        eventId: event.EventId,
        eventName: event.EventName,
        error: errorMessage(error),
      });
      return undefined;
    }
    const parsed = creationRecordSchema.safeParse(json);
    if (!parsed.success) {
      log.debug('skipping a CloudTrail event whose record lacks a usable userIdentity', {
        imageId,
        eventId: event.EventId,
        eventName: event.EventName,
      });
      return undefined;
    }
    const record = parsed.data;
    // A failed call created nothing.
    if (record.errorCode) return undefined;
    // The looked-up image can be the source of a CopyImage: that event names someone else's copy.
    const createdId = record.responseElements?.imageId;
    if (typeof createdId === 'string' && createdId !== imageId) return undefined;
    const at = event.EventTime?.getTime() ?? Date.parse(record.eventTime ?? '');
    return {
      at: Number.isNaN(at) ? Number.POSITIVE_INFINITY : at,
      caller: resolveCaller(record.userIdentity, {
        sourceIp: record.sourceIPAddress,
        userAgent: record.userAgent,
      }),
    };
  }

  return {
    get lookups() {
      return requests;
    },

    async findCreator(imageId, at, options = {}) {
      const end =
        options.createdAt === undefined
          ? at
          : new Date(Math.min(at.getTime(), options.createdAt.getTime() + CREATION_EVENT_SLACK_MS));
      const start = new Date(at.getTime() - EVENT_HISTORY_DAYS * DAY_MS);
      let earliest: Candidate | undefined;
      const seenTokens = new Set<string>();
      let token: string | undefined;
      do {
        const NextToken = token;
        let page: LookupEventsCommandOutput;
        try {
          page = await call('LookupEvents', async (sendOptions) => {
            // Paced per request, retries included: CloudTrail counts every one of them.
            await awaitTurn();
            requests++;
            return cloudTrail.send(
              new LookupEventsCommand({
                LookupAttributes: [{ AttributeKey: 'ResourceName', AttributeValue: imageId }],
                StartTime: start,
                EndTime: end,
                MaxResults: LOOKUP_PAGE_SIZE,
                NextToken,
              }),
              sendOptions,
            );
          });
        } catch (error) {
          throw new CreatorLookupError(
            `cannot look up CloudTrail events for ${imageId}: ${errorCode(error)}`,
            {
              cause: error,
            },
          );
        }
        for (const event of page.Events ?? []) {
          const candidate = candidateFrom(event, imageId);
          // Strictly earlier: of two events stamped alike, the first listed wins.
          if (candidate && (!earliest || candidate.at < earliest.at)) earliest = candidate;
        }
        token = page.NextToken || undefined;
        if (token !== undefined) {
          // A token that comes back twice would loop forever against a 2 requests/s budget.
          if (seenTokens.has(token)) {
            throw new CreatorLookupError(`LookupEvents returned the same NextToken twice for ${imageId}`);
          }
          seenTokens.add(token);
        }
      } while (token !== undefined);
      return earliest?.caller;
    },
  };
}

interface Candidate {
  /** Event time in ms; +Infinity when unknown, so a dated event is preferred. */
  at: number;
  caller: Caller;
}

export interface BackfillOptions {
  /** Most LookupEvents requests to spend (policy.attribution.maxLookupsPerRun). */
  max: number;
  now: Date;
  /** The tag that already names a creator, e.g. `ami-janitor:created-by`. */
  createdByTag: string;
  log?: Log;
}

export interface BackfillResult {
  /** Creators found, keyed by image id. */
  found: Map<string, Caller>;
  /** Images looked up. */
  examined: number;
  /** Untagged images older than CloudTrail's 90-day history, so not worth a request. */
  skipped: number;
  /** The failure that ended the backfill early, already logged; `found` holds what came before it. */
  error?: CreatorLookupError;
}

/**
 * Finds creators for images that lack the created-by tag, newest first: the newest are the likeliest
 * to still be inside the 90-day history, and a capped run should spend its budget where answers are.
 * Stops starting new images once `max` requests have been sent (an image's own pages finish first).
 * Attribution is a nicety, so a failed lookup ends the backfill instead of failing the sweep.
 */
export async function backfillCreators(
  images: readonly Image[],
  lookup: CreatorLookup,
  options: BackfillOptions,
): Promise<BackfillResult> {
  const log = options.log ?? logger;
  const windowStart = options.now.getTime() - EVENT_HISTORY_DAYS * DAY_MS;
  const untagged = images
    .filter((image) => !image.tags[options.createdByTag])
    .sort((a, b) => b.creationDate.getTime() - a.creationDate.getTime());
  const inWindow = untagged.filter((image) => image.creationDate.getTime() >= windowStart);
  const result: BackfillResult = {
    found: new Map(),
    examined: 0,
    skipped: untagged.length - inWindow.length,
  };
  const startedAt = lookup.lookups;
  for (const image of inWindow) {
    if (lookup.lookups - startedAt >= options.max) break;
    result.examined++;
    try {
      const caller = await lookup.findCreator(image.imageId, options.now, { createdAt: image.creationDate });
      if (caller) result.found.set(image.imageId, caller);
      log.debug('creator lookup', { imageId: image.imageId, creator: caller?.arn ?? 'not found' });
    } catch (error) {
      result.error =
        error instanceof CreatorLookupError
          ? error
          : new CreatorLookupError(`creator lookup failed for ${image.imageId}`, { cause: error });
      log.warn('creator backfill stopped early', {
        imageId: image.imageId,
        examined: result.examined,
        error: errorMessage(error),
      });
      break;
    }
  }
  return result;
}
