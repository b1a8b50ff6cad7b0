import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AwsClients } from '../../src/adapters/clients.ts';
import { createEventTargets, type EventTargets } from '../../src/adapters/event-targets.ts';
import { defaultPolicy } from '../../src/config/policy.ts';
import { ALERTED_EXPOSURE_TAG } from '../../src/core/image-audit.ts';
import { parseTargetSpec, type TargetSource } from '../../src/core/targets.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import { NOT_SHARED } from '../../src/model.ts';
import type { DeliveryResult, Notifier, SlackMessage } from '../../src/notify/slack.ts';
import { image, recordingLog } from './factories.ts';

/**
 * The real-time audit across accounts: an event from a target account is audited there, through
 * its member role, and its alert names the account; an event from anywhere else is dropped.
 */

const HUB = '111122223333';
const MEMBER = '444455556666';
const STRANGER = '777788889999';

let makeImageEventHandler: typeof import('../../src/handlers/on-image-event.ts').makeImageEventHandler;

beforeAll(async () => {
  vi.stubEnv('AMI_JANITOR_POLICY_FILE', resolve(import.meta.dirname, '../../policy.yml'));
  vi.stubEnv('AWS_REGION', 'eu-west-1');
  ({ makeImageEventHandler } = await import('../../src/handlers/on-image-event.ts'));
});

afterAll(() => {
  vi.unstubAllEnvs();
});

const source = (names: Record<string, string>): TargetSource => ({
  accountId: async () => HUB,
  organizationAccounts: vi.fn(async () =>
    Object.entries(names).map(([accountId, name]) => ({ accountId, name })),
  ),
  enabledRegions: async () => ['eu-west-1', 'us-east-1'],
});

const fakeClients = (target: { accountId: string }) =>
  ({ account: target.accountId }) as unknown as AwsClients;

describe('createEventTargets', () => {
  it.each([
    {
      case: 'a listed member in a listed Region',
      target: { accountId: MEMBER, region: 'eu-west-1' },
      ok: true,
    },
    { case: 'the hub itself, listed', target: { accountId: HUB, region: 'us-east-1' }, ok: true },
    { case: 'an account not listed', target: { accountId: STRANGER, region: 'eu-west-1' }, ok: false },
    { case: 'a Region not listed', target: { accountId: MEMBER, region: 'ap-south-1' }, ok: false },
    { case: 'an excluded account', target: { accountId: '123412341234', region: 'eu-west-1' }, ok: false },
  ])('$case is a target: $ok', async ({ target, ok }) => {
    const spec = parseTargetSpec({
      accounts: `${MEMBER},${HUB},123412341234`,
      excludeAccounts: '123412341234',
      regions: 'eu-west-1,us-east-1',
      homeRegion: 'eu-west-1',
    });
    const clientsFor = vi.fn(async (t: { accountId: string }) => fakeClients(t));
    const targets = createEventTargets(spec, {
      callerAccountId: async () => HUB,
      source: source({}),
      clientsFor,
    });

    const reached = await targets.portsFor(target, undefined);

    expect('ports' in reached).toBe(ok);
    expect(clientsFor).toHaveBeenCalledTimes(ok ? 1 : 0);
    if (!ok) expect('notATarget' in reached && reached.notATarget).toMatch(/not one of|excluded/);
  });

  it('names an organisation member, and looks the organisation up once for a burst of events', async () => {
    const spec = parseTargetSpec({ accounts: 'organization', regions: 'all', homeRegion: 'eu-west-1' });
    const members = source({ [MEMBER]: 'payments-prod', [HUB]: 'tooling' });
    const targets = createEventTargets(spec, {
      callerAccountId: async () => HUB,
      source: members,
      clientsFor: async (t) => fakeClients(t),
    });

    const first = await targets.portsFor({ accountId: MEMBER, region: 'sa-east-1' }, undefined);
    const second = await targets.portsFor({ accountId: STRANGER, region: 'sa-east-1' }, undefined);

    expect(first).toMatchObject({ accountName: 'payments-prod' });
    expect(second).toMatchObject({ notATarget: expect.stringMatching(/777788889999 is not one of/) });
    expect(members.organizationAccounts).toHaveBeenCalledTimes(1);
  });
});

function publicEvent(account: string, region = 'eu-west-1') {
  const event = JSON.parse(
    readFileSync(resolve(import.meta.dirname, '../../events/modify-image-attribute-public.json'), 'utf8'),
  );
  event.account = account;
  event.region = region;
  event.detail.recipientAccountId = account;
  event.detail.awsRegion = region;
  return event;
}

function recordingNotifier(): Notifier & { sent: SlackMessage[] } {
  const sent: SlackMessage[] = [];
  return {
    sent,
    send: async (message): Promise<DeliveryResult> => {
      sent.push(message);
      return { delivered: true, attempts: 1, status: 200 };
    },
  };
}

describe('onImageEvent across accounts', () => {
  function setup(targets: EventTargets) {
    const notifier = recordingNotifier();
    const log = recordingLog();
    const hubPorts = vi.fn(() => {
      throw new Error('the hub account ports must not be used for a member event');
    });
    const handler = makeImageEventHandler({
      ports: hubPorts,
      notifier,
      policy: { ...defaultPolicy(), dryRun: false },
      dryRun: false,
      region: 'eu-west-1',
      targets,
      log,
    });
    return { handler, notifier, log, hubPorts };
  }
  const context = { getRemainingTimeInMillis: () => 55_000 };

  it("audits a member's public image in the member account and names the account in the alert", async () => {
    // Prepare: the member's own account, as its member role sees it.
    const member = new MemoryAccount({
      accountId: MEMBER,
      images: [image({ imageId: 'ami-0abc1234def567890', ownerId: MEMBER, public: true })],
    });
    const portsFor = vi.fn(async () => ({
      ports: { images: member, sharing: member },
      accountName: 'payments-prod',
    }));
    const { handler, notifier, hubPorts } = setup({ portsFor });

    // Act
    const result = await handler(publicEvent(MEMBER), context);

    // Assess
    expect(result).toMatchObject({ status: 'alerted', resourceId: 'ami-0abc1234def567890' });
    expect(portsFor).toHaveBeenCalledWith({ accountId: MEMBER, region: 'eu-west-1' }, undefined);
    expect(hubPorts).not.toHaveBeenCalled();
    expect(JSON.stringify(notifier.sent)).toContain(`${MEMBER} (payments-prod)`);
    expect(member.calls).toEqual(['tagImage ami-0abc1234def567890']);
    expect(member.images.get('ami-0abc1234def567890')?.tags[ALERTED_EXPOSURE_TAG]).toBeDefined();
    expect(member.sharing.get('ami-0abc1234def567890') ?? NOT_SHARED).toMatchObject({ public: true });
  });

  it('drops an event from an account that is not a target, saying why, and alerts nobody', async () => {
    const { handler, notifier, log } = setup({
      portsFor: async () => ({ notATarget: `account ${STRANGER} is not one of the deployment's targets` }),
    });

    const result = await handler(publicEvent(STRANGER), context);

    expect(result).toEqual({
      status: 'ignored',
      reason: `account ${STRANGER} is not one of the deployment's targets`,
    });
    expect(notifier.sent).toEqual([]);
    expect(log.entries.some((entry) => entry.message === 'event ignored')).toBe(true);
  });

  it('drops an event whose envelope and CloudTrail record name different accounts', async () => {
    const portsFor = vi.fn();
    const { handler } = setup({ portsFor });
    const event = publicEvent(MEMBER);
    event.detail.recipientAccountId = STRANGER;

    const result = await handler(event, context);

    expect(result).toMatchObject({ status: 'ignored', reason: expect.stringMatching(/disagree/) });
    expect(portsFor).not.toHaveBeenCalled();
  });
});
