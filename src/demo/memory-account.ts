import type {
  DeregisterResult,
  ImageActionsPort,
  ImageUsagePort,
  InventoryPort,
  RecycleBinPort,
  SharingPort,
  SnapshotInventoryPort,
} from '../core/ports.ts';
import { UnsupportedApiError } from '../errors.ts';
import {
  type BinnedImage,
  type Image,
  type ImageUsageReport,
  NOT_SHARED,
  type Reference,
  type RetentionRule,
  type SharePermissions,
  type Snapshot,
} from '../model.ts';

const DAY_MS = 86_400_000;

export interface MemoryAccountSeed {
  accountId: string;
  images: Image[];
  /** Snapshots that exist in the account; defaults to every snapshot the images reference. */
  snapshotIds?: string[];
  /** Snapshots with their details; ids listed here need not be in `snapshotIds`. */
  snapshots?: Snapshot[];
  references?: Record<string, Reference[]>;
  /** Launch or create-volume permissions by image or snapshot id; public images default to public. */
  sharing?: Record<string, SharePermissions>;
  /** Snapshots under a lock that still applies. */
  lockedSnapshotIds?: string[];
  /** Volumes that exist in the account; none unless listed. */
  volumeIds?: string[];
  /**
   * The account's clock: it dates the usage reports it creates and what deregistering sends to the
   * Recycle Bin. Defaults to the newest date in the seed, so a run stays reproducible.
   */
  now?: Date;
  /** AMI usage reports that exist already, in any state. */
  usageReports?: ImageUsageReport[];
  /** Images already in the Recycle Bin. */
  binnedImages?: BinnedImage[];
  /** Recycle Bin retention rules; a covered image that is deregistered goes to the bin. */
  retentionRules?: RetentionRule[];
  /**
   * Port methods this endpoint lacks (`createUsageReport`, `usageReport`, `launchPermissions`,
   * `imagesInRecycleBin`, `retentionRules`, `disableImage`, `enableImage`, `archiveSnapshot`):
   * they throw UnsupportedApiError, as the adapters do where EC2 or moto lack the API.
   */
  unsupported?: string[];
}

class MemoryError extends Error {
  constructor(code: string, message: string) {
    super(message);
    this.name = code;
  }
}

/**
 * An account held in memory behind the same ports as the real adapters. It powers the built-in
 * demo and the core's tests, and it behaves like EC2 where the core depends on it: unknown ids
 * raise EC2's error codes, deregistering keeps snapshots unless asked, tags merge.
 */
export class MemoryAccount
  implements
    InventoryPort,
    ImageActionsPort,
    SnapshotInventoryPort,
    SharingPort,
    ImageUsagePort,
    RecycleBinPort
{
  readonly id: string;
  readonly images = new Map<string, Image>();
  readonly snapshots = new Map<string, Snapshot & { tags: Record<string, string> }>();
  readonly references = new Map<string, Reference[]>();
  readonly sharing = new Map<string, SharePermissions>();
  /** Every mutating call, in order, so tests can assert exactly what a run changed. */
  readonly calls: string[] = [];
  /** Errors to raise on the next matching calls, in order, keyed `operation:resourceId`. */
  readonly failures = new Map<string, Error[]>();
  readonly lockedSnapshots = new Set<string>();
  readonly volumes = new Set<string>();
  /** Usage reports by report id; a test may complete one by changing its state and entries. */
  readonly usageReports = new Map<string, ImageUsageReport>();
  /** The Recycle Bin, by image id. */
  readonly recycleBin = new Map<string, BinnedImage>();
  readonly retentionRuleList: RetentionRule[] = [];
  readonly unsupported = new Set<string>();
  /** The account's clock; a test may move it. */
  now: Date;
  private reportsCreated = 0;

  constructor(seed: MemoryAccountSeed) {
    this.id = seed.accountId;
    for (const image of seed.images) this.images.set(image.imageId, structuredClone(image));
    for (const image of seed.images) {
      if (image.public) this.sharing.set(image.imageId, { ...NOT_SHARED, public: true });
    }
    const imageOf = new Map(
      seed.images.flatMap((image) => image.snapshotIds.map((id) => [id, image] as const)),
    );
    for (const id of seed.snapshotIds ?? [...imageOf.keys()]) {
      const image = imageOf.get(id);
      this.snapshots.set(id, {
        snapshotId: id,
        ownerId: this.id,
        volumeId: 'vol-ffffffff',
        volumeSizeGiB: 8,
        startTime: image?.creationDate ?? new Date(0),
        description: image ? `Created by CreateImage(i-0123456789abcdef0) for ${image.imageId}` : '',
        state: 'completed',
        tags: {},
      });
    }
    for (const snapshot of seed.snapshots ?? []) {
      this.snapshots.set(snapshot.snapshotId, structuredClone({ ...snapshot, tags: { ...snapshot.tags } }));
    }
    for (const [imageId, refs] of Object.entries(seed.references ?? {})) this.references.set(imageId, refs);
    for (const [id, permissions] of Object.entries(seed.sharing ?? {}))
      this.sharing.set(id, structuredClone(permissions));
    for (const id of seed.lockedSnapshotIds ?? []) this.lockedSnapshots.add(id);
    for (const id of seed.volumeIds ?? []) this.volumes.add(id);
    for (const report of seed.usageReports ?? [])
      this.usageReports.set(report.reportId, structuredClone(report));
    for (const image of seed.binnedImages ?? []) this.recycleBin.set(image.imageId, structuredClone(image));
    this.retentionRuleList.push(...structuredClone(seed.retentionRules ?? []));
    for (const method of seed.unsupported ?? []) this.unsupported.add(method);
    this.now = seed.now ? new Date(seed.now) : newestDate(seed);
  }

  failNext(operation: string, resourceId: string, code: string, message = `${code} (injected)`): void {
    const key = `${operation}:${resourceId}`;
    this.failures.set(key, [...(this.failures.get(key) ?? []), new MemoryError(code, message)]);
  }

  async accountId(): Promise<string> {
    return this.id;
  }

  async listOwnedImages(): Promise<Image[]> {
    this.raiseInjected('listOwnedImages', '*');
    // The seed stands for what DescribeImages returned, so it is served as given.
    return [...this.images.values()].map((image) => structuredClone(image));
  }

  async findReferences(images: readonly Image[]): Promise<Map<string, Reference[]>> {
    this.raiseInjected('findReferences', '*');
    const found = new Map<string, Reference[]>();
    for (const image of images) {
      const refs = this.references.get(image.imageId);
      if (refs && refs.length > 0) found.set(image.imageId, [...refs]);
    }
    return found;
  }

  async describeImages(imageIds: readonly string[]): Promise<Image[]> {
    this.raiseInjected('describeImages', '*');
    return imageIds.flatMap((id) => {
      const image = this.images.get(id);
      return image ? [structuredClone(image)] : [];
    });
  }

  async tagImage(imageId: string, tags: Record<string, string>): Promise<void> {
    const image = this.mutable('tagImage', imageId);
    image.tags = { ...image.tags, ...tags };
  }

  async untagImage(imageId: string, keys: readonly string[]): Promise<void> {
    const image = this.mutable('untagImage', imageId);
    image.tags = Object.fromEntries(Object.entries(image.tags).filter(([key]) => !keys.includes(key)));
  }

  async tagResources(
    resourceIds: readonly string[],
    tags: Record<string, string>,
  ): Promise<Map<string, unknown>> {
    return this.each(resourceIds, (id) => this.tagResource(id, tags));
  }

  async untagResources(
    resourceIds: readonly string[],
    keys: readonly string[],
  ): Promise<Map<string, unknown>> {
    return this.each(resourceIds, (id) => this.untagResource(id, keys));
  }

  private async each(
    ids: readonly string[],
    work: (id: string) => Promise<void>,
  ): Promise<Map<string, unknown>> {
    const failures = new Map<string, unknown>();
    for (const id of ids) {
      try {
        await work(id);
      } catch (error) {
        failures.set(id, error);
      }
    }
    return failures;
  }

  async enableDeprecation(imageId: string, at: Date): Promise<void> {
    this.mutable('enableDeprecation', imageId).deprecationTime = at;
  }

  async disableDeprecation(imageId: string): Promise<void> {
    delete this.mutable('disableDeprecation', imageId).deprecationTime;
  }

  async deregisterImage(
    imageId: string,
    options: { deleteAssociatedSnapshots: boolean },
  ): Promise<DeregisterResult> {
    const image = this.mutable('deregisterImage', imageId);
    if (image.deregistrationProtection && image.deregistrationProtection !== 'disabled') {
      throw new MemoryError(
        'InvalidParameterValue',
        `image ${imageId} has deregistration protection enabled`,
      );
    }
    this.images.delete(imageId);
    this.sendToRecycleBin(image);
    if (!options.deleteAssociatedSnapshots) return {};
    const snapshotResults = image.snapshotIds.map((snapshotId) => {
      const stillUsed = [...this.images.values()].some((other) => other.snapshotIds.includes(snapshotId));
      if (stillUsed) return { snapshotId, returnCode: 'skipped' };
      this.snapshots.delete(snapshotId);
      return { snapshotId, returnCode: 'success' };
    });
    return { snapshotResults };
  }

  async listOwnedSnapshots(accountId: string): Promise<Snapshot[]> {
    this.raiseInjected('listOwnedSnapshots', '*');
    return [...this.snapshots.values()].filter((s) => s.ownerId === accountId).map((s) => structuredClone(s));
  }

  async describeSnapshots(snapshotIds: readonly string[]): Promise<Snapshot[]> {
    this.raiseInjected('describeSnapshots', '*');
    return snapshotIds.flatMap((id) => {
      const snapshot = this.snapshots.get(id);
      return snapshot ? [structuredClone(snapshot)] : [];
    });
  }

  async describeSnapshot(snapshotId: string): Promise<Snapshot | undefined> {
    const snapshot = this.snapshots.get(snapshotId);
    return snapshot ? structuredClone(snapshot) : undefined;
  }

  async imageLaunchPermissions(imageId: string): Promise<SharePermissions> {
    this.raiseInjected('imageLaunchPermissions', imageId);
    return structuredClone(this.sharing.get(imageId) ?? NOT_SHARED);
  }

  async snapshotPermissions(snapshotId: string): Promise<SharePermissions> {
    this.raiseInjected('snapshotPermissions', snapshotId);
    return structuredClone(this.sharing.get(snapshotId) ?? NOT_SHARED);
  }

  async removeImagePermissions(imageId: string, offending: SharePermissions): Promise<void> {
    this.record('removeImagePermissions', imageId);
    this.removePermissions(imageId, offending);
    const image = this.images.get(imageId);
    if (image) image.public = this.sharing.get(imageId)?.public ?? false;
  }

  async removeSnapshotPermissions(snapshotId: string, offending: SharePermissions): Promise<void> {
    this.record('removeSnapshotPermissions', snapshotId);
    this.removePermissions(snapshotId, offending);
  }

  async tagResource(resourceId: string, tags: Record<string, string>): Promise<void> {
    if (resourceId.startsWith('ami-')) return this.tagImage(resourceId, tags);
    this.record('tagResource', resourceId);
    const snapshot = this.existingSnapshot(resourceId);
    snapshot.tags = { ...snapshot.tags, ...tags };
  }

  async untagResource(resourceId: string, keys: readonly string[]): Promise<void> {
    if (resourceId.startsWith('ami-')) return this.untagImage(resourceId, keys);
    this.record('untagResource', resourceId);
    const snapshot = this.existingSnapshot(resourceId);
    snapshot.tags = Object.fromEntries(Object.entries(snapshot.tags).filter(([key]) => !keys.includes(key)));
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    this.record('deleteSnapshot', snapshotId);
    if (!this.snapshots.has(snapshotId)) {
      throw new MemoryError('InvalidSnapshot.NotFound', `The snapshot '${snapshotId}' does not exist.`);
    }
    const user = [...this.images.values()].find((image) => image.snapshotIds.includes(snapshotId));
    if (user) {
      throw new MemoryError(
        'InvalidSnapshot.InUse',
        `The snapshot ${snapshotId} is currently in use by ${user.imageId}`,
      );
    }
    this.snapshots.delete(snapshotId);
  }

  private existingSnapshot(snapshotId: string): Snapshot & { tags: Record<string, string> } {
    const snapshot = this.snapshots.get(snapshotId);
    if (!snapshot)
      throw new MemoryError('InvalidSnapshot.NotFound', `The snapshot '${snapshotId}' does not exist.`);
    return snapshot;
  }

  private removePermissions(resourceId: string, offending: SharePermissions): void {
    const current = this.sharing.get(resourceId) ?? NOT_SHARED;
    this.sharing.set(resourceId, {
      public: current.public && !offending.public,
      accounts: current.accounts.filter((id) => !offending.accounts.includes(id)),
      organizations: current.organizations.filter((arn) => !offending.organizations.includes(arn)),
      organizationalUnits: current.organizationalUnits.filter(
        (arn) => !offending.organizationalUnits.includes(arn),
      ),
    });
  }

  private mutable(operation: string, imageId: string): Image & { tags: Record<string, string> } {
    this.record(operation, imageId);
    const image = this.images.get(imageId);
    if (!image) throw new MemoryError('InvalidAMIID.NotFound', `The image id '[${imageId}]' does not exist`);
    return image as Image & { tags: Record<string, string> };
  }

  private record(operation: string, resourceId: string): void {
    this.calls.push(`${operation} ${resourceId}`);
    this.raiseInjected(operation, resourceId);
  }

  private raiseInjected(operation: string, resourceId: string): void {
    const key = `${operation}:${resourceId}`;
    const [error, ...rest] = this.failures.get(key) ?? [];
    if (!error) return;
    if (rest.length > 0) this.failures.set(key, rest);
    else this.failures.delete(key);
    throw error;
  }

  async disableImage(imageId: string): Promise<void> {
    this.refuseUnsupported('disableImage', 'DisableImage');
    const image = this.mutable('disableImage', imageId);
    image.state = 'disabled';
    // As EC2 does: a disabled image loses every launch permission, and enabling does not bring them back.
    image.public = false;
    this.sharing.delete(imageId);
  }

  async enableImage(imageId: string): Promise<void> {
    this.refuseUnsupported('enableImage', 'EnableImage');
    this.mutable('enableImage', imageId).state = 'available';
  }

  async archiveSnapshot(snapshotId: string): Promise<void> {
    this.refuseUnsupported('archiveSnapshot', 'ModifySnapshotTier');
    this.record('archiveSnapshot', snapshotId);
    this.existingSnapshot(snapshotId).storageTier = 'archive';
  }

  async launchPermissions(imageId: string): Promise<SharePermissions> {
    this.refuseUnsupported('launchPermissions', 'DescribeImageAttribute');
    this.raiseInjected('launchPermissions', imageId);
    return structuredClone(this.sharing.get(imageId) ?? NOT_SHARED);
  }

  async createUsageReport(imageId: string): Promise<string> {
    this.refuseUnsupported('createUsageReport', 'CreateImageUsageReport');
    this.record('createUsageReport', imageId);
    if (!this.images.has(imageId)) {
      throw new MemoryError('InvalidAMIID.NotFound', `The image id '[${imageId}]' does not exist`);
    }
    this.reportsCreated += 1;
    const reportId = `amiur-${this.reportsCreated.toString(16).padStart(17, '0')}`;
    this.usageReports.set(reportId, {
      reportId,
      imageId,
      state: 'pending',
      createdAt: new Date(this.now),
      entries: [],
    });
    return reportId;
  }

  async usageReport(imageId: string, reportId: string): Promise<ImageUsageReport | undefined> {
    this.refuseUnsupported('usageReport', 'DescribeImageUsageReports');
    this.raiseInjected('usageReport', reportId);
    const report = this.usageReports.get(reportId);
    if (!report || report.imageId !== imageId) return undefined;
    // Entries belong to a complete report only, as DescribeImageUsageReportEntries has them.
    return structuredClone(report.state === 'available' ? report : { ...report, entries: [] });
  }

  async imagesInRecycleBin(): Promise<BinnedImage[]> {
    this.refuseUnsupported('imagesInRecycleBin', 'ListImagesInRecycleBin');
    this.raiseInjected('imagesInRecycleBin', '*');
    return [...this.recycleBin.values()]
      .filter((image) => image.leavesAt === undefined || image.leavesAt > this.now)
      .map((image) => structuredClone(image));
  }

  async retentionRules(): Promise<RetentionRule[]> {
    this.refuseUnsupported('retentionRules', 'ListRules');
    this.raiseInjected('retentionRules', '*');
    return structuredClone(this.retentionRuleList);
  }

  /**
   * What the Recycle Bin does with a deregistered image: an available rule that covers it keeps it
   * for its retention period, the longest when several do.
   */
  private sendToRecycleBin(image: Image): void {
    const days = this.retentionRuleList
      .filter((rule) => rule.resourceType === 'EC2_IMAGE' && rule.status === 'available')
      .filter((rule) => ruleCovers(rule, image.tags))
      .map((rule) => rule.retentionDays);
    if (days.length === 0) return;
    this.recycleBin.set(image.imageId, {
      imageId: image.imageId,
      name: image.name,
      enteredAt: new Date(this.now),
      leavesAt: new Date(this.now.getTime() + Math.max(...days) * DAY_MS),
    });
  }

  private refuseUnsupported(method: string, operation: string): void {
    if (this.unsupported.has(method)) throw new UnsupportedApiError(operation);
  }

  async lockedSnapshotIds(): Promise<{ supported: boolean; ids: Set<string> }> {
    this.raiseInjected('lockedSnapshotIds', '*');
    return { supported: true, ids: new Set(this.lockedSnapshots) };
  }

  async existingVolumeIds(): Promise<Set<string>> {
    this.raiseInjected('existingVolumeIds', '*');
    return new Set(this.volumes);
  }
}

/** A tag-level rule covers a resource with any of its tags; a Region-level one all but the excluded. */
function ruleCovers(rule: RetentionRule, tags: Readonly<Record<string, string>>): boolean {
  const has = ({ key, value }: { key: string; value: string }) =>
    key in tags && (value === '' || tags[key] === value);
  if (rule.resourceTags.length > 0) return rule.resourceTags.some(has);
  return !rule.excludeTags.some(has);
}

function newestDate(seed: MemoryAccountSeed): Date {
  const times = [
    ...seed.images.map((image) => image.creationDate.getTime()),
    ...(seed.snapshots ?? []).map((snapshot) => snapshot.startTime.getTime()),
  ];
  return new Date(times.length > 0 ? Math.max(...times) : 0);
}
