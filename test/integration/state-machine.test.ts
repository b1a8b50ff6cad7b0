import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DescribeImagesCommand } from '@aws-sdk/client-ec2';
import {
  CreateStateMachineCommand,
  DescribeExecutionCommand,
  ListExecutionsCommand,
  SFNClient,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parsePolicy } from '../../src/config/policy.ts';
import type { TargetSummary } from '../../src/core/org-digest.ts';
import type { RunReport } from '../../src/core/report.ts';
import { parseTargetSpec, type ResolvedTarget } from '../../src/core/targets.ts';
import type { SlackMessage } from '../../src/notify/slack.ts';
import { recordingLog } from '../unit/factories.ts';
import { describeWithMoto, MOTO_ACCOUNT_ID, type MotoHandle } from './moto.ts';
import { motoClientConfig, Seeder } from './seed.ts';
import { type LocalSlack, startLocalSlack } from './slack-server.ts';

/**
 * The real state machine (statemachine/sweep.asl.json) run by aws-local-stepfunctions, its three
 * Lambda tasks bound to the real raw handlers in this process, against moto: the targets are moto's
 * account in three Regions (accounts=self, so no role is assumed), listed by the real target
 * adapter, swept through the real adapters, and the digest posted to a real HTTP server.
 */

const ROOT = resolve(import.meta.dirname, '../..');
const ASL_FILE = join(ROOT, 'statemachine', 'sweep.asl.json');
const REGIONS = ['eu-west-1', 'us-east-1', 'us-west-2'];
/** The Region whose calls fail, as an account's would with an SCP denying it. */
const FAILING_REGION = 'eu-west-1';
const POLICY = parsePolicy(
  parseYaml(`
dryRun: false
keepLatest:
  count: 1
  familyTags: [Family]
graceDays: 7
`),
);
const DAY_MS = 86_400_000;

/** An event of an execution's log (the library does not export the type). */
type EventLog =
  ReturnType<StateMachine['run']>['eventLogs'] extends AsyncGenerator<infer Event> ? Event : never;

interface Run {
  output: { runId: string; digest: string; targets: { total: number; done: number; failed: number } };
  events: EventLog[];
  /** Every input the SweepTarget task was given, in order. */
  sweepInputs: { target: ResolvedTarget; continuation?: { invocation: number } }[];
  /** What each target's Map iteration ended in, as the Aggregate task got it. */
  outcomes: Record<string, unknown>;
  reports: RunReport[];
}

/**
 * The adapters and handlers, imported once the environment points at moto: the adapters read some
 * of it (AWS_MAX_ATTEMPTS, which keeps moto's HTML 500s from being retried) when first imported,
 * and each handler module builds its Lambda handler on import.
 */
async function importSources() {
  const modules = await Promise.all([
    import('../../src/adapters/limiter.ts'),
    import('../../src/adapters/state.ts'),
    import('../../src/adapters/targets.ts'),
    import('../../src/handlers/sweep-ports.ts'),
    import('../../src/notify/slack.ts'),
    import('../../src/handlers/list-targets.ts'),
    import('../../src/handlers/sweep-target.ts'),
    import('../../src/handlers/aggregate.ts'),
    import('../../src/handlers/start-sweep.ts'),
  ]);
  const [limiter, state, targets, ports, slack, listTargets, sweepTarget, aggregate, startSweep] = modules;
  return {
    ...limiter,
    ...state,
    ...targets,
    ...ports,
    ...slack,
    ...listTargets,
    ...sweepTarget,
    ...aggregate,
    ...startSweep,
  };
}

let sources: Awaited<ReturnType<typeof importSources>> | undefined;

/** Sets the environment as Lambda's would be, then imports what reads it. */
async function loadSources(env: Record<string, string>) {
  for (const [key, value] of Object.entries(env)) process.env[key] = value;
  process.env.AMI_JANITOR_POLICY_FILE = join(ROOT, 'policy.yml');
  sources ??= await importSources();
  return sources;
}

describeWithMoto('the sweep state machine against moto', (moto: MotoHandle) => {
  let slack: LocalSlack;
  const saved: Record<string, string | undefined> = {};
  let seeded: Record<string, { expired: string[]; kept: string[] }>;
  const seeders: Seeder[] = [];

  beforeAll(async () => {
    slack = await startLocalSlack();
  });

  afterAll(async () => {
    await slack.close();
  });

  beforeEach(async () => {
    await moto.reset();
    // The real adapters build their clients from the environment, as in Lambda.
    for (const [key, value] of Object.entries(moto.env())) {
      saved[key] = process.env[key];
      process.env[key] = value;
    }
    saved.AMI_JANITOR_POLICY_FILE = process.env.AMI_JANITOR_POLICY_FILE;
    seeded = {};
    for (const region of REGIONS) {
      const seed = new Seeder(moto.endpoint, { region });
      seeders.push(seed);
      const expired = { 'ami-janitor:expires-at': new Date(Date.now() - DAY_MS).toISOString().slice(0, 10) };
      seeded[region] = {
        expired: [
          await seed.registerImage(`app-old-1-${region}`, { Family: 'app', ...expired }),
          await seed.registerImage(`app-old-2-${region}`, { Family: 'app', ...expired }),
        ],
        kept: [await seed.registerImage(`app-${region}`, { Family: 'app' })],
      };
    }
  });

  afterEach(() => {
    for (const seed of seeders.splice(0)) seed.destroy();
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });

  /**
   * One execution of the state machine. `budgetMs` gives a target's first invocation its
   * remaining time, as Lambda's context would; every other invocation has 850 s.
   */
  async function execute(options: { budgetMs?: Record<string, number>; name?: string } = {}): Promise<Run> {
    const {
      ApiLimiter,
      clientsForTarget,
      createSlackNotifier,
      createSsmStateStore,
      createTargetSource,
      makeAggregateHandler,
      makeListTargetsHandler,
      makeSweepTargetHandler,
      sweepPorts,
    } = await loadSources(moto.env());
    const log = recordingLog();
    const ssm = new SSMClient(motoClientConfig(moto.endpoint));
    const state = createSsmStateStore({ prefix: '/ami-janitor/test/state', ssm });
    const notifier = createSlackNotifier({ webhookUrl: async () => slack.url, log });
    const clock = () => new Date();

    const listTargets = makeListTargetsHandler({
      spec: parseTargetSpec({ accounts: 'self', regions: REGIONS.join(','), homeRegion: 'us-east-1' }),
      source: createTargetSource({ region: 'us-east-1' }),
      clock,
      log,
    });
    const sweepTarget = makeSweepTargetHandler({
      ports: async (target, signal) => {
        const clients = await clientsForTarget(target, {
          roleName: 'ami-janitor-member',
          callerAccountId: MOTO_ACCOUNT_ID,
        });
        const ports = sweepPorts(clients, { policy: POLICY, signal, limiter: new ApiLimiter() });
        if (target.region !== FAILING_REGION) return ports;
        const denied = Object.assign(new Error('You are not authorized to perform this operation.'), {
          name: 'UnauthorizedOperation',
          Code: 'UnauthorizedOperation',
          $metadata: { httpStatusCode: 403 },
        });
        return { ...ports, inventory: { ...ports.inventory, listOwnedImages: () => Promise.reject(denied) } };
      },
      alerts: { notifier, state },
      homeAccountId: async () => MOTO_ACCOUNT_ID,
      policy: POLICY,
      dryRun: false,
      clock,
      log,
    });
    const aggregate = makeAggregateHandler({ notifier, state, policy: POLICY, log });

    const sweepInputs: Run['sweepInputs'] = [];
    const outcomes: Record<string, unknown> = {};
    const seen = new Map<string, number>();
    const machine = new StateMachine(JSON.parse(readFileSync(ASL_FILE, 'utf8')) as StateMachineDefinition);
    const name =
      options.name ??
      `sweep-${new Date()
        .toISOString()
        .replace(/\.\d{3}Z$/, 'Z')
        .replaceAll(':', '')}`;
    const execution = machine.run(
      { time: new Date(Math.floor(Date.now() / 1000) * 1000).toISOString(), trigger: 'schedule' },
      {
        context: {
          Execution: {
            Name: name,
            Id: `arn:aws:states:us-east-1:${MOTO_ACCOUNT_ID}:execution:sweep:${name}`,
          },
        },
        overrides: {
          // Retries as written, without their waits.
          retryIntervalOverrides: { ListTargets: 0, SweepTarget: 0, Aggregate: 0 },
          taskResourceLocalHandlers: {
            ListTargets: (input) => listTargets(input) as never,
            SweepTarget: async (input) => {
              const item = input as unknown as Run['sweepInputs'][number];
              sweepInputs.push(structuredClone(item));
              const key = `${item.target.accountId}/${item.target.region}`;
              const calls = (seen.get(key) ?? 0) + 1;
              seen.set(key, calls);
              const first = calls === 1 ? options.budgetMs?.[item.target.region] : undefined;
              const remaining = first ?? 850_000;
              // Through JSON, as Step Functions passes a task's output on.
              return JSON.parse(
                JSON.stringify(await sweepTarget(input, { getRemainingTimeInMillis: () => remaining })),
              );
            },
            Aggregate: async (input) => {
              const { targets } = input as unknown as {
                targets: (TargetSummary | { target: ResolvedTarget })[];
              };
              for (const entry of targets) {
                const region = 'target' in entry ? entry.target.region : entry.region;
                outcomes[region] = entry;
              }
              return JSON.parse(
                JSON.stringify(await aggregate(input, { getRemainingTimeInMillis: () => 55_000 })),
              );
            },
          },
        },
      },
    );
    const output = (await execution.result) as Run['output'];
    const events: EventLog[] = [];
    for await (const event of execution.eventLogs) events.push(event);
    ssm.destroy();
    const reports = log.entries
      .filter((entry) => entry.message === 'run report')
      .map((entry) => (entry.extra[0] as { report: RunReport }).report);
    return { output, events, sweepInputs, outcomes, reports };
  }

  async function markedImages(region: string): Promise<string[]> {
    const seed = seeders.find((candidate) => candidate.region === region);
    const result = await seed?.clients.ec2.send(new DescribeImagesCommand({ Owners: ['self'] }));
    return (result?.Images ?? [])
      .filter((image) => image.Tags?.some((tag) => tag.Key === 'ami-janitor:marked-at'))
      .flatMap((image) => (image.ImageId ? [image.ImageId] : []))
      .sort();
  }

  const digests = () =>
    (slack.messages() as SlackMessage[]).filter((message) =>
      JSON.stringify(message.blocks[0]).includes('ami-janitor sweep: '),
    );

  it('sweeps every target: each Region marks exactly its own expired images', async () => {
    const run = await execute();

    expect(run.output.targets).toEqual({ total: 3, done: 2, stopped: 0, failed: 1 });
    for (const region of ['us-east-1', 'us-west-2']) {
      expect(await markedImages(region), region).toEqual([...(seeded[region]?.expired ?? [])].sort());
      expect(run.outcomes[region]).toMatchObject({
        status: 'done',
        accountId: MOTO_ACCOUNT_ID,
        region,
        invocations: 1,
        totals: { images: 3, eligible: 2, marked: 2, failed: 0 },
        news: true,
      });
    }
    // Each target's report went to the log; only the summaries travelled.
    expect(run.reports.map((report) => report.region).sort()).toEqual(['us-east-1', 'us-west-2']);
    // Side by side: both targets were in the Map before either ended.
    const starts = run.events
      .filter((event) => event.type === 'MapIterationStarted')
      .map((event) => event.timestamp);
    const ends = run.events
      .filter((event) => event.type === 'MapIterationSucceeded')
      .map((event) => event.timestamp);
    expect(starts).toHaveLength(3);
    expect(Math.max(...starts)).toBeLessThanOrEqual(Math.min(...ends));
  });

  it('loops a target whose invocation ran out of time back to the task with its continuation until it is done', async () => {
    // Act: us-west-2's first invocation has 5 s left, less than the 20 s the sweep keeps in reserve.
    const run = await execute({ budgetMs: { 'us-west-2': 5_000 } });

    // Assess: it handed on, the loop invoked it again with the continuation, and the run finished.
    const west = run.sweepInputs.filter((input) => input.target.region === 'us-west-2');
    expect(west.map((input) => input.continuation?.invocation)).toEqual([undefined, 2]);
    expect(run.outcomes['us-west-2']).toMatchObject({
      status: 'done',
      invocations: 2,
      totals: { marked: 2, notReached: 0 },
    });
    const [first, second] = run.reports.filter((report) => report.region === 'us-west-2');
    expect(first?.complete).toBe(false);
    expect(first?.totals.notReached).toBe(2);
    expect(second?.run).toMatchObject({ invocation: 2, runId: first?.run?.runId });
    expect(second?.asOf).toBe(first?.asOf);
    expect(await markedImages('us-west-2')).toEqual([...(seeded['us-west-2']?.expired ?? [])].sort());
    const choices = run.events.filter(
      (event) => event.type === 'StateExited' && 'state' in event && event.state.name === 'MoreToDo',
    );
    // us-east-1 once, us-west-2 twice; the failing Region goes to RecordFailure instead.
    expect(choices).toHaveLength(3);
  });

  it('records a target that fails after its retries as failed, while the others complete and the run succeeds', async () => {
    const run = await execute();

    const failing = run.sweepInputs.filter((input) => input.target.region === FAILING_REGION);
    // The first attempt and the one retry for any other error.
    expect(failing).toHaveLength(2);
    expect(run.outcomes[FAILING_REGION]).toEqual({
      status: 'failed',
      target: { accountId: MOTO_ACCOUNT_ID, region: FAILING_REGION },
      error: 'TargetSweepError',
      cause: expect.stringMatching(
        new RegExp(
          `^${MOTO_ACCOUNT_ID}/${FAILING_REGION}: InventoryError: could not gather the account's facts`,
        ),
      ),
    });
    expect(run.events.filter((event) => event.type === 'StateRetried')).toHaveLength(1);
    expect(run.events.filter((event) => event.type === 'StateCaught')).toHaveLength(1);
    expect(run.events.at(-1)?.type).toBe('ExecutionSucceeded');
    expect(await markedImages(FAILING_REGION)).toEqual([]);
    expect(run.outcomes['us-east-1']).toMatchObject({ status: 'done' });
  });

  it('posts one organisation digest with the totals and the failure, and none again while nothing changes', async () => {
    // Act: a run that marks, one that finds them scheduled, and one that finds the same.
    const before = slack.received.length;
    const first = await execute();
    const second = await execute();
    const third = await execute();

    // Assess
    expect([first.output.digest, second.output.digest, third.output.digest]).toEqual([
      'sent',
      'sent',
      'unchanged',
    ]);
    const posted = digests().slice(-2);
    expect(slack.received.slice(before).every((post) => post.path === new URL(slack.url).pathname)).toBe(
      true,
    );
    const [digest] = posted;
    expect(digest?.blocks[0]).toMatchObject({ text: { text: 'ami-janitor sweep: 1 account, 3 Regions' } });
    const text = JSON.stringify(digest);
    expect(text).toContain('2 swept · 1 failed');
    expect(text).toContain('6 examined · 4 eligible');
    expect(text).toContain('4 marked · 0 deregistered · 0 failed');
    expect(text).toContain(':x: *Failures by account* (1)');
    expect(text).toContain(
      `\`${MOTO_ACCOUNT_ID}\` — ${FAILING_REGION}: \`TargetSweepError\` ${MOTO_ACCOUNT_ID}/${FAILING_REGION}: InventoryError`,
    );
    expect(text).toContain(`run ${first.output.runId}`);
    // The trail alerts are the targets' own (moto has no trail), once per Region while unchanged.
    const blind = (slack.messages().slice(before) as SlackMessage[]).filter((message) =>
      JSON.stringify(message).includes('Real-time audit is blind in'),
    );
    expect(blind).toHaveLength(2);
  });
});

describeWithMoto('the starter against Step Functions (moto)', (moto: MotoHandle) => {
  let sfn: SFNClient;
  let stateMachineArn: string;

  beforeEach(async () => {
    await moto.reset();
    for (const key of [...Object.keys(moto.env()), 'AMI_JANITOR_POLICY_FILE']) saved[key] = process.env[key];
    sfn = new SFNClient(motoClientConfig(moto.endpoint));
    const created = await sfn.send(
      new CreateStateMachineCommand({
        name: 'ami-janitor-test-sweep',
        definition: readFileSync(ASL_FILE, 'utf8'),
        roleArn: `arn:aws:iam::${MOTO_ACCOUNT_ID}:role/ami-janitor-state-machine`,
      }),
    );
    stateMachineArn = created.stateMachineArn ?? '';
  });

  const saved: Record<string, string | undefined> = {};

  afterEach(() => {
    sfn.destroy();
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });

  function tick(time: string) {
    return {
      version: '0',
      id: `tick-${time}`,
      'detail-type': 'Scheduled Event',
      source: 'aws.events',
      time,
      detail: {},
    };
  }

  it('starts one execution per tick, named after it, and none while another runs, saying why', async () => {
    // Prepare
    const { makeStartSweepHandler, stepFunctionsExecutions } = await loadSources(moto.env());
    const log = recordingLog();
    const handler = makeStartSweepHandler({
      executions: stepFunctionsExecutions(stateMachineArn, sfn),
      clock: () => new Date(),
      log,
    });
    const yesterday = new Date(Math.floor(Date.now() / 1000) * 1000 - DAY_MS)
      .toISOString()
      .replace('.000Z', 'Z');
    const today = new Date(Math.floor(Date.now() / 1000) * 1000).toISOString().replace('.000Z', 'Z');

    // Act 1: yesterday's tick starts a run (moto's executions stay RUNNING until stopped).
    const started = await handler(tick(yesterday));

    // Assess 1
    expect(started).toMatchObject({
      status: 'started',
      executionName: `sweep-${yesterday.replaceAll(':', '')}`,
    });
    if (started.status !== 'started') throw new Error('not started');
    const described = await sfn.send(new DescribeExecutionCommand({ executionArn: started.executionArn }));
    expect(described.status).toBe('RUNNING');
    expect(JSON.parse(described.input ?? '{}')).toEqual({
      time: new Date(yesterday).toISOString(),
      trigger: 'schedule',
    });

    // Act 2: today's tick while yesterday's run goes on, and yesterday's delivered again.
    const overlapping = await handler(tick(today));
    const repeated = await handler(tick(yesterday));

    // Assess 2: nothing new started, and each says why.
    expect(overlapping).toMatchObject({
      status: 'skipped',
      reason: expect.stringMatching(/is still running: two runs must never sweep the same target at once/),
    });
    expect(repeated).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/already running/) });
    const listed = await sfn.send(new ListExecutionsCommand({ stateMachineArn }));
    expect(listed.executions?.map((execution) => execution.name)).toEqual([started.executionName]);
    expect(log.entries.filter((entry) => entry.message === 'sweep not started')).toHaveLength(2);

    // Act 3: yesterday's run ends; its tick again, then today's.
    await sfn.send(new StopExecutionCommand({ executionArn: started.executionArn }));
    const afterwards = await handler(tick(yesterday));
    const next = await handler(tick(today));

    // Assess 3: a name Step Functions has seen never starts again; the next tick does.
    expect(afterwards).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/already started/) });
    expect(next).toMatchObject({ status: 'started', executionName: `sweep-${today.replaceAll(':', '')}` });
  });
});
