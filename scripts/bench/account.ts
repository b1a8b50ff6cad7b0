/**
 * A simulated account for the benchmark: deterministic by seed, sized by counts, and shaped so a
 * "full sweep" has something to do everywhere. Every image that is eligible and every orphaned
 * snapshot already carries `ami-janitor:marked-at` from 30 days ago, so the grace period is over
 * and an apply removes them; a small share is eligible but not yet marked (the apply marks it) and
 * a small share carries a stale mark (the apply unmarks it), so tagging is measured too.
 *
 * The generator also works out what a correct sweep must do (`intended`) from the way it built
 * the account, independently of src/: the smoke test checks src's own evaluation against it.
 */

export const ACCOUNT_ID = '123456789012';
export const OUTSIDE_ACCOUNT_ID = '210987654321';
export const REGION = 'us-east-1';
export const MARKED_AT_TAG = 'ami-janitor:marked-at';
export const EXEMPT_TAG = 'ami-janitor:keep';
const DAY_MS = 86_400_000;

export interface AccountCounts {
  images: number;
  families: number;
  snapshots: number;
  orphans: number;
  instances: number;
  launchTemplates: number;
  versionsPerTemplate: number;
}

/** The reference account the bench sweeps by default: 10,000 AMIs, 50,000 snapshots. */
export const REFERENCE_COUNTS: AccountCounts = {
  images: 10_000,
  families: 400,
  snapshots: 50_000,
  orphans: 8_000,
  instances: 5_000,
  launchTemplates: 500,
  versionsPerTemplate: 5,
};

/** EC2's per-Region quota, which caps the snapshot count of larger accounts. */
const SNAPSHOT_QUOTA = 100_000;

/** The reference account's proportions at another image count (snapshots capped by the quota). */
export function countsFor(images: number): AccountCounts {
  const ratio = images / REFERENCE_COUNTS.images;
  const snapshots = Math.min(SNAPSHOT_QUOTA, Math.round(REFERENCE_COUNTS.snapshots * ratio));
  return {
    images,
    families: Math.max(1, Math.round(REFERENCE_COUNTS.families * ratio)),
    snapshots,
    orphans: Math.round(snapshots * (REFERENCE_COUNTS.orphans / REFERENCE_COUNTS.snapshots)),
    instances: Math.round(REFERENCE_COUNTS.instances * ratio),
    launchTemplates: Math.max(1, Math.round(REFERENCE_COUNTS.launchTemplates * ratio)),
    versionsPerTemplate: REFERENCE_COUNTS.versionsPerTemplate,
  };
}

export interface SimImage {
  imageId: string;
  name: string;
  creationDate: Date;
  state: 'available' | 'pending';
  lastLaunchedTime?: Date;
  deprecationTime?: Date;
  deregistrationProtection?: string;
  public: boolean;
  /** Accounts with launch permission. */
  sharedWith: string[];
  tags: Record<string, string>;
  snapshotIds: string[];
  sourceInstanceId: string;
}

export interface SimSnapshot {
  snapshotId: string;
  volumeId: string;
  volumeSizeGiB: number;
  fullSizeBytes?: number;
  startTime: Date;
  description: string;
  tags: Record<string, string>;
  /** Accounts with create-volume permission. */
  sharedWith: string[];
  public: boolean;
  lockState?: 'governance' | 'compliance' | 'expired';
}

export type InstanceState = 'running' | 'stopped' | 'terminated';

export interface SimInstance {
  instanceId: string;
  imageId: string;
  state: InstanceState;
}

export interface SimTemplate {
  templateId: string;
  name: string;
  defaultVersion: number;
  /** Version 1 first; `versions[n - 1].number === n`. */
  versions: { number: number; imageId: string }[];
}

/** What a correct full sweep does to this account, worked out by the generator itself. */
export interface Intended {
  /** Eligible, marked 30 days ago: deregistered by an apply. */
  imagesRemoved: number;
  /** Eligible, not marked yet: marked (and deprecated) by an apply. */
  imagesMarked: number;
  /** Kept but carrying a mark: unmarked (deprecation cancelled) by an apply. */
  imagesUnmarked: number;
  /** Snapshots that name an image which no longer exists. */
  orphans: number;
  /** Orphans that pass every check but sharing, so their sharing must be read. */
  orphanCandidates: number;
  orphansDeleted: number;
  orphansMarked: number;
  snapshotsUnmarked: number;
}

/** The resources of an account at one moment: what the simulator holds and serves. */
export interface AccountState {
  accountId: string;
  region: string;
  images: SimImage[];
  snapshots: SimSnapshot[];
  instances: SimInstance[];
  templates: SimTemplate[];
  /** Ids of volumes that exist (DescribeVolumes). */
  volumes: string[];
}

export interface Account extends AccountState {
  asOf: Date;
  counts: AccountCounts;
  intended: Intended;
}

export interface GenerateOptions {
  counts: AccountCounts;
  seed?: number;
  asOf?: Date;
  /** policy.inUse.launchTemplateVersions, to know which template versions hold an image. */
  launchTemplateVersions?: number;
  /** The policy's age limits; the generator keeps clear of their boundaries. */
  maxAgeDays?: number;
  unusedDays?: number;
  keepLatest?: number;
}

/** mulberry32: a tiny, fast PRNG with a 32-bit state, plenty for shaping test data. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** EC2-style ids with 17 hex digits; zero-padded, so string order is creation order. */
function makeId(prefix: string, namespace: string, n: number): string {
  return `${prefix}-${namespace}${n.toString(16).padStart(17 - namespace.length, '0')}`;
}

/** `aa`, `ab`, ...: family names must not end in digits, which the family rule strips as a version. */
function letters(n: number): string {
  let out = '';
  let rest = n;
  do {
    out = String.fromCharCode(97 + (rest % 26)) + out;
    rest = Math.floor(rest / 26);
  } while (rest > 0);
  return out.padStart(2, 'a');
}

function pick<T>(items: readonly T[], random: () => number): T {
  const item = items[Math.floor(random() * items.length)];
  if (item === undefined) throw new RangeError('pick from an empty list');
  return item;
}

function daysAgo(asOf: Date, days: number): Date {
  return new Date(asOf.getTime() - days * DAY_MS);
}

export const DEFAULT_AS_OF = new Date('2026-03-02T06:00:00.000Z');

export function generateAccount(options: GenerateOptions): Account {
  const { counts } = options;
  const random = mulberry32(options.seed ?? 1);
  const asOf = options.asOf ?? DEFAULT_AS_OF;
  const depth = options.launchTemplateVersions ?? 5;
  const maxAgeDays = options.maxAgeDays ?? 90;
  const unusedDays = options.unusedDays ?? 30;
  const keepLatest = options.keepLatest ?? 2;
  const markedAt = daysAgo(asOf, 30);
  const ourDeprecation = new Date(markedAt.getTime() + 7 * DAY_MS);
  const chance = (p: number) => random() < p;
  const volumeSize = () => pick([8, 8, 16, 30, 50, 100, 200], random);
  const maybeFullSize = (size: number) =>
    chance(0.5) ? { fullSizeBytes: Math.round(size * 1024 ** 3 * (0.1 + 0.8 * random())) } : {};

  let volumeCounter = 0;
  let instanceCounter = 0;
  const nextVolume = () => makeId('vol', '0', ++volumeCounter);
  const nextInstanceId = () => makeId('i', '0', ++instanceCounter);

  // Images, family by family, ages over two years but never within a day of the age limits, so
  // the intended verdicts cannot depend on rounding.
  const families = Array.from({ length: counts.families }, (_, f) => `app-${letters(f)}`);
  const images: SimImage[] = [];
  const snapshots: SimSnapshot[] = [];
  let snapshotCounter = 0;
  const nextSnapshotId = () => makeId('snap', '0', ++snapshotCounter);
  const lastOfFamily = new Map<string, SimImage>();
  const familyOf = new Map<string, string>();

  for (let i = 0; i < counts.images; i++) {
    const family = families[i % families.length] ?? 'app-aa';
    let age = random() * 730;
    if (age >= maxAgeDays - 1 && age < maxAgeDays + 2) age += 3;
    const creationDate = daysAgo(asOf, age);
    const imageId = makeId('ami', '0', i + 1);
    const sourceInstanceId = nextInstanceId();
    const image: SimImage = {
      imageId,
      name: `${family}-${creationDate.toISOString().slice(0, 10)}-${String(i).padStart(5, '0')}`,
      creationDate,
      state: chance(0.001) ? 'pending' : 'available',
      public: false,
      sharedWith: [],
      tags: { Name: family, Team: `team-${letters(i % 7)}` },
      snapshotIds: [],
      sourceInstanceId,
    };
    const launch = random();
    if (launch < 0.3) {
      // Launched recently (within unusedDays, never at its edge).
      image.lastLaunchedTime = daysAgo(asOf, Math.min(age, unusedDays - 2) * random());
    } else if (launch < 0.7 && age > unusedDays + 2) {
      image.lastLaunchedTime = daysAgo(asOf, unusedDays + 2 + (age - unusedDays - 2) * random());
    }
    if (chance(0.01)) image.tags[EXEMPT_TAG] = 'true';
    if (chance(0.005)) image.deregistrationProtection = 'enabled';
    if (chance(0.005)) image.tags['aws:backup:source-resource'] = `arn:aws:ec2:${REGION}::instance/x`;
    if (chance(0.005)) image.public = true;
    else if (chance(0.02)) image.sharedWith.push(OUTSIDE_ACCOUNT_ID);

    const weight = random();
    const snapshotCount = weight < 0.6 ? 1 : weight < 0.85 ? 2 : 3;
    const previous = lastOfFamily.get(family);
    // Images registered from an existing snapshot share it with the image that made it.
    const sharesSnapshot = previous !== undefined && chance(0.05);
    if (sharesSnapshot && previous) {
      const shared = previous.snapshotIds[0];
      if (shared) image.snapshotIds.push(shared);
    }
    while (image.snapshotIds.length < snapshotCount) {
      const snapshotId = nextSnapshotId();
      const size = volumeSize();
      const volumeId = nextVolume();
      snapshots.push({
        snapshotId,
        volumeId,
        volumeSizeGiB: size,
        ...maybeFullSize(size),
        startTime: creationDate,
        description: `Created by CreateImage(${sourceInstanceId}) for ${imageId} from ${volumeId}`,
        tags: {},
        sharedWith: [],
        public: false,
      });
      image.snapshotIds.push(snapshotId);
    }
    images.push(image);
    lastOfFamily.set(family, image);
    familyOf.set(imageId, family);
  }

  // Newest first within a family, ties by id: the order the keep-latest rule ranks by.
  const rank = new Map<string, number>();
  const topOfFamily = new Map<string, SimImage[]>();
  for (const family of families) topOfFamily.set(family, []);
  const byFamily = new Map<string, SimImage[]>();
  for (const image of images) {
    const family = familyOf.get(image.imageId) ?? '';
    const members = byFamily.get(family) ?? [];
    members.push(image);
    byFamily.set(family, members);
  }
  for (const [family, members] of byFamily) {
    members.sort(
      (a, b) => b.creationDate.getTime() - a.creationDate.getTime() || a.imageId.localeCompare(b.imageId),
    );
    members.forEach((image, index) => {
      rank.set(image.imageId, index + 1);
    });
    topOfFamily.set(family, members.slice(0, 3));
  }
  const familiesWithImages = [...byFamily.keys()];
  const recentImage = () => pick(topOfFamily.get(pick(familiesWithImages, random)) ?? images, random);

  // Instances: most run the newest images of a family, some an arbitrary (possibly old) one.
  const instances: SimInstance[] = [];
  for (let n = 0; n < counts.instances; n++) {
    const roll = random();
    const state: InstanceState = roll < 0.6 ? 'running' : roll < 0.8 ? 'stopped' : 'terminated';
    const image = chance(0.7) ? recentImage() : pick(images, random);
    instances.push({ instanceId: nextInstanceId(), imageId: image.imageId, state });
  }

  const templates: SimTemplate[] = [];
  for (let t = 0; t < counts.launchTemplates; t++) {
    const versions = Array.from({ length: counts.versionsPerTemplate }, (_, v) => ({
      number: v + 1,
      imageId: (chance(0.7) ? recentImage() : pick(images, random)).imageId,
    }));
    const latest = counts.versionsPerTemplate;
    templates.push({
      templateId: makeId('lt', '0', t + 1),
      name: `template-${letters(t)}`,
      defaultVersion: chance(0.8) ? latest : 1 + Math.floor(random() * latest),
      versions,
    });
  }

  const inUse = new Set<string>();
  for (const instance of instances) if (instance.state !== 'terminated') inUse.add(instance.imageId);
  for (const template of templates) {
    const latest = template.versions.length;
    for (const version of template.versions) {
      if (version.number > latest - depth || version.number === template.defaultVersion) {
        inUse.add(version.imageId);
      }
    }
  }

  // Intended verdicts, from how the account was built: guards, keep-latest, then age and use.
  const intended: Intended = {
    imagesRemoved: 0,
    imagesMarked: 0,
    imagesUnmarked: 0,
    orphans: 0,
    orphanCandidates: 0,
    orphansDeleted: 0,
    orphansMarked: 0,
    snapshotsUnmarked: 0,
  };
  const removed = new Set<string>();
  // Shares by counting rather than by chance, so even a small account has some of each.
  let eligibleSeen = 0;
  let keptSeen = 0;
  for (const image of images) {
    const ageDays = (asOf.getTime() - image.creationDate.getTime()) / DAY_MS;
    const idleDays = (asOf.getTime() - (image.lastLaunchedTime ?? image.creationDate).getTime()) / DAY_MS;
    const guarded =
      image.state === 'pending' ||
      inUse.has(image.imageId) ||
      image.deregistrationProtection !== undefined ||
      image.tags[EXEMPT_TAG] !== undefined ||
      image.tags['aws:backup:source-resource'] !== undefined ||
      // The shared-image gate holds a public image until a usage report shows no use elsewhere,
      // and the simulated account answers no usage reports.
      image.public;
    const eligible =
      !guarded &&
      (rank.get(image.imageId) ?? 1) > keepLatest &&
      ageDays > maxAgeDays &&
      idleDays > unusedDays;
    // 1 in 50 eligible images is seen for the first time; 1 in 200 kept ones carries a stale mark.
    const marked = eligible ? eligibleSeen++ % 50 !== 25 : keptSeen++ % 200 === 100;
    if (marked) {
      image.tags[MARKED_AT_TAG] = markedAt.toISOString();
      image.deprecationTime = ourDeprecation;
    }
    if (eligible && marked) {
      intended.imagesRemoved++;
      removed.add(image.imageId);
    } else if (eligible) intended.imagesMarked++;
    else if (marked) intended.imagesUnmarked++;
  }
  const removedSnapshots = new Set(
    images.filter((image) => removed.has(image.imageId)).flatMap((image) => image.snapshotIds),
  );
  for (const snapshot of snapshots) {
    // A stale mark on a snapshot a kept image still uses. (None on the snapshots of images this
    // sweep removes: unmarking a snapshot deleted moments earlier would only measure an error path.)
    if (!removedSnapshots.has(snapshot.snapshotId) && chance(0.005)) {
      snapshot.tags[MARKED_AT_TAG] = markedAt.toISOString();
      intended.snapshotsUnmarked++;
    }
  }

  // Orphans: made for images that are gone. Some are still protected (locked, shared, exempt,
  // managed, too young); the rest were marked 30 days ago, except a few first seen now.
  let goneCounter = 0;
  let candidatesSeen = 0;
  for (let n = 0; n < counts.orphans; n++) {
    const goneImage = makeId('ami', 'f', ++goneCounter);
    const volumeId = nextVolume();
    const size = volumeSize();
    const snapshot: SimSnapshot = {
      snapshotId: nextSnapshotId(),
      volumeId,
      volumeSizeGiB: size,
      ...maybeFullSize(size),
      startTime: daysAgo(asOf, 40 + random() * 690),
      description: chance(0.8)
        ? `Created by CreateImage(${makeId('i', 'f', goneCounter)}) for ${goneImage} from ${volumeId}`
        : `Copied for DestinationAmi ${goneImage} from SourceAmi ${makeId('ami', 'e', goneCounter)} for SourceSnapshot ${makeId('snap', 'e', goneCounter)}. Task created on 1,700,000,000,000.`,
      tags: {},
      sharedWith: [],
      public: false,
    };
    intended.orphans++;
    const roll = random();
    if (roll < 0.01) snapshot.lockState = chance(0.5) ? 'governance' : 'compliance';
    else if (roll < 0.015) snapshot.tags[EXEMPT_TAG] = 'true';
    else if (roll < 0.02) snapshot.tags['aws:dlm:lifecycle-policy-id'] = 'policy-0123456789abcdef0';
    else if (roll < 0.025) snapshot.startTime = daysAgo(asOf, 0.5 + 5 * random());
    else {
      intended.orphanCandidates++;
      if (roll < 0.035) {
        // Shared: only reading its permissions shows it must stay.
        if (chance(0.2)) snapshot.public = true;
        else snapshot.sharedWith.push(OUTSIDE_ACCOUNT_ID);
      } else {
        // An expired lock no longer protects anything.
        if (roll < 0.04) snapshot.lockState = 'expired';
        if (candidatesSeen++ % 50 === 25) intended.orphansMarked++;
        else {
          snapshot.tags[MARKED_AT_TAG] = markedAt.toISOString();
          intended.orphansDeleted++;
        }
      }
    }
    snapshots.push(snapshot);
  }

  // Plain volume snapshots (backups), enough to reach the snapshot count.
  const volumes: string[] = [];
  for (let n = snapshots.length; n < counts.snapshots; n++) {
    const volumeId = nextVolume();
    if (chance(0.5)) volumes.push(volumeId);
    const size = volumeSize();
    const snapshot: SimSnapshot = {
      snapshotId: nextSnapshotId(),
      volumeId,
      volumeSizeGiB: size,
      ...maybeFullSize(size),
      startTime: daysAgo(asOf, random() * 730),
      description: chance(0.5) ? '' : `nightly backup of ${volumeId}`,
      tags: {},
      sharedWith: [],
      public: false,
    };
    const roll = random();
    if (roll < 0.1) snapshot.tags['aws:dlm:lifecycle-policy-id'] = 'policy-0123456789abcdef0';
    else if (roll < 0.13) snapshot.tags['aws:backup:source-resource'] = `arn:aws:ec2:${REGION}::volume/x`;
    else if (roll < 0.135) snapshot.lockState = 'governance';
    else if (roll < 0.137) {
      // A stale mark on a snapshot that is not an image's: ami-orphans mode keeps it.
      snapshot.tags[MARKED_AT_TAG] = markedAt.toISOString();
      intended.snapshotsUnmarked++;
    }
    snapshots.push(snapshot);
  }
  // Ids in creation order, so a listing in id order is a stable order for paging.
  snapshots.sort((a, b) => (a.snapshotId < b.snapshotId ? -1 : 1));
  for (const instance of instances) if (instance.state !== 'terminated') volumes.push(nextVolume());
  volumes.sort();

  return {
    accountId: ACCOUNT_ID,
    region: REGION,
    asOf,
    counts,
    images,
    snapshots,
    instances,
    templates,
    volumes,
    intended,
  };
}
