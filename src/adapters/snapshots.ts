import { DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import type { SnapshotInventoryPort } from '../core/ports.ts';
import { InventoryError } from '../errors.ts';
import type { Snapshot } from '../model.ts';
import { awsClients } from './clients.ts';
import { type AdapterDeps, makeCall, paginate } from './common.ts';
import { toSnapshot } from './sharing.ts';

export function createSnapshotInventory(deps: AdapterDeps = {}): SnapshotInventoryPort {
  const ec2 = deps.ec2 ?? awsClients.ec2;
  const call = makeCall(deps);
  return {
    async listOwnedSnapshots(accountId) {
      const snapshots: Snapshot[] = [];
      try {
        await paginate(
          'DescribeSnapshots',
          (NextToken) =>
            call('DescribeSnapshots', (options) =>
              ec2.send(
                // The owner-id filter rather than OwnerIds=self: some endpoints (emulators among
                // them) ignore OwnerIds, and without either EC2 also lists public snapshots of others.
                new DescribeSnapshotsCommand({
                  Filters: [{ Name: 'owner-id', Values: [accountId] }],
                  MaxResults: 1000,
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
          },
        );
      } catch (error) {
        if (error instanceof InventoryError) throw error;
        throw new InventoryError(`cannot list the account's snapshots: ${(error as Error).message}`, {
          cause: error,
        });
      }
      return snapshots;
    },
  };
}
