import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { describeWithMoto, type MotoHandle, motoEnv } from './moto.ts';
import { type LocalSlack, SLACK_WEBHOOK_PATH, startLocalSlack } from './slack-server.ts';

/**
 * The README's `serverless invoke local` lines, read from its Deploy section and run as a person
 * would run them: each in bash, as a child process with its own deadline, so that a command that
 * never exits fails here. They bundle the handler with serverless-esbuild and run it against a
 * moto_server that answers as the samples' account, with the Slack webhook on 127.0.0.1 in SSM.
 */

const ROOT = resolve(import.meta.dirname, '../..');
/** The account, Region and image the sample events were recorded with. */
const SAMPLE_ACCOUNT_ID = '111122223333';
const SAMPLE_REGION = 'eu-west-1';
const SAMPLE_IMAGE_ID = 'ami-0abc1234def567890';
const SAMPLE_EVENT = 'events/modify-image-attribute-public.json';
/** serverless.yml's default `slackWebhookParameter`. */
const WEBHOOK_PARAMETER = '/ami-janitor/slack-webhook-url';
/** Bundling and running one handler takes a few seconds; a hang takes forever. */
const COMMAND_DEADLINE_MS = 120_000;
const TEST_TIMEOUT_MS = COMMAND_DEADLINE_MS + 30_000;
/** How long the command's processes (npx, serverless, esbuild's service) may outlive its exit. */
const LEFTOVER_GRACE_MS = 5_000;

/** The `npx serverless invoke local` lines of the README's Deploy section, by function. */
function readmeCommands(): { onImageEvent: string; sweep: string } {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Deploy\n');
  const end = readme.indexOf('\n## ', start + 1);
  if (start === -1 || end === -1) throw new Error('README.md has no "## Deploy" section');
  const lines = readme
    .slice(start, end)
    .split('\n')
    .filter((line) => line.startsWith('npx serverless invoke local '));
  const onImageEvent = lines.filter((line) => line.includes(' -f onImageEvent '));
  const sweep = lines.filter((line) => line.includes(' -f sweep '));
  if (lines.length !== 2 || onImageEvent.length !== 1 || sweep.length !== 1) {
    throw new Error(
      `README.md's Deploy section should show one invoke local line per handler:\n${lines.join('\n')}`,
    );
  }
  return { onImageEvent: onImageEvent[0] as string, sweep: sweep[0] as string };
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Whether a process of the command's group was still running after it exited. */
  leftovers: boolean;
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs one shell command in its own process group, killed whole at the deadline. */
async function run(command: string, env: NodeJS.ProcessEnv): Promise<Run> {
  const started = Date.now();
  const child = spawn('bash', ['-c', command], {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`cannot start: ${command}`);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const killGroup = () => {
    if (groupAlive(pid)) process.kill(-pid, 'SIGKILL');
  };
  const deadline = setTimeout(killGroup, COMMAND_DEADLINE_MS);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((done) =>
    child.once('exit', (exitCode, exitSignal) => done([exitCode, exitSignal])),
  );
  clearTimeout(deadline);
  const ms = Date.now() - started;
  const settle = Date.now() + LEFTOVER_GRACE_MS;
  while (groupAlive(pid) && Date.now() < settle) await new Promise((wait) => setTimeout(wait, 100));
  const leftovers = groupAlive(pid);
  killGroup();
  // The pipes close once the last process holding them is gone.
  await new Promise((done) => (child.stdout.closed ? done(undefined) : child.stdout.once('close', done)));
  return { code, signal, stdout, stderr, ms, leftovers };
}

/** What `invoke local` printed last: the handler's result (or error), as indented JSON. */
function printedResult(output: Run): Record<string, unknown> {
  const last = output.stdout.lastIndexOf('\n{\n');
  const at = last !== -1 ? last + 1 : output.stdout.startsWith('{\n') ? 0 : -1;
  if (at === -1)
    throw new Error(`no result printed (exit ${output.code}):\n${output.stdout}\n${output.stderr}`);
  return JSON.parse(output.stdout.slice(at)) as Record<string, unknown>;
}

/** A port nothing listens on: an endpoint that refuses every connection. */
function closedPort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? done(address.port) : fail()));
    });
  });
}

/** Every text a Block Kit message shows, flattened, for "names X" assertions. */
function blockTexts(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (value === null || typeof value !== 'object') return [];
  return Object.values(value).flatMap(blockTexts);
}

// moto_server reads these when it starts (in describeWithMoto's beforeAll, which runs after this):
// it answers as the samples' account, and every Region of it holds the image the sample event
// names, public, under the id the event names (RegisterImage would pick its own id).
const motoSettings = ['MOTO_ACCOUNT_ID', 'MOTO_AMIS_PATH'] as const;
const savedSettings = new Map(motoSettings.map((key) => [key, process.env[key]]));
const scratch = mkdtempSync(join(tmpdir(), 'ami-janitor-invoke-local-'));
beforeAll(() => {
  const amis = join(scratch, 'amis.json');
  const image = {
    ami_id: SAMPLE_IMAGE_ID,
    name: 'web-2026-11-20',
    owner_id: SAMPLE_ACCOUNT_ID,
    public: true,
  };
  writeFileSync(amis, JSON.stringify([image]));
  process.env.MOTO_ACCOUNT_ID = SAMPLE_ACCOUNT_ID;
  process.env.MOTO_AMIS_PATH = amis;
});
afterAll(() => {
  for (const [key, value] of savedSettings) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  rmSync(scratch, { recursive: true, force: true });
});

describeWithMoto('the README invoke local commands against moto', (moto: MotoHandle) => {
  const commands = readmeCommands();
  let slack: LocalSlack;
  let ec2: EC2Client;
  /** Posts before this test's: the Slack stand-in serves the whole file. */
  let earlier = 0;
  const posts = () => slack.received.slice(earlier);

  /** The child's whole environment: the shell a person would have, pointed at moto. */
  const childEnv = (endpoint = moto.endpoint): NodeJS.ProcessEnv => ({
    PATH: `${join(ROOT, 'node_modules', '.bin')}${delimiter}${process.env.PATH ?? ''}`,
    HOME: process.env.HOME ?? scratch,
    TMPDIR: process.env.TMPDIR ?? tmpdir(),
    ...motoEnv(endpoint),
    // No profile of the machine's own can stand in for the keys above.
    AWS_CONFIG_FILE: join(scratch, 'no-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(scratch, 'no-credentials'),
  });

  const clientConfig = () => ({
    endpoint: moto.endpoint,
    region: SAMPLE_REGION,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    maxAttempts: 1,
  });

  async function sampleImage() {
    const images = await ec2.send(new DescribeImagesCommand({ ImageIds: [SAMPLE_IMAGE_ID] }));
    const image = images.Images?.[0];
    if (image === undefined) throw new Error(`moto does not know ${SAMPLE_IMAGE_ID}`);
    return {
      public: image.Public,
      tags: Object.fromEntries((image.Tags ?? []).map((t) => [t.Key, t.Value])),
    };
  }

  function expectExitedCleanly(output: Run, code: number) {
    const shown = `exit ${output.code} (${output.signal ?? 'no signal'}) after ${output.ms} ms\n${output.stdout}\n${output.stderr}`;
    expect(output.signal, shown).toBeNull();
    expect(output.code, shown).toBe(code);
    expect(output.leftovers, `processes left behind: ${shown}`).toBe(false);
  }

  beforeAll(async () => {
    slack = await startLocalSlack();
  });

  afterAll(async () => {
    ec2?.destroy();
    await slack?.close();
  });

  beforeEach(async () => {
    await moto.reset();
    ec2?.destroy();
    ec2 = new EC2Client(clientConfig());
    const ssm = new SSMClient(clientConfig());
    await ssm.send(
      new PutParameterCommand({ Name: WEBHOOK_PARAMETER, Type: 'SecureString', Value: slack.url }),
    );
    ssm.destroy();
    earlier = slack.received.length;
  });

  it(
    'onImageEvent on the public-image sample: one Slack alert naming the image, its alert state tagged, the image left public in dry run',
    async () => {
      // Prepare
      expect(commands.onImageEvent).toContain(`--region ${SAMPLE_REGION}`);
      expect(commands.onImageEvent).toContain(`-p ${SAMPLE_EVENT}`);
      expect((await sampleImage()).public).toBe(true);

      // Act
      const output = await run(commands.onImageEvent, childEnv());

      // Assess: the policy and the deployment both default to dry run, and remediation is off.
      expectExitedCleanly(output, 0);
      expect(printedResult(output)).toMatchObject({
        status: 'alerted',
        resourceId: SAMPLE_IMAGE_ID,
        remediation: 'off',
      });
      expect(posts()).toHaveLength(1);
      expect(posts()[0]?.path).toBe(SLACK_WEBHOOK_PATH);
      const shown = blockTexts(JSON.parse(posts()[0]?.body ?? '{}')).join('\n');
      expect(shown).toContain(SAMPLE_IMAGE_ID);
      expect(shown).toMatch(/CRITICAL/);
      const image = await sampleImage();
      expect(image.public).toBe(true);
      expect(image.tags).toHaveProperty('ami-janitor:alerted-exposure');
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "sweep plans this account-Region: the image is kept by its family's newest-two rule and nothing is acted on",
    async () => {
      // Prepare
      expect(commands.sweep).toContain(`--region ${SAMPLE_REGION}`);

      // Act
      const output = await run(commands.sweep, childEnv());

      // Assess
      expectExitedCleanly(output, 0);
      const plan = printedResult(output);
      expect(plan).toMatchObject({
        mode: 'plan',
        accountId: SAMPLE_ACCOUNT_ID,
        region: SAMPLE_REGION,
        complete: true,
        actions: [],
        snapshotActions: [],
      });
      expect(plan.decisions).toEqual([
        expect.objectContaining({ imageId: SAMPLE_IMAGE_ID, verdict: 'keep', rule: 'keep-latest' }),
      ]);
      expect(await sampleImage()).toEqual({ public: true, tags: {} });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a malformed event is rejected in the printed result, alerts nobody, and the command exits 0',
    async () => {
      // Prepare
      const command = commands.onImageEvent.replace(SAMPLE_EVENT, 'events/malformed.json');
      expect(command).not.toBe(commands.onImageEvent);

      // Act
      const output = await run(command, childEnv());

      // Assess
      expectExitedCleanly(output, 0);
      expect(printedResult(output)).toMatchObject({ status: 'rejected' });
      expect(posts()).toEqual([]);
      expect(await sampleImage()).toEqual({ public: true, tags: {} });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'an endpoint that refuses connections fails the invocation: the error is printed and the command exits 1',
    async () => {
      // Prepare
      const endpoint = `http://127.0.0.1:${await closedPort()}`;

      // Act
      const output = await run(commands.onImageEvent, childEnv(endpoint));

      // Assess
      expectExitedCleanly(output, 1);
      expect(printedResult(output)).toMatchObject({ errorMessage: expect.stringContaining('ECONNREFUSED') });
      expect(posts()).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});
