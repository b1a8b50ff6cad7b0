import type { Policy } from '../config/policy.ts';
import type { Snapshot } from '../model.ts';
import { exemptTagNearMiss, hasExemptTag } from './exempt-tag.ts';
import { BACKUP_TAG_PREFIX, DLM_TAG_PREFIX, managedTag } from './managed.ts';

export interface SnapshotGuard {
  rule: 'locked' | 'exempt-tag' | 'dlm-managed' | 'backup-managed';
  reason: string;
}

/**
 * What keeps a snapshot whatever else is true of it: a lock, the exempt tag, or another service
 * that owns its lifetime. The orphan rule applies it, and so does deregistering an image: such a
 * snapshot is left out of its image's deletion and outlives the image.
 */
export function snapshotGuard(
  snapshot: Pick<Snapshot, 'tags'>,
  facts: { locked: boolean },
  policy: Pick<Policy, 'exemptTag'>,
): SnapshotGuard | undefined {
  if (facts.locked) return { rule: 'locked', reason: 'locked by a snapshot lock; EBS refuses to delete it' };
  if (hasExemptTag(snapshot.tags, policy.exemptTag)) {
    return {
      rule: 'exempt-tag',
      reason: `exempt: tagged ${policy.exemptTag.key}=${policy.exemptTag.value}`,
    };
  }
  const nearMiss = exemptTagNearMiss(snapshot.tags, policy.exemptTag);
  if (nearMiss) return { rule: 'exempt-tag', reason: `kept: ${nearMiss}` };
  const dlm = managedTag(snapshot.tags, DLM_TAG_PREFIX);
  if (dlm) return { rule: 'dlm-managed', reason: `managed by Data Lifecycle Manager (tag ${dlm})` };
  const backup = managedTag(snapshot.tags, BACKUP_TAG_PREFIX);
  if (backup) return { rule: 'backup-managed', reason: `managed by AWS Backup (tag ${backup})` };
  return undefined;
}
