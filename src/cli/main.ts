import { constants } from 'node:fs';
import { access, stat, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import packageJson from '../../package.json' with { type: 'json' };
// Types only: the adapters themselves are loaded on demand, so `--demo` never pays for the SDK.
import type { AwsClients } from '../adapters/clients.ts';
import type { ApiLimiter } from '../adapters/limiter.ts';
import type { RoleSessions } from '../adapters/targets.ts';
import { defaultPolicy, type Policy, parsePolicy } from '../config/policy.ts';
import { loadPolicyFile } from '../config/policy-file.ts';
import { type AccountAuditReport, auditAccount, type TrailHealthCheck } from '../core/account-audit.ts';
import { futureClockReason } from '../core/clock.ts';
import type {
  ConsumerReferences,
  ImageActionsPort,
  ImageUsagePort,
  InventoryPort,
  RecycleBinPort,
  SharingPort,
  SnapshotInventoryPort,
} from '../core/ports.ts';
import { unboundedDeadline } from '../core/ports.ts';
import type { RunReport } from '../core/report.ts';
import type { SnapshotPorts } from '../core/snapshot-sweep.ts';
import { runSweep } from '../core/sweep.ts';
import {
  parseTargetSpec,
  type ResolvedTarget,
  resolveTargets,
  TargetError,
  type TargetSource,
  type TargetSpec,
} from '../core/targets.ts';
import { DEMO_ACCOUNT_ID, demoAccount, demoPolicyDocument } from '../demo/demo-account.ts';
import { MemoryAccount } from '../demo/memory-account.ts';
import { errorCode, errorMessage, InventoryError, PolicyError, UsageError } from '../errors.ts';
import { logger, sendLogsToStderr } from '../logger.ts';
import type { Image, Plan, Snapshot } from '../model.ts';
import { oneLine, printable } from '../text.ts';
import { type HtmlReportSection, renderHtmlReport } from './html-report.ts';
import { TerminalProgress } from './progress.ts';
import { renderAudit, renderReport } from './render.ts';
import {
  type AuditTargetResult,
  auditProgressLine,
  auditTargetsDocument,
  renderAuditTargets,
  renderSweepTargets,
  type SweepTargetResult,
  sweepProgressLine,
  sweepTargetsDocument,
  type TargetResult,
  targetHeading,
} from './render-targets.ts';

/** Exit codes scripts can rely on; `audit` exits 2 on a critical finding so it can gate a pipeline. */
export const EXIT = {
  ok: 0,
  actionsFailed: 1,
  criticalFinding: 2,
  factsUnavailable: 3,
  /** apply was asked on a terminal and not confirmed: nothing was changed. */
  declined: 4,
  usage: 64,
  /** sysexits' EX_CANTCREAT: the --html file cannot be written. */
  cannotWrite: 73,
  policy: 78,
} as const;

const USAGE = `Usage: ami-janitor <command> [options]
       ami-janitor help [command] | --version

Commands:
  plan     Show what a sweep would do. Read-only. (default)
  apply    Carry out the plan: mark, deregister, unmark. Asks first on a terminal.
  audit    Findings only: public or over-shared images and snapshots, missing tags, CloudTrail.

Options:
  --region <name>     AWS Region (default: AWS_REGION or the SDK's configuration)
  --config <file>     Policy file, YAML or JSON (default: built-in defaults)
  --as-of <date>      Evaluate as if it were this date (YYYY-MM-DD or ISO time): a forecast
  --demo              Use the built-in demo account; no AWS needed
  --json              Print the run report as JSON instead of a table
  --html <file>       plan and apply: also write the report as one self-contained HTML page
  --yes               apply without asking
  --verbose           Structured decision logs on stderr
  -h, --help          This help

Targets (without these, the one account of the credentials, in --region):
  --accounts <ids>              Comma-separated account ids; each one's member role is assumed
  --organization                Every ACTIVE account of the organisation (asked in the management
                                account or a delegated administrator)
  --organizational-units <ids>  With --organization: only these OUs or roots and the OUs below them
  --exclude-accounts <ids>      Accounts to leave out
  --regions <names>|all         Comma-separated Regions, or every enabled one (default: --region)
  --role <name>                 Member role in each other account (default: ami-janitor-member)
  --organization-role <arn>     Role to assume for Organizations, from an account that cannot ask it
  --concurrency <n>             Targets swept at a time, 1 to 64 (default: 8)
  One line per target goes to stderr as it finishes; then each target's report and a summary
  table (with --json, one document: {"targets": [...], "totals": {...}}).

Exit codes: 0 ok, 1 some actions failed or were not reached (audit: some resources unreadable),
2 audit found a critical finding, 3 AWS facts could not be gathered, 4 apply not confirmed (nothing
changed), 64 usage error, 73 the --html file cannot be written, 78 invalid policy.
Over several targets the worst wins; a target that could not be reached or read counts as 3, and
the others still run.`;

export interface CliIo {
  stdout: NodeJS.WritableStream & { columns?: number; isTTY?: boolean };
  /** On a terminal, long runs show a progress line here. */
  stderr: NodeJS.WritableStream & { columns?: number; isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

const processIo: CliIo = {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
};

/** Where the targets of a multi-target run come from, and each one's ports. */
export interface TargetRuntime {
  source: TargetSource;
  /** Ports for one target; a role that cannot be assumed throws (TargetAccessError). */
  ports(target: ResolvedTarget, callerAccountId: string): Promise<AccountPorts>;
}

/** Seams for tests; the CLI itself runs with none. */
export interface CliDeps {
  /** Replaces the demo or AWS ports of a run over one account. */
  accountPorts?: (context: { region: string; policy: Policy; today: Date }) => Promise<AccountPorts>;
  /** Replaces the AWS adapters behind a multi-target run. */
  targetRuntime?: (context: { region: string; spec: TargetSpec; policy: Policy }) => Promise<TargetRuntime>;
}

/** One line per command, for `help COMMAND` and `COMMAND --help`, above the full usage. */
const COMMAND_HELP: Record<'plan' | 'apply' | 'audit', string> = {
  plan: 'ami-janitor plan [options] [--html FILE]: what a sweep would do, read-only; with --as-of, a forecast of that date; --html FILE also writes it as an HTML page.',
  apply:
    'ami-janitor apply [options] [--html FILE]: carries the plan out on the real clock; asks first on a terminal, needs --yes elsewhere; --html FILE also writes what it did as an HTML page.',
  audit: 'ami-janitor audit [options]: findings only, read-only; exits 2 on a critical finding.',
};

export async function main(argv: string[], io: CliIo = processIo, deps: CliDeps = {}): Promise<number> {
  if (argv[0] === '--version' || argv[0] === '-V' || argv[0] === 'version') {
    io.stdout.write(`${packageJson.version}\n`);
    return EXIT.ok;
  }
  if (argv[0] === 'help') {
    const topic = argv[1];
    if (topic === undefined) {
      io.stdout.write(`${USAGE}\n`);
      return EXIT.ok;
    }
    if (topic !== 'plan' && topic !== 'apply' && topic !== 'audit') {
      io.stderr.write(`ami-janitor: no help for '${errorText(topic)}'\n\n${USAGE}\n`);
      return EXIT.usage;
    }
    io.stdout.write(`${COMMAND_HELP[topic]}\n\n${USAGE}\n`);
    return EXIT.ok;
  }
  let options: CliOptions;
  try {
    options = parseCli(argv);
  } catch (error) {
    io.stderr.write(`ami-janitor: ${errorText((error as Error).message)}\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  if (options.help) {
    const named = argv.find((word) => word === 'plan' || word === 'apply' || word === 'audit');
    io.stdout.write(`${named ? `${COMMAND_HELP[named]}\n\n` : ''}${USAGE}\n`);
    return EXIT.ok;
  }
  // Decisions go to the table or JSON on stdout; structured logs only when asked for, on stderr.
  logger.setLogLevel(options.verbose ? 'DEBUG' : 'SILENT');
  if (options.verbose) sendLogsToStderr();

  let policy: Policy;
  try {
    policy = options.config
      ? await loadPolicyFile(options.config)
      : options.demo
        ? parsePolicy(demoPolicyDocument)
        : defaultPolicy();
  } catch (error) {
    if (error instanceof PolicyError) {
      io.stderr.write(`ami-janitor: ${errorText(error.message)}\n`);
      return EXIT.policy;
    }
    throw error;
  }

  if (options.command === 'apply' && !options.yes && !io.stdin.isTTY) {
    io.stderr.write('ami-janitor: apply changes the account; pass --yes when not running on a terminal\n');
    return EXIT.usage;
  }

  const region =
    options.region ?? io.env.AWS_REGION ?? io.env.AWS_DEFAULT_REGION ?? (options.demo ? 'eu-west-1' : '');
  if (!region) {
    io.stderr.write('ami-janitor: no Region: pass --region or set AWS_REGION\n');
    return EXIT.usage;
  }

  const today = new Date();
  const now = options.asOf ?? today;
  // A forecast is for plans only: an apply on a later clock would cut grace periods short.
  const future = options.command === 'apply' ? futureClockReason(now, today, '--as-of') : undefined;
  if (future) {
    io.stderr.write(
      `ami-janitor: ${future}\n--as-of ${now.toISOString()} is for plan and audit; apply acts on the real clock.\n`,
    );
    return EXIT.usage;
  }
  if (options.html) {
    const problem = await unwritable(options.html);
    if (problem) {
      io.stderr.write(`ami-janitor: cannot write --html ${errorText(options.html)}: ${errorText(problem)}\n`);
      return EXIT.cannotWrite;
    }
  }
  if (options.targets) {
    return runTargets({ policy, region, now, today }, options, options.targets, io, deps);
  }
  // The demo account is dated from today, so that --as-of forecasts it like a real one.
  const given = deps.accountPorts
    ? await deps.accountPorts({ region, policy, today })
    : options.demo
      ? demoPorts(today)
      : await awsPorts(region, policy);
  const listed: Listed = {};
  // The HTML page names each image's family and each snapshot: what the run listed is kept for it.
  const ports = options.html ? keepListings(given, listed) : given;
  const progress = (message: string) => {
    if (!options.json) io.stderr.write(`${message}\n`);
  };
  progress(
    options.demo ? `Using the built-in demo account ${DEMO_ACCOUNT_ID}.` : `Gathering facts in ${region}...`,
  );
  if (options.command === 'audit') return audit(ports, { policy, region, now }, options, io);

  const line = progressLine(options, io);
  let declined = false;
  let report: RunReport;
  try {
    report = await runSweep(
      {
        inventory: ports.inventory,
        actions: ports.actions,
        trailHealth: ports.trailHealth,
        snapshots: ports.snapshotPorts,
        ...(ports.usage ? { usage: ports.usage } : {}),
        ...(ports.recycleBin ? { recycleBin: ports.recycleBin } : {}),
        ...(line ? { progress: line } : {}),
        log: logger,
      },
      {
        policy,
        region,
        now,
        mode: options.command,
        // The policy's dryRun is the Lambda's switch; on the CLI, `apply` and its confirmation are.
        dryRun: false,
        deadline: unboundedDeadline,
        realNow: today,
        confirm: options.yes
          ? undefined
          : async (plan) => {
              line?.clear();
              const answer = await confirm(plan, io);
              declined = !answer;
              if (answer) line?.resume();
              return answer;
            },
      },
    );
  } catch (error) {
    if (error instanceof InventoryError) {
      line?.clear();
      io.stderr.write(`ami-janitor: ${errorText(error.message)}\nNothing was changed.\n`);
      return EXIT.factsUnavailable;
    }
    throw error;
  } finally {
    line?.clear();
  }

  if (declined) return notConfirmed(options, io, options.json ? JSON.stringify(report, null, 2) : undefined);
  // What the run did is printed first: a page that cannot be written must not hide it.
  io.stdout.write(
    options.json
      ? `${JSON.stringify(report, null, 2)}\n`
      : `${renderReport(report, io.stdout.isTTY ? io.stdout.columns : undefined)}\n`,
  );
  if (
    options.html &&
    !(await writeHtml(options.html, [{ report, ...listed, familyTags: policy.keepLatest.familyTags }], io))
  ) {
    return EXIT.cannotWrite;
  }
  return report.totals.failed > 0 || report.totals.snapshotsFailed > 0 || !report.complete
    ? EXIT.actionsFailed
    : EXIT.ok;
}

/**
 * The progress line, on a terminal only: never with --json (whatever reads the JSON may read
 * stderr too), with --verbose (the log lines would tear it) or on a terminal that cannot erase.
 */
function progressLine(options: CliOptions, io: CliIo): TerminalProgress | undefined {
  if (!io.stderr.isTTY || options.json || options.verbose || io.env.TERM === 'dumb') return undefined;
  return new TerminalProgress(io.stderr);
}

/** A declined apply: no table of what did not happen, only that nothing changed. */
function notConfirmed(options: CliOptions, io: CliIo, json: string | undefined): number {
  const html = options.html ? ` No HTML report was written to ${errorText(options.html)}.` : '';
  if (json !== undefined) {
    // Whatever parses stdout still gets the document: the plan that was declined, every action `planned`.
    io.stdout.write(`${json}\n`);
    io.stderr.write(`Not confirmed: nothing changed.${html}\n`);
  } else {
    io.stdout.write(`Not confirmed: nothing changed.${html}\n`);
  }
  return EXIT.declined;
}

/** What the run listed, kept for the HTML page. */
interface Listed {
  images?: Image[];
  snapshots?: Snapshot[];
}

/** The same ports, keeping what the two inventories list; every other call goes straight through. */
function keepListings(ports: AccountPorts, listed: Listed): AccountPorts {
  const { inventory } = ports;
  const snapshots = ports.snapshotPorts.inventory;
  return {
    ...ports,
    inventory: {
      accountId: () => inventory.accountId(),
      listOwnedImages: async (progress) => {
        listed.images = await inventory.listOwnedImages(progress);
        return listed.images;
      },
      findReferences: (images, progress) => inventory.findReferences(images, progress),
    },
    snapshotPorts: {
      ...ports.snapshotPorts,
      inventory: {
        listOwnedSnapshots: async (accountId, progress) => {
          listed.snapshots = await snapshots.listOwnedSnapshots(accountId, progress);
          return listed.snapshots;
        },
        lockedSnapshotIds: () => snapshots.lockedSnapshotIds(),
        existingVolumeIds: () => snapshots.existingVolumeIds(),
        describeSnapshots: (ids) => snapshots.describeSnapshots(ids),
      },
    },
  };
}

/** Why the --html file cannot be written, checked before the account is read; undefined when it can. */
async function unwritable(file: string): Promise<string | undefined> {
  const path = resolve(file);
  try {
    const found = await stat(path);
    if (!found.isFile()) return 'it exists and is not a regular file';
    await access(path, constants.W_OK);
    return undefined;
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') return errorMessage(error);
  }
  try {
    const folder = await stat(dirname(path));
    if (!folder.isDirectory()) return `${dirname(path)} is not a directory`;
    await access(dirname(path), constants.W_OK);
    return undefined;
  } catch (error) {
    return errorCode(error) === 'ENOENT' ? `${dirname(path)} does not exist` : errorMessage(error);
  }
}

async function writeHtml(file: string, sections: HtmlReportSection[], io: CliIo): Promise<boolean> {
  const page = renderHtmlReport(sections, { generatedAt: new Date(), version: packageJson.version });
  try {
    await writeFile(file, page, 'utf8');
    return true;
  } catch (error) {
    io.stderr.write(
      `ami-janitor: cannot write --html ${errorText(file)}: ${errorText(errorMessage(error))}\n`,
    );
    return false;
  }
}

/** The target flags as given; parseTargetSpec checks their values once the home Region is known. */
interface TargetFlags {
  accounts?: string;
  organization: boolean;
  organizationalUnits?: string;
  excludeAccounts?: string;
  regions?: string;
  role?: string;
  organizationRole?: string;
  concurrency: number;
}

export const DEFAULT_TARGET_CONCURRENCY = 8;
export const MAX_TARGET_CONCURRENCY = 64;

interface CliOptions {
  command: 'plan' | 'apply' | 'audit';
  /** Present when any target flag is: the run fans out over account-Regions. */
  targets?: TargetFlags;
  region?: string;
  config?: string;
  asOf?: Date;
  demo: boolean;
  json: boolean;
  /** plan and apply: where to write the HTML report as well. */
  html?: string;
  yes: boolean;
  verbose: boolean;
  help: boolean;
}

export function parseCli(argv: string[]): CliOptions {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      region: { type: 'string' },
      config: { type: 'string' },
      'as-of': { type: 'string' },
      demo: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      html: { type: 'string' },
      yes: { type: 'boolean', short: 'y', default: false },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
      accounts: { type: 'string' },
      organization: { type: 'boolean', default: false },
      'organizational-units': { type: 'string' },
      'exclude-accounts': { type: 'string' },
      regions: { type: 'string' },
      role: { type: 'string' },
      'organization-role': { type: 'string' },
      concurrency: { type: 'string' },
    },
  });
  const [command = 'plan', ...extra] = positionals;
  if (command !== 'plan' && command !== 'apply' && command !== 'audit') {
    throw new UsageError(`unknown command '${command}'`);
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
  if (values.html !== undefined && command === 'audit') {
    throw new UsageError('--html is for plan and apply; audit prints its findings only');
  }
  if (values.html === '') throw new UsageError('--html needs a file name');
  const targets = parseTargetFlags(values);
  if (targets && values.demo) {
    throw new UsageError(
      '--demo is one built-in account; it takes no target flags (--accounts, --regions, ...)',
    );
  }
  return {
    command,
    ...(targets ? { targets } : {}),
    ...(values.region === undefined ? {} : { region: values.region }),
    ...(values.config === undefined ? {} : { config: values.config }),
    ...(values['as-of'] === undefined ? {} : { asOf: parseAsOf(values['as-of']) }),
    demo: values.demo,
    json: values.json,
    ...(values.html === undefined ? {} : { html: values.html }),
    yes: values.yes,
    verbose: values.verbose,
    help: values.help,
  };
}

function parseTargetFlags(values: {
  accounts?: string | undefined;
  organization?: boolean | undefined;
  'organizational-units'?: string | undefined;
  'exclude-accounts'?: string | undefined;
  regions?: string | undefined;
  role?: string | undefined;
  'organization-role'?: string | undefined;
  concurrency?: string | undefined;
}): TargetFlags | undefined {
  const given = [
    values.accounts,
    values['organizational-units'],
    values['exclude-accounts'],
    values.regions,
    values.role,
    values['organization-role'],
    values.concurrency,
  ].some((value) => value !== undefined);
  if (!given && !values.organization) return undefined;
  if (values.accounts !== undefined && values.organization) {
    throw new UsageError(
      '--accounts and --organization exclude each other: name the accounts, or take the organisation',
    );
  }
  if (values['organizational-units'] !== undefined && !values.organization) {
    throw new UsageError('--organizational-units only applies with --organization');
  }
  return {
    organization: values.organization === true,
    ...(values.accounts === undefined ? {} : { accounts: values.accounts }),
    ...(values['organizational-units'] === undefined
      ? {}
      : { organizationalUnits: values['organizational-units'] }),
    ...(values['exclude-accounts'] === undefined ? {} : { excludeAccounts: values['exclude-accounts'] }),
    ...(values.regions === undefined ? {} : { regions: values.regions }),
    ...(values.role === undefined ? {} : { role: values.role }),
    ...(values['organization-role'] === undefined ? {} : { organizationRole: values['organization-role'] }),
    concurrency: parseConcurrency(values.concurrency),
  };
}

function parseConcurrency(value: string | undefined): number {
  if (value === undefined) return DEFAULT_TARGET_CONCURRENCY;
  const count = /^\d{1,3}$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
  if (!(count >= 1 && count <= MAX_TARGET_CONCURRENCY)) {
    throw new UsageError(
      `--concurrency '${value}' is not a whole number from 1 to ${MAX_TARGET_CONCURRENCY}`,
    );
  }
  return count;
}

function parseAsOf(value: string): Date {
  const date = /^\d{4}-\d{2}-\d{2}$/.test(value) ? new Date(`${value}T00:00:00Z`) : new Date(value);
  if (Number.isNaN(date.getTime()) || !/^\d{4}-\d{2}-\d{2}/.test(value)) {
    throw new UsageError(`--as-of '${value}' is not a date (use YYYY-MM-DD or an ISO time)`);
  }
  return date;
}

export interface AccountPorts {
  inventory: InventoryPort;
  actions: ImageActionsPort;
  snapshots: SnapshotInventoryPort;
  sharing: SharingPort;
  trailHealth: TrailHealthCheck;
  snapshotPorts: SnapshotPorts;
  usage?: ImageUsagePort;
  recycleBin?: RecycleBinPort;
  /** Over several targets: the other targets an image is shared with, asked what uses it there. */
  consumers?: ConsumerReferences;
}

function demoPorts(now: Date): AccountPorts {
  const account = new MemoryAccount(demoAccount(now));
  const trailHealth: TrailHealthCheck = {
    check: async (region) => ({
      ok: true,
      region,
      reason: `trail demo-trail logs management events in ${region}`,
    }),
  };
  return {
    inventory: account,
    actions: account,
    snapshots: account,
    sharing: account,
    trailHealth,
    snapshotPorts: { inventory: account, sharing: account, actions: account },
    usage: account,
    recycleBin: account,
  };
}

async function audit(
  ports: AccountPorts,
  request: { policy: Policy; region: string; now: Date },
  options: CliOptions,
  io: CliIo,
): Promise<number> {
  let report: AccountAuditReport;
  try {
    report = await auditAccount({ ...ports, log: logger }, request);
  } catch (error) {
    if (error instanceof InventoryError) {
      io.stderr.write(`ami-janitor: ${errorText(error.message)}\n`);
      return EXIT.factsUnavailable;
    }
    throw error;
  }
  io.stdout.write(
    options.json
      ? `${JSON.stringify(report, null, 2)}\n`
      : `${renderAudit(report, io.stdout.isTTY ? io.stdout.columns : undefined)}\n`,
  );
  if (report.totals.critical > 0) return EXIT.criticalFinding;
  return report.warnings.length > 0 ? EXIT.actionsFailed : EXIT.ok;
}

async function awsPorts(region: string, policy: Policy): Promise<AccountPorts> {
  const adapters = await loadAdapters();
  return portsFromClients(adapters, adapters.createAwsClients({ region }), policy);
}

/** Loaded on demand so `--demo` never pays for the SDK. */
async function loadAdapters() {
  const [
    { createAwsClients },
    ec2,
    { createSharing },
    { createSnapshotInventory, createSnapshotPorts },
    { createTrailHealthCheck },
    { createImageUsage },
    { createRecycleBin },
  ] = await Promise.all([
    import('../adapters/clients.ts'),
    import('../adapters/ec2.ts'),
    import('../adapters/sharing.ts'),
    import('../adapters/snapshots.ts'),
    import('../adapters/cloudtrail.ts'),
    import('../adapters/usage.ts'),
    import('../adapters/recycle-bin.ts'),
  ]);
  return {
    createAwsClients,
    ec2,
    createSharing,
    createSnapshotInventory,
    createSnapshotPorts,
    createTrailHealthCheck,
    createImageUsage,
    createRecycleBin,
  };
}

type Adapters = Awaited<ReturnType<typeof loadAdapters>>;

/** Every port of one account-Region, from its clients; without a limiter, the process-wide one paces them. */
function portsFromClients(
  adapters: Adapters,
  clients: AwsClients,
  policy: Policy,
  limiter?: ApiLimiter,
): AccountPorts {
  const paced = limiter ? { ...clients, limiter } : clients;
  return {
    inventory: adapters.ec2.createInventory({
      ...paced,
      launchTemplateVersions: policy.inUse.launchTemplateVersions,
    }),
    actions: adapters.ec2.createImageActions(paced),
    snapshots: adapters.createSnapshotInventory(paced),
    sharing: adapters.createSharing(paced),
    trailHealth: adapters.createTrailHealthCheck(clients),
    snapshotPorts: adapters.createSnapshotPorts(paced),
    usage: adapters.createImageUsage(paced),
    recycleBin: adapters.createRecycleBin(paced),
  };
}

/** Targets from STS, Organizations and EC2; each target's ports on its own clients and its own pace. */
async function awsTargetRuntime(context: {
  region: string;
  spec: TargetSpec;
  policy: Policy;
}): Promise<TargetRuntime> {
  // Only a run over targets pays for Organizations and the role sessions.
  const [
    adapters,
    { ApiLimiter, defaultLimiter },
    { clientsForTarget, createTargetSource },
    { createConsumerReferences },
  ] = await Promise.all([
    loadAdapters(),
    import('../adapters/limiter.ts'),
    import('../adapters/targets.ts'),
    import('../adapters/consumer-references.ts'),
  ]);
  const { region, spec, policy } = context;
  const base = adapters.createAwsClients({ region });
  const source = createTargetSource({
    region,
    sts: base.sts,
    ec2: base.ec2,
    ...(spec.organizationRoleArn ? { organizationRoleArn: spec.organizationRoleArn } : {}),
  });
  const sessions: RoleSessions = new Map();
  return {
    source,
    async ports(target, callerAccountId) {
      const clients = await clientsForTarget(target, {
        roleName: spec.memberRoleName,
        callerAccountId,
        baseClients: base,
        sessions,
      });
      // EC2 meters each account and Region on its own: one target's pace must not hold up another's.
      const limiter = new ApiLimiter({ headroom: defaultLimiter.headroom });
      return {
        ...portsFromClients(adapters, clients, policy, limiter),
        // An image shared with another target is checked there too, where its use is current.
        consumers: createConsumerReferences(spec, {
          region: target.region,
          source,
          clientsFor: (consumer) =>
            clientsForTarget(consumer, {
              roleName: spec.memberRoleName,
              callerAccountId,
              baseClients: base,
              sessions,
            }),
          launchTemplateVersions: policy.inUse.launchTemplateVersions,
        }),
      };
    },
  };
}

async function confirm(plan: Plan, io: CliIo): Promise<boolean> {
  const changes = planChanges(plan);
  io.stderr.write(
    `${printable(`About to change account ${plan.accountId} in ${plan.region}${forecastNote(plan)}:`)}\n` +
      `  images:    ${changes.images}\n` +
      `  snapshots: ${changes.snapshots}\n`,
  );
  return ask('Proceed? [y/N] ', io);
}

/** ` as if it were DATE` when the plan is not for now. */
function forecastNote(plan: Plan | undefined): string {
  return plan && Math.abs(new Date(plan.asOf).getTime() - Date.now()) > 60_000
    ? ` as if it were ${plan.asOf.slice(0, 10)}`
    : '';
}

/**
 * What a plan changes, images and snapshots each on their own: the steps every run may take
 * (always shown, zeros included), the optional ones when planned, and the snapshots deleted with
 * their images, which are no snapshot action of their own.
 */
export function planChanges(plan: Plan): { images: string; snapshots: string } {
  const images = (kind: string) => plan.actions.filter((action) => action.kind === kind).length;
  const snapshots = (kind: string) =>
    (plan.snapshots?.actions ?? []).filter((action) => action.kind === kind).length;
  const optional = (entries: readonly [number, string][]) =>
    entries.filter(([n]) => n > 0).map(([n, label]) => `, ${label.replace('N', String(n))}`);
  const reports =
    images('request-usage-report') +
    plan.actions.filter((action) => action.kind === 'mark' && action.requestUsageReport).length;
  const withImages = plan.actions.reduce((sum, action) => sum + (action.snapshotIds?.length ?? 0), 0);
  const imagePart =
    `mark ${images('mark')}, deregister ${images('deregister')}, unmark ${images('unmark')}` +
    optional([
      [images('disable'), 'disable N'],
      [reports, reports === 1 ? 'request N usage report' : 'request N usage reports'],
    ]).join('');
  const alongside = withImages > 0 ? `; ${withImages} more deleted with their images` : '';
  const snapshotPart = plan.snapshots
    ? `mark ${snapshots('mark')}, delete ${snapshots('delete')}, unmark ${snapshots('unmark')}` +
      optional([[snapshots('archive'), 'archive N']]).join('') +
      alongside
    : `not examined${alongside}`;
  return { images: imagePart, snapshots: snapshotPart };
}

async function ask(question: string, io: CliIo): Promise<boolean> {
  const readline = createInterface({ input: io.stdin, output: io.stderr });
  try {
    const answer = await readline.question(question);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    readline.close();
  }
}

/** parseTargetSpec names the deploy params; on the CLI the same values are flags. */
const TARGET_FLAG_NAMES: Record<string, string> = {
  accounts: '--accounts',
  organizationalUnits: '--organizational-units',
  excludeAccounts: '--exclude-accounts',
  regions: '--regions',
  memberRoleName: '--role',
  organizationRoleArn: '--organization-role',
};

function withFlagNames(message: string): string {
  return message.replace(
    /^(\s+- )(\w+):/gm,
    (_whole, lead: string, key: string) => `${lead}${TARGET_FLAG_NAMES[key] ?? key}:`,
  );
}

/**
 * A run over several account-Regions: each target gets its own ports and runs its own sweep (or
 * audit), at most `concurrency` at a time. One target's failure is its own row, never the end of
 * the run.
 */
async function runTargets(
  context: { policy: Policy; region: string; now: Date; today: Date },
  options: CliOptions,
  flags: TargetFlags,
  io: CliIo,
  deps: CliDeps,
): Promise<number> {
  const { policy, region } = context;
  let spec: TargetSpec;
  try {
    spec = parseTargetSpec({
      accounts: flags.organization ? 'organization' : flags.accounts,
      organizationalUnits: flags.organizationalUnits,
      excludeAccounts: flags.excludeAccounts,
      regions: flags.regions,
      memberRoleName: flags.role,
      organizationRoleArn: flags.organizationRole,
      homeRegion: region,
    });
  } catch (error) {
    if (error instanceof TargetError) {
      io.stderr.write(`ami-janitor: ${errorText(withFlagNames(error.message))}\n\n${USAGE}\n`);
      return EXIT.usage;
    }
    throw error;
  }

  const runtime = await (deps.targetRuntime ?? awsTargetRuntime)({ region, spec, policy });
  let targets: ResolvedTarget[];
  let callerAccountId: string;
  try {
    targets = await resolveTargets(spec, runtime.source);
    callerAccountId = await runtime.source.accountId();
  } catch (error) {
    io.stderr.write(
      `ami-janitor: the targets could not be resolved: ${errorText(failureText(error))}\nNothing was changed.\n`,
    );
    return EXIT.factsUnavailable;
  }
  if (targets.length === 0) {
    io.stderr.write('ami-janitor: these flags leave no account-Region to sweep (every account excluded?)\n');
    return EXIT.usage;
  }

  const accounts = new Set(targets.map((target) => target.accountId)).size;
  const regions = new Set(targets.map((target) => target.region)).size;
  const verb =
    options.command === 'audit' ? 'Auditing' : options.command === 'apply' ? 'Applying to' : 'Planning';
  io.stderr.write(
    `${verb} ${targets.length} targets (${accounts} accounts, ${regions} Regions), ${flags.concurrency} at a time...\n`,
  );

  const slots = new Slots(flags.concurrency);
  const width = io.stdout.isTTY ? io.stdout.columns : undefined;
  if (options.command === 'audit') {
    const results = await Promise.all(
      targets.map(async (target) => {
        const result = await inSlot(slots, () => auditTarget(target, runtime, callerAccountId, context));
        io.stderr.write(`${auditProgressLine(result)}\n`);
        return result;
      }),
    );
    io.stdout.write(
      options.json
        ? `${JSON.stringify(auditTargetsDocument(results), null, 2)}\n`
        : targetsText(results, (report) => renderAudit(report, width), renderAuditTargets(results, width)),
    );
    return worstExit(results);
  }

  const mode = options.command;
  // On a terminal apply asks once, for every target: each plan waits, holding no slot, until the
  // last target has its plan or has finished.
  const barrier =
    mode === 'apply' && !options.yes
      ? new ConfirmBarrier(targets, (plans) => confirmTargets(plans, io))
      : undefined;
  // The HTML page names each image's family and each snapshot: what each target listed is kept for it.
  const listings = targets.map((): Listed => ({}));
  const results = await Promise.all(
    targets.map(async (target, index) => {
      const listed = options.html ? listings[index] : undefined;
      const result = await sweepTarget(
        target,
        runtime,
        callerAccountId,
        context,
        mode,
        slots,
        barrier,
        listed,
      );
      io.stderr.write(`${sweepProgressLine(result)}\n`);
      return result;
    }),
  );
  if (barrier?.declined) {
    return notConfirmed(
      options,
      io,
      options.json ? JSON.stringify(sweepTargetsDocument(results), null, 2) : undefined,
    );
  }
  io.stdout.write(
    options.json
      ? `${JSON.stringify(sweepTargetsDocument(results), null, 2)}\n`
      : targetsText(
          results,
          (report) => renderReport(report, width),
          renderSweepTargets(results, mode, width),
        ),
  );
  if (options.html) {
    const sections = results.map(
      (result, index): HtmlReportSection => ({
        // The text output's `=== … ===` frame is for a terminal; the page has real headings.
        heading: targetHeading(result.target).replace(/^=== (.*) ===$/, '$1'),
        ...(result.report ? { report: result.report } : {}),
        ...(result.error ? { error: result.error } : {}),
        ...listings[index],
        familyTags: policy.keepLatest.familyTags,
      }),
    );
    // Printed first above: a page that cannot be written must not hide what the run did.
    if (!(await writeHtml(options.html, sections, io))) return EXIT.cannotWrite;
  }
  return worstExit(results);
}

/** The worst exit wins: not reached or not read (3) over a critical finding (2) over failed actions (1). */
function worstExit(results: readonly TargetResult<unknown>[]): number {
  return Math.max(EXIT.ok, ...results.map((result) => result.exitCode));
}

/** Each target's heading and its report (or why there is none), then the summary table. */
function targetsText<R>(
  results: readonly TargetResult<R>[],
  render: (report: R) => string,
  summary: string,
): string {
  const blocks = results.map((result) =>
    [targetHeading(result.target), result.report ? render(result.report) : failureBlock(result)].join('\n'),
  );
  return `${[...blocks, summary].join('\n\n')}\n`;
}

function failureBlock(result: TargetResult<unknown>): string {
  return `FAILED: ${oneLine(result.error ?? 'unknown error', MAX_ERROR_LINE_CHARS)}`;
}

/** Why a target has no report, as one line; what AWS said is quoted, so it is made printable where printed. */
function failureText(error: unknown): string {
  const name = error instanceof Error ? error.name : errorCode(error);
  // A TargetAccessError's message leads with the AWS error code already.
  if (name === 'TargetAccessError') return errorMessage(error);
  if (error instanceof InventoryError) return `${errorMessage(error)} (nothing was changed)`;
  return `${name}: ${errorMessage(error)}`;
}

/** The credentials must land in the target's account, or its report would be another account's. */
async function portsFor(
  target: ResolvedTarget,
  runtime: TargetRuntime,
  callerAccountId: string,
): Promise<AccountPorts> {
  const ports = await runtime.ports(target, callerAccountId);
  const landed = await ports.inventory.accountId();
  if (landed !== target.accountId) {
    throw new TargetMismatchError(`the credentials for ${target.accountId} act in account ${landed}`);
  }
  return ports;
}

class TargetMismatchError extends Error {
  override name = 'TargetMismatchError';
}

async function auditTarget(
  target: ResolvedTarget,
  runtime: TargetRuntime,
  callerAccountId: string,
  context: { policy: Policy; now: Date },
): Promise<AuditTargetResult> {
  try {
    const ports = await portsFor(target, runtime, callerAccountId);
    const report = await auditAccount(
      { ...ports, log: logger },
      { policy: context.policy, region: target.region, now: context.now },
    );
    const exitCode =
      report.totals.critical > 0
        ? EXIT.criticalFinding
        : report.warnings.length > 0
          ? EXIT.actionsFailed
          : EXIT.ok;
    return { target, status: 'ok', report, exitCode };
  } catch (error) {
    return { target, status: 'failed', error: failureText(error), exitCode: EXIT.factsUnavailable };
  }
}

async function sweepTarget(
  target: ResolvedTarget,
  runtime: TargetRuntime,
  callerAccountId: string,
  context: { policy: Policy; now: Date; today: Date },
  mode: 'plan' | 'apply',
  slots: Slots,
  barrier: ConfirmBarrier | undefined,
  listed?: Listed,
): Promise<SweepTargetResult> {
  await slots.acquire();
  let holding = true;
  try {
    const reached = await portsFor(target, runtime, callerAccountId);
    const ports = listed ? keepListings(reached, listed) : reached;
    const report = await runSweep(
      {
        inventory: ports.inventory,
        actions: ports.actions,
        trailHealth: ports.trailHealth,
        snapshots: ports.snapshotPorts,
        ...(ports.usage ? { usage: ports.usage } : {}),
        ...(ports.recycleBin ? { recycleBin: ports.recycleBin } : {}),
        ...(ports.consumers ? { consumers: ports.consumers } : {}),
        log: logger,
      },
      {
        policy: context.policy,
        region: target.region,
        now: context.now,
        mode,
        dryRun: false,
        deadline: unboundedDeadline,
        realNow: context.today,
        ...(barrier
          ? {
              confirm: async (plan: Plan) => {
                slots.release();
                holding = false;
                const answer = await barrier.confirm(target, plan);
                await slots.acquire();
                holding = true;
                return answer;
              },
            }
          : {}),
      },
    );
    const exitCode =
      report.totals.failed > 0 || report.totals.snapshotsFailed > 0 || !report.complete
        ? EXIT.actionsFailed
        : EXIT.ok;
    return { target, status: 'ok', report, exitCode };
  } catch (error) {
    return { target, status: 'failed', error: failureText(error), exitCode: EXIT.factsUnavailable };
  } finally {
    if (holding) slots.release();
    barrier?.settled(target);
  }
}

async function inSlot<T>(slots: Slots, work: () => Promise<T>): Promise<T> {
  await slots.acquire();
  try {
    return await work();
  } finally {
    slots.release();
  }
}

/** At most `limit` targets at work at once; waiters are served in arrival order. */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(limit: number) {
    this.free = limit;
  }

  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free += 1;
  }
}

/**
 * One question for every target's plan. It is asked once each target has either brought its plan
 * (and waits for the answer) or finished without one (nothing to change, or it failed).
 */
class ConfirmBarrier {
  private readonly outstanding: Set<string>;
  private readonly plans: { target: ResolvedTarget; plan: Plan }[] = [];
  private readonly answered: Promise<boolean>;
  private release: (answer: boolean) => void = () => undefined;
  private asked = false;
  /** True once the question was asked and not answered yes. */
  declined = false;

  private readonly ask: (plans: readonly { target: ResolvedTarget; plan: Plan }[]) => Promise<boolean>;

  constructor(
    targets: readonly ResolvedTarget[],
    ask: (plans: readonly { target: ResolvedTarget; plan: Plan }[]) => Promise<boolean>,
  ) {
    this.ask = ask;
    this.outstanding = new Set(targets.map(targetKey));
    this.answered = new Promise((resolve) => {
      this.release = resolve;
    });
  }

  confirm(target: ResolvedTarget, plan: Plan): Promise<boolean> {
    this.plans.push({ target, plan });
    this.outstanding.delete(targetKey(target));
    this.askWhenAllIn();
    return this.answered;
  }

  settled(target: ResolvedTarget): void {
    this.outstanding.delete(targetKey(target));
    this.askWhenAllIn();
  }

  private askWhenAllIn(): void {
    if (this.asked || this.outstanding.size > 0 || this.plans.length === 0) return;
    this.asked = true;
    const order = (entry: { target: ResolvedTarget }) => targetKey(entry.target);
    const plans = [...this.plans].sort((a, b) => order(a).localeCompare(order(b)));
    // A prompt that cannot be read is a no: nothing changes.
    this.ask(plans).then(
      (answer) => {
        this.declined = !answer;
        this.release(answer);
      },
      () => {
        this.declined = true;
        this.release(false);
      },
    );
  }
}

function targetKey(target: ResolvedTarget): string {
  return `${target.accountId} ${target.region}`;
}

async function confirmTargets(
  plans: readonly { target: ResolvedTarget; plan: Plan }[],
  io: CliIo,
): Promise<boolean> {
  const lines = plans.map(({ target, plan }) => {
    const changes = planChanges(plan);
    return printable(`  ${targetKey(target)}: images ${changes.images}; snapshots ${changes.snapshots}`);
  });
  io.stderr.write(
    `${printable(`About to change ${plans.length} account-Regions${forecastNote(plans[0]?.plan)}:`)}\n${lines.join('\n')}\n`,
  );
  return ask('Proceed with all of them? [y/N] ', io);
}

/** The longest line of an error message the CLI prints; a quoted value may be any length. */
const MAX_ERROR_LINE_CHARS = 1000;

/**
 * Error messages quote what came from outside (an argument, a policy key, what AWS answered): each
 * line is made printable and capped, and only the message's own line breaks remain.
 */
function errorText(message: string): string {
  return message
    .split('\n')
    .map((line) => oneLine(line, MAX_ERROR_LINE_CHARS))
    .join('\n');
}
