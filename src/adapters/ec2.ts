import type {
  LaunchTemplateSpecification as AsgLaunchTemplateSpecification,
  AutoScalingGroup,
} from '@aws-sdk/client-auto-scaling';
import {
  DescribeAutoScalingGroupsCommand,
  DescribeLaunchConfigurationsCommand,
} from '@aws-sdk/client-auto-scaling';
import type {
  DescribeLaunchTemplateVersionsCommandInput,
  EC2Client,
  Image as Ec2Image,
  LaunchTemplateVersion,
  ResourceTypeRequest,
} from '@aws-sdk/client-ec2';
import {
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeleteTagsCommand,
  DeregisterImageCommand,
  DescribeImageReferencesCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeLaunchTemplateVersionsCommand,
  DisableImageCommand,
  DisableImageDeprecationCommand,
  EnableImageCommand,
  EnableImageDeprecationCommand,
} from '@aws-sdk/client-ec2';
import { DescribeParametersCommand, GetParametersCommand } from '@aws-sdk/client-ssm';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import type { DeregisterResult, ImageActionsPort, InventoryPort } from '../core/ports.ts';
import { errorCode, InventoryError } from '../errors.ts';
import { logger } from '../logger.ts';
import type { Image, ImageState, Reference } from '../model.ts';
import { awsClients } from './clients.ts';
import { defaultLimiter } from './limiter.ts';
import { describeSnapshotsById } from './snapshot-shape.ts';

export type { AdapterDeps } from './common.ts';

import { type AdapterDeps, type Call, chunk, forEachConcurrent, makeCall, paginate } from './common.ts';
import { isRetryableError, isUnsupportedAction } from './retry.ts';

/** Every state except `terminated`: a stopped instance still boots from its AMI when started. */
export const LIVE_INSTANCE_STATES = ['pending', 'running', 'shutting-down', 'stopping', 'stopped'];

/** DescribeImageReferences accepts at most 10 image ids per call. */
const REFERENCE_BATCH_SIZE = 10;
/** GetParameters accepts at most 10 names per call. */
const PARAMETER_BATCH_SIZE = 10;
/** EC2 accepts up to 200 values in one filter. */
export const FILTER_VALUES_PER_CALL = 200;
/**
 * Calls in flight at once for per-batch and per-template work. Describe calls share a token bucket
 * (100, refilling 20/s); a few parallel callers use it well, and withRetry absorbs the odd throttle.
 */
const CONCURRENCY = 4;

const MISSING_TEMPLATE_CODES = new Set([
  'InvalidLaunchTemplateId.NotFound',
  'InvalidLaunchTemplateName.NotFoundException',
]);

const IMAGE_STATES: ReadonlySet<string> = new Set<ImageState>([
  'available',
  'pending',
  'invalid',
  'deregistered',
  'transient',
  'failed',
  'error',
  'disabled',
]);

export interface InventoryDeps extends AdapterDeps {
  /** Skips STS when the caller already knows the account. */
  accountId?: string;
  /** policy.inUse.launchTemplateVersions: how many of a template's newest versions count as in use. */
  launchTemplateVersions: number;
}

function parseDate(value: string | undefined, field: string, imageId: string): Date | undefined {
  if (value === undefined || value === '') return undefined;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) {
    throw new InventoryError(`image ${imageId} has an unparseable ${field}: ${JSON.stringify(value)}`);
  }
  return date;
}

/**
 * Maps one DescribeImages entry to the domain Image.
 *
 * An image without a CreationDate is an error, not a default: epoch would make it look ancient
 * and so eligible for removal, and "now" would make it the newest of its family and push a real
 * image down the keep-latest ranking. Failing the inventory means the run removes nothing.
 */
export function toImage(raw: Ec2Image): Image {
  const imageId = raw.ImageId;
  if (!imageId) throw new InventoryError('DescribeImages returned an image without an ImageId');
  const creationDate = parseDate(raw.CreationDate, 'CreationDate', imageId);
  if (!creationDate) {
    throw new InventoryError(`image ${imageId} has no CreationDate; refusing to guess its age`);
  }
  const tags: Record<string, string> = {};
  for (const tag of raw.Tags ?? []) {
    if (tag.Key !== undefined) tags[tag.Key] = tag.Value ?? '';
  }
  const snapshotIds: string[] = [];
  for (const mapping of raw.BlockDeviceMappings ?? []) {
    if (mapping.Ebs?.SnapshotId) snapshotIds.push(mapping.Ebs.SnapshotId);
  }
  const image: Image = {
    imageId,
    name: raw.Name ?? '',
    ownerId: raw.OwnerId ?? '',
    // A state we do not know is read as pending, which the guards never remove.
    state: raw.State && IMAGE_STATES.has(raw.State) ? (raw.State as ImageState) : 'pending',
    creationDate,
    public: raw.Public === true,
    tags,
    snapshotIds,
  };
  const lastLaunchedTime = parseDate(raw.LastLaunchedTime, 'LastLaunchedTime', imageId);
  if (lastLaunchedTime) image.lastLaunchedTime = lastLaunchedTime;
  const deprecationTime = parseDate(raw.DeprecationTime, 'DeprecationTime', imageId);
  if (deprecationTime) image.deprecationTime = deprecationTime;
  if (raw.DeregistrationProtection) image.deregistrationProtection = raw.DeregistrationProtection;
  if (raw.SourceInstanceId) image.sourceInstanceId = raw.SourceInstanceId;
  return image;
}

/** Gathers references per image, dropping exact duplicates; only for `wanted` images when given. */
function createCollector(wanted?: ReadonlySet<string>) {
  const found = new Map<string, Map<string, Reference>>();
  return {
    add(imageId: string | undefined, reference: Reference): void {
      if (imageId === undefined || (wanted && !wanted.has(imageId))) return;
      const key = `${reference.resourceType}\n${reference.resource}\n${reference.detail ?? ''}`;
      let references = found.get(imageId);
      if (!references) {
        references = new Map();
        found.set(imageId, references);
      }
      references.set(key, reference);
    },
    result(): Map<string, Reference[]> {
      return new Map([...found].map(([imageId, references]) => [imageId, [...references.values()]]));
    },
  };
}

type Collector = ReturnType<typeof createCollector>;

/** Wraps a failed enumeration: a missing in-use fact must block removals, never read as "unused". */
async function inventoryStep<T>(description: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    if (error instanceof InventoryError) throw error;
    throw new InventoryError(`cannot ${description}: ${errorCode(error)}`, { cause: error });
  }
}

interface TemplateSummary {
  id: string;
  name: string;
  defaultVersion: number | undefined;
  latestVersion: number | undefined;
}

function versionDetail(version: LaunchTemplateVersion, labels: readonly string[]): string {
  const suffix = labels.length > 0 ? ` (${labels.join(', ')})` : '';
  return `${version.LaunchTemplateName ?? version.LaunchTemplateId ?? 'launch template'} version ${version.VersionNumber ?? '?'}${suffix}`;
}

export function createInventory(deps: InventoryDeps): InventoryPort {
  const depth = deps.launchTemplateVersions;
  if (!Number.isInteger(depth) || depth < 1) {
    throw new RangeError(`launchTemplateVersions must be a whole number >= 1, got ${depth}`);
  }
  const ec2 = deps.ec2 ?? awsClients.ec2;
  const autoScaling = deps.autoScaling ?? awsClients.autoScaling;
  const ssm = deps.ssm ?? awsClients.ssm;
  const log = deps.log ?? logger;
  const call = makeCall(deps);

  let accountIdPromise: Promise<string> | undefined = deps.accountId
    ? Promise.resolve(deps.accountId)
    : undefined;
  // Once DescribeImageReferences has failed as unsupported, later calls go straight to enumeration.
  let referencesApiUnavailable = false;
  let accountWide: { enumerate: boolean; references: Promise<Map<string, Reference[]>> } | undefined;

  const referenceResourceTypes: ResourceTypeRequest[] = [
    {
      ResourceType: 'ec2:Instance',
      ResourceTypeOptions: [{ OptionName: 'state-name', OptionValues: [...LIVE_INSTANCE_STATES] }],
    },
    {
      ResourceType: 'ec2:LaunchTemplate',
      ResourceTypeOptions: [{ OptionName: 'version-depth', OptionValues: [String(depth)] }],
    },
    { ResourceType: 'ssm:Parameter' },
    { ResourceType: 'imagebuilder:ImageRecipe' },
    { ResourceType: 'imagebuilder:ContainerRecipe' },
  ];

  async function referencesFromApi(
    imageIds: readonly string[],
    refs: Collector,
    onBatch?: (size: number) => void,
  ): Promise<void> {
    await forEachConcurrent(chunk(imageIds, REFERENCE_BATCH_SIZE), CONCURRENCY, async (batch) => {
      await paginate(
        'DescribeImageReferences',
        (NextToken) =>
          call('DescribeImageReferences', (options) =>
            ec2.send(
              new DescribeImageReferencesCommand({
                ImageIds: batch,
                ResourceTypes: referenceResourceTypes,
                NextToken,
              }),
              options,
            ),
          ),
        (page) => {
          for (const reference of page.ImageReferences ?? []) {
            refs.add(reference.ImageId, {
              resourceType: reference.ResourceType ?? 'unknown',
              resource: reference.Arn ?? 'unknown',
            });
          }
        },
      );
      onBatch?.(batch.length);
    });
  }

  async function describeTemplateVersions(
    input: DescribeLaunchTemplateVersionsCommandInput,
  ): Promise<LaunchTemplateVersion[]> {
    const versions: LaunchTemplateVersion[] = [];
    await paginate(
      'DescribeLaunchTemplateVersions',
      (NextToken) =>
        call('DescribeLaunchTemplateVersions', (options) =>
          // MaxResults matters on moto, which silently truncates to 15 and never sends a token.
          ec2.send(
            new DescribeLaunchTemplateVersionsCommand({ ...input, MaxResults: 200, NextToken }),
            options,
          ),
        ),
      (page) => versions.push(...(page.LaunchTemplateVersions ?? [])),
    );
    return versions;
  }

  async function listLaunchTemplates(): Promise<TemplateSummary[]> {
    const templates: TemplateSummary[] = [];
    await paginate(
      'DescribeLaunchTemplates',
      (NextToken) =>
        call('DescribeLaunchTemplates', (options) =>
          ec2.send(new DescribeLaunchTemplatesCommand({ MaxResults: 200, NextToken }), options),
        ),
      (page) => {
        for (const template of page.LaunchTemplates ?? []) {
          if (!template.LaunchTemplateId) continue;
          templates.push({
            id: template.LaunchTemplateId,
            name: template.LaunchTemplateName ?? template.LaunchTemplateId,
            defaultVersion: template.DefaultVersionNumber,
            latestVersion: template.LatestVersionNumber,
          });
        }
      },
    );
    return templates;
  }

  /** A template deleted since it was listed holds no image; anything else is a real failure. */
  async function versionsOfListedTemplate(
    input: DescribeLaunchTemplateVersionsCommandInput,
  ): Promise<LaunchTemplateVersion[]> {
    try {
      return await describeTemplateVersions(input);
    } catch (error) {
      if (MISSING_TEMPLATE_CODES.has(errorCode(error))) return [];
      throw error;
    }
  }

  function addTemplateVersion(
    refs: Collector,
    version: LaunchTemplateVersion,
    labels: readonly string[],
  ): void {
    refs.add(version.LaunchTemplateData?.ImageId, {
      resourceType: 'ec2:LaunchTemplate',
      resource: version.LaunchTemplateId ?? version.LaunchTemplateName ?? 'unknown',
      detail: versionDetail(version, labels),
    });
  }

  /**
   * DescribeImageReferences only looks `version-depth` versions back from the newest, so a `$Default`
   * that is older than that window would be missed without this.
   */
  async function defaultVersionsOutsideDepth(refs: Collector): Promise<void> {
    const templates = await listLaunchTemplates();
    const outside = templates.filter(
      (t) =>
        t.defaultVersion === undefined ||
        t.latestVersion === undefined ||
        t.defaultVersion <= t.latestVersion - depth,
    );
    await forEachConcurrent(outside, CONCURRENCY, async (template) => {
      const versions = await versionsOfListedTemplate({
        LaunchTemplateId: template.id,
        Versions: [template.defaultVersion === undefined ? '$Default' : String(template.defaultVersion)],
      });
      for (const version of versions) addTemplateVersion(refs, version, ['$Default']);
    });
  }

  /** `$Default`, `$Latest` and the newest N versions of every launch template. */
  async function launchTemplateReferences(refs: Collector): Promise<void> {
    const templates = await listLaunchTemplates();
    await forEachConcurrent(templates, CONCURRENCY, async (template) => {
      // MinVersion is documented as "the version after which"; asking from latest-N and filtering
      // below gives the newest N whether the API reads it as exclusive or (like moto) inclusive.
      const windowStart = template.latestVersion === undefined ? 0 : template.latestVersion - depth;
      const versions = await versionsOfListedTemplate({
        LaunchTemplateId: template.id,
        ...(windowStart >= 1 ? { MinVersion: String(windowStart) } : {}),
      });
      const latest = Math.max(template.latestVersion ?? 0, ...versions.map((v) => v.VersionNumber ?? 0));
      const cutoff = latest - depth;
      let sawDefault = false;
      for (const version of versions) {
        const number = version.VersionNumber ?? 0;
        const isDefault = version.DefaultVersion === true || number === template.defaultVersion;
        if (number <= cutoff && !isDefault) continue;
        sawDefault ||= isDefault;
        const labels: string[] = [];
        if (isDefault) labels.push('$Default');
        if (number === latest) labels.push('$Latest');
        if (labels.length === 0) labels.push(`among the last ${depth}`);
        addTemplateVersion(refs, version, labels);
      }
      if (!sawDefault) {
        const defaults = await versionsOfListedTemplate({
          LaunchTemplateId: template.id,
          Versions: [template.defaultVersion === undefined ? '$Default' : String(template.defaultVersion)],
        });
        for (const version of defaults) addTemplateVersion(refs, version, ['$Default']);
      }
    });
  }

  async function instanceReferences(refs: Collector): Promise<void> {
    await paginate(
      'DescribeInstances',
      (NextToken) =>
        call('DescribeInstances', (options) =>
          ec2.send(
            new DescribeInstancesCommand({
              Filters: [{ Name: 'instance-state-name', Values: [...LIVE_INSTANCE_STATES] }],
              MaxResults: 1000,
              NextToken,
            }),
            options,
          ),
        ),
      (page) => {
        for (const reservation of page.Reservations ?? []) {
          for (const instance of reservation.Instances ?? []) {
            const state = instance.State?.Name;
            if (state === 'terminated') continue;
            refs.add(instance.ImageId, {
              resourceType: 'ec2:Instance',
              resource: instance.InstanceId ?? 'unknown',
              ...(state ? { detail: state } : {}),
            });
          }
        }
      },
    );
  }

  async function imageParameterNames(): Promise<string[]> {
    const names: string[] = [];
    const describe = (filtered: boolean) =>
      paginate(
        'DescribeParameters',
        (NextToken) =>
          call('DescribeParameters', (options) =>
            ssm.send(
              new DescribeParametersCommand({
                ...(filtered
                  ? { ParameterFilters: [{ Key: 'DataType', Option: 'Equals', Values: ['aws:ec2:image'] }] }
                  : {}),
                MaxResults: 50,
                NextToken,
              }),
              options,
            ),
          ),
        (page) => {
          for (const parameter of page.Parameters ?? []) {
            if (parameter.Name && parameter.DataType === 'aws:ec2:image') names.push(parameter.Name);
          }
        },
      );
    try {
      await describe(true);
    } catch (error) {
      // moto rejects the DataType filter key; listing everything and filtering here is equivalent.
      if (!['ValidationException', 'InvalidFilterKey'].includes(errorCode(error))) throw error;
      log.debug('DescribeParameters rejected the DataType filter; filtering client-side', {
        errorCode: errorCode(error),
      });
      names.length = 0;
      await describe(false);
    }
    return names;
  }

  async function parameterReferences(refs: Collector): Promise<void> {
    const names = await imageParameterNames();
    await forEachConcurrent(chunk(names, PARAMETER_BATCH_SIZE), CONCURRENCY, async (batch) => {
      const output = await call('GetParameters', (options) =>
        ssm.send(new GetParametersCommand({ Names: batch }), options),
      );
      for (const parameter of output.Parameters ?? []) {
        refs.add(parameter.Value, {
          resourceType: 'ssm:Parameter',
          resource: parameter.ARN ?? parameter.Name ?? 'unknown',
          ...(parameter.Name ? { detail: parameter.Name } : {}),
        });
      }
    });
  }

  /**
   * DescribeImageReferences does not cover Auto Scaling, so this runs on both paths. Groups are
   * listed before launch configurations: a configuration attached to a listed group existed before
   * the group did, so it is always in the later listing.
   */
  async function autoScalingReferences(refs: Collector): Promise<void> {
    const groups: AutoScalingGroup[] = [];
    await paginate(
      'DescribeAutoScalingGroups',
      (NextToken) =>
        call('DescribeAutoScalingGroups', (options) =>
          autoScaling.send(new DescribeAutoScalingGroupsCommand({ MaxRecords: 100, NextToken }), options),
        ),
      (page) => groups.push(...(page.AutoScalingGroups ?? [])),
    );

    const launchConfigurationImages = new Map<string, string | undefined>();
    await paginate(
      'DescribeLaunchConfigurations',
      (NextToken) =>
        call('DescribeLaunchConfigurations', (options) =>
          autoScaling.send(new DescribeLaunchConfigurationsCommand({ MaxRecords: 100, NextToken }), options),
        ),
      (page) => {
        for (const configuration of page.LaunchConfigurations ?? []) {
          const name = configuration.LaunchConfigurationName ?? 'unknown';
          launchConfigurationImages.set(name, configuration.ImageId);
          // Attached or not: a launch configuration can be attached to a group at any moment.
          refs.add(configuration.ImageId, {
            resourceType: 'autoscaling:LaunchConfiguration',
            resource: configuration.LaunchConfigurationARN ?? name,
            detail: name,
          });
        }
      },
    );

    const pins = new Map<
      string,
      { spec: AsgLaunchTemplateSpecification; version: string; groups: AutoScalingGroup[] }
    >();
    for (const group of groups) {
      const groupResource = group.AutoScalingGroupARN ?? group.AutoScalingGroupName ?? 'unknown';
      if (group.LaunchConfigurationName) {
        refs.add(launchConfigurationImages.get(group.LaunchConfigurationName), {
          resourceType: 'autoscaling:AutoScalingGroup',
          resource: groupResource,
          detail: `via launch configuration ${group.LaunchConfigurationName}`,
        });
      }
      const mixed = group.MixedInstancesPolicy?.LaunchTemplate;
      const specs = [
        group.LaunchTemplate,
        mixed?.LaunchTemplateSpecification,
        ...(mixed?.Overrides ?? []).map((override) => override.LaunchTemplateSpecification),
      ];
      for (const spec of specs) {
        if (!spec || !(spec.LaunchTemplateId || spec.LaunchTemplateName)) continue;
        // Auto Scaling reads a missing version as $Default.
        const version = spec.Version || '$Default';
        const key = `${spec.LaunchTemplateId ?? ''}\n${spec.LaunchTemplateName ?? ''}\n${version}`;
        const pin = pins.get(key) ?? { spec, version, groups: [] };
        if (!pin.groups.includes(group)) pin.groups.push(group);
        pins.set(key, pin);
      }
    }

    await forEachConcurrent([...pins.values()], CONCURRENCY, async ({ spec, version, groups: pinned }) => {
      const template = spec.LaunchTemplateId
        ? { LaunchTemplateId: spec.LaunchTemplateId }
        : { LaunchTemplateName: spec.LaunchTemplateName };
      let versions: LaunchTemplateVersion[];
      try {
        versions = await describeTemplateVersions({ ...template, Versions: [version] });
      } catch (error) {
        const code = errorCode(error);
        // A group pinned to a deleted template or version cannot launch anything, so it holds no image.
        if (!MISSING_TEMPLATE_CODES.has(code) && code !== 'InvalidLaunchTemplateId.VersionNotFound')
          throw error;
        log.warn('Auto Scaling group points at a launch template version that does not exist', {
          autoScalingGroups: pinned.map((group) => group.AutoScalingGroupName),
          launchTemplate: spec.LaunchTemplateId ?? spec.LaunchTemplateName,
          version,
          errorCode: code,
        });
        return;
      }
      for (const resolved of versions) {
        const label = version.startsWith('$') ? [version] : [];
        for (const group of pinned) {
          refs.add(resolved.LaunchTemplateData?.ImageId, {
            resourceType: 'autoscaling:AutoScalingGroup',
            resource: group.AutoScalingGroupARN ?? group.AutoScalingGroupName ?? 'unknown',
            detail: `via launch template ${versionDetail(resolved, label)}`,
          });
        }
      }
    });
  }

  return {
    accountId() {
      accountIdPromise ??= inventoryStep('resolve the account id', async () => {
        const identity = await call('GetCallerIdentity', (options) =>
          (deps.sts ?? awsClients.sts).send(new GetCallerIdentityCommand({}), options),
        );
        if (!identity.Account) throw new InventoryError('GetCallerIdentity returned no Account');
        return identity.Account;
      });
      // A failed lookup is not cached, so a later call can try again.
      accountIdPromise.catch(() => {
        accountIdPromise = undefined;
      });
      return accountIdPromise;
    },

    listOwnedImages(progress) {
      return inventoryStep('list owned images', async () => {
        const images: Image[] = [];
        await paginate(
          'DescribeImages',
          (NextToken) =>
            call('DescribeImages', (options) =>
              ec2.send(
                new DescribeImagesCommand({
                  Owners: ['self'],
                  IncludeDeprecated: true,
                  IncludeDisabled: true,
                  MaxResults: 1000,
                  NextToken,
                }),
                options,
              ),
            ),
          (page) => {
            for (const raw of page.Images ?? []) images.push(toImage(raw));
            progress?.onPage?.(images.length);
          },
        );
        return images;
      });
    },

    referenceBatchSize: REFERENCE_BATCH_SIZE,

    prepareReferences() {
      // Failures are kept for the check that needs them; a failed start is tried again there.
      accountWideReferences(referencesApiUnavailable).catch(() => undefined);
    },

    async findReferences(images, progress) {
      const wanted = new Set(images.map((image) => image.imageId));
      if (wanted.size === 0) return new Map();
      // The account-wide part goes alongside the per-image calls: each API has its own bucket.
      if (!referencesApiUnavailable) accountWideReferences(false).catch(() => undefined);
      let refs = createCollector(wanted);
      let checked = 0;
      const onBatch = (size: number) => {
        checked += size;
        progress?.onChecked?.(checked);
      };

      if (!referencesApiUnavailable) {
        try {
          await referencesFromApi([...wanted], refs, onBatch);
        } catch (error) {
          // Throttling, timeouts and 5xx that outlived every retry, or our own deadline, are not
          // "unsupported": enumerating would hit the same limits or the same silent endpoint, so the
          // run stops here instead. A refusal (AccessDenied, ...) still falls back.
          const unavailable =
            isUnsupportedAction(error) || !(isRetryableError(error) || errorCode(error) === 'AbortError');
          if (deps.signal?.aborted || !unavailable) {
            throw new InventoryError(`cannot check image references: ${errorCode(error)}`, { cause: error });
          }
          referencesApiUnavailable = true;
          log.warn(
            'DescribeImageReferences failed; enumerating instances, launch templates and SSM parameters',
            {
              errorCode: errorCode(error),
              error,
            },
          );
          // Start clean so the fallback's answer is not mixed with ARNs from batches that succeeded.
          refs = createCollector(wanted);
        }
      }

      for (const [imageId, references] of await accountWideReferences(referencesApiUnavailable)) {
        for (const reference of references) refs.add(imageId, reference);
      }
      return refs.result();
    },
  };

  /**
   * What enumerations find, for every image: they take no image ids, so however many times a run
   * asks about references (the sweep asks first for the images it may remove, then for the
   * rest), each is made once per inventory.
   */
  function accountWideReferences(enumerate: boolean): Promise<Map<string, Reference[]>> {
    if (accountWide?.enumerate === enumerate) return accountWide.references;
    const references = (async () => {
      const all = createCollector();
      // Each listing has its own API bucket (SSM and Auto Scaling are other services), so they go
      // side by side; every one must finish for the answer to count.
      const listings = enumerate
        ? [
            inventoryStep('enumerate instances', () => instanceReferences(all)),
            inventoryStep('enumerate launch templates', () => launchTemplateReferences(all)),
            inventoryStep('enumerate SSM image parameters', () => parameterReferences(all)),
          ]
        : [inventoryStep('check default launch template versions', () => defaultVersionsOutsideDepth(all))];
      listings.push(
        inventoryStep('enumerate Auto Scaling groups and launch configurations', () =>
          autoScalingReferences(all),
        ),
      );
      const settled = await Promise.allSettled(listings);
      const failed = settled.find((result) => result.status === 'rejected');
      if (failed) throw failed.reason;
      return all.result();
    })();
    const entry = { enumerate, references };
    accountWide = entry;
    // A failed enumeration is not kept, so a later call can try again.
    references.catch(() => {
      if (accountWide === entry) accountWide = undefined;
    });
    return references;
  }
}

export function createImageActions(deps: AdapterDeps = {}): ImageActionsPort {
  const ec2 = deps.ec2 ?? awsClients.ec2;
  const call = makeCall(deps);
  const tagging = createTagging(ec2, call);
  const limiter = deps.limiter ?? defaultLimiter;

  // An image-id filter, unlike ImageIds, simply leaves out ids that no longer exist instead of
  // failing the whole call, so a re-check costs one call per 200 images whatever has vanished.
  async function describeChunk(imageIds: string[]): Promise<Image[]> {
    const images: Image[] = [];
    await paginate(
      'DescribeImages',
      (NextToken) =>
        call('DescribeImages', (options) =>
          ec2.send(
            new DescribeImagesCommand({
              Filters: [{ Name: 'image-id', Values: imageIds }],
              IncludeDeprecated: true,
              IncludeDisabled: true,
              NextToken,
            }),
            options,
          ),
        ),
      (page) => {
        for (const raw of page.Images ?? []) images.push(toImage(raw));
      },
    );
    return images;
  }

  return {
    deregistrationsPerSecond: limiter.ratePerSecond('DeregisterImage'),

    async describeImages(imageIds) {
      const images: Image[] = [];
      for (const ids of chunk([...new Set(imageIds)], FILTER_VALUES_PER_CALL)) {
        images.push(...(await describeChunk(ids)));
      }
      return images;
    },

    tagImage: (imageId, tags) => single(tagging.tagResources([imageId], tags)),
    untagImage: (imageId, keys) => single(tagging.untagResources([imageId], keys)),

    tagResources: (ids, tags) => tagging.tagResources(ids, tags),
    untagResources: (ids, keys) => tagging.untagResources(ids, keys),

    async enableDeprecation(imageId, at) {
      await call('EnableImageDeprecation', (options) =>
        ec2.send(new EnableImageDeprecationCommand({ ImageId: imageId, DeprecateAt: at }), options),
      );
    },

    async disableDeprecation(imageId) {
      await call('DisableImageDeprecation', (options) =>
        ec2.send(new DisableImageDeprecationCommand({ ImageId: imageId }), options),
      );
    },

    async deregisterImage(imageId, { deleteAssociatedSnapshots }): Promise<DeregisterResult> {
      const output = await call('DeregisterImage', (options) =>
        ec2.send(
          new DeregisterImageCommand({
            ImageId: imageId,
            ...(deleteAssociatedSnapshots ? { DeleteAssociatedSnapshots: true } : {}),
          }),
          options,
        ),
      );
      // Absent results mean the API (or an emulator) ignored the flag; the executor then deletes
      // the snapshots itself, so an empty answer must not be invented here.
      if (!deleteAssociatedSnapshots || output.DeleteSnapshotResults === undefined) return {};
      return {
        snapshotResults: output.DeleteSnapshotResults.flatMap((result) =>
          result.SnapshotId
            ? [{ snapshotId: result.SnapshotId, returnCode: result.ReturnCode ?? 'unknown' }]
            : [],
        ),
      };
    },

    async deleteSnapshot(snapshotId) {
      await call('DeleteSnapshot', (options) =>
        ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }), options),
      );
    },

    describeSnapshots: (snapshotIds) => describeSnapshotsById(ec2, call, snapshotIds),

    // Neither is resent after a lost answer (retry.ts): the caller reads the image's state instead.
    async disableImage(imageId) {
      await call('DisableImage', (options) =>
        ec2.send(new DisableImageCommand({ ImageId: imageId }), options),
      );
    },

    async enableImage(imageId) {
      await call('EnableImage', (options) => ec2.send(new EnableImageCommand({ ImageId: imageId }), options));
    },
  };
}

/** CreateTags and DeleteTags take up to 1,000 resource ids per call. */
const TAG_BATCH = 1000;

/**
 * Tags many images or snapshots in as few calls as EC2 allows. A call fails as a whole when one id
 * is gone or refused, so a failed batch is retried id by id: one bad resource never stops the
 * others, and each failure is returned against its id.
 */
export function createTagging(ec2: EC2Client, call: Call) {
  async function each(
    ids: readonly string[],
    send: (batch: string[]) => Promise<unknown>,
  ): Promise<Map<string, unknown>> {
    const failures = new Map<string, unknown>();
    for (const batch of chunk([...new Set(ids)], TAG_BATCH)) {
      try {
        await send(batch);
      } catch (error) {
        if (batch.length === 1) {
          failures.set(batch[0] ?? '', error);
          continue;
        }
        for (const id of batch) {
          for (const [failed, cause] of await each([id], send)) failures.set(failed, cause);
        }
      }
    }
    return failures;
  }
  return {
    tagResources(ids: readonly string[], tags: Record<string, string>): Promise<Map<string, unknown>> {
      const entries = Object.entries(tags);
      if (entries.length === 0 || ids.length === 0) return Promise.resolve(new Map());
      return each(ids, (batch) =>
        call('CreateTags', (options) =>
          ec2.send(
            new CreateTagsCommand({
              Resources: batch,
              Tags: entries.map(([Key, Value]) => ({ Key, Value })),
            }),
            options,
          ),
        ),
      );
    },
    untagResources(ids: readonly string[], keys: readonly string[]): Promise<Map<string, unknown>> {
      // DeleteTags without Tags deletes every tag on the resource, so an empty list must not reach it.
      if (keys.length === 0 || ids.length === 0) return Promise.resolve(new Map());
      return each(ids, (batch) =>
        call('DeleteTags', (options) =>
          ec2.send(new DeleteTagsCommand({ Resources: batch, Tags: keys.map((Key) => ({ Key })) }), options),
        ),
      );
    },
  };
}

/** Throws the one failure of a single-resource tagging call, as the per-resource ports promise. */
export async function single(result: Promise<Map<string, unknown>>): Promise<void> {
  for (const error of (await result).values()) throw error;
}
