import type { EC2Client, Snapshot as Ec2Snapshot } from '@aws-sdk/client-ec2';
import { DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import type { Snapshot } from '../model.ts';
import { type Call, chunk, paginate } from './common.ts';

/** EC2 accepts up to 200 values in one filter. */
const FILTER_VALUES_PER_CALL = 200;

export function toSnapshot(raw: Ec2Snapshot): Snapshot | undefined {
  if (!raw.SnapshotId || !raw.StartTime) return undefined;
  const tags: Record<string, string> = {};
  for (const tag of raw.Tags ?? []) if (tag.Key !== undefined) tags[tag.Key] = tag.Value ?? '';
  return {
    snapshotId: raw.SnapshotId,
    ownerId: raw.OwnerId ?? '',
    ...(raw.VolumeId ? { volumeId: raw.VolumeId } : {}),
    volumeSizeGiB: raw.VolumeSize ?? 0,
    ...(raw.FullSnapshotSizeInBytes === undefined ? {} : { fullSizeBytes: raw.FullSnapshotSizeInBytes }),
    startTime: new Date(raw.StartTime),
    description: raw.Description ?? '',
    state: raw.State ?? 'unknown',
    tags,
    ...(raw.StorageTier ? { storageTier: raw.StorageTier } : {}),
  };
}

/**
 * The current state of the given snapshots, 200 per call. A snapshot-id filter leaves out ids that
 * are gone instead of failing the call, so an absent id is one that no longer exists.
 */
export async function describeSnapshotsById(
  ec2: EC2Client,
  call: Call,
  snapshotIds: readonly string[],
): Promise<Snapshot[]> {
  const snapshots: Snapshot[] = [];
  for (const ids of chunk([...new Set(snapshotIds)], FILTER_VALUES_PER_CALL)) {
    await paginate(
      'DescribeSnapshots',
      (NextToken) =>
        call('DescribeSnapshots', (options) =>
          ec2.send(
            new DescribeSnapshotsCommand({ Filters: [{ Name: 'snapshot-id', Values: ids }], NextToken }),
            options,
          ),
        ),
      (page) => {
        for (const raw of page.Snapshots ?? []) {
          const snapshot = toSnapshot(raw);
          if (snapshot) snapshots.push(snapshot);
        }
      },
    );
  }
  return snapshots;
}
