import { MARKED_AT_TAG, USAGE_REPORT_TAG } from '../config/policy.ts';
import {
  type BinnedImage,
  type Image,
  type ImageUsageReport,
  NOT_SHARED,
  type Reference,
  type RetentionRule,
  type SharePermissions,
  type Snapshot,
} from '../model.ts';
import { DAY_MS, isoDay } from '../rules/types.ts';
import type { MemoryAccountSeed } from './memory-account.ts';

export const DEMO_ACCOUNT_ID = '111122223333';
const OTHER_ACCOUNT_ID = '444455556666';
const OUTSIDE_ACCOUNT_ID = '999988887777';
/** A partner the web images are shared with on purpose: allowed, yet its use still guards them. */
const PARTNER_ACCOUNT_ID = '555566667777';

/**
 * The policy the demo runs with: defaults plus required tags, so that rule shows too, and the
 * partner account allowed, so its shares raise no finding but still go through the usage gate.
 */
export const demoPolicyDocument = {
  requiredTags: { keys: ['Owner', 'CostCenter'] },
  sharing: { allowedAccounts: [PARTNER_ACCOUNT_ID] },
};

/** Usage reports recorded on the demo's shared images (`ami-janitor:usage-report`). */
const REPORT_IN_USE = 'amiur-0de70000000000a01';
const REPORT_PENDING = 'amiur-0de70000000000a02';

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
    // Old web images shared with the partner, marked by an earlier run with a usage report asked
    // for at the mark. The partner still launches the first (its complete report shows it), so it
    // is kept and unmarked; the second's report is not back yet, so its removal waits.
    {
      name: 'web-2025-09-01',
      ageDays: 447,
      tags: {
        ...OWNED,
        [MARKED_AT_TAG]: ago(10).toISOString(),
        [USAGE_REPORT_TAG]: `${REPORT_IN_USE} ${new Date(ago(10).getTime() + 60_000).toISOString()}`,
      },
    },
    {
      name: 'web-2025-07-01',
      ageDays: 509,
      tags: {
        ...OWNED,
        [MARKED_AT_TAG]: ago(8).toISOString(),
        // The report asked for at the mark failed; this is the fresh one asked for yesterday.
        [USAGE_REPORT_TAG]: `${REPORT_PENDING} ${ago(1).toISOString()}`,
      },
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
  const usageReports: ImageUsageReport[] = [];
  const inUseElsewhere = idOf('web-2025-09-01');
  if (inUseElsewhere) {
    sharing[inUseElsewhere.imageId] = { ...NOT_SHARED, accounts: [PARTNER_ACCOUNT_ID] };
    // Asked for with the mark, so just after it; complete, and older than the two days reports lag by.
    usageReports.push({
      reportId: REPORT_IN_USE,
      imageId: inUseElsewhere.imageId,
      state: 'available',
      createdAt: new Date(ago(10).getTime() + 60_000),
      entries: [
        { accountId: PARTNER_ACCOUNT_ID, resourceType: 'ec2:Instance', usageCount: 3 },
        { accountId: PARTNER_ACCOUNT_ID, resourceType: 'ec2:LaunchTemplate', usageCount: 1 },
      ],
    });
  }
  const awaitingReport = idOf('web-2025-07-01');
  if (awaitingReport) {
    sharing[awaitingReport.imageId] = { ...NOT_SHARED, accounts: [PARTNER_ACCOUNT_ID] };
    usageReports.push({
      reportId: REPORT_PENDING,
      imageId: awaitingReport.imageId,
      state: 'pending',
      createdAt: ago(1),
      entries: [],
    });
  }
  const exposedSnapshot = idOf('web-2026-06-15')?.snapshotIds[0];
  if (exposedSnapshot) sharing[exposedSnapshot] = { ...NOT_SHARED, public: true };
  const orphans = demoSnapshots(now);
  const orphanShared = orphans.find((snapshot) => snapshot.tags.Name === 'shared-with-partner');
  if (orphanShared) sharing[orphanShared.snapshotId] = { ...NOT_SHARED, accounts: [OUTSIDE_ACCOUNT_ID] };
  return {
    accountId: DEMO_ACCOUNT_ID,
    now,
    images,
    references,
    sharing,
    snapshots: orphans,
    lockedSnapshotIds: orphans
      .filter((snapshot) => snapshot.tags.Name === 'legal-hold')
      .map((s) => s.snapshotId),
    usageReports,
    binnedImages: [binnedImage(now)],
    retentionRules: RETENTION_RULES,
  };
}

/** An image deregistered by hand three days ago, kept by the image rule: its snapshot must stay. */
const BINNED_IMAGE_ID = 'ami-0bad000000000000c';

function binnedImage(now: Date): BinnedImage {
  return {
    imageId: BINNED_IMAGE_ID,
    name: 'billing-2026-05-01',
    enteredAt: new Date(now.getTime() - 3 * DAY_MS),
    leavesAt: new Date(now.getTime() + 11 * DAY_MS),
  };
}

/**
 * Region-level rules, as many accounts set them: images for 14 days, snapshots for only 7, so an
 * image restored in its second week lacks its snapshots; the sweep says so as a finding.
 */
const RETENTION_RULES: RetentionRule[] = [
  {
    identifier: 'amiRegion14',
    resourceType: 'EC2_IMAGE',
    retentionDays: 14,
    resourceTags: [],
    excludeTags: [],
    status: 'available',
  },
  {
    identifier: 'snapRegion7',
    resourceType: 'EBS_SNAPSHOT',
    retentionDays: 7,
    resourceTags: [],
    excludeTags: [],
    status: 'available',
  },
];

/**
 * Snapshots no image uses any more, as deregistering by hand or with other tools leaves them
 * (on top of each image's own snapshot): true orphans, and every reason one must still be kept.
 */
function demoSnapshots(now: Date): Snapshot[] {
  const ago = (days: number) => new Date(now.getTime() - days * DAY_MS);
  const gone = (n: number) => `ami-0bad0000000000${n.toString(16).padStart(3, '0')}`;
  const createdFor = (n: number) => `Created by CreateImage(i-0c0ffee00000000${n}) for ${gone(n)}`;
  const specs: {
    name: string;
    ageDays: number;
    sizeGiB: number;
    fullGiB?: number;
    description: string;
    tags?: Record<string, string>;
  }[] = [
    { name: 'orphan-of-build-17', ageDays: 210, sizeGiB: 30, fullGiB: 11.5, description: createdFor(1) },
    {
      name: 'orphan-of-copy',
      ageDays: 95,
      sizeGiB: 50,
      description: `Copied for DestinationAmi ${gone(2)} from SourceAmi ami-0f00000000000abcd for SourceSnapshot snap-0f00000000000abcd. Task created on 1,700,000,000,000.`,
    },
    {
      name: 'orphan-failed-create-image',
      ageDays: 40,
      sizeGiB: 100,
      fullGiB: 64,
      description: createdFor(3),
    },
    {
      name: 'orphan-marked-earlier',
      ageDays: 120,
      sizeGiB: 20,
      description: createdFor(4),
      tags: { [MARKED_AT_TAG]: ago(9).toISOString() },
    },
    {
      name: 'orphan-in-grace',
      ageDays: 60,
      sizeGiB: 16,
      description: createdFor(5),
      tags: { [MARKED_AT_TAG]: ago(2).toISOString() },
    },
    { name: 'orphan-too-young', ageDays: 3, sizeGiB: 8, description: createdFor(6) },
    { name: 'legal-hold', ageDays: 300, sizeGiB: 200, description: createdFor(7) },
    {
      name: 'exempt-forensics',
      ageDays: 400,
      sizeGiB: 40,
      description: createdFor(8),
      tags: { 'ami-janitor:keep': 'true' },
    },
    {
      name: 'dlm-daily',
      ageDays: 30,
      sizeGiB: 100,
      description: createdFor(9),
      tags: { 'aws:dlm:lifecycle-policy-id': 'policy-0123456789abcdef0' },
    },
    {
      name: 'backup-vault-copy',
      ageDays: 45,
      sizeGiB: 100,
      description: createdFor(10),
      tags: { 'aws:backup:source-resource': 'arn:aws:ec2:eu-west-1:111122223333:volume/vol-0b' },
    },
    { name: 'shared-with-partner', ageDays: 150, sizeGiB: 25, description: createdFor(11) },
    {
      name: 'manual-volume-backup',
      ageDays: 500,
      sizeGiB: 500,
      description: 'nightly backup of the reporting database volume',
    },
    // Its image is gone from DescribeImages but waits in the Recycle Bin: restoring it needs this.
    {
      name: 'snapshot-of-binned-image',
      ageDays: 205,
      sizeGiB: 30,
      description: `Created by CreateImage(i-0c0ffee0000000012) for ${BINNED_IMAGE_ID}`,
    },
  ];
  return specs.map((spec, index) => ({
    snapshotId: `snap-0bad0${index.toString(16).padStart(12, '0')}`,
    ownerId: DEMO_ACCOUNT_ID,
    volumeId: `vol-0bad0${index.toString(16).padStart(12, '0')}`,
    volumeSizeGiB: spec.sizeGiB,
    ...(spec.fullGiB === undefined ? {} : { fullSizeBytes: Math.round(spec.fullGiB * 1024 ** 3) }),
    startTime: ago(spec.ageDays),
    description: spec.description,
    state: 'completed',
    tags: { Name: spec.name, ...spec.tags },
  }));
}

function ref(resourceType: string, resource: string, detail?: string): Reference {
  return { resourceType, resource, ...(detail === undefined ? {} : { detail }) };
}
