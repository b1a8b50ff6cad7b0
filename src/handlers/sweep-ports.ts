import type { AwsClients } from '../adapters/clients.ts';
import { backfillCreators, createCreatorLookup, createTrailHealthCheck } from '../adapters/cloudtrail.ts';
import { createImageActions, createInventory } from '../adapters/ec2.ts';
import type { ApiLimiter } from '../adapters/limiter.ts';
import { createRecycleBin } from '../adapters/recycle-bin.ts';
import { createSnapshotPorts } from '../adapters/snapshots.ts';
import { createImageUsage } from '../adapters/usage.ts';
import type { Policy } from '../config/policy.ts';
import { CREATED_BY_TAG } from '../core/image-audit.ts';
import type { Log, StateStore } from '../core/ports.ts';
import type { RunReport } from '../core/report.ts';
import type { SweepPorts } from '../core/sweep.ts';
import { alertOnTrailChange, type TrailAlertOutcome } from '../core/trail-alert.ts';
import { boundedNotifier, type Notifier, type SlackBudget } from '../notify/slack.ts';

/**
 * What the sweep and the sweep-target handlers share, kept apart from both: each handler module
 * builds its Lambda handler when imported, so neither can import the other.
 */

/**
 * Every port of a sweep, over one account's and Region's clients (the module-wide ones when none
 * are given). A limiter per account-Region: EC2 meters each on its own bucket.
 */
export function sweepPorts(
  clients: AwsClients | undefined,
  options: { policy: Policy; signal: AbortSignal | undefined; limiter?: ApiLimiter },
): Omit<SweepPorts, 'log'> {
  const { policy, signal, limiter } = options;
  const ec2 = clients ? { ec2: clients.ec2 } : {};
  const common = { signal, ...(limiter ? { limiter } : {}) };
  const cloudTrail = clients ? { cloudTrail: clients.cloudTrail } : {};
  const lookup = createCreatorLookup({ ...cloudTrail, signal });
  return {
    inventory: createInventory({
      ...(clients
        ? { ec2: clients.ec2, autoScaling: clients.autoScaling, ssm: clients.ssm, sts: clients.sts }
        : {}),
      ...common,
      launchTemplateVersions: policy.inUse.launchTemplateVersions,
    }),
    actions: createImageActions({ ...ec2, ...common }),
    trailHealth: createTrailHealthCheck({ ...cloudTrail, signal }),
    snapshots: createSnapshotPorts({ ...ec2, ...common }),
    usage: createImageUsage({ ...ec2, ...common }),
    recycleBin: createRecycleBin({ ...ec2, ...common }),
    attribution: {
      backfill: (images, { now, max }) =>
        backfillCreators(images, lookup, { now, max, createdByTag: CREATED_BY_TAG }),
    },
  };
}

/**
 * Each Slack delivery gets a third of the time left, and never the last 12 s: middy aborts 10 s
 * before the timeout, and the rest is for the state writes and the log lines after it.
 */
export const SWEEP_SLACK_BUDGET: SlackBudget = { share: 1 / 3, reserveMs: 12_000 };

export interface SweepAlerts {
  notifier: Notifier;
  state: StateStore;
}

/** The alerts' notifier, each send fitted into what is left of the invocation. */
export function boundedAlerts(alerts: SweepAlerts, remainingMs: () => number): SweepAlerts {
  return { ...alerts, notifier: boundedNotifier(alerts.notifier, remainingMs, SWEEP_SLACK_BUDGET) };
}

/** The Region's real-time audit going blind (or recovering), alerted once per change. */
export async function alertOnTrail(
  report: RunReport,
  alerts: SweepAlerts,
  log: Log,
): Promise<TrailAlertOutcome> {
  const outcome = await alertOnTrailChange(report.trail, { accountId: report.accountId, ...alerts, log });
  log.info('trail health', { verdict: report.trail?.ok ? 'ok' : 'blind', alert: outcome });
  return outcome;
}

/**
 * The state under a prefix: the trail state is kept per Region, and a member account's Regions
 * must not share it with the deployment's own.
 */
export function scopedState(state: StateStore, prefix: string): StateStore {
  return {
    get: (key) => state.get(`${prefix}/${key}`),
    put: (key, value) => state.put(`${prefix}/${key}`, value),
  };
}
