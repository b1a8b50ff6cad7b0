import { toImage } from '../../src/adapters/ec2.ts';
import { toSnapshot } from '../../src/adapters/sharing.ts';
import type { Policy } from '../../src/config/policy.ts';
import { decideBeforeReferences } from '../../src/core/image-decisions.ts';
import { buildPlan } from '../../src/core/planner.ts';
import { buildSnapshotPlan } from '../../src/core/snapshot-planner.ts';
import type { Plan, Reference, SharePermissions, SnapshotDecision, SnapshotFacts } from '../../src/model.ts';
import { buildFacts } from '../../src/rules/family.ts';
import { evaluateImage } from '../../src/rules/index.ts';
import { evaluateSnapshot } from '../../src/rules/snapshot-orphan.ts';
import type { AccountState, SimSnapshot } from './account.ts';
import { toRawImage, toRawSnapshot } from './simulator.ts';

/**
 * The reference evaluation: src's pure rules and planners run straight on the simulator's state,
 * with no adapter and no API in between. It says what a sweep of that state must decide (so the
 * bench knows the minimum calls and what "everything eligible" is) and it times the CPU that
 * evaluation and planning alone cost.
 */
export interface ReferenceEvaluation {
  plan: Plan;
  images: number;
  snapshots: number;
  launchTemplates: number;
  /** Templates whose $Default is older than the version depth DescribeImageReferences looks at. */
  templatesOutsideDepth: number;
  /** Entries DescribeLockedSnapshots lists (expired locks included). */
  lockEntries: number;
  volumes: number;
  /** Orphans that pass every check but sharing: the snapshots whose sharing must be read. */
  orphanCandidates: number;
  /** Eligible images (expire verdict), marked or not. */
  eligibleImages: number;
  /** Images every rule but the in-use guard lets go: their references settle the plan. */
  referenceCandidates: number;
  /** CPU (user + system) of evaluation and planning, in ms, conversions excluded. */
  cpuMs: { images: number; snapshots: number };
}

export function evaluateReference(
  state: AccountState,
  policy: Policy,
  now: Date,
  region = state.region,
): ReferenceEvaluation {
  const { accountId } = state;
  const sizes = new Map(state.snapshots.map((s) => [s.snapshotId, s.volumeSizeGiB]));
  const sizeOf = (id: string) => sizes.get(id) ?? 8;
  const images = state.images.map((image) => toImage(toRawImage(image, accountId, sizeOf)));
  const snapshots = state.snapshots.flatMap((snapshot) => {
    const converted = toSnapshot(toRawSnapshot(snapshot, accountId));
    return converted ? [converted] : [];
  });
  const depth = policy.inUse.launchTemplateVersions;
  const references = referencesOf(state, depth);
  const simSnapshots = new Map(state.snapshots.map((s) => [s.snapshotId, s]));

  // Images: facts, verdicts, plan. The same calls runSweep makes, without the logging.
  const imageStart = process.cpuUsage();
  const facts = buildFacts(images, references, accountId, policy.keepLatest.familyTags);
  const decisions = images.flatMap((image) => {
    const imageFacts = facts.get(image.imageId);
    return imageFacts ? [evaluateImage(image, imageFacts, policy, now)] : [];
  });
  // As the sweep does without a usage port: a public candidate is shared, so it is never deprecated.
  const referenceCandidates = decideBeforeReferences(images, accountId, policy, now).candidates;
  const sharedImageIds = new Set(
    referenceCandidates.filter((image) => image.public).map((image) => image.imageId),
  );
  const plan = buildPlan({ accountId, region, images, decisions, policy, now, sharedImageIds });
  const imageCpu = cpuMsSince(imageStart);

  // Snapshots: the facts evaluateSnapshots builds, a first verdict, sharing for orphan candidates.
  const snapshotStart = process.cpuUsage();
  const usedBy = new Map<string, string[]>();
  for (const image of images) {
    for (const id of image.snapshotIds) {
      const users = usedBy.get(id);
      if (users) users.push(image.imageId);
      else usedBy.set(id, [image.imageId]);
    }
  }
  const existingImageIds = new Set(images.map((image) => image.imageId));
  const locked = (id: string) => {
    const lock = simSnapshots.get(id)?.lockState;
    return lock !== undefined && lock !== 'expired';
  };
  const factsOf = (snapshotId: string, sharing?: SharePermissions): SnapshotFacts => ({
    accountId,
    usedBy: usedBy.get(snapshotId) ?? [],
    existingImageIds,
    locked: locked(snapshotId),
    ...(sharing ? { sharing } : {}),
  });
  let orphanCandidates = 0;
  const snapshotDecisions: SnapshotDecision[] = snapshots.map((snapshot) => {
    const first = evaluateSnapshot(snapshot, factsOf(snapshot.snapshotId), policy, now);
    if (first.verdict !== 'orphan') return first;
    orphanCandidates++;
    const sharing = sharingOf(simSnapshots.get(snapshot.snapshotId));
    return evaluateSnapshot(snapshot, factsOf(snapshot.snapshotId, sharing), policy, now);
  });
  plan.snapshots = buildSnapshotPlan({ snapshots, decisions: snapshotDecisions, policy, now });
  const snapshotCpu = cpuMsSince(snapshotStart);

  return {
    plan,
    images: images.length,
    snapshots: snapshots.length,
    launchTemplates: state.templates.length,
    templatesOutsideDepth: state.templates.filter((t) => t.defaultVersion <= t.versions.length - depth)
      .length,
    lockEntries: state.snapshots.filter((s) => s.lockState !== undefined).length,
    volumes: state.volumes.length,
    orphanCandidates,
    eligibleImages: decisions.filter((d) => d.verdict === 'expire').length,
    referenceCandidates: referenceCandidates.length,
    cpuMs: { images: imageCpu, snapshots: snapshotCpu },
  };
}

/** What DescribeImageReferences (plus the $Default check) reports: live instances and template versions. */
function referencesOf(state: AccountState, depth: number): Map<string, Reference[]> {
  const references = new Map<string, Reference[]>();
  const add = (imageId: string, reference: Reference) => {
    const list = references.get(imageId);
    if (list) list.push(reference);
    else references.set(imageId, [reference]);
  };
  for (const instance of state.instances) {
    if (instance.state === 'terminated') continue;
    add(instance.imageId, {
      resourceType: 'ec2:Instance',
      resource: `arn:aws:ec2:${state.region}:${state.accountId}:instance/${instance.instanceId}`,
      detail: instance.state,
    });
  }
  for (const template of state.templates) {
    const latest = template.versions.length;
    for (const version of template.versions) {
      if (version.number > latest - depth || version.number === template.defaultVersion) {
        add(version.imageId, {
          resourceType: 'ec2:LaunchTemplate',
          resource: template.templateId,
          detail: `${template.name} version ${version.number}`,
        });
      }
    }
  }
  return references;
}

function sharingOf(snapshot: SimSnapshot | undefined): SharePermissions {
  return {
    public: snapshot?.public ?? false,
    accounts: [...(snapshot?.sharedWith ?? [])],
    organizations: [],
    organizationalUnits: [],
  };
}

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}
