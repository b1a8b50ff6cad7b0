import { describe, expect, it } from 'vitest';
import { MARKED_AT_TAG, type Policy, parsePolicy } from '../../src/config/policy.ts';
import {
  type Image,
  type ImageFacts,
  type ImageUsageReport,
  NOT_SHARED,
  type SharePermissions,
  type UsageFact,
} from '../../src/model.ts';
import { evaluateImage } from '../../src/rules/index.ts';
import {
  HOLDING_RULES,
  isSharedBeyondAccount,
  sharedImageKept,
  sharedInUse,
  sharedUseUnknown,
  USAGE_REPORT_MAX_AGE_DAYS,
  usageReportNeeded,
} from '../../src/rules/shared-image.ts';
import { ACCOUNT_ID, DAY_MS, daysAfter, daysBefore, image, NOW } from './factories.ts';

const ACCOUNT_A = '111111111111';
const ACCOUNT_B = '222222222222';
const ORGANIZATION = 'arn:aws:organizations::123456789012:organization/o-abc123';
const OU = 'arn:aws:organizations::123456789012:ou/o-abc123/ou-ab12-cd34ef56';
const REPORT_ID = 'amiur-0123456789abcdef0';

const day = (date: Date) => date.toISOString().slice(0, 10);
const share = (overrides: Partial<SharePermissions>): SharePermissions => ({ ...NOT_SHARED, ...overrides });
const SHARED = share({ accounts: [ACCOUNT_A, ACCOUNT_B] });

/** Marked this many days before NOW (the default grace is 7 days, so 10 is due and 3 is not). */
function marked(days: number, overrides: Partial<Image> = {}): Image {
  return image({ tags: { [MARKED_AT_TAG]: daysBefore(NOW, days).toISOString() }, ...overrides });
}
const MARK_DAYS = 10;

/** Facts of an old image shared with two accounts whose use elsewhere is not known yet. */
function facts(overrides: Partial<ImageFacts> = {}): ImageFacts {
  return {
    accountId: ACCOUNT_ID,
    references: [],
    family: 'name:app',
    familyRank: 5,
    familySize: 5,
    sharing: SHARED,
    ...overrides,
  };
}

/** A complete report made 5 days before NOW, after a mark 10 days ago, showing no use. */
function report(overrides: Partial<ImageUsageReport> = {}): ImageUsageReport {
  return {
    reportId: REPORT_ID,
    imageId: 'ami-0fac0000000000001',
    state: 'available',
    createdAt: daysBefore(NOW, 5),
    entries: [],
    ...overrides,
  };
}
const reported = (overrides: Partial<ImageUsageReport> = {}): UsageFact => ({
  status: 'report',
  report: report(overrides),
});
const uses = (...entries: [string, string, number][]) =>
  entries.map(([accountId, resourceType, usageCount]) => ({ accountId, resourceType, usageCount }));

function policy(document: Record<string, unknown> = {}): Policy {
  return parsePolicy(document);
}

/** What each of the three guards says, by id: at most one of them ever speaks. */
function gate(subject: Image, given: ImageFacts, rules: Policy = policy(), now: Date = NOW) {
  return Object.fromEntries(
    [sharedImageKept, sharedInUse, sharedUseUnknown].flatMap((rule) =>
      rule.evaluate(subject, given, rules, now).map((verdict) => [rule.id, verdict]),
    ),
  );
}

describe('isSharedBeyondAccount', () => {
  it.each([
    { case: 'not shared', sharing: NOT_SHARED, expected: false },
    { case: 'public', sharing: share({ public: true }), expected: true },
    { case: 'an account', sharing: share({ accounts: [ACCOUNT_A] }), expected: true },
    { case: 'an organization', sharing: share({ organizations: [ORGANIZATION] }), expected: true },
    { case: 'an OU', sharing: share({ organizationalUnits: [OU] }), expected: true },
    { case: 'only the account itself', sharing: share({ accounts: [ACCOUNT_ID] }), expected: false },
  ])('$case → $expected', ({ sharing, expected }) => {
    expect(isSharedBeyondAccount(sharing, ACCOUNT_ID)).toBe(expected);
  });
});

describe('shared-in-use: a complete report shows use elsewhere', () => {
  it.each([
    {
      case: 'instances and a launch template in two accounts',
      entries: uses(
        [ACCOUNT_A, 'ec2:Instance', 2],
        [ACCOUNT_A, 'ec2:LaunchTemplate', 1],
        [ACCOUNT_B, 'ec2:Instance', 1],
      ),
      reason: `used by 3 instances and 1 launch template in 2 other accounts: ${ACCOUNT_A}, ${ACCOUNT_B}`,
    },
    {
      case: 'one instance in one account',
      entries: uses([ACCOUNT_B, 'ec2:Instance', 1], [ACCOUNT_A, 'ec2:LaunchTemplate', 0]),
      reason: `used by 1 instance in 1 other account: ${ACCOUNT_B}`,
    },
    {
      case: 'launch templates only',
      entries: uses([ACCOUNT_A, 'ec2:LaunchTemplate', 2]),
      reason: `used by 2 launch templates in 1 other account: ${ACCOUNT_A}`,
    },
    {
      case: 'another resource type, by its type name',
      entries: uses([ACCOUNT_A, 'imagebuilder:ImageRecipe', 1], [ACCOUNT_A, 'ec2:Instance', 4]),
      reason: `used by 4 instances and 1 imagebuilder:ImageRecipe in 1 other account: ${ACCOUNT_A}`,
    },
    {
      case: 'the most used account first',
      entries: uses([ACCOUNT_A, 'ec2:Instance', 1], [ACCOUNT_B, 'ec2:Instance', 9]),
      reason: `used by 10 instances in 2 other accounts: ${ACCOUNT_B}, ${ACCOUNT_A}`,
    },
    {
      case: 'this account among them',
      entries: uses([ACCOUNT_ID, 'ec2:Instance', 1], [ACCOUNT_A, 'ec2:Instance', 1]),
      reason: `used by 2 instances in 2 accounts: ${ACCOUNT_A}, this account`,
    },
    {
      case: 'seven accounts',
      entries: uses(
        ...['1', '2', '3', '4', '5', '6', '7'].map((digit): [string, string, number] => [
          digit.repeat(12),
          'ec2:Instance',
          1,
        ]),
      ),
      reason:
        'used by 7 instances in 7 other accounts: 111111111111, 222222222222, 333333333333, 444444444444, 555555555555 and 2 more',
    },
  ])('names accounts and counts: $case', ({ entries, reason }) => {
    // Act
    const said = gate(marked(MARK_DAYS), facts({ usage: reported({ entries }) }));

    // Assess
    expect(said).toEqual({
      'shared-in-use': {
        kind: 'keep',
        reason: `${reason} (usage report ${REPORT_ID} of ${day(daysBefore(NOW, 5))})`,
      },
    });
  });

  it.each([
    { case: 'before the removal is due', subject: marked(3), createdAt: daysBefore(NOW, 1), graceDays: 7 },
    {
      case: 'on an image not marked (it is not marked again)',
      subject: image(),
      createdAt: daysBefore(NOW, 20),
      graceDays: 7,
    },
    {
      case: 'while the report is younger than the lag',
      subject: marked(MARK_DAYS),
      createdAt: daysBefore(NOW, 0.5),
      graceDays: 7,
    },
    { case: 'with graceDays 0 and no mark', subject: image(), createdAt: daysBefore(NOW, 1), graceDays: 0 },
  ])('keeps whenever use is shown: $case', ({ subject, createdAt, graceDays }) => {
    // Prepare
    const given = facts({ usage: reported({ createdAt, entries: uses([ACCOUNT_A, 'ec2:Instance', 1]) }) });

    // Act
    const said = gate(subject, given, policy({ graceDays }));

    // Assess
    expect(Object.keys(said)).toEqual(['shared-in-use']);
  });

  it.each([
    { case: 'predates the mark', createdAt: daysBefore(NOW, MARK_DAYS + 1), state: 'available' },
    { case: 'is stale', createdAt: daysBefore(NOW, USAGE_REPORT_MAX_AGE_DAYS + 1), state: 'available' },
    { case: 'is not complete', createdAt: daysBefore(NOW, 5), state: 'pending' },
  ])('a report that $case shows no trusted use', ({ createdAt, state }) => {
    // Prepare
    const given = facts({
      usage: reported({ createdAt, state, entries: uses([ACCOUNT_A, 'ec2:Instance', 1]) }),
    });

    // Act
    const said = gate(marked(MARK_DAYS), given);

    // Assess
    expect(Object.keys(said)).toEqual(['shared-use-unknown']);
  });
});

describe('shared-use-unknown: the removal is due and the use elsewhere is unknown', () => {
  const createdAt = daysBefore(NOW, 5);
  const shared = 'shared with 2 accounts';

  it.each<{ case: string; usage: UsageFact | undefined; reason: string }>([
    {
      case: 'no usage fact',
      usage: undefined,
      reason: `${shared}: no usage report yet, so its use there is unknown; one is requested`,
    },
    {
      case: 'no report',
      usage: { status: 'none', detail: 'report amiur-0aaa no longer exists' },
      reason: `${shared}: no usable usage report (report amiur-0aaa no longer exists), so its use there is unknown; one is requested`,
    },
    {
      case: 'reports unsupported',
      usage: { status: 'unsupported', detail: 'CreateImageUsageReport is not offered in this Region' },
      reason: `${shared}: AMI usage reports are not available here (CreateImageUsageReport is not offered in this Region), so its use in the accounts it reaches is unknown; kept to be safe`,
    },
    {
      case: 'a read error',
      usage: { status: 'error', errorCode: 'UnauthorizedOperation', detail: 'not allowed' },
      reason: `${shared}: its AMI usage could not be read (UnauthorizedOperation: not allowed)`,
    },
    {
      case: 'a pending report',
      usage: reported({ state: 'pending', createdAt }),
      reason: `${shared}: usage report ${REPORT_ID} requested ${day(createdAt)} is not complete yet (pending)`,
    },
    {
      case: 'a report in a state EC2 added later',
      usage: reported({ state: 'in-progress', createdAt }),
      reason: `${shared}: usage report ${REPORT_ID} requested ${day(createdAt)} is not complete yet (in-progress)`,
    },
    {
      case: 'a failed report',
      usage: reported({ state: 'failed', stateReason: 'internal error' }),
      reason: `${shared}: usage report ${REPORT_ID} failed (internal error); a new one is requested`,
    },
    {
      case: 'a failed report without a reason',
      usage: reported({ state: 'failed' }),
      reason: `${shared}: usage report ${REPORT_ID} failed (no reason given); a new one is requested`,
    },
    {
      case: 'a report older than the mark',
      usage: reported({ createdAt: daysBefore(NOW, 12) }),
      reason: `${shared}: usage report ${REPORT_ID} of ${day(daysBefore(NOW, 12))} predates the mark (${day(daysBefore(NOW, MARK_DAYS))}); a fresh one is requested`,
    },
    {
      case: 'a report younger than usageReportMinAgeDays',
      usage: reported({ createdAt: daysBefore(NOW, 1) }),
      reason: `${shared}: usage report ${REPORT_ID} of ${day(daysBefore(NOW, 1))} is too recent to clear it: reports lag, so it counts from ${day(daysAfter(NOW, 1))}`,
    },
  ])('keeps with $case', ({ usage, reason }) => {
    // Prepare
    const given = facts(usage ? { usage } : {});

    // Act
    const said = gate(marked(MARK_DAYS), given);

    // Assess
    expect(said).toEqual({ 'shared-use-unknown': { kind: 'keep', reason } });
  });

  it('a stale report cannot clear it, whatever it says', () => {
    // Prepare
    const old = daysBefore(NOW, USAGE_REPORT_MAX_AGE_DAYS + 1);

    // Act
    const said = gate(marked(40), facts({ usage: reported({ createdAt: old }) }));

    // Assess
    expect(said['shared-use-unknown']?.reason).toBe(
      `${shared}: usage report ${REPORT_ID} of ${day(old)} is more than ${USAGE_REPORT_MAX_AGE_DAYS} days old; a fresh one is requested`,
    );
  });

  it.each([
    { case: 'a complete report showing no use', entries: [] },
    { case: 'entries with no use', entries: uses([ACCOUNT_A, 'ec2:Instance', 0]) },
  ])('has no opinion once old enough: $case', ({ entries }) => {
    // Act
    const said = gate(marked(MARK_DAYS), facts({ usage: reported({ entries }) }));

    // Assess
    expect(said).toEqual({});
  });

  it.each([
    { minAge: 0, ageDays: 0, speaks: false },
    { minAge: 2, ageDays: 1.99, speaks: true },
    { minAge: 2, ageDays: 2, speaks: false },
    { minAge: 5, ageDays: 4, speaks: true },
  ])(
    'usageReportMinAgeDays $minAge, report $ageDays days old → holds: $speaks',
    ({ minAge, ageDays, speaks }) => {
      // Prepare
      const usage = reported({ createdAt: new Date(NOW.getTime() - ageDays * DAY_MS) });

      // Act
      const said = gate(marked(MARK_DAYS), facts({ usage }), policy({ usageReportMinAgeDays: minAge }));

      // Assess
      expect('shared-use-unknown' in said).toBe(speaks);
    },
  );

  it('a report made in the same run as the mark, a little before its time, follows the mark', () => {
    // Prepare
    const markedAt = daysBefore(NOW, MARK_DAYS);
    const usage = reported({ createdAt: new Date(markedAt.getTime() - 5 * 60_000) });

    // Act
    const said = gate(marked(MARK_DAYS), facts({ usage }));

    // Assess
    expect(said).toEqual({});
  });
});

describe('shared-use-unknown: only once the removal is due', () => {
  const unknown: UsageFact[] = [
    { status: 'none', detail: 'no report requested yet' },
    { status: 'unsupported', detail: 'not here' },
    { status: 'error', errorCode: 'Throttling', detail: 'slow down' },
    reported({ state: 'pending', createdAt: daysBefore(NOW, 1) }),
  ];

  it.each([
    { case: 'not marked', subject: image() },
    { case: 'marked 3 days ago (grace 7)', subject: marked(3) },
    { case: 'marked just under the grace period ago', subject: marked(6.99) },
    { case: 'marked with a value that is not a date', subject: image({ tags: { [MARKED_AT_TAG]: 'soon' } }) },
  ])('has no opinion when $case, so the image is marked and scheduled as usual', ({ subject }) => {
    for (const usage of unknown) {
      expect(gate(subject, facts({ usage }))).toEqual({});
    }
  });

  it.each([
    { case: 'exactly at the end of the grace period', subject: marked(7), graceDays: 7 },
    { case: 'graceDays 30, marked 31 days ago', subject: marked(31), graceDays: 30 },
    { case: 'graceDays 0, not marked', subject: image(), graceDays: 0 },
  ])('speaks $case', ({ subject, graceDays }) => {
    expect(Object.keys(gate(subject, facts(), policy({ graceDays })))).toEqual(['shared-use-unknown']);
  });

  it('reads the clock it is given, not the wall clock', () => {
    // Prepare
    const subject = image({ tags: { [MARKED_AT_TAG]: '2020-01-01T00:00:00.000Z' } });

    // Act
    const before = gate(subject, facts(), policy(), new Date('2020-01-07T00:00:00Z'));
    const after = gate(subject, facts(), policy(), new Date('2020-01-08T00:00:00Z'));

    // Assess
    expect(before).toEqual({});
    expect(Object.keys(after)).toEqual(['shared-use-unknown']);
  });
});

describe('launch permissions', () => {
  it.each([
    { case: 'an account', sharing: share({ accounts: [ACCOUNT_A] }), shown: 'shared with 1 account' },
    {
      case: 'an organization and two OUs',
      sharing: share({ organizations: [ORGANIZATION], organizationalUnits: [OU, `${OU}x`] }),
      shown: 'shared with 1 organization and 2 OUs',
    },
    { case: 'the public', sharing: share({ public: true }), shown: 'public' },
    {
      case: 'the public and an account',
      sharing: share({ public: true, accounts: [ACCOUNT_A] }),
      shown: 'public and shared with 1 account',
    },
  ])('a share with $case reaches other accounts', ({ sharing, shown }) => {
    const said = gate(marked(MARK_DAYS), facts({ sharing }));

    expect(said['shared-use-unknown']?.reason).toMatch(new RegExp(`^${shown}: no usage report yet`));
  });

  it('an allowlisted share is still a share', () => {
    // Prepare
    const allowing = policy({ sharing: { allowedAccounts: [ACCOUNT_A, ACCOUNT_B] } });

    // Act
    const said = gate(marked(MARK_DAYS), facts(), allowing);

    // Assess
    expect(Object.keys(said)).toEqual(['shared-use-unknown']);
  });

  it.each([
    { case: 'not shared', sharing: NOT_SHARED },
    { case: 'shared only with the account itself', sharing: share({ accounts: [ACCOUNT_ID] }) },
  ])('has no opinion on an image $case, whatever the usage fact', ({ sharing }) => {
    const usage: UsageFact = { status: 'error', errorCode: 'Throttling', detail: 'slow down' };

    expect(gate(marked(MARK_DAYS), facts({ sharing, usage }))).toEqual({});
    expect(gate(marked(MARK_DAYS), facts({ sharing }), policy({ sharedImages: 'keep' }))).toEqual({});
  });

  it.each([
    { case: 'no usage fact', usage: undefined },
    { case: 'no report', usage: { status: 'none', detail: 'none' } as const },
  ])('permissions not read and $case: no opinion', ({ usage }) => {
    // Prepare
    const { sharing: _unread, ...unread } = facts(usage ? { usage } : {});

    // Act
    const said = gate(marked(MARK_DAYS), unread);

    // Assess
    expect(said).toEqual({});
  });

  it('permissions that could not be read keep a due image: it may be shared', () => {
    // Prepare
    const { sharing: _unread, ...unread } = facts({
      usage: { status: 'error', errorCode: 'RequestLimitExceeded', detail: 'throttled' },
    });

    // Act
    const due = gate(marked(MARK_DAYS), unread);
    const notDue = gate(marked(3), unread);

    // Assess
    expect(due).toEqual({
      'shared-use-unknown': {
        kind: 'keep',
        reason:
          'its launch permissions could not be read (RequestLimitExceeded), so it may be shared with accounts that still use it',
      },
    });
    expect(notDue).toEqual({});
  });

  it('with sharedImages keep, unread permissions still hold a due image rather than unmark it', () => {
    // Prepare
    const { sharing: _unread, ...unread } = facts({
      usage: { status: 'error', errorCode: 'RequestLimitExceeded', detail: 'throttled' },
    });

    // Act
    const said = gate(marked(MARK_DAYS), unread, policy({ sharedImages: 'keep' }));

    // Assess
    expect(Object.keys(said)).toEqual(['shared-use-unknown']);
  });

  it('permissions not read, but DescribeImages says public: it is shared with everyone', () => {
    // Prepare
    const { sharing: _unread, ...unread } = facts();

    // Act
    const said = gate(marked(MARK_DAYS, { public: true }), unread);

    // Assess
    expect(said['shared-use-unknown']?.reason).toMatch(/^public: no usage report yet/);
  });
});

describe('shared-image-kept: sharedImages keep', () => {
  const keepShared = policy({ sharedImages: 'keep' });

  it.each([
    { case: 'a due image', subject: marked(MARK_DAYS), usage: undefined },
    { case: 'an image not marked', subject: image(), usage: undefined },
    { case: 'an image a report cleared', subject: marked(MARK_DAYS), usage: reported() },
    {
      case: 'an image a report shows in use',
      subject: marked(MARK_DAYS),
      usage: reported({ entries: uses([ACCOUNT_A, 'ec2:Instance', 1]) }),
    },
  ])('keeps $case with the policy as the reason', ({ subject, usage }) => {
    // Act
    const said = gate(subject, facts(usage ? { usage } : {}), keepShared);

    // Assess
    expect(said).toEqual({
      'shared-image-kept': {
        kind: 'keep',
        reason: 'shared with 2 accounts; the policy (sharedImages: keep) never removes shared images',
      },
    });
  });
});

describe('usageReportNeeded', () => {
  it.each<{ case: string; subject: Image; given: Partial<ImageFacts>; rules?: Policy; needed: boolean }>([
    { case: 'no usage fact', subject: marked(3), given: {}, needed: true },
    {
      case: 'no report, or it is gone',
      subject: marked(3),
      given: { usage: { status: 'none', detail: 'gone' } },
      needed: true,
    },
    {
      case: 'a failed report',
      subject: marked(3),
      given: { usage: reported({ state: 'failed', createdAt: daysBefore(NOW, 1) }) },
      needed: true,
    },
    {
      case: 'a report older than the mark',
      subject: marked(3),
      given: { usage: reported({ createdAt: daysBefore(NOW, 4) }) },
      needed: true,
    },
    {
      case: 'a stale report',
      subject: marked(40),
      given: { usage: reported({ createdAt: daysBefore(NOW, 31) }) },
      needed: true,
    },
    {
      case: 'an image about to be marked (any report is older than the mark)',
      subject: image(),
      given: { usage: reported() },
      needed: true,
    },
    {
      case: 'a pending report after the mark',
      subject: marked(3),
      given: { usage: reported({ state: 'pending', createdAt: daysBefore(NOW, 2) }) },
      needed: false,
    },
    {
      case: 'a complete report after the mark',
      subject: marked(MARK_DAYS),
      given: { usage: reported() },
      needed: false,
    },
    {
      case: 'a complete report that is still too recent',
      subject: marked(MARK_DAYS),
      given: { usage: reported({ createdAt: daysBefore(NOW, 1) }) },
      needed: false,
    },
    {
      case: 'a report that shows use keeps the image: nothing to ask',
      subject: image(),
      given: { usage: reported({ entries: uses([ACCOUNT_A, 'ec2:Instance', 1]) }) },
      needed: false,
    },
    {
      case: 'reports unsupported',
      subject: marked(3),
      given: { usage: { status: 'unsupported', detail: 'no' } },
      needed: false,
    },
    {
      case: 'a read error',
      subject: marked(3),
      given: { usage: { status: 'error', errorCode: 'X', detail: 'y' } },
      needed: false,
    },
    { case: 'not shared', subject: marked(3), given: { sharing: NOT_SHARED }, needed: false },
    { case: 'permissions not read', subject: marked(3), given: { sharing: undefined }, needed: false },
    {
      case: 'permissions not read but public',
      subject: marked(3, { public: true }),
      given: { sharing: undefined },
      needed: true,
    },
    {
      case: 'sharedImages keep',
      subject: marked(3),
      given: {},
      rules: policy({ sharedImages: 'keep' }),
      needed: false,
    },
    {
      case: 'graceDays 0: a complete report of any date is usable',
      subject: image(),
      given: { usage: reported({ createdAt: daysBefore(NOW, 20) }) },
      rules: policy({ graceDays: 0 }),
      needed: false,
    },
  ])('$case → $needed', ({ subject, given, rules = policy(), needed }) => {
    // Prepare
    const { sharing, ...rest } = facts(given);
    const imageFacts = 'sharing' in given && given.sharing === undefined ? rest : { ...rest, sharing };

    // Act
    const answer = usageReportNeeded(subject, imageFacts, rules, NOW);

    // Assess
    expect(answer).toBe(needed);
  });
});

describe('evaluateImage with the shared-image gate', () => {
  const clear = reported();
  const unknown: UsageFact = { status: 'none', detail: 'no report requested yet' };
  const inUse = reported({ entries: uses([ACCOUNT_A, 'ec2:Instance', 2]) });

  it.each<{ case: string; subject: Image; given: ImageFacts; rules?: Policy; verdict: string; rule: string }>(
    [
      {
        case: 'an eligible, due image whose use is unknown waits',
        subject: marked(MARK_DAYS),
        given: facts({ usage: unknown }),
        verdict: 'keep',
        rule: 'shared-use-unknown',
      },
      {
        case: 'a report showing no use lets the removal go ahead',
        subject: marked(MARK_DAYS),
        given: facts({ usage: clear }),
        verdict: 'expire',
        rule: 'age',
      },
      {
        case: 'a report showing use keeps it',
        subject: marked(MARK_DAYS),
        given: facts({ usage: inUse }),
        verdict: 'keep',
        rule: 'shared-in-use',
      },
      {
        case: 'a marked image not due yet is scheduled as usual',
        subject: marked(3),
        given: facts({ usage: unknown }),
        verdict: 'expire',
        rule: 'age',
      },
      {
        case: 'the hold gives way to a keep: launched again, the image is no longer eligible',
        subject: marked(MARK_DAYS, { lastLaunchedTime: daysBefore(NOW, 2) }),
        given: facts({ usage: unknown }),
        verdict: 'keep',
        rule: 'not-eligible',
      },
      {
        case: 'the hold gives way to keep-latest',
        subject: marked(MARK_DAYS),
        given: facts({ usage: unknown, familyRank: 1 }),
        verdict: 'keep',
        rule: 'keep-latest',
      },
      {
        case: 'the hold stops an expiry tag too',
        subject: marked(MARK_DAYS, {
          tags: {
            [MARKED_AT_TAG]: daysBefore(NOW, MARK_DAYS).toISOString(),
            'ami-janitor:expires-at': '2026-01-01',
          },
        }),
        given: facts({ usage: unknown, familyRank: 1 }),
        verdict: 'keep',
        rule: 'shared-use-unknown',
      },
      {
        case: 'any other guard gives the reason before the hold',
        subject: marked(MARK_DAYS, { deregistrationProtection: 'enabled' }),
        given: facts({ usage: unknown }),
        verdict: 'keep',
        rule: 'protected',
      },
      {
        case: 'in use here is named before use elsewhere',
        subject: marked(MARK_DAYS),
        given: facts({ usage: inUse, references: [{ resourceType: 'ec2:Instance', resource: 'i-0aaa' }] }),
        verdict: 'keep',
        rule: 'in-use',
      },
      {
        case: 'sharedImages keep keeps an image nothing else would',
        subject: marked(MARK_DAYS),
        given: facts({ usage: clear }),
        rules: policy({ sharedImages: 'keep' }),
        verdict: 'keep',
        rule: 'shared-image-kept',
      },
    ],
  )('$case', ({ subject, given, rules = policy(), verdict, rule }) => {
    // Act
    const decision = evaluateImage(subject, given, rules, NOW);

    // Assess
    expect(decision).toMatchObject({ imageId: subject.imageId, verdict, rule });
  });

  it('the sharing audit still reports the share while the gate holds the image', () => {
    // Act
    const decision = evaluateImage(marked(MARK_DAYS), facts({ usage: unknown }), policy(), NOW);

    // Assess
    expect(decision.findings).toEqual([
      {
        rule: 'sharing',
        severity: 'high',
        reason: `image is shared outside the allowlist with account ${ACCOUNT_A}, account ${ACCOUNT_B}`,
      },
    ]);
  });

  it('only shared-use-unknown holds the mark; the other two unmark like any keep', () => {
    expect([...HOLDING_RULES]).toEqual(['shared-use-unknown']);
  });
});
