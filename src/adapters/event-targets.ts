import type { ImageActionsPort, SharingPort } from '../core/ports.ts';
import type { Target, TargetSource, TargetSpec } from '../core/targets.ts';
import type { AwsClients } from './clients.ts';
import { createImageActions } from './ec2.ts';
import { createSharing } from './sharing.ts';
import { clientsForTarget, createTargetSource, type RoleSessions } from './targets.ts';

export interface EventPorts {
  images: ImageActionsPort;
  sharing: SharingPort;
}

/** Which account-Regions the real-time audit acts in, and with which ports. */
export interface EventTargets {
  /** The ports for a target, or why events from it are not audited. */
  portsFor(
    target: Target,
    signal: AbortSignal | undefined,
  ): Promise<{ ports: EventPorts; accountName?: string } | { notATarget: string }>;
}

/** The organisation's members are looked up again after this, so a new account is picked up. */
const MEMBERS_TTL_MS = 10 * 60_000;

/**
 * The organisation's members (id → name), asked again after a few minutes so a new account is
 * picked up; a failed lookup is not kept, so the next ask tries again. Per warm Lambda, a burst of
 * events or a sweep's many shared images costs one ListAccounts.
 */
export function organizationMembers(
  source: Pick<TargetSource, 'organizationAccounts'>,
  now: () => number = Date.now,
): (organizationalUnits: readonly string[]) => Promise<Map<string, string | undefined>> {
  let cached: { at: number; names: Promise<Map<string, string | undefined>> } | undefined;
  return (organizationalUnits) => {
    if (!cached || now() - cached.at > MEMBERS_TTL_MS) {
      const names = source
        .organizationAccounts(organizationalUnits)
        .then((accounts) => new Map(accounts.map((account) => [account.accountId, account.name])));
      const entry = { at: now(), names };
      cached = entry;
      names.catch(() => {
        if (cached === entry) cached = undefined;
      });
    }
    return cached.names;
  };
}

/**
 * Events from the accounts and Regions the deployment targets are audited in that account, through
 * its member role; the function's own account uses its own credentials. The organisation's member
 * list is cached for a few minutes per warm Lambda, so a burst of events costs one ListAccounts.
 */
export function createEventTargets(
  spec: TargetSpec,
  options: {
    callerAccountId: () => Promise<string>;
    source?: TargetSource;
    now?: () => number;
    /** Test seam: the clients for a target; through its member role by default. */
    clientsFor?: (target: Target, callerAccountId: string) => Promise<AwsClients>;
  },
): EventTargets {
  const source =
    options.source ??
    createTargetSource(spec.organizationRoleArn ? { organizationRoleArn: spec.organizationRoleArn } : {});
  const now = options.now ?? Date.now;
  const sessions: RoleSessions = new Map();
  const members = organizationMembers(source, now);

  async function accountsTargeted(): Promise<Map<string, string | undefined> | 'self'> {
    if (spec.accounts.kind === 'self') return 'self';
    if (spec.accounts.kind === 'list') return new Map(spec.accounts.accountIds.map((id) => [id, undefined]));
    return members(spec.accounts.organizationalUnits);
  }

  return {
    async portsFor(target, signal) {
      const callerAccountId = await options.callerAccountId();
      const regionTargeted = spec.regions.kind === 'all' || spec.regions.regions.includes(target.region);
      if (!regionTargeted)
        return { notATarget: `Region ${target.region} is not one of the deployment's targets` };
      if (spec.excludeAccounts.includes(target.accountId)) {
        return { notATarget: `account ${target.accountId} is excluded from the deployment's targets` };
      }
      const accounts = await accountsTargeted();
      const targeted =
        accounts === 'self' ? target.accountId === callerAccountId : accounts.has(target.accountId);
      if (!targeted) {
        return { notATarget: `account ${target.accountId} is not one of the deployment's targets` };
      }
      const clients = options.clientsFor
        ? await options.clientsFor(target, callerAccountId)
        : await clientsForTarget(target, {
            roleName: spec.memberRoleName,
            callerAccountId,
            sessions,
            ...(signal ? { signal } : {}),
          });
      const accountName = accounts === 'self' ? undefined : accounts.get(target.accountId);
      return {
        ports: {
          images: createImageActions({ ...clients, ...(signal ? { signal } : {}) }),
          sharing: createSharing({ ...clients, ...(signal ? { signal } : {}) }),
        },
        ...(accountName ? { accountName } : {}),
      };
    },
  };
}
