import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { defaultPolicy, type Policy } from '../../src/config/policy.ts';
import {
  ALERTED_EXPOSURE_TAG,
  type AuditOutcome,
  auditImageEvent,
  CREATED_AT_TAG,
  CREATED_BY_SESSION_TAG,
  CREATED_BY_TAG,
} from '../../src/core/image-audit.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import { type ImageEvent, parseImageEvent } from '../../src/events/image-event.ts';
import { type Image, NOT_SHARED, type SharePermissions, type Snapshot } from '../../src/model.ts';
import type { DeliveryResult, Notifier, SlackBlock, SlackMessage } from '../../src/notify/slack.ts';
import { image, type LogEntry, recordingLog } from './factories.ts';

const EVENTS_DIR = resolve(import.meta.dirname, '../../events');
/** The account, image and snapshot the fixtures in events/ name. */
const ACCOUNT = '111122223333';
const IMAGE_ID = 'ami-0abc1234def567890';
const SNAPSHOT_ID = 'snap-0abc1234def567890';
const OUTSIDER = '444455556666';
const PARTNER = '777788889999';
const SSO_ROLE =
  'arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_PlatformEngineer_0a1b2c3d4e5f6a7b';
const EXPIRES_AT = 'ami-janitor:expires-at';

// biome-ignore lint/suspicious/noExplicitAny: fixtures are free-form JSON that tests reshape at will.
type Json = any;

/** A fresh copy of a fixture, so that one test's edits never leak into another. */
function fixture(name: string): Json {
  return structuredClone(JSON.parse(readFileSync(resolve(EVENTS_DIR, `${name}.json`), 'utf8')));
}

function eventFrom(name: string, edit: (raw: Json) => void = () => {}): ImageEvent {
  const raw = fixture(name);
  edit(raw);
  const parsed = parseImageEvent(raw);
  if (parsed.outcome !== 'event') throw new Error(`fixture ${name} did not parse: ${JSON.stringify(parsed)}`);
  return parsed.event;
}

function shared(overrides: Partial<SharePermissions> = {}): SharePermissions {
  return { ...NOT_SHARED, accounts: [], organizations: [], organizationalUnits: [], ...overrides };
}

/** A Notifier that keeps every message; `result` decides what the next send reports. */
function recordingNotifier(result: DeliveryResult = { delivered: true, attempts: 1, status: 200 }) {
  const notifier = {
    sent: [] as SlackMessage[],
    result,
    async send(message: SlackMessage): Promise<DeliveryResult> {
      notifier.sent.push(message);
      return notifier.result;
    },
  } satisfies Notifier & { sent: SlackMessage[]; result: DeliveryResult };
  return notifier;
}

function blockTexts(block: SlackBlock): string[] {
  switch (block.type) {
    case 'header':
      return [block.text.text];
    case 'section':
      return [block.text?.text ?? '', ...(block.fields ?? []).map((field) => field.text)];
    case 'context':
      return block.elements.map((element) => element.text);
    case 'divider':
      return [];
  }
}

/** Everything a person reads in the message: the fallback text and every block. */
function textOf(message: SlackMessage): string {
  return [message.text, ...message.blocks.flatMap(blockTexts)].join('\n');
}

function headerOf(message: SlackMessage): string {
  const header = message.blocks.find((block) => block.type === 'header');
  return header?.type === 'header' ? header.text.text : '';
}

/** The section that starts with `*heading*`, e.g. `Remediation` or `Fix`. */
function sectionOf(message: SlackMessage, heading: string): string | undefined {
  return message.blocks.flatMap(blockTexts).find((text) => text.startsWith(`*${heading}*`));
}

function onlyMessage(notifier: { sent: SlackMessage[] }): SlackMessage {
  expect(notifier.sent).toHaveLength(1);
  const [message] = notifier.sent;
  if (!message) throw new Error('no message sent');
  return message;
}

function attributes(entry: LogEntry | undefined): Record<string, unknown> {
  const first = entry?.extra[0];
  if (first === undefined || typeof first === 'string' || first instanceof Error) {
    throw new Error(`expected a log line with attributes, got ${JSON.stringify(entry)}`);
  }
  return first;
}

interface Setup {
  images?: Image[];
  snapshots?: Snapshot[];
  sharing?: Record<string, SharePermissions>;
  policy?: Partial<Policy>;
  sharingPolicy?: Partial<Policy['sharing']>;
  dryRun?: boolean;
  delivery?: DeliveryResult;
}

function setup(options: Setup = {}) {
  const account = new MemoryAccount({
    accountId: ACCOUNT,
    images: options.images ?? [ownImage()],
    ...(options.snapshots ? { snapshots: options.snapshots } : {}),
    ...(options.sharing ? { sharing: options.sharing } : {}),
  });
  const notifier = recordingNotifier(options.delivery);
  const log = recordingLog();
  const base = defaultPolicy();
  const policy: Policy = {
    ...base,
    ...options.policy,
    sharing: { ...base.sharing, ...options.sharingPolicy },
  };
  const audit = (event: ImageEvent): Promise<AuditOutcome> =>
    auditImageEvent(
      event,
      { images: account, sharing: account, notifier, log },
      { policy, dryRun: options.dryRun ?? false },
    );
  return { account, notifier, log, audit };
}

/** Its snapshot is not SNAPSHOT_ID, so the snapshot tests decide alone whether that one exists. */
function ownImage(overrides: Partial<Image> = {}): Image {
  return image({
    imageId: IMAGE_ID,
    name: 'web-2026-11-22',
    ownerId: ACCOUNT,
    snapshotIds: ['snap-0fff00000000000a1'],
    ...overrides,
  });
}

function tagsOf(account: MemoryAccount, id: string = IMAGE_ID): Readonly<Record<string, string>> {
  const found = account.images.get(id);
  if (!found) throw new Error(`image ${id} is gone`);
  return found.tags;
}

function callsTo(account: MemoryAccount, operation: string): string[] {
  return account.calls.filter((call) => call.startsWith(`${operation} `));
}

const SNAPSHOT: Snapshot = {
  snapshotId: SNAPSHOT_ID,
  ownerId: ACCOUNT,
  volumeId: 'vol-0123456789abcdef0',
  volumeSizeGiB: 8,
  startTime: new Date('2026-11-01T00:00:00Z'),
  description: 'root volume of web',
  state: 'completed',
  tags: { Name: 'web-root' },
};

describe('auditImageEvent: a new image', () => {
  it.each([
    {
      fixture: 'create-image',
      imageId: IMAGE_ID,
      createdBy: SSO_ROLE,
      session: 'jane.doe@example.com',
      createdAt: '2026-11-22T10:15:30.000Z',
    },
    {
      fixture: 'copy-image',
      imageId: 'ami-0123abcd4567ef890',
      createdBy: 'arn:aws:iam::111122223333:user/ci-release',
      session: undefined,
      createdAt: '2026-11-22T10:42:11.000Z',
    },
    {
      fixture: 'register-image',
      imageId: 'ami-0a1b2c3d4e5f67890',
      createdBy: 'arn:aws:iam::111122223333:root',
      session: undefined,
      createdAt: '2026-11-22T08:05:17.000Z',
    },
  ])(
    '$fixture tags the creator and the creation time',
    async ({ fixture, imageId, createdBy, session, createdAt }) => {
      // Prepare
      const { account, audit } = setup({ images: [ownImage({ imageId, tags: { Owner: 'platform' } })] });

      // Act
      const outcome = await audit(eventFrom(fixture));

      // Assess
      const expected = {
        [CREATED_BY_TAG]: createdBy,
        ...(session ? { [CREATED_BY_SESSION_TAG]: session } : {}),
        [CREATED_AT_TAG]: createdAt,
      };
      expect(outcome).toMatchObject({
        status: 'tagged',
        resourceId: imageId,
        tagsAdded: expected,
        findings: [],
      });
      expect(tagsOf(account, imageId)).toEqual({ Owner: 'platform', ...expected });
      expect(tagsOf(account, imageId)[CREATED_BY_SESSION_TAG]).toBe(session);
      expect(account.calls).toEqual([`tagImage ${imageId}`]);
    },
  );

  it('sets expires-at to the creation day plus defaultTtlDays', async () => {
    // Prepare
    const { account, audit } = setup({ policy: { defaultTtlDays: 30 } });

    // Act
    const outcome = await audit(eventFrom('create-image'));

    // Assess: created 2026-11-22T10:15:30Z, so 30 days later is 2026-12-22.
    expect(outcome.tagsAdded?.[EXPIRES_AT]).toBe('2026-12-22');
    expect(tagsOf(account)[EXPIRES_AT]).toBe('2026-12-22');
  });

  it('sets no expires-at when defaultTtlDays is off', async () => {
    // Prepare
    const { account, audit } = setup();

    // Act
    await audit(eventFrom('create-image'));

    // Assess
    expect(tagsOf(account)[EXPIRES_AT]).toBeUndefined();
  });

  it('never overwrites an expires-at or a creator tag that is already there', async () => {
    // Prepare
    const { account, audit } = setup({
      policy: { defaultTtlDays: 30 },
      images: [ownImage({ tags: { [EXPIRES_AT]: '2027-06-30', [CREATED_BY_TAG]: 'set-by-hand' } })],
    });

    // Act
    const outcome = await audit(eventFrom('create-image'));

    // Assess
    expect(outcome.status).toBe('tagged');
    expect(outcome.tagsAdded).not.toHaveProperty(EXPIRES_AT);
    expect(outcome.tagsAdded).not.toHaveProperty(CREATED_BY_TAG);
    expect(tagsOf(account)).toMatchObject({
      [EXPIRES_AT]: '2027-06-30',
      [CREATED_BY_TAG]: 'set-by-hand',
      [CREATED_AT_TAG]: '2026-11-22T10:15:30.000Z',
    });
  });

  it('changes nothing when the same event is replayed', async () => {
    // Prepare
    const { account, audit } = setup({ policy: { defaultTtlDays: 30 } });
    const event = eventFrom('create-image');
    await audit(event);
    const tagsAfterFirst = { ...tagsOf(account) };

    // Act
    const replay = await audit(event);

    // Assess
    expect(replay).toMatchObject({ status: 'already-tagged', resourceId: IMAGE_ID, tagsAdded: {} });
    expect(callsTo(account, 'tagImage')).toHaveLength(1);
    expect(tagsOf(account)).toEqual(tagsAfterFirst);
  });

  it('skips an ImportImage that names only its import task', async () => {
    // Prepare
    const { account, audit } = setup();
    const describeImages = vi.spyOn(account, 'describeImages');

    // Act
    const outcome = await audit(eventFrom('import-image'));

    // Assess
    expect(outcome.status).toBe('skipped');
    expect(outcome.detail).toContain('import-ami-0123456789abcdef0');
    expect(describeImages).not.toHaveBeenCalled();
    expect(account.calls).toEqual([]);
  });

  it('skips an image that no longer exists', async () => {
    // Prepare
    const { account, audit } = setup({ images: [] });

    // Act
    const outcome = await audit(eventFrom('create-image'));

    // Assess
    expect(outcome).toMatchObject({ status: 'skipped', resourceId: IMAGE_ID, findings: [] });
    expect(account.calls).toEqual([]);
  });

  it('reports the required tags the new image lacks', async () => {
    // Prepare
    const { log, audit } = setup({
      images: [ownImage({ tags: { Owner: 'platform' } })],
      policy: { requiredTags: { keys: ['Owner', 'CostCenter'], severity: 'high', expireAfterDays: null } },
    });

    // Act
    const outcome = await audit(eventFrom('create-image'));

    // Assess
    expect(outcome.findings).toEqual([
      { rule: 'required-tags', severity: 'high', reason: 'missing required tags: CostCenter' },
    ]);
    const finding = log.entries.find((entry) => entry.level === 'warn' && entry.message === 'finding');
    expect(attributes(finding)).toMatchObject({ imageId: IMAGE_ID, rule: 'required-tags', verdict: 'flag' });
  });
});

describe('auditImageEvent: image sharing', () => {
  it('alerts once, critical, on a public image, naming the image and the caller', async () => {
    // Prepare
    const { account, notifier, audit } = setup({ sharing: { [IMAGE_ID]: shared({ public: true }) } });

    // Act
    const outcome = await audit(eventFrom('modify-image-attribute-public'));

    // Assess
    expect(outcome).toMatchObject({ status: 'alerted', resourceId: IMAGE_ID, remediation: 'off' });
    expect(outcome.findings.map((finding) => finding.severity)).toEqual(['critical']);
    const message = onlyMessage(notifier);
    expect(headerOf(message)).toMatch(/CRITICAL: Image ami-0abc1234def567890 is public/);
    expect(textOf(message)).toContain(IMAGE_ID);
    expect(textOf(message)).toContain(SSO_ROLE);
    expect(sectionOf(message, 'Fix')).toContain(
      `aws ec2 modify-image-attribute --region eu-west-1 --image-id ${IMAGE_ID}`,
    );
    expect(tagsOf(account)[ALERTED_EXPOSURE_TAG]).toMatch(/^[0-9a-f]{32}$/);
  });

  it('does not alert again when the same event is replayed', async () => {
    // Prepare
    const { notifier, audit } = setup({ sharing: { [IMAGE_ID]: shared({ public: true }) } });
    const event = eventFrom('modify-image-attribute-public');
    await audit(event);

    // Act
    const replay = await audit(event);

    // Assess
    expect(replay.status).toBe('already-alerted');
    expect(notifier.sent).toHaveLength(1);
  });

  it('alerts again when the exposure changes', async () => {
    // Prepare
    const { account, notifier, audit } = setup({ sharing: { [IMAGE_ID]: shared({ public: true }) } });
    await audit(eventFrom('modify-image-attribute-public'));
    const firstDigest = tagsOf(account)[ALERTED_EXPOSURE_TAG];
    account.sharing.set(IMAGE_ID, shared({ public: true, accounts: [OUTSIDER] }));

    // Act
    const outcome = await audit(eventFrom('modify-image-attribute-share-account'));

    // Assess
    expect(outcome.status).toBe('alerted');
    expect(notifier.sent).toHaveLength(2);
    expect(textOf(notifier.sent[1] ?? { text: '', blocks: [] })).toContain(`account ${OUTSIDER}`);
    expect(tagsOf(account)[ALERTED_EXPOSURE_TAG]).not.toBe(firstDigest);
  });

  it('clears the alert state once the image is private again, so a new exposure alerts again', async () => {
    // Prepare
    const { account, notifier, audit } = setup({ sharing: { [IMAGE_ID]: shared({ public: true }) } });
    await audit(eventFrom('modify-image-attribute-public'));
    account.sharing.set(IMAGE_ID, shared());

    // Act
    const cleared = await audit(eventFrom('modify-image-attribute-remove'));
    account.sharing.set(IMAGE_ID, shared({ public: true }));
    const exposedAgain = await audit(eventFrom('modify-image-attribute-public'));

    // Assess
    expect(cleared.status).toBe('not-exposed');
    expect(callsTo(account, 'untagImage')).toEqual([`untagImage ${IMAGE_ID}`]);
    expect(exposedAgain.status).toBe('alerted');
    expect(notifier.sent).toHaveLength(2);
  });

  it('trusts the current permissions over the event: an image already private again raises no alert', async () => {
    // Prepare: the event says Group=all was added; a later call has removed it.
    const { account, notifier, audit } = setup({ sharing: { [IMAGE_ID]: shared() } });

    // Act
    const outcome = await audit(eventFrom('modify-image-attribute-public'));

    // Assess
    expect(outcome).toMatchObject({ status: 'not-exposed', findings: [] });
    expect(notifier.sent).toEqual([]);
    expect(account.calls).toEqual([]);
  });

  it.each([
    { case: 'an allowlisted account', accounts: [OUTSIDER], allowed: [OUTSIDER], alert: false },
    { case: 'the owning account itself', accounts: [ACCOUNT], allowed: [], alert: false },
    { case: 'an account outside the allowlist', accounts: [OUTSIDER], allowed: [PARTNER], alert: true },
  ])('a share with $case alerts: $alert', async ({ accounts, allowed, alert }) => {
    // Prepare
    const { notifier, audit } = setup({
      sharing: { [IMAGE_ID]: shared({ accounts }) },
      sharingPolicy: { allowedAccounts: allowed },
    });

    // Act
    const outcome = await audit(eventFrom('modify-image-attribute-share-account'));

    // Assess
    expect(outcome.status).toBe(alert ? 'alerted' : 'not-exposed');
    expect(notifier.sent).toHaveLength(alert ? 1 : 0);
    expect(outcome.findings.map((finding) => finding.severity)).toEqual(alert ? ['high'] : []);
    if (alert) {
      const message = onlyMessage(notifier);
      expect(headerOf(message)).toMatch(/^:warning: HIGH: Image ami-0abc1234def567890 is shared outside/);
      expect(sectionOf(message, 'Fix')).toContain(`UserId=${OUTSIDER}`);
    }
  });

  it('audits the sharing of an image that EnableImage brings back', async () => {
    // Prepare
    const { notifier, audit } = setup({ images: [ownImage({ public: true })] });

    // Act
    const outcome = await audit(eventFrom('enable-image'));

    // Assess
    expect(outcome).toMatchObject({ status: 'alerted', resourceId: IMAGE_ID });
    expect(textOf(onlyMessage(notifier))).toContain('EnableImage');
  });

  it('raises nothing when EnableImage brings back a private image', async () => {
    // Prepare
    const { notifier, audit } = setup();

    // Act
    const outcome = await audit(eventFrom('enable-image'));

    // Assess
    expect(outcome.status).toBe('not-exposed');
    expect(notifier.sent).toEqual([]);
  });

  it('skips a sharing change on an image that no longer exists', async () => {
    // Prepare
    const { notifier, audit } = setup({ images: [] });

    // Act
    const outcome = await audit(eventFrom('modify-image-attribute-public'));

    // Assess
    expect(outcome).toMatchObject({ status: 'skipped', resourceId: IMAGE_ID });
    expect(notifier.sent).toEqual([]);
  });
});

describe('auditImageEvent: remediation', () => {
  const exposure = shared({ public: true, accounts: [PARTNER, OUTSIDER] });

  it('removes exactly the offending permissions and keeps allowlisted accounts', async () => {
    // Prepare
    const { account, notifier, audit } = setup({
      sharing: { [IMAGE_ID]: exposure },
      images: [ownImage({ public: true })],
      sharingPolicy: { remediate: true, allowedAccounts: [PARTNER] },
    });
    const remove = vi.spyOn(account, 'removeImagePermissions');

    // Act
    const outcome = await audit(eventFrom('modify-image-attribute-public'));

    // Assess
    expect(remove).toHaveBeenCalledTimes(1);
    expect(remove).toHaveBeenCalledWith(IMAGE_ID, shared({ public: true, accounts: [OUTSIDER] }));
    expect(account.sharing.get(IMAGE_ID)).toEqual(shared({ accounts: [PARTNER] }));
    expect(account.images.get(IMAGE_ID)?.public).toBe(false);
    expect(outcome).toMatchObject({ status: 'alerted', remediation: 'removed' });
    const message = onlyMessage(notifier);
    expect(sectionOf(message, 'Remediation')).toContain(`Removed: everyone (public), account ${OUTSIDER}.`);
    // Nothing is left to fix, so no fix command, and no state tag for an exposure that is gone.
    expect(sectionOf(message, 'Fix')).toBeUndefined();
    expect(tagsOf(account)[ALERTED_EXPOSURE_TAG]).toBeUndefined();
  });

  it('raises no second alert when the event is replayed after remediation', async () => {
    // Prepare
    const { notifier, audit } = setup({
      sharing: { [IMAGE_ID]: exposure },
      sharingPolicy: { remediate: true, allowedAccounts: [PARTNER] },
    });
    const event = eventFrom('modify-image-attribute-public');
    await audit(event);

    // Act
    const replay = await audit(event);

    // Assess
    expect(replay.status).toBe('not-exposed');
    expect(notifier.sent).toHaveLength(1);
  });

  it.each([
    {
      case: 'dry run is on',
      remediate: true,
      dryRun: true,
      remediation: 'dry-run',
      text: /Not remediated: dry run is on/,
    },
    {
      case: 'remediate is off',
      remediate: false,
      dryRun: false,
      remediation: 'off',
      text: /Not remediated: `sharing.remediate` is off/,
    },
  ])('changes no permission when $case, and says so', async ({ remediate, dryRun, remediation, text }) => {
    // Prepare
    const { account, notifier, audit } = setup({
      sharing: { [IMAGE_ID]: exposure },
      sharingPolicy: { remediate, allowedAccounts: [PARTNER] },
      dryRun,
    });

    // Act
    const outcome = await audit(eventFrom('modify-image-attribute-public'));

    // Assess
    expect(outcome).toMatchObject({ status: 'alerted', remediation });
    expect(callsTo(account, 'removeImagePermissions')).toEqual([]);
    expect(account.sharing.get(IMAGE_ID)).toEqual(exposure);
    const message = onlyMessage(notifier);
    expect(sectionOf(message, 'Remediation')).toMatch(text);
    expect(sectionOf(message, 'Fix')).toContain(`Remove=[{Group=all},{UserId=${OUTSIDER}}]`);
  });

  it('still sends the alert, saying FAILED, when remediation fails', async () => {
    // Prepare
    const { account, notifier, audit } = setup({
      sharing: { [IMAGE_ID]: shared({ public: true }) },
      sharingPolicy: { remediate: true },
    });
    account.failNext('removeImagePermissions', IMAGE_ID, 'UnauthorizedOperation');

    // Act
    const outcome = await audit(eventFrom('modify-image-attribute-public'));

    // Assess
    expect(outcome).toMatchObject({ status: 'alerted', remediation: 'failed' });
    expect(account.sharing.get(IMAGE_ID)?.public).toBe(true);
    const message = onlyMessage(notifier);
    expect(sectionOf(message, 'Remediation')).toContain('Remediation FAILED (UnauthorizedOperation)');
    expect(sectionOf(message, 'Fix')).toContain('Group=all');
  });

  it('retries a failed remediation on the next event without alerting twice, and reports the fix', async () => {
    // Prepare: the first attempt fails and is alerted.
    const { account, notifier, audit } = setup({
      sharing: { [IMAGE_ID]: shared({ public: true }) },
      sharingPolicy: { remediate: true },
    });
    account.failNext('removeImagePermissions', IMAGE_ID, 'RequestLimitExceeded');
    account.failNext('removeImagePermissions', IMAGE_ID, 'RequestLimitExceeded');
    await audit(eventFrom('modify-image-attribute-public'));

    // Act 1: the same exposure, still failing.
    const failedAgain = await audit(eventFrom('modify-image-attribute-public'));

    // Assess 1: tried again, but the unchanged failure is not alerted a second time.
    expect(failedAgain).toMatchObject({ status: 'already-alerted', remediation: 'failed' });
    expect(callsTo(account, 'removeImagePermissions')).toHaveLength(2);
    expect(notifier.sent).toHaveLength(1);

    // Act 2: the next event finds removal working.
    const fixed = await audit(eventFrom('modify-image-attribute-public'));

    // Assess 2: removed, and that news is alerted; nothing is left to deduplicate.
    expect(fixed).toMatchObject({ status: 'alerted', remediation: 'removed' });
    expect(account.sharing.get(IMAGE_ID)?.public).toBe(false);
    expect(notifier.sent).toHaveLength(2);
    expect(tagsOf(account)).not.toHaveProperty(ALERTED_EXPOSURE_TAG);
  });

  it('remediates an exposure alerted before remediate was switched on', async () => {
    // Prepare: alerted with remediation off.
    const exposure = { [IMAGE_ID]: shared({ public: true }) };
    const before = setup({ sharing: exposure });
    await before.audit(eventFrom('modify-image-attribute-public'));
    const after = setup({
      images: [{ ...ownImage(), tags: tagsOf(before.account) }],
      sharing: exposure,
      sharingPolicy: { remediate: true },
    });

    // Act
    const outcome = await after.audit(eventFrom('modify-image-attribute-public'));

    // Assess
    expect(outcome).toMatchObject({ status: 'alerted', remediation: 'removed' });
    expect(after.account.sharing.get(IMAGE_ID)?.public).toBe(false);
  });
});

describe('auditImageEvent: Slack not delivered', () => {
  it('logs the alert as an error and keeps no alert state, so the next event alerts again', async () => {
    // Prepare
    const { account, notifier, log, audit } = setup({
      sharing: { [IMAGE_ID]: shared({ public: true }) },
      delivery: { delivered: false, attempts: 4, status: 503, error: 'HTTP 503' },
    });
    const event = eventFrom('modify-image-attribute-public');

    // Act
    const outcome = await audit(event);
    notifier.result = { delivered: true, attempts: 1, status: 200 };
    const retry = await audit(event);

    // Assess
    expect(outcome).toMatchObject({
      status: 'alert-not-delivered',
      resourceId: IMAGE_ID,
      detail: 'HTTP 503',
    });
    const errors = log.entries.filter((entry) => entry.level === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]?.message).toBe('alert not delivered');
    expect(attributes(errors[0])).toMatchObject({
      alert: { severity: 'critical', resource: { kind: 'image', id: IMAGE_ID }, caller: { arn: SSO_ROLE } },
      delivery: { delivered: false, error: 'HTTP 503' },
    });
    expect(retry.status).toBe('alerted');
    expect(notifier.sent).toHaveLength(2);
    expect(tagsOf(account)[ALERTED_EXPOSURE_TAG]).toBeDefined();
  });

  it('writes no state tag while the alert is undelivered', async () => {
    // Prepare
    const { account, audit } = setup({
      sharing: { [IMAGE_ID]: shared({ public: true }) },
      delivery: { delivered: false, attempts: 0, error: 'no Slack webhook configured' },
    });

    // Act
    await audit(eventFrom('modify-image-attribute-public'));

    // Assess
    expect(tagsOf(account)[ALERTED_EXPOSURE_TAG]).toBeUndefined();
    expect(account.calls).toEqual([]);
  });
});

describe('auditImageEvent: Slack delivery unconfirmed', () => {
  const TIMED_OUT: DeliveryResult = {
    delivered: false,
    maybeDelivered: true,
    attempts: 1,
    error: 'timed out after 5000 ms',
  };

  it('records an alert whose POST timed out as alerted, logs it whole, and a replay posts nothing more', async () => {
    // Prepare
    const { account, notifier, log, audit } = setup({
      sharing: { [IMAGE_ID]: shared({ public: true }) },
      delivery: TIMED_OUT,
    });
    const event = eventFrom('modify-image-attribute-public');

    // Act
    const outcome = await audit(event);
    notifier.result = { delivered: true, attempts: 1, status: 200 };
    const replay = await audit(event);

    // Assess
    expect(outcome).toMatchObject({
      status: 'alert-unconfirmed',
      resourceId: IMAGE_ID,
      detail: expect.stringContaining('timed out after 5000 ms'),
    });
    expect(tagsOf(account)[ALERTED_EXPOSURE_TAG]).toMatch(/^[0-9a-f]{32}$/);
    const errors = log.entries.filter((entry) => entry.level === 'error');
    expect(errors.map((entry) => entry.message)).toEqual(['alert delivery unconfirmed']);
    expect(attributes(errors[0])).toMatchObject({
      alert: { severity: 'critical', resource: { kind: 'image', id: IMAGE_ID }, caller: { arn: SSO_ROLE } },
      delivery: { delivered: false, maybeDelivered: true },
    });
    expect(replay.status).toBe('already-alerted');
    expect(notifier.sent).toHaveLength(1);
  });

  it('leaves no state tag behind an unconfirmed alert whose remediation removed the exposure', async () => {
    // Prepare
    const { account, notifier, audit } = setup({
      sharing: { [IMAGE_ID]: shared({ public: true }) },
      sharingPolicy: { remediate: true },
      delivery: TIMED_OUT,
    });

    // Act
    const outcome = await audit(eventFrom('modify-image-attribute-public'));

    // Assess
    expect(outcome).toMatchObject({ status: 'alert-unconfirmed', remediation: 'removed' });
    expect(account.sharing.get(IMAGE_ID)?.public).toBe(false);
    expect(tagsOf(account)[ALERTED_EXPOSURE_TAG]).toBeUndefined();
    expect(notifier.sent).toHaveLength(1);
  });

  it('reports an unconfirmed block-public-access alert and logs it whole', async () => {
    // Prepare
    const { log, audit } = setup({ delivery: TIMED_OUT });

    // Act
    const outcome = await audit(eventFrom('disable-image-block-public-access'));

    // Assess
    expect(outcome.status).toBe('alert-unconfirmed');
    const error = log.entries.find((entry) => entry.level === 'error');
    expect(error?.message).toBe('alert delivery unconfirmed');
    expect(attributes(error)).toMatchObject({ alert: { severity: 'high', resource: { kind: 'account' } } });
  });
});

describe('auditImageEvent: snapshot sharing', () => {
  it('alerts critical on a public snapshot and remediates it', async () => {
    // Prepare
    const { account, notifier, audit } = setup({
      snapshots: [SNAPSHOT],
      sharing: { [SNAPSHOT_ID]: shared({ public: true }) },
      sharingPolicy: { remediate: true },
    });

    // Act
    const outcome = await audit(eventFrom('modify-snapshot-attribute-public'));

    // Assess
    expect(outcome).toMatchObject({ status: 'alerted', resourceId: SNAPSHOT_ID, remediation: 'removed' });
    expect(callsTo(account, 'removeSnapshotPermissions')).toEqual([
      `removeSnapshotPermissions ${SNAPSHOT_ID}`,
    ]);
    expect(account.sharing.get(SNAPSHOT_ID)?.public).toBe(false);
    const message = onlyMessage(notifier);
    expect(headerOf(message)).toMatch(/CRITICAL: Snapshot snap-0abc1234def567890 is public/);
    expect(textOf(message)).toContain('web-root');
    expect(textOf(message)).toContain('arn:aws:iam::111122223333:user/ci-release');
  });

  it('tags the snapshot with the alert state and offers the fix command when not remediating', async () => {
    // Prepare
    const { account, notifier, audit } = setup({
      snapshots: [SNAPSHOT],
      sharing: { [SNAPSHOT_ID]: shared({ public: true }) },
    });
    const event = eventFrom('modify-snapshot-attribute-public');

    // Act
    await audit(event);
    const replay = await audit(event);

    // Assess
    expect(callsTo(account, 'tagResource')).toEqual([`tagResource ${SNAPSHOT_ID}`]);
    expect(account.snapshots.get(SNAPSHOT_ID)?.tags[ALERTED_EXPOSURE_TAG]).toBeDefined();
    expect(sectionOf(onlyMessage(notifier), 'Fix')).toContain(
      `aws ec2 modify-snapshot-attribute --region eu-west-1 --snapshot-id ${SNAPSHOT_ID}`,
    );
    expect(replay.status).toBe('already-alerted');
  });

  it('skips a snapshot that no longer exists', async () => {
    // Prepare
    const { notifier, audit } = setup();

    // Act
    const outcome = await audit(eventFrom('modify-snapshot-attribute-public'));

    // Assess
    expect(outcome).toMatchObject({ status: 'skipped', resourceId: SNAPSHOT_ID });
    expect(notifier.sent).toEqual([]);
  });
});

describe('auditImageEvent: block public access turned off', () => {
  it.each([
    {
      fixture: 'disable-image-block-public-access',
      command: 'aws ec2 enable-image-block-public-access --region eu-west-1',
    },
    {
      fixture: 'disable-snapshot-block-public-access',
      command: 'aws ec2 enable-snapshot-block-public-access --region eu-west-1',
    },
  ])('$fixture raises a high alert with the command that turns it back on', async ({ fixture, command }) => {
    // Prepare
    const { account, notifier, audit } = setup();

    // Act
    const outcome = await audit(eventFrom(fixture));

    // Assess
    expect(outcome).toMatchObject({ status: 'alerted', resourceId: ACCOUNT });
    expect(outcome.findings).toEqual([
      { rule: 'block-public-access', severity: 'high', reason: expect.stringContaining('eu-west-1') },
    ]);
    const message = onlyMessage(notifier);
    expect(headerOf(message)).toMatch(/^:warning: HIGH: Block public access/);
    expect(sectionOf(message, 'Fix')).toContain(command);
    expect(account.calls).toEqual([]);
  });

  it('logs the alert when Slack does not take it', async () => {
    // Prepare
    const { log, audit } = setup({
      delivery: { delivered: false, attempts: 4, status: 500, error: 'HTTP 500' },
    });

    // Act
    const outcome = await audit(eventFrom('disable-image-block-public-access'));

    // Assess
    expect(outcome.status).toBe('alert-not-delivered');
    const error = log.entries.find((entry) => entry.level === 'error');
    expect(attributes(error)).toMatchObject({ alert: { severity: 'high', resource: { kind: 'account' } } });
  });
});
