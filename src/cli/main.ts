import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import { defaultPolicy, type Policy, parsePolicy } from '../config/policy.ts';
import { loadPolicyFile } from '../config/policy-file.ts';
import { type AccountAuditReport, auditAccount, type TrailHealthCheck } from '../core/account-audit.ts';
import { futureClockReason } from '../core/clock.ts';
import type {
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
import { DEMO_ACCOUNT_ID, demoAccount, demoPolicyDocument } from '../demo/demo-account.ts';
import { MemoryAccount } from '../demo/memory-account.ts';
import { InventoryError, PolicyError, UsageError } from '../errors.ts';
import { logger, sendLogsToStderr } from '../logger.ts';
import type { Plan } from '../model.ts';
import { oneLine, printable } from '../text.ts';
import { renderAudit, renderReport } from './render.ts';

/** Exit codes scripts can rely on; `audit` exits 2 on a critical finding so it can gate a pipeline. */
export const EXIT = {
  ok: 0,
  actionsFailed: 1,
  criticalFinding: 2,
  factsUnavailable: 3,
  usage: 64,
  policy: 78,
} as const;

const USAGE = `Usage: ami-janitor <command> [options]

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
  --yes               apply without asking
  --verbose           Structured decision logs on stderr
  -h, --help          This help

Exit codes: 0 ok, 1 some actions failed or were not reached (audit: some resources unreadable),
2 audit found a critical finding, 3 AWS facts could not be gathered, 64 usage error, 78 invalid policy.`;

export interface CliIo {
  stdout: NodeJS.WritableStream & { columns?: number; isTTY?: boolean };
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

const processIo: CliIo = {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
};

export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  let options: CliOptions;
  try {
    options = parseCli(argv);
  } catch (error) {
    io.stderr.write(`ami-janitor: ${errorText((error as Error).message)}\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  if (options.help) {
    io.stdout.write(`${USAGE}\n`);
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
  // The demo account is dated from today, so that --as-of forecasts it like a real one.
  const ports = options.demo ? demoPorts(today) : await awsPorts(region, policy);
  const progress = (message: string) => {
    if (!options.json) io.stderr.write(`${message}\n`);
  };
  progress(
    options.demo ? `Using the built-in demo account ${DEMO_ACCOUNT_ID}.` : `Gathering facts in ${region}...`,
  );
  if (options.command === 'audit') return audit(ports, { policy, region, now }, options, io);

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
        confirm: options.yes ? undefined : (plan) => confirm(plan, io),
      },
    );
  } catch (error) {
    if (error instanceof InventoryError) {
      io.stderr.write(`ami-janitor: ${errorText(error.message)}\nNothing was changed.\n`);
      return EXIT.factsUnavailable;
    }
    throw error;
  }

  io.stdout.write(
    options.json
      ? `${JSON.stringify(report, null, 2)}\n`
      : `${renderReport(report, io.stdout.isTTY ? io.stdout.columns : undefined)}\n`,
  );
  return report.totals.failed > 0 || report.totals.snapshotsFailed > 0 || !report.complete
    ? EXIT.actionsFailed
    : EXIT.ok;
}

interface CliOptions {
  command: 'plan' | 'apply' | 'audit';
  region?: string;
  config?: string;
  asOf?: Date;
  demo: boolean;
  json: boolean;
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
      yes: { type: 'boolean', short: 'y', default: false },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command = 'plan', ...extra] = positionals;
  if (command !== 'plan' && command !== 'apply' && command !== 'audit') {
    throw new UsageError(`unknown command '${command}'`);
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
  return {
    command,
    ...(values.region === undefined ? {} : { region: values.region }),
    ...(values.config === undefined ? {} : { config: values.config }),
    ...(values['as-of'] === undefined ? {} : { asOf: parseAsOf(values['as-of']) }),
    demo: values.demo,
    json: values.json,
    yes: values.yes,
    verbose: values.verbose,
    help: values.help,
  };
}

function parseAsOf(value: string): Date {
  const date = /^\d{4}-\d{2}-\d{2}$/.test(value) ? new Date(`${value}T00:00:00Z`) : new Date(value);
  if (Number.isNaN(date.getTime()) || !/^\d{4}-\d{2}-\d{2}/.test(value)) {
    throw new UsageError(`--as-of '${value}' is not a date (use YYYY-MM-DD or an ISO time)`);
  }
  return date;
}

interface AccountPorts {
  inventory: InventoryPort;
  actions: ImageActionsPort;
  snapshots: SnapshotInventoryPort;
  sharing: SharingPort;
  trailHealth: TrailHealthCheck;
  snapshotPorts: SnapshotPorts;
  usage?: ImageUsagePort;
  recycleBin?: RecycleBinPort;
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
  // Loaded on demand so `--demo` never pays for the SDK.
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
  const clients = createAwsClients({ region });
  return {
    inventory: ec2.createInventory({
      ...clients,
      launchTemplateVersions: policy.inUse.launchTemplateVersions,
    }),
    actions: ec2.createImageActions(clients),
    snapshots: createSnapshotInventory(clients),
    sharing: createSharing(clients),
    trailHealth: createTrailHealthCheck(clients),
    snapshotPorts: createSnapshotPorts(clients),
    usage: createImageUsage(clients),
    recycleBin: createRecycleBin(clients),
  };
}

async function confirm(plan: Plan, io: CliIo): Promise<boolean> {
  const count = (kind: string) => plan.actions.filter((action) => action.kind === kind).length;
  const forecast =
    Math.abs(new Date(plan.asOf).getTime() - Date.now()) > 60_000
      ? ` as if it were ${plan.asOf.slice(0, 10)}`
      : '';
  const prompt = printable(
    `About to change account ${plan.accountId} in ${plan.region}${forecast}: mark ${count('mark')}, ` +
      `deregister ${count('deregister')}, unmark ${count('unmark')} images. Proceed? [y/N] `,
  );
  const readline = createInterface({ input: io.stdin, output: io.stderr });
  try {
    const answer = await readline.question(prompt);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    readline.close();
  }
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
