/**
 * Turns the EventBridge events `onImageEvent` receives (CloudTrail API calls from `aws.ec2`) into
 * plain data. Parsing never throws: a Lambda that throws on a bad event is retried and then
 * dead-lettered, so every input ends as an outcome the handler can log and drop.
 *
 * CloudTrail records EC2 calls in two shapes, and both are accepted here:
 * - older Query API actions (CreateImage, ModifyImageAttribute, ...) with camelCase parameters and
 *   lists as `{ items: [...] }`, e.g. `launchPermission.add.items[].group`;
 * - newer actions wrapped in `{ "<Action>Request": {...} }` / `{ "<Action>Response": {...} }`, with
 *   PascalCase request keys (EnableImage and the block-public-access switches are of that age).
 */
import * as z from 'zod';
import { resolveCaller, userIdentitySchema } from '../core/caller.ts';
import type { Caller, SharePermissions } from '../model.ts';

export const HANDLED_EVENT_NAMES = [
  'CreateImage',
  'CopyImage',
  'RegisterImage',
  'ImportImage',
  'ModifyImageAttribute',
  'ModifySnapshotAttribute',
  'EnableImage',
  'DisableImageBlockPublicAccess',
  'DisableSnapshotBlockPublicAccess',
] as const;

export type HandledEventName = (typeof HANDLED_EVENT_NAMES)[number];

export type ImageEvent = {
  /** CloudTrail's `eventID`: unique per API call, so it also identifies an EventBridge retry. */
  eventId: string;
  eventName: string;
  eventTime: Date;
  region: string;
  accountId: string;
  caller: Caller;
} & (
  | { kind: 'new-image'; imageId: string | undefined; sourceImageId?: string; importTaskId?: string }
  | { kind: 'image-sharing'; imageId: string; added: SharePermissions; removed: SharePermissions }
  | { kind: 'snapshot-sharing'; snapshotId: string; added: SharePermissions; removed: SharePermissions }
  | { kind: 'image-enabled'; imageId: string }
  | { kind: 'block-public-access-disabled'; resource: 'image' | 'snapshot' }
);

export type ParsedImageEvent =
  | { outcome: 'event'; event: ImageEvent }
  | { outcome: 'failed-call'; eventName: string; errorCode: string; errorMessage?: string; eventId?: string }
  | { outcome: 'ignored'; reason: string }
  | { outcome: 'malformed'; reason: string };

export const CLOUDTRAIL_DETAIL_TYPE = 'AWS API Call via CloudTrail';

export function isHandledEventName(name: string): name is HandledEventName {
  return (HANDLED_EVENT_NAMES as readonly string[]).includes(name);
}

/** Parses one EventBridge event. Never throws, whatever `raw` is. */
export function parseImageEvent(raw: unknown): ParsedImageEvent {
  try {
    return parse(raw);
  } catch (error) {
    // Defence in depth (a hostile getter, a runtime bug): a crash here would become a retry storm.
    return malformed(`could not be parsed: ${error instanceof Error ? error.message : String(error)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Schemas

/** EC2 ids are hex after the prefix; the length has grown over the years (8, then 17). */
const amiId = z.string().regex(/^ami-[0-9a-f]{8,32}$/i, 'expected an AMI id (ami-…)');
const snapshotId = z.string().regex(/^snap-[0-9a-f]{8,32}$/i, 'expected a snapshot id (snap-…)');

/**
 * The fields every EventBridge event has (as Powertools' EventBridgeSchema lists them, written out
 * here because importing that schema pulls the whole of zod into the bundle); narrowing
 * `detail-type` and `source` turns a misrouted event into a clear reason instead of a wrong audit.
 */
const envelopeSchema = z.object({
  version: z.string(),
  id: z.string(),
  account: z.string(),
  time: z.iso.datetime(),
  region: z.string(),
  resources: z.array(z.string()),
  'replay-name': z.string().optional(),
  'detail-type': z.literal(CLOUDTRAIL_DETAIL_TYPE),
  source: z.literal('aws.ec2'),
  detail: z.looseObject({}),
});

/** Just enough to route: failed and unhandled calls are told apart before the rest is required. */
const headSchema = z.looseObject({
  eventSource: z.literal('ec2.amazonaws.com'),
  eventName: z.string().min(1),
  eventID: z.string().min(1).optional(),
  errorCode: z.string().min(1).optional(),
  errorMessage: z.string().optional(),
});

const optionalString = z.string().optional();

const commonSchema = z.looseObject({
  eventID: z.string().min(1),
  eventTime: z.iso.datetime({ offset: true }),
  awsRegion: z.string().min(1),
  recipientAccountId: z
    .string()
    .regex(/^\d{12}$/, 'an AWS account id is 12 digits')
    .optional(),
  userIdentity: userIdentitySchema,
  sourceIPAddress: optionalString,
  userAgent: optionalString,
});

type Common = z.infer<typeof commonSchema>;

/** `group` is what CloudTrail writes; `groups` appears in Stratus Red Team's detection notes, so both count. */
const groupValue = z.union([z.string(), z.array(z.string())]).optional();

const permissionItem = z.looseObject({
  group: groupValue,
  groups: groupValue,
  groupName: groupValue,
  userGroup: groupValue,
  userId: optionalString,
  organizationArn: optionalString,
  organizationalUnitArn: optionalString,
});

type PermissionItem = z.infer<typeof permissionItem>;

/** `{ items: [...] }` is CloudTrail's list shape; a bare array is accepted for hand-written or re-serialised events. */
const permissionList = z.preprocess(
  (value) => (Array.isArray(value) ? { items: value } : value),
  z.looseObject({ items: z.array(permissionItem).optional() }),
);

const permissionChanges = z.looseObject({
  add: permissionList.optional(),
  remove: permissionList.optional(),
});

// ---------------------------------------------------------------------------------------------
// Parsing

function parse(raw: unknown): ParsedImageEvent {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return malformed(`expected an EventBridge event object, got ${describeType(raw)}`);
  }
  const envelope = envelopeSchema.safeParse(raw, PARSE_OPTIONS);
  if (!envelope.success) return malformed(describeIssues(envelope.error, []));
  const detail = envelope.data.detail;

  const head = headSchema.safeParse(detail, PARSE_OPTIONS);
  if (!head.success) return malformed(describeIssues(head.error, ['detail']));
  const { eventName, errorCode, errorMessage, eventID } = head.data;

  if (!isHandledEventName(eventName)) {
    return {
      outcome: 'ignored',
      reason: `eventName ${truncate(eventName, 100)} is not one this handler audits`,
    };
  }
  // A failed call changed nothing, so there is nothing to audit; its requestParameters may be partial.
  if (errorCode !== undefined) {
    return {
      outcome: 'failed-call',
      eventName,
      errorCode,
      ...(errorMessage !== undefined ? { errorMessage } : {}),
      ...(eventID !== undefined ? { eventId: eventID } : {}),
    };
  }

  const common = commonSchema.safeParse(detail, PARSE_OPTIONS);
  if (!common.success) return malformed(describeIssues(common.error, ['detail']));

  const body = parseBody(eventName, detail);
  if (body.outcome !== 'body') return body;
  return {
    outcome: 'event',
    event: { ...base(eventName, common.data, envelope.data.account), ...body.body },
  };
}

type Body = DistributiveOmit<ImageEvent, keyof ImageEventBase>;
type ImageEventBase = Pick<
  ImageEvent,
  'eventId' | 'eventName' | 'eventTime' | 'region' | 'accountId' | 'caller'
>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type BodyResult =
  | { outcome: 'body'; body: Body }
  | { outcome: 'ignored'; reason: string }
  | { outcome: 'malformed'; reason: string };

function base(eventName: string, common: Common, envelopeAccount: string): ImageEventBase {
  return {
    eventId: common.eventID,
    eventName,
    eventTime: new Date(common.eventTime),
    region: common.awsRegion,
    // recipientAccountId is the account the call acted on; the envelope's account is the same in practice.
    accountId: common.recipientAccountId ?? envelopeAccount,
    caller: resolveCaller(common.userIdentity, {
      sourceIp: common.sourceIPAddress,
      userAgent: common.userAgent,
    }),
  };
}

function parseBody(eventName: HandledEventName, detail: Record<string, unknown>): BodyResult {
  const request = section(detail, 'requestParameters', `${eventName}Request`);
  const response = section(detail, 'responseElements', `${eventName}Response`);
  switch (eventName) {
    case 'CreateImage':
    case 'RegisterImage': {
      const parsed = parseAt(z.looseObject({ imageId: amiId }), response);
      return parsed.ok ? body({ kind: 'new-image', imageId: parsed.data.imageId }) : parsed.failure;
    }
    case 'CopyImage': {
      const source = parseAt(z.looseObject({ sourceImageId: amiId.optional() }).nullish(), request);
      if (!source.ok) return source.failure;
      const parsed = parseAt(z.looseObject({ imageId: amiId }), response);
      if (!parsed.ok) return parsed.failure;
      const sourceImageId = source.data?.sourceImageId;
      return body({
        kind: 'new-image',
        imageId: parsed.data.imageId,
        ...(sourceImageId ? { sourceImageId } : {}),
      });
    }
    case 'ImportImage': {
      // ImportImage only starts a task; the AMI id exists once the task completes, so it is usually absent.
      const schema = z
        .looseObject({ importTaskId: z.string().min(1).optional(), imageId: amiId.optional() })
        .refine((value) => value.importTaskId !== undefined || value.imageId !== undefined, {
          message: 'expected importTaskId or imageId',
        });
      const parsed = parseAt(schema, response);
      if (!parsed.ok) return parsed.failure;
      const { importTaskId, imageId } = parsed.data;
      return body({ kind: 'new-image', imageId, ...(importTaskId ? { importTaskId } : {}) });
    }
    case 'ModifyImageAttribute':
      return parseSharing('image', request);
    case 'ModifySnapshotAttribute':
      return parseSharing('snapshot', request);
    case 'EnableImage': {
      const parsed = parseAt(z.looseObject({ imageId: amiId }), request);
      return parsed.ok ? body({ kind: 'image-enabled', imageId: parsed.data.imageId }) : parsed.failure;
    }
    case 'DisableImageBlockPublicAccess':
      return body({ kind: 'block-public-access-disabled', resource: 'image' });
    case 'DisableSnapshotBlockPublicAccess':
      return body({ kind: 'block-public-access-disabled', resource: 'snapshot' });
  }
}

const sharingFields = {
  attributeType: optionalString,
  attribute: optionalString,
  operationType: optionalString,
};

const imageSharingRequest = z
  .looseObject({ imageId: amiId, launchPermission: permissionChanges.optional(), ...sharingFields })
  .transform(({ imageId, launchPermission, ...rest }) => ({
    id: imageId,
    changes: launchPermission,
    ...rest,
  }));

const snapshotSharingRequest = z
  .looseObject({ snapshotId, createVolumePermission: permissionChanges.optional(), ...sharingFields })
  .transform(({ snapshotId: id, createVolumePermission, ...rest }) => ({
    id,
    changes: createVolumePermission,
    ...rest,
  }));

/** The attribute each resource's sharing lives in, compared without case or underscores. */
const SHARING_ATTRIBUTE = {
  image: { name: 'launchPermission', normalised: 'launchpermission' },
  snapshot: { name: 'createVolumePermission', normalised: 'createvolumepermission' },
} as const;

function parseSharing(resource: 'image' | 'snapshot', request: Section): BodyResult {
  const parsed =
    resource === 'image' ? parseAt(imageSharingRequest, request) : parseAt(snapshotSharingRequest, request);
  if (!parsed.ok) return parsed.failure;
  const { id, changes, attributeType, attribute: attributeName, operationType } = parsed.data;
  const container = SHARING_ATTRIBUTE[resource];

  // CloudTrail writes `launchPermission` for images and `CREATE_VOLUME_PERMISSION` for snapshots;
  // comparing without case or underscores accepts either spelling of either.
  const attribute = attributeType ?? attributeName;
  if (attribute !== undefined && normaliseAttribute(attribute) !== container.normalised) {
    return {
      outcome: 'ignored',
      reason: `${resource} attribute ${attribute} changed, not ${container.name}: sharing is unaffected`,
    };
  }

  let added: SharePermissions;
  let removed: SharePermissions;
  if (changes !== undefined) {
    added = toPermissions(changes.add?.items ?? []);
    removed = toPermissions(changes.remove?.items ?? []);
  } else if (operationType !== undefined) {
    // The older request form: OperationType plus top-level UserId.N / UserGroup.N lists.
    const operation = operationType.toLowerCase();
    if (operation !== 'add' && operation !== 'remove') {
      return malformed(`${request.path}.operationType: expected add or remove`);
    }
    const permissions = legacyPermissions(request.value);
    added = operation === 'add' ? permissions : emptyPermissions();
    removed = operation === 'remove' ? permissions : emptyPermissions();
  } else if (attribute === undefined) {
    return { outcome: 'ignored', reason: `the request changes no ${container.name}` };
  } else {
    return malformed(`${request.path}.${container.name}: Required`);
  }

  return body(
    resource === 'image'
      ? { kind: 'image-sharing', imageId: id, added, removed }
      : { kind: 'snapshot-sharing', snapshotId: id, added, removed },
  );
}

function toPermissions(items: readonly PermissionItem[]): SharePermissions {
  const groups = items.flatMap((item) =>
    [item.group, item.groups, item.groupName, item.userGroup].flatMap(asList),
  );
  return {
    public: groups.some(isAllGroup),
    accounts: unique(items.map((item) => item.userId)),
    organizations: unique(items.map((item) => item.organizationArn)),
    organizationalUnits: unique(items.map((item) => item.organizationalUnitArn)),
  };
}

/**
 * Reads the top-level lists of the older request form. Their CloudTrail spelling is not
 * documented, so singular, plural and `{ items: [...] }` spellings are all read.
 */
function legacyPermissions(request: Record<string, unknown> | null | undefined): SharePermissions {
  const read = (...keys: string[]) => keys.flatMap((key) => collectStrings(request?.[key]));
  return {
    public: read('userGroup', 'userGroups', 'groupName', 'groupNames', 'group', 'groups').some(isAllGroup),
    accounts: unique(read('userId', 'userIds')),
    organizations: unique(read('organizationArn', 'organizationArns')),
    organizationalUnits: unique(read('organizationalUnitArn', 'organizationalUnitArns')),
  };
}

/** Strings in a value shaped like `"x"`, `["x"]`, `{ items: [{ userId: "x" }] }`; bounded in depth. */
function collectStrings(value: unknown, depth = 0): string[] {
  if (typeof value === 'string') return value === '' ? [] : [value];
  if (depth > 3 || value === null || typeof value !== 'object') return [];
  const values = Array.isArray(value) ? value : Object.values(value);
  return values.flatMap((inner) => collectStrings(inner, depth + 1));
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** A part of the detail, unwrapped from `<Action>Request`/`<Action>Response` when wrapped, with its path for reasons. */
interface Section {
  value: Record<string, unknown> | null | undefined;
  path: string;
  /** Whether `value` was absent from the event, as opposed to present but not an object. */
  present: boolean;
}

function section(detail: Record<string, unknown>, key: string, wrapper: string): Section {
  const value = detail[key];
  if (value === undefined || value === null) return { value, path: `detail.${key}`, present: false };
  if (!isRecord(value)) return { value: undefined, path: `detail.${key}`, present: true };
  const inner = value[wrapper];
  if (isRecord(inner))
    return { value: camelCaseKeys(inner), path: `detail.${key}.${wrapper}`, present: true };
  return { value, path: `detail.${key}`, present: true };
}

/** Wrapped requests spell keys `ImageId`; the older form spells them `imageId`. */
function camelCaseKeys(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(record).map(([key, value]) => [
      key.charAt(0).toLowerCase() + key.slice(1),
      unwrapContent(value),
    ]),
  );
}

/** Newer actions log some scalars as `{ "content": "...", "tag": 1 }`. */
function unwrapContent(value: unknown): unknown {
  return isRecord(value) && typeof value.content === 'string' ? value.content : value;
}

function parseAt<T>(
  schema: z.ZodType<T>,
  at: Section,
): { ok: true; data: T } | { ok: false; failure: { outcome: 'malformed'; reason: string } } {
  if (at.present && at.value === undefined) {
    return { ok: false, failure: malformed(`${at.path}: expected an object`) };
  }
  const input = at.value ?? undefined;
  const result = schema.safeParse(input, PARSE_OPTIONS);
  if (result.success) return { ok: true, data: result.data };
  // A missing section is reported as the section itself, not as each field it would have held.
  if (input === undefined) return { ok: false, failure: malformed(`${at.path}: Required`) };
  return { ok: false, failure: malformed(describeIssues(result.error, at.path.split('.'))) };
}

function body(value: Body): BodyResult {
  return { outcome: 'body', body: value };
}

function malformed(reason: string): { outcome: 'malformed'; reason: string } {
  return { outcome: 'malformed', reason: truncate(reason, MAX_REASON_LENGTH) };
}

/** Zod's own wording for an absent field is "expected string, received undefined"; "Required" reads better in a log. */
const PARSE_OPTIONS = {
  error: (issue: z.core.$ZodRawIssue) => (issue.input === undefined ? 'Required' : undefined),
};

/** A flood of identical issues (a huge bad array) must not become a huge log line. */
const MAX_ISSUES = 5;
const MAX_REASON_LENGTH = 1_000;

function describeIssues(error: z.ZodError, prefix: readonly PropertyKey[]): string {
  const shown = error.issues
    .slice(0, MAX_ISSUES)
    .map((issue) => `${formatPath([...prefix, ...issue.path])}: ${issue.message}`);
  const more = error.issues.length - shown.length;
  return more > 0 ? `${shown.join('; ')} (and ${more} more)` : shown.join('; ');
}

/** `['detail', 'items', 0, 'userId']` → `detail.items[0].userId`. */
function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return 'event';
  return path
    .map((segment, index) => {
      if (typeof segment === 'number') return `[${segment}]`;
      const name = String(segment);
      if (/^[A-Za-z_$][\w$-]*$/.test(name)) return index === 0 ? name : `.${name}`;
      return `[${JSON.stringify(name)}]`;
    })
    .join('');
}

function normaliseAttribute(attribute: string): string {
  return attribute.replaceAll('_', '').toLowerCase();
}

function isAllGroup(group: string): boolean {
  return group.toLowerCase() === 'all';
}

function asList(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

function unique(values: readonly (string | undefined)[]): string[] {
  return [...new Set(values.filter((value): value is string => typeof value === 'string' && value !== ''))];
}

function emptyPermissions(): SharePermissions {
  return { public: false, accounts: [], organizations: [], organizationalUnits: [] };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function describeType(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
