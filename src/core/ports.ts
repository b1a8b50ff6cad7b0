import type {
  BinnedImage,
  Image,
  ImageUsageReport,
  Reference,
  RetentionRule,
  SharePermissions,
  Snapshot,
} from '../model.ts';

/**
 * The narrow interfaces through which the core reaches AWS. The real implementations live in
 * src/adapters; the in-memory account in src/demo implements the same ports for the demo and tests.
 */

export interface InventoryPort {
  /** The account the credentials belong to. */
  accountId(): Promise<string>;
  /** Every image the account owns in the Region, deprecated and disabled ones included, all pages. */
  listOwnedImages(progress?: ListProgress): Promise<Image[]>;
  /**
   * Resources that still need each image, keyed by image id. An image with no entry (or an empty
   * list) is referenced by nothing. Must throw rather than return a partial answer: the core
   * treats a missing answer as "unknown", which blocks every removal.
   */
  findReferences(images: readonly Image[], progress?: CheckProgress): Promise<Map<string, Reference[]>>;
  /**
   * How many images one reference check takes (DescribeImageReferences: 10). The sweep asks that
   * many at a time, so each answer is complete for its images, which can then be acted on at once.
   */
  readonly referenceBatchSize?: number;
  /**
   * Starts now what every reference check needs whatever the images (the account-wide listings of
   * launch templates and Auto Scaling groups), so it overlaps the image and snapshot listings.
   */
  prepareReferences?(): void;
}

/** Told after each page of a listing: how many have been listed so far. */
export interface ListProgress {
  onPage?: (listed: number) => void;
}

/** Told as a check over a known set goes: how many of the set have been checked so far. */
export interface CheckProgress {
  onChecked?: (checked: number) => void;
}

/** Phases of a run whose size is known when they start. */
export type ProgressPhase =
  | 'references'
  | 'image-shares'
  | 'snapshot-shares'
  | 'image-actions'
  | 'snapshot-actions';

/**
 * How far a run has got: an inventory counted as its pages arrive, then `done` of `total` for the
 * phases of known size. For a progress line on a terminal; the Lambda passes none. Reporting
 * must not throw, and changes nothing about the run.
 */
export type ProgressEvent =
  | { phase: 'images' | 'snapshots'; listed: number }
  | { phase: ProgressPhase; done: number; total: number };

export interface ProgressPort {
  report(event: ProgressEvent): void;
}

export interface SnapshotDeleteResult {
  snapshotId: string;
  /** `success`, `skipped`, `missing-permissions`, `internal-error` or `client-error`. */
  returnCode: string;
}

export interface DeregisterResult {
  /** Present only when DeleteAssociatedSnapshots was honoured by the API. */
  snapshotResults?: SnapshotDeleteResult[];
}

export interface ImageActionsPort {
  /** The steady pace of deregistrations, where they are paced: how many an invocation can still reach. */
  readonly deregistrationsPerSecond?: number | undefined;
  /** Current state of the given images; ids that no longer exist are simply absent. */
  describeImages(imageIds: readonly string[]): Promise<Image[]>;
  tagImage(imageId: string, tags: Record<string, string>): Promise<void>;
  untagImage(imageId: string, keys: readonly string[]): Promise<void>;
  /**
   * The same tags on many images or snapshots: one CreateTags call per 1,000 ids. Resolves with
   * the ids that could not be tagged and why; an empty map means every one was.
   */
  tagResources(resourceIds: readonly string[], tags: Record<string, string>): Promise<Map<string, unknown>>;
  untagResources(resourceIds: readonly string[], keys: readonly string[]): Promise<Map<string, unknown>>;
  enableDeprecation(imageId: string, at: Date): Promise<void>;
  disableDeprecation(imageId: string): Promise<void>;
  deregisterImage(
    imageId: string,
    options: { deleteAssociatedSnapshots: boolean },
  ): Promise<DeregisterResult>;
  deleteSnapshot(snapshotId: string): Promise<void>;
  /**
   * Current state of the given snapshots (absent ids no longer exist): read right before an image
   * is deregistered, so a snapshot tagged exempt since planning is left out of the deletion.
   */
  describeSnapshots?(snapshotIds: readonly string[]): Promise<Snapshot[]>;
  /**
   * DisableImage: no one anywhere can launch the image any more. EC2 drops its launch permissions,
   * which EnableImage does not restore.
   */
  disableImage?(imageId: string): Promise<void>;
  /** EnableImage: only for an image this janitor disabled. */
  enableImage?(imageId: string): Promise<void>;
}

export interface SnapshotInventoryPort {
  /** Every snapshot the account owns in the Region, all pages. */
  listOwnedSnapshots(accountId: string, progress?: ListProgress): Promise<Snapshot[]>;
  /**
   * Snapshots under a lock that still applies (every lock state but `expired`), all pages.
   * `supported: false` when the endpoint lacks DescribeLockedSnapshots (emulators); a refused or
   * throttled call throws an InventoryError instead, since the locks are then unknown.
   */
  lockedSnapshotIds(): Promise<{ supported: boolean; ids: Set<string> }>;
  /** Ids of every volume in the Region, all pages: for `all-unreferenced`, to tell a source volume is gone. */
  existingVolumeIds(): Promise<Set<string>>;
  /** Current state of the given snapshots; ids that no longer exist are simply absent. */
  describeSnapshots(snapshotIds: readonly string[]): Promise<Snapshot[]>;
}

/**
 * A shared image's use in the accounts it reaches. Where the endpoint lacks an API (older
 * partitions, emulators), the call throws UnsupportedApiError: never read as "unused".
 */
export interface ImageUsagePort {
  /** Who may launch the image (DescribeImageAttribute launchPermission). */
  launchPermissions(imageId: string): Promise<SharePermissions>;
  /**
   * Starts an AMI usage report over instances and launch templates (and Image Builder recipes
   * where the API offers them); resolves with its id.
   */
  createUsageReport(imageId: string): Promise<string>;
  /** The report, with its entries once complete; undefined when it no longer exists (reports expire). */
  usageReport(imageId: string, reportId: string): Promise<ImageUsageReport | undefined>;
}

/**
 * Organisation-wide: the target accounts' own reference checks, for images shared with them.
 * Resolves undefined for an account that is not a target (its use is the usage report's to tell).
 */
export interface ConsumerReferences {
  referencesIn(accountId: string, images: readonly Image[]): Promise<Map<string, Reference[]> | undefined>;
}

/** The undo window: what the Recycle Bin holds and which rules send removals there. */
export interface RecycleBinPort {
  /** Every image in the bin, all pages (ListImagesInRecycleBin). */
  imagesInRecycleBin(): Promise<BinnedImage[]>;
  /** Retention rules for EC2_IMAGE and EBS_SNAPSHOT, with their tag and exclusion conditions. */
  retentionRules(): Promise<RetentionRule[]>;
}

/** Who may use an image or snapshot, and taking that away: the real-time audit's reach into AWS. */
export interface SharingPort {
  imageLaunchPermissions(imageId: string): Promise<SharePermissions>;
  snapshotPermissions(snapshotId: string): Promise<SharePermissions>;
  removeImagePermissions(imageId: string, offending: SharePermissions): Promise<void>;
  removeSnapshotPermissions(snapshotId: string, offending: SharePermissions): Promise<void>;
  /** The snapshot, or undefined when it no longer exists. */
  describeSnapshot(snapshotId: string): Promise<Snapshot | undefined>;
  /** Tags an image or a snapshot (CreateTags takes either). */
  tagResource(resourceId: string, tags: Record<string, string>): Promise<void>;
  untagResource(resourceId: string, keys: readonly string[]): Promise<void>;
}

/** A few small values that must outlive one invocation, such as what was last alerted on. */
export interface StateStore {
  get(key: string): Promise<string | undefined>;
  put(key: string, value: string): Promise<void>;
}

/** Lambda's remaining time, or an unbounded budget for the CLI. */
export interface Deadline {
  remainingMs(): number;
}

export const unboundedDeadline: Deadline = { remainingMs: () => Number.POSITIVE_INFINITY };

/** The subset of the Powertools Logger the core uses, so tests can pass a recorder. */
export interface Log {
  debug(message: string, ...extra: LogExtra): void;
  info(message: string, ...extra: LogExtra): void;
  warn(message: string, ...extra: LogExtra): void;
  error(message: string, ...extra: LogExtra): void;
}

/** The same shapes the Powertools Logger accepts: one error, or any number of attribute objects. */
export type LogExtra = [Error | string] | { [key: string]: unknown }[];
