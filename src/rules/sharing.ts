import * as z from 'zod';
import type { Policy } from '../config/policy.ts';
import type { Finding, SharePermissions } from '../model.ts';
import type { Rule } from './types.ts';

const accountId = z.string().regex(/^\d{12}$/, 'an AWS account id is 12 digits');
const organizationArn = z
  .string()
  .regex(/^arn:aws[\w-]*:organizations::\d{12}:organization\/o-[a-z0-9]+$/, 'an organization ARN');
const organizationalUnitArn = z
  .string()
  .regex(
    /^arn:aws[\w-]*:organizations::\d{12}:ou\/o-[a-z0-9]+\/ou-[a-z0-9-]+$/,
    'an organizational unit ARN',
  );

/** A bound on each allowlist, far above any real one, so a policy document stays a small thing. */
export const MAX_ALLOWED_ENTRIES = 1000;
const allowlist = <T extends z.ZodType>(entry: T) =>
  z.array(entry).max(MAX_ALLOWED_ENTRIES, `at most ${MAX_ALLOWED_ENTRIES} entries`).default([]);

export const sharingSchema = {
  sharing: z
    .strictObject({
      allowedAccounts: allowlist(accountId),
      allowedOrganizations: allowlist(organizationArn),
      allowedOrganizationalUnits: allowlist(organizationalUnitArn),
      /** Remove the offending permissions when an event reports them (and dryRun is off). */
      remediate: z.boolean().default(false),
    })
    .prefault({}),
};

export interface SharingVerdict {
  findings: Finding[];
  /** Exactly the permissions that break the policy: what remediation removes. */
  offending: SharePermissions;
}

/**
 * Public is critical; a share with an account, organization or OU outside the allowlists is high.
 * The account itself is never an exposure.
 */
export function evaluateSharing(
  resource: 'image' | 'snapshot',
  permissions: SharePermissions,
  sharing: Policy['sharing'],
  ownAccountId?: string,
): SharingVerdict {
  const offending: SharePermissions = {
    public: permissions.public,
    accounts: permissions.accounts.filter(
      (id) => id !== ownAccountId && !sharing.allowedAccounts.includes(id),
    ),
    organizations: permissions.organizations.filter((arn) => !sharing.allowedOrganizations.includes(arn)),
    organizationalUnits: permissions.organizationalUnits.filter(
      (arn) => !sharing.allowedOrganizationalUnits.includes(arn),
    ),
  };
  const findings: Finding[] = [];
  if (offending.public) {
    findings.push({
      rule: 'sharing',
      severity: 'critical',
      reason: `${resource} is public: anyone with an AWS account can ${resource === 'image' ? 'launch it' : 'copy its data'}`,
    });
  }
  const outsiders = [
    ...offending.accounts.map((id) => `account ${id}`),
    ...offending.organizations.map((arn) => `organization ${arn}`),
    ...offending.organizationalUnits.map((arn) => `OU ${arn}`),
  ];
  if (outsiders.length > 0) {
    findings.push({
      rule: 'sharing',
      severity: 'high',
      reason: `${resource} is shared outside the allowlist with ${outsiders.join(', ')}`,
    });
  }
  return { findings, offending };
}

export function isExposed(permissions: SharePermissions): boolean {
  return (
    permissions.public ||
    permissions.accounts.length > 0 ||
    permissions.organizations.length > 0 ||
    permissions.organizationalUnits.length > 0
  );
}

/** In a sweep only DescribeImages' Public flag is known, which is enough for the critical finding. */
export const sharing: Rule = {
  id: 'sharing',
  stage: 'audit',
  schema: sharingSchema,
  evaluate(image, facts, policy) {
    const permissions = facts.sharing ?? {
      public: image.public,
      accounts: [],
      organizations: [],
      organizationalUnits: [],
    };
    return evaluateSharing('image', permissions, policy.sharing, facts.accountId).findings.map((finding) => ({
      kind: 'flag' as const,
      severity: finding.severity,
      reason: finding.reason,
    }));
  },
};
