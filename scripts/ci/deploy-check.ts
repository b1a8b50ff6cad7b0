// CI: the whole stack deployed with `npm run deploy:local` to a fresh moto_server, then checked
// through the services' own APIs, redeployed with a changed param, and removed.
//
//   node scripts/ci/deploy-check.ts
//
// Generic over the packaged template: every resource whose type moto's CloudFormation creates must
// be listed by the stack and found by its service's API under its physical id, so a resource added
// to serverless.yml or by a plugin is checked without touching this file. A type moto creates but
// no check here knows fails the run, naming the type to add to checksFor(). What moto does not
// create (it lists such a resource with neither a type nor a logical id: AWS::CloudWatch::Alarm,
// AWS::Lambda::EventInvokeConfig, ...) is counted and reported, what it names must be in the stack,
// and the rest is left to the package checks on the template.
// Every step has a deadline, so a hang fails CI instead of stalling it.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  CloudFormationClient,
  DescribeStacksCommand,
  paginateListStackResources,
} from '@aws-sdk/client-cloudformation';
import { CloudWatchClient, GetDashboardCommand } from '@aws-sdk/client-cloudwatch';
import { CloudWatchLogsClient, DescribeLogGroupsCommand } from '@aws-sdk/client-cloudwatch-logs';
import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeEventBusCommand, DescribeRuleCommand, EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { GetRoleCommand, GetRolePolicyCommand, IAMClient } from '@aws-sdk/client-iam';
import {
  GetFunctionCommand,
  GetFunctionConfigurationCommand,
  GetPolicyCommand,
  LambdaClient,
  ListVersionsByFunctionCommand,
} from '@aws-sdk/client-lambda';
import { HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { DescribeStateMachineCommand, SFNClient } from '@aws-sdk/client-sfn';
import { GetTopicAttributesCommand, SNSClient } from '@aws-sdk/client-sns';
import { GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs';

const ROOT = resolve(import.meta.dirname, '../..');
/** The README's deploy lines name this Region. */
const REGION = 'eu-west-1';
const STACK = 'ami-janitor-dev';
const TEMPLATE = join(ROOT, '.serverless', 'cloudformation-template-update-stack.json');
/** The redeploy's param, and what the schedule rule must then say. */
const CHANGED_SCHEDULE = 'rate(2 days)';
/** One deploy on 2 busy cores takes under half a minute; a hang takes forever. */
const STEP_DEADLINE_MS = 180_000;
const MOTO_START_MS = 30_000;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
interface Resource {
  Type: string;
  Condition?: string;
  DeletionPolicy?: string;
  Properties?: Record<string, Json>;
}
interface Template {
  Resources: Record<string, Resource>;
  Conditions?: Record<string, Json>;
}

const failures: string[] = [];
function check(ok: boolean, what: string): boolean {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
  return ok;
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

// ---------------------------------------------------------------------------------------------
// moto_server and the commands under test

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? done(address.port) : fail(new Error('no port')),
      );
    });
  });
}

async function startMoto(port: number): Promise<ChildProcess> {
  const moto = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  const deadline = Date.now() + MOTO_START_MS;
  while (Date.now() < deadline) {
    if (moto.exitCode !== null) throw new Error(`moto_server exited with ${moto.exitCode}`);
    try {
      await fetch(`http://127.0.0.1:${port}/moto-api/data.json`, { signal: AbortSignal.timeout(1_000) });
      return moto;
    } catch {
      await new Promise((wait) => setTimeout(wait, 200));
    }
  }
  moto.kill('SIGKILL');
  throw new Error(`moto_server did not answer on port ${port} within ${MOTO_START_MS} ms`);
}

/** The Python moto_server runs on: its script's interpreter, else python3. */
function motoPython(): string {
  const script = execFileSync('bash', ['-c', 'command -v moto_server'], { encoding: 'utf8' }).trim();
  const shebang = readFileSync(script, 'utf8').split('\n', 1)[0] ?? '';
  return /^#!(\S*python[\d.]*)$/.exec(shebang)?.[1] ?? 'python3';
}

/** The resource types moto's CloudFormation creates, asked of moto itself. */
function motoCreatableTypes(): Set<string> {
  const probe =
    'import json; from moto.cloudformation.parsing import get_model_map; print(json.dumps(sorted(get_model_map())))';
  const output = execFileSync(motoPython(), ['-c', probe], { encoding: 'utf8', timeout: 60_000 });
  return new Set(JSON.parse(output) as string[]);
}

/** What to stop if this script is itself stopped (CI's own time limit): moto, a running command. */
const running = new Set<() => void>();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const stop of running) stop();
    process.exit(1);
  });
}

/** The two `npx serverless deploy` lines of the README's Deploy section: the dry run, then the live one. */
function readmeDeployLines(): [string, string] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Deploy\n');
  const end = readme.indexOf('\n## ', start + 1);
  const lines = readme
    .slice(start, end)
    .split('\n')
    .filter((line) => line.startsWith('npx serverless deploy '));
  if (start === -1 || lines.length !== 2 || !lines[1]?.includes('dryRun=false')) {
    throw new Error(
      `README.md's Deploy section should show the dry-run and the live deploy line:\n${lines.join('\n')}`,
    );
  }
  return [lines[0] as string, lines[1] as string];
}

/** A README line in bash, as a person would paste it. */
function bashRun(line: string, env: NodeJS.ProcessEnv): Promise<number> {
  return spawnRun('README line', 'bash', ['-c', line], env);
}

/** An npm script in its own process group, all of it killed at the deadline; returns seconds taken. */
function npmRun(label: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return spawnRun(label, 'npm', args, env);
}

async function spawnRun(
  label: string,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<number> {
  console.log(`\n---- ${command} ${args.join(' ')}`);
  const started = Date.now();
  const child = spawn(command, args, { cwd: ROOT, env, stdio: 'inherit', detached: true });
  const { pid } = child;
  let timedOut = false;
  const killGroup = () => {
    try {
      if (pid !== undefined) process.kill(-pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  running.add(killGroup);
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, STEP_DEADLINE_MS);
  const code = await new Promise<number | null>((done) => child.once('exit', (exitCode) => done(exitCode)));
  clearTimeout(timer);
  running.delete(killGroup);
  const seconds = (Date.now() - started) / 1000;
  const outcome = timedOut ? `killed after ${STEP_DEADLINE_MS / 1000} s` : `exit ${code}`;
  console.log(`---- ${label}: ${outcome}, ${seconds.toFixed(1)} s`);
  if (timedOut || code !== 0) throw new Error(`${label} failed: ${outcome}`);
  return seconds;
}

// ---------------------------------------------------------------------------------------------
// The template

/** A condition's value; the params are resolved by then, so only literals are compared. */
function evaluate(node: Json, conditions: Record<string, Json>): boolean | string {
  if (typeof node === 'string') return node;
  if (node !== null && typeof node === 'object' && !Array.isArray(node)) {
    const [[name, value] = []] = Object.entries(node);
    const list = Array.isArray(value) ? value : [];
    if (name === 'Fn::Equals')
      return evaluate(list[0] ?? null, conditions) === evaluate(list[1] ?? null, conditions);
    if (name === 'Fn::Not') return !evaluate(list[0] ?? null, conditions);
    if (name === 'Fn::And') return list.every((item) => evaluate(item, conditions) === true);
    if (name === 'Fn::Or') return list.some((item) => evaluate(item, conditions) === true);
    if (name === 'Condition' && typeof value === 'string') {
      return evaluate(conditions[value] ?? null, conditions);
    }
  }
  throw new Error(`cannot evaluate condition ${JSON.stringify(node)}: extend evaluate()`);
}

function activeConditions(template: Template): Map<string, boolean> {
  const conditions = template.Conditions ?? {};
  return new Map(
    Object.entries(conditions).map(([name, node]) => [name, evaluate(node, conditions) === true]),
  );
}

/** The logical ids a template node names by Ref, Fn::GetAtt or an Fn::Sub variable (not AWS::…). */
function references(node: Json): string[] {
  if (Array.isArray(node)) return node.flatMap(references);
  if (node === null || typeof node !== 'object') return [];
  const ref = node.Ref;
  if (typeof ref === 'string') return ref.startsWith('AWS::') ? [] : [ref];
  const getAtt = node['Fn::GetAtt'];
  if (Array.isArray(getAtt) && typeof getAtt[0] === 'string') return [getAtt[0]];
  const sub = node['Fn::Sub'];
  const text =
    typeof sub === 'string' ? sub : Array.isArray(sub) && typeof sub[0] === 'string' ? sub[0] : undefined;
  if (text !== undefined) {
    const own =
      Array.isArray(sub) && sub[1] !== null && typeof sub[1] === 'object' ? Object.keys(sub[1]) : [];
    const named = [...text.matchAll(/\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}/g)].map(
      (match) => match[1] ?? '',
    );
    return [
      ...named.filter((id) => !own.includes(id)),
      ...(Array.isArray(sub) ? references(sub[1] ?? null) : []),
    ];
  }
  return Object.values(node).flatMap(references);
}

// ---------------------------------------------------------------------------------------------
// Finding each resource through its service

const clientConfig = (endpoint: string) => ({
  endpoint,
  region: REGION,
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  maxAttempts: 1,
  requestHandler: { connectionTimeout: 3_000, requestTimeout: 20_000 },
});

type Clients = ReturnType<typeof makeClients>;
function makeClients(endpoint: string) {
  const config = clientConfig(endpoint);
  return {
    cloudformation: new CloudFormationClient(config),
    cloudwatch: new CloudWatchClient(config),
    dynamodb: new DynamoDBClient(config),
    events: new EventBridgeClient(config),
    iam: new IAMClient(config),
    lambda: new LambdaClient(config),
    logs: new CloudWatchLogsClient(config),
    s3: new S3Client({ ...config, forcePathStyle: true }),
    sfn: new SFNClient(config),
    sns: new SNSClient(config),
    sqs: new SQSClient(config),
  };
}

interface Subject {
  id: string;
  resource: Resource;
  /** As the stack lists it; moto leaves some empty (event buses, permissions, versions). */
  physicalId: string;
  /** The physical id of another resource of the stack. */
  physicalIdOf(id: string): string;
}

/** Whether the service finds the resource: false when it answers "not found", else it throws. */
type Find = (subject: Subject, clients: Clients) => Promise<boolean>;

async function found(call: () => Promise<unknown>, ...notFound: string[]): Promise<boolean> {
  try {
    await call();
    return true;
  } catch (error) {
    if (error instanceof Error && notFound.includes(error.name)) return false;
    throw error;
  }
}

/** A property naming another resource by Ref or Fn::GetAtt: that resource's physical id. */
function referenced(subject: Subject, value: Json | undefined): string {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const ref = value.Ref;
    if (typeof ref === 'string') return subject.physicalIdOf(ref);
    const getAtt = value['Fn::GetAtt'];
    if (Array.isArray(getAtt) && typeof getAtt[0] === 'string') return subject.physicalIdOf(getAtt[0]);
  }
  throw new Error(`${subject.id}: expected a Ref or Fn::GetAtt, got ${JSON.stringify(value)}`);
}

function stringProperty(subject: Subject, name: string): string {
  const value = subject.resource.Properties?.[name];
  if (typeof value !== 'string') throw new Error(`${subject.id}: ${name} is not a plain string`);
  return value;
}

/** An event bus named by Fn::GetAtt <bus>.Name, as the rules and permissions do: its Name property. */
function eventBusName(subject: Subject, template: Template): string | undefined {
  const value = subject.resource.Properties?.EventBusName;
  if (value === undefined || typeof value === 'string') return value;
  const getAtt =
    !Array.isArray(value) && value !== null && typeof value === 'object' ? value['Fn::GetAtt'] : undefined;
  const bus =
    Array.isArray(getAtt) && typeof getAtt[0] === 'string' ? template.Resources[getAtt[0]] : undefined;
  const name = bus?.Properties?.Name;
  if (typeof name !== 'string') throw new Error(`${subject.id}: cannot tell its EventBusName`);
  return name;
}

function checksFor(template: Template): Record<string, Find> {
  return {
    'AWS::Lambda::Function': async (s, c) =>
      found(
        () => c.lambda.send(new GetFunctionCommand({ FunctionName: s.physicalId })),
        'ResourceNotFoundException',
      ),
    // moto lists a version with no physical id: some published version of its function.
    'AWS::Lambda::Version': async (s, c) => {
      const FunctionName = referenced(s, s.resource.Properties?.FunctionName);
      try {
        const { Versions = [] } = await c.lambda.send(new ListVersionsByFunctionCommand({ FunctionName }));
        return Versions.some((version) => version.Version !== '$LATEST');
      } catch (error) {
        if (error instanceof Error && error.name === 'ResourceNotFoundException') return false;
        throw error;
      }
    },
    // moto lists a permission with no physical id: a statement of its function's policy for its principal.
    'AWS::Lambda::Permission': async (s, c) => {
      const FunctionName = referenced(s, s.resource.Properties?.FunctionName);
      const principal = stringProperty(s, 'Principal');
      try {
        const { Policy = '{}' } = await c.lambda.send(new GetPolicyCommand({ FunctionName }));
        const statements = (JSON.parse(Policy) as { Statement?: { Principal?: { Service?: string } }[] })
          .Statement;
        return (statements ?? []).some((statement) => statement.Principal?.Service === principal);
      } catch (error) {
        if (error instanceof Error && error.name === 'ResourceNotFoundException') return false;
        throw error;
      }
    },
    'AWS::Logs::LogGroup': async (s, c) => {
      const { logGroups = [] } = await c.logs.send(
        new DescribeLogGroupsCommand({ logGroupNamePrefix: s.physicalId }),
      );
      return logGroups.some((group) => group.logGroupName === s.physicalId);
    },
    'AWS::Events::Rule': async (s, c) => {
      const EventBusName = eventBusName(s, template);
      return found(
        () => c.events.send(new DescribeRuleCommand({ Name: s.physicalId, EventBusName })),
        'ResourceNotFoundException',
      );
    },
    'AWS::Events::EventBus': async (s, c) =>
      found(
        () => c.events.send(new DescribeEventBusCommand({ Name: s.physicalId || stringProperty(s, 'Name') })),
        'ResourceNotFoundException',
      ),
    'AWS::SQS::Queue': async (s, c) =>
      found(
        () => c.sqs.send(new GetQueueUrlCommand({ QueueName: s.physicalId.split('/').pop() })),
        'QueueDoesNotExist',
        'AWS.SimpleQueueService.NonExistentQueue',
      ),
    'AWS::IAM::Role': async (s, c) =>
      found(() => c.iam.send(new GetRoleCommand({ RoleName: s.physicalId })), 'NoSuchEntityException'),
    'AWS::IAM::Policy': async (s, c) => {
      const roles = s.resource.Properties?.Roles;
      const PolicyName = stringProperty(s, 'PolicyName');
      const names = Array.isArray(roles) ? roles.map((role) => referenced(s, role)) : [];
      const each = await Promise.all(
        names.map((RoleName) =>
          found(
            () => c.iam.send(new GetRolePolicyCommand({ RoleName, PolicyName })),
            'NoSuchEntityException',
          ),
        ),
      );
      return each.length > 0 && each.every(Boolean);
    },
    'AWS::S3::Bucket': async (s, c) =>
      found(() => c.s3.send(new HeadBucketCommand({ Bucket: s.physicalId })), 'NotFound', 'NoSuchBucket'),
    'AWS::StepFunctions::StateMachine': async (s, c) =>
      found(
        () => c.sfn.send(new DescribeStateMachineCommand({ stateMachineArn: s.physicalId })),
        'StateMachineDoesNotExist',
      ),
    'AWS::DynamoDB::Table': async (s, c) =>
      found(
        () => c.dynamodb.send(new DescribeTableCommand({ TableName: s.physicalId })),
        'ResourceNotFoundException',
      ),
    'AWS::SNS::Topic': async (s, c) =>
      found(
        () => c.sns.send(new GetTopicAttributesCommand({ TopicArn: s.physicalId })),
        'NotFoundException',
        'NotFound',
      ),
    'AWS::CloudWatch::Dashboard': async (s, c) =>
      found(
        () => c.cloudwatch.send(new GetDashboardCommand({ DashboardName: s.physicalId })),
        'ResourceNotFound',
        'ResourceNotFoundException',
      ),
  };
}

// ---------------------------------------------------------------------------------------------
// The run

interface Listed {
  type: string;
  physicalId: string;
  status: string;
}

async function stackResources(clients: Clients): Promise<{ listed: Map<string, Listed>; untyped: number }> {
  const listed = new Map<string, Listed>();
  let untyped = 0;
  for await (const page of paginateListStackResources(
    { client: clients.cloudformation },
    { StackName: STACK },
  )) {
    for (const summary of page.StackResourceSummaries ?? []) {
      if (!summary.ResourceType || !summary.LogicalResourceId) {
        untyped++;
        continue;
      }
      listed.set(summary.LogicalResourceId, {
        type: summary.ResourceType,
        physicalId: summary.PhysicalResourceId ?? '',
        status: summary.ResourceStatus ?? '',
      });
    }
  }
  return { listed, untyped };
}

async function stackStatus(clients: Clients): Promise<string | undefined> {
  try {
    const { Stacks = [] } = await clients.cloudformation.send(
      new DescribeStacksCommand({ StackName: STACK }),
    );
    return Stacks[0]?.StackStatus;
  } catch (error) {
    if (error instanceof Error && error.name === 'ValidationError' && /does not exist/.test(error.message)) {
      return undefined;
    }
    throw error;
  }
}

/** Checks the deployed stack against the packaged template; returns the subjects found. */
async function checkStack(clients: Clients, creatable: Set<string>): Promise<Subject[]> {
  const template = JSON.parse(readFileSync(TEMPLATE, 'utf8')) as Template;
  const conditions = activeConditions(template);
  // osls creates the stack with its deployment bucket alone, then updates it to the whole template.
  const status = await stackStatus(clients);
  check(status === 'UPDATE_COMPLETE', `stack ${STACK} is ${status ?? 'missing'}`);
  const { listed, untyped } = await stackResources(clients);
  const checks = checksFor(template);
  const physicalIdOf = (id: string) => {
    const entry = listed.get(id);
    if (!entry) throw new Error(`${id} is not listed by the stack`);
    return entry.physicalId;
  };

  const skipped = new Map<string, number>();
  let off = 0;
  const subjects: Subject[] = [];
  for (const [id, resource] of Object.entries(template.Resources)) {
    if (resource.Condition !== undefined && conditions.get(resource.Condition) !== true) {
      off++;
      check(!listed.has(id), `${id}: not created, its condition ${resource.Condition} being false`);
      continue;
    }
    if (!creatable.has(resource.Type)) {
      skipped.set(resource.Type, (skipped.get(resource.Type) ?? 0) + 1);
      continue;
    }
    const entry = listed.get(id);
    const listedOk =
      entry !== undefined && entry.type === resource.Type && /^(CREATE|UPDATE)_COMPLETE$/.test(entry.status);
    if (
      !check(listedOk, `${id} (${resource.Type}): listed by the stack${entry ? `, ${entry.status}` : ''}`)
    ) {
      continue;
    }
    const find = checks[resource.Type];
    if (!find) {
      check(
        false,
        `${id}: no API check for ${resource.Type} yet; add one to checksFor() in scripts/ci/deploy-check.ts`,
      );
      continue;
    }
    const subject: Subject = { id, resource, physicalId: entry?.physicalId ?? '', physicalIdOf };
    try {
      check(
        await find(subject, clients),
        `${id}: found by its service as ${subject.physicalId || '(no physical id)'}`,
      );
      subjects.push(subject);
    } catch (error) {
      check(false, `${id}: its service cannot be asked: ${describeError(error)}`);
    }
  }
  for (const [type, count] of skipped) {
    console.log(
      `skip ${count} x ${type}: moto's CloudFormation does not create it (checked in the template only)`,
    );
  }
  // moto never resolved what those name, so the template must: each a resource that is created.
  const dangling = Object.entries(template.Resources)
    .filter(([, resource]) => !creatable.has(resource.Type))
    .filter(([, resource]) => resource.Condition === undefined || conditions.get(resource.Condition) === true)
    .flatMap(([id, resource]) =>
      references(resource.Properties ?? null)
        .filter((name) => {
          const target = template.Resources[name];
          return !target || (target.Condition !== undefined && conditions.get(target.Condition) !== true);
        })
        .map((name) => `${id} -> ${name}`),
    );
  check(
    dangling.length === 0,
    `what moto does not create names only resources the stack has${dangling.length ? `: ${dangling.join(', ')}` : ''}`,
  );
  // moto lists what it does not create, and what a false condition leaves out, with no type or id.
  const notCreated = [...skipped.values()].reduce((sum, count) => sum + count, 0) + off;
  check(
    untyped === notCreated,
    `moto lists ${untyped} resources it did not create; the template has ${notCreated}`,
  );
  return subjects;
}

/** What EventBridge says of each schedule rule in the packaged template. */
async function schedules(clients: Clients): Promise<string[]> {
  const template = JSON.parse(readFileSync(TEMPLATE, 'utf8')) as Template;
  const { listed } = await stackResources(clients);
  const ids = Object.entries(template.Resources)
    .filter(
      ([, resource]) => resource.Type === 'AWS::Events::Rule' && resource.Properties?.ScheduleExpression,
    )
    .map(([id]) => id);
  return Promise.all(
    ids.map(async (id) => {
      const rule = await clients.events.send(new DescribeRuleCommand({ Name: listed.get(id)?.physicalId }));
      return rule.ScheduleExpression ?? '(none)';
    }),
  );
}

async function main(): Promise<void> {
  const port = await freePort();
  // moto listens on 127.0.0.1; localhost is how it wants the template URL (see emulator.cjs).
  const endpoint = `http://localhost:${port}`;
  const moto = await startMoto(port);
  const stopMoto = () => moto.kill('SIGKILL');
  running.add(stopMoto);
  const clients = makeClients(endpoint);
  const nowhere = join(tmpdir(), 'ami-janitor-deploy-check-no-such-file');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AWS_ENDPOINT_URL: endpoint,
    AWS_REGION: REGION,
    AWS_DEFAULT_REGION: REGION,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    // No profile of the machine's own can stand in for the keys above.
    AWS_PROFILE: '',
    AWS_CONFIG_FILE: nowhere,
    AWS_SHARED_CREDENTIALS_FILE: nowhere,
  };
  const timings: string[] = [];
  try {
    const creatable = motoCreatableTypes();

    timings.push(`deploy ${(await npmRun('deploy', ['run', 'deploy:local'], env)).toFixed(1)} s`);
    const subjects = await checkStack(clients, creatable);
    // The README's info line, as documented: it reads the deployed stack back.
    timings.push(`info ${(await npmRun('info', ['run', 'info:local'], env)).toFixed(1)} s`);
    const before = await schedules(clients);
    check(before.length > 0, `the template has a schedule rule (${before.join(', ')})`);

    const update = ['run', 'deploy:local', '--', `--param=schedule=${CHANGED_SCHEDULE}`];
    timings.push(`update ${(await npmRun('update', update, env)).toFixed(1)} s`);
    await checkStack(clients, creatable);
    const after = await schedules(clients);
    check(
      after.length > 0 &&
        after.every((expression) => expression === CHANGED_SCHEDULE) &&
        !before.includes(CHANGED_SCHEDULE),
      `EventBridge now says ${after.join(', ')}, the param's ${CHANGED_SCHEDULE}, where it said ${before.join(', ')}`,
    );

    // The README's own deploy lines, as written: live, then back to a dry run.
    const [dryRunLine, liveLine] = readmeDeployLines();
    for (const [line, dryRun] of [
      [liveLine, 'false'],
      [dryRunLine, 'true'],
    ] as const) {
      timings.push(`README deploy ${(await bashRun(line, env)).toFixed(1)} s`);
      const configuration = await clients.lambda.send(
        new GetFunctionConfigurationCommand({ FunctionName: `${STACK}-sweep` }),
      );
      const value = configuration.Environment?.Variables?.AMI_JANITOR_DRY_RUN;
      check(
        value === dryRun,
        `after \`${line.split('#')[0]?.trim()}\` the sweep's dry run is ${value} (expected ${dryRun})`,
      );
    }

    timings.push(`remove ${(await npmRun('remove', ['run', 'remove:local'], env)).toFixed(1)} s`);
    check((await stackStatus(clients)) === undefined, `stack ${STACK} is gone`);
    const checks = checksFor(JSON.parse(readFileSync(TEMPLATE, 'utf8')) as Template);
    for (const subject of subjects) {
      if (subject.resource.DeletionPolicy === 'Retain') continue;
      const find = checks[subject.resource.Type];
      if (!find) continue;
      try {
        check(!(await find(subject, clients)), `${subject.id}: gone`);
      } catch (error) {
        check(false, `${subject.id}: cannot tell whether it is gone: ${describeError(error)}`);
      }
    }
  } finally {
    running.delete(stopMoto);
    moto.kill('SIGTERM');
    for (const client of Object.values(clients)) client.destroy();
  }
  console.log(`\ntimings: ${timings.join(', ')}`);
  if (failures.length > 0) {
    console.error(`\n${failures.length} deploy check(s) failed`);
    process.exit(1);
  }
}

await main();
