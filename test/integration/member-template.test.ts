import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  CloudFormationClient,
  CreateStackCommand,
  DescribeStackResourcesCommand,
  DescribeStacksCommand,
  type Parameter,
  ValidateTemplateCommand,
} from '@aws-sdk/client-cloudformation';
import {
  CreateEventBusCommand,
  DescribeRuleCommand,
  EventBridgeClient,
  ListTargetsByRuleCommand,
  PutEventsCommand,
  PutRuleCommand,
  PutTargetsCommand,
} from '@aws-sdk/client-eventbridge';
import { GetRoleCommand, GetRolePolicyCommand, IAMClient, ListRolesCommand } from '@aws-sdk/client-iam';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { beforeEach, expect, it } from 'vitest';
import { parse } from 'yaml';
import { describeWithMoto, MOTO_ACCOUNT_ID } from './moto.ts';

/**
 * member/template.yml through moto's CloudFormation, as one StackSet instance would deploy it: the
 * hub's Region gets the member role and the forwarding, another Region the forwarding alone, and an
 * image event on a member Region's default bus reaches the hub's bus in the hub's account.
 *
 * What moto cannot show: it has no AWS::SQS::QueuePolicy (it skips the resource with a warning), it
 * accepts a trust policy naming roles that do not exist (IAM would refuse it), it evaluates no IAM
 * policy (neither the role's PutEvents nor the bus's organisation condition is enforced), and it
 * has no StackSets. The unit test reads those parts of the template as written.
 */

const ROOT = resolve(import.meta.dirname, '../..');
const TEMPLATE = readFileSync(join(ROOT, 'member/template.yml'), 'utf8');
// The hub lives in another account; moto keeps one backend per account, chosen by this header.
const HUB_ACCOUNT_ID = '111122223333';
const HUB_REGION = 'us-east-1';
const MEMBER_REGION = 'eu-west-1';
const ORGANIZATION_ID = 'o-abcdefghij';
const HUB_BUS = 'ami-janitor-dev-events';
const HUB_BUS_ARN = `arn:aws:events:${HUB_REGION}:${HUB_ACCOUNT_ID}:event-bus/${HUB_BUS}`;
const RULE_NAME = 'ami-janitor-dev-forward-image-events';

const PARAMETERS: Parameter[] = Object.entries({
  HubAccountId: HUB_ACCOUNT_ID,
  OrganizationId: ORGANIZATION_ID,
  HubRegion: HUB_REGION,
}).map(([ParameterKey, ParameterValue]) => ({ ParameterKey, ParameterValue }));

/** The rule's pattern as the template writes it; the section has no intrinsics, so plain YAML reads it. */
const forwardedPattern = (
  parse(TEMPLATE, { logLevel: 'silent' }) as {
    Resources: { ForwardImageEvents: { Properties: { EventPattern: unknown } } };
  }
).Resources.ForwardImageEvents.Properties.EventPattern;

interface Clients {
  cloudFormation: CloudFormationClient;
  iam: IAMClient;
  events: EventBridgeClient;
  sqs: SQSClient;
}

describeWithMoto('member StackSet template on moto CloudFormation', (moto) => {
  const clientsIn = (region: string, accountId?: string): Clients => {
    const config = {
      endpoint: moto.endpoint,
      region,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      maxAttempts: 1,
    };
    const clients: Clients = {
      cloudFormation: new CloudFormationClient(config),
      iam: new IAMClient(config),
      events: new EventBridgeClient(config),
      sqs: new SQSClient(config),
    };
    if (accountId !== undefined) {
      for (const client of Object.values(clients) as {
        middlewareStack: EventBridgeClient['middlewareStack'];
      }[]) {
        client.middlewareStack.add(
          (next) => (args) => {
            (args.request as { headers: Record<string, string> }).headers['x-moto-account-id'] = accountId;
            return next(args);
          },
          { step: 'build', name: 'motoAccountId' },
        );
      }
    }
    return clients;
  };

  async function createMemberStack(region: string) {
    const { cloudFormation } = clientsIn(region);
    await cloudFormation.send(
      new CreateStackCommand({
        StackName: 'StackSet-ami-janitor-member',
        TemplateBody: TEMPLATE,
        Parameters: PARAMETERS,
        Capabilities: ['CAPABILITY_NAMED_IAM'],
      }),
    );
    const stack = (
      await cloudFormation.send(new DescribeStacksCommand({ StackName: 'StackSet-ami-janitor-member' }))
    ).Stacks?.[0];
    const resources = (
      await cloudFormation.send(
        new DescribeStackResourcesCommand({ StackName: 'StackSet-ami-janitor-member' }),
      )
    ).StackResources;
    return {
      status: stack?.StackStatus,
      outputs: Object.fromEntries(
        (stack?.Outputs ?? []).map((output) => [output.OutputKey, output.OutputValue]),
      ),
      resources: Object.fromEntries(
        (resources ?? []).map((resource) => [resource.LogicalResourceId, resource.PhysicalResourceId]),
      ),
    };
  }

  const roleNameOf = (arn: string | undefined) => arn?.split('/').pop() ?? '';

  beforeEach(async () => {
    await moto.reset();
  });

  // moto answers ValidateTemplate with cfn-lint's first finding, warnings included, as a
  // ValidationError; the template passes cfn-lint's informational checks too, so nothing is waived.
  it("passes moto's ValidateTemplate, which runs cfn-lint over it", async () => {
    const { cloudFormation } = clientsIn(HUB_REGION);

    const answer = await cloudFormation.send(new ValidateTemplateCommand({ TemplateBody: TEMPLATE }));

    expect(answer.Description).toMatch(/^ami-janitor member account/);
  });

  it("creates the member role, trusting the hub's two roles within the organisation, in the hub's Region", async () => {
    const stack = await createMemberStack(HUB_REGION);
    const { iam } = clientsIn(HUB_REGION);

    expect(stack.status).toBe('CREATE_COMPLETE');
    expect(stack.outputs.MemberRoleArn).toBe(`arn:aws:iam::${MOTO_ACCOUNT_ID}:role/ami-janitor-member`);
    const role = (await iam.send(new GetRoleCommand({ RoleName: 'ami-janitor-member' }))).Role;
    expect(JSON.parse(decodeURIComponent(role?.AssumeRolePolicyDocument ?? ''))).toEqual({
      Version: '2012-10-17',
      Statement: [
        {
          Sid: 'HubRolesOfThisOrganization',
          Effect: 'Allow',
          Principal: {
            AWS: [
              `arn:aws:iam::${HUB_ACCOUNT_ID}:role/ami-janitor-dev-sweep-target`,
              `arn:aws:iam::${HUB_ACCOUNT_ID}:role/ami-janitor-dev-image-event`,
            ],
          },
          Action: 'sts:AssumeRole',
          Condition: { StringEquals: { 'aws:PrincipalOrgID': ORGANIZATION_ID } },
        },
      ],
    });
    const policy = await iam.send(
      new GetRolePolicyCommand({ RoleName: 'ami-janitor-member', PolicyName: 'ami-janitor-member' }),
    );
    // moto answers with the Python repr of a document CloudFormation created, not JSON, so its text
    // is searched rather than parsed.
    const document = decodeURIComponent(policy.PolicyDocument ?? '');
    for (const sid of ['ReadInventory', 'RemoveSharing', 'NeverRemoveExempt', 'NeverTouchExemptTag']) {
      expect(document).toContain(`'Sid': '${sid}'`);
    }
    // The pseudo parameters came out as this account and partition, the Region as every Region.
    expect(document).toContain(`'arn:aws:rbin:*:${MOTO_ACCOUNT_ID}:rule/*'`);
    expect(document).toContain("'arn:aws:ec2:*::image/*'");
    expect(document).not.toContain('${');
  });

  it("forwards onImageEvent's events to the hub's bus, through its own role, with a dead-letter queue", async () => {
    const stack = await createMemberStack(HUB_REGION);
    const { events, iam, sqs } = clientsIn(HUB_REGION);

    const rule = await events.send(new DescribeRuleCommand({ Name: RULE_NAME }));
    expect(rule.State).toBe('ENABLED');
    expect(rule.EventBusName).toBe('default');
    expect(JSON.parse(rule.EventPattern ?? '')).toEqual(forwardedPattern);
    const targets = (await events.send(new ListTargetsByRuleCommand({ Rule: RULE_NAME }))).Targets ?? [];
    expect(targets).toHaveLength(1);
    const [target] = targets;
    expect(target?.Arn).toBe(HUB_BUS_ARN);

    const forwardRole = (await iam.send(new GetRoleCommand({ RoleName: roleNameOf(target?.RoleArn) }))).Role;
    expect(forwardRole?.Arn).toBe(target?.RoleArn);
    const trust = JSON.parse(decodeURIComponent(forwardRole?.AssumeRolePolicyDocument ?? ''));
    expect(trust.Statement[0].Principal).toEqual({ Service: 'events.amazonaws.com' });
    expect(trust.Statement[0].Condition.ArnEquals['aws:SourceArn']).toBe(rule.Arn);

    const queueUrl = stack.outputs.EventForwardDlqUrl;
    expect(queueUrl).toMatch(/\/ami-janitor-dev-event-forward-dlq$/);
    const queue = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['All'] }),
    );
    expect(target?.DeadLetterConfig?.Arn).toBe(queue.Attributes?.QueueArn);
    expect(queue.Attributes?.MessageRetentionPeriod).toBe('1209600');
  });

  it('forwards from any other Region too, without a second member role (IAM is global)', async () => {
    await createMemberStack(HUB_REGION);
    const other = await createMemberStack(MEMBER_REGION);
    const { iam, events } = clientsIn(MEMBER_REGION);

    expect(other.status).toBe('CREATE_COMPLETE');
    expect(other.outputs.MemberRoleArn).toBeUndefined();
    expect(other.resources.MemberRole).toBeUndefined();
    const roles = (await iam.send(new ListRolesCommand({}))).Roles ?? [];
    expect(roles.filter((role) => role.RoleName === 'ami-janitor-member')).toHaveLength(1);

    const [target] = (await events.send(new ListTargetsByRuleCommand({ Rule: RULE_NAME }))).Targets ?? [];
    expect(target?.Arn).toBe(HUB_BUS_ARN);
    // Each Region's rule has its own role, so no Region depends on another's stack instance.
    const hubRegionTarget = (
      await clientsIn(HUB_REGION).events.send(new ListTargetsByRuleCommand({ Rule: RULE_NAME }))
    ).Targets?.[0];
    expect(target?.RoleArn).toBeDefined();
    expect(target?.RoleArn).not.toBe(hubRegionTarget?.RoleArn);
    expect(roles.map((role) => role.Arn)).toEqual(
      expect.arrayContaining([target?.RoleArn, hubRegionTarget?.RoleArn]),
    );
  });

  it("delivers a member Region's image event to the hub's bus in the hub's account, and no other event", async () => {
    await createMemberStack(MEMBER_REGION);
    // The hub's side: its bus, and a rule on it as onImageEvent's, here feeding a queue to read.
    const hub = clientsIn(HUB_REGION, HUB_ACCOUNT_ID);
    await hub.events.send(new CreateEventBusCommand({ Name: HUB_BUS }));
    const queueUrl = (await hub.sqs.send(new CreateQueueCommand({ QueueName: 'hub-image-events' }))).QueueUrl;
    const queueArn = (
      await hub.sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }))
    ).Attributes?.QueueArn;
    await hub.events.send(
      new PutRuleCommand({
        Name: 'on-image-event',
        EventBusName: HUB_BUS,
        EventPattern: JSON.stringify(forwardedPattern),
      }),
    );
    await hub.events.send(
      new PutTargetsCommand({
        Rule: 'on-image-event',
        EventBusName: HUB_BUS,
        Targets: [{ Id: 'queue', Arn: queueArn }],
      }),
    );

    const cloudTrailEvent = (eventName: string) => ({
      Source: 'aws.ec2',
      DetailType: 'AWS API Call via CloudTrail',
      Detail: JSON.stringify({ eventSource: 'ec2.amazonaws.com', eventName }),
    });
    const put = await clientsIn(MEMBER_REGION).events.send(
      new PutEventsCommand({ Entries: [cloudTrailEvent('RunInstances'), cloudTrailEvent('CreateImage')] }),
    );
    expect(put.FailedEntryCount).toBe(0);

    const received = await hub.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
    );
    const delivered = (received.Messages ?? []).map((message) => JSON.parse(message.Body ?? ''));
    expect(delivered).toHaveLength(1);
    expect(delivered[0]).toMatchObject({
      source: 'aws.ec2',
      'detail-type': 'AWS API Call via CloudTrail',
      detail: { eventSource: 'ec2.amazonaws.com', eventName: 'CreateImage' },
    });
  });
});
