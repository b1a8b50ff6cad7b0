import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  DescribeLaunchConfigurationsCommand,
} from '@aws-sdk/client-auto-scaling';
import type {
  DescribeImageReferencesCommandInput,
  DescribeImagesCommandOutput,
  DescribeInstancesCommandOutput,
  LaunchTemplateVersion,
} from '@aws-sdk/client-ec2';
import {
  DescribeImageReferencesCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeLaunchTemplateVersionsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { DescribeParametersCommand, GetParametersCommand, SSMClient } from '@aws-sdk/client-ssm';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createInventory, type InventoryDeps, LIVE_INSTANCE_STATES } from '../../src/adapters/ec2.ts';
import { InventoryError } from '../../src/errors.ts';
import type { Image } from '../../src/model.ts';
import { awsError, ec2Fixture, recordingLog, recordingSleep, unparseableServerError } from './aws-fakes.ts';

const ec2Mock = mockClient(EC2Client);
const autoScalingMock = mockClient(AutoScalingClient);
const ssmMock = mockClient(SSMClient);
const stsMock = mockClient(STSClient);

const clients = {
  ec2: new EC2Client({}),
  autoScaling: new AutoScalingClient({}),
  ssm: new SSMClient({}),
  sts: new STSClient({}),
};

const ACCOUNT = '111122223333';
const ASG_ARN = (name: string) =>
  `arn:aws:autoscaling:eu-west-1:${ACCOUNT}:autoScalingGroup:6d3b1c2e-0000-4000-8000-000000000000:autoScalingGroupName/${name}`;

function amiId(index: number): string {
  return `ami-${index.toString(16).padStart(17, '0')}`;
}

function image(imageId: string): Image {
  return {
    imageId,
    name: imageId,
    ownerId: ACCOUNT,
    state: 'available',
    creationDate: new Date('2025-01-01T00:00:00Z'),
    public: false,
    tags: {},
    snapshotIds: [],
  };
}

function templateVersion(
  templateId: string,
  name: string,
  versionNumber: number,
  imageId: string,
  isDefault = false,
): LaunchTemplateVersion {
  return {
    LaunchTemplateId: templateId,
    LaunchTemplateName: name,
    VersionNumber: versionNumber,
    DefaultVersion: isDefault,
    LaunchTemplateData: { ImageId: imageId, InstanceType: 't3.micro' },
  };
}

let log: ReturnType<typeof recordingLog>;
let sleeper: ReturnType<typeof recordingSleep>;

function inventory(overrides: Partial<InventoryDeps> = {}) {
  return createInventory({
    ...clients,
    launchTemplateVersions: 5,
    retry: { sleep: sleeper.sleep, maxAttempts: 3, random: () => 0.5 },
    log,
    ...overrides,
  });
}

beforeEach(() => {
  ec2Mock.reset();
  autoScalingMock.reset();
  ssmMock.reset();
  stsMock.reset();
  log = recordingLog();
  sleeper = recordingSleep();
  // An account with no launch templates, groups or configurations unless a test says otherwise.
  ec2Mock.on(DescribeLaunchTemplatesCommand).resolves({ LaunchTemplates: [] });
  autoScalingMock.on(DescribeAutoScalingGroupsCommand).resolves({ AutoScalingGroups: [] });
  autoScalingMock.on(DescribeLaunchConfigurationsCommand).resolves({ LaunchConfigurations: [] });
});

describe('accountId', () => {
  it('asks STS once and caches the answer', async () => {
    // Prepare
    stsMock.on(GetCallerIdentityCommand).resolves({ Account: ACCOUNT, Arn: `arn:aws:iam::${ACCOUNT}:root` });
    const subject = inventory();

    // Act
    const first = await subject.accountId();
    const second = await subject.accountId();

    // Assess
    expect([first, second]).toEqual([ACCOUNT, ACCOUNT]);
    expect(stsMock).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 1);
  });

  it('skips STS when the account id is given', async () => {
    // Act
    const account = await inventory({ accountId: '444455556666' }).accountId();

    // Assess
    expect(account).toBe('444455556666');
    expect(stsMock).not.toHaveReceivedCommand(GetCallerIdentityCommand);
  });

  it('wraps an STS failure in an InventoryError and tries again next time', async () => {
    // Prepare
    stsMock
      .on(GetCallerIdentityCommand)
      .rejectsOnce(awsError('ExpiredToken', 400))
      .resolves({ Account: ACCOUNT });
    const subject = inventory();

    // Act
    const failed = subject.accountId();

    // Assess
    await expect(failed).rejects.toBeInstanceOf(InventoryError);
    await expect(subject.accountId()).resolves.toBe(ACCOUNT);
  });
});

describe('listOwnedImages', () => {
  it('follows NextToken through three pages and maps every field', async () => {
    // Prepare
    const pages = [1, 2, 3].map((n) => ec2Fixture<DescribeImagesCommandOutput>(`describe-images-page-${n}`));
    ec2Mock
      .on(DescribeImagesCommand)
      .resolvesOnce(pages[0] ?? {})
      .resolvesOnce(pages[1] ?? {})
      .resolvesOnce(pages[2] ?? {});

    // Act
    const images = await inventory().listOwnedImages();

    // Assess
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeImagesCommand, 3);
    const inputs = ec2Mock.commandCalls(DescribeImagesCommand).map((call) => call.args[0].input);
    expect(inputs).toEqual([
      {
        Owners: ['self'],
        IncludeDeprecated: true,
        IncludeDisabled: true,
        MaxResults: 1000,
        NextToken: undefined,
      },
      {
        Owners: ['self'],
        IncludeDeprecated: true,
        IncludeDisabled: true,
        MaxResults: 1000,
        NextToken: pages[0]?.NextToken,
      },
      {
        Owners: ['self'],
        IncludeDeprecated: true,
        IncludeDisabled: true,
        MaxResults: 1000,
        NextToken: pages[1]?.NextToken,
      },
    ]);
    expect(images.map((i) => i.imageId)).toEqual([
      'ami-0a1b2c3d4e5f60001',
      'ami-0a1b2c3d4e5f60002',
      'ami-0a1b2c3d4e5f60003',
      'ami-0a1b2c3d4e5f60004',
    ]);
    expect(images[0]).toEqual({
      imageId: 'ami-0a1b2c3d4e5f60001',
      name: 'web-2025-01-10',
      ownerId: ACCOUNT,
      state: 'available',
      creationDate: new Date('2025-01-10T08:15:42.000Z'),
      lastLaunchedTime: new Date('2025-03-02T17:04:11.000Z'),
      deregistrationProtection: 'disabled',
      public: false,
      tags: { Application: 'web', Owner: 'platform' },
      snapshotIds: ['snap-0a1b2c3d4e5f60001'],
      sourceInstanceId: 'i-0a1b2c3d4e5f60001',
    });
    expect(images[1]).toMatchObject({
      public: true,
      deregistrationProtection: 'enabled-with-cooldown',
      snapshotIds: ['snap-0a1b2c3d4e5f60002', 'snap-0a1b2c3d4e5f60003'],
      tags: {},
    });
    expect(images[1]?.lastLaunchedTime).toBeUndefined();
    expect(images[2]?.deprecationTime).toEqual(new Date('2025-01-08T00:00:00.000Z'));
    expect(images[3]).toMatchObject({
      state: 'disabled',
      deprecationTime: new Date('2024-05-20T12:00:00.000Z'),
    });
  });

  it('retries a throttled page and carries on from the same token', async () => {
    // Prepare
    const page1 = ec2Fixture<DescribeImagesCommandOutput>('describe-images-page-1');
    const page3 = ec2Fixture<DescribeImagesCommandOutput>('describe-images-page-3');
    ec2Mock
      .on(DescribeImagesCommand)
      .resolvesOnce(page1)
      .rejectsOnce(awsError('RequestLimitExceeded', 503))
      .rejectsOnce(awsError('RequestLimitExceeded', 503))
      .resolvesOnce(page3);

    // Act
    const images = await inventory().listOwnedImages();

    // Assess
    expect(images).toHaveLength(3);
    expect(sleeper.delays).toEqual([100, 200]);
    expect(ec2Mock).toHaveReceivedNthCommandWith(DescribeImagesCommand, 4, { NextToken: page1.NextToken });
  });

  it('reads a state it does not know as pending, which the guards never remove', async () => {
    // Prepare
    const page = structuredClone(ec2Fixture<DescribeImagesCommandOutput>('describe-images-page-3'));
    const first = page.Images?.[0];
    if (first) first.State = 'quarantined' as 'available';
    ec2Mock.on(DescribeImagesCommand).resolves(page);

    // Act
    const [only] = await inventory().listOwnedImages();

    // Assess
    expect(only?.state).toBe('pending');
  });

  it('refuses to guess the age of an image without CreationDate', async () => {
    // Prepare
    const page = ec2Fixture<DescribeImagesCommandOutput>('describe-images-page-3');
    const broken = structuredClone(page);
    delete broken.Images?.[0]?.CreationDate;
    ec2Mock.on(DescribeImagesCommand).resolves(broken);

    // Act
    const outcome = inventory().listOwnedImages();

    // Assess
    await expect(outcome).rejects.toThrow(InventoryError);
    await expect(outcome).rejects.toThrow(/ami-0a1b2c3d4e5f60004 has no CreationDate/);
  });

  it('fails the inventory when DescribeImages keeps failing', async () => {
    // Prepare
    ec2Mock.on(DescribeImagesCommand).rejects(awsError('UnauthorizedOperation', 403));

    // Act
    const outcome = inventory().listOwnedImages();

    // Assess
    await expect(outcome).rejects.toMatchObject({
      name: 'InventoryError',
      cause: { name: 'UnauthorizedOperation' },
    });
  });
});

describe('findReferences with DescribeImageReferences', () => {
  it('asks about at most 10 images per call: 23 images make calls of 10, 10 and 3', async () => {
    // Prepare
    const ids = Array.from({ length: 23 }, (_, index) => amiId(index + 1));
    ec2Mock.on(DescribeImageReferencesCommand).resolves({ ImageReferences: [] });

    // Act
    const references = await inventory({ launchTemplateVersions: 7 }).findReferences(ids.map(image));

    // Assess
    const inputs = ec2Mock.commandCalls(DescribeImageReferencesCommand).map((call) => call.args[0].input);
    expect(inputs.map((input) => input.ImageIds)).toEqual([
      ids.slice(0, 10),
      ids.slice(10, 20),
      ids.slice(20),
    ]);
    expect(inputs[0]?.ResourceTypes).toEqual([
      {
        ResourceType: 'ec2:Instance',
        ResourceTypeOptions: [
          {
            OptionName: 'state-name',
            OptionValues: ['pending', 'running', 'shutting-down', 'stopping', 'stopped'],
          },
        ],
      },
      {
        ResourceType: 'ec2:LaunchTemplate',
        ResourceTypeOptions: [{ OptionName: 'version-depth', OptionValues: ['7'] }],
      },
      { ResourceType: 'ssm:Parameter' },
      { ResourceType: 'imagebuilder:ImageRecipe' },
      { ResourceType: 'imagebuilder:ContainerRecipe' },
    ]);
    expect(references.size).toBe(0);
    expect(ec2Mock).not.toHaveReceivedCommand(DescribeInstancesCommand);
  });

  it('reads every page of a batch and keeps only the requested images', async () => {
    // Prepare
    const [a, b] = [amiId(1), amiId(2)];
    const instanceArn = `arn:aws:ec2:eu-west-1:${ACCOUNT}:instance/i-0123456789abcdef0`;
    const templateArn = `arn:aws:ec2:eu-west-1:${ACCOUNT}:launch-template/lt-0123456789abcdef0`;
    const recipeArn = `arn:aws:imagebuilder:eu-west-1:${ACCOUNT}:image-recipe/web/1.0.0`;
    ec2Mock.on(DescribeImageReferencesCommand).callsFake((input: DescribeImageReferencesCommandInput) =>
      input.NextToken === undefined
        ? {
            ImageReferences: [{ ImageId: a, ResourceType: 'ec2:Instance', Arn: instanceArn }],
            NextToken: 'page-2',
          }
        : {
            ImageReferences: [
              { ImageId: a, ResourceType: 'ec2:LaunchTemplate', Arn: templateArn },
              { ImageId: b, ResourceType: 'imagebuilder:ImageRecipe', Arn: recipeArn },
              { ImageId: amiId(99), ResourceType: 'ec2:Instance', Arn: instanceArn },
            ],
          },
    );

    // Act
    const references = await inventory().findReferences([image(a), image(b)]);

    // Assess
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeImageReferencesCommand, 2);
    expect(ec2Mock).toHaveReceivedNthCommandWith(DescribeImageReferencesCommand, 2, {
      ImageIds: [a, b],
      NextToken: 'page-2',
    });
    expect(references.get(a)).toEqual([
      { resourceType: 'ec2:Instance', resource: instanceArn },
      { resourceType: 'ec2:LaunchTemplate', resource: templateArn },
    ]);
    expect(references.get(b)).toEqual([{ resourceType: 'imagebuilder:ImageRecipe', resource: recipeArn }]);
    expect(references.has(amiId(99))).toBe(false);
  });

  it('adds a $Default version that is older than the version depth the API checks', async () => {
    // Prepare
    const [old, recent] = [amiId(1), amiId(2)];
    ec2Mock.on(DescribeImageReferencesCommand).resolves({ ImageReferences: [] });
    ec2Mock.on(DescribeLaunchTemplatesCommand).resolves({
      LaunchTemplates: [
        {
          LaunchTemplateId: 'lt-0000000000000000a',
          LaunchTemplateName: 'web',
          DefaultVersionNumber: 2,
          LatestVersionNumber: 12,
        },
        {
          LaunchTemplateId: 'lt-0000000000000000b',
          LaunchTemplateName: 'api',
          DefaultVersionNumber: 9,
          LatestVersionNumber: 12,
        },
      ],
    });
    ec2Mock
      .on(DescribeLaunchTemplateVersionsCommand, { LaunchTemplateId: 'lt-0000000000000000a' })
      .resolves({ LaunchTemplateVersions: [templateVersion('lt-0000000000000000a', 'web', 2, old, true)] });

    // Act
    const references = await inventory({ launchTemplateVersions: 5 }).findReferences([
      image(old),
      image(recent),
    ]);

    // Assess
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeLaunchTemplateVersionsCommand, 1);
    expect(ec2Mock).toHaveReceivedCommandWith(DescribeLaunchTemplateVersionsCommand, {
      LaunchTemplateId: 'lt-0000000000000000a',
      Versions: ['2'],
    });
    expect(references.get(old)).toEqual([
      {
        resourceType: 'ec2:LaunchTemplate',
        resource: 'lt-0000000000000000a',
        detail: 'web version 2 ($Default)',
      },
    ]);
  });

  it('stops with an InventoryError when throttling outlives every retry, without falling back', async () => {
    // Prepare
    ec2Mock.on(DescribeImageReferencesCommand).rejects(awsError('RequestLimitExceeded', 503));

    // Act
    const outcome = inventory().findReferences([image(amiId(1))]);

    // Assess
    await expect(outcome).rejects.toThrow(InventoryError);
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeImageReferencesCommand, 3);
    expect(sleeper.delays).toEqual([100, 200]);
    expect(ec2Mock).not.toHaveReceivedCommand(DescribeInstancesCommand);
  });

  it('asked about two sets of images, checks each set but lists groups and templates once', async () => {
    // Prepare: image b is used only through an Auto Scaling group's launch configuration.
    const [a, b] = [amiId(1), amiId(2)];
    ec2Mock.on(DescribeImageReferencesCommand).resolves({ ImageReferences: [] });
    autoScalingMock.on(DescribeLaunchConfigurationsCommand).resolves({
      LaunchConfigurations: [
        {
          LaunchConfigurationName: 'legacy-lc',
          LaunchConfigurationARN: 'arn:aws:autoscaling:eu-west-1:111122223333:launchConfiguration:lc',
          ImageId: b,
          InstanceType: 't3.micro',
          CreatedTime: new Date('2025-01-01T00:00:00Z'),
        },
      ],
    });
    const subject = inventory();

    // Act
    const first = await subject.findReferences([image(a)]);
    const second = await subject.findReferences([image(b)]);

    // Assess
    expect(first.size).toBe(0);
    expect(second.get(b)?.map((reference) => reference.resourceType)).toEqual([
      'autoscaling:LaunchConfiguration',
    ]);
    expect(
      ec2Mock.commandCalls(DescribeImageReferencesCommand).map((call) => call.args[0].input.ImageIds),
    ).toEqual([[a], [b]]);
    expect(autoScalingMock).toHaveReceivedCommandTimes(DescribeAutoScalingGroupsCommand, 1);
    expect(autoScalingMock).toHaveReceivedCommandTimes(DescribeLaunchConfigurationsCommand, 1);
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeLaunchTemplatesCommand, 1);
  });

  it('lists groups and templates when told to prepare, before any image is asked about, and only once', async () => {
    // Prepare
    ec2Mock.on(DescribeImageReferencesCommand).resolves({ ImageReferences: [] });
    const subject = inventory();

    // Act
    subject.prepareReferences?.();
    await new Promise((resolve) => setTimeout(resolve, 0));
    const listedBefore = {
      templates: ec2Mock.commandCalls(DescribeLaunchTemplatesCommand).length,
      groups: autoScalingMock.commandCalls(DescribeAutoScalingGroupsCommand).length,
    };
    await subject.findReferences([image(amiId(1))]);

    // Assess
    expect(subject.referenceBatchSize).toBe(10);
    expect(listedBefore).toEqual({ templates: 1, groups: 1 });
    expect(ec2Mock.commandCalls(DescribeImageReferencesCommand)).toHaveLength(1);
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeLaunchTemplatesCommand, 1);
    expect(autoScalingMock).toHaveReceivedCommandTimes(DescribeAutoScalingGroupsCommand, 1);
  });

  it('returns an empty map without calling AWS when asked about no images', async () => {
    // Act
    const references = await inventory().findReferences([]);

    // Assess
    expect(references.size).toBe(0);
    expect(ec2Mock).not.toHaveReceivedAnyCommand();
  });
});

describe('findReferences fallback when DescribeImageReferences is unavailable', () => {
  const [running, stopped, ltDefault, ltWindow, ltOld, ltLatest, parameter, unused] = Array.from(
    { length: 8 },
    (_, index) => amiId(index + 1),
  ) as [string, string, string, string, string, string, string, string];

  function seedAccount(): void {
    const page1 = ec2Fixture<DescribeInstancesCommandOutput>('describe-instances-page-1');
    const page2 = ec2Fixture<DescribeInstancesCommandOutput>('describe-instances-page-2');
    const instances1 = structuredClone(page1);
    const [first, second] = instances1.Reservations?.[0]?.Instances ?? [];
    if (first) first.ImageId = running;
    if (second) second.ImageId = stopped;
    ec2Mock.on(DescribeInstancesCommand).resolvesOnce(instances1).resolvesOnce(page2);

    // web: default 2, latest 10; with depth 3 the window is 8..10 and version 7 is outside it.
    ec2Mock.on(DescribeLaunchTemplatesCommand).resolves({
      LaunchTemplates: [
        {
          LaunchTemplateId: 'lt-0000000000000000a',
          LaunchTemplateName: 'web',
          DefaultVersionNumber: 2,
          LatestVersionNumber: 10,
        },
      ],
    });
    ec2Mock
      .on(DescribeLaunchTemplateVersionsCommand, {
        LaunchTemplateId: 'lt-0000000000000000a',
        MinVersion: '7',
      })
      .resolves({
        LaunchTemplateVersions: [
          templateVersion('lt-0000000000000000a', 'web', 10, ltLatest),
          templateVersion('lt-0000000000000000a', 'web', 9, ltWindow),
          templateVersion('lt-0000000000000000a', 'web', 8, ltWindow),
          templateVersion('lt-0000000000000000a', 'web', 7, ltOld),
        ],
      })
      .on(DescribeLaunchTemplateVersionsCommand, {
        LaunchTemplateId: 'lt-0000000000000000a',
        Versions: ['2'],
      })
      .resolves({
        LaunchTemplateVersions: [templateVersion('lt-0000000000000000a', 'web', 2, ltDefault, true)],
      });

    ssmMock
      .on(DescribeParametersCommand)
      .resolvesOnce({
        Parameters: [{ Name: '/golden/web', Type: 'String', DataType: 'aws:ec2:image' }],
        NextToken: 'ssm-2',
      })
      .resolves({ Parameters: [{ Name: '/golden/api', Type: 'String', DataType: 'aws:ec2:image' }] });
    ssmMock.on(GetParametersCommand).resolves({
      Parameters: [
        {
          Name: '/golden/web',
          Type: 'String',
          DataType: 'aws:ec2:image',
          Value: parameter,
          ARN: `arn:aws:ssm:eu-west-1:${ACCOUNT}:parameter/golden/web`,
        },
        { Name: '/golden/api', Type: 'String', DataType: 'aws:ec2:image', Value: amiId(77) },
      ],
      InvalidParameters: [],
    });
  }

  const all = () => [running, stopped, ltDefault, ltWindow, ltOld, ltLatest, parameter, unused].map(image);

  it('enumerates instances, launch templates and SSM parameters after an InvalidAction', async () => {
    // Prepare
    ec2Mock.on(DescribeImageReferencesCommand).rejects(awsError('InvalidAction', 400));
    seedAccount();

    // Act
    const references = await inventory({ launchTemplateVersions: 3 }).findReferences(all());

    // Assess
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeInstancesCommand, 2);
    expect(ec2Mock).toHaveReceivedNthCommandWith(DescribeInstancesCommand, 2, {
      Filters: [
        {
          Name: 'instance-state-name',
          Values: ['pending', 'running', 'shutting-down', 'stopping', 'stopped'],
        },
      ],
      MaxResults: 1000,
      NextToken: 'eyJpbnN0YW5jZXMiOiJwYWdlLTIifQ==',
    });
    expect(LIVE_INSTANCE_STATES).not.toContain('terminated');
    expect(references.get(running)).toEqual([
      { resourceType: 'ec2:Instance', resource: 'i-0a1b2c3d4e5f6aaa1', detail: 'running' },
    ]);
    expect(references.get(stopped)).toEqual([
      { resourceType: 'ec2:Instance', resource: 'i-0a1b2c3d4e5f6aaa2', detail: 'stopped' },
    ]);
    expect(references.get(ltDefault)).toEqual([
      {
        resourceType: 'ec2:LaunchTemplate',
        resource: 'lt-0000000000000000a',
        detail: 'web version 2 ($Default)',
      },
    ]);
    expect(references.get(ltLatest)).toEqual([
      {
        resourceType: 'ec2:LaunchTemplate',
        resource: 'lt-0000000000000000a',
        detail: 'web version 10 ($Latest)',
      },
    ]);
    expect(references.get(ltWindow)?.map((r) => r.detail)).toEqual([
      'web version 9 (among the last 3)',
      'web version 8 (among the last 3)',
    ]);
    expect(references.has(ltOld)).toBe(false);
    expect(ssmMock).toHaveReceivedNthCommandWith(DescribeParametersCommand, 1, {
      ParameterFilters: [{ Key: 'DataType', Option: 'Equals', Values: ['aws:ec2:image'] }],
    });
    expect(ssmMock).toHaveReceivedCommandWith(GetParametersCommand, {
      Names: ['/golden/web', '/golden/api'],
    });
    expect(references.get(parameter)).toEqual([
      {
        resourceType: 'ssm:Parameter',
        resource: `arn:aws:ssm:eu-west-1:${ACCOUNT}:parameter/golden/web`,
        detail: '/golden/web',
      },
    ]);
    expect(references.has(unused)).toBe(false);
    expect(log.warn).toHaveBeenCalledTimes(1);
  });

  it.each([
    'InvalidAction',
    'UnsupportedOperation',
    'UnknownOperation',
    'AuthFailure',
    'UnauthorizedOperation',
    'AccessDenied',
  ])('falls back after %s', async (code) => {
    // Prepare
    ec2Mock.on(DescribeImageReferencesCommand).rejects(awsError(code, code.startsWith('Auth') ? 401 : 400));
    seedAccount();

    // Act
    const references = await inventory({ launchTemplateVersions: 3 }).findReferences(all());

    // Assess
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeImageReferencesCommand, 1);
    expect(references.get(stopped)?.[0]?.detail).toBe('stopped');
  });

  it('ignores a terminated instance even if the endpoint ignored the state filter', async () => {
    // Prepare
    ec2Mock.on(DescribeImageReferencesCommand).rejects(awsError('InvalidAction', 400));
    ec2Mock.on(DescribeInstancesCommand).resolves({
      Reservations: [
        {
          Instances: [
            { InstanceId: 'i-0000000000000dead', ImageId: unused, State: { Code: 48, Name: 'terminated' } },
          ],
        },
      ],
    });
    ssmMock.on(DescribeParametersCommand).resolves({ Parameters: [] });

    // Act
    const references = await inventory().findReferences([image(unused)]);

    // Assess
    expect(references.has(unused)).toBe(false);
  });

  it("falls back on moto's HTML 500 and skips the API for the rest of the run, warning once", async () => {
    // Prepare
    ec2Mock.on(DescribeImageReferencesCommand).rejects(unparseableServerError());
    seedAccount();
    const subject = inventory({ launchTemplateVersions: 3, retry: { maxAttempts: 1 } });

    // Act
    const first = await subject.findReferences(all());
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    await subject.findReferences(all());

    // Assess
    expect(first.get(stopped)?.[0]?.detail).toBe('stopped');
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeImageReferencesCommand, 1);
    expect(log.warn).toHaveBeenCalledTimes(1);
  });

  it('lists every parameter and filters on DataType itself when the DataType filter is rejected', async () => {
    // Prepare
    ec2Mock.on(DescribeImageReferencesCommand).rejects(awsError('UnsupportedOperation', 400));
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    ssmMock
      .on(DescribeParametersCommand)
      .rejectsOnce(awsError('ValidationException', 400))
      .resolves({
        Parameters: [
          { Name: '/golden/web', DataType: 'aws:ec2:image' },
          { Name: '/app/colour', DataType: 'text' },
        ],
      });
    ssmMock.on(GetParametersCommand).resolves({ Parameters: [{ Name: '/golden/web', Value: parameter }] });

    // Act
    const references = await inventory().findReferences([image(parameter)]);

    // Assess
    const unfiltered = ssmMock.commandCalls(DescribeParametersCommand)[1]?.args[0].input;
    expect(unfiltered).toEqual({ MaxResults: 50, NextToken: undefined });
    expect(ssmMock).toHaveReceivedCommandExactlyOnceWith(GetParametersCommand, { Names: ['/golden/web'] });
    expect(references.get(parameter)?.[0]?.resourceType).toBe('ssm:Parameter');
  });

  it('reads SSM parameter values 10 names at a time', async () => {
    // Prepare
    ec2Mock.on(DescribeImageReferencesCommand).rejects(awsError('InvalidAction', 400));
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    const names = Array.from({ length: 12 }, (_, index) => `/golden/app-${index}`);
    ssmMock
      .on(DescribeParametersCommand)
      .resolves({ Parameters: names.map((Name) => ({ Name, DataType: 'aws:ec2:image' })) });
    ssmMock.on(GetParametersCommand).resolves({ Parameters: [] });

    // Act
    await inventory().findReferences([image(unused)]);

    // Assess
    const batches = ssmMock.commandCalls(GetParametersCommand).map((call) => call.args[0].input.Names);
    expect(batches).toEqual([names.slice(0, 10), names.slice(10)]);
  });

  it('throws an InventoryError rather than a partial answer when an enumeration fails', async () => {
    // Prepare
    ec2Mock.on(DescribeImageReferencesCommand).rejects(awsError('InvalidAction', 400));
    seedAccount();
    ec2Mock.on(DescribeInstancesCommand).rejects(awsError('UnauthorizedOperation', 403));

    // Act
    const outcome = inventory().findReferences(all());

    // Assess
    await expect(outcome).rejects.toBeInstanceOf(InventoryError);
    await expect(outcome).rejects.toMatchObject({
      message: expect.stringMatching(/enumerate instances/),
      cause: { name: 'UnauthorizedOperation' },
    });
  });

  it('throws an InventoryError when SSM parameters cannot be read', async () => {
    // Prepare
    ec2Mock.on(DescribeImageReferencesCommand).rejects(awsError('InvalidAction', 400));
    seedAccount();
    ssmMock.on(GetParametersCommand).rejects(awsError('AccessDeniedException', 400));

    // Act
    const outcome = inventory({ launchTemplateVersions: 3 }).findReferences(all());

    // Assess
    await expect(outcome).rejects.toThrow(/enumerate SSM image parameters/);
  });
});

describe('findReferences for Auto Scaling (on both paths)', () => {
  beforeEach(() => {
    ec2Mock.on(DescribeImageReferencesCommand).resolves({ ImageReferences: [] });
  });

  it('counts every launch configuration and the groups that use one', async () => {
    // Prepare
    const [attached, detached] = [amiId(1), amiId(2)];
    autoScalingMock.on(DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: [
        {
          AutoScalingGroupName: 'legacy-web',
          AutoScalingGroupARN: ASG_ARN('legacy-web'),
          LaunchConfigurationName: 'legacy-web-lc',
          MinSize: 0,
          MaxSize: 2,
          DesiredCapacity: 0,
          DefaultCooldown: 300,
          AvailabilityZones: ['eu-west-1a'],
          HealthCheckType: 'EC2',
          CreatedTime: new Date('2024-01-01T00:00:00Z'),
        },
      ],
    });
    autoScalingMock
      .on(DescribeLaunchConfigurationsCommand)
      .resolvesOnce({
        LaunchConfigurations: [
          {
            LaunchConfigurationName: 'legacy-web-lc',
            LaunchConfigurationARN:
              'arn:aws:autoscaling:eu-west-1:111122223333:launchConfiguration:1:launchConfigurationName/legacy-web-lc',
            ImageId: attached,
            InstanceType: 't3.micro',
            CreatedTime: new Date('2024-01-01T00:00:00Z'),
          },
        ],
        NextToken: 'lc-2',
      })
      .resolvesOnce({
        LaunchConfigurations: [
          {
            LaunchConfigurationName: 'spare-lc',
            ImageId: detached,
            InstanceType: 't3.micro',
            CreatedTime: new Date('2024-01-01T00:00:00Z'),
          },
        ],
      });

    // Act
    const references = await inventory().findReferences([image(attached), image(detached)]);

    // Assess
    expect(autoScalingMock).toHaveReceivedNthCommandWith(DescribeLaunchConfigurationsCommand, 2, {
      NextToken: 'lc-2',
    });
    expect(references.get(attached)).toEqual([
      {
        resourceType: 'autoscaling:LaunchConfiguration',
        resource:
          'arn:aws:autoscaling:eu-west-1:111122223333:launchConfiguration:1:launchConfigurationName/legacy-web-lc',
        detail: 'legacy-web-lc',
      },
      {
        resourceType: 'autoscaling:AutoScalingGroup',
        resource: ASG_ARN('legacy-web'),
        detail: 'via launch configuration legacy-web-lc',
      },
    ]);
    expect(references.get(detached)).toEqual([
      { resourceType: 'autoscaling:LaunchConfiguration', resource: 'spare-lc', detail: 'spare-lc' },
    ]);
  });

  it('resolves the exact version pinned by a group, its mixed-instances policy and each override', async () => {
    // Prepare
    const [direct, mixedLatest, overrideNumbered, overrideDefault] = [amiId(1), amiId(2), amiId(3), amiId(4)];
    autoScalingMock.on(DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: [
        {
          AutoScalingGroupName: 'api',
          AutoScalingGroupARN: ASG_ARN('api'),
          LaunchTemplate: { LaunchTemplateId: 'lt-000000000000000a1', Version: '$Default' },
          MinSize: 1,
          MaxSize: 3,
          DesiredCapacity: 1,
          DefaultCooldown: 300,
          AvailabilityZones: ['eu-west-1a'],
          HealthCheckType: 'EC2',
          CreatedTime: new Date('2024-01-01T00:00:00Z'),
        },
        {
          AutoScalingGroupName: 'workers',
          AutoScalingGroupARN: ASG_ARN('workers'),
          MixedInstancesPolicy: {
            LaunchTemplate: {
              LaunchTemplateSpecification: { LaunchTemplateName: 'workers', Version: '$Latest' },
              Overrides: [
                {
                  InstanceType: 'm7g.large',
                  LaunchTemplateSpecification: { LaunchTemplateName: 'workers-arm', Version: '4' },
                },
                {
                  InstanceType: 'm7i.large',
                  LaunchTemplateSpecification: { LaunchTemplateId: 'lt-000000000000000c3' },
                },
                { InstanceType: 'm6i.large' },
              ],
            },
          },
          MinSize: 0,
          MaxSize: 10,
          DesiredCapacity: 2,
          DefaultCooldown: 300,
          AvailabilityZones: ['eu-west-1a', 'eu-west-1b'],
          HealthCheckType: 'EC2',
          CreatedTime: new Date('2024-01-01T00:00:00Z'),
        },
      ],
    });
    ec2Mock
      .on(DescribeLaunchTemplateVersionsCommand, {
        LaunchTemplateId: 'lt-000000000000000a1',
        Versions: ['$Default'],
      })
      .resolves({ LaunchTemplateVersions: [templateVersion('lt-000000000000000a1', 'api', 3, direct, true)] })
      .on(DescribeLaunchTemplateVersionsCommand, { LaunchTemplateName: 'workers', Versions: ['$Latest'] })
      .resolves({
        LaunchTemplateVersions: [templateVersion('lt-000000000000000b2', 'workers', 9, mixedLatest)],
      })
      .on(DescribeLaunchTemplateVersionsCommand, { LaunchTemplateName: 'workers-arm', Versions: ['4'] })
      .resolves({
        LaunchTemplateVersions: [templateVersion('lt-000000000000000b3', 'workers-arm', 4, overrideNumbered)],
      })
      .on(DescribeLaunchTemplateVersionsCommand, {
        LaunchTemplateId: 'lt-000000000000000c3',
        Versions: ['$Default'],
      })
      .resolves({
        LaunchTemplateVersions: [
          templateVersion('lt-000000000000000c3', 'workers-x86', 1, overrideDefault, true),
        ],
      });

    // Act
    const references = await inventory().findReferences(
      [direct, mixedLatest, overrideNumbered, overrideDefault].map(image),
    );

    // Assess
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeLaunchTemplateVersionsCommand, 4);
    expect(references.get(direct)).toEqual([
      {
        resourceType: 'autoscaling:AutoScalingGroup',
        resource: ASG_ARN('api'),
        detail: 'via launch template api version 3 ($Default)',
      },
    ]);
    expect(references.get(mixedLatest)?.[0]?.detail).toBe('via launch template workers version 9 ($Latest)');
    expect(references.get(overrideNumbered)?.[0]).toEqual({
      resourceType: 'autoscaling:AutoScalingGroup',
      resource: ASG_ARN('workers'),
      detail: 'via launch template workers-arm version 4',
    });
    expect(references.get(overrideDefault)?.[0]?.detail).toBe(
      'via launch template workers-x86 version 1 ($Default)',
    );
  });

  it('skips, with a warning, a group pinned to a launch template that no longer exists', async () => {
    // Prepare
    autoScalingMock.on(DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: [
        {
          AutoScalingGroupName: 'orphan',
          LaunchTemplate: { LaunchTemplateId: 'lt-00000000000000dead', Version: '1' },
          MinSize: 0,
          MaxSize: 0,
          DesiredCapacity: 0,
          DefaultCooldown: 300,
          AvailabilityZones: ['eu-west-1a'],
          HealthCheckType: 'EC2',
          CreatedTime: new Date('2024-01-01T00:00:00Z'),
        },
      ],
    });
    ec2Mock
      .on(DescribeLaunchTemplateVersionsCommand)
      .rejects(awsError('InvalidLaunchTemplateId.NotFound', 400));

    // Act
    const references = await inventory().findReferences([image(amiId(1))]);

    // Assess
    expect(references.size).toBe(0);
    expect(log.warn).toHaveBeenCalledWith(
      'Auto Scaling group points at a launch template version that does not exist',
      expect.objectContaining({ autoScalingGroups: ['orphan'] }),
    );
  });

  it('throws an InventoryError when Auto Scaling cannot be enumerated', async () => {
    // Prepare
    autoScalingMock.on(DescribeAutoScalingGroupsCommand).rejects(awsError('AccessDenied', 403));

    // Act
    const outcome = inventory().findReferences([image(amiId(1))]);

    // Assess
    await expect(outcome).rejects.toMatchObject({
      name: 'InventoryError',
      message: expect.stringMatching(/Auto Scaling/),
      cause: { name: 'AccessDenied' },
    });
  });

  it('throws an InventoryError when a pinned version cannot be resolved for another reason', async () => {
    // Prepare
    autoScalingMock.on(DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: [
        {
          AutoScalingGroupName: 'api',
          LaunchTemplate: { LaunchTemplateName: 'api' },
          MinSize: 0,
          MaxSize: 0,
          DesiredCapacity: 0,
          DefaultCooldown: 300,
          AvailabilityZones: ['eu-west-1a'],
          HealthCheckType: 'EC2',
          CreatedTime: new Date('2024-01-01T00:00:00Z'),
        },
      ],
    });
    ec2Mock.on(DescribeLaunchTemplateVersionsCommand).rejects(awsError('UnauthorizedOperation', 403));

    // Act
    const outcome = inventory().findReferences([image(amiId(1))]);

    // Assess
    await expect(outcome).rejects.toBeInstanceOf(InventoryError);
    expect(ec2Mock).toHaveReceivedCommandWith(DescribeLaunchTemplateVersionsCommand, {
      LaunchTemplateName: 'api',
      Versions: ['$Default'],
    });
  });
});
