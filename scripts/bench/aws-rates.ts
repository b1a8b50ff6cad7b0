/**
 * EC2's request token buckets as AWS documents them ("Request throttling for the Amazon EC2 API",
 * the tables "Request token bucket sizes and refill rates"), per API, per account and Region. This
 * is the one table the simulator meters with and the bench's bounds are computed from. It stands
 * for AWS, so it is kept apart from the limiter's own configuration (src/adapters/limiter.ts): a
 * wrong assumption there then shows up here as throttling, instead of being copied into the test.
 */

export interface AwsBucket {
  /** Requests the bucket holds when full (the burst). */
  bucket: number;
  /** Tokens added per second (the sustained rate). */
  refillPerSecond: number;
  /** The row of AWS's table the figures come from. */
  category: string;
}

/** `Describe*`, `List*`, `Search*` and `Get*` actions no other row names. */
export const NON_MUTATING: AwsBucket = { bucket: 100, refillPerSecond: 20, category: 'non-mutating actions' };
/** A few non-mutating actions, when sent with neither a filter nor pagination. */
export const UNFILTERED_UNPAGINATED: AwsBucket = {
  bucket: 50,
  refillPerSecond: 10,
  category: 'unfiltered and unpaginated non-mutating actions',
};
/** Every mutating action no other row names. */
export const MUTATING: AwsBucket = { bucket: 50, refillPerSecond: 5, category: 'mutating actions' };

/** The actions AWS lists under "Unfiltered and unpaginated non-mutating actions". */
export const UNFILTERED_UNPAGINATED_ACTIONS: ReadonlySet<string> = new Set([
  'DescribeInstances',
  'DescribeInstanceStatus',
  'DescribeNetworkInterfaces',
  'DescribeSecurityGroups',
  'DescribeSnapshots',
  'DescribeSpotInstanceRequests',
  'DescribeVolumes',
]);

const uncategorized = (bucket: number, refillPerSecond: number): AwsBucket => ({
  bucket,
  refillPerSecond,
  category: 'uncategorized actions (own bucket)',
});

/**
 * "Uncategorized actions", which have a bucket of their own: every image, snapshot and tag action
 * of the table, and the few instance and template actions an account's other tools typically send.
 * An action not listed here falls into its category (non-mutating or mutating) by its name.
 */
const UNCATEGORIZED: ReadonlyMap<string, AwsBucket> = new Map([
  ['CopyImage', uncategorized(100, 1)],
  ['CreateLaunchTemplateVersion', uncategorized(100, 5)],
  ['CreateSnapshot', uncategorized(100, 5)],
  ['CreateSnapshots', uncategorized(100, 5)],
  ['CreateTags', uncategorized(100, 10)],
  ['CreateVolume', uncategorized(100, 5)],
  ['DeleteSnapshot', uncategorized(100, 5)],
  ['DeleteTags', uncategorized(100, 10)],
  ['DeleteVolume', uncategorized(100, 5)],
  ['DeregisterImage', uncategorized(100, 5)],
  ['ModifyImageAttribute', uncategorized(100, 5)],
  ['ModifyLaunchTemplate', uncategorized(100, 5)],
  ['ModifySnapshotAttribute', uncategorized(100, 5)],
  ['RunInstances', uncategorized(5, 2)],
  ['StartInstances', uncategorized(5, 2)],
  ['TerminateInstances', uncategorized(100, 5)],
]);

/** Services other than EC2 the sweep calls; their limits are not EC2's and the simulator leaves them open. */
export const NOT_EC2: ReadonlySet<string> = new Set([
  'GetCallerIdentity',
  'DescribeAutoScalingGroups',
  'DescribeLaunchConfigurations',
  'DescribeParameters',
  'GetParameters',
]);

const NON_MUTATING_NAME = /^(Describe|List|Search|Get)/;

export interface RequestShape {
  /** The request names a filter (Filters), or ids, which this table reads as a filter too. */
  filtered: boolean;
  /** The request pages (MaxResults or NextToken). */
  paginated: boolean;
}

/** A metered bucket: which one (its key) and its size. */
export interface MeteredBucket extends AwsBucket {
  key: string;
}

/**
 * The bucket a request to `api` draws from, or undefined when EC2 does not meter it here. The
 * smaller bucket of an unfiltered, unpaginated request is taken to be a bucket of its own, beside
 * the action's standard one (AWS says such requests "use tokens from a smaller token bucket").
 */
export function awsBucketFor(api: string, shape: RequestShape = { filtered: true, paginated: true }) {
  if (NOT_EC2.has(api)) return undefined;
  const own = UNCATEGORIZED.get(api);
  if (own) return { key: api, ...own } satisfies MeteredBucket;
  if (NON_MUTATING_NAME.test(api)) {
    if (UNFILTERED_UNPAGINATED_ACTIONS.has(api) && !shape.filtered && !shape.paginated) {
      return { key: `${api} (unfiltered, unpaginated)`, ...UNFILTERED_UNPAGINATED } satisfies MeteredBucket;
    }
    return { key: api, ...NON_MUTATING } satisfies MeteredBucket;
  }
  return { key: api, ...MUTATING } satisfies MeteredBucket;
}

/** The standard bucket of `api` (filtered or paginated requests), as the bounds use it. */
export function awsBucket(api: string): AwsBucket | undefined {
  return awsBucketFor(api);
}
