import type { ConsumerReferences } from '../core/ports.ts';
import type { Target, TargetSource, TargetSpec } from '../core/targets.ts';
import type { AwsClients } from './clients.ts';
import { createInventory } from './ec2.ts';
import { organizationMembers } from './event-targets.ts';

/**
 * The target accounts' own reference checks, for images shared with them: in the sweep's Region,
 * through each account's member role. An account the deployment does not target is left to the
 * usage report, since the janitor has no role there.
 */
export function createConsumerReferences(
  spec: TargetSpec,
  options: {
    region: string;
    source: TargetSource;
    clientsFor: (target: Target) => Promise<AwsClients>;
    launchTemplateVersions: number;
    signal?: AbortSignal | undefined;
    now?: () => number;
  },
): ConsumerReferences {
  const members = organizationMembers(options.source, options.now);

  async function targeted(accountId: string): Promise<boolean> {
    if (spec.excludeAccounts.includes(accountId)) return false;
    if (spec.regions.kind === 'list' && !spec.regions.regions.includes(options.region)) return false;
    if (spec.accounts.kind === 'self') return false;
    if (spec.accounts.kind === 'list') return spec.accounts.accountIds.includes(accountId);
    return (await members(spec.accounts.organizationalUnits)).has(accountId);
  }

  return {
    async referencesIn(accountId, images) {
      if (!(await targeted(accountId))) return undefined;
      const clients = await options.clientsFor({ accountId, region: options.region });
      const inventory = createInventory({
        ...clients,
        accountId,
        launchTemplateVersions: options.launchTemplateVersions,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      return inventory.findReferences(images);
    },
  };
}
