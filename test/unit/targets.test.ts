import { describe, expect, it, vi } from 'vitest';
import {
  DEFAULT_MEMBER_ROLE_NAME,
  memberRoleArn,
  parseTargetSpec,
  resolveTargets,
  TargetError,
  type TargetSource,
  type TargetSpec,
} from '../../src/core/targets.ts';

const HOME = 'eu-west-1';

/** A source whose every answer is given, and which records what it was asked. */
function fakeSource(answers: {
  accountId?: string;
  organization?: { accountId: string; name?: string }[];
  regions?: string[];
}) {
  return {
    accountId: vi.fn(async () => answers.accountId ?? '111111111111'),
    organizationAccounts: vi.fn(async (_units: readonly string[]) => answers.organization ?? []),
    enabledRegions: vi.fn(async () => answers.regions ?? []),
  } satisfies TargetSource;
}

function problemsOf(input: Parameters<typeof parseTargetSpec>[0]): string {
  try {
    parseTargetSpec(input);
  } catch (error) {
    if (error instanceof TargetError) return error.message;
    throw error;
  }
  throw new Error('parseTargetSpec accepted it');
}

describe('parseTargetSpec', () => {
  it('defaults to this account in the home Region with the default member role', () => {
    // Act
    const spec = parseTargetSpec({ homeRegion: HOME });

    // Assess
    expect(spec).toEqual({
      accounts: { kind: 'self' },
      excludeAccounts: [],
      regions: { kind: 'list', regions: [HOME] },
      memberRoleName: DEFAULT_MEMBER_ROLE_NAME,
    });
  });

  it('reads a list of accounts and Regions, trimming blanks and dropping repeats', () => {
    // Act
    const spec = parseTargetSpec({
      accounts: ' 111111111111, 222222222222 ,111111111111',
      regions: 'us-east-1, eu-west-1,us-east-1',
      memberRoleName: 'janitor',
      homeRegion: HOME,
    });

    // Assess
    expect(spec.accounts).toEqual({ kind: 'list', accountIds: ['111111111111', '222222222222'] });
    expect(spec.regions).toEqual({ kind: 'list', regions: ['us-east-1', 'eu-west-1'] });
    expect(spec.memberRoleName).toBe('janitor');
  });

  it('reads the organisation with OUs and a root, exclusions, all Regions and an organisation role', () => {
    // Act
    const spec = parseTargetSpec({
      accounts: 'organization',
      organizationalUnits: 'ou-ab12-abcdefgh,r-ab12',
      excludeAccounts: '333333333333',
      regions: 'all',
      organizationRoleArn: 'arn:aws:iam::444444444444:role/org-reader',
      homeRegion: HOME,
    });

    // Assess
    expect(spec).toEqual({
      accounts: { kind: 'organization', organizationalUnits: ['ou-ab12-abcdefgh', 'r-ab12'] },
      excludeAccounts: ['333333333333'],
      regions: { kind: 'all' },
      memberRoleName: DEFAULT_MEMBER_ROLE_NAME,
      organizationRoleArn: 'arn:aws:iam::444444444444:role/org-reader',
    });
  });

  it.each([
    { input: { accounts: '12345' }, problem: 'accounts: "12345" is not a 12-digit account id' },
    { input: { accounts: '1111111111111' }, problem: 'accounts: "1111111111111" is not a 12-digit' },
    { input: { accounts: ' , ' }, problem: 'accounts: no account id given' },
    { input: { regions: 'eu-west' }, problem: 'regions: "eu-west" is not a Region name' },
    { input: { regions: 'EU-WEST-1' }, problem: 'regions: "EU-WEST-1" is not a Region name' },
    { input: { regions: 'all,eu-west-1' }, problem: 'regions: "all" is not a Region name' },
    { input: { regions: ',' }, problem: 'regions: no Region given' },
    {
      input: { organizationalUnits: 'ou-ab12-abcdefgh' },
      problem: 'organizationalUnits: only applies with accounts=organization',
    },
    {
      input: { accounts: 'organization', organizationalUnits: 'engineering' },
      problem: 'organizationalUnits: "engineering" is not an OU id',
    },
    { input: { excludeAccounts: 'prod' }, problem: 'excludeAccounts: "prod" is not a 12-digit account id' },
    { input: { memberRoleName: 'a/b' }, problem: 'memberRoleName: "a/b" is not an IAM role name' },
    { input: { organizationRoleArn: 'org-reader' }, problem: 'organizationRoleArn: "org-reader" is not' },
  ])('refuses $input, naming the value', ({ input, problem }) => {
    // Act
    const message = problemsOf({ homeRegion: HOME, ...input });

    // Assess
    expect(message).toContain(problem);
    expect(message.startsWith('invalid targets:')).toBe(true);
  });

  it('lists every problem at once', () => {
    // Act
    const message = problemsOf({ accounts: 'x', regions: 'y', excludeAccounts: 'z', homeRegion: HOME });

    // Assess
    expect(message.split('\n  - ')).toHaveLength(4);
  });

  it('checks the home Region when it stands in for the Region list', () => {
    // Act
    const message = problemsOf({ homeRegion: 'moon-base-1' });

    // Assess
    expect(message).toContain('regions: "moon-base-1" is not a Region name');
  });
});

describe('resolveTargets', () => {
  const spec = (overrides: Partial<TargetSpec>): TargetSpec => ({
    accounts: { kind: 'self' },
    excludeAccounts: [],
    regions: { kind: 'list', regions: [HOME] },
    memberRoleName: DEFAULT_MEMBER_ROLE_NAME,
    ...overrides,
  });

  it("is the caller's account in each Region, Regions sorted", async () => {
    // Prepare
    const source = fakeSource({ accountId: '111111111111' });

    // Act
    const targets = await resolveTargets(
      spec({ regions: { kind: 'list', regions: ['us-east-1', 'eu-west-1'] } }),
      source,
    );

    // Assess
    expect(targets).toEqual([
      { accountId: '111111111111', region: 'eu-west-1' },
      { accountId: '111111111111', region: 'us-east-1' },
    ]);
    expect(source.organizationAccounts).not.toHaveBeenCalled();
  });

  it('crosses a list of accounts with every enabled Region, asking STS nothing', async () => {
    // Prepare
    const source = fakeSource({ regions: ['us-east-1', 'ap-south-1', 'us-east-1'] });

    // Act
    const targets = await resolveTargets(
      spec({
        accounts: { kind: 'list', accountIds: ['222222222222', '333333333333'] },
        regions: { kind: 'all' },
      }),
      source,
    );

    // Assess
    expect(targets.map((t) => `${t.accountId} ${t.region}`)).toEqual([
      '222222222222 ap-south-1',
      '222222222222 us-east-1',
      '333333333333 ap-south-1',
      '333333333333 us-east-1',
    ]);
    expect(source.accountId).not.toHaveBeenCalled();
  });

  it('takes the organisation (or its OUs) less the exclusions, once per account, with names', async () => {
    // Prepare
    const source = fakeSource({
      organization: [
        { accountId: '111111111111', name: 'management' },
        { accountId: '222222222222', name: 'prod' },
        { accountId: '333333333333', name: 'sandbox' },
        { accountId: '222222222222', name: 'prod' },
      ],
    });

    // Act
    const targets = await resolveTargets(
      spec({
        accounts: { kind: 'organization', organizationalUnits: ['ou-ab12-abcdefgh'] },
        excludeAccounts: ['333333333333'],
      }),
      source,
    );

    // Assess
    expect(targets).toEqual([
      { accountId: '111111111111', region: HOME, accountName: 'management' },
      { accountId: '222222222222', region: HOME, accountName: 'prod' },
    ]);
    expect(source.organizationAccounts).toHaveBeenCalledWith(['ou-ab12-abcdefgh']);
  });

  it('is empty when every account is excluded', async () => {
    // Act
    const targets = await resolveTargets(
      spec({ accounts: { kind: 'list', accountIds: ['222222222222'] }, excludeAccounts: ['222222222222'] }),
      fakeSource({}),
    );

    // Assess
    expect(targets).toEqual([]);
  });
});

describe('memberRoleArn', () => {
  it('names the role in the account and partition', () => {
    expect(memberRoleArn('222222222222', 'ami-janitor-member')).toBe(
      'arn:aws:iam::222222222222:role/ami-janitor-member',
    );
    expect(memberRoleArn('222222222222', 'janitor', 'aws-us-gov')).toBe(
      'arn:aws-us-gov:iam::222222222222:role/janitor',
    );
  });
});
