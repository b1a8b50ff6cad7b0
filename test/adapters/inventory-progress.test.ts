import { readFileSync } from 'node:fs';
import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  DescribeLaunchConfigurationsCommand,
} from '@aws-sdk/client-auto-scaling';
import type { DescribeImagesCommandOutput, DescribeSnapshotsCommandOutput } from '@aws-sdk/client-ec2';
import {
  DescribeImageReferencesCommand,
  DescribeImagesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createInventory } from '../../src/adapters/ec2.ts';
import { createSnapshotInventory } from '../../src/adapters/snapshots.ts';
import type { Image } from '../../src/model.ts';
import { ec2Fixture, recordingLog, recordingSleep } from './aws-fakes.ts';

/** The inventory adapters tell a progress listener how far a listing or a reference check has got. */

const ec2Mock = mockClient(EC2Client);
const autoScalingMock = mockClient(AutoScalingClient);
const ec2 = new EC2Client({});
const ACCOUNT = '111122223333';
const retry = { sleep: recordingSleep().sleep, maxAttempts: 3, random: () => 0.5 };

function snapshotsPage(page: number): DescribeSnapshotsCommandOutput {
  const text = readFileSync(
    new URL(`../fixtures/snapshots/describe-snapshots-page-${page}.json`, import.meta.url),
    'utf8',
  );
  return JSON.parse(text, (key, value: unknown) =>
    key === 'StartTime' && typeof value === 'string' ? new Date(value) : value,
  ) as DescribeSnapshotsCommandOutput;
}

function image(index: number): Image {
  return {
    imageId: `ami-${index.toString(16).padStart(17, '0')}`,
    name: `image-${index}`,
    ownerId: ACCOUNT,
    state: 'available',
    creationDate: new Date('2025-01-01T00:00:00Z'),
    public: false,
    tags: {},
    snapshotIds: [],
  };
}

beforeEach(() => {
  ec2Mock.reset();
  autoScalingMock.reset();
});

describe('inventory progress', () => {
  it('counts the images listed after each DescribeImages page', async () => {
    // Prepare
    const pages = [1, 2, 3].map((n) => ec2Fixture<DescribeImagesCommandOutput>(`describe-images-page-${n}`));
    ec2Mock
      .on(DescribeImagesCommand)
      .resolvesOnce(pages[0] ?? {})
      .resolvesOnce(pages[1] ?? {})
      .resolvesOnce(pages[2] ?? {});
    const counts: number[] = [];

    // Act
    const images = await createInventory({
      ec2,
      launchTemplateVersions: 5,
      retry,
      log: recordingLog(),
    }).listOwnedImages({ onPage: (listed) => counts.push(listed) });

    // Assess
    const sizes = pages.map((page) => page.Images?.length ?? 0);
    expect(counts).toEqual([sizes[0], (sizes[0] ?? 0) + (sizes[1] ?? 0), images.length]);
  });

  it('counts the images whose references were checked, 10 per DescribeImageReferences call', async () => {
    // Prepare
    ec2Mock.on(DescribeImageReferencesCommand).resolves({ ImageReferences: [] });
    ec2Mock.on(DescribeLaunchTemplatesCommand).resolves({ LaunchTemplates: [] });
    // Auto Scaling is enumerated for every check; an empty account answers it.
    autoScalingMock.on(DescribeAutoScalingGroupsCommand).resolves({ AutoScalingGroups: [] });
    autoScalingMock.on(DescribeLaunchConfigurationsCommand).resolves({ LaunchConfigurations: [] });
    const checked: number[] = [];
    const inventory = createInventory({
      ec2,
      autoScaling: new AutoScalingClient({}),
      launchTemplateVersions: 5,
      retry,
      log: recordingLog(),
    });

    // Act
    await inventory.findReferences(
      Array.from({ length: 23 }, (_, index) => image(index + 1)),
      { onChecked: (count) => checked.push(count) },
    );

    // Assess: a running total, one step per batch (batches finish in any order).
    const steps = checked.map((count, index) => count - (checked[index - 1] ?? 0));
    expect(steps.toSorted((a, b) => a - b)).toEqual([3, 10, 10]);
    expect(checked.at(-1)).toBe(23);
  });

  it('counts the snapshots listed after each DescribeSnapshots page', async () => {
    // Prepare
    const pages = [1, 2, 3].map(snapshotsPage);
    ec2Mock
      .on(DescribeSnapshotsCommand)
      .resolvesOnce(pages[0] ?? {})
      .resolvesOnce(pages[1] ?? {})
      .resolvesOnce(pages[2] ?? {});
    const counts: number[] = [];

    // Act
    const snapshots = await createSnapshotInventory({ ec2, retry, log: recordingLog() }).listOwnedSnapshots(
      ACCOUNT,
      { onPage: (listed) => counts.push(listed) },
    );

    // Assess
    expect(counts).toHaveLength(3);
    expect(counts).toEqual(counts.toSorted((a, b) => a - b));
    expect(counts.at(-1)).toBe(snapshots.length);
  });
});
