import type { ConsumerReferences } from '../core/ports.ts';
import type { Target, TargetSource, TargetSpec } from '../core/targets.ts';
import type { AwsClients } from './clients.ts';
import { createInventory } from './ec2.ts';

/** The organisation's members are looked up again after this, so a new account is picked up. */
const MEMBERS_TTL_MS = 10 * 60_000;

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
  const now = options.now ?? Date.now;
  let members: { at: number; ids: Promise<Set<string>> } | undefined;

  async function targeted(accountId: string): Promise<boolean> {
    if (spec.excludeAccounts.includes(accountId)) return false;
    if (spec.regions.kind === 'list' && !spec.regions.regions.includes(options.region)) return false;
    if (spec.accounts.kind === 'self') return false;
    if (spec.accounts.kind === 'list') return spec.accounts.accountIds.includes(accountId);
    if (!members || now() - members.at > MEMBERS_TTL_MS) {
      const ids = options.source
        .organizationAccounts(spec.accounts.organizationalUnits)
        .then((accounts) => new Set(accounts.map((account) => account.accountId)));
      const entry = { at: now(), ids };
      members = entry;
      ids.catch(() => {
        if (members === entry) members = undefined;
      });
    }
    return (await members.ids).has(accountId);
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
