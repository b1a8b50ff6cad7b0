import type { DeregisterResult, ImageActionsPort, InventoryPort } from '../core/ports.ts';
import type { Image, Reference } from '../model.ts';

export interface MemoryAccountSeed {
  accountId: string;
  images: Image[];
  /** Snapshots that exist in the account; defaults to every snapshot the images reference. */
  snapshotIds?: string[];
  references?: Record<string, Reference[]>;
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
export class MemoryAccount implements InventoryPort, ImageActionsPort {
  readonly id: string;
  readonly images = new Map<string, Image>();
  readonly snapshots = new Set<string>();
  readonly references = new Map<string, Reference[]>();
  /** Every mutating call, in order, so tests can assert exactly what a run changed. */
  readonly calls: string[] = [];
  /** Errors to raise on the next matching call, keyed `operation:resourceId`. */
  readonly failures = new Map<string, Error>();

  constructor(seed: MemoryAccountSeed) {
    this.id = seed.accountId;
    for (const image of seed.images) this.images.set(image.imageId, structuredClone(image));
    for (const id of seed.snapshotIds ?? seed.images.flatMap((image) => image.snapshotIds))
      this.snapshots.add(id);
    for (const [imageId, refs] of Object.entries(seed.references ?? {})) this.references.set(imageId, refs);
  }

  failNext(operation: string, resourceId: string, code: string, message = `${code} (injected)`): void {
    this.failures.set(`${operation}:${resourceId}`, new MemoryError(code, message));
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
    if (!options.deleteAssociatedSnapshots) return {};
    const snapshotResults = image.snapshotIds.map((snapshotId) => {
      const stillUsed = [...this.images.values()].some((other) => other.snapshotIds.includes(snapshotId));
      if (stillUsed) return { snapshotId, returnCode: 'skipped' };
      this.snapshots.delete(snapshotId);
      return { snapshotId, returnCode: 'success' };
    });
    return { snapshotResults };
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
    const error = this.failures.get(key);
    if (error) {
      this.failures.delete(key);
      throw error;
    }
  }
}
