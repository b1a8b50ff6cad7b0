import type { Policy } from '../config/policy.ts';
import { errorCode } from '../errors.ts';
import type { Severity } from '../model.ts';
import { evaluateImage } from '../rules/index.ts';
import { evaluateSharing } from '../rules/sharing.ts';
import { forEachConcurrent } from './concurrency.ts';
import type { InventoryPort, Log, SharingPort, SnapshotInventoryPort } from './ports.ts';

export interface TrailHealth {
  /** At least one trail that applies to the Region is logging management write events. */
  ok: boolean;
  region: string;
  /** A sentence a human can read in a Slack message or the audit report. */
  reason: string;
}

export interface TrailHealthCheck {
  check(region: string): Promise<TrailHealth>;
}

export interface AccountAuditPorts {
  inventory: Pick<InventoryPort, 'accountId' | 'listOwnedImages'>;
  snapshots: SnapshotInventoryPort;
  sharing: Pick<SharingPort, 'imageLaunchPermissions' | 'snapshotPermissions'>;
  trailHealth?: TrailHealthCheck;
  log: Log;
}

export interface AuditFinding {
  resourceType: 'image' | 'snapshot' | 'account';
  resourceId: string;
  name: string;
  rule: string;
  severity: Severity;
  reason: string;
}

export interface AccountAuditReport {
  accountId: string;
  region: string;
  asOf: string;
  images: number;
  snapshots: number;
  findings: AuditFinding[];
  totals: Record<Severity, number>;
  trail?: TrailHealth;
  /** Resources that could not be checked, with why; they are reported, never silently passed. */
  warnings: string[];
}

/** Reading sharing is one call per resource; a few in flight stay well inside the Describe bucket. */
const CONCURRENCY = 8;
const SEVERITY_ORDER: readonly Severity[] = ['critical', 'high', 'medium', 'low'];

/**
 * Findings only, changing nothing: public or over-shared images and snapshots, missing required
 * tags, malformed expiry tags, and whether CloudTrail feeds the real-time audit at all.
 */
export async function auditAccount(
  ports: AccountAuditPorts,
  request: { policy: Policy; region: string; now: Date },
): Promise<AccountAuditReport> {
  const { policy, region, now } = request;
  const accountId = await ports.inventory.accountId();
  const findings: AuditFinding[] = [];
  const warnings: string[] = [];

  let trail: TrailHealth | undefined;
  if (ports.trailHealth) {
    try {
      trail = await ports.trailHealth.check(region);
      if (!trail.ok) {
        findings.push({
          resourceType: 'account',
          resourceId: accountId,
          name: region,
          rule: 'trail-health',
          severity: 'high',
          reason: trail.reason,
        });
      }
    } catch (error) {
      warnings.push(`CloudTrail trails could not be checked (${errorCode(error)})`);
    }
  }

  const images = await ports.inventory.listOwnedImages();
  await forEachConcurrent(images, CONCURRENCY, async (image) => {
    let sharing: Awaited<ReturnType<SharingPort['imageLaunchPermissions']>> | undefined;
    try {
      sharing = await ports.sharing.imageLaunchPermissions(image.imageId);
    } catch (error) {
      warnings.push(`image ${image.imageId}: launch permissions not readable (${errorCode(error)})`);
    }
    const facts = {
      accountId,
      references: [],
      family: '',
      familyRank: 1,
      familySize: 1,
      ...(sharing ? { sharing } : {}),
    };
    for (const finding of evaluateImage(image, facts, policy, now).findings) {
      findings.push({ resourceType: 'image', resourceId: image.imageId, name: image.name, ...finding });
    }
  });

  const snapshots = await ports.snapshots.listOwnedSnapshots(accountId);
  await forEachConcurrent(snapshots, CONCURRENCY, async (snapshot) => {
    try {
      const permissions = await ports.sharing.snapshotPermissions(snapshot.snapshotId);
      for (const finding of evaluateSharing('snapshot', permissions, policy.sharing, accountId).findings) {
        findings.push({
          resourceType: 'snapshot',
          resourceId: snapshot.snapshotId,
          name: snapshot.tags.Name ?? snapshot.description,
          ...finding,
        });
      }
    } catch (error) {
      warnings.push(`snapshot ${snapshot.snapshotId}: sharing not readable (${errorCode(error)})`);
    }
  });

  findings.sort(
    (a, b) =>
      SEVERITY_ORDER.indexOf(a.severity) - SEVERITY_ORDER.indexOf(b.severity) ||
      a.resourceId.localeCompare(b.resourceId),
  );
  for (const finding of findings) {
    ports.log.warn('finding', {
      [finding.resourceType === 'snapshot' ? 'snapshotId' : 'imageId']: finding.resourceId,
      rule: finding.rule,
      verdict: 'flag',
      severity: finding.severity,
      reason: finding.reason,
    });
  }
  const totals = { critical: 0, high: 0, medium: 0, low: 0 };
  for (const finding of findings) totals[finding.severity] += 1;
  warnings.sort();
  return {
    accountId,
    region,
    asOf: now.toISOString(),
    images: images.length,
    snapshots: snapshots.length,
    findings,
    totals,
    ...(trail ? { trail } : {}),
    warnings,
  };
}
