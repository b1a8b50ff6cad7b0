import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, type Tags, type YAMLMap, type YAMLSeq } from 'yaml';
import { defaultPolicy } from '../../src/config/policy.ts';
import { DEFAULT_MEMBER_ROLE_NAME } from '../../src/core/targets.ts';

/**
 * The member accounts' StackSet template and the hub's bus, read as written, against serverless.yml:
 * the member role grants nothing the hub's own roles do not, trusts the hub's two roles alone, and
 * the forwarding sends on exactly the events onImageEvent listens to, to the hub's bus only.
 */

const ROOT = resolve(import.meta.dirname, '../..');

// CloudFormation's short forms, kept as `{ '!Tag': value }` so that evaluate() below can resolve them.
const intrinsics: Tags = [
  '!Sub',
  '!Ref',
  '!GetAtt',
  '!If',
  '!Equals',
  '!Not',
  '!And',
  '!Or',
  '!Join',
  '!Select',
].flatMap((tag) => [
  { tag, resolve: (value: string) => ({ [tag]: value }) },
  ...(['seq', 'map'] as const).map((collection) => ({
    tag,
    collection,
    resolve: (value: YAMLMap.Parsed | YAMLSeq.Parsed) => ({ [tag]: value.toJSON() }),
  })),
]);

function readYaml(path: string): unknown {
  return parse(readFileSync(join(ROOT, path), 'utf8'), { customTags: intrinsics, logLevel: 'error' });
}

interface Statement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Principal?: unknown;
  Action: string | string[];
  NotAction?: unknown;
  Resource?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}

interface PolicyDocument {
  Statement: Statement[];
}

interface Resource {
  Type: string;
  Condition?: string;
  Properties: Record<string, unknown>;
}

interface Template {
  Parameters: Record<string, { Default?: string }>;
  Conditions: Record<string, unknown>;
  Resources: Record<string, Resource>;
  Outputs: Record<string, { Condition?: string; Value: unknown }>;
}

const member = readYaml('member/template.yml') as Template;
const hub = readYaml('serverless.yml') as {
  functions: Record<string, { events: Record<string, { pattern?: unknown }>[] }>;
  resources: { Resources: Record<string, Resource> };
};
const hubBus = readYaml('member/hub-event-bus.yml') as Record<string, Resource>;

function resource(template: { Resources: Record<string, Resource> }, id: string): Resource {
  const found = template.Resources[id];
  if (!found) throw new Error(`no ${id}`);
  return found;
}

const inlinePolicies = (role: Resource) =>
  (role.Properties.Policies as { PolicyDocument: PolicyDocument }[]).flatMap(
    (policy) => policy.PolicyDocument.Statement,
  );
const actions = (statement: Statement) => [statement.Action].flat();
const allowed = (statements: Statement[]) =>
  new Set(statements.filter((statement) => statement.Effect === 'Allow').flatMap(actions));

const memberStatements = inlinePolicies(resource(member, 'MemberRole'));
const HUB_ROLES = ['SweepRole', 'ImageEventRole'];
const hubStatements = HUB_ROLES.flatMap((role) => inlinePolicies(resource(hub.resources, role)));

/** What the member role must leave out: statements about the hub's own logs, queues, webhook and state. */
const HUB_ONLY_SIDS = [
  'WriteOwnLogs',
  'SendFailuresToDlq',
  'ContinueOnItsOwnQueue',
  'ReadSlackWebhook',
  'DecryptSlackWebhook',
  'KeepAlertState',
];

/** `${name}` as serverless.yml and !Sub write it, built so that no string reads as a mistaken template literal. */
const placeholder = (name: string) => `\${${name}}`;
const SLS_STAGE = placeholder('sls:stage');

const HUB = { HubAccountId: '111122223333', OrganizationId: 'o-abcdefghij', HubRegion: 'us-east-1' };

/**
 * Resolves the intrinsics the member template uses for one stack instance: parameters (defaults
 * first), pseudo parameters, conditions, !Sub, !If and friends. !GetAtt stays as it is written.
 */
function evaluator(region: string, overrides: Record<string, string> = {}) {
  const values: Record<string, string> = {
    ...Object.fromEntries(
      Object.entries(member.Parameters).flatMap(([name, parameter]) =>
        parameter.Default === undefined ? [] : [[name, parameter.Default]],
      ),
    ),
    ...HUB,
    ...overrides,
    'AWS::Region': region,
    'AWS::AccountId': '444455556666',
    'AWS::Partition': 'aws',
  };
  const lookup = (name: string): string => {
    const value = values[name];
    if (value === undefined) throw new Error(`unknown reference ${name}`);
    return value;
  };
  const sub = (text: string, variables: Record<string, string>) =>
    text.replace(/\$\{([^}]+)\}/g, (_, name: string) => variables[name] ?? lookup(name));

  const evaluate = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(evaluate);
    if (node === null || typeof node !== 'object') return node;
    const entries = Object.entries(node);
    const [tag, argument] = entries[0] ?? [];
    if (entries.length === 1 && tag?.startsWith('!')) {
      switch (tag) {
        case '!Ref':
          return lookup(argument as string);
        case '!Sub': {
          if (typeof argument === 'string') return sub(argument, {});
          const [text, variables] = argument as [string, Record<string, unknown>];
          return sub(text, evaluate(variables) as Record<string, string>);
        }
        case '!If': {
          const [condition, whenTrue, whenFalse] = argument as [string, unknown, unknown];
          return evaluate(isTrue(condition) ? whenTrue : whenFalse);
        }
        case '!Equals': {
          const [left, right] = evaluate(argument) as [unknown, unknown];
          return left === right;
        }
        case '!Not':
          return !(evaluate(argument) as [boolean])[0];
        case '!GetAtt':
          return node;
        default:
          throw new Error(`evaluate() does not know ${tag}`);
      }
    }
    return Object.fromEntries(entries.map(([key, value]) => [key, evaluate(value)]));
  };
  const isTrue = (condition: string): boolean => {
    if (!(condition in member.Conditions)) throw new Error(`no condition ${condition}`);
    return evaluate(member.Conditions[condition]) === true;
  };
  return { evaluate, isTrue };
}

/** Every policy document in a template's resources, wherever it sits. */
function policyDocuments(resources: Record<string, Resource>): PolicyDocument[] {
  const documents: PolicyDocument[] = [];
  const walk = (node: unknown) => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node !== null && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (/PolicyDocument$/.test(key)) documents.push(value as PolicyDocument);
        else walk(value);
      }
    }
  };
  walk(resources);
  return documents;
}

describe('member/template.yml', () => {
  it("trusts only the hub's sweep and event roles, and only from within the organisation", () => {
    const trust = (overrides?: Record<string, string>) =>
      evaluator('us-east-1', overrides).evaluate(
        resource(member, 'MemberRole').Properties.AssumeRolePolicyDocument,
      );
    expect(trust()).toEqual({
      Version: '2012-10-17',
      Statement: [
        {
          Sid: 'HubRolesOfThisOrganization',
          Effect: 'Allow',
          Principal: {
            AWS: [
              'arn:aws:iam::111122223333:role/ami-janitor-dev-sweep-target',
              'arn:aws:iam::111122223333:role/ami-janitor-dev-image-event',
            ],
          },
          Action: 'sts:AssumeRole',
          Condition: { StringEquals: { 'aws:PrincipalOrgID': 'o-abcdefghij' } },
        },
      ],
    });
    // Names given outright replace the Stage-derived ones, and nothing else changes.
    const named = trust({ HubSweepRoleName: 'sweeper', HubEventRoleName: 'auditor' }) as PolicyDocument;
    expect(named.Statement[0]?.Principal).toEqual({
      AWS: ['arn:aws:iam::111122223333:role/sweeper', 'arn:aws:iam::111122223333:role/auditor'],
    });
  });

  it("creates the member role in the hub's Region only, under the name the hub assumes", () => {
    const role = resource(member, 'MemberRole');
    expect(role.Condition).toBe('IsHubRegion');
    expect(member.Outputs.MemberRoleArn?.Condition).toBe('IsHubRegion');
    expect(evaluator('us-east-1').isTrue('IsHubRegion')).toBe(true);
    expect(evaluator('eu-west-1').isTrue('IsHubRegion')).toBe(false);
    expect(evaluator('us-east-1').evaluate(role.Properties.RoleName)).toBe(DEFAULT_MEMBER_ROLE_NAME);
  });

  it('derives the hub names from Stage as the hub names them', () => {
    const { evaluate } = evaluator('us-east-1', { Stage: 'prod' });
    const trust = evaluate(
      resource(member, 'MemberRole').Properties.AssumeRolePolicyDocument,
    ) as PolicyDocument;
    expect(trust.Statement[0]?.Principal).toEqual({
      AWS: [
        'arn:aws:iam::111122223333:role/ami-janitor-prod-sweep-target',
        'arn:aws:iam::111122223333:role/ami-janitor-prod-image-event',
      ],
    });
    const busName = (resource({ Resources: hubBus }, 'HubEventBus').Properties.Name as string).replace(
      SLS_STAGE,
      'prod',
    );
    const target = (
      evaluate(resource(member, 'ForwardImageEvents').Properties.Targets) as { Arn: string }[]
    )[0];
    expect(target?.Arn).toBe(`arn:aws:events:us-east-1:111122223333:event-bus/${busName}`);
  });

  // serverless.yml names neither its roles nor a bus yet; once it does, these hold the defaults to it.
  const hubRoleNames = Object.values(hub.resources.Resources)
    .filter((candidate) => candidate.Type === 'AWS::IAM::Role')
    .flatMap((role) =>
      typeof role.Properties.RoleName === 'string'
        ? [role.Properties.RoleName.replace(placeholder('self:service'), 'ami-janitor')]
        : [],
    );
  it.runIf(hubRoleNames.length > 0)('defaults to the role names serverless.yml gives its roles', () => {
    expect(hubRoleNames).toEqual(
      expect.arrayContaining([
        `ami-janitor-${SLS_STAGE}-sweep-target`,
        `ami-janitor-${SLS_STAGE}-image-event`,
      ]),
    );
  });
  it.runIf('HubEventBus' in hub.resources.Resources)('matches the bus serverless.yml deploys', () => {
    expect(hub.resources.Resources.HubEventBus).toEqual(hubBus.HubEventBus);
    expect(hub.resources.Resources.HubEventBusPolicy).toEqual(hubBus.HubEventBusPolicy);
  });

  it('allows no wildcard action and uses no NotAction anywhere', () => {
    const statements = policyDocuments(member.Resources).flatMap((document) => document.Statement);
    expect(statements.length).toBeGreaterThan(20);
    const all = statements.flatMap(actions);
    expect(all.filter((action) => action === '*' || action.endsWith(':*') || action.includes('*'))).toEqual(
      [],
    );
    expect(statements.filter((statement) => 'NotAction' in statement)).toEqual([]);
    expect(statements.filter((statement) => 'NotPrincipal' in statement)).toEqual([]);
  });

  it("allows nothing that serverless.yml's SweepRole or ImageEventRole does not", () => {
    const hubAllowed = allowed(hubStatements);
    expect([...allowed(memberStatements)].filter((action) => !hubAllowed.has(action))).toEqual([]);
  });

  it('mirrors each hub statement it takes, Sid for Sid, with the Region opened to every Region', () => {
    // The one role is assumed from every Region the hub sweeps, so a Region in its ARNs would lock
    // out all the others; the account stays pinned where the hub pins it.
    const openRegion = (node: unknown): unknown =>
      JSON.parse(JSON.stringify(node).replaceAll(placeholder('AWS::Region'), '*'));
    for (const statement of memberStatements) {
      const sid = statement.Sid ?? '';
      const mirrored = hubStatements.filter((candidate) => candidate.Sid === sid);
      expect(mirrored.length, sid).toBeGreaterThan(0);
      for (const original of mirrored) {
        expect({ ...statement, Action: [...new Set(actions(statement))].sort() }, sid).toEqual({
          ...(openRegion(original) as Statement),
          Action: [...new Set(mirrored.flatMap(actions))].sort(),
        });
      }
    }
    // The event role's own read statement is a subset of the sweep's, taken through ReadInventory.
    const eventReads = hubStatements.find((statement) => statement.Sid === 'ReadImagesAndSnapshots');
    const memberAllowed = allowed(memberStatements);
    expect(actions(eventReads as Statement).filter((action) => !memberAllowed.has(action))).toEqual([]);
  });

  it('leaves out what only concerns the hub: its logs, queues, Slack webhook, key and state', () => {
    const sids = new Set(memberStatements.map((statement) => statement.Sid));
    expect(HUB_ONLY_SIDS.filter((sid) => sids.has(sid))).toEqual([]);
    const memberAllowed = allowed(memberStatements);
    const hubOnly = hubStatements
      .filter((statement) => HUB_ONLY_SIDS.includes(statement.Sid ?? ''))
      .flatMap(actions);
    expect(hubOnly.length).toBeGreaterThan(0);
    expect(hubOnly.filter((action) => memberAllowed.has(action))).toEqual([]);
    expect([...memberAllowed].filter((action) => /^(logs|sqs|kms|sts):/.test(action))).toEqual([]);
  });

  it('carries every deny of the hub roles, with the same conditions, and the exempt tag the code uses', () => {
    const denies = (statements: Statement[]) =>
      new Map(statements.filter((statement) => statement.Effect === 'Deny').map((s) => [s.Sid, s]));
    const memberDenies = denies(memberStatements);
    expect([...memberDenies.keys()].sort()).toEqual([...denies(hubStatements).keys()].sort());
    for (const [sid, statement] of denies(hubStatements))
      expect(memberDenies.get(sid), sid).toEqual(statement);

    const exempt = defaultPolicy().exemptTag;
    expect(memberDenies.get('NeverRemoveExempt')).toMatchObject({
      Action: expect.arrayContaining(['ec2:DeregisterImage', 'ec2:DeleteSnapshot', 'ec2:DisableImage']),
      Resource: '*',
      Condition: { StringEqualsIgnoreCase: { [`aws:ResourceTag/${exempt.key}`]: exempt.value } },
    });
    expect(memberDenies.get('NeverTouchExemptTag')?.Condition).toEqual({
      'ForAnyValue:StringEqualsIgnoreCase': { 'aws:TagKeys': exempt.key },
    });
    expect(memberDenies.get('NeverShareSnapshotWithAccounts')?.Condition).toEqual({
      Null: { 'ec2:Add/userId': 'false' },
    });
    expect(memberDenies.get('NeverShareSnapshotWithGroups')?.Condition).toEqual({
      Null: { 'ec2:Add/group': 'false' },
    });
  });

  it("forwards exactly the events onImageEvent's rule in serverless.yml listens to, in every Region", () => {
    const hubPattern = hub.functions.onImageEvent?.events.find((event) => 'eventBridge' in event)?.eventBridge
      ?.pattern;
    expect(hubPattern).toBeDefined();
    const rule = resource(member, 'ForwardImageEvents');
    expect(rule.Type).toBe('AWS::Events::Rule');
    expect(rule.Condition).toBeUndefined();
    // On the default bus, where EC2's CloudTrail events arrive.
    expect(rule.Properties.EventBusName ?? 'default').toBe('default');
    expect(rule.Properties.State).toBe('ENABLED');
    expect(rule.Properties.EventPattern).toEqual(hubPattern);
  });

  it("sends to the hub's bus through a role of its Region that may only put events there", () => {
    const { evaluate } = evaluator('eu-west-1');
    const rule = resource(member, 'ForwardImageEvents');
    const targets = evaluate(rule.Properties.Targets) as Record<string, unknown>[];
    const hubBusArn = 'arn:aws:events:us-east-1:111122223333:event-bus/ami-janitor-dev-events';
    expect(targets).toHaveLength(1);
    expect(targets[0]).toMatchObject({ Arn: hubBusArn, RoleArn: { '!GetAtt': 'EventForwardRole.Arn' } });

    const role = resource(member, 'EventForwardRole');
    // Per Region and unnamed: IAM names are account-wide, and no one outside the stack needs the name.
    expect(role.Condition).toBeUndefined();
    expect(role.Properties.RoleName).toBeUndefined();
    expect(
      inlinePolicies({ ...role, Properties: evaluate(role.Properties) as Record<string, unknown> }),
    ).toEqual([
      { Sid: 'PutEventsOnHubBus', Effect: 'Allow', Action: 'events:PutEvents', Resource: hubBusArn },
    ]);
    const ruleArn = `arn:aws:events:eu-west-1:444455556666:rule/${evaluate(rule.Properties.Name)}`;
    expect(evaluate(role.Properties.AssumeRolePolicyDocument)).toEqual({
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { Service: 'events.amazonaws.com' },
          Action: 'sts:AssumeRole',
          Condition: {
            StringEquals: { 'aws:SourceAccount': '444455556666' },
            ArnEquals: { 'aws:SourceArn': ruleArn },
          },
        },
      ],
    });
  });

  it('keeps what it cannot forward in a dead-letter queue of its Region, and leaves retrying to EventBridge', () => {
    const target = (
      resource(member, 'ForwardImageEvents').Properties.Targets as Record<string, unknown>[]
    )[0];
    expect(target?.DeadLetterConfig).toEqual({ Arn: { '!GetAtt': 'EventForwardDlq.Arn' } });
    // An event bus target takes no RetryPolicy; EventBridge retries bus-to-bus delivery on its own.
    expect(target).not.toHaveProperty('RetryPolicy');

    const queue = resource(member, 'EventForwardDlq');
    expect(queue.Type).toBe('AWS::SQS::Queue');
    expect(queue.Condition).toBeUndefined();
    expect(queue.Properties).toMatchObject({ MessageRetentionPeriod: 1209600, SqsManagedSseEnabled: true });

    const policy = resource(member, 'EventForwardDlqPolicy');
    expect(policy.Properties.Queues).toEqual([{ '!Ref': 'EventForwardDlq' }]);
    expect((policy.Properties.PolicyDocument as PolicyDocument).Statement).toEqual([
      {
        Sid: 'OnlyTheForwardingRule',
        Effect: 'Allow',
        Principal: { Service: 'events.amazonaws.com' },
        Action: 'sqs:SendMessage',
        Resource: { '!GetAtt': 'EventForwardDlq.Arn' },
        Condition: { ArnEquals: { 'aws:SourceArn': { '!GetAtt': 'ForwardImageEvents.Arn' } } },
      },
    ]);
  });
});

describe('member/hub-event-bus.yml', () => {
  it('admits PutEvents on the hub bus from the organisation only', () => {
    const bus = resource({ Resources: hubBus }, 'HubEventBus');
    expect(bus).toEqual({
      Type: 'AWS::Events::EventBus',
      Properties: { Name: `ami-janitor-${SLS_STAGE}-events` },
    });
    const policy = resource({ Resources: hubBus }, 'HubEventBusPolicy');
    expect(policy.Type).toBe('AWS::Events::EventBusPolicy');
    expect(policy.Properties.EventBusName).toEqual({ '!Ref': 'HubEventBus' });
    expect(policy.Properties.Statement).toEqual({
      Effect: 'Allow',
      Principal: '*',
      Action: 'events:PutEvents',
      Resource: { '!GetAtt': 'HubEventBus.Arn' },
      Condition: { StringEquals: { 'aws:PrincipalOrgID': placeholder('param:organizationId') } },
    });
    // Nothing else in the snippet grants anything.
    expect(Object.keys(hubBus).sort()).toEqual(['HubEventBus', 'HubEventBusPolicy']);
  });

  it('uses only variables serverless.yml resolves, and names no account of its own', () => {
    const text = readFileSync(join(ROOT, 'member/hub-event-bus.yml'), 'utf8');
    const body = text
      .split('\n')
      .filter((line) => !line.trimStart().startsWith('#'))
      .join('\n');
    expect(new Set(body.match(/\$\{[^}]+\}/g))).toEqual(
      new Set([SLS_STAGE, placeholder('param:organizationId')]),
    );
    expect(body).not.toMatch(/\d{12}/);
  });
});
