import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { parse, type Tags } from 'yaml';
import { parsePolicy } from '../../src/config/policy.ts';
import { FutureClockError } from '../../src/core/clock.ts';
import { MAX_REASON_CHARS, ORG_DIGEST_STATE_KEY, type TargetSummary } from '../../src/core/org-digest.ts';
import { parseTargetSpec, TargetError, type TargetSource } from '../../src/core/targets.ts';
import { DEMO_ACCOUNT_ID, demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import type { ExecutionsPort } from '../../src/handlers/start-sweep.ts';
import type { SlackMessage } from '../../src/notify/slack.ts';
import { memoryState, recordingLog } from './factories.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const ASL_FILE = join(ROOT, 'statemachine', 'sweep.asl.json');
const require = createRequire(import.meta.url);
const aslValidator = require('asl-validator') as (definition: unknown) => {
  isValid: boolean;
  errors: { Message?: string }[];
};

interface State {
  Type: string;
  Resource?: string;
  Next?: string;
  End?: boolean;
  TimeoutSeconds?: number;
  Parameters?: Record<string, unknown>;
  OutputPath?: string;
  MaxConcurrency?: number;
  ItemsPath?: string;
  ItemSelector?: Record<string, unknown>;
  ItemProcessor?: { StartAt: string; States: Record<string, State> };
  Choices?: { Variable: string; StringEquals?: string; Next: string }[];
  Default?: string;
  Retry?: {
    ErrorEquals: string[];
    MaxAttempts?: number;
    IntervalSeconds?: number;
    BackoffRate?: number;
    JitterStrategy?: string;
  }[];
  Catch?: { ErrorEquals: string[]; Next: string; ResultPath?: string }[];
}

interface Definition {
  StartAt: string;
  TimeoutSeconds?: number;
  States: Record<string, State>;
}

const definition = JSON.parse(readFileSync(ASL_FILE, 'utf8')) as Definition;
const map = definition.States.SweepTargets as State;
const iteration = map.ItemProcessor?.States ?? {};
const sweepTarget = iteration.SweepTarget as State;

const LAMBDA_ERRORS = [
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
];

// CloudFormation's short forms, kept as plain values, as test/unit/iam.test.ts reads serverless.yml.
const intrinsics: Tags = ['!Sub', '!Ref', '!GetAtt'].flatMap((tag) =>
  (['scalar', 'seq'] as const).map((collection) => ({
    tag,
    collection,
    resolve: (value: unknown) => ({ [tag]: value }),
  })),
) as Tags;

interface ServerlessYml {
  params: { default: Record<string, unknown> };
  functions: Record<
    string,
    { handler: string; timeout?: number; role?: string; events?: Record<string, unknown>[] }
  >;
  resources: {
    Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
  };
}

const serverless = parse(readFileSync(join(ROOT, 'serverless.yml'), 'utf8'), {
  customTags: intrinsics,
  logLevel: 'error',
}) as ServerlessYml;

function statementsOf(
  role: string,
): { Sid: string; Effect: string; Action: string | string[]; Resource: unknown }[] {
  const resource = serverless.resources.Resources[role];
  if (!resource) throw new Error(`no ${role}`);
  const policies = resource.Properties.Policies as { PolicyDocument: { Statement: never[] } }[];
  return policies.flatMap((policy) => policy.PolicyDocument.Statement);
}

describe('the state machine definition (statemachine/sweep.asl.json)', () => {
  it('is valid Amazon States Language', () => {
    // A copy: the validator writes its defaults (QueryLanguage) into what it is given.
    const { isValid, errors } = aslValidator(structuredClone(definition));
    expect(errors.map((error) => error.Message)).toEqual([]);
    expect(isValid).toBe(true);
  });

  it('lists the targets, maps them with MaxConcurrency 10, then aggregates', () => {
    expect(definition.StartAt).toBe('ListTargets');
    expect(definition.States.ListTargets?.Next).toBe('SweepTargets');
    expect(map).toMatchObject({
      Type: 'Map',
      ItemsPath: '$.targets',
      MaxConcurrency: 10,
      // Each target's entry is replaced by its outcome: the run's data holds one entry per target.
      ResultPath: '$.targets',
      Next: 'Aggregate',
    });
    // The run's id and clock come from the execution, not from a clock of the step's own.
    expect(definition.States.ListTargets?.Parameters).toEqual({
      'executionName.$': '$$.Execution.Name',
      'startTime.$': '$$.Execution.StartTime',
      'input.$': '$',
    });
    expect(map.ItemSelector).toEqual({
      'target.$': '$$.Map.Item.Value',
      'runId.$': '$.runId',
      'asOf.$': '$.asOf',
    });
    expect(definition.States.Aggregate).toMatchObject({ Type: 'Task', End: true });
    // A hung execution cannot hold the schedule (the starter skips while one runs) for ever.
    expect(definition.TimeoutSeconds).toBeGreaterThan(0);
  });

  it('retries the sweep-target task on Lambda errors with backoff, but never on errors a retry cannot fix', () => {
    const retry = sweepTarget.Retry ?? [];
    const [never, busy, lambda, anyOther] = retry;
    expect(never?.MaxAttempts).toBe(0);
    expect(never?.ErrorEquals).toEqual(
      expect.arrayContaining(['SweepTargetInputError', 'FutureClockError', 'TargetAccessError']),
    );
    // A target another run holds is waited for past the longest a lock is held (16 minutes).
    expect(busy?.ErrorEquals).toEqual(['SweepBusyError']);
    const waits = Array.from(
      { length: busy?.MaxAttempts ?? 0 },
      (_, attempt) => (busy?.IntervalSeconds ?? 0) * (busy?.BackoffRate ?? 1) ** attempt,
    );
    expect(waits.reduce((sum, wait) => sum + wait, 0)).toBeGreaterThan(16 * 60);
    expect(lambda?.ErrorEquals).toEqual(expect.arrayContaining(LAMBDA_ERRORS));
    expect(lambda?.MaxAttempts).toBeGreaterThanOrEqual(3);
    expect(lambda?.BackoffRate).toBeGreaterThan(1);
    expect(lambda?.JitterStrategy).toBe('FULL');
    // States.ALL must come last; an error named in an earlier retrier never reaches it.
    expect(anyOther?.ErrorEquals).toEqual(['States.ALL']);
    expect(retry).toHaveLength(4);
  });

  it('catches a target that failed after its retries into a Pass that records it, so the Map goes on', () => {
    expect(sweepTarget.Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'RecordFailure' },
    ]);
    expect(iteration.RecordFailure).toEqual({
      Type: 'Pass',
      Comment: expect.any(String),
      Parameters: {
        status: 'failed',
        'target.$': '$.target',
        'error.$': '$.error.Error',
        'cause.$': '$.error.Cause',
      },
      End: true,
    });
  });

  it('loops back to the sweep-target task while the summary says continue, and ends in the summary', () => {
    expect(map.ItemProcessor?.StartAt).toBe('SweepTarget');
    expect(sweepTarget.Next).toBe('MoreToDo');
    expect(iteration.MoreToDo).toMatchObject({
      Type: 'Choice',
      Choices: [{ Variable: '$.summary.status', StringEquals: 'continue', Next: 'SweepTarget' }],
      Default: 'TargetDone',
    });
    expect(iteration.TargetDone).toEqual({
      Type: 'Pass',
      Comment: expect.any(String),
      OutputPath: '$.summary',
      End: true,
    });
  });

  it('bounds every task, the sweep-target task beyond its function timeout', () => {
    const tasks = [...Object.values(definition.States), ...Object.values(iteration)].filter(
      (state) => state.Type === 'Task',
    );
    expect(tasks).toHaveLength(3);
    for (const task of tasks) expect(task.TimeoutSeconds).toBeGreaterThan(0);
    expect(sweepTarget.TimeoutSeconds).toBeGreaterThan(serverless.functions.sweepTarget?.timeout ?? Infinity);
  });

  it('names only errors that the code throws under those names', () => {
    const named = new Set<string>();
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.name.endsWith('.ts')) {
          for (const [, name] of readFileSync(path, 'utf8').matchAll(/name = '([A-Za-z]+)'/g))
            named.add(name ?? '');
        }
      }
    };
    walk(join(ROOT, 'src'));
    const ours = [...Object.values(definition.States), ...Object.values(iteration)]
      .flatMap((state) => state.Retry ?? [])
      .flatMap((retrier) => retrier.ErrorEquals)
      .filter((name) => !name.startsWith('Lambda.') && !name.startsWith('States.'));
    expect(ours.length).toBeGreaterThan(0);
    expect(ours.filter((name) => !named.has(name))).toEqual([]);
  });
});

describe('the state machine in serverless.yml', () => {
  const resources = serverless.resources.Resources;

  it('is built from the ASL file, its three Lambda ARNs substituted, with MaxConcurrency from the param', async () => {
    const machine = resources.SweepStateMachine;
    expect(machine?.Type).toBe('AWS::StepFunctions::StateMachine');
    expect(machine?.Properties.Definition).toBe(`$\{file(./statemachine/definition.cjs)}`);
    const placeholders = [...readFileSync(ASL_FILE, 'utf8').matchAll(/"\$\{(\w+)\}"/g)].map(
      ([, name]) => name,
    );
    expect(Object.keys(machine?.Properties.DefinitionSubstitutions as object).sort()).toEqual(
      [...new Set(placeholders)].sort(),
    );
    // The YAML's !GetAtt values, as plain values.
    expect(machine?.Properties.DefinitionSubstitutions).toEqual({
      ListTargetsFunctionArn: 'ListTargetsLambdaFunction.Arn',
      SweepTargetFunctionArn: 'SweepTargetLambdaFunction.Arn',
      AggregateFunctionArn: 'AggregateLambdaFunction.Arn',
    });
    expect(serverless.params.default.maxConcurrency).toBe(10);

    const build = require(join(ROOT, 'statemachine', 'definition.cjs')) as (context: {
      resolveVariable: (name: string) => Promise<unknown>;
    }) => Promise<Definition>;
    const params: Record<string, unknown> = { ...serverless.params.default, maxConcurrency: 7 };
    const resolveVariable = async (name: string) =>
      name === 'self:provider.region' ? 'eu-west-1' : params[name.replace(/^param:/, '')];
    const built = await build({ resolveVariable });
    expect(built.States.SweepTargets?.MaxConcurrency).toBe(7);
    expect({ ...built, States: { ...built.States, SweepTargets: map } }).toEqual(definition);

    params.maxConcurrency = 0;
    await expect(build({ resolveVariable })).rejects.toThrow(/maxConcurrency must be a whole number/);
    params.maxConcurrency = 10;
    params.accounts = '12345';
    await expect(build({ resolveVariable })).rejects.toThrow(
      /accounts: "12345" is not a 12-digit account id/,
    );
  });

  it('is started by the schedule through the starter, and nothing else is scheduled or fed by SQS', () => {
    const scheduled = Object.entries(serverless.functions).filter(([, fn]) =>
      (fn.events ?? []).some(
        (event) =>
          'schedule' in event ||
          ('eventBridge' in event &&
            typeof event.eventBridge === 'object' &&
            'schedule' in (event.eventBridge ?? {})),
      ),
    );
    expect(scheduled.map(([name]) => name)).toEqual(['startSweep']);
    expect(
      Object.values(serverless.functions).flatMap((fn) =>
        (fn.events ?? []).filter((event) => 'sqs' in event),
      ),
    ).toEqual([]);
    expect(resources.SweepContinuationQueue).toBeUndefined();
    expect(JSON.stringify(serverless)).not.toContain('CONTINUATION_QUEUE');
  });

  it('runs with a role that may invoke exactly its three functions', () => {
    expect(statementsOf('SweepStateMachineRole')).toEqual([
      {
        Sid: 'InvokeItsSteps',
        Effect: 'Allow',
        Action: 'lambda:InvokeFunction',
        Resource: [
          'ListTargetsLambdaFunction.Arn',
          'SweepTargetLambdaFunction.Arn',
          'AggregateLambdaFunction.Arn',
        ],
      },
    ]);
  });

  it("gives sweep-target every action of the sweep's role, the exempt denies, the member role to assume and the organisation's accounts to list", () => {
    const allowed = (role: string) =>
      new Set(
        statementsOf(role)
          .filter((statement) => statement.Effect === 'Allow')
          .flatMap((statement) => [statement.Action].flat()),
      );
    const sweep = allowed('SweepRole');
    const target = allowed('SweepTargetRole');
    expect([...sweep].filter((action) => !target.has(action))).toEqual([]);
    // Beyond the sweep's own: the member role, and the organisation's accounts (which are targets).
    expect([...target].filter((action) => !sweep.has(action))).toEqual([
      'sts:AssumeRole',
      'organizations:ListAccounts',
      'organizations:ListAccountsForParent',
      'organizations:ListOrganizationalUnitsForParent',
    ]);
    // The name member/template.yml's member role trusts by default.
    expect(serverless.resources.Resources.SweepTargetRole?.Properties.RoleName).toBe(
      `$\{self:service}-$\{sls:stage}-sweep-target`,
    );
    const assume = statementsOf('SweepTargetRole').find((statement) => statement.Action === 'sts:AssumeRole');
    expect(assume?.Resource).toBe(`arn:$\{AWS::Partition}:iam::*:role/$\{param:memberRoleName}`);
    const denies = (role: string) => statementsOf(role).filter((statement) => statement.Effect === 'Deny');
    expect(denies('SweepTargetRole')).toEqual(denies('SweepRole'));
    // Every Region: this account is a target in each Region the params name.
    const scoped = statementsOf('SweepTargetRole').flatMap((statement) => [statement.Resource].flat());
    expect(JSON.stringify(scoped)).not.toMatch(/ec2:\$\{AWS::Region\}/);
  });

  it('lets the starter only list and start executions of its state machine', () => {
    const starter = statementsOf('StartSweepRole').find(
      (statement) => statement.Sid === 'StartOneRunAtATime',
    );
    expect(starter).toMatchObject({
      Action: ['states:ListExecutions', 'states:StartExecution'],
      Resource: 'SweepStateMachine',
    });
  });
});

// The handler modules build their Lambda handlers when imported; every test below injects its own.
let startSweep: typeof import('../../src/handlers/start-sweep.ts');
let listTargets: typeof import('../../src/handlers/list-targets.ts');
let sweepTargetHandler: typeof import('../../src/handlers/sweep-target.ts');
let aggregate: typeof import('../../src/handlers/aggregate.ts');

beforeAll(async () => {
  vi.stubEnv('AMI_JANITOR_POLICY_FILE', resolve(ROOT, 'policy.yml'));
  vi.stubEnv('AWS_REGION', 'eu-west-1');
  [startSweep, listTargets, sweepTargetHandler, aggregate] = await Promise.all([
    import('../../src/handlers/start-sweep.ts'),
    import('../../src/handlers/list-targets.ts'),
    import('../../src/handlers/sweep-target.ts'),
    import('../../src/handlers/aggregate.ts'),
  ]);
  vi.unstubAllEnvs();
});

/** Step Functions' executions of one state machine, with its rules for names. */
function fakeStepFunctions() {
  const executions: { name: string; input: string; status: 'RUNNING' | 'SUCCEEDED'; startedAt: string }[] =
    [];
  const port: ExecutionsPort = {
    running: async () =>
      executions
        .filter((execution) => execution.status === 'RUNNING')
        .map(({ name, startedAt }) => ({ name, startedAt })),
    start: async (name, input) => {
      const same = executions.find((execution) => execution.name === name);
      if (same) {
        // Idempotent only while running with the same input; otherwise ExecutionAlreadyExists.
        if (same.status === 'RUNNING' && same.input === input)
          return { status: 'started', executionArn: `arn:${name}` };
        return { status: 'exists' };
      }
      executions.push({ name, input, status: 'RUNNING', startedAt: new Date().toISOString() });
      return { status: 'started', executionArn: `arn:${name}` };
    },
  };
  return { executions, port };
}

function tick(time: string) {
  return {
    version: '0',
    id: `event-${time}`,
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    time,
    detail: {},
  };
}

describe('the starter', () => {
  const REAL_NOW = new Date('2026-11-23T06:00:10Z');

  function setup() {
    const stepFunctions = fakeStepFunctions();
    const log = recordingLog();
    const handler = startSweep.makeStartSweepHandler({
      executions: stepFunctions.port,
      clock: () => REAL_NOW,
      log,
    });
    return { ...stepFunctions, handler, log };
  }

  it('starts one execution named after the schedule time, with that time as its input', async () => {
    const { executions, handler } = setup();

    const result = await handler(tick('2026-11-22T06:00:00Z'));

    expect(result).toEqual({
      status: 'started',
      executionName: 'sweep-2026-11-22T060000Z',
      executionArn: 'arn:sweep-2026-11-22T060000Z',
    });
    expect(executions).toEqual([
      expect.objectContaining({
        name: 'sweep-2026-11-22T060000Z',
        input: JSON.stringify({ time: '2026-11-22T06:00:00.000Z', trigger: 'schedule' }),
      }),
    ]);
  });

  it('starts nothing while an earlier run is still going, and says why', async () => {
    // Prepare: yesterday's run is still sweeping.
    const { executions, handler, log } = setup();
    await handler(tick('2026-11-22T06:00:00Z'));

    // Act
    const result = await handler(tick('2026-11-23T06:00:00Z'));

    // Assess
    expect(result).toEqual({
      status: 'skipped',
      executionName: 'sweep-2026-11-23T060000Z',
      reason: expect.stringMatching(
        /^execution sweep-2026-11-22T060000Z, started .*, is still running: two runs must never sweep the same target at once/,
      ),
    });
    expect(executions.map((execution) => execution.name)).toEqual(['sweep-2026-11-22T060000Z']);
    expect(log.entries.find((entry) => entry.message === 'sweep not started')?.level).toBe('warn');
  });

  it('starts nothing for a tick delivered twice, whether its run is going or done', async () => {
    const { executions, handler } = setup();
    await handler(tick('2026-11-22T06:00:00Z'));

    const whileRunning = await handler(tick('2026-11-22T06:00:00Z'));
    for (const execution of executions) execution.status = 'SUCCEEDED';
    const afterwards = await handler(tick('2026-11-22T06:00:00Z'));

    expect(whileRunning).toMatchObject({
      status: 'skipped',
      reason: expect.stringMatching(/already running/),
    });
    expect(afterwards).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/already started/) });
    expect(executions).toHaveLength(1);
  });

  it('starts the next tick once the earlier run is done', async () => {
    const { executions, handler } = setup();
    await handler(tick('2026-11-22T06:00:00Z'));
    for (const execution of executions) execution.status = 'SUCCEEDED';

    const result = await handler(tick('2026-11-23T06:00:00Z'));

    expect(result).toMatchObject({ status: 'started', executionName: 'sweep-2026-11-23T060000Z' });
  });

  it.each([
    {
      case: 'a schedule time later than the real clock',
      event: tick('2026-11-24T06:00:00Z'),
      reason: /later than the real clock/,
    },
    { case: 'a bare invocation', event: {}, reason: /a bare invocation starts nothing/ },
    { case: 'another event', event: { source: 'aws.s3' }, reason: /not a scheduled event/ },
  ])('starts nothing for $case', async ({ event, reason }) => {
    const { executions, handler } = setup();

    const result = await handler(event);

    expect(result).toEqual({ status: 'rejected', reason: expect.stringMatching(reason) });
    expect(executions).toEqual([]);
  });

  it('starts a run by hand through the same guard with {"mode":"apply"}', async () => {
    const { handler } = setup();

    const result = await handler({ mode: 'apply' });

    expect(result).toMatchObject({ status: 'started', executionName: 'manual-2026-11-23T060010Z' });
  });
});

describe('list-targets', () => {
  const REAL_NOW = new Date('2026-11-22T06:01:00Z');
  const source: TargetSource = {
    accountId: async () => '123456789012',
    organizationAccounts: async () => [
      { accountId: '111111111111', name: 'prod' },
      { accountId: '222222222222', name: 'dev' },
    ],
    enabledRegions: async () => ['eu-west-1', 'us-east-1'],
  };

  function handlerFor(params: Parameters<typeof parseTargetSpec>[0], maxTargets?: number) {
    return listTargets.makeListTargetsHandler({
      spec: parseTargetSpec(params),
      source,
      clock: () => REAL_NOW,
      log: recordingLog(),
      ...(maxTargets === undefined ? {} : { maxTargets }),
    });
  }

  it("takes the run's id from the execution's name and its clock from the schedule time", async () => {
    const handler = handlerFor({
      accounts: 'organization',
      regions: 'us-east-1,eu-west-1',
      homeRegion: 'eu-west-1',
    });

    const output = await handler({
      executionName: 'sweep-2026-11-22T060000Z',
      startTime: '2026-11-22T06:00:02.345Z',
      input: { time: '2026-11-22T06:00:00.000Z', trigger: 'schedule' },
    });

    expect(output).toEqual({
      runId: 'sweep-2026-11-22T060000Z',
      asOf: '2026-11-22T06:00:00.000Z',
      targets: [
        { accountId: '111111111111', region: 'eu-west-1', accountName: 'prod' },
        { accountId: '111111111111', region: 'us-east-1', accountName: 'prod' },
        { accountId: '222222222222', region: 'eu-west-1', accountName: 'dev' },
        { accountId: '222222222222', region: 'us-east-1', accountName: 'dev' },
      ],
    });
  });

  it("uses the execution's start time for an execution started without a schedule time", async () => {
    const handler = handlerFor({ homeRegion: 'eu-west-1' });

    const output = await handler({
      executionName: 'by-hand',
      startTime: '2026-11-22T06:00:02.345Z',
      input: {},
    });

    expect(output).toEqual({
      runId: 'by-hand',
      asOf: '2026-11-22T06:00:02.345Z',
      targets: [{ accountId: '123456789012', region: 'eu-west-1' }],
    });
  });

  it('refuses a clock later than the real one', async () => {
    const handler = handlerFor({ homeRegion: 'eu-west-1' });

    await expect(
      handler({
        executionName: 'x',
        startTime: '2026-11-22T06:00:00Z',
        input: { time: '2026-12-22T06:00:00Z' },
      }),
    ).rejects.toThrow(FutureClockError);
  });

  it("refuses more targets than one run's payload can carry, before anything is swept", async () => {
    const handler = handlerFor({ accounts: 'organization', regions: 'all', homeRegion: 'eu-west-1' }, 3);

    const result = handler({ executionName: 'x', startTime: '2026-11-22T06:00:00Z', input: null });

    await expect(result).rejects.toThrow(listTargets.TooManyTargetsError);
    await expect(result).rejects.toThrow(TargetError);
    await expect(result).rejects.toThrow(/4 targets .* more than the 3 one run can sweep/);
  });

  it('reads the target params from the environment serverless.yml sets', () => {
    expect(
      listTargets.targetSpecFromEnvironment({
        AWS_REGION: 'eu-west-1',
        AMI_JANITOR_ACCOUNTS: 'organization',
        AMI_JANITOR_ORGANIZATIONAL_UNITS: 'ou-ab12-cdef3456',
        AMI_JANITOR_EXCLUDE_ACCOUNTS: '222222222222',
        AMI_JANITOR_REGIONS: '',
        AMI_JANITOR_MEMBER_ROLE_NAME: 'ami-janitor-member',
        AMI_JANITOR_ORGANIZATION_ROLE_ARN: '',
      }),
    ).toEqual({
      accounts: { kind: 'organization', organizationalUnits: ['ou-ab12-cdef3456'] },
      excludeAccounts: ['222222222222'],
      regions: { kind: 'list', regions: ['eu-west-1'] },
      memberRoleName: 'ami-janitor-member',
    });
    expect(() =>
      listTargets.targetSpecFromEnvironment({ AWS_REGION: 'eu-west-1', AMI_JANITOR_ACCOUNTS: 'me' }),
    ).toThrow(TargetError);
  });
});

describe('sweep-target errors', () => {
  const TARGET = { accountId: DEMO_ACCOUNT_ID, region: 'eu-west-1' };
  const NOW = new Date('2026-11-22T06:00:00Z');

  function handlerWith(
    ports: () => Promise<never> | Promise<{ inventory: MemoryAccount; actions: MemoryAccount }>,
  ) {
    return sweepTargetHandler.makeSweepTargetHandler({
      ports,
      policy: { ...parsePolicy(demoPolicyDocument), dryRun: false },
      dryRun: true,
      clock: () => NOW,
      log: recordingLog(),
    });
  }
  const context = { getRemainingTimeInMillis: () => 600_000 };
  const input = { target: TARGET, runId: 'sweep-1', asOf: NOW.toISOString() };

  it('fails short: a message naming the target and no stack trace, the whole error kept as its cause', async () => {
    const cause = Object.assign(new Error(`connect ECONNREFUSED ${'x'.repeat(2_000)}`), {
      code: 'ECONNREFUSED',
    });
    const handler = handlerWith(() => Promise.reject(cause));

    const error = await handler(input, context).catch((thrown: unknown) => thrown);

    expect(error).toBeInstanceOf(sweepTargetHandler.TargetSweepError);
    const failure = error as Error;
    expect(failure.message).toMatch(
      new RegExp(`^${DEMO_ACCOUNT_ID}/eu-west-1: ECONNREFUSED: connect ECONNREFUSED`),
    );
    expect(failure.message.length).toBeLessThanOrEqual(MAX_REASON_CHARS);
    // Lambda reports the stack beside the message in the error's Cause: only the name is kept.
    expect(failure.stack).toBe('TargetSweepError');
    expect(failure.cause).toBe(cause);
  });

  it('keeps the name TargetAccessError for a member role that refused, which the state machine does not retry', async () => {
    const { TargetAccessError } = await import('../../src/adapters/targets.ts');
    const refused = new TargetAccessError(
      '210987654321',
      'arn:aws:iam::210987654321:role/ami-janitor-member',
      {
        code: 'AccessDenied',
      },
    );
    const handler = handlerWith(() => Promise.reject(refused));

    await expect(handler(input, context)).rejects.toMatchObject({ name: 'TargetAccessError' });
  });

  it('changes nothing in an account other than the target it was given', async () => {
    const account = new MemoryAccount(demoAccount(NOW));
    const handler = handlerWith(async () => ({ inventory: account, actions: account }));

    await expect(
      handler({ ...input, target: { accountId: '210987654321', region: 'eu-west-1' } }, context),
    ).rejects.toThrow(sweepTargetHandler.TargetMismatchError);
    expect(account.calls.filter((call) => !call.startsWith('describe'))).toEqual([]);
  });
});

/** A summary as sweep-target makes it, from a real (demo) run report. */
async function demoSummary(target: {
  accountId: string;
  region: string;
  accountName?: string;
}): Promise<TargetSummary> {
  const account = new MemoryAccount(demoAccount(new Date('2026-11-14T06:00:00Z')));
  const log = recordingLog();
  const handler = sweepTargetHandler.makeSweepTargetHandler({
    ports: async () => ({
      inventory: account,
      actions: account,
      snapshots: { inventory: account, sharing: account, actions: account },
    }),
    policy: { ...parsePolicy(demoPolicyDocument), dryRun: false, graceDays: 0 },
    dryRun: false,
    clock: () => new Date('2026-11-22T07:00:00Z'),
    log,
  });
  const output = await handler(
    { target: { ...target, accountId: DEMO_ACCOUNT_ID }, runId: 'sweep-1', asOf: '2026-11-22T06:00:00.000Z' },
    { getRemainingTimeInMillis: () => 600_000 },
  );
  return { ...output.summary, accountId: target.accountId };
}

/** What the state machine's RecordFailure state makes of a target that failed. */
function recordedFailure(
  target: { accountId: string; region: string; accountName?: string },
  error: string,
  message: string,
) {
  // Lambda's Cause for a function error: its type, its message, and its stack (one line here).
  return {
    status: 'failed',
    target,
    error,
    cause: JSON.stringify({ errorType: error, errorMessage: message, trace: [error] }),
  };
}

describe('payloads', () => {
  it("keep the run's data for the most targets a run takes within Step Functions' 256 KB", async () => {
    // Prepare: the largest a summary gets (a long account name, every counter in the millions)
    // and the largest failure TargetSweepError makes, for every target.
    const longName = { accountId: '111111111111', region: 'ap-southeast-5', accountName: 'n'.repeat(200) };
    const summary = await demoSummary(longName);
    const widest: TargetSummary = {
      ...summary,
      status: 'stopped',
      totals: Object.fromEntries(
        Object.keys(summary.totals).map((key) => [key, 9_999_999]),
      ) as TargetSummary['totals'],
      reclaimedGiB: 9_999_999.99,
      reclaimableGiB: 9_999_999.99,
      savingUsd: 9_999_999.99,
    };
    const failed = recordedFailure(
      { ...longName, accountName: 'n'.repeat(64) },
      'TargetSweepError',
      'm'.repeat(MAX_REASON_CHARS),
    );

    // Act: the Map state's output, as the Aggregate task receives it.
    const sizeWith = (result: unknown) =>
      Buffer.byteLength(
        JSON.stringify({
          runId: 'sweep-2026-11-22T060000Z',
          asOf: '2026-11-22T06:00:00.000Z',
          targets: Array.from({ length: listTargets.MAX_TARGETS }, () => result),
        }),
      );

    // Assess
    expect(summary.accountName).toHaveLength(64);
    expect(sizeWith(widest)).toBeLessThan(256 * 1024);
    expect(sizeWith(failed)).toBeLessThan(256 * 1024);
  });
});

describe('the aggregate', () => {
  function setup(digest: 'changes' | 'always' | 'never' = 'changes') {
    const sent: SlackMessage[] = [];
    const state = memoryState();
    const log = recordingLog();
    const handler = aggregate.makeAggregateHandler({
      notifier: {
        send: async (message) => {
          sent.push(message);
          return { delivered: true, attempts: 1, status: 200 };
        },
      },
      state,
      policy: { digest },
      log,
    });
    return { handler, sent, state, log };
  }
  const context = { getRemainingTimeInMillis: () => 55_000 };

  async function run() {
    const prod = await demoSummary({ accountId: '111111111111', region: 'eu-west-1', accountName: 'prod' });
    const prodUs = await demoSummary({ accountId: '111111111111', region: 'us-east-1', accountName: 'prod' });
    const failed = recordedFailure(
      { accountId: '222222222222', region: 'eu-west-1', accountName: 'dev' },
      'TargetAccessError',
      'AccessDenied: cannot assume arn:aws:iam::222222222222:role/ami-janitor-member',
    );
    return {
      runId: 'sweep-2026-11-22T060000Z',
      asOf: '2026-11-22T06:00:00.000Z',
      targets: [prod, prodUs, failed],
    };
  }

  it('posts one digest with the totals, the accounts with most to reclaim and the failures by account', async () => {
    const { handler, sent, state } = setup();
    const input = await run();

    const output = await handler(input, context);

    expect(output).toMatchObject({ digest: 'sent', targets: { total: 3, done: 2, stopped: 0, failed: 1 } });
    expect(sent).toHaveLength(1);
    const text = JSON.stringify(sent[0]);
    expect(sent[0]?.blocks[0]).toMatchObject({ text: { text: 'ami-janitor sweep: 2 accounts, 2 Regions' } });
    expect(text).toContain('*Most to reclaim* (1 account)');
    expect(text).toContain('`111111111111` prod');
    expect(text).toContain('(2 Regions)');
    expect(text).toContain(':x: *Failures by account* (1)');
    expect(text).toContain(
      '`222222222222` dev — eu-west-1: `TargetAccessError` AccessDenied: cannot assume arn:aws:iam::222222222222:role/ami-janitor-member',
    );
    expect(state.values.has(ORG_DIGEST_STATE_KEY)).toBe(true);
  });

  it("sends nothing the second time when nothing changed, and nothing at all with digest 'never'", async () => {
    const { handler, sent } = setup();
    await handler(await run(), context);

    const again = await handler(await run(), context);
    const never = await setup('never').handler(await run(), context);

    expect(again.digest).toBe('unchanged');
    expect(never.digest).toBe('disabled');
    expect(sent).toHaveLength(1);
  });

  it('says so when the targets could not be listed', async () => {
    const { handler, sent } = setup();

    const output = await handler(
      {
        runId: 'sweep-1',
        asOf: '2026-11-22T06:00:00Z',
        targets: [],
        listingError: { error: 'TargetSourceError', cause: 'cannot list the organisation' },
      },
      context,
    );

    expect(output.digest).toBe('sent');
    expect(JSON.stringify(sent[0])).toContain(
      ':x: *The targets could not be listed*, so nothing was swept: `TargetSourceError`: cannot list the organisation',
    );
  });

  it('refuses an input that is not a run', async () => {
    const { handler } = setup();

    await expect(handler({ runId: 'x' }, context)).rejects.toThrow(aggregate.AggregateInputError);
  });
});
