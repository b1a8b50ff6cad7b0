import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  HANDLED_EVENT_NAMES,
  type ImageEvent,
  type ParsedImageEvent,
  parseImageEvent,
} from '../../src/events/image-event.ts';
import type { SharePermissions } from '../../src/model.ts';

const EVENTS_DIR = resolve(import.meta.dirname, '../../events');
const ACCOUNT = '111122223333';
const IMAGE_ID = 'ami-0abc1234def567890';
const SNAPSHOT_ID = 'snap-0abc1234def567890';
const SSO_ROLE =
  'arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_PlatformEngineer_0a1b2c3d4e5f6a7b';

// biome-ignore lint/suspicious/noExplicitAny: fixtures are free-form JSON that tests reshape at will.
type Json = any;

/** A fresh copy of a fixture, so that one test's edits never leak into another. */
function fixture(name: string): Json {
  return structuredClone(JSON.parse(readFileSync(resolve(EVENTS_DIR, `${name}.json`), 'utf8')));
}

function permissions(overrides: Partial<SharePermissions> = {}): SharePermissions {
  return { public: false, accounts: [], organizations: [], organizationalUnits: [], ...overrides };
}

function expectEvent(result: ParsedImageEvent): ImageEvent {
  if (result.outcome !== 'event') throw new Error(`expected an event, got ${JSON.stringify(result)}`);
  return result.event;
}

function expectMalformed(result: ParsedImageEvent): string {
  if (result.outcome !== 'malformed') throw new Error(`expected malformed, got ${JSON.stringify(result)}`);
  return result.reason;
}

describe('parseImageEvent: the fixtures in events/', () => {
  it('covers every handled event name, so `serverless invoke local` can replay each one', () => {
    // Prepare
    const names = new Set(
      readdirSync(EVENTS_DIR)
        .filter((file) => file.endsWith('.json'))
        .map((file) => JSON.parse(readFileSync(resolve(EVENTS_DIR, file), 'utf8'))?.detail?.eventName),
    );

    // Act
    const missing = HANDLED_EVENT_NAMES.filter((name) => !names.has(name));

    // Assess
    expect(missing).toEqual([]);
  });

  it.each<[string, Partial<ImageEvent>]>([
    ['create-image', { kind: 'new-image', eventName: 'CreateImage', imageId: IMAGE_ID }],
    [
      'copy-image',
      {
        kind: 'new-image',
        eventName: 'CopyImage',
        imageId: 'ami-0123abcd4567ef890',
        sourceImageId: 'ami-0fedcba9876543210',
      },
    ],
    ['register-image', { kind: 'new-image', eventName: 'RegisterImage', imageId: 'ami-0a1b2c3d4e5f67890' }],
    [
      'import-image',
      {
        kind: 'new-image',
        eventName: 'ImportImage',
        imageId: undefined,
        importTaskId: 'import-ami-0123456789abcdef0',
      },
    ],
    [
      'modify-image-attribute-public',
      {
        kind: 'image-sharing',
        imageId: IMAGE_ID,
        added: permissions({ public: true }),
        removed: permissions(),
      },
    ],
    [
      'modify-image-attribute-share-account',
      {
        kind: 'image-sharing',
        imageId: IMAGE_ID,
        added: permissions({ accounts: ['444455556666'] }),
        removed: permissions(),
      },
    ],
    [
      'modify-image-attribute-remove',
      {
        kind: 'image-sharing',
        imageId: IMAGE_ID,
        added: permissions(),
        removed: permissions({ public: true }),
      },
    ],
    [
      'modify-snapshot-attribute-public',
      {
        kind: 'snapshot-sharing',
        snapshotId: SNAPSHOT_ID,
        added: permissions({ public: true }),
        removed: permissions(),
      },
    ],
    ['enable-image', { kind: 'image-enabled', eventName: 'EnableImage', imageId: IMAGE_ID }],
    ['disable-image-block-public-access', { kind: 'block-public-access-disabled', resource: 'image' }],
    ['disable-snapshot-block-public-access', { kind: 'block-public-access-disabled', resource: 'snapshot' }],
  ])('%s parses to its audit', (name, expected) => {
    // Prepare
    const raw = fixture(name);

    // Act
    const event = expectEvent(parseImageEvent(raw));

    // Assess
    expect(event).toMatchObject(expected);
    expect(event).toMatchObject({
      eventId: raw.detail.eventID,
      eventName: raw.detail.eventName,
      eventTime: new Date(raw.detail.eventTime),
      region: 'eu-west-1',
      accountId: ACCOUNT,
    });
  });

  it('import-image names the task, not an image, because the AMI exists only once the task completes', () => {
    // Act
    const event = expectEvent(parseImageEvent(fixture('import-image')));

    // Assess
    expect(event).toEqual(
      expect.objectContaining({ kind: 'new-image', importTaskId: 'import-ami-0123456789abcdef0' }),
    );
    expect(event.kind === 'new-image' && event.imageId).toBe(undefined);
  });

  it('failed-call is reported as a failed call, with its code and message, and nothing to audit', () => {
    // Prepare
    const raw = fixture('failed-call');

    // Act
    const result = parseImageEvent(raw);

    // Assess
    expect(result).toEqual({
      outcome: 'failed-call',
      eventName: 'ModifyImageAttribute',
      errorCode: 'Client.UnauthorizedOperation',
      errorMessage: raw.detail.errorMessage,
      eventId: raw.detail.eventID,
    });
  });

  it('malformed is dropped with a reason that names the missing field', () => {
    // Act
    const reason = expectMalformed(parseImageEvent(fixture('malformed')));

    // Assess
    expect(reason).toBe('detail.eventName: Required');
  });

  it('scheduled-sweep (another handler’s event) is malformed here, naming source and detail-type', () => {
    // Act
    const reason = expectMalformed(parseImageEvent(fixture('scheduled-sweep')));

    // Assess
    expect(reason).toContain('source:');
    expect(reason).toContain('detail-type:');
  });
});

describe('parseImageEvent: rejects', () => {
  const detailEdit =
    (edit: (detail: Json) => void) =>
    (raw: Json): Json => {
      edit(raw.detail);
      return raw;
    };

  it.each<[string, unknown, string]>([
    ['null', null, 'expected an EventBridge event object, got null'],
    ['undefined', undefined, 'expected an EventBridge event object, got undefined'],
    ['a string', 'string', 'expected an EventBridge event object, got a string'],
    ['a number', 42, 'expected an EventBridge event object, got a number'],
    ['an array', [], 'expected an EventBridge event object, got an array'],
  ])('%s is malformed', (_label, raw, reason) => {
    // Act
    const result = parseImageEvent(raw);

    // Assess
    expect(result).toEqual({ outcome: 'malformed', reason });
  });

  it('an empty object is malformed, naming the envelope fields it lacks', () => {
    // Act
    const reason = expectMalformed(parseImageEvent({}));

    // Assess
    expect(reason).toMatch(/^version: Required; id: Required; .* \(and \d+ more\)$/);
  });

  it.each<[string, string, (raw: Json) => Json, string]>([
    [
      'wrong detail-type',
      'create-image',
      (raw) => ({ ...raw, 'detail-type': 'EC2 AMI State Change' }),
      'detail-type: Invalid input: expected "AWS API Call via CloudTrail"',
    ],
    [
      'wrong source',
      'create-image',
      (raw) => ({ ...raw, source: 'aws.s3' }),
      'source: Invalid input: expected "aws.ec2"',
    ],
    ['detail not an object', 'create-image', (raw) => ({ ...raw, detail: 'CreateImage' }), 'detail:'],
    [
      'wrong eventSource',
      'create-image',
      detailEdit((detail) => {
        detail.eventSource = 's3.amazonaws.com';
      }),
      'detail.eventSource: Invalid input: expected "ec2.amazonaws.com"',
    ],
    [
      'missing detail.eventName',
      'modify-image-attribute-public',
      detailEdit((detail) => {
        delete detail.eventName;
      }),
      'detail.eventName: Required',
    ],
    [
      'imageId not a string',
      'modify-image-attribute-public',
      detailEdit((detail) => {
        detail.requestParameters.imageId = 1234;
      }),
      'detail.requestParameters.imageId: Invalid input: expected string, received number',
    ],
    [
      'imageId not an AMI id',
      'modify-image-attribute-public',
      detailEdit((detail) => {
        detail.requestParameters.imageId = 'snap-0abc1234def567890';
      }),
      'detail.requestParameters.imageId: expected an AMI id (ami-…)',
    ],
    [
      'missing requestParameters on a sharing change',
      'modify-image-attribute-public',
      detailEdit((detail) => {
        delete detail.requestParameters;
      }),
      'detail.requestParameters: Required',
    ],
    [
      'missing snapshotId',
      'modify-snapshot-attribute-public',
      detailEdit((detail) => {
        delete detail.requestParameters.snapshotId;
      }),
      'detail.requestParameters.snapshotId: Required',
    ],
    [
      'launch permission declared but absent',
      'modify-image-attribute-public',
      detailEdit((detail) => {
        delete detail.requestParameters.launchPermission;
      }),
      'detail.requestParameters.launchPermission: Required',
    ],
    [
      'a permission item of the wrong type',
      'modify-image-attribute-share-account',
      detailEdit((detail) => {
        detail.requestParameters.launchPermission.add.items[0].userId = 444455556666;
      }),
      'detail.requestParameters.launchPermission.add.items[0].userId: Invalid input: expected string, received number',
    ],
    [
      'null responseElements on a new image',
      'create-image',
      detailEdit((detail) => {
        detail.responseElements = null;
      }),
      'detail.responseElements: Required',
    ],
    [
      'responseElements without the image id',
      'copy-image',
      detailEdit((detail) => {
        delete detail.responseElements.imageId;
      }),
      'detail.responseElements.imageId: Required',
    ],
    [
      'an import that names neither task nor image',
      'import-image',
      detailEdit((detail) => {
        delete detail.responseElements.importTaskId;
      }),
      'detail.responseElements: expected importTaskId or imageId',
    ],
    [
      'an eventTime that is not a time',
      'create-image',
      detailEdit((detail) => {
        detail.eventTime = 'yesterday';
      }),
      'detail.eventTime:',
    ],
    [
      'missing userIdentity',
      'create-image',
      detailEdit((detail) => {
        delete detail.userIdentity;
      }),
      'detail.userIdentity: Required',
    ],
    [
      'a recipient account that is not an account id',
      'create-image',
      detailEdit((detail) => {
        detail.recipientAccountId = 'me';
      }),
      'detail.recipientAccountId: an AWS account id is 12 digits',
    ],
    [
      'an operationType that is neither add nor remove',
      'modify-image-attribute-public',
      detailEdit((detail) => {
        delete detail.requestParameters.launchPermission;
        detail.requestParameters.operationType = 'replace';
      }),
      'detail.requestParameters.operationType: expected add or remove',
    ],
  ])('%s is malformed', (_label, name, edit, reason) => {
    // Prepare
    const raw = edit(fixture(name));

    // Act
    const result = parseImageEvent(raw);

    // Assess
    expect(expectMalformed(result)).toContain(reason);
  });

  it.each<[string, string, (raw: Json) => Json, string]>([
    [
      'an unhandled eventName',
      'create-image',
      detailEdit((detail) => {
        detail.eventName = 'DescribeImages';
      }),
      'eventName DescribeImages is not one this handler audits',
    ],
    [
      'a failed call of an unhandled eventName',
      'failed-call',
      detailEdit((detail) => {
        detail.eventName = 'DeregisterImage';
      }),
      'eventName DeregisterImage is not one this handler audits',
    ],
    [
      'a description change',
      'modify-image-attribute-public',
      detailEdit((detail) => {
        detail.requestParameters = {
          imageId: IMAGE_ID,
          description: { value: 'web' },
          attributeType: 'description',
        };
      }),
      'image attribute description changed, not launchPermission: sharing is unaffected',
    ],
    [
      'a description change that names no attribute',
      'modify-image-attribute-public',
      detailEdit((detail) => {
        detail.requestParameters = { imageId: IMAGE_ID, description: { value: 'web' } };
      }),
      'the request changes no launchPermission',
    ],
    [
      'a snapshot product code change',
      'modify-snapshot-attribute-public',
      detailEdit((detail) => {
        detail.requestParameters = { snapshotId: SNAPSHOT_ID, attributeType: 'PRODUCT_CODES' };
      }),
      'snapshot attribute PRODUCT_CODES changed, not createVolumePermission: sharing is unaffected',
    ],
  ])('%s is ignored', (_label, name, edit, reason) => {
    // Prepare
    const raw = edit(fixture(name));

    // Act
    const result = parseImageEvent(raw);

    // Assess
    expect(result).toEqual({ outcome: 'ignored', reason });
  });

  it.each(['CreateImage', 'ModifySnapshotAttribute', 'DisableImageBlockPublicAccess'])(
    'errorCode on %s makes a failed call even without the fields a success carries',
    (eventName) => {
      // Prepare: a denied call has no responseElements, and requestParameters may be cut short.
      const raw = fixture('failed-call');
      raw.detail.eventName = eventName;
      raw.detail.errorCode = 'Client.DryRunOperation';
      delete raw.detail.errorMessage;
      delete raw.detail.eventID;
      raw.detail.requestParameters = null;

      // Act
      const result = parseImageEvent(raw);

      // Assess
      expect(result).toEqual({ outcome: 'failed-call', eventName, errorCode: 'Client.DryRunOperation' });
    },
  );
});

describe('parseImageEvent: the permission shapes CloudTrail writes', () => {
  function sharing(name: string, requestParameters: Json) {
    const raw = fixture(name);
    raw.detail.requestParameters = requestParameters;
    const event = expectEvent(parseImageEvent(raw));
    if (event.kind !== 'image-sharing' && event.kind !== 'snapshot-sharing') {
      throw new Error(`expected a sharing change, got ${event.kind}`);
    }
    return { added: event.added, removed: event.removed };
  }

  it('reads accounts, organizations and OUs from launchPermission items, without duplicates', () => {
    // Prepare
    const org = 'arn:aws:organizations::999988887777:organization/o-abc123def4';
    const ou = 'arn:aws:organizations::999988887777:ou/o-abc123def4/ou-ab12-cd34ef56';
    const request = {
      imageId: IMAGE_ID,
      attributeType: 'launchPermission',
      launchPermission: {
        add: {
          items: [
            { userId: '444455556666' },
            { userId: '444455556666' },
            { userId: '777788889999' },
            { organizationArn: org },
            { organizationalUnitArn: ou },
          ],
        },
        remove: { items: [{ userId: '123412341234' }] },
      },
    };

    // Act
    const result = sharing('modify-image-attribute-public', request);

    // Assess
    expect(result).toEqual({
      added: permissions({
        accounts: ['444455556666', '777788889999'],
        organizations: [org],
        organizationalUnits: [ou],
      }),
      removed: permissions({ accounts: ['123412341234'] }),
    });
  });

  it('only the group "all" makes an image public', () => {
    // Act
    const result = sharing('modify-image-attribute-public', {
      imageId: IMAGE_ID,
      attributeType: 'launchPermission',
      launchPermission: { add: { items: [{ group: 'not-all' }] } },
    });

    // Assess
    expect(result.added.public).toBe(false);
  });

  it.each<[string, Json]>([
    ['a bare array instead of { items }', { add: [{ group: 'all' }] }],
    ['"groups" as Stratus Red Team documents it', { add: { items: [{ groups: 'all' }] } }],
    ['groupName', { add: { items: [{ groupName: 'all' }] } }],
  ])('accepts %s', (_label, launchPermission) => {
    // Act
    const result = sharing('modify-image-attribute-public', {
      imageId: IMAGE_ID,
      attributeType: 'launchPermission',
      launchPermission,
    });

    // Assess
    expect(result.added).toEqual(permissions({ public: true }));
  });

  it.each([
    ['CREATE_VOLUME_PERMISSION', { items: [{ groups: 'all' }] }],
    ['createVolumePermission', [{ group: 'all' }]],
  ])('reads a snapshot made public with attributeType %s', (attributeType, add) => {
    // Act
    const result = sharing('modify-snapshot-attribute-public', {
      snapshotId: SNAPSHOT_ID,
      attributeType,
      createVolumePermission: { add },
    });

    // Assess
    expect(result.added).toEqual(permissions({ public: true }));
  });

  it.each<[string, Json, Partial<SharePermissions>]>([
    [
      'OperationType=add with UserId.N',
      { operationType: 'add', userId: { items: ['444455556666'] } },
      { accounts: ['444455556666'] },
    ],
    ['OperationType=add with Group.N=all', { operationType: 'add', userGroup: ['all'] }, { public: true }],
    ['OperationType=add with groupNames', { operationType: 'add', groupNames: 'all' }, { public: true }],
  ])('accepts the older request form: %s', (_label, fields, expected) => {
    // Act
    const result = sharing('modify-image-attribute-public', {
      imageId: IMAGE_ID,
      attribute: 'launchPermission',
      ...fields,
    });

    // Assess
    expect(result).toEqual({ added: permissions(expected), removed: permissions() });
  });

  it('reads a removal in the older request form as removed, not added', () => {
    // Act
    const result = sharing('modify-snapshot-attribute-public', {
      snapshotId: SNAPSHOT_ID,
      operationType: 'remove',
      userIds: ['444455556666'],
    });

    // Assess
    expect(result).toEqual({ added: permissions(), removed: permissions({ accounts: ['444455556666'] }) });
  });

  it.each<[string, Json]>([
    ['the flat form', { imageId: IMAGE_ID }],
    ['the wrapped form', { EnableImageRequest: { ImageId: IMAGE_ID } }],
    [
      'the wrapped form with a tagged scalar',
      { EnableImageRequest: { ImageId: { content: IMAGE_ID, tag: 1 } } },
    ],
  ])('reads EnableImage in %s', (_label, requestParameters) => {
    // Prepare
    const raw = fixture('enable-image');
    raw.detail.requestParameters = requestParameters;

    // Act
    const event = expectEvent(parseImageEvent(raw));

    // Assess
    expect(event).toMatchObject({ kind: 'image-enabled', imageId: IMAGE_ID });
  });

  it('reads a new image id from a wrapped response too', () => {
    // Prepare
    const raw = fixture('create-image');
    raw.detail.responseElements = { CreateImageResponse: { requestId: 'r-1', imageId: IMAGE_ID } };

    // Act
    const event = expectEvent(parseImageEvent(raw));

    // Assess
    expect(event).toMatchObject({ kind: 'new-image', imageId: IMAGE_ID });
  });
});

describe('parseImageEvent: who did it', () => {
  it('an assumed role resolves to the session issuer role, with the session name beside it', () => {
    // Act
    const event = expectEvent(parseImageEvent(fixture('create-image')));

    // Assess
    expect(event.caller).toEqual({
      arn: SSO_ROLE,
      type: 'AssumedRole',
      sessionName: 'jane.doe@example.com',
      accountId: ACCOUNT,
      sourceIp: '203.0.113.24',
      userAgent: expect.stringContaining('aws-cli/2'),
    });
  });

  it('an IAM user resolves to the user ARN', () => {
    // Act
    const event = expectEvent(parseImageEvent(fixture('copy-image')));

    // Assess
    expect(event.caller).toMatchObject({
      arn: 'arn:aws:iam::111122223333:user/ci-release',
      type: 'IAMUser',
      sourceIp: '198.51.100.7',
    });
    expect(event.caller.sessionName).toBeUndefined();
  });

  it('the root user resolves to the account root ARN, even when CloudTrail leaves the ARN out', () => {
    // Prepare
    const raw = fixture('register-image');
    delete raw.detail.userIdentity.arn;

    // Act
    const event = expectEvent(parseImageEvent(raw));

    // Assess
    expect(event.caller).toMatchObject({ arn: 'arn:aws:iam::111122223333:root', type: 'Root' });
  });

  it('an AWS service resolves to the service that invoked the call', () => {
    // Prepare: AWS Backup copying an image records the service, not a person.
    const raw = fixture('copy-image');
    raw.detail.userIdentity = { type: 'AWSService', invokedBy: 'backup.amazonaws.com' };
    raw.detail.sourceIPAddress = 'backup.amazonaws.com';
    raw.detail.userAgent = 'backup.amazonaws.com';

    // Act
    const event = expectEvent(parseImageEvent(raw));

    // Assess
    expect(event.caller).toEqual({
      arn: 'backup.amazonaws.com',
      type: 'AWSService',
      sourceIp: 'backup.amazonaws.com',
      userAgent: 'backup.amazonaws.com',
    });
  });

  it('falls back to the envelope account when the detail has no recipientAccountId', () => {
    // Prepare
    const raw = fixture('enable-image');
    delete raw.detail.recipientAccountId;
    raw.account = '555566667777';

    // Act
    const event = expectEvent(parseImageEvent(raw));

    // Assess
    expect(event.accountId).toBe('555566667777');
  });
});

describe('parseImageEvent: never throws', () => {
  it('bounds the reason for a huge event full of bad items', () => {
    // Prepare
    const raw = fixture('modify-image-attribute-share-account');
    raw.detail.requestParameters.launchPermission.add.items = Array.from({ length: 100_000 }, () => ({
      userId: 7,
    }));

    // Act
    const reason = expectMalformed(parseImageEvent(raw));

    // Assess
    expect(reason).toContain('items[0].userId');
    expect(reason).toContain('(and 99995 more)');
    expect(reason.length).toBeLessThanOrEqual(1_000);
  });

  it('survives a getter that throws', () => {
    // Prepare
    const raw = fixture('create-image');
    Object.defineProperty(raw.detail, 'eventName', {
      enumerable: true,
      get() {
        throw new Error('boom');
      },
    });

    // Act
    const result = parseImageEvent(raw);

    // Assess
    expect(result.outcome).toBe('malformed');
  });

  it('survives a cycle in the parameters it does not read', () => {
    // Prepare
    const raw = fixture('create-image');
    raw.detail.requestParameters.self = raw.detail.requestParameters;

    // Act
    const result = parseImageEvent(raw);

    // Assess
    expect(result.outcome).toBe('event');
  });

  it('gives an outcome, never an exception, for every fixture with any one detail field removed or nulled', () => {
    // Prepare
    const names = readdirSync(EVENTS_DIR)
      .filter((file) => file.endsWith('.json'))
      .map((file) => file.replace(/\.json$/, ''));
    const variants: Json[] = names.flatMap((name) => {
      const keys = Object.keys(fixture(name).detail ?? {});
      return keys.flatMap((key) => {
        const removed = fixture(name);
        delete removed.detail[key];
        const nulled = fixture(name);
        nulled.detail[key] = null;
        const stringed = fixture(name);
        stringed.detail[key] = 'x';
        return [removed, nulled, stringed];
      });
    });

    // Act
    const outcomes = variants.map((raw) => parseImageEvent(raw).outcome);

    // Assess
    expect(variants.length).toBeGreaterThan(100);
    expect(new Set(outcomes)).toEqual(new Set(['event', 'failed-call', 'ignored', 'malformed']));
  });
});
