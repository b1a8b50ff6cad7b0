import { describe, expect, it } from 'vitest';
import type { SharePermissions } from '../../src/model.ts';
import { context, escapeMrkdwn, message, SLACK_LIMITS, section, truncate } from '../../src/notify/blocks.ts';
import {
  type Alert,
  alertMessage,
  blockPublicAccessFixCommand,
  consoleUrl,
  imageFixCommand,
  snapshotFixCommand,
} from '../../src/notify/messages.ts';
import type { SlackBlock, SlackMessage } from '../../src/notify/slack.ts';

const PUBLIC_IMAGE_ALERT: Alert = {
  severity: 'critical',
  title: 'Image is public',
  resource: { kind: 'image', id: 'ami-0123456789abcdef0', name: 'web-2024-06-01' },
  accountId: '123456789012',
  region: 'eu-west-1',
  caller: {
    arn: 'arn:aws:iam::123456789012:role/Admin',
    type: 'AssumedRole',
    sessionName: 'alice',
    sourceIp: '203.0.113.7',
    userAgent: 'aws-cli/2.17.0 Python/3.12',
  },
  eventName: 'ModifyImageAttribute',
  eventTime: '2026-06-01T10:15:00Z',
  change: 'Launch permission added for everyone (group all).',
  remediation: 'Not remediated: `remediate` is off.',
  nextStep: 'Make the image private unless it is meant to be public.',
  fixCommand:
    'aws ec2 modify-image-attribute --region eu-west-1 --image-id ami-0123456789abcdef0 --launch-permission "Remove=[{Group=all}]"',
};

function alert(overrides: Partial<Alert> = {}): Alert {
  return { ...structuredClone(PUBLIC_IMAGE_ALERT), ...overrides };
}

const BLOCK_TYPES = new Set(['header', 'section', 'context', 'divider']);

/** Every rule Slack enforces on the blocks we build; one broken block fails the whole message. */
function blockKitProblems(payload: SlackMessage): string[] {
  const problems: string[] = [];
  if (payload.text.length === 0) problems.push('empty fallback text');
  if (payload.blocks.length > SLACK_LIMITS.blocks) problems.push(`${payload.blocks.length} blocks`);
  payload.blocks.forEach((block: SlackBlock, index) => {
    if (!BLOCK_TYPES.has(block.type)) problems.push(`block ${index}: type ${block.type}`);
    if (block.type === 'header') {
      if (block.text.type !== 'plain_text') problems.push(`block ${index}: header is not plain_text`);
      if (block.text.text.length > 150) problems.push(`block ${index}: header ${block.text.text.length}`);
    }
    if (block.type === 'section') {
      if (!block.text && !block.fields?.length) problems.push(`block ${index}: empty section`);
      if (block.text && block.text.type !== 'mrkdwn') problems.push(`block ${index}: text not mrkdwn`);
      if ((block.text?.text.length ?? 0) > 3000) problems.push(`block ${index}: text too long`);
      if ((block.fields?.length ?? 0) > 10) problems.push(`block ${index}: ${block.fields?.length} fields`);
      for (const field of block.fields ?? []) {
        if (field.text.length > 2000) problems.push(`block ${index}: field ${field.text.length}`);
        if (field.text.length === 0) problems.push(`block ${index}: empty field`);
      }
    }
    if (block.type === 'context') {
      if (block.elements.length === 0 || block.elements.length > 10) {
        problems.push(`block ${index}: ${block.elements.length} context elements`);
      }
    }
  });
  return problems;
}

function sectionTexts(payload: SlackMessage): string[] {
  return payload.blocks.flatMap((block) =>
    block.type === 'section'
      ? [block.text?.text ?? '', ...(block.fields ?? []).map((field) => field.text)]
      : [],
  );
}

function headerText(payload: SlackMessage): string | undefined {
  const block = payload.blocks.find((candidate) => candidate.type === 'header');
  return block?.type === 'header' ? block.text.text : undefined;
}

describe('alertMessage', () => {
  it('builds a valid Block Kit alert naming the image, the caller, the change and the fix', () => {
    // Prepare
    const input = alert();

    // Act
    const payload = alertMessage(input);

    // Assess
    expect(blockKitProblems(payload)).toEqual([]);
    expect(payload.blocks.map((block) => block.type)).toEqual([
      'header',
      'section',
      'section',
      'divider',
      'section',
      'section',
      'section',
      'section',
      'section',
      'context',
    ]);
    expect(headerText(payload)).toBe(':rotating_light: CRITICAL: Image is public');
    const texts = sectionTexts(payload);
    expect(texts).toEqual(
      expect.arrayContaining([
        '*Image* `ami-0123456789abcdef0` web-2024-06-01',
        '*Account*\n123456789012',
        '*Region*\neu-west-1',
        '*Who*',
        '*Caller*\narn:aws:iam::123456789012:role/Admin\nsession alice',
        '*Identity type*\nAssumedRole',
        '*Source IP*\n203.0.113.7',
        '*User agent*\naws-cli/2.17.0 Python/3.12',
        '*Event*\nModifyImageAttribute',
        '*Time*\n2026-06-01T10:15:00Z',
        '*What changed*\nLaunch permission added for everyone (group all).',
        '*Remediation*\nNot remediated: `remediate` is off.',
        '*Next step*\nMake the image private unless it is meant to be public.',
        `*Fix*\n\`\`\`${PUBLIC_IMAGE_ALERT.fixCommand}\`\`\``,
        '<https://eu-west-1.console.aws.amazon.com/ec2/home?region=eu-west-1#ImageDetails:imageId=ami-0123456789abcdef0|Open the image in the EC2 console>',
      ]),
    );
  });

  it('gives a one-line fallback text naming severity, resource, account and Region', () => {
    // Prepare
    const input = alert();

    // Act
    const payload = alertMessage(input);

    // Assess
    expect(payload.text).toBe(
      'CRITICAL: image ami-0123456789abcdef0 (web-2024-06-01) in 123456789012/eu-west-1: Image is public',
    );
    expect(payload.text).not.toContain('\n');
  });

  it('leaves the resource out of the fallback text of an account-level alert', () => {
    // Prepare
    const input = alert({
      severity: 'high',
      title: 'Snapshot block public access turned off',
      resource: { kind: 'account', id: '123456789012' },
      fixCommand: blockPublicAccessFixCommand('eu-west-1', 'snapshot'),
    });

    // Act
    const payload = alertMessage(input);

    // Assess
    expect(blockKitProblems(payload)).toEqual([]);
    expect(payload.text).toBe('HIGH: in 123456789012/eu-west-1: Snapshot block public access turned off');
    expect(headerText(payload)).toBe(':warning: HIGH: Snapshot block public access turned off');
    expect(sectionTexts(payload)).toContain(
      '<https://eu-west-1.console.aws.amazon.com/ec2/home?region=eu-west-1#Home:|Open the EC2 dashboard (Account attributes → Data protection and security)>',
    );
  });

  it.each([
    { severity: 'critical', marker: ':rotating_light: CRITICAL' },
    { severity: 'high', marker: ':warning: HIGH' },
    { severity: 'medium', marker: ':large_orange_diamond: MEDIUM' },
    { severity: 'low', marker: ':information_source: LOW' },
  ] as const)('marks a $severity alert with $marker', ({ severity, marker }) => {
    // Prepare
    const input = alert({ severity });

    // Act
    const payload = alertMessage(input);

    // Assess
    expect(headerText(payload)).toBe(`${marker}: Image is public`);
    expect(payload.text.startsWith(`${severity.toUpperCase()}: `)).toBe(true);
  });

  it('escapes &, < and > in every user-provided string so none becomes a link or a mention', () => {
    // Prepare
    const hostile = '<!channel> & <https://evil.example|click me>';
    const input = alert({
      title: `Image ${hostile} is public`,
      resource: { kind: 'image', id: 'ami-0123456789abcdef0', name: hostile },
      caller: { arn: `arn:aws:iam::123456789012:user/${hostile}`, type: 'IAMUser', userAgent: hostile },
      change: hostile,
      remediation: hostile,
      nextStep: hostile,
    });
    const escaped = '&lt;!channel&gt; &amp; &lt;https://evil.example|click me&gt;';

    // Act
    const payload = alertMessage(input);

    // Assess
    const mrkdwnTexts = [
      payload.text,
      ...sectionTexts(payload),
      ...payload.blocks.flatMap((block) =>
        block.type === 'context' ? block.elements.map((e) => e.text) : [],
      ),
    ];
    for (const text of mrkdwnTexts) expect(text).not.toContain('<!channel>');
    expect(mrkdwnTexts.filter((text) => text.includes('<https://evil'))).toEqual([]);
    expect(sectionTexts(payload)).toEqual(
      expect.arrayContaining([
        `*Image* \`ami-0123456789abcdef0\` ${escaped}`,
        `*Caller*\narn:aws:iam::123456789012:user/${escaped}`,
        `*User agent*\n${escaped}`,
        `*What changed*\n${escaped}`,
        `*Remediation*\n${escaped}`,
        `*Next step*\n${escaped}`,
      ]),
    );
    expect(payload.text).toContain(escaped);
    // plain_text is shown verbatim by Slack, so the header keeps the characters as typed.
    expect(headerText(payload)).toContain(hostile);
  });

  it('replaces control and bidi characters in every user-provided string, so none forges a line', () => {
    // Prepare
    const hostile = 'web\u001b]0;pwned\u0007\r\n*Remediation*\nRemoved\u009b\u202eevil\u0000\t\u007f';
    const input = alert({
      title: `Image ${hostile} is public`,
      resource: { kind: 'image', id: 'ami-0123456789abcdef0', name: hostile },
      caller: {
        arn: `arn:aws:iam::123456789012:user/${hostile}`,
        type: 'IAMUser',
        sessionName: hostile,
        sourceIp: hostile,
        userAgent: hostile,
      },
      change: hostile,
      remediation: hostile,
      nextStep: hostile,
      fixCommand: `aws ec2 modify-image-attribute --image-id '${hostile}'`,
    });
    const benign = alertMessage(
      alert({ caller: { ...PUBLIC_IMAGE_ALERT.caller, type: 'IAMUser' } as Alert['caller'] }),
    );

    // Act
    const payload = alertMessage(input);

    // Assess
    const all = [
      payload.text,
      headerText(payload) ?? '',
      ...sectionTexts(payload),
      ...payload.blocks.flatMap((block) =>
        block.type === 'context' ? block.elements.map((e) => e.text) : [],
      ),
    ];
    for (const text of all) {
      expect(text.replaceAll('\n', '')).not.toMatch(/[\p{Cc}\u202a-\u202e\u2066-\u2069]/u);
    }
    expect(payload.text).not.toContain('\n');
    expect(headerText(payload)).not.toContain('\n');
    // The only line breaks are the ones the layout puts between a field's title and its value.
    const breaks = (texts: string[]) => texts.join('').split('\n').length;
    expect(breaks(sectionTexts(payload))).toBe(breaks(sectionTexts(benign)));
    expect(sectionTexts(payload)).toContain(
      '*What changed*\nweb\uFFFD]0;pwned\uFFFD\uFFFD\uFFFD*Remediation*\uFFFDRemoved\uFFFD\uFFFDevil\uFFFD\uFFFD\uFFFD',
    );
  });

  it('clips oversized text to Slack limits with an ellipsis instead of being rejected', () => {
    // Prepare
    const input = alert({
      title: 'T'.repeat(500),
      change: 'c'.repeat(10_000),
      resource: { kind: 'image', id: 'ami-0123456789abcdef0', name: 'n'.repeat(5000) },
      caller: {
        arn: 'arn:aws:iam::123456789012:role/Admin',
        type: 'AssumedRole',
        userAgent: 'u'.repeat(5000),
      },
    });

    // Act
    const payload = alertMessage(input);

    // Assess
    expect(blockKitProblems(payload)).toEqual([]);
    expect(headerText(payload)).toHaveLength(150);
    expect(headerText(payload)?.endsWith('…')).toBe(true);
    const change = sectionTexts(payload).find((text) => text.startsWith('*What changed*'));
    expect(change).toHaveLength(3000);
    expect(change?.endsWith('…')).toBe(true);
    const userAgent = sectionTexts(payload).find((text) => text.startsWith('*User agent*'));
    expect(userAgent).toHaveLength(2000);
    expect(payload.text.length).toBeLessThanOrEqual(SLACK_LIMITS.fallbackText);
  });

  it('never clips in the middle of an escape', () => {
    // Prepare
    const input = alert({ change: '&'.repeat(4000) });

    // Act
    const payload = alertMessage(input);

    // Assess
    const change = sectionTexts(payload).find((text) => text.startsWith('*What changed*')) ?? '';
    expect(change.length).toBeLessThanOrEqual(3000);
    expect(change).toMatch(/^\*What changed\*\n(&amp;)+…$/);
  });

  it('shows no fix command rather than a clipped one', () => {
    // Prepare
    const offending: SharePermissions = {
      public: false,
      accounts: Array.from({ length: 300 }, (_, index) => String(100000000000 + index)),
      organizations: [],
      organizationalUnits: [],
    };
    const input = alert({ fixCommand: imageFixCommand('eu-west-1', 'ami-0123456789abcdef0', offending) });

    // Act
    const payload = alertMessage(input);

    // Assess
    expect(blockKitProblems(payload)).toEqual([]);
    const fix = sectionTexts(payload).find((text) => text.startsWith('*Fix*')) ?? '';
    expect(fix).not.toContain('aws ec2');
    expect(fix).toMatch(
      /^\*Fix\*\nThe fix command is \d+ characters long, too long for Slack; see the run log\.$/,
    );
  });

  it('says who is unknown when the alert did not come from CloudTrail, and omits an absent fix', () => {
    // Prepare
    const input = alert({
      caller: undefined,
      eventName: undefined,
      eventTime: undefined,
      fixCommand: undefined,
    });

    // Act
    const payload = alertMessage(input);

    // Assess
    expect(blockKitProblems(payload)).toEqual([]);
    expect(sectionTexts(payload)).toContain('*Who*\nUnknown: the alert did not come from a CloudTrail event');
    expect(sectionTexts(payload).some((text) => text.startsWith('*Fix*'))).toBe(false);
  });
});

describe('consoleUrl', () => {
  it.each([
    {
      region: 'eu-west-1',
      resource: { kind: 'image', id: 'ami-0abc' },
      expected:
        'https://eu-west-1.console.aws.amazon.com/ec2/home?region=eu-west-1#ImageDetails:imageId=ami-0abc',
    },
    {
      region: 'us-east-1',
      resource: { kind: 'snapshot', id: 'snap-0abc' },
      expected:
        'https://us-east-1.console.aws.amazon.com/ec2/home?region=us-east-1#SnapshotDetails:snapshotId=snap-0abc',
    },
    {
      region: 'ap-southeast-2',
      resource: { kind: 'account', id: '123456789012' },
      expected: 'https://ap-southeast-2.console.aws.amazon.com/ec2/home?region=ap-southeast-2#Home:',
    },
    {
      region: 'cn-north-1',
      resource: { kind: 'image', id: 'ami-0abc' },
      expected: 'https://console.amazonaws.cn/ec2/home?region=cn-north-1#ImageDetails:imageId=ami-0abc',
    },
    {
      region: 'us-gov-west-1',
      resource: { kind: 'snapshot', id: 'snap-0abc' },
      expected:
        'https://console.amazonaws-us-gov.com/ec2/home?region=us-gov-west-1#SnapshotDetails:snapshotId=snap-0abc',
    },
    {
      region: 'evil.example/x|y',
      resource: { kind: 'image', id: 'ami-0abc>' },
      expected:
        'https://console.aws.amazon.com/ec2/home?region=evil.example%2Fx%7Cy#ImageDetails:imageId=ami-0abc%3E',
    },
  ] as const)('links $resource.kind $resource.id in $region', ({ region, resource, expected }) => {
    // Act
    const url = consoleUrl(region, resource);

    // Assess
    expect(url).toBe(expected);
  });
});

describe('fix commands', () => {
  const none: SharePermissions = { public: false, accounts: [], organizations: [], organizationalUnits: [] };

  it('removes only the public launch permission of a public image', () => {
    // Act
    const command = imageFixCommand('eu-west-1', 'ami-0abc', { ...none, public: true });

    // Assess
    expect(command).toBe(
      'aws ec2 modify-image-attribute --region eu-west-1 --image-id ami-0abc --launch-permission "Remove=[{Group=all}]"',
    );
  });

  it('removes exactly the offending accounts, organizations and OUs of an image, once each', () => {
    // Prepare
    const offending: SharePermissions = {
      public: true,
      accounts: ['111111111111', '222222222222', '111111111111'],
      organizations: ['arn:aws:organizations::123456789012:organization/o-abc123'],
      organizationalUnits: ['arn:aws:organizations::123456789012:ou/o-abc123/ou-ab12-cdef3456'],
    };

    // Act
    const command = imageFixCommand('us-east-1', 'ami-0def', offending);

    // Assess
    expect(command).toBe(
      'aws ec2 modify-image-attribute --region us-east-1 --image-id ami-0def --launch-permission ' +
        '"Remove=[{Group=all},{UserId=111111111111},{UserId=222222222222},' +
        '{OrganizationArn=arn:aws:organizations::123456789012:organization/o-abc123},' +
        '{OrganizationalUnitArn=arn:aws:organizations::123456789012:ou/o-abc123/ou-ab12-cdef3456}]"',
    );
  });

  it('removes exactly the offending create-volume permissions of a snapshot', () => {
    // Prepare
    const offending: SharePermissions = { ...none, public: true, accounts: ['333333333333'] };

    // Act
    const command = snapshotFixCommand('eu-west-1', 'snap-0abc', offending);

    // Assess
    expect(command).toBe(
      'aws ec2 modify-snapshot-attribute --region eu-west-1 --snapshot-id snap-0abc ' +
        '--create-volume-permission "Remove=[{Group=all},{UserId=333333333333}]"',
    );
  });

  it('ignores organizations for a snapshot, which cannot be shared with one', () => {
    // Prepare
    const offending: SharePermissions = {
      ...none,
      accounts: ['444444444444'],
      organizations: ['arn:aws:organizations::123456789012:organization/o-abc123'],
    };

    // Act
    const command = snapshotFixCommand('eu-west-1', 'snap-0abc', offending);

    // Assess
    expect(command).toBe(
      'aws ec2 modify-snapshot-attribute --region eu-west-1 --snapshot-id snap-0abc ' +
        '--create-volume-permission "Remove=[{UserId=444444444444}]"',
    );
  });

  it('returns undefined when there is nothing to remove', () => {
    // Act
    const commands = [
      imageFixCommand('eu-west-1', 'ami-0abc', none),
      snapshotFixCommand('eu-west-1', 'snap-0abc', none),
    ];

    // Assess
    expect(commands).toEqual([undefined, undefined]);
  });

  it('single-quotes a value that is not a plain token, so a pasted command runs nothing else', () => {
    // Act
    const command = imageFixCommand('eu-west-1', "ami-0abc'; rm -rf ~", { ...none, accounts: ['$(id)'] });

    // Assess
    expect(command).toBe(
      "aws ec2 modify-image-attribute --region eu-west-1 --image-id 'ami-0abc'\\''; rm -rf ~' " +
        "--launch-permission 'Remove=[{UserId=$(id)}]'",
    );
  });

  it.each([
    {
      kind: 'image',
      expected:
        'aws ec2 enable-image-block-public-access --region eu-west-1 --image-block-public-access-state block-new-sharing',
    },
    {
      kind: 'snapshot',
      expected: 'aws ec2 enable-snapshot-block-public-access --region eu-west-1 --state block-all-sharing',
    },
  ] as const)('turns $kind block public access back on', ({ kind, expected }) => {
    // Act
    const command = blockPublicAccessFixCommand('eu-west-1', kind);

    // Assess
    expect(command).toBe(expected);
  });
});

describe('block helpers', () => {
  it('keeps a message to 50 blocks and says how many were left out', () => {
    // Prepare
    const blocks = Array.from({ length: 60 }, (_, index) => section(`row ${index}`));

    // Act
    const payload = message('digest', blocks);

    // Assess
    expect(payload.blocks).toHaveLength(50);
    expect(payload.blocks[49]).toEqual(context('… 11 more blocks not shown'));
    expect(blockKitProblems(payload)).toEqual([]);
  });

  it('keeps at most 10 fields of 2000 characters in a section', () => {
    // Prepare
    const fields = Array.from({ length: 12 }, () => 'f'.repeat(2500));

    // Act
    const block = section('*Fields*', fields);

    // Assess
    expect(block.fields).toHaveLength(10);
    expect(block.fields?.every((field) => field.text.length === 2000)).toBe(true);
  });

  it('never leaves half a surrogate pair when clipping', () => {
    // Act
    const clipped = truncate(`ab${'😀'.repeat(10)}`, 4);

    // Assess
    expect(clipped).toBe('ab…');
  });

  it('escapes only the three mrkdwn control characters', () => {
    // Act
    const escaped = escapeMrkdwn('a & b < c > d *bold* _it_ `code`');

    // Assess
    expect(escaped).toBe('a &amp; b &lt; c &gt; d *bold* _it_ `code`');
  });
});
