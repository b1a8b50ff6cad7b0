import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, type Tags } from 'yaml';
import { defaultPolicy } from '../../src/config/policy.ts';

/**
 * The deployment's IAM, read from serverless.yml as written, against what the code calls: every
 * permission has a caller (or a stated reason), and the denies say what the code relies on.
 */

const ROOT = resolve(import.meta.dirname, '../..');

// CloudFormation's short forms, kept as plain values: only the policy shapes matter here.
const intrinsics: Tags = ['!Sub', '!Ref', '!GetAtt'].flatMap((tag) =>
  (['scalar', 'seq'] as const).map((collection) => ({
    tag,
    collection,
    resolve: (value: unknown) => ({ [tag]: value }),
  })),
) as Tags;

interface Statement {
  Sid: string;
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}

const template = parse(readFileSync(join(ROOT, 'serverless.yml'), 'utf8'), {
  customTags: intrinsics,
  logLevel: 'error',
}) as {
  resources: {
    Resources: Record<string, { Properties: { Policies: { PolicyDocument: { Statement: Statement[] } }[] } }>;
  };
};

function statements(role: string): Statement[] {
  const resource = template.resources.Resources[role];
  if (!resource) throw new Error(`no ${role} in serverless.yml`);
  return resource.Properties.Policies.flatMap((policy) => policy.PolicyDocument.Statement);
}

const actions = (statement: Statement) => [statement.Action].flat();

/** Every SDK command the sources send, as IAM names it (`ec2:DescribeImages`, ...). */
function calledActions(): Set<string> {
  const service: Record<string, string> = {
    'client-ec2': 'ec2',
    'client-auto-scaling': 'autoscaling',
    'client-ssm': 'ssm',
    'client-cloudtrail': 'cloudtrail',
    'client-sqs': 'sqs',
    'client-sts': 'sts',
    'client-sfn': 'states',
    'client-organizations': 'organizations',
    'client-dynamodb': 'dynamodb',
  };
  const called = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) {
        const text = readFileSync(path, 'utf8');
        for (const [, names, client] of text.matchAll(/import \{([^}]*)\} from '@aws-sdk\/([a-z0-9-]+)'/g)) {
          for (const [, command] of (names ?? '').matchAll(/\b([A-Z][A-Za-z]+)Command\b/g)) {
            if (text.includes(`new ${command}Command(`)) called.add(`${service[client ?? '']}:${command}`);
          }
        }
      }
    }
  };
  walk(join(ROOT, 'src'));
  return called;
}

/** Allowed without a direct call in the code, and why. */
const INDIRECT: Record<string, string> = {
  'logs:CreateLogStream': 'Lambda writes the function log',
  'logs:PutLogEvents': 'Lambda writes the function log',
  'sqs:SendMessage':
    "Lambda sends a failed invocation to the function's dead-letter queue with the function's role",
  'kms:Decrypt': 'the Slack webhook SecureString',
  'imagebuilder:ListImageRecipes': 'DescribeImageReferences reports only what the caller may read',
  'imagebuilder:GetImageRecipe': 'DescribeImageReferences',
  'imagebuilder:ListContainerRecipes': 'DescribeImageReferences',
  'imagebuilder:GetContainerRecipe': 'DescribeImageReferences',
  'rbin:ListRules':
    'the Recycle Bin adapter signs its own REST-JSON requests; the rbin SDK client would bundle a second SDK core',
  'rbin:GetRule': "the Recycle Bin adapter's own request: ListRules summaries lack tag conditions and status",
  'lambda:InvokeFunction': "Step Functions invokes the state machine's steps with the state machine's role",
};

describe('IAM in serverless.yml', () => {
  it('allows nothing that no code path calls, unless its reason is stated', () => {
    const called = calledActions();
    expect(called.has('ec2:DeregisterImage')).toBe(true);
    for (const role of [
      'SweepRole',
      'ImageEventRole',
      'SweepTargetRole',
      'ListTargetsRole',
      'AggregateRole',
      'StartSweepRole',
      'SweepStateMachineRole',
    ]) {
      const allowed = statements(role)
        .filter((statement) => statement.Effect === 'Allow')
        .flatMap(actions);
      const unexplained = allowed.filter((action) => !called.has(action) && !(action in INDIRECT));
      expect(unexplained, role).toEqual([]);
    }
  });

  it('never lets the event role add sharing to a snapshot, for accounts or for groups', () => {
    const denies = statements('ImageEventRole').filter(
      (statement) =>
        statement.Effect === 'Deny' && actions(statement).includes('ec2:ModifySnapshotAttribute'),
    );
    expect(denies.map((statement) => statement.Condition)).toEqual([
      { Null: { 'ec2:Add/userId': 'false' } },
      { Null: { 'ec2:Add/group': 'false' } },
    ]);
    // Neither role may deregister or delete anything from the event path.
    const eventActions = statements('ImageEventRole')
      .filter((statement) => statement.Effect === 'Allow')
      .flatMap(actions);
    expect(eventActions).not.toContain('ec2:DeregisterImage');
    expect(eventActions).not.toContain('ec2:DeleteSnapshot');
  });

  it('denies removals on the exempt tag with the same match the code uses (any case, no blanks)', () => {
    const exempt = defaultPolicy().exemptTag;
    for (const role of ['SweepRole', 'SweepTargetRole']) {
      const deny = statements(role).find((statement) => statement.Sid === 'NeverRemoveExempt');
      expect(deny?.Effect, role).toBe('Deny');
      expect(actions(deny as Statement)).toEqual(
        expect.arrayContaining(['ec2:DeregisterImage', 'ec2:DeleteSnapshot']),
      );
      expect(deny?.Condition).toEqual({
        StringEqualsIgnoreCase: { [`aws:ResourceTag/${exempt.key}`]: exempt.value },
      });
    }
  });

  it('lets both roles write only ami-janitor:* tag keys, and never the exempt tag', () => {
    for (const role of ['SweepRole', 'ImageEventRole', 'SweepTargetRole']) {
      const tagging = statements(role).find((statement) => statement.Sid === 'TagWithOwnKeys');
      expect(tagging?.Condition, role).toEqual({
        'ForAllValues:StringLike': { 'aws:TagKeys': 'ami-janitor:*' },
      });
      const never = statements(role).find((statement) => statement.Sid === 'NeverTouchExemptTag');
      expect(never?.Effect, role).toBe('Deny');
    }
  });
});
