/**
 * Seeds a moto account through the real AWS SDK, the way an operator's account would look.
 *
 * What moto 5.2.1 actually does (probed with @aws-sdk v3.1169, server mode, MOTO_EC2_LOAD_DEFAULT_AMIS=false).
 * Anything marked "no" belongs in the aws-sdk-client-mock adapter tests instead.
 *
 * Unimplemented calls
 *   moto answers with an HTML `500 Internal Server Error` page. The JS SDK surfaces it as a plain
 *   `Error` (name "Error", no `Code`, no `$fault`), `$metadata.httpStatusCode` 500, message starting
 *   "@aws-sdk XML parse error: mismatched tags <html> and </title>. Deserialization error: ...".
 *   That is why every client here, and every client under test, needs `maxAttempts: 1`: otherwise the
 *   SDK retries each 500 with backoff.
 *
 * EC2
 *   - DescribeImageReferences: not implemented (the HTML 500 above). An adapter that only falls back
 *     on an `UnsupportedOperation`/`InvalidAction` code will NOT fall back here; it must also treat an
 *     unparseable 5xx from the endpoint as "unsupported".
 *   - EnableImageDeprecation, DisableImageDeprecation, DisableImage, DescribeLockedSnapshots,
 *     DescribeImageAttribute(lastLaunchedTime): not implemented (HTML 500).
 *   - DeregisterImage: `DeleteAssociatedSnapshots: true` is accepted and ignored. The response holds
 *     only `Return: true`, never `DeleteSnapshotResults`, and the image's snapshot survives (so a
 *     deregistered image reliably leaves an orphan snapshot behind). A second DeregisterImage of the same
 *     id fails `InvalidAMIID.Unavailable` (400); an id never seen fails `InvalidAMIID.NotFound` (400).
 *   - DeleteSnapshot of a snapshot still referenced by an image: `InvalidSnapshot.InUse` (400), as AWS.
 *     Of an unknown snapshot: `InvalidSnapshot.NotFound` (400).
 *   - DescribeImages: accepts `Owners: ['self']`, `IncludeDeprecated`, `IncludeDisabled`, `tag:` and
 *     `is-public` filters. Returns CreationDate, Public, State, Tags, SourceInstanceId (CreateImage only),
 *     BlockDeviceMappings. Never returns DeprecationTime, DeregistrationProtection or LastLaunchedTime.
 *     `MaxResults` is ignored and `NextToken` never set (no pagination). A deregistered id in `ImageIds`
 *     gives an empty list, an id never seen gives `InvalidAMIID.NotFound`.
 *   - CreationDate (images) and StartTime (snapshots) are always the server's "now"; they cannot be
 *     back-dated. Age-based tests must move the injected clock forward (`--as-of`), not the data back.
 *   - Every image, however made, gets exactly one 15 GiB root snapshot, whatever BlockDeviceMappings says.
 *     Its Description is `Created by CreateImage(i-…) for ami-…` for CreateImage (matching the
 *     `ami-orphans` pattern) and `Auto-created snapshot for AMI ami-…` for RegisterImage and CopyImage
 *     (matching neither orphan pattern; moto never writes `Copied for DestinationAmi`).
 *   - RegisterImage ignores TagSpecifications and BlockDeviceMappings; this seeder tags afterwards.
 *   - CreateImage honours TagSpecifications of ResourceType `image`, but one of type `snapshot` makes it
 *     raise NotImplementedError (HTML 500).
 *   - RunInstances accepts any `ami-…` id, registered or not. StopInstances/TerminateInstances move the
 *     instance straight to `stopped` / `terminated`, and DescribeInstances keeps terminated instances,
 *     so the "any state but terminated" guard can be exercised. The `image-id` filter works.
 *   - DescribeSnapshots: `OwnerIds: ['self']` returns NOTHING; the `owner-id` filter with the account id
 *     works. VolumeSize, StartTime, Description and Tags are returned.
 *   - DescribeLaunchTemplateVersions with `Versions: ['$Default', '$Latest']` works, and so does a call
 *     with no template id and `Versions: ['$Latest']` (every template's latest version).
 *   - ModifyImageAttribute launchPermission (Group all, UserId) works; DescribeImages then reports
 *     `Public: true`, and DescribeImageAttribute launchPermission lists the permissions.
 *   - CreateTags / DeleteTags on images work.
 *
 * Auto Scaling
 *   - CreateLaunchConfiguration and CreateAutoScalingGroup (with a launch configuration or a launch
 *     template) work; DescribeAutoScalingGroups returns LaunchConfigurationName / LaunchTemplate, and
 *     DescribeLaunchConfigurations returns ImageId.
 *
 * SSM
 *   - PutParameter with `DataType: 'aws:ec2:image'` works, and does NOT check that the image exists.
 *   - DescribeParameters with `ParameterFilters: [{ Key: 'DataType', ... }]` fails `ValidationException`
 *     (400): moto only allows tag:…, Name, Type, KeyId, Path, Label, Tier. Unfiltered DescribeParameters
 *     returns `DataType` per parameter, so an adapter should filter on it client-side (or fall back to
 *     that on ValidationException). GetParameters returns the AMI id as Value.
 *
 * STS
 *   - GetCallerIdentity works: Account `123456789012`, Arn `arn:aws:sts::123456789012:user/moto`.
 *   - AssumeRole of `arn:aws:iam::<account>:role/<name>` succeeds for ANY 12-digit account and any
 *     name: the role need not exist, no trust policy is checked (999999999999 is assumed as readily
 *     as a member). The credentials it returns (an `ASIA…` key, a session token, Expiration = now +
 *     DurationSeconds) act in that account: GetCallerIdentity answers it with
 *     `arn:aws:sts::<account>:assumed-role/<name>/<session>`, and EC2 calls made with them see and
 *     create that account's resources, in whichever Region the client names. Expired sessions keep
 *     working (moto checks no expiry).
 *
 * Organizations
 *   - CreateOrganization makes 123456789012 the management account (Name `master`). CreateAccount
 *     completes at once (`CreateAccountStatus.State` SUCCEEDED) with a random 12-digit id;
 *     ListAccounts returns the management account and the members, each with both `Status` and
 *     `State` ACTIVE, and no NextToken. ListRoots, CreateOrganizationalUnit, MoveAccount,
 *     ListAccountsForParent and ListOrganizationalUnitsForParent work.
 *
 * EC2 DescribeRegions
 *   - Lists 38 Regions with `OptInStatus` `opt-in-not-required` or `not-opted-in`, with or without
 *     `AllRegions` (moto ignores it).
 */
import {
  AutoScalingClient,
  CreateAutoScalingGroupCommand,
  CreateLaunchConfigurationCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  CreateImageCommand,
  CreateLaunchTemplateCommand,
  CreateLaunchTemplateVersionCommand,
  CreateTagsCommand,
  DescribeImagesCommand,
  EC2Client,
  ModifyImageAttributeCommand,
  RegisterImageCommand,
  RunInstancesCommand,
  StopInstancesCommand,
  type Tag,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import {
  CreateAccountCommand,
  CreateOrganizationCommand,
  ListAccountsCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { MOTO_REGION } from './moto.ts';

export type InstanceState = 'running' | 'stopped' | 'terminated';
export type Tags = Record<string, string>;

export interface SeedClients {
  ec2: EC2Client;
  autoScaling: AutoScalingClient;
  ssm: SSMClient;
  sts: STSClient;
}

export class SeedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SeedError';
  }
}

export interface SeedCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Where a seeder works: moto's default account and Region unless told otherwise. */
export interface SeedTarget {
  region?: string;
  /** Another account's credentials, e.g. from assumeRoleIn. */
  credentials?: SeedCredentials;
}

/** SDK client settings that reach moto and nothing else. */
export function motoClientConfig(endpoint: string, target: SeedTarget = {}) {
  return {
    endpoint,
    region: target.region ?? MOTO_REGION,
    credentials: target.credentials ?? { accessKeyId: 'testing', secretAccessKey: 'testing' },
    // moto answers unimplemented calls with HTML 500s; retrying them only slows the failure down.
    maxAttempts: 1,
  };
}

export function createSeedClients(endpoint: string, target: SeedTarget = {}): SeedClients {
  const config = motoClientConfig(endpoint, target);
  return {
    ec2: new EC2Client(config),
    autoScaling: new AutoScalingClient(config),
    ssm: new SSMClient(config),
    sts: new STSClient(config),
  };
}

function toTagList(tags: Tags): Tag[] {
  return Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new SeedError(`moto returned no ${what}`);
  return value;
}

/** Credentials for `role/<roleName>` in another account; moto grants them for any account (see above). */
export async function assumeRoleIn(
  endpoint: string,
  accountId: string,
  roleName = 'ami-janitor-member',
): Promise<SeedCredentials> {
  const sts = new STSClient(motoClientConfig(endpoint));
  try {
    const { Credentials: credentials } = await sts.send(
      new AssumeRoleCommand({
        RoleArn: `arn:aws:iam::${accountId}:role/${roleName}`,
        RoleSessionName: 'seed',
      }),
    );
    return {
      accessKeyId: required(credentials?.AccessKeyId, 'AccessKeyId from AssumeRole'),
      secretAccessKey: required(credentials?.SecretAccessKey, 'SecretAccessKey from AssumeRole'),
      sessionToken: required(credentials?.SessionToken, 'SessionToken from AssumeRole'),
    };
  } finally {
    sts.destroy();
  }
}

/**
 * An organisation whose management account is moto's default one, with a member account per
 * name; the members' ids come from ListAccounts, as an operator would read them.
 */
export async function createOrganization(
  endpoint: string,
  memberNames: readonly string[],
): Promise<{ managementAccountId: string; members: Record<string, string> }> {
  const organizations = new OrganizationsClient(motoClientConfig(endpoint));
  try {
    const created = await organizations.send(new CreateOrganizationCommand({ FeatureSet: 'ALL' }));
    const managementAccountId = required(created.Organization?.MasterAccountId, 'management account id');
    for (const name of memberNames) {
      await organizations.send(new CreateAccountCommand({ AccountName: name, Email: `${name}@example.com` }));
    }
    const listed = await organizations.send(new ListAccountsCommand({}));
    const members: Record<string, string> = {};
    for (const name of memberNames) {
      members[name] = required(
        listed.Accounts?.find((account) => account.Name === name)?.Id,
        `account id of ${name} in ListAccounts`,
      );
    }
    return { managementAccountId, members };
  } finally {
    organizations.destroy();
  }
}

export class Seeder {
  readonly clients: SeedClients;
  readonly region: string;

  constructor(endpoint: string, target: SeedTarget = {}) {
    this.clients = createSeedClients(endpoint, target);
    this.region = target.region ?? MOTO_REGION;
  }

  /** A seeder acting in another account (through its member role) and Region. */
  static async inAccount(endpoint: string, accountId: string, region: string): Promise<Seeder> {
    return new Seeder(endpoint, { region, credentials: await assumeRoleIn(endpoint, accountId) });
  }

  /** Runs one instance and moves it to the requested state; returns its id. */
  async runInstance(imageId: string, state: InstanceState = 'running'): Promise<string> {
    const { ec2 } = this.clients;
    const reservation = await ec2.send(
      new RunInstancesCommand({ ImageId: imageId, MinCount: 1, MaxCount: 1, InstanceType: 't3.micro' }),
    );
    const instanceId = required(reservation.Instances?.[0]?.InstanceId, 'instance id from RunInstances');
    if (state === 'stopped') await ec2.send(new StopInstancesCommand({ InstanceIds: [instanceId] }));
    if (state === 'terminated') await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
    return instanceId;
  }

  /**
   * CreateImage from an instance. Tags go on the image only: moto rejects snapshot TagSpecifications.
   * The snapshot's description names the new image, as the `ami-orphans` mode expects.
   */
  async createImage(instanceId: string, name: string, tags: Tags = {}): Promise<string> {
    const tagList = toTagList(tags);
    const result = await this.clients.ec2.send(
      new CreateImageCommand({
        InstanceId: instanceId,
        Name: name,
        ...(tagList.length > 0 && { TagSpecifications: [{ ResourceType: 'image', Tags: tagList }] }),
      }),
    );
    return required(result.ImageId, 'image id from CreateImage');
  }

  /** RegisterImage, then tags it separately (moto ignores TagSpecifications on RegisterImage). */
  async registerImage(name: string, tags: Tags = {}): Promise<string> {
    const result = await this.clients.ec2.send(
      new RegisterImageCommand({
        Name: name,
        Architecture: 'arm64',
        RootDeviceName: '/dev/xvda',
        VirtualizationType: 'hvm',
        BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeSize: 8 } }],
      }),
    );
    const imageId = required(result.ImageId, 'image id from RegisterImage');
    await this.tagImage(imageId, tags);
    return imageId;
  }

  /**
   * Moves the janitor's marks on these images or snapshots `days` into the past, as if the run
   * that marked them had run then. Every run acts on the real clock, so this is how a test lets a
   * grace period pass.
   */
  async backdateMarks(resourceIds: readonly string[], days: number): Promise<void> {
    if (resourceIds.length === 0) return;
    const markedAt = new Date(Date.now() - days * 86_400_000).toISOString();
    await this.clients.ec2.send(
      new CreateTagsCommand({
        Resources: [...resourceIds],
        Tags: [{ Key: 'ami-janitor:marked-at', Value: markedAt }],
      }),
    );
  }

  async tagImage(imageId: string, tags: Tags): Promise<void> {
    const tagList = toTagList(tags);
    if (tagList.length === 0) return;
    await this.clients.ec2.send(new CreateTagsCommand({ Resources: [imageId], Tags: tagList }));
  }

  /** Grants launch permission publicly and/or to accounts. */
  async shareImage(
    imageId: string,
    share: { public?: boolean; accountIds?: readonly string[] },
  ): Promise<void> {
    const add = [
      ...(share.public === true ? [{ Group: 'all' as const }] : []),
      ...(share.accountIds ?? []).map((UserId) => ({ UserId })),
    ];
    if (add.length === 0) return;
    await this.clients.ec2.send(
      new ModifyImageAttributeCommand({ ImageId: imageId, LaunchPermission: { Add: add } }),
    );
  }

  /** The snapshot ids an image's block device mappings point at. */
  async snapshotIdsOf(imageId: string): Promise<string[]> {
    const result = await this.clients.ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    return (result.Images ?? []).flatMap((image) =>
      (image.BlockDeviceMappings ?? []).flatMap((mapping) =>
        mapping.Ebs?.SnapshotId === undefined ? [] : [mapping.Ebs.SnapshotId],
      ),
    );
  }

  /**
   * A launch template whose version 1 uses `imageId`; each of `laterImageIds` becomes a further
   * version, so version 1 stays `$Default` and the last one is `$Latest`.
   */
  async createLaunchTemplate(
    name: string,
    imageId: string,
    laterImageIds: readonly string[] = [],
  ): Promise<{ launchTemplateId: string; latestVersion: number }> {
    const { ec2 } = this.clients;
    const created = await ec2.send(
      new CreateLaunchTemplateCommand({
        LaunchTemplateName: name,
        LaunchTemplateData: { ImageId: imageId, InstanceType: 't3.micro' },
      }),
    );
    const launchTemplateId = required(created.LaunchTemplate?.LaunchTemplateId, 'launch template id');
    let latestVersion = 1;
    for (const laterImageId of laterImageIds) {
      const version = await ec2.send(
        new CreateLaunchTemplateVersionCommand({
          LaunchTemplateId: launchTemplateId,
          LaunchTemplateData: { ImageId: laterImageId, InstanceType: 't3.micro' },
        }),
      );
      latestVersion = required(version.LaunchTemplateVersion?.VersionNumber, 'launch template version');
    }
    return { launchTemplateId, latestVersion };
  }

  /** A launch configuration for `imageId` and an empty Auto Scaling group that uses it. */
  async createLaunchConfigurationGroup(name: string, imageId: string): Promise<void> {
    const { autoScaling } = this.clients;
    await autoScaling.send(
      new CreateLaunchConfigurationCommand({
        LaunchConfigurationName: name,
        ImageId: imageId,
        InstanceType: 't3.micro',
      }),
    );
    await autoScaling.send(
      new CreateAutoScalingGroupCommand({
        AutoScalingGroupName: name,
        LaunchConfigurationName: name,
        MinSize: 0,
        MaxSize: 1,
        DesiredCapacity: 0,
        AvailabilityZones: [`${this.region}a`],
      }),
    );
  }

  /** An empty Auto Scaling group on a launch template version (default `$Latest`). */
  async createLaunchTemplateGroup(
    name: string,
    launchTemplateId: string,
    version = '$Latest',
  ): Promise<void> {
    await this.clients.autoScaling.send(
      new CreateAutoScalingGroupCommand({
        AutoScalingGroupName: name,
        LaunchTemplate: { LaunchTemplateId: launchTemplateId, Version: version },
        MinSize: 0,
        MaxSize: 1,
        DesiredCapacity: 0,
        AvailabilityZones: [`${this.region}a`],
      }),
    );
  }

  /** An SSM parameter of data type `aws:ec2:image`, the way golden-AMI pipelines publish ids. */
  async putImageParameter(name: string, imageId: string): Promise<void> {
    await this.clients.ssm.send(
      new PutParameterCommand({ Name: name, Type: 'String', DataType: 'aws:ec2:image', Value: imageId }),
    );
  }

  destroy(): void {
    for (const client of Object.values(this.clients)) client.destroy();
  }
}
