import { DescribeRegionsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import {
  type Account,
  ListAccountsCommand,
  ListAccountsForParentCommand,
  ListOrganizationalUnitsForParentCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import {
  AssumeRoleCommand,
  type AssumeRoleCommandOutput,
  GetCallerIdentityCommand,
  type STSClient,
} from '@aws-sdk/client-sts';
import { memberRoleArn, type Target, type TargetSource } from '../core/targets.ts';
import { errorCode, errorMessage } from '../errors.ts';
import { type AwsClients, awsClients, clientConfig, createAwsClients } from './clients.ts';
import { type AdapterDeps, type Call, makeCall, paginate } from './common.ts';

/**
 * How targets are reached: which accounts the organisation holds, which Regions are enabled, and
 * clients for one account-Region, through the member role where the account is not the caller's.
 * Both the CLI's fan-out and the Lambda handlers build on these.
 */

/** What AssumeRole returns, shaped as the SDK's credential identity so a client can use it as it is. */
export interface SessionCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
}

/** A credentials provider as the SDK takes it: asked on first use and again near `expiration`. */
export type CredentialsProvider = () => Promise<SessionCredentials>;

/** The role session name every assumed role shows in CloudTrail, so the janitor's calls are found there. */
export const ROLE_SESSION_NAME = 'ami-janitor';

/**
 * The shortest session STS grants: credentials that leak are good for 15 minutes, and the provider
 * assumes the role again before they run out, so a sweep of any length keeps going.
 */
export const ROLE_SESSION_SECONDS = 900;

/**
 * How long before expiry a session is renewed. The SDK asks its provider again once its copy has
 * less than 5 minutes left; this margin is wider, so that when it asks, the copy here counts as
 * stale too and a fresh session comes back rather than the same expiring one.
 */
export const SESSION_REFRESH_MARGIN_MS = 6 * 60_000;

const ENABLED_OPT_IN = new Set(['opt-in-not-required', 'opted-in']);

/** A role could not be assumed (AccessDenied, no such role, a trust policy that does not name us). */
export class TargetAccessError extends Error {
  override name = 'TargetAccessError';
  readonly accountId: string;
  readonly roleArn: string;
  /** The AWS error code of the failed AssumeRole, e.g. `AccessDenied`. */
  readonly code: string;

  constructor(accountId: string, roleArn: string, options: ErrorOptions & { code?: string }) {
    const code = options.code ?? errorCode(options.cause);
    const detail = options.cause === undefined ? '' : `: ${errorMessage(options.cause)}`;
    super(`${code}: cannot assume ${roleArn}${detail}`, options);
    this.accountId = accountId;
    this.roleArn = roleArn;
    this.code = code;
  }
}

/** The caller's account, the organisation's accounts or the enabled Regions could not be read. */
export class TargetSourceError extends Error {
  override name = 'TargetSourceError';
}

/** The partition a Region belongs to, for the ARNs of its roles. */
export function partitionOf(region: string): string {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  return 'aws';
}

function accountIdOf(roleArn: string): string {
  return /^arn:[^:]+:iam::(\d{12}):/.exec(roleArn)?.[1] ?? 'unknown';
}

export interface AssumeRoleOptions extends AdapterDeps {
  /** The caller's STS client; the session belongs to whoever it signs as. */
  sts: STSClient;
  roleArn: string;
  sessionName?: string;
  durationSeconds?: number;
  /** Milliseconds since the epoch; injected in tests. */
  now?: () => number;
}

/**
 * A provider that assumes `roleArn` on first use and again whenever the session is within
 * SESSION_REFRESH_MARGIN_MS of its end. Concurrent askers share one AssumeRole; a failure is not
 * kept, so the next ask tries again. Its failures are TargetAccessError.
 */
export function assumeRoleCredentials(options: AssumeRoleOptions): CredentialsProvider {
  const call = makeCall(options);
  const now = options.now ?? Date.now;
  const duration = options.durationSeconds ?? ROLE_SESSION_SECONDS;
  const accountId = accountIdOf(options.roleArn);
  let current: SessionCredentials | undefined;
  let pending: Promise<SessionCredentials> | undefined;

  async function assume(): Promise<SessionCredentials> {
    const askedAt = now();
    let answer: AssumeRoleCommandOutput;
    try {
      answer = await call('AssumeRole', (sendOptions) =>
        options.sts.send(
          new AssumeRoleCommand({
            RoleArn: options.roleArn,
            RoleSessionName: options.sessionName ?? ROLE_SESSION_NAME,
            DurationSeconds: duration,
          }),
          sendOptions,
        ),
      );
    } catch (error) {
      throw new TargetAccessError(accountId, options.roleArn, { cause: error });
    }
    const credentials = answer.Credentials;
    if (!credentials?.AccessKeyId || !credentials.SecretAccessKey || !credentials.SessionToken) {
      throw new TargetAccessError(accountId, options.roleArn, { code: 'NoCredentials' });
    }
    return {
      accessKeyId: credentials.AccessKeyId,
      secretAccessKey: credentials.SecretAccessKey,
      sessionToken: credentials.SessionToken,
      // Without an expiry the SDK would use the session forever; STS's own limit is the safe guess.
      expiration: credentials.Expiration ?? new Date(askedAt + duration * 1000),
    };
  }

  return async () => {
    if (current && current.expiration.getTime() - now() > SESSION_REFRESH_MARGIN_MS) return current;
    pending ??= assume()
      .then((fresh) => {
        current = fresh;
        return fresh;
      })
      .finally(() => {
        pending = undefined;
      });
    return pending;
  };
}

export interface TargetSourceDeps extends AdapterDeps {
  /** The caller's Region: where STS, DescribeRegions and Organizations are asked. */
  region?: string;
  /** The caller's EC2 client (DescribeRegions); built from `region` when absent. */
  ec2?: EC2Client;
  /** Used as it is: `organizationRoleArn` is then not assumed. */
  organizations?: OrganizationsClient;
  /** Assumed first, where the caller is neither the management account nor a delegated administrator. */
  organizationRoleArn?: string;
}

/** Accounts, Regions and the caller's identity, from STS, Organizations and EC2. */
export function createTargetSource(deps: TargetSourceDeps = {}): TargetSource {
  const call = makeCall(deps);
  const base = deps.region ? createAwsClients({ region: deps.region }) : awsClients;
  const sts = deps.sts ?? base.sts;
  const ec2 = deps.ec2 ?? base.ec2;
  let organizations = deps.organizations;
  let accountIdPromise: Promise<string> | undefined;

  /** With organizationRoleArn, the role is assumed before anything is asked, so a refusal says so. */
  async function organizationsClient(): Promise<OrganizationsClient> {
    if (organizations) return organizations;
    const credentials = deps.organizationRoleArn
      ? assumeRoleCredentials({ ...deps, sts, roleArn: deps.organizationRoleArn })
      : undefined;
    await credentials?.();
    organizations = new OrganizationsClient(
      clientConfig({
        ...(deps.region ? { region: deps.region } : {}),
        ...(credentials ? { credentials } : {}),
      }),
    );
    return organizations;
  }

  return {
    accountId() {
      accountIdPromise ??= (async () => {
        let account: string | undefined;
        try {
          account = (
            await call('GetCallerIdentity', (options) => sts.send(new GetCallerIdentityCommand({}), options))
          ).Account;
        } catch (error) {
          throw new TargetSourceError(`cannot tell which account this is (${errorCode(error)})`, {
            cause: error,
          });
        }
        if (!account) throw new TargetSourceError('GetCallerIdentity returned no Account');
        return account;
      })();
      // A failure is not kept: the next ask tries again.
      accountIdPromise.catch(() => {
        accountIdPromise = undefined;
      });
      return accountIdPromise;
    },

    async organizationAccounts(organizationalUnits) {
      try {
        const client = await organizationsClient();
        return organizationalUnits.length === 0
          ? activeAccounts(await listAccounts(client, call))
          : activeAccounts(await accountsUnder(client, call, organizationalUnits));
      } catch (error) {
        if (error instanceof TargetAccessError) throw error;
        throw new TargetSourceError(
          `cannot list the organisation's accounts (${errorCode(error)}): Organizations answers only ` +
            'in the management account or a delegated administrator; from elsewhere, name a role there ' +
            'to assume (organizationRoleArn)',
          { cause: error },
        );
      }
    },

    async enabledRegions() {
      let regions: { RegionName?: string; OptInStatus?: string }[];
      try {
        // Without AllRegions EC2 lists only the enabled ones; the filter below also holds where an
        // endpoint (moto) lists every Region whatever is asked.
        regions =
          (await call('DescribeRegions', (options) => ec2.send(new DescribeRegionsCommand({}), options)))
            .Regions ?? [];
      } catch (error) {
        throw new TargetSourceError(`cannot list the enabled Regions (${errorCode(error)})`, {
          cause: error,
        });
      }
      return regions
        .filter((region) => region.OptInStatus === undefined || ENABLED_OPT_IN.has(region.OptInStatus))
        .flatMap((region) => (region.RegionName ? [region.RegionName] : []))
        .sort();
    },
  };
}

async function listAccounts(client: OrganizationsClient, call: Call): Promise<Account[]> {
  const accounts: Account[] = [];
  await paginate(
    'ListAccounts',
    (token) =>
      call('ListAccounts', (options) =>
        client.send(new ListAccountsCommand({ ...(token ? { NextToken: token } : {}) }), options),
      ),
    (page) => accounts.push(...(page.Accounts ?? [])),
  );
  return accounts;
}

/** The accounts directly in these OUs (or roots) and in every OU below them, each OU read once. */
async function accountsUnder(
  client: OrganizationsClient,
  call: Call,
  parents: readonly string[],
): Promise<Account[]> {
  const accounts: Account[] = [];
  const seen = new Set<string>();
  const queue = [...parents];
  // Organizations is metered per account at a few requests a second: one OU at a time is enough.
  for (let parentId = queue.shift(); parentId !== undefined; parentId = queue.shift()) {
    if (seen.has(parentId)) continue;
    seen.add(parentId);
    const parent = parentId;
    await paginate(
      'ListAccountsForParent',
      (token) =>
        call('ListAccountsForParent', (options) =>
          client.send(
            new ListAccountsForParentCommand({ ParentId: parent, ...(token ? { NextToken: token } : {}) }),
            options,
          ),
        ),
      (page) => accounts.push(...(page.Accounts ?? [])),
    );
    await paginate(
      'ListOrganizationalUnitsForParent',
      (token) =>
        call('ListOrganizationalUnitsForParent', (options) =>
          client.send(
            new ListOrganizationalUnitsForParentCommand({
              ParentId: parent,
              ...(token ? { NextToken: token } : {}),
            }),
            options,
          ),
        ),
      (page) => {
        for (const unit of page.OrganizationalUnits ?? []) if (unit.Id) queue.push(unit.Id);
      },
    );
  }
  return accounts;
}

/**
 * ACTIVE accounts only: a suspended or closing account can neither be swept nor assumed. `State`
 * replaces `Status` (retired in September 2026); either is read, the newer first.
 */
function activeAccounts(accounts: readonly Account[]): { accountId: string; name?: string }[] {
  const seen = new Set<string>();
  const active: { accountId: string; name?: string }[] = [];
  for (const account of accounts) {
    if (!account.Id || seen.has(account.Id)) continue;
    if ((account.State ?? account.Status) !== 'ACTIVE') continue;
    seen.add(account.Id);
    active.push({ accountId: account.Id, ...(account.Name ? { name: account.Name } : {}) });
  }
  return active;
}

/** Member role sessions by role ARN, so the Regions of one account share one session. */
export type RoleSessions = Map<string, CredentialsProvider>;

export interface TargetClientOptions extends AdapterDeps {
  /** The member role's name in every account but the caller's. */
  roleName: string;
  /** The caller's own account, reached with its own credentials. */
  callerAccountId: string;
  /** The caller's clients; their STS client assumes the member roles. */
  baseClients?: Pick<AwsClients, 'sts'>;
  /** Shared across calls to assume each account's role once, not once per Region. */
  sessions?: RoleSessions;
  durationSeconds?: number;
  now?: () => number;
}

/**
 * Clients for one account-Region. The caller's own account uses its own credentials; any other
 * assumes the member role there, once up front so that an account that cannot be reached fails
 * here (TargetAccessError) rather than in the middle of its sweep, and again before each session
 * ends. Every client is built as clients.ts builds them: timeouts, no SDK retries.
 */
export async function clientsForTarget(target: Target, options: TargetClientOptions): Promise<AwsClients> {
  if (target.accountId === options.callerAccountId) return createAwsClients({ region: target.region });
  const roleArn = memberRoleArn(target.accountId, options.roleName, partitionOf(target.region));
  let credentials = options.sessions?.get(roleArn);
  if (!credentials) {
    credentials = assumeRoleCredentials({
      ...options,
      sts: options.baseClients?.sts ?? options.sts ?? awsClients.sts,
      roleArn,
    });
    options.sessions?.set(roleArn, credentials);
  }
  await credentials();
  return createAwsClients({ region: target.region, credentials });
}
