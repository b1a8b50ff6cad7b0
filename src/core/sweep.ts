import type { Policy } from '../config/policy.ts';
import { InventoryError } from '../errors.ts';
import type { ActionOutcome, Plan } from '../model.ts';
import { buildFacts } from '../rules/family.ts';
import { evaluateImage } from '../rules/index.ts';
import { executePlan } from './executor.ts';
import { buildPlan } from './planner.ts';
import type { Deadline, ImageActionsPort, InventoryPort, Log } from './ports.ts';
import { buildReport, type RunReport } from './report.ts';

export interface SweepPorts {
  inventory: InventoryPort;
  actions: ImageActionsPort;
  log: Log;
}

export interface SweepRequest {
  policy: Policy;
  region: string;
  /** The clock of the run: decisions, marks and grace periods are all measured against it. */
  now: Date;
  mode: 'plan' | 'apply';
  dryRun: boolean;
  deadline: Deadline;
  reserveMs?: number;
  /** Asked with the finished plan before anything changes; declining leaves the account untouched. */
  confirm?: (plan: Plan) => Promise<boolean>;
}

const DEFAULT_RESERVE_MS = 20_000;

/**
 * One sweep: gather facts once, evaluate every image, plan, and (in apply mode) execute. If the
 * facts cannot be gathered completely the run stops before planning: an image whose use is
 * unknown must never be removed.
 */
export async function runSweep(ports: SweepPorts, request: SweepRequest): Promise<RunReport> {
  const { policy, now } = request;
  const { log } = ports;
  const startedAt = new Date();

  const { accountId, images, references } = await gatherFacts(ports.inventory);
  const facts = buildFacts(images, references, accountId, policy.keepLatest.familyTags);

  const decisions = images.flatMap((image) => {
    const imageFacts = facts.get(image.imageId);
    return imageFacts ? [evaluateImage(image, imageFacts, policy, now)] : [];
  });
  for (const decision of decisions) {
    log.info('decision', {
      imageId: decision.imageId,
      rule: decision.rule,
      verdict: decision.verdict,
      reason: decision.reason,
    });
    for (const finding of decision.findings) {
      log.warn('finding', {
        imageId: decision.imageId,
        rule: finding.rule,
        verdict: 'flag',
        severity: finding.severity,
        reason: finding.reason,
      });
    }
  }

  const plan = buildPlan({ accountId, region: request.region, images, decisions, policy, now });
  const warnings: string[] = [];
  let execute = request.mode === 'apply';
  if (execute && plan.actions.length > 0 && request.confirm && !(await request.confirm(plan))) {
    warnings.push('apply was not confirmed: nothing was changed');
    execute = false;
  }
  const outcomes: ActionOutcome[] = execute
    ? await executePlan(plan, ports.actions, {
        dryRun: request.dryRun,
        now,
        accountId,
        policy,
        deadline: request.deadline,
        reserveMs: request.reserveMs ?? DEFAULT_RESERVE_MS,
        log,
      })
    : plan.actions.map((action) => ({ action, status: 'planned', warnings: [], snapshots: [] }));

  const report = buildReport(plan, outcomes, {
    mode: request.mode,
    dryRun: request.mode === 'apply' && request.dryRun,
    startedAt,
    finishedAt: new Date(),
    warnings,
  });
  log.info('sweep summary', {
    mode: report.mode,
    dryRun: report.dryRun,
    accountId,
    region: request.region,
    asOf: report.asOf,
    complete: report.complete,
    totals: report.totals,
  });
  return report;
}

async function gatherFacts(inventory: InventoryPort) {
  try {
    const accountId = await inventory.accountId();
    const images = await inventory.listOwnedImages();
    const references = await inventory.findReferences(images);
    return { accountId, images, references };
  } catch (error) {
    if (error instanceof InventoryError) throw error;
    throw new InventoryError(`could not gather the account's facts: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
