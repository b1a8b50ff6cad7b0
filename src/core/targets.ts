/**
 * Targets: the account-Regions one deployment (or one CLI run) sweeps and audits. EC2 meters each
 * account and Region on its own, so targets are independent work that fans out. Nothing in the
 * core knows whether a target is the caller's own account or a member reached through a role.
 */

/** One account in one Region. */
export interface Target {
  accountId: string;
  region: string;
}

/** Which accounts: this one, a list, or the organisation (optionally some OUs of it). */
export type AccountSelection =
  | { kind: 'self' }
  | { kind: 'list'; accountIds: string[] }
  | { kind: 'organization'; organizationalUnits: string[] };

/** Which Regions: a list, or every Region enabled in the account (DescribeRegions). */
export type RegionSelection = { kind: 'list'; regions: string[] } | { kind: 'all' };

export interface TargetSpec {
  accounts: AccountSelection;
  excludeAccounts: string[];
  regions: RegionSelection;
  /** The role assumed in each member account: `arn:aws:iam::<account>:role/<name>`. */
  memberRoleName: string;
  /** Where Organizations is asked, when this account is neither its management nor a delegated administrator. */
  organizationRoleArn?: string;
}

export const DEFAULT_MEMBER_ROLE_NAME = 'ami-janitor-member';

export class TargetError extends Error {
  override name = 'TargetError';
}

const ACCOUNT_ID = /^\d{12}$/;
/** Commercial, China and GovCloud Region names: `us-east-1`, `cn-north-1`, `us-gov-west-1`, `ap-southeast-5`. */
const REGION =
  /^(?:[a-z]{2})(?:-gov|-iso[a-z]?)?-(?:north|south|east|west|central|northeast|northwest|southeast|southwest)-\d{1,2}$/;
const OU_ID = /^(?:ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32})$/;
/** IAM role names: 1 to 64 of letters, digits and `+=,.@_-`. */
const ROLE_NAME = /^[\w+=,.@-]{1,64}$/;
const ROLE_ARN = /^arn:aws(?:-cn|-us-gov)?:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

/**
 * Parses the deploy params (or CLI flags) that name the targets, strictly: an account id that is
 * not 12 digits, a Region that is not one, an OU id that is malformed is an error naming the value.
 */
export function parseTargetSpec(input: {
  accounts?: string | undefined;
  organizationalUnits?: string | undefined;
  excludeAccounts?: string | undefined;
  regions?: string | undefined;
  memberRoleName?: string | undefined;
  organizationRoleArn?: string | undefined;
  /** The Region the deployment (or the CLI) runs in: the default target Region. */
  homeRegion: string;
}): TargetSpec {
  const problems: string[] = [];
  const accountsValue = (input.accounts ?? 'self').trim();
  let accounts: AccountSelection;
  if (accountsValue === '' || accountsValue === 'self') accounts = { kind: 'self' };
  else if (accountsValue === 'organization') {
    const organizationalUnits = list(input.organizationalUnits);
    for (const ou of organizationalUnits) {
      if (!OU_ID.test(ou))
        problems.push(
          `organizationalUnits: ${JSON.stringify(ou)} is not an OU id (ou-xxxx-yyyyyyyy) or a root id (r-xxxx)`,
        );
    }
    accounts = { kind: 'organization', organizationalUnits };
  } else {
    const accountIds = list(accountsValue);
    // `,` alone would otherwise select no account at all, and a run that sweeps nothing looks like one that found nothing.
    if (accountIds.length === 0) problems.push('accounts: no account id given');
    for (const id of accountIds) {
      if (!ACCOUNT_ID.test(id))
        problems.push(
          `accounts: ${JSON.stringify(id)} is not a 12-digit account id (or use self or organization)`,
        );
    }
    accounts = { kind: 'list', accountIds: [...new Set(accountIds)] };
  }
  if (accounts.kind !== 'organization' && list(input.organizationalUnits).length > 0) {
    problems.push('organizationalUnits: only applies with accounts=organization');
  }
  const excludeAccounts = list(input.excludeAccounts);
  for (const id of excludeAccounts) {
    if (!ACCOUNT_ID.test(id))
      problems.push(`excludeAccounts: ${JSON.stringify(id)} is not a 12-digit account id`);
  }
  const regionsValue = (input.regions ?? '').trim();
  let regions: RegionSelection;
  if (regionsValue === 'all') regions = { kind: 'all' };
  else {
    const named = regionsValue === '' ? [input.homeRegion] : list(regionsValue);
    if (named.length === 0) problems.push('regions: no Region given (name some, or use all)');
    for (const region of named) {
      if (!REGION.test(region))
        problems.push(`regions: ${JSON.stringify(region)} is not a Region name (e.g. eu-west-1), or use all`);
    }
    regions = { kind: 'list', regions: [...new Set(named)] };
  }
  const memberRoleName =
    (input.memberRoleName ?? DEFAULT_MEMBER_ROLE_NAME).trim() || DEFAULT_MEMBER_ROLE_NAME;
  if (!ROLE_NAME.test(memberRoleName))
    problems.push(`memberRoleName: ${JSON.stringify(memberRoleName)} is not an IAM role name`);
  const organizationRoleArn = input.organizationRoleArn?.trim() || undefined;
  if (organizationRoleArn !== undefined && !ROLE_ARN.test(organizationRoleArn)) {
    problems.push(`organizationRoleArn: ${JSON.stringify(organizationRoleArn)} is not an IAM role ARN`);
  }
  if (problems.length > 0) throw new TargetError(`invalid targets:\n  - ${problems.join('\n  - ')}`);
  return {
    accounts,
    excludeAccounts,
    regions,
    memberRoleName,
    ...(organizationRoleArn ? { organizationRoleArn } : {}),
  };
}

/** Where the accounts and Regions of a spec come from. */
export interface TargetSource {
  /** The caller's own account. */
  accountId(): Promise<string>;
  /** ACTIVE accounts of the organisation, or of these OUs and their children. */
  organizationAccounts(
    organizationalUnits: readonly string[],
  ): Promise<{ accountId: string; name?: string }[]>;
  /** Regions enabled in the account (DescribeRegions). */
  enabledRegions(): Promise<string[]>;
}

export interface ResolvedTarget extends Target {
  /** The account's name in Organizations, where known. */
  accountName?: string;
}

/** Every target of a spec: the accounts, less the excluded ones, times the Regions. */
export async function resolveTargets(spec: TargetSpec, source: TargetSource): Promise<ResolvedTarget[]> {
  let accounts: { accountId: string; name?: string }[];
  if (spec.accounts.kind === 'self') accounts = [{ accountId: await source.accountId() }];
  else if (spec.accounts.kind === 'list')
    accounts = spec.accounts.accountIds.map((accountId) => ({ accountId }));
  else accounts = await source.organizationAccounts(spec.accounts.organizationalUnits);
  const excluded = new Set(spec.excludeAccounts);
  const regions = [
    ...new Set(spec.regions.kind === 'all' ? await source.enabledRegions() : spec.regions.regions),
  ].sort();
  const seen = new Set<string>();
  const targets: ResolvedTarget[] = [];
  for (const account of accounts) {
    if (excluded.has(account.accountId) || seen.has(account.accountId)) continue;
    seen.add(account.accountId);
    for (const region of regions) {
      targets.push({
        accountId: account.accountId,
        region,
        ...(account.name ? { accountName: account.name } : {}),
      });
    }
  }
  return targets;
}

/** The member role of a target account. */
export function memberRoleArn(accountId: string, roleName: string, partition = 'aws'): string {
  return `arn:${partition}:iam::${accountId}:role/${roleName}`;
}
