import { MARKED_AT_TAG } from '../config/policy.ts';
import { type Image, NOT_SHARED, type Reference, type SharePermissions } from '../model.ts';
import { DAY_MS, isoDay } from '../rules/types.ts';
import type { MemoryAccountSeed } from './memory-account.ts';

export const DEMO_ACCOUNT_ID = '111122223333';
const OTHER_ACCOUNT_ID = '444455556666';
const OUTSIDE_ACCOUNT_ID = '999988887777';

/** The policy the demo runs with: defaults plus required tags, so that rule shows too. */
export const demoPolicyDocument = {
  requiredTags: { keys: ['Owner', 'CostCenter'] },
};

const OWNED = { Owner: 'platform-team', CostCenter: 'cc-1001' };

interface Spec {
  name: string;
  ageDays: number;
  launchedDaysAgo?: number;
  tags?: Record<string, string>;
  state?: Image['state'];
  protection?: string;
  ownerId?: string;
  public?: boolean;
  deprecatedInDays?: number;
  snapshots?: number;
  sharedSnapshotWith?: string;
  uses?: Reference[];
}

/**
 * A realistic account, dated relative to `now` so the demo plan reads the same whenever it runs:
 * build pipelines with long tails of old versions, images still in use in every way EC2 allows,
 * images protected by each guard, expiry tags, and images already marked by an earlier run.
 */
export function demoAccount(now: Date): MemoryAccountSeed {
  const ago = (days: number) => new Date(now.getTime() - days * DAY_MS);
  const specs: Spec[] = [
    // A web build pipeline: the newest two survive by keep-latest, the tail ages out.
    { name: 'web-2026-11-10', ageDays: 12, launchedDaysAgo: 1, tags: OWNED },
    { name: 'web-2026-08-01', ageDays: 113, launchedDaysAgo: 40, tags: OWNED },
    { name: 'web-2026-06-15', ageDays: 160, launchedDaysAgo: 120, tags: OWNED },
    { name: 'web-2026-04-02', ageDays: 234, tags: OWNED },
    { name: 'web-2026-01-20', ageDays: 306, tags: OWNED, state: 'disabled' },
    { name: 'web-2025-11-01', ageDays: 386, tags: OWNED, deprecatedInDays: -30 },
    // An API service versioned v1..v7: old but still launched recently means kept.
    { name: 'api-v7', ageDays: 5, tags: OWNED },
    { name: 'api-v6', ageDays: 45, tags: OWNED },
    { name: 'api-v5', ageDays: 130, launchedDaysAgo: 3, tags: OWNED },
    { name: 'api-v4', ageDays: 190, launchedDaysAgo: 60, tags: OWNED },
    { name: 'api-v3', ageDays: 250, launchedDaysAgo: 200, tags: OWNED, public: true },
    { name: 'api-v2', ageDays: 310, tags: OWNED, sharedSnapshotWith: 'api-v1' },
    { name: 'api-v1', ageDays: 400, tags: OWNED },
    // Old images that something still needs: every kind of reference.
    {
      name: 'batch-worker-1.0.3',
      ageDays: 400,
      tags: OWNED,
      uses: [ref('ec2:Instance', 'i-0a1b2c3d4e5f60001', 'running')],
    },
    {
      name: 'batch-worker-0.9.0',
      ageDays: 500,
      tags: OWNED,
      uses: [ref('ec2:Instance', 'i-0a1b2c3d4e5f60002', 'stopped')],
    },
    { name: 'batch-worker-0.8.1', ageDays: 520, tags: OWNED },
    {
      name: 'queue-consumer-2025-05-01',
      ageDays: 570,
      tags: OWNED,
      uses: [ref('ec2:LaunchTemplate', 'lt-0c0ffee000000001', 'version 3 ($Default)')],
    },
    { name: 'queue-consumer-2025-03-01', ageDays: 630, tags: OWNED },
    {
      name: 'legacy-app-2024-09-09',
      ageDays: 800,
      tags: OWNED,
      uses: [ref('autoscaling:AutoScalingGroup', 'legacy-app-asg', 'via launch configuration legacy-app-lc')],
    },
    {
      name: 'golden-base-2025-02-02',
      ageDays: 658,
      tags: OWNED,
      uses: [ref('ssm:Parameter', '/golden/base/latest')],
    },
    // Guards that protect an image regardless of age.
    { name: 'payments-release-2025-01-10', ageDays: 681, tags: OWNED, protection: 'enabled' },
    {
      name: 'db-host-backup-2025-06-01',
      ageDays: 539,
      tags: {
        ...OWNED,
        'aws:backup:source-resource-arn': 'arn:aws:ec2:eu-west-1:111122223333:instance/i-0db0000000000001',
      },
    },
    {
      name: 'nightly-dlm-2025-07-07',
      ageDays: 503,
      tags: { ...OWNED, 'aws:dlm:lifecycle-policy-id': 'policy-0a1b2c3d4e5f' },
    },
    { name: 'compliance-baseline-2024-01-01', ageDays: 1056, tags: { ...OWNED, 'ami-janitor:keep': 'true' } },
    { name: 'ml-training-2026-11-21', ageDays: 1, tags: OWNED, state: 'pending' },
    // Owners=self never returns this, but the guard is the last line of defence if it ever did.
    { name: 'vendor-appliance-3.2', ageDays: 900, tags: OWNED, ownerId: OTHER_ACCOUNT_ID },
    // Expiry tags decide regardless of age; a malformed one is reported, never guessed at.
    { name: 'hotfix-test-1', ageDays: 20, tags: { ...OWNED, 'ami-janitor:expires-at': isoDay(ago(3)) } },
    { name: 'load-test-1', ageDays: 10, tags: { ...OWNED, 'ami-janitor:expires-at': isoDay(ago(-60)) } },
    { name: 'sandbox-jdoe-1', ageDays: 200, tags: { 'ami-janitor:expires-at': 'next friday' } },
    // Missing the required Owner/CostCenter tags: a finding, whatever the verdict.
    { name: 'experiment-2026-10-01', ageDays: 52 },
    // Marked by an earlier run: one still in its grace period, one past it, one needed again.
    { name: 'reporting-2025-12-01', ageDays: 356, tags: { ...OWNED, [MARKED_AT_TAG]: ago(3).toISOString() } },
    { name: 'reporting-2025-10-01', ageDays: 417, tags: { ...OWNED, [MARKED_AT_TAG]: ago(9).toISOString() } },
    { name: 'reporting-2026-11-01', ageDays: 21, tags: OWNED },
    { name: 'reporting-2026-11-15', ageDays: 7, tags: OWNED },
    {
      name: 'search-indexer-2025-08-08',
      ageDays: 471,
      tags: { ...OWNED, [MARKED_AT_TAG]: ago(5).toISOString() },
      deprecatedInDays: 2,
      uses: [ref('ec2:Instance', 'i-0a1b2c3d4e5f60003', 'stopped')],
    },
  ];

  const images: Image[] = [];
  const references: Record<string, Reference[]> = {};
  const snapshotsByName = new Map<string, string[]>();
  specs.forEach((spec, index) => {
    const imageId = `ami-0de70${index.toString(16).padStart(12, '0')}`;
    const snapshotIds = Array.from(
      { length: spec.snapshots ?? 1 },
      (_, n) => `snap-0de70${index.toString(16).padStart(8, '0')}${n.toString(16).padStart(4, '0')}`,
    );
    snapshotsByName.set(spec.name, snapshotIds);
    images.push({
      imageId,
      name: spec.name,
      ownerId: spec.ownerId ?? DEMO_ACCOUNT_ID,
      state: spec.state ?? 'available',
      creationDate: ago(spec.ageDays),
      ...(spec.launchedDaysAgo === undefined ? {} : { lastLaunchedTime: ago(spec.launchedDaysAgo) }),
      ...(spec.deprecatedInDays === undefined ? {} : { deprecationTime: ago(-spec.deprecatedInDays) }),
      ...(spec.protection === undefined ? {} : { deregistrationProtection: spec.protection }),
      public: spec.public ?? false,
      tags: spec.tags ?? {},
      snapshotIds,
    });
    if (spec.uses) references[imageId] = spec.uses;
  });
  // An image copied from another shares its snapshot; neither removal may take it from the other.
  for (const spec of specs) {
    const partner = spec.sharedSnapshotWith && snapshotsByName.get(spec.sharedSnapshotWith)?.[0];
    const image = images.find((candidate) => candidate.name === spec.name);
    if (partner && image) image.snapshotIds = [...image.snapshotIds, partner];
  }
  // Sharing beyond the public flag: an image shared with an outside account, a public snapshot.
  const idOf = (name: string) => images.find((image) => image.name === name);
  const sharing: Record<string, SharePermissions> = {};
  const shared = idOf('api-v4');
  if (shared) sharing[shared.imageId] = { ...NOT_SHARED, accounts: [OUTSIDE_ACCOUNT_ID] };
  const exposedSnapshot = idOf('web-2026-06-15')?.snapshotIds[0];
  if (exposedSnapshot) sharing[exposedSnapshot] = { ...NOT_SHARED, public: true };
  return { accountId: DEMO_ACCOUNT_ID, images, references, sharing };
}

function ref(resourceType: string, resource: string, detail?: string): Reference {
  return { resourceType, resource, ...(detail === undefined ? {} : { detail }) };
}
