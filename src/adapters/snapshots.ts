import {
  DescribeLockedSnapshotsCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  ModifySnapshotTierCommand,
} from '@aws-sdk/client-ec2';
import type { SnapshotInventoryPort } from '../core/ports.ts';
import type { SnapshotPorts } from '../core/snapshot-sweep.ts';
import { errorCode, InventoryError } from '../errors.ts';
import { logger } from '../logger.ts';
import type { Snapshot } from '../model.ts';
import { awsClients } from './clients.ts';
import { type AdapterDeps, makeCall, paginate } from './common.ts';
import { createImageActions } from './ec2.ts';
import { defaultLimiter } from './limiter.ts';
import { isUnsupportedAction } from './retry.ts';
import { createSharing } from './sharing.ts';
import { describeSnapshotsById, toSnapshot } from './snapshot-shape.ts';

/** DescribeSnapshots and DescribeLockedSnapshots accept 5 to 1,000; DescribeVolumes 5 to 500. */
const SNAPSHOT_PAGE_SIZE = 1000;
const LOCKED_SNAPSHOT_PAGE_SIZE = 1000;
const VOLUME_PAGE_SIZE = 500;

/**
 * The one lock state that no longer protects a snapshot. Every other state (governance,
 * compliance-cooloff, compliance, and any state EC2 adds later) is read as locked: a guard that
 * keeps a snapshot too long costs cents, one that lets a deletion through costs data.
 */
const EXPIRED_LOCK_STATE = 'expired';

/** A failed enumeration must stop the run: a missing fact never reads as "not locked" or "gone". */
async function inventoryStep<T>(description: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    if (error instanceof InventoryError) throw error;
    throw new InventoryError(`cannot ${description}: ${errorCode(error)}`, { cause: error });
  }
}

export function createSnapshotInventory(deps: AdapterDeps = {}): SnapshotInventoryPort {
  const ec2 = deps.ec2 ?? awsClients.ec2;
  const log = deps.log ?? logger;
  const call = makeCall(deps);
  // Once DescribeLockedSnapshots is known to be missing, later calls neither ask nor warn again.
  let lockApiUnsupported = false;

  return {
    describeSnapshots: (snapshotIds) => describeSnapshotsById(ec2, call, snapshotIds),

    async listOwnedSnapshots(accountId, progress) {
      return inventoryStep("list the account's snapshots", async () => {
        const snapshots: Snapshot[] = [];
        await paginate(
          'DescribeSnapshots',
          (NextToken) =>
            call('DescribeSnapshots', (options) =>
              ec2.send(
                // Both: OwnerIds=self is what EC2 documents, and without an owner EC2 also lists
                // every public snapshot. Some endpoints (moto among them) ignore OwnerIds and honour
                // only the owner-id filter, and the ownerId check below catches anything else.
                new DescribeSnapshotsCommand({
                  OwnerIds: ['self'],
                  Filters: [{ Name: 'owner-id', Values: [accountId] }],
                  MaxResults: SNAPSHOT_PAGE_SIZE,
                  NextToken,
                }),
                options,
              ),
            ),
          (page) => {
            for (const raw of page.Snapshots ?? []) {
              const snapshot = toSnapshot(raw);
              if (snapshot && snapshot.ownerId === accountId) snapshots.push(snapshot);
            }
            progress?.onPage?.(snapshots.length);
          },
        );
        return snapshots;
      });
    },

    async lockedSnapshotIds() {
      if (lockApiUnsupported) return { supported: false, ids: new Set<string>() };
      const ids = new Set<string>();
      let pagesRead = 0;
      try {
        // No lock-state filter: a state this code does not know yet must still come back as locked.
        await paginate(
          'DescribeLockedSnapshots',
          (NextToken) =>
            call('DescribeLockedSnapshots', (options) =>
              ec2.send(
                new DescribeLockedSnapshotsCommand({ MaxResults: LOCKED_SNAPSHOT_PAGE_SIZE, NextToken }),
                options,
              ),
            ),
          (page) => {
            pagesRead++;
            for (const entry of page.Snapshots ?? []) {
              if (entry.SnapshotId && entry.LockState !== EXPIRED_LOCK_STATE) ids.add(entry.SnapshotId);
            }
          },
        );
      } catch (error) {
        if (error instanceof InventoryError) throw error;
        // Once a page came back the action exists, so a later failure is a failure. Throttling,
        // AccessDenied and our own deadline all land here too: the locks are then unknown, not absent.
        if (pagesRead > 0 || deps.signal?.aborted || !isUnsupportedAction(error)) {
          throw new InventoryError(`cannot list locked snapshots: ${errorCode(error)}`, { cause: error });
        }
        lockApiUnsupported = true;
        log.warn('DescribeLockedSnapshots is not supported by this endpoint; snapshot locks are unknown', {
          errorCode: errorCode(error),
          error,
        });
        return { supported: false, ids: new Set<string>() };
      }
      return { supported: true, ids };
    },

    async existingVolumeIds() {
      return inventoryStep("list the account's volumes", async () => {
        const ids = new Set<string>();
        await paginate(
          'DescribeVolumes',
          (NextToken) =>
            call('DescribeVolumes', (options) =>
              ec2.send(new DescribeVolumesCommand({ MaxResults: VOLUME_PAGE_SIZE, NextToken }), options),
            ),
          (page) => {
            for (const volume of page.Volumes ?? []) if (volume.VolumeId) ids.add(volume.VolumeId);
          },
        );
        return ids;
      });
    },
  };
}

/** Everything the snapshot half of a sweep needs, from the same clients and signal. */
export function createSnapshotPorts(deps: AdapterDeps = {}): SnapshotPorts {
  const ec2 = deps.ec2 ?? awsClients.ec2;
  const call = makeCall(deps);
  const sharing = createSharing(deps);
  const images = createImageActions(deps);
  const inventory = createSnapshotInventory(deps);
  return {
    inventory,
    sharing,
    actions: {
      describeSnapshots: (ids) => inventory.describeSnapshots(ids),
      tagResources: (ids, tags) => images.tagResources(ids, tags),
      untagResources: (ids, keys) => images.untagResources(ids, keys),
      deleteSnapshot: (id) => images.deleteSnapshot(id),
      deletionsPerSecond: (deps.limiter ?? defaultLimiter).ratePerSecond('DeleteSnapshot'),
      // Not resent after a lost answer (retry.ts): the caller reads the snapshot's storage tier instead.
      async archiveSnapshot(snapshotId) {
        await call('ModifySnapshotTier', (options) =>
          ec2.send(
            new ModifySnapshotTierCommand({ SnapshotId: snapshotId, StorageTier: 'archive' }),
            options,
          ),
        );
      },
    },
  };
}
