import type { CreateVolumePermission, LaunchPermission } from '@aws-sdk/client-ec2';
import {
  DescribeImageAttributeCommand,
  DescribeSnapshotAttributeCommand,
  DescribeSnapshotsCommand,
  ModifyImageAttributeCommand,
  ModifySnapshotAttributeCommand,
} from '@aws-sdk/client-ec2';
import type { SharingPort } from '../core/ports.ts';
import { errorCode } from '../errors.ts';
import type { SharePermissions } from '../model.ts';
import { awsClients } from './clients.ts';
import { type AdapterDeps, makeCall } from './common.ts';
import { createTagging, single } from './ec2.ts';
import { toSnapshot } from './snapshot-shape.ts';

const MISSING_SNAPSHOT_CODES = new Set(['InvalidSnapshot.NotFound', 'InvalidSnapshotID.Malformed']);

export function toPermissions(
  entries: readonly (LaunchPermission | CreateVolumePermission)[],
): SharePermissions {
  const permissions: SharePermissions = {
    public: false,
    accounts: [],
    organizations: [],
    organizationalUnits: [],
  };
  for (const entry of entries) {
    if (entry.Group === 'all') permissions.public = true;
    if (entry.UserId) permissions.accounts.push(entry.UserId);
    if ('OrganizationArn' in entry && entry.OrganizationArn)
      permissions.organizations.push(entry.OrganizationArn);
    if ('OrganizationalUnitArn' in entry && entry.OrganizationalUnitArn) {
      permissions.organizationalUnits.push(entry.OrganizationalUnitArn);
    }
  }
  return permissions;
}

export { toSnapshot };

export function createSharing(deps: AdapterDeps = {}): SharingPort {
  const ec2 = deps.ec2 ?? awsClients.ec2;
  const call = makeCall(deps);
  const tagging = createTagging(ec2, call);

  return {
    async imageLaunchPermissions(imageId) {
      const output = await call('DescribeImageAttribute', (options) =>
        ec2.send(
          new DescribeImageAttributeCommand({ ImageId: imageId, Attribute: 'launchPermission' }),
          options,
        ),
      );
      return toPermissions(output.LaunchPermissions ?? []);
    },

    async snapshotPermissions(snapshotId) {
      const output = await call('DescribeSnapshotAttribute', (options) =>
        ec2.send(
          new DescribeSnapshotAttributeCommand({
            SnapshotId: snapshotId,
            Attribute: 'createVolumePermission',
          }),
          options,
        ),
      );
      return toPermissions(output.CreateVolumePermissions ?? []);
    },

    async removeImagePermissions(imageId, offending) {
      const remove: LaunchPermission[] = [
        ...(offending.public ? [{ Group: 'all' as const }] : []),
        ...offending.accounts.map((UserId) => ({ UserId })),
        ...offending.organizations.map((OrganizationArn) => ({ OrganizationArn })),
        ...offending.organizationalUnits.map((OrganizationalUnitArn) => ({ OrganizationalUnitArn })),
      ];
      if (remove.length === 0) return;
      await call('ModifyImageAttribute', (options) =>
        ec2.send(
          new ModifyImageAttributeCommand({ ImageId: imageId, LaunchPermission: { Remove: remove } }),
          options,
        ),
      );
    },

    async removeSnapshotPermissions(snapshotId, offending) {
      if (!offending.public && offending.accounts.length === 0) return;
      // The flat OperationType form: every EC2 endpoint (and emulator) honours it.
      await call('ModifySnapshotAttribute', (options) =>
        ec2.send(
          new ModifySnapshotAttributeCommand({
            SnapshotId: snapshotId,
            Attribute: 'createVolumePermission',
            OperationType: 'remove',
            ...(offending.public ? { GroupNames: ['all'] } : {}),
            ...(offending.accounts.length > 0 ? { UserIds: offending.accounts } : {}),
          }),
          options,
        ),
      );
    },

    async describeSnapshot(snapshotId) {
      try {
        const output = await call('DescribeSnapshots', (options) =>
          ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }), options),
        );
        const raw = output.Snapshots?.[0];
        return raw ? toSnapshot(raw) : undefined;
      } catch (error) {
        if (MISSING_SNAPSHOT_CODES.has(errorCode(error))) return undefined;
        throw error;
      }
    },

    tagResource: (resourceId, tags) => single(tagging.tagResources([resourceId], tags)),
    untagResource: (resourceId, keys) => single(tagging.untagResources([resourceId], keys)),
  };
}
