import { DescribeRegionsCommand, EC2Client } from '@aws-sdk/client-ec2';
import {
  type Account,
  ListAccountsCommand,
  ListAccountsForParentCommand,
  ListOrganizationalUnitsForParentCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  assumeRoleCredentials,
  clientsForTarget,
  createTargetSource,
  ROLE_SESSION_NAME,
  ROLE_SESSION_SECONDS,
  type RoleSessions,
  SESSION_REFRESH_MARGIN_MS,
  TargetAccessError,
  TargetSourceError,
} from '../../src/adapters/targets.ts';
import { awsError, recordingLog, recordingSleep } from './aws-fakes.ts';

const stsMock = mockClient(STSClient);
const orgMock = mockClient(OrganizationsClient);
const ec2Mock = mockClient(EC2Client);
const sts = new STSClient({ region: 'eu-west-1' });
const ec2 = new EC2Client({ region: 'eu-west-1' });

const CALLER = '111111111111';
const MEMBER = '222222222222';
const OTHER = '333333333333';

let sleeper: ReturnType<typeof recordingSleep>;
const retry = () => ({ sleep: sleeper.sleep, maxAttempts: 3, random: () => 0.5 });

function account(Id: string, state: Account['State'] | undefined, extra: Partial<Account> = {}): Account {
  return { Id, Name: `account-${Id.slice(0, 3)}`, ...(state ? { State: state } : {}), ...extra };
}

function session(tag: string, expiration: Date) {
  return {
    $metadata: {},
    Credentials: {
      AccessKeyId: `ASIA${tag}`,
      SecretAccessKey: `secret-${tag}`,
      SessionToken: `token-${tag}`,
      Expiration: expiration,
    },
  };
}

beforeEach(() => {
  stsMock.reset();
  orgMock.reset();
  ec2Mock.reset();
  sleeper = recordingSleep();
});

describe('createTargetSource', () => {
  it('asks STS once for the caller account and remembers it', async () => {
    // Prepare
    stsMock.on(GetCallerIdentityCommand).resolves({ Account: CALLER });
    const source = createTargetSource({ sts, retry: retry() });

    // Act
    const first = await source.accountId();
    const second = await source.accountId();

    // Assess
    expect([first, second]).toEqual([CALLER, CALLER]);
    expect(stsMock).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 1);
  });

  it('lists the organisation across every ListAccounts page and keeps only ACTIVE accounts', async () => {
    // Prepare
    orgMock
      .on(ListAccountsCommand)
      .resolvesOnce({
        Accounts: [account(CALLER, 'ACTIVE'), account('444444444444', 'SUSPENDED')],
        NextToken: 'page-2',
      })
      .resolvesOnce({
        Accounts: [
          account(MEMBER, 'ACTIVE'),
          account('555555555555', 'PENDING_CLOSURE'),
          // An answer from before State existed: Status is read instead.
          account(OTHER, undefined, { Status: 'ACTIVE' }),
          account('666666666666', undefined, { Status: 'SUSPENDED' }),
        ],
      });
    const organizations = new OrganizationsClient({ region: 'us-east-1' });
    const source = createTargetSource({ sts, organizations, retry: retry() });

    // Act
    const accounts = await source.organizationAccounts([]);

    // Assess
    expect(accounts).toEqual([
      { accountId: CALLER, name: 'account-111' },
      { accountId: MEMBER, name: 'account-222' },
      { accountId: OTHER, name: 'account-333' },
    ]);
    expect(orgMock).toHaveReceivedCommandTimes(ListAccountsCommand, 2);
    expect(orgMock).toHaveReceivedNthCommandWith(ListAccountsCommand, 2, { NextToken: 'page-2' });
  });

  it('with OUs, reads the accounts of each OU and of every OU below it, each once', async () => {
    // Prepare: ou-a holds ou-b (on a second page) and ou-c; ou-c holds ou-b again.
    const units = (...ids: string[]) => ids.map((Id) => ({ Id }));
    orgMock
      .on(ListOrganizationalUnitsForParentCommand, { ParentId: 'ou-aaaa-11111111' })
      .resolvesOnce({ OrganizationalUnits: units('ou-aaaa-22222222'), NextToken: 'more' })
      .resolvesOnce({ OrganizationalUnits: units('ou-aaaa-33333333') });
    orgMock
      .on(ListOrganizationalUnitsForParentCommand, { ParentId: 'ou-aaaa-33333333' })
      .resolves({ OrganizationalUnits: units('ou-aaaa-22222222') });
    orgMock
      .on(ListOrganizationalUnitsForParentCommand, { ParentId: 'ou-aaaa-22222222' })
      .resolves({ OrganizationalUnits: [] });
    orgMock
      .on(ListAccountsForParentCommand, { ParentId: 'ou-aaaa-11111111' })
      .resolves({ Accounts: [account(CALLER, 'ACTIVE')] });
    orgMock
      .on(ListAccountsForParentCommand, { ParentId: 'ou-aaaa-22222222' })
      .resolvesOnce({ Accounts: [account(MEMBER, 'ACTIVE')], NextToken: 'next' })
      .resolvesOnce({ Accounts: [account('444444444444', 'SUSPENDED')] });
    orgMock
      .on(ListAccountsForParentCommand, { ParentId: 'ou-aaaa-33333333' })
      .resolves({ Accounts: [account(OTHER, 'ACTIVE')] });
    const organizations = new OrganizationsClient({ region: 'us-east-1' });
    const source = createTargetSource({ sts, organizations, retry: retry() });

    // Act
    const accounts = await source.organizationAccounts(['ou-aaaa-11111111']);

    // Assess
    expect(accounts.map((entry) => entry.accountId)).toEqual([CALLER, MEMBER, OTHER]);
    const parents = orgMock
      .commandCalls(ListAccountsForParentCommand)
      .map((entry) => entry.args[0].input.ParentId);
    expect(parents).toEqual(['ou-aaaa-11111111', 'ou-aaaa-22222222', 'ou-aaaa-22222222', 'ou-aaaa-33333333']);
    expect(orgMock).not.toHaveReceivedCommand(ListAccountsCommand);
  });

  it('assumes organizationRoleArn first and asks Organizations with that session', async () => {
    // Prepare
    const roleArn = `arn:aws:iam::${OTHER}:role/org-reader`;
    stsMock.on(AssumeRoleCommand).resolves(session('ORG', new Date(Date.now() + 900_000)));
    orgMock.on(ListAccountsCommand).resolves({ Accounts: [account(MEMBER, 'ACTIVE')] });
    const source = createTargetSource({
      sts,
      region: 'eu-west-1',
      organizationRoleArn: roleArn,
      retry: retry(),
    });

    // Act
    const accounts = await source.organizationAccounts([]);

    // Assess
    expect(accounts).toEqual([{ accountId: MEMBER, name: 'account-222' }]);
    expect(stsMock).toHaveReceivedCommandWith(AssumeRoleCommand, {
      RoleArn: roleArn,
      RoleSessionName: ROLE_SESSION_NAME,
    });
    const client = orgMock.send.getCall(0).thisValue as OrganizationsClient;
    await expect(client.config.credentials()).resolves.toMatchObject({
      accessKeyId: 'ASIAORG',
      sessionToken: 'token-ORG',
    });
    expect(await client.config.maxAttempts()).toBe(1);
  });

  it('fails with a TargetAccessError, asking Organizations nothing, when organizationRoleArn is refused', async () => {
    // Prepare
    stsMock.on(AssumeRoleCommand).rejects(awsError('AccessDenied', 403));
    const source = createTargetSource({
      sts,
      organizationRoleArn: `arn:aws:iam::${OTHER}:role/org-reader`,
      retry: retry(),
    });

    // Act
    const outcome = source.organizationAccounts([]);

    // Assess
    await expect(outcome).rejects.toMatchObject({ name: 'TargetAccessError', accountId: OTHER });
    expect(orgMock).not.toHaveReceivedCommand(ListAccountsCommand);
  });

  it('says where Organizations answers when it refuses the caller', async () => {
    // Prepare
    orgMock.on(ListAccountsCommand).rejects(awsError('AccessDeniedException'));
    const organizations = new OrganizationsClient({ region: 'us-east-1' });
    const source = createTargetSource({ sts, organizations, retry: retry() });

    // Act
    const outcome = source.organizationAccounts([]);

    // Assess
    await expect(outcome).rejects.toBeInstanceOf(TargetSourceError);
    await expect(outcome).rejects.toThrow(
      /AccessDeniedException.*management account or a delegated administrator/,
    );
    await expect(outcome).rejects.toHaveProperty('cause.name', 'AccessDeniedException');
  });

  it('lists the enabled Regions only, sorted', async () => {
    // Prepare
    ec2Mock.on(DescribeRegionsCommand).resolves({
      Regions: [
        { RegionName: 'us-east-1', OptInStatus: 'opt-in-not-required' },
        { RegionName: 'ap-east-1', OptInStatus: 'not-opted-in' },
        { RegionName: 'eu-south-2', OptInStatus: 'opted-in' },
        { RegionName: 'eu-west-1', OptInStatus: 'opt-in-not-required' },
      ],
    });
    const source = createTargetSource({ sts, ec2, retry: retry() });

    // Act
    const regions = await source.enabledRegions();

    // Assess
    expect(regions).toEqual(['eu-south-2', 'eu-west-1', 'us-east-1']);
  });

  it('retries a throttled DescribeRegions and fails with a named error when it cannot be read', async () => {
    // Prepare
    ec2Mock
      .on(DescribeRegionsCommand)
      .rejectsOnce(awsError('RequestLimitExceeded'))
      .rejects(awsError('UnauthorizedOperation', 403));
    const source = createTargetSource({ sts, ec2, retry: retry() });

    // Act
    const outcome = source.enabledRegions();

    // Assess
    await expect(outcome).rejects.toThrow(TargetSourceError);
    await expect(outcome).rejects.toThrow(/UnauthorizedOperation/);
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeRegionsCommand, 2);
  });
});

describe('clientsForTarget', () => {
  it("uses the caller's own credentials in its own account, in the target's Region", async () => {
    // Act
    const clients = await clientsForTarget(
      { accountId: CALLER, region: 'ap-southeast-2' },
      { roleName: 'ami-janitor-member', callerAccountId: CALLER, baseClients: { sts } },
    );

    // Assess
    expect(stsMock).not.toHaveReceivedCommand(AssumeRoleCommand);
    expect(await clients.ec2.config.region()).toBe('ap-southeast-2');
    expect(await clients.ec2.config.maxAttempts()).toBe(1);
  });

  it("assumes the member role in another account, with the janitor's session name, and builds every client on it", async () => {
    // Prepare
    stsMock.on(AssumeRoleCommand).resolves(session('MEMBER', new Date(Date.now() + 900_000)));

    // Act
    const clients = await clientsForTarget(
      { accountId: MEMBER, region: 'eu-central-1' },
      { roleName: 'ami-janitor-member', callerAccountId: CALLER, baseClients: { sts }, retry: retry() },
    );

    // Assess
    expect(stsMock).toHaveReceivedCommandWith(AssumeRoleCommand, {
      RoleArn: `arn:aws:iam::${MEMBER}:role/ami-janitor-member`,
      RoleSessionName: 'ami-janitor',
      DurationSeconds: ROLE_SESSION_SECONDS,
    });
    expect(ROLE_SESSION_SECONDS).toBeLessThanOrEqual(3600);
    for (const client of [clients.ec2, clients.autoScaling, clients.ssm, clients.sts, clients.cloudTrail]) {
      expect(await client.config.region()).toBe('eu-central-1');
      await expect(client.config.credentials()).resolves.toMatchObject({
        accessKeyId: 'ASIAMEMBER',
        secretAccessKey: 'secret-MEMBER',
        sessionToken: 'token-MEMBER',
      });
    }
    // One session for every client: they share the provider.
    expect(stsMock).toHaveReceivedCommandTimes(AssumeRoleCommand, 1);
  });

  it('names the role in the partition of the Region', async () => {
    // Prepare
    stsMock.on(AssumeRoleCommand).resolves(session('CN', new Date(Date.now() + 900_000)));

    // Act
    await clientsForTarget(
      { accountId: MEMBER, region: 'cn-north-1' },
      { roleName: 'janitor', callerAccountId: CALLER, baseClients: { sts } },
    );

    // Assess
    expect(stsMock).toHaveReceivedCommandWith(AssumeRoleCommand, {
      RoleArn: `arn:aws-cn:iam::${MEMBER}:role/janitor`,
    });
  });

  it('assumes each account once for all its Regions when given shared sessions', async () => {
    // Prepare
    stsMock.on(AssumeRoleCommand).resolves(session('SHARED', new Date(Date.now() + 900_000)));
    const sessions: RoleSessions = new Map();
    const options = {
      roleName: 'ami-janitor-member',
      callerAccountId: CALLER,
      baseClients: { sts },
      sessions,
    };

    // Act
    await clientsForTarget({ accountId: MEMBER, region: 'eu-west-1' }, options);
    await clientsForTarget({ accountId: MEMBER, region: 'us-east-1' }, options);
    await clientsForTarget({ accountId: OTHER, region: 'us-east-1' }, options);

    // Assess
    const arns = stsMock.commandCalls(AssumeRoleCommand).map((entry) => entry.args[0].input.RoleArn);
    expect(arns).toEqual([
      `arn:aws:iam::${MEMBER}:role/ami-janitor-member`,
      `arn:aws:iam::${OTHER}:role/ami-janitor-member`,
    ]);
  });

  it.each([
    { code: 'AccessDenied', status: 403 },
    { code: 'NoSuchEntity', status: 404 },
  ])(
    'turns a refused AssumeRole ($code) into a TargetAccessError with its cause',
    async ({ code, status }) => {
      // Prepare
      const refusal = awsError(code, status, `User is not authorized to perform: sts:AssumeRole`);
      stsMock.on(AssumeRoleCommand).rejects(refusal);

      // Act
      const outcome = clientsForTarget(
        { accountId: '999999999999', region: 'us-east-1' },
        { roleName: 'ami-janitor-member', callerAccountId: CALLER, baseClients: { sts }, retry: retry() },
      );

      // Assess
      const error = await outcome.catch((failure: unknown) => failure);
      expect(error).toBeInstanceOf(TargetAccessError);
      expect(error).toMatchObject({
        name: 'TargetAccessError',
        accountId: '999999999999',
        roleArn: 'arn:aws:iam::999999999999:role/ami-janitor-member',
        code,
        cause: refusal,
      });
      expect((error as Error).message).toBe(
        `${code}: cannot assume arn:aws:iam::999999999999:role/ami-janitor-member: User is not authorized to perform: sts:AssumeRole`,
      );
      // A refusal is final: not retried.
      expect(stsMock).toHaveReceivedCommandTimes(AssumeRoleCommand, 1);
    },
  );
});

describe('assumeRoleCredentials', () => {
  it('keeps a session until it nears its end, then assumes the role again; concurrent askers share one call', async () => {
    // Prepare
    let now = Date.parse('2026-06-15T12:00:00Z');
    stsMock
      .on(AssumeRoleCommand)
      .resolvesOnce(session('ONE', new Date(now + 900_000)))
      .resolvesOnce(session('TWO', new Date(now + 1_800_000)));
    const provider = assumeRoleCredentials({
      sts,
      roleArn: `arn:aws:iam::${MEMBER}:role/ami-janitor-member`,
      now: () => now,
      log: recordingLog(),
    });

    // Act
    const [first, concurrent] = await Promise.all([provider(), provider()]);
    now += 900_000 - SESSION_REFRESH_MARGIN_MS - 1_000;
    const stillFirst = await provider();
    now += 2_000;
    const renewed = await provider();

    // Assess
    expect(first.accessKeyId).toBe('ASIAONE');
    expect(concurrent).toBe(first);
    expect(stillFirst).toBe(first);
    expect(renewed.accessKeyId).toBe('ASIATWO');
    expect(stsMock).toHaveReceivedCommandTimes(AssumeRoleCommand, 2);
    // The SDK asks again 5 minutes before expiry; by then the session here is stale too.
    expect(SESSION_REFRESH_MARGIN_MS).toBeGreaterThan(5 * 60_000);
  });

  it('tries again after a failure instead of keeping it', async () => {
    // Prepare
    stsMock
      .on(AssumeRoleCommand)
      .rejectsOnce(awsError('AccessDenied', 403))
      .resolves(session('LATER', new Date(Date.now() + 900_000)));
    const provider = assumeRoleCredentials({ sts, roleArn: `arn:aws:iam::${MEMBER}:role/r` });

    // Act
    const failure = await provider().catch((error: unknown) => error);
    const later = await provider();

    // Assess
    expect(failure).toBeInstanceOf(TargetAccessError);
    expect(later.accessKeyId).toBe('ASIALATER');
  });

  it('refuses an answer without credentials', async () => {
    // Prepare
    stsMock.on(AssumeRoleCommand).resolves({ $metadata: {} });
    const provider = assumeRoleCredentials({ sts, roleArn: `arn:aws:iam::${MEMBER}:role/r` });

    // Act
    const outcome = provider();

    // Assess
    await expect(outcome).rejects.toMatchObject({ name: 'TargetAccessError', code: 'NoCredentials' });
  });
});
