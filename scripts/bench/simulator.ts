import { performance } from 'node:perf_hooks';
import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  DescribeLaunchConfigurationsCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  CreateTagsCommand,
  type CreateTagsCommandInput,
  type CreateVolumePermission,
  DeleteSnapshotCommand,
  type DeleteSnapshotCommandInput,
  type DeleteSnapshotReturnCode,
  DeleteTagsCommand,
  type DeleteTagsCommandInput,
  DeregisterImageCommand,
  type DeregisterImageCommandInput,
  DescribeImageAttributeCommand,
  type DescribeImageAttributeCommandInput,
  DescribeImageReferencesCommand,
  type DescribeImageReferencesCommandInput,
  DescribeImagesCommand,
  type DescribeImagesCommandInput,
  DescribeInstancesCommand,
  type DescribeInstancesCommandInput,
  DescribeLaunchTemplatesCommand,
  type DescribeLaunchTemplatesCommandInput,
  DescribeLaunchTemplateVersionsCommand,
  type DescribeLaunchTemplateVersionsCommandInput,
  DescribeLockedSnapshotsCommand,
  type DescribeLockedSnapshotsCommandInput,
  DescribeSnapshotAttributeCommand,
  type DescribeSnapshotAttributeCommandInput,
  DescribeSnapshotsCommand,
  type DescribeSnapshotsCommandInput,
  DescribeVolumesCommand,
  type DescribeVolumesCommandInput,
  DisableImageDeprecationCommand,
  type DisableImageDeprecationCommandInput,
  EC2Client,
  type Image as Ec2Image,
  type Snapshot as Ec2Snapshot,
  EnableImageDeprecationCommand,
  type EnableImageDeprecationCommandInput,
  type Filter,
  type ImageReference,
  type LaunchPermission,
  ModifyImageAttributeCommand,
  type ModifyImageAttributeCommandInput,
  ModifySnapshotAttributeCommand,
  type ModifySnapshotAttributeCommandInput,
  type Tag,
} from '@aws-sdk/client-ec2';
import { DescribeParametersCommand, GetParametersCommand, SSMClient } from '@aws-sdk/client-ssm';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import type { Clock } from '../../src/adapters/limiter.ts';
import {
  type AccountState,
  MARKED_AT_TAG,
  mulberry32,
  type SimImage,
  type SimInstance,
  type SimSnapshot,
  type SimTemplate,
} from './account.ts';
import { awsBucketFor, type MeteredBucket, type RequestShape } from './aws-rates.ts';

/**
 * An in-process EC2 (plus STS, and Auto Scaling and SSM with nothing in them) behind the real SDK
 * clients: `mockClient(...).on(Command).callsFake(...)` answers every command the adapters send,
 * from state that changes as the sweep acts. It pages like EC2 (MaxResults, NextToken), fails like
 * EC2 (NotFound, InUse, RequestLimitExceeded) and meters every API with its own token bucket.
 */

// ---------------------------------------------------------------------------------------------
// Time

export type ClockMode = 'idle' | 'elapsed';

/**
 * Simulated time, in milliseconds, for the limiter, the retries, the buckets and the deadline.
 *
 * `elapsed`: real elapsed time × scale. Simple, but every millisecond of CPU also counts `scale`
 * times, so a sweep that spends 1 s of CPU is charged 50 simulated seconds it would not take on AWS.
 * `idle` (the default): the event loop's idle time × scale plus its busy time × 1. Waiting (for a
 * token, a backoff, the simulated API) is what the scale speeds up; computing takes what it takes.
 */
export class SimClock implements Clock {
  readonly scale: number;
  readonly mode: ClockMode;
  private readonly realOrigin = performance.now();
  private readonly loopOrigin = performance.eventLoopUtilization();

  constructor(scale = 50, mode: ClockMode = 'idle') {
    if (!(scale >= 1)) throw new RangeError(`scale must be >= 1, got ${scale}`);
    this.scale = scale;
    this.mode = mode;
  }

  now(): number {
    if (this.mode === 'elapsed') return (performance.now() - this.realOrigin) * this.scale;
    const loop = performance.eventLoopUtilization(this.loopOrigin);
    return loop.idle * this.scale + loop.active;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    const until = this.now() + ms;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      // Busy time advances the clock at 1×, so a timer can fire before the simulated moment: wait again.
      const check = () => {
        const left = until - this.now();
        if (left <= 0) {
          signal?.removeEventListener('abort', onAbort);
          resolve();
          return;
        }
        timer = setTimeout(check, left / this.scale);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      check();
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Latency, background load and token buckets

/** How long the simulated EC2 takes to answer, in simulated ms. */
export interface Latency {
  /** A page of an inventory listing (images, snapshots, instances, templates, groups). */
  pageMs: number;
  /** Every other call, a refusal (RequestLimitExceeded) included. */
  callMs: number;
}

export const DEFAULT_LATENCY: Latency = { pageMs: 150, callMs: 50 };
export const NO_LATENCY: Latency = { pageMs: 0, callMs: 0 };

/** The calls that answer with a page of an inventory listing. */
const PAGE_APIS: ReadonlySet<string> = new Set([
  'DescribeImages',
  'DescribeSnapshots',
  'DescribeInstances',
  'DescribeLaunchTemplates',
  'DescribeLaunchTemplateVersions',
  'DescribeLockedSnapshots',
  'DescribeVolumes',
  'DescribeAutoScalingGroups',
  'DescribeLaunchConfigurations',
]);

export function latencyOf(api: string, latency: Latency): number {
  return PAGE_APIS.has(api) ? latency.pageMs : latency.callMs;
}

/**
 * Other tools in the account, drawing on the same buckets as the sweep. Each bucket gets bursts
 * of `share` × its size, arriving at random (exponential gaps) on average every size ÷ refill
 * seconds, so they take `share` of the refill on average. A burst takes what the bucket holds;
 * the rest of it is refused, and those tools ask again a second later until they have it all.
 */
export interface BackgroundLoad {
  share: number;
  seed?: number;
}

export const DEFAULT_BACKGROUND: BackgroundLoad = { share: 0.2 };
/** What the other tools wait before asking again for the part of a burst that was refused. */
export const BACKGROUND_RETRY_MS = 1000;

/**
 * Whether `DeregisterImage` with `DeleteAssociatedSnapshots` also draws a token from the
 * `DeleteSnapshot` bucket for each snapshot it deletes, which AWS does not say. `free`: it does not;
 * `metered`: it does, and a request whose snapshots the bucket cannot cover is refused as a whole.
 */
export type AssociatedSnapshots = 'free' | 'metered';

/** Simulated ms per bin of the usage record. */
export const USAGE_BIN_MS = 10_000;

/** One bucket's record over the run, in bins of USAGE_BIN_MS from the simulator's start. */
export interface BucketUsage {
  bucket: MeteredBucket;
  /** Tokens the sweep took, whatever API took them. */
  sweep: number[];
  /** Tokens the other tools took. */
  background: number[];
  /** Sweep requests refused for want of tokens in this bucket. */
  refused: number[];
}

class TokenBucket {
  private tokens: number;
  private updatedAt: number;
  private readonly burst: number;
  private readonly meanGapMs: number;
  private nextBurstAt = Number.POSITIVE_INFINITY;
  private owed = 0;
  private nextRetryAt = Number.POSITIVE_INFINITY;
  readonly usage: BucketUsage;
  readonly limit: MeteredBucket;
  private readonly random: () => number;
  private readonly origin: number;

  constructor(
    limit: MeteredBucket,
    now: number,
    origin: number,
    background: { share: number; random: () => number },
  ) {
    this.limit = limit;
    this.tokens = limit.bucket;
    this.updatedAt = now;
    this.origin = origin;
    this.random = background.random;
    this.burst = background.share * limit.bucket;
    this.meanGapMs = (limit.bucket / limit.refillPerSecond) * 1000;
    if (this.burst > 0) this.nextBurstAt = now + this.random() * this.meanGapMs;
    this.usage = { bucket: limit, sweep: [], background: [], refused: [] };
  }

  /** Brings the bucket, and what the other tools took of it, up to `now`. */
  settle(now: number): void {
    this.advance(now);
  }

  /** Whether `tokens` are there now; nothing is taken. */
  has(now: number, tokens: number): boolean {
    this.advance(now);
    // A hair of tolerance: a client pacing at exactly the refill rate must not lose to rounding.
    return this.tokens >= tokens - 1e-9;
  }

  take(now: number, tokens: number): void {
    this.advance(now);
    this.tokens = Math.max(0, this.tokens - tokens);
    this.record(this.usage.sweep, now, tokens);
  }

  refuse(now: number): void {
    this.record(this.usage.refused, now, 1);
  }

  /** Refills up to `now`, serving the other tools' bursts and their asking again on the way. */
  private advance(now: number): void {
    for (;;) {
      const next = Math.min(this.nextBurstAt, this.owed > 0 ? this.nextRetryAt : Number.POSITIVE_INFINITY);
      if (next > now) break;
      this.refill(next);
      if (next === this.nextBurstAt) {
        this.owed += this.burst;
        this.nextBurstAt = next - Math.log(1 - this.random()) * this.meanGapMs;
      }
      const taken = Math.min(Math.floor(this.owed + 1e-9), Math.floor(this.tokens + 1e-9));
      if (taken > 0) {
        this.tokens -= taken;
        this.owed -= taken;
        this.record(this.usage.background, next, taken);
      }
      this.nextRetryAt = next + BACKGROUND_RETRY_MS;
      // Less than a whole request left over is not asked for.
      if (this.owed < 1) this.owed = 0;
    }
    this.refill(now);
  }

  private refill(now: number): void {
    if (now <= this.updatedAt) return;
    this.tokens = Math.min(
      this.limit.bucket,
      this.tokens + ((now - this.updatedAt) * this.limit.refillPerSecond) / 1000,
    );
    this.updatedAt = now;
  }

  private record(bins: number[], at: number, count: number): void {
    const bin = Math.max(0, Math.floor((at - this.origin) / USAGE_BIN_MS));
    while (bins.length <= bin) bins.push(0);
    bins[bin] = (bins[bin] ?? 0) + count;
  }
}

// ---------------------------------------------------------------------------------------------
// Errors shaped like the SDK's

export function ec2Error(code: string, message: string, status = 400): Error {
  return Object.assign(new Error(message), {
    name: code,
    Code: code,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status, attempts: 1, totalRetryDelay: 0 },
  });
}

function throttled(api: string): Error {
  return Object.assign(ec2Error('RequestLimitExceeded', `Request limit exceeded (${api}).`, 503), {
    $retryable: { throttling: true },
  });
}

// ---------------------------------------------------------------------------------------------
// Raw API shapes, shared with the reference evaluation so both read the account the same way

export function toRawImage(image: SimImage, accountId: string, sizeOf: (snapshotId: string) => number) {
  const raw: Ec2Image = {
    ImageId: image.imageId,
    Name: image.name,
    OwnerId: accountId,
    State: image.state,
    CreationDate: image.creationDate.toISOString(),
    Public: image.public,
    ImageType: 'machine',
    Architecture: 'x86_64',
    RootDeviceType: 'ebs',
    RootDeviceName: '/dev/xvda',
    VirtualizationType: 'hvm',
    SourceInstanceId: image.sourceInstanceId,
    BlockDeviceMappings: image.snapshotIds.map((snapshotId, index) => ({
      DeviceName: index === 0 ? '/dev/xvda' : `/dev/sd${String.fromCharCode(98 + index)}`,
      Ebs: { SnapshotId: snapshotId, VolumeSize: sizeOf(snapshotId), VolumeType: 'gp3', Encrypted: false },
    })),
    Tags: toTags(image.tags),
  };
  if (image.lastLaunchedTime) raw.LastLaunchedTime = image.lastLaunchedTime.toISOString();
  if (image.deprecationTime) raw.DeprecationTime = image.deprecationTime.toISOString();
  if (image.deregistrationProtection) raw.DeregistrationProtection = image.deregistrationProtection;
  return raw;
}

export function toRawSnapshot(snapshot: SimSnapshot, accountId: string): Ec2Snapshot {
  return {
    SnapshotId: snapshot.snapshotId,
    OwnerId: accountId,
    VolumeId: snapshot.volumeId,
    VolumeSize: snapshot.volumeSizeGiB,
    ...(snapshot.fullSizeBytes === undefined ? {} : { FullSnapshotSizeInBytes: snapshot.fullSizeBytes }),
    StartTime: snapshot.startTime,
    Description: snapshot.description,
    State: 'completed',
    Progress: '100%',
    Encrypted: false,
    StorageTier: 'standard',
    Tags: toTags(snapshot.tags),
  };
}

function toTags(tags: Record<string, string>): Tag[] {
  return Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
}

function permissions(sharedWith: readonly string[], isPublic: boolean): LaunchPermission[] {
  return [...(isPublic ? [{ Group: 'all' as const }] : []), ...sharedWith.map((UserId) => ({ UserId }))];
}

// ---------------------------------------------------------------------------------------------
// Counting

export interface ApiCount {
  /** Requests that got past the bucket (whatever they answered). */
  accepted: number;
  /** Requests refused with RequestLimitExceeded. */
  throttled: number;
  /** Accepted requests that failed, by error code. */
  errors: Record<string, number>;
  /** Simulated ms of the first and last request: when the API was busy. */
  firstAt?: number;
  lastAt?: number;
}

export type CallCounts = Record<string, ApiCount>;

/** Per API: `after` minus `before`. */
export function callsBetween(before: CallCounts, after: CallCounts): CallCounts {
  const out: CallCounts = {};
  for (const [api, count] of Object.entries(after)) {
    const earlier = before[api];
    const accepted = count.accepted - (earlier?.accepted ?? 0);
    const throttledCalls = count.throttled - (earlier?.throttled ?? 0);
    if (accepted === 0 && throttledCalls === 0) continue;
    const errors: Record<string, number> = {};
    for (const [code, n] of Object.entries(count.errors)) {
      const delta = n - (earlier?.errors[code] ?? 0);
      if (delta > 0) errors[code] = delta;
    }
    out[api] = {
      accepted,
      throttled: throttledCalls,
      errors,
      ...(count.firstAt === undefined ? {} : { firstAt: count.firstAt }),
      ...(count.lastAt === undefined ? {} : { lastAt: count.lastAt }),
    };
  }
  return out;
}

/** Mutations that were already done: a sign that an action ran twice. */
export interface Redundancy {
  /** DeregisterImage or DeleteSnapshot answered NotFound. */
  removedAgain: number;
  /** CreateTags put marked-at on a resource that already had it. */
  markedAgain: number;
  /** DeleteTags took marked-at off a resource without it. */
  unmarkedAgain: number;
}

// ---------------------------------------------------------------------------------------------
// The simulator

interface Ordered<T> {
  /** Every id ever held, in id order; paging walks it and skips what is gone. */
  order: string[];
  position: Map<string, number>;
  live: Map<string, T>;
}

function ordered<T>(items: readonly T[], idOf: (item: T) => string): Ordered<T> {
  const order = items.map(idOf).sort();
  return {
    order,
    position: new Map(order.map((id, index) => [id, index])),
    live: new Map(items.map((item) => [idOf(item), item])),
  };
}

/** What the simulator needs of each client's stub, whatever the client's command types. */
interface MockHandle {
  restore(): void;
  resetHistory(): void;
}

interface PageInput {
  NextToken?: string | undefined;
  MaxResults?: number | undefined;
}

interface PageLimits {
  min: number;
  max: number;
  /** Above max: answer max (DescribeSnapshots) or refuse (the rest). */
  clamp?: boolean;
}

const INSTANCE_STATE_CODES: Record<SimInstance['state'], number> = {
  running: 16,
  stopped: 80,
  terminated: 48,
};
const ALL_INSTANCE_STATES = ['pending', 'running', 'shutting-down', 'terminated', 'stopping', 'stopped'];
const DEFAULT_VERSION_DEPTH = 20;
const MAX_TAG_RESOURCES = 1000;
const MAX_REFERENCE_IMAGES = 10;
/** EC2 refuses more values than this in one filter. */
const MAX_FILTER_VALUES = 200;
/** sinon keeps every call's arguments and result; dropping them now and then keeps RSS honest. */
const HISTORY_RESET_EVERY = 500;

export interface SimulatorOptions {
  latency?: Latency;
  background?: BackgroundLoad;
  associatedSnapshots?: AssociatedSnapshots;
}

export class Ec2Simulator {
  readonly ec2: EC2Client;
  readonly sts: STSClient;
  readonly autoScaling: AutoScalingClient;
  readonly ssm: SSMClient;
  readonly clock: Clock;
  readonly accountId: string;
  readonly region: string;
  /** Commands the adapters sent that this simulator does not implement. */
  readonly unsupported = new Map<string, number>();
  readonly redundancy: Redundancy = { removedAgain: 0, markedAgain: 0, unmarkedAgain: 0 };

  private readonly images: Ordered<SimImage>;
  private readonly snapshots: Ordered<SimSnapshot>;
  private readonly instances: Ordered<SimInstance>;
  private readonly templates: Ordered<SimTemplate>;
  private readonly volumes: Ordered<string>;
  private readonly locked: Ordered<SimSnapshot>;
  private readonly snapshotUsers = new Map<string, Set<string>>();
  private readonly instancesByImage = new Map<string, SimInstance[]>();
  private readonly templatesByImage = new Map<string, SimTemplate[]>();
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly counts = new Map<string, ApiCount>();
  private readonly mocks: MockHandle[] = [];
  private callsSinceReset = 0;
  private resetScheduled = false;
  private readonly latency: Latency;
  private readonly background: BackgroundLoad;
  readonly associatedSnapshots: AssociatedSnapshots;
  /** Simulated ms when the simulator started: bin 0 of the usage record. */
  readonly origin: number;

  /** Takes `account` over: its objects change as the sweep acts, so pass a copy to keep the original. */
  constructor(account: AccountState, clock: Clock, options: SimulatorOptions = {}) {
    const state = account;
    this.clock = clock;
    this.origin = clock.now();
    this.latency = options.latency ?? DEFAULT_LATENCY;
    this.background = options.background ?? DEFAULT_BACKGROUND;
    if (!(this.background.share >= 0 && this.background.share < 1)) {
      throw new RangeError(`background share must be in [0, 1), got ${this.background.share}`);
    }
    this.associatedSnapshots = options.associatedSnapshots ?? 'free';
    this.accountId = state.accountId;
    this.region = state.region;
    this.images = ordered(state.images, (image) => image.imageId);
    this.snapshots = ordered(state.snapshots, (snapshot) => snapshot.snapshotId);
    this.instances = ordered(state.instances, (instance) => instance.instanceId);
    this.templates = ordered(state.templates, (template) => template.templateId);
    this.volumes = ordered(state.volumes, (volume) => volume);
    this.locked = ordered(
      state.snapshots.filter((snapshot) => snapshot.lockState !== undefined),
      (snapshot) => snapshot.snapshotId,
    );
    for (const image of state.images) {
      for (const snapshotId of image.snapshotIds) this.users(snapshotId).add(image.imageId);
    }
    for (const instance of state.instances) push(this.instancesByImage, instance.imageId, instance);
    for (const template of state.templates) {
      for (const imageId of new Set(template.versions.map((version) => version.imageId))) {
        push(this.templatesByImage, imageId, template);
      }
    }

    const credentials = { accessKeyId: 'x', secretAccessKey: 'y' };
    const config = { region: this.region, credentials, maxAttempts: 1 };
    this.ec2 = new EC2Client(config);
    this.sts = new STSClient(config);
    this.autoScaling = new AutoScalingClient(config);
    this.ssm = new SSMClient(config);
    this.install();
  }

  /** What the account holds now: live resources only, in id order. */
  state(): AccountState {
    const live = <T>(store: Ordered<T>) =>
      store.order.flatMap((id) => {
        const item = store.live.get(id);
        return item === undefined ? [] : [item];
      });
    return {
      accountId: this.accountId,
      region: this.region,
      images: live(this.images),
      snapshots: live(this.snapshots),
      instances: live(this.instances),
      templates: live(this.templates),
      volumes: live(this.volumes),
    };
  }

  /** A copy of the counters, to subtract from a later copy. */
  calls(): CallCounts {
    const out: CallCounts = {};
    for (const [api, count] of this.counts) out[api] = { ...count, errors: { ...count.errors } };
    return out;
  }

  /** Starts new busy windows (firstAt/lastAt), e.g. at the start of an invocation. */
  resetWindows(): void {
    for (const count of this.counts.values()) {
      delete count.firstAt;
      delete count.lastAt;
    }
  }

  restore(): void {
    for (const mock of this.mocks) mock.restore();
  }

  // -------------------------------------------------------------------------------------------

  private install(): void {
    const ec2 = mockClient(this.ec2);
    const sts = mockClient(this.sts);
    const autoScaling = mockClient(this.autoScaling);
    const ssm = mockClient(this.ssm);
    this.mocks.push(ec2, sts, autoScaling, ssm);
    // Anything not answered below is a command the adapters started sending: count it, fail loudly.
    const unsupported = (command: { constructor: { name: string } }) => {
      const api = command.constructor.name.replace(/Command$/, '');
      this.unsupported.set(api, (this.unsupported.get(api) ?? 0) + 1);
      return Promise.reject(ec2Error('InvalidAction', `the simulator does not implement ${api}`));
    };
    ec2.send.callsFake(unsupported);
    sts.send.callsFake(unsupported);
    autoScaling.send.callsFake(unsupported);
    ssm.send.callsFake(unsupported);

    const serve =
      <I>(api: string, handler: (input: I) => object, metered = true) =>
      (input: I) =>
        this.serve(api, input, () => handler(input), metered);
    ec2.on(DescribeImagesCommand).callsFake(serve('DescribeImages', (i) => this.describeImages(i)));
    ec2
      .on(DescribeImageReferencesCommand)
      .callsFake(serve('DescribeImageReferences', (i) => this.describeImageReferences(i)));
    ec2.on(DescribeInstancesCommand).callsFake(serve('DescribeInstances', (i) => this.describeInstances(i)));
    ec2
      .on(DescribeLaunchTemplatesCommand)
      .callsFake(serve('DescribeLaunchTemplates', (i) => this.describeLaunchTemplates(i)));
    ec2
      .on(DescribeLaunchTemplateVersionsCommand)
      .callsFake(serve('DescribeLaunchTemplateVersions', (i) => this.describeLaunchTemplateVersions(i)));
    ec2.on(DescribeSnapshotsCommand).callsFake(serve('DescribeSnapshots', (i) => this.describeSnapshots(i)));
    ec2
      .on(DescribeLockedSnapshotsCommand)
      .callsFake(serve('DescribeLockedSnapshots', (i) => this.describeLockedSnapshots(i)));
    ec2.on(DescribeVolumesCommand).callsFake(serve('DescribeVolumes', (i) => this.describeVolumes(i)));
    ec2
      .on(DescribeSnapshotAttributeCommand)
      .callsFake(serve('DescribeSnapshotAttribute', (i) => this.describeSnapshotAttribute(i)));
    ec2
      .on(DescribeImageAttributeCommand)
      .callsFake(serve('DescribeImageAttribute', (i) => this.describeImageAttribute(i)));
    ec2.on(CreateTagsCommand).callsFake(serve('CreateTags', (i) => this.createTags(i)));
    ec2.on(DeleteTagsCommand).callsFake(serve('DeleteTags', (i) => this.deleteTags(i)));
    ec2
      .on(EnableImageDeprecationCommand)
      .callsFake(serve('EnableImageDeprecation', (i) => this.enableImageDeprecation(i)));
    ec2
      .on(DisableImageDeprecationCommand)
      .callsFake(serve('DisableImageDeprecation', (i) => this.disableImageDeprecation(i)));
    ec2.on(DeregisterImageCommand).callsFake(serve('DeregisterImage', (i) => this.deregisterImage(i)));
    ec2.on(DeleteSnapshotCommand).callsFake(serve('DeleteSnapshot', (i) => this.deleteSnapshot(i)));
    ec2
      .on(ModifyImageAttributeCommand)
      .callsFake(serve('ModifyImageAttribute', (i) => this.modifyImageAttribute(i)));
    ec2
      .on(ModifySnapshotAttributeCommand)
      .callsFake(serve('ModifySnapshotAttribute', (i) => this.modifySnapshotAttribute(i)));

    // STS, Auto Scaling and SSM have buckets of their own, far from anything a sweep sends them.
    sts.on(GetCallerIdentityCommand).callsFake(
      serve(
        'GetCallerIdentity',
        () => ({
          Account: this.accountId,
          Arn: `arn:aws:sts::${this.accountId}:assumed-role/ami-janitor/bench`,
          UserId: 'AROABENCH:bench',
        }),
        false,
      ),
    );
    autoScaling
      .on(DescribeAutoScalingGroupsCommand)
      .callsFake(serve('DescribeAutoScalingGroups', () => ({ AutoScalingGroups: [] }), false));
    autoScaling
      .on(DescribeLaunchConfigurationsCommand)
      .callsFake(serve('DescribeLaunchConfigurations', () => ({ LaunchConfigurations: [] }), false));
    ssm
      .on(DescribeParametersCommand)
      .callsFake(serve('DescribeParameters', () => ({ Parameters: [] }), false));
    ssm
      .on(GetParametersCommand)
      .callsFake(
        serve(
          'GetParameters',
          (input: { Names?: string[] }) => ({ Parameters: [], InvalidParameters: input.Names ?? [] }),
          false,
        ),
      );
  }

  /**
   * Meters one request as it arrives (a refused request does nothing and takes no token), carries it
   * out, and answers after the latency: a page of an inventory, or any other call.
   */
  private async serve(api: string, input: unknown, handler: () => object, metered: boolean): Promise<object> {
    const now = this.clock.now();
    const count = this.counts.get(api) ?? { accepted: 0, throttled: 0, errors: {} };
    this.counts.set(api, count);
    count.firstAt ??= now;
    count.lastAt = now;
    this.forgetHistorySoon();
    const draws = metered ? this.draws(api, input) : [];
    const short = draws.find((draw) => !draw.bucket.has(now, draw.tokens));
    if (short) {
      count.throttled++;
      short.bucket.refuse(now);
      await this.answerAfter(this.latency.callMs);
      throw throttled(api);
    }
    for (const draw of draws) draw.bucket.take(now, draw.tokens);
    count.accepted++;
    let result: object;
    try {
      result = { ...handler(), $metadata: { httpStatusCode: 200 } };
    } catch (error) {
      const code = (error as { name?: string }).name ?? 'Error';
      count.errors[code] = (count.errors[code] ?? 0) + 1;
      await this.answerAfter(latencyOf(api, this.latency));
      throw error;
    }
    await this.answerAfter(latencyOf(api, this.latency));
    return result;
  }

  private answerAfter(ms: number): Promise<void> {
    return ms > 0 ? this.clock.sleep(ms) : Promise.resolve();
  }

  /** The tokens a request takes, from which buckets. */
  private draws(api: string, input: unknown): { bucket: TokenBucket; tokens: number }[] {
    const limit = awsBucketFor(api, requestShape(input));
    if (!limit) return [];
    const draws = [{ bucket: this.bucket(limit), tokens: 1 }];
    if (api === 'DeregisterImage' && this.associatedSnapshots === 'metered') {
      const deleted = this.associatedDeletions(input as DeregisterImageCommandInput);
      const deletion = awsBucketFor('DeleteSnapshot');
      if (deleted > 0 && deletion) draws.push({ bucket: this.bucket(deletion), tokens: deleted });
    }
    return draws;
  }

  /** How many snapshots this DeregisterImage would delete with its image. */
  private associatedDeletions(input: DeregisterImageCommandInput): number {
    if (!input.DeleteAssociatedSnapshots) return 0;
    const image = this.images.live.get(input.ImageId ?? '');
    if (!image || (image.deregistrationProtection && image.deregistrationProtection !== 'disabled')) return 0;
    return image.snapshotIds.filter((snapshotId) => {
      const snapshot = this.snapshots.live.get(snapshotId);
      const users = this.users(snapshotId);
      return (
        snapshot !== undefined &&
        users.size === 1 &&
        users.has(image.imageId) &&
        !(snapshot.lockState && snapshot.lockState !== 'expired')
      );
    }).length;
  }

  private bucket(limit: MeteredBucket): TokenBucket {
    const now = this.clock.now();
    let bucket = this.buckets.get(limit.key);
    if (!bucket) {
      // Each bucket's other tools keep their own dice, so their bursts do not depend on which
      // bucket the sweep happened to touch first.
      bucket = new TokenBucket(limit, now, this.origin, {
        share: this.background.share,
        random: mulberry32((this.background.seed ?? 1) ^ hashOf(limit.key)),
      });
      this.buckets.set(limit.key, bucket);
    }
    return bucket;
  }

  /** Every bucket the sweep drew on, with what it and the other tools took, bin by bin, up to now. */
  usage(): BucketUsage[] {
    const now = this.clock.now();
    return [...this.buckets.values()].map((bucket) => {
      bucket.settle(now);
      return bucket.usage;
    });
  }

  private forgetHistorySoon(): void {
    if (++this.callsSinceReset < HISTORY_RESET_EVERY || this.resetScheduled) return;
    this.resetScheduled = true;
    // Not inside the call: sinon is still recording it.
    setImmediate(() => {
      for (const mock of this.mocks) mock.resetHistory();
      this.callsSinceReset = 0;
      this.resetScheduled = false;
    });
  }

  private users(snapshotId: string): Set<string> {
    let users = this.snapshotUsers.get(snapshotId);
    if (!users) {
      users = new Set();
      this.snapshotUsers.set(snapshotId, users);
    }
    return users;
  }

  private sizeOf = (snapshotId: string): number => this.snapshots.live.get(snapshotId)?.volumeSizeGiB ?? 8;

  /** One page of `store` from the token on, keeping what `select` maps; a token only if more remain. */
  private page<T, R>(
    api: string,
    store: Ordered<T>,
    input: PageInput,
    limits: PageLimits,
    select: (item: T) => R | undefined,
  ): { items: R[]; NextToken?: string } {
    const max = pageSize(api, input.MaxResults, limits);
    let start = 0;
    if (input.NextToken) {
      const match = new RegExp(`^${api}:(\\d+)$`).exec(input.NextToken);
      if (!match?.[1]) throw ec2Error('InvalidParameterValue', `${api}: invalid NextToken`);
      start = Number(match[1]) + 1;
    }
    const items: R[] = [];
    for (let index = start; index < store.order.length; index++) {
      const item = store.live.get(store.order[index] ?? '');
      if (item === undefined) continue;
      const selected = select(item);
      if (selected === undefined) continue;
      if (items.length === max) return { items, NextToken: `${api}:${index - 1}` };
      items.push(selected);
    }
    return { items };
  }

  // --- images -----------------------------------------------------------------------------------

  private describeImages(input: DescribeImagesCommandInput) {
    const filters = parseFilters('DescribeImages', input.Filters, [
      'image-id',
      'owner-id',
      'state',
      'tag-key',
    ]);
    const ids = input.ImageIds ?? [];
    if (ids.length > 0 && input.MaxResults !== undefined) {
      throw ec2Error('InvalidParameterCombination', 'The parameter ImageIds cannot be used with MaxResults');
    }
    const owners = input.Owners;
    const ownsAll = owners === undefined || owners.some((o) => o === 'self' || o === this.accountId);
    const keep = (image: SimImage) =>
      ownsAll &&
      (input.IncludeDisabled === true || (image.state as string) !== 'disabled') &&
      matches(filters, {
        'image-id': [image.imageId],
        'owner-id': [this.accountId],
        state: [image.state],
        'tag-key': Object.keys(image.tags),
      });
    if (ids.length > 0) {
      for (const id of ids) {
        if (!/^ami-[0-9a-f]{8,17}$/.test(id)) throw ec2Error('InvalidAMIID.Malformed', `Invalid id: "${id}"`);
      }
      const missing = ids.filter((id) => !this.images.live.has(id));
      if (missing.length > 0) {
        throw ec2Error('InvalidAMIID.NotFound', `The image id '[${missing.join(', ')}]' does not exist`);
      }
      const images = [...new Set(ids)].flatMap((id) => {
        const image = this.images.live.get(id);
        return image && keep(image) ? [toRawImage(image, this.accountId, this.sizeOf)] : [];
      });
      return { Images: images };
    }
    // A filter on ids needs no walk through the whole account.
    const wanted = filters.get('image-id');
    if (wanted && input.MaxResults === undefined && !input.NextToken) {
      const images = [...new Set(wanted)].flatMap((id) => {
        const image = this.images.live.get(id);
        return image && keep(image) ? [toRawImage(image, this.accountId, this.sizeOf)] : [];
      });
      return { Images: images };
    }
    const page = this.page('DescribeImages', this.images, input, { min: 1, max: 1000 }, (image) =>
      keep(image) ? toRawImage(image, this.accountId, this.sizeOf) : undefined,
    );
    return { Images: page.items, ...(page.NextToken ? { NextToken: page.NextToken } : {}) };
  }

  private describeImageReferences(input: DescribeImageReferencesCommandInput) {
    const ids = input.ImageIds ?? [];
    if (ids.length === 0)
      throw ec2Error('MissingParameter', 'The request must contain the parameter ImageIds');
    if (ids.length > MAX_REFERENCE_IMAGES) {
      throw ec2Error(
        'InvalidParameterValue',
        `DescribeImageReferences accepts at most ${MAX_REFERENCE_IMAGES} image ids, got ${ids.length}`,
      );
    }
    if (!input.IncludeAllResourceTypes && !input.ResourceTypes?.length) {
      throw ec2Error('MissingParameter', 'Either IncludeAllResourceTypes or ResourceTypes must be specified');
    }
    const requested = new Map<string, Map<string, string[]>>();
    if (input.IncludeAllResourceTypes) {
      for (const type of ['ec2:Instance', 'ec2:LaunchTemplate', 'ssm:Parameter'])
        requested.set(type, new Map());
    }
    for (const type of input.ResourceTypes ?? []) {
      const options = new Map<string, string[]>();
      for (const option of type.ResourceTypeOptions ?? []) {
        if (option.OptionName) options.set(option.OptionName, option.OptionValues ?? []);
      }
      if (type.ResourceType) requested.set(type.ResourceType, options);
    }
    const references: ImageReference[] = [];
    for (const imageId of [...new Set(ids)]) {
      const instanceOptions = requested.get('ec2:Instance');
      if (instanceOptions) {
        const states = new Set(instanceOptions.get('state-name') ?? ALL_INSTANCE_STATES);
        for (const instance of this.instancesByImage.get(imageId) ?? []) {
          if (!this.instances.live.has(instance.instanceId) || !states.has(instance.state)) continue;
          references.push({
            ImageId: imageId,
            ResourceType: 'ec2:Instance',
            Arn: `arn:aws:ec2:${this.region}:${this.accountId}:instance/${instance.instanceId}`,
          });
        }
      }
      const templateOptions = requested.get('ec2:LaunchTemplate');
      if (templateOptions) {
        const depth = Number(templateOptions.get('version-depth')?.[0] ?? DEFAULT_VERSION_DEPTH);
        for (const template of this.templatesByImage.get(imageId) ?? []) {
          const latest = template.versions.length;
          // The newest `depth` versions; EC2 does not look further back, not even at $Default.
          if (template.versions.some((v) => v.imageId === imageId && v.number > latest - depth)) {
            references.push({
              ImageId: imageId,
              ResourceType: 'ec2:LaunchTemplate',
              Arn: `arn:aws:ec2:${this.region}:${this.accountId}:launch-template/${template.templateId}`,
            });
          }
        }
      }
    }
    const max = pageSize('DescribeImageReferences', input.MaxResults, { min: 5, max: 1000 });
    const start = input.NextToken ? Number(/^refs:(\d+)$/.exec(input.NextToken)?.[1] ?? Number.NaN) : 0;
    if (Number.isNaN(start)) throw ec2Error('InvalidParameterValue', 'invalid NextToken');
    const end = Math.min(references.length, start + max);
    return {
      ImageReferences: references.slice(start, end),
      ...(end < references.length ? { NextToken: `refs:${end}` } : {}),
    };
  }

  private describeImageAttribute(input: DescribeImageAttributeCommandInput) {
    const image = this.image(input.ImageId);
    if (input.Attribute !== 'launchPermission') return { ImageId: image.imageId };
    return { ImageId: image.imageId, LaunchPermissions: permissions(image.sharedWith, image.public) };
  }

  private modifyImageAttribute(input: ModifyImageAttributeCommandInput) {
    const image = this.image(input.ImageId);
    for (const entry of input.LaunchPermission?.Remove ?? []) {
      if (entry.Group === 'all') image.public = false;
      if (entry.UserId) image.sharedWith = image.sharedWith.filter((id) => id !== entry.UserId);
    }
    for (const entry of input.LaunchPermission?.Add ?? []) {
      if (entry.Group === 'all') image.public = true;
      if (entry.UserId && !image.sharedWith.includes(entry.UserId)) image.sharedWith.push(entry.UserId);
    }
    return {};
  }

  private enableImageDeprecation(input: EnableImageDeprecationCommandInput) {
    const image = this.image(input.ImageId);
    if (!input.DeprecateAt) throw ec2Error('MissingParameter', 'DeprecateAt is required');
    image.deprecationTime = new Date(input.DeprecateAt);
    return { Return: true };
  }

  private disableImageDeprecation(input: DisableImageDeprecationCommandInput) {
    const image = this.image(input.ImageId);
    delete image.deprecationTime;
    return { Return: true };
  }

  private deregisterImage(input: DeregisterImageCommandInput) {
    const image = this.images.live.get(input.ImageId ?? '');
    if (!image) {
      this.redundancy.removedAgain++;
      throw ec2Error('InvalidAMIID.NotFound', `The image id '[${input.ImageId}]' does not exist`);
    }
    if (image.deregistrationProtection && image.deregistrationProtection !== 'disabled') {
      throw ec2Error('OperationNotPermitted', `Deregistration protection is enabled for ${image.imageId}`);
    }
    this.images.live.delete(image.imageId);
    for (const snapshotId of image.snapshotIds) this.users(snapshotId).delete(image.imageId);
    if (!input.DeleteAssociatedSnapshots) return { Return: true };
    // "If a snapshot is associated with multiple AMIs, it is not deleted, regardless of this setting."
    const results: DeleteSnapshotReturnCode[] = image.snapshotIds.map((snapshotId) => {
      const snapshot = this.snapshots.live.get(snapshotId);
      if (!snapshot || this.users(snapshotId).size > 0)
        return { SnapshotId: snapshotId, ReturnCode: 'skipped' };
      if (snapshot.lockState && snapshot.lockState !== 'expired') {
        return { SnapshotId: snapshotId, ReturnCode: 'client-error' };
      }
      this.snapshots.live.delete(snapshotId);
      this.locked.live.delete(snapshotId);
      return { SnapshotId: snapshotId, ReturnCode: 'success' };
    });
    return { Return: true, DeleteSnapshotResults: results };
  }

  private image(imageId: string | undefined): SimImage {
    const image = this.images.live.get(imageId ?? '');
    if (!image) throw ec2Error('InvalidAMIID.NotFound', `The image id '[${imageId}]' does not exist`);
    return image;
  }

  // --- references: instances and launch templates ----------------------------------------------

  private describeInstances(input: DescribeInstancesCommandInput) {
    if (input.InstanceIds?.length && input.MaxResults !== undefined) {
      throw ec2Error('InvalidParameterCombination', 'InstanceIds cannot be used with MaxResults');
    }
    const filters = parseFilters('DescribeInstances', input.Filters, ['instance-state-name', 'image-id']);
    const wantedIds = input.InstanceIds?.length ? new Set(input.InstanceIds) : undefined;
    const page = this.page('DescribeInstances', this.instances, input, { min: 5, max: 1000 }, (instance) => {
      if (wantedIds && !wantedIds.has(instance.instanceId)) return undefined;
      if (!matches(filters, { 'instance-state-name': [instance.state], 'image-id': [instance.imageId] })) {
        return undefined;
      }
      return {
        ReservationId: `r-${instance.instanceId.slice(2)}`,
        OwnerId: this.accountId,
        Instances: [
          {
            InstanceId: instance.instanceId,
            ImageId: instance.imageId,
            State: { Name: instance.state, Code: INSTANCE_STATE_CODES[instance.state] },
          },
        ],
      };
    });
    return { Reservations: page.items, ...(page.NextToken ? { NextToken: page.NextToken } : {}) };
  }

  private describeLaunchTemplates(input: DescribeLaunchTemplatesCommandInput) {
    const ids = input.LaunchTemplateIds?.length ? new Set(input.LaunchTemplateIds) : undefined;
    const names = input.LaunchTemplateNames?.length ? new Set(input.LaunchTemplateNames) : undefined;
    const page = this.page(
      'DescribeLaunchTemplates',
      this.templates,
      input,
      { min: 1, max: 200 },
      (template) => {
        if (ids && !ids.has(template.templateId)) return undefined;
        if (names && !names.has(template.name)) return undefined;
        return {
          LaunchTemplateId: template.templateId,
          LaunchTemplateName: template.name,
          DefaultVersionNumber: template.defaultVersion,
          LatestVersionNumber: template.versions.length,
        };
      },
    );
    return { LaunchTemplates: page.items, ...(page.NextToken ? { NextToken: page.NextToken } : {}) };
  }

  private describeLaunchTemplateVersions(input: DescribeLaunchTemplateVersionsCommandInput) {
    const template = this.template(input);
    const latest = template.versions.length;
    const wanted = new Set(
      (input.Versions ?? []).map((v) =>
        v === '$Latest' ? latest : v === '$Default' ? template.defaultVersion : Number(v),
      ),
    );
    // MinVersion is "the version number after which", MaxVersion "up to which".
    const min = input.MinVersion === undefined ? 0 : Number(input.MinVersion);
    const max = input.MaxVersion === undefined ? Number.POSITIVE_INFINITY : Number(input.MaxVersion);
    const selected = template.versions.filter(
      (v) => (wanted.size === 0 || wanted.has(v.number)) && v.number > min && v.number <= max,
    );
    const size = pageSize('DescribeLaunchTemplateVersions', input.MaxResults, { min: 1, max: 200 });
    const start = input.NextToken ? Number(/^versions:(\d+)$/.exec(input.NextToken)?.[1] ?? Number.NaN) : 0;
    if (Number.isNaN(start)) throw ec2Error('InvalidParameterValue', 'invalid NextToken');
    const end = Math.min(selected.length, start + size);
    return {
      // Newest first, as EC2 lists them.
      LaunchTemplateVersions: selected
        .slice()
        .reverse()
        .slice(start, end)
        .map((version) => ({
          LaunchTemplateId: template.templateId,
          LaunchTemplateName: template.name,
          VersionNumber: version.number,
          DefaultVersion: version.number === template.defaultVersion,
          LaunchTemplateData: { ImageId: version.imageId },
        })),
      ...(end < selected.length ? { NextToken: `versions:${end}` } : {}),
    };
  }

  private template(input: {
    LaunchTemplateId?: string | undefined;
    LaunchTemplateName?: string | undefined;
  }) {
    if (input.LaunchTemplateId) {
      const template = this.templates.live.get(input.LaunchTemplateId);
      if (!template) {
        throw ec2Error(
          'InvalidLaunchTemplateId.NotFound',
          `The specified launch template, with template ID ${input.LaunchTemplateId}, does not exist.`,
        );
      }
      return template;
    }
    for (const template of this.templates.live.values())
      if (template.name === input.LaunchTemplateName) return template;
    throw ec2Error(
      'InvalidLaunchTemplateName.NotFoundException',
      `The specified launch template, with template name ${input.LaunchTemplateName}, does not exist.`,
    );
  }

  // --- snapshots -------------------------------------------------------------------------------

  private describeSnapshots(input: DescribeSnapshotsCommandInput) {
    const filters = parseFilters('DescribeSnapshots', input.Filters, [
      'owner-id',
      'snapshot-id',
      'status',
      'tag-key',
      'volume-id',
    ]);
    const ids = input.SnapshotIds ?? [];
    if (ids.length > 0 && input.MaxResults !== undefined) {
      throw ec2Error(
        'InvalidParameterCombination',
        'The parameter SnapshotIds cannot be used with MaxResults',
      );
    }
    const owners = input.OwnerIds;
    const ownsAll = owners === undefined || owners.some((o) => o === 'self' || o === this.accountId);
    const keep = (snapshot: SimSnapshot) =>
      ownsAll &&
      matches(filters, {
        'owner-id': [this.accountId],
        'snapshot-id': [snapshot.snapshotId],
        status: ['completed'],
        'tag-key': Object.keys(snapshot.tags),
        'volume-id': [snapshot.volumeId],
      });
    if (ids.length > 0) {
      const missing = ids.filter((id) => !this.snapshots.live.has(id));
      if (missing.length > 0) {
        throw ec2Error('InvalidSnapshot.NotFound', `The snapshot '${missing.join(', ')}' does not exist.`);
      }
      return { Snapshots: this.rawSnapshots(ids, keep) };
    }
    const wanted = filters.get('snapshot-id');
    if (wanted && input.MaxResults === undefined && !input.NextToken) {
      return { Snapshots: this.rawSnapshots(wanted, keep) };
    }
    const page = this.page(
      'DescribeSnapshots',
      this.snapshots,
      input,
      { min: 5, max: 1000, clamp: true },
      (snapshot) => (keep(snapshot) ? toRawSnapshot(snapshot, this.accountId) : undefined),
    );
    return { Snapshots: page.items, ...(page.NextToken ? { NextToken: page.NextToken } : {}) };
  }

  private rawSnapshots(ids: readonly string[], keep: (snapshot: SimSnapshot) => boolean): Ec2Snapshot[] {
    return [...new Set(ids)].flatMap((id) => {
      const snapshot = this.snapshots.live.get(id);
      return snapshot && keep(snapshot) ? [toRawSnapshot(snapshot, this.accountId)] : [];
    });
  }

  private describeLockedSnapshots(input: DescribeLockedSnapshotsCommandInput) {
    const filters = parseFilters('DescribeLockedSnapshots', input.Filters, ['lock-state']);
    const ids = input.SnapshotIds?.length ? new Set(input.SnapshotIds) : undefined;
    const page = this.page(
      'DescribeLockedSnapshots',
      this.locked,
      input,
      { min: 5, max: 1000 },
      (snapshot) => {
        if (!this.snapshots.live.has(snapshot.snapshotId) || !snapshot.lockState) return undefined;
        if (ids && !ids.has(snapshot.snapshotId)) return undefined;
        if (!matches(filters, { 'lock-state': [snapshot.lockState] })) return undefined;
        return { OwnerId: this.accountId, SnapshotId: snapshot.snapshotId, LockState: snapshot.lockState };
      },
    );
    return { Snapshots: page.items, ...(page.NextToken ? { NextToken: page.NextToken } : {}) };
  }

  private describeVolumes(input: DescribeVolumesCommandInput) {
    const page = this.page('DescribeVolumes', this.volumes, input, { min: 5, max: 500 }, (volumeId) => ({
      VolumeId: volumeId,
      State: 'in-use' as const,
    }));
    return { Volumes: page.items, ...(page.NextToken ? { NextToken: page.NextToken } : {}) };
  }

  private describeSnapshotAttribute(input: DescribeSnapshotAttributeCommandInput) {
    const snapshot = this.snapshot(input.SnapshotId);
    if (input.Attribute !== 'createVolumePermission') return { SnapshotId: snapshot.snapshotId };
    const entries: CreateVolumePermission[] = permissions(snapshot.sharedWith, snapshot.public);
    return { SnapshotId: snapshot.snapshotId, CreateVolumePermissions: entries };
  }

  private modifySnapshotAttribute(input: ModifySnapshotAttributeCommandInput) {
    const snapshot = this.snapshot(input.SnapshotId);
    if (input.OperationType === 'remove') {
      if (input.GroupNames?.includes('all')) snapshot.public = false;
      snapshot.sharedWith = snapshot.sharedWith.filter((id) => !input.UserIds?.includes(id));
    }
    return {};
  }

  private deleteSnapshot(input: DeleteSnapshotCommandInput) {
    const snapshotId = input.SnapshotId ?? '';
    const snapshot = this.snapshots.live.get(snapshotId);
    if (!snapshot) {
      this.redundancy.removedAgain++;
      throw ec2Error('InvalidSnapshot.NotFound', `The snapshot '${snapshotId}' does not exist.`);
    }
    const users = [...this.users(snapshotId)];
    if (users.length > 0) {
      throw ec2Error(
        'InvalidSnapshot.InUse',
        `The snapshot ${snapshotId} is currently in use by ${users.join(', ')}`,
      );
    }
    if (snapshot.lockState && snapshot.lockState !== 'expired') {
      throw ec2Error('SnapshotLocked', `The snapshot ${snapshotId} is locked (${snapshot.lockState}).`);
    }
    this.snapshots.live.delete(snapshotId);
    this.locked.live.delete(snapshotId);
    return {};
  }

  private snapshot(snapshotId: string | undefined): SimSnapshot {
    const snapshot = this.snapshots.live.get(snapshotId ?? '');
    if (!snapshot) throw ec2Error('InvalidSnapshot.NotFound', `The snapshot '${snapshotId}' does not exist.`);
    return snapshot;
  }

  // --- tags ------------------------------------------------------------------------------------

  /** Tag targets; one id that does not exist fails the whole request, as in EC2. */
  private taggable(resources: readonly string[] | undefined): Record<string, string>[] {
    const ids = resources ?? [];
    if (ids.length === 0)
      throw ec2Error('MissingParameter', 'The request must contain the parameter Resources');
    if (ids.length > MAX_TAG_RESOURCES) {
      throw ec2Error(
        'InvalidParameterValue',
        `Up to ${MAX_TAG_RESOURCES} resource ids per request, got ${ids.length}`,
      );
    }
    return ids.map((id) => {
      if (id.startsWith('ami-')) return this.image(id).tags;
      if (id.startsWith('snap-')) return this.snapshot(id).tags;
      throw ec2Error('InvalidID', `The ID '${id}' is not valid for this simulator`);
    });
  }

  private createTags(input: CreateTagsCommandInput) {
    const targets = this.taggable(input.Resources);
    for (const tags of targets) {
      for (const tag of input.Tags ?? []) {
        if (tag.Key === undefined) continue;
        if (tag.Key === MARKED_AT_TAG && tags[MARKED_AT_TAG] !== undefined) this.redundancy.markedAgain++;
        tags[tag.Key] = tag.Value ?? '';
      }
    }
    return {};
  }

  private deleteTags(input: DeleteTagsCommandInput) {
    const targets = this.taggable(input.Resources);
    for (const tags of targets) {
      // No Tags at all deletes every tag, as in EC2.
      const keys = input.Tags === undefined ? Object.keys(tags) : input.Tags;
      for (const entry of keys) {
        const key = typeof entry === 'string' ? entry : entry.Key;
        const value = typeof entry === 'string' ? undefined : entry.Value;
        if (key === undefined) continue;
        if (key === MARKED_AT_TAG && tags[key] === undefined) this.redundancy.unmarkedAgain++;
        if (value === undefined || tags[key] === value) delete tags[key];
      }
    }
    return {};
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** FNV-1a: a stable 32-bit number per bucket name. */
function hashOf(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

/** Whether a request filters (Filters, or ids) or pages (MaxResults, NextToken), as the buckets see it. */
function requestShape(input: unknown): RequestShape {
  const request = (input ?? {}) as Record<string, unknown>;
  const named = (key: string) => Array.isArray(request[key]) && (request[key] as unknown[]).length > 0;
  return {
    filtered:
      named('Filters') ||
      named('SnapshotIds') ||
      named('InstanceIds') ||
      named('VolumeIds') ||
      named('ImageIds'),
    paginated: request.MaxResults !== undefined || request.NextToken !== undefined,
  };
}

function pageSize(api: string, requested: number | undefined, limits: PageLimits): number {
  if (requested === undefined) return Number.POSITIVE_INFINITY;
  if (requested < limits.min || (requested > limits.max && !limits.clamp)) {
    throw ec2Error(
      'InvalidParameterValue',
      `${api}: MaxResults must be between ${limits.min} and ${limits.max}, got ${requested}`,
    );
  }
  return Math.min(requested, limits.max);
}

function parseFilters(api: string, filters: Filter[] | undefined, known: readonly string[]) {
  const parsed = new Map<string, string[]>();
  for (const filter of filters ?? []) {
    if (!filter.Name || !known.includes(filter.Name)) {
      throw ec2Error('InvalidParameterValue', `${api}: the filter '${filter.Name}' is not supported here`);
    }
    if ((filter.Values ?? []).length > MAX_FILTER_VALUES) {
      throw ec2Error(
        'InvalidParameterValue',
        `${api}: at most ${MAX_FILTER_VALUES} values per filter, got ${(filter.Values ?? []).length}`,
      );
    }
    parsed.set(filter.Name, filter.Values ?? []);
  }
  return parsed;
}

function matches(filters: Map<string, string[]>, values: Record<string, readonly string[]>): boolean {
  for (const [name, wanted] of filters) {
    const actual = values[name] ?? [];
    if (!wanted.some((value) => actual.includes(value))) return false;
  }
  return true;
}
