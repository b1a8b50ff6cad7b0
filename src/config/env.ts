import { isAbsolute, join } from 'node:path';
import { parseTargetSpec, type TargetSpec } from '../core/targets.ts';
import { PolicyError } from '../errors.ts';

export interface SweepEnvironment {
  policyFile: string;
  /** The deployment's dry-run switch; the run is live only when this and the policy both say so. */
  dryRun: boolean;
  region: string;
}

export interface EventEnvironment extends SweepEnvironment {
  /** Name of the SSM SecureString holding the Slack webhook URL; the URL itself never sits in env. */
  slackWebhookParameter: string | undefined;
  /** SSM path under which small alert state (what was last alerted on) is kept. */
  stateParameterPrefix: string;
  /**
   * The DynamoDB table of sweep locks (one sweep of an account-Region at a time). Unset, sweeps
   * run without the guard: only outside a deployment, which always sets it.
   */
  lockTable: string | undefined;
}

/** Reads the Lambda's environment once, at cold start, and fails fast on a bad value. */
export function readEventEnvironment(env: NodeJS.ProcessEnv = process.env): EventEnvironment {
  const name = env.AMI_JANITOR_SLACK_WEBHOOK_PARAMETER?.trim();
  return {
    ...readSweepEnvironment(env),
    slackWebhookParameter: name ? name : undefined,
    stateParameterPrefix: env.AMI_JANITOR_STATE_PARAMETER_PREFIX?.trim() || '/ami-janitor/state',
    lockTable: env.AMI_JANITOR_LOCK_TABLE?.trim() || undefined,
  };
}

/** Reads the Lambda's environment once, at cold start, and fails fast on a bad value. */
export function readSweepEnvironment(env: NodeJS.ProcessEnv = process.env): SweepEnvironment {
  const file = env.AMI_JANITOR_POLICY_FILE ?? 'policy.yml';
  const root = env.LAMBDA_TASK_ROOT ?? process.cwd();
  const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  if (!region) throw new PolicyError(['AWS_REGION is not set']);
  return {
    policyFile: isAbsolute(file) ? file : join(root, file),
    dryRun: parseBoolean('AMI_JANITOR_DRY_RUN', env.AMI_JANITOR_DRY_RUN, true),
    region,
  };
}

function parseBoolean(name: string, value: string | undefined, fallback: boolean): boolean {
  if (value === undefined || value.trim() === '') return fallback;
  const normalised = value.trim().toLowerCase();
  if (normalised === 'true') return true;
  if (normalised === 'false') return false;
  throw new PolicyError([`${name} must be 'true' or 'false', not '${value}'`]);
}

/**
 * The deployment's targets, as serverless.yml passes its params: the same spec for the fan-out
 * and for the real-time audit. A bad value fails the cold start, naming it.
 */
export function readTargetSpec(env: NodeJS.ProcessEnv = process.env): TargetSpec {
  const homeRegion = env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  if (!homeRegion) throw new PolicyError(['AWS_REGION is not set']);
  return parseTargetSpec({
    accounts: env.AMI_JANITOR_ACCOUNTS,
    organizationalUnits: env.AMI_JANITOR_ORGANIZATIONAL_UNITS,
    excludeAccounts: env.AMI_JANITOR_EXCLUDE_ACCOUNTS,
    regions: env.AMI_JANITOR_REGIONS,
    memberRoleName: env.AMI_JANITOR_MEMBER_ROLE_NAME,
    organizationRoleArn: env.AMI_JANITOR_ORGANIZATION_ROLE_ARN,
    homeRegion,
  });
}

/** Whether a spec reaches beyond the function's own account and Region. */
export function reachesBeyondHome(spec: TargetSpec, homeRegion: string): boolean {
  return (
    spec.accounts.kind !== 'self' ||
    spec.regions.kind === 'all' ||
    spec.regions.regions.some((region) => region !== homeRegion)
  );
}
