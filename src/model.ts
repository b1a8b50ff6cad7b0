/**
 * Domain types shared by adapters, rules, the planner and the executor.
 * Everything here is plain data so that a plan or a report can be printed, diffed and replayed.
 */

export type ImageState =
  | 'available'
  | 'pending'
  | 'invalid'
  | 'deregistered'
  | 'transient'
  | 'failed'
  | 'error'
  | 'disabled';

export interface Image {
  imageId: string;
  name: string;
  ownerId: string;
  state: ImageState;
  creationDate: Date;
  /** Undefined when the image was never launched (or the API does not track it). */
  lastLaunchedTime?: Date;
  deprecationTime?: Date;
  /** `disabled`, `enabled` or `enabled-with-cooldown`, as DescribeImages reports it. */
  deregistrationProtection?: string;
  public: boolean;
  tags: Readonly<Record<string, string>>;
  /** EBS snapshots behind the block device mappings, in mapping order. */
  snapshotIds: readonly string[];
  sourceInstanceId?: string;
}

export interface Reference {
  /** `ec2:Instance`, `ec2:LaunchTemplate`, `ssm:Parameter`, `autoscaling:AutoScalingGroup`, ... */
  resourceType: string;
  /** An ARN where one exists, else the resource id. */
  resource: string;
  /** Extra context for a human, e.g. `stopped` or `version 4 ($Default)`. */
  detail?: string;
}

/** Facts about one image gathered once per run; rules read them and never call AWS. */
export interface ImageFacts {
  accountId: string;
  references: readonly Reference[];
  family: string;
  /** 1 = newest image of its family. */
  familyRank: number;
  familySize: number;
  /** Launch permissions, where they were read; otherwise only `Image.public` is known. */
  sharing?: SharePermissions;
  /** What the image's AMI usage report says, for shared images whose use elsewhere is checked. */
  usage?: UsageFact;
  /**
   * Organisation-wide: what uses the image in the target accounts it is shared with, read there
   * directly (their own reference checks, through their member role): current, without a report's lag.
   */
  usedInTargets?: { accountId: string; references: readonly Reference[] }[];
}

/** One AMI usage report (CreateImageUsageReport), as far as it has got. */
export interface ImageUsageReport {
  reportId: string;
  imageId: string;
  /** `pending`, `available` (complete) or `failed`, or whatever EC2 adds later. */
  state: string;
  stateReason?: string;
  createdAt: Date;
  /** A complete report's entries: uses by account and resource type (`ec2:Instance`, ...). */
  entries: { accountId: string; resourceType: string; usageCount: number }[];
}

/** What is known of a shared image's use in other accounts. Only a trusted report can clear it. */
export type UsageFact =
  | { status: 'report'; report: ImageUsageReport }
  /** No report was requested yet, or the one recorded on the image no longer exists. */
  | { status: 'none'; detail: string }
  | { status: 'unsupported'; detail: string }
  | { status: 'error'; errorCode: string; detail: string };

/** An image that was deregistered into the Recycle Bin, and can be restored until it leaves. */
export interface BinnedImage {
  imageId: string;
  name?: string;
  enteredAt?: Date;
  leavesAt?: Date;
}

/** A Recycle Bin retention rule (rbin ListRules), with what it covers. */
export interface RetentionRule {
  identifier: string;
  resourceType: 'EC2_IMAGE' | 'EBS_SNAPSHOT';
  retentionDays: number;
  /** A tag-level rule covers resources with any of these tags; an empty list is a Region-level rule. */
  resourceTags: { key: string; value: string }[];
  /** A Region-level rule does not cover resources with any of these tags. */
  excludeTags: { key: string; value: string }[];
  /** `available` rules retain; `pending` ones do not yet. */
  status: string;
}

export type Severity = 'critical' | 'high' | 'medium' | 'low';

export type Verdict =
  | { kind: 'keep'; reason: string }
  | { kind: 'expire'; reason: string }
  | { kind: 'flag'; severity: Severity; reason: string };

export interface Finding {
  rule: string;
  severity: Severity;
  reason: string;
}

export interface Decision {
  imageId: string;
  name: string;
  verdict: 'keep' | 'expire';
  /** The rule that settled the verdict. */
  rule: string;
  reason: string;
  findings: Finding[];
  /**
   * A continued invocation's decision for an image it does not remove (kept whatever uses it, or
   * not due yet), made without reading its references again: the reason may leave out what uses
   * the image, which the run's first invocation read and logged.
   */
  carried?: true;
}

/** `disable` and `request-usage-report` happen only with the optional step and for shared images. */
export type ActionKind = 'mark' | 'disable' | 'deregister' | 'unmark' | 'request-usage-report';

export interface PlannedAction {
  kind: ActionKind;
  imageId: string;
  name: string;
  rule: string;
  reason: string;
  /** mark: when the image becomes removable. */
  removeAfter?: string;
  /** deregister: snapshots no other image uses, deleted with the image. */
  snapshotIds?: string[];
  /** deregister: snapshots kept because another image still uses them. */
  sharedSnapshotIds?: string[];
  /** deregister: the image's own snapshots that outlive it (exempt, locked, DLM- or Backup-managed). */
  keptSnapshots?: { snapshotId: string; reason: string }[];
  /** mark/unmark: whether the image's deprecation time is ours to set or cancel. */
  touchDeprecation?: boolean;
  /** mark: when to deprecate, where it differs from removeAfter (a disable step comes first). */
  deprecateAt?: string;
  /** mark: the image is shared; an AMI usage report is requested with the mark. */
  requestUsageReport?: boolean;
  /** unmark: the image was disabled by this janitor and is enabled again. */
  enable?: boolean;
}

export interface DeferredImage {
  imageId: string;
  name: string;
  reason: string;
}

export interface ScheduledRemoval {
  imageId: string;
  name: string;
  /** When the next stage is due. */
  removeAfter: string;
  markedAt: string;
  /** The next stage (`disable` or `deregister`), where an optional step is on. */
  next?: string;
}

export interface Plan {
  accountId: string;
  region: string;
  asOf: string;
  inventorySize: number;
  decisions: Decision[];
  actions: PlannedAction[];
  /** Eligible but held back by the blast-radius cap. */
  deferred: DeferredImage[];
  /** Marked earlier, still eligible, grace not yet over. */
  scheduled: ScheduledRemoval[];
  cap: { limit: number; eligible: number; capped: boolean };
  /** Orphaned snapshots; absent when the run did not look at snapshots. */
  snapshots?: SnapshotPlan;
}

/** `planned`: a read-only plan; `dry-run`: apply with dry run on, so nothing was changed. */
export type OutcomeStatus =
  | 'planned'
  | 'done'
  | 'dry-run'
  | 'already-gone'
  | 'skipped'
  | 'failed'
  | 'not-reached';

export interface SnapshotOutcome {
  snapshotId: string;
  status: 'deleted' | 'dry-run' | 'already-gone' | 'skipped' | 'failed';
  detail?: string;
}

/** Whether a removal can be undone from the Recycle Bin, and until when. */
export type Recovery =
  | { recoverable: true; until: string; rule: string }
  | { recoverable: false; reason: string };

export interface ActionOutcome {
  action: PlannedAction;
  status: OutcomeStatus;
  detail?: string;
  errorCode?: string;
  warnings: string[];
  snapshots: SnapshotOutcome[];
  /** Deregistrations, where the Recycle Bin's rules were read. */
  recovery?: Recovery;
}

/** Who made an API call, resolved from CloudTrail's `userIdentity`. */
export interface Caller {
  /**
   * The principal to ask: the IAM user, the role behind an assumed-role session (its session
   * issuer), the account root, or the AWS service that called on someone's behalf.
   */
  arn: string;
  /** CloudTrail's identity type: IAMUser, AssumedRole, Root, AWSService, FederatedUser, ... */
  type: string;
  /** For assumed roles and federated users: the session name, often the person's login. */
  sessionName?: string;
  accountId?: string;
  sourceIp?: string;
  userAgent?: string;
}

/** Who may launch an image (launchPermission) or restore a snapshot (createVolumePermission). */
export interface SharePermissions {
  public: boolean;
  accounts: string[];
  organizations: string[];
  organizationalUnits: string[];
}

export const NOT_SHARED: SharePermissions = Object.freeze({
  public: false,
  accounts: [],
  organizations: [],
  organizationalUnits: [],
}) as SharePermissions;

export interface Snapshot {
  snapshotId: string;
  ownerId: string;
  /** The volume it was taken from; EC2 reports `vol-ffffffff` when there was none (copies, imports). */
  volumeId?: string;
  /** GiB of the source volume: an upper bound on what the snapshot is billed for. */
  volumeSizeGiB: number;
  /** Full size of the snapshot's data, where EC2 reports it. */
  fullSizeBytes?: number;
  startTime: Date;
  description: string;
  state: string;
  tags: Readonly<Record<string, string>>;
  storageTier?: string;
}

export interface SnapshotFacts {
  accountId: string;
  /** Images (any state, disabled and deprecated included) whose block devices use this snapshot. */
  usedBy: readonly string[];
  /** Every image id the account still has, to tell whether a snapshot's named image is gone. */
  existingImageIds: ReadonlySet<string>;
  locked: boolean;
  /** Whether the source volume still exists; undefined when volumes were not listed. */
  volumeExists?: boolean;
  /** Create-volume permissions; read only for snapshots that would otherwise be orphans. */
  sharing?: SharePermissions | 'unknown';
  /** Images in the Recycle Bin by id, where the bin could be read: their snapshots are not orphans. */
  binnedImages?: ReadonlyMap<string, BinnedImage>;
}

export interface SnapshotDecision {
  snapshotId: string;
  verdict: 'keep' | 'orphan';
  rule: string;
  reason: string;
  sizeGiB: number;
  /** The image its description names, when it names one. */
  imageId?: string;
}

export type SnapshotActionKind = 'mark' | 'archive' | 'delete' | 'unmark';

export interface PlannedSnapshotAction {
  kind: SnapshotActionKind;
  snapshotId: string;
  rule: string;
  reason: string;
  sizeGiB: number;
  removeAfter?: string;
}

export interface SnapshotActionOutcome {
  action: PlannedSnapshotAction;
  status: OutcomeStatus;
  detail?: string;
  errorCode?: string;
  /** Deletions, where the Recycle Bin's rules were read. */
  recovery?: Recovery;
}

export interface SnapshotPlan {
  inventorySize: number;
  decisions: SnapshotDecision[];
  actions: PlannedSnapshotAction[];
  deferred: { snapshotId: string; sizeGiB: number; reason: string }[];
  scheduled: { snapshotId: string; sizeGiB: number; removeAfter: string; markedAt: string; next?: string }[];
  cap: { limit: number; eligible: number; capped: boolean };
}
