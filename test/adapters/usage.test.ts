import {
  CreateImageUsageReportCommand,
  type CreateImageUsageReportCommandInput,
  DescribeImageAttributeCommand,
  DescribeImageUsageReportEntriesCommand,
  DescribeImageUsageReportsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createImageUsage, type ImageUsageDeps } from '../../src/adapters/usage.ts';
import { UnsupportedApiError } from '../../src/errors.ts';
import { awsError, recordingLog, recordingSleep, unparseableServerError } from './aws-fakes.ts';

const ec2Mock = mockClient(EC2Client);
const ec2 = new EC2Client({});

const IMAGE = 'ami-0a1b2c3d4e5f60001';
const REPORT = 'amiur-0a1b2c3d4e5f60001';
const CREATED = new Date('2025-05-01T08:00:00Z');

let sleeper: ReturnType<typeof recordingSleep>;

function usage(overrides: Partial<ImageUsageDeps> = {}) {
  return createImageUsage({
    ec2,
    retry: { sleep: sleeper.sleep, maxAttempts: 4, random: () => 0.5 },
    log: recordingLog(),
    ...overrides,
  });
}

beforeEach(() => {
  ec2Mock.reset();
  sleeper = recordingSleep();
});

describe('launchPermissions', () => {
  it('reads public, account, organization and OU permissions from DescribeImageAttribute', async () => {
    // Prepare
    ec2Mock.on(DescribeImageAttributeCommand).resolves({
      ImageId: IMAGE,
      LaunchPermissions: [
        { Group: 'all' },
        { UserId: '111122223333' },
        { UserId: '444455556666' },
        { OrganizationArn: 'arn:aws:organizations::111122223333:organization/o-exampleorg' },
        { OrganizationalUnitArn: 'arn:aws:organizations::111122223333:ou/o-exampleorg/ou-ab12-cdef3456' },
      ],
    });

    // Act
    const permissions = await usage().launchPermissions(IMAGE);

    // Assess
    expect(ec2Mock).toHaveReceivedCommandExactlyOnceWith(DescribeImageAttributeCommand, {
      ImageId: IMAGE,
      Attribute: 'launchPermission',
    });
    expect(permissions).toEqual({
      public: true,
      accounts: ['111122223333', '444455556666'],
      organizations: ['arn:aws:organizations::111122223333:organization/o-exampleorg'],
      organizationalUnits: ['arn:aws:organizations::111122223333:ou/o-exampleorg/ou-ab12-cdef3456'],
    });
  });

  it('reads an image without launch permissions as shared with no one', async () => {
    // Prepare
    ec2Mock.on(DescribeImageAttributeCommand).resolves({ ImageId: IMAGE });

    // Act
    const permissions = await usage().launchPermissions(IMAGE);

    // Assess
    expect(permissions).toEqual({ public: false, accounts: [], organizations: [], organizationalUnits: [] });
  });

  it('lets a missing image through unchanged', async () => {
    // Prepare
    ec2Mock.on(DescribeImageAttributeCommand).rejects(awsError('InvalidAMIID.NotFound'));

    // Act
    const read = usage().launchPermissions(IMAGE);

    // Assess
    await expect(read).rejects.toMatchObject({ name: 'InvalidAMIID.NotFound' });
  });
});

describe('createUsageReport', () => {
  it('asks for instances and launch templates, with a ClientToken, and resolves with the report id', async () => {
    // Prepare
    ec2Mock.on(CreateImageUsageReportCommand).resolves({ ReportId: REPORT });

    // Act
    const reportId = await usage().createUsageReport(IMAGE);

    // Assess
    expect(reportId).toBe(REPORT);
    expect(ec2Mock).toHaveReceivedCommandExactlyOnceWith(CreateImageUsageReportCommand, {
      ImageId: IMAGE,
      ResourceTypes: [{ ResourceType: 'ec2:Instance' }, { ResourceType: 'ec2:LaunchTemplate' }],
      ClientToken: expect.stringMatching(/^[0-9a-f-]{36}$/),
    });
    const input = ec2Mock.commandCalls(CreateImageUsageReportCommand)[0]?.args[0].input;
    expect(input).not.toHaveProperty('TagSpecifications');
  });

  it('checks as many launch template versions as the policy counts, when given', async () => {
    // Prepare
    ec2Mock.on(CreateImageUsageReportCommand).resolves({ ReportId: REPORT });

    // Act
    await usage({ launchTemplateVersions: 5 }).createUsageReport(IMAGE);

    // Assess
    expect(ec2Mock).toHaveReceivedCommandWith(CreateImageUsageReportCommand, {
      ResourceTypes: [
        { ResourceType: 'ec2:Instance' },
        {
          ResourceType: 'ec2:LaunchTemplate',
          ResourceTypeOptions: [{ OptionName: 'version-depth', OptionValues: ['5'] }],
        },
      ],
    });
  });

  it('resends an unanswered request with the same ClientToken, so EC2 starts one report', async () => {
    // Prepare
    ec2Mock
      .on(CreateImageUsageReportCommand)
      .rejectsOnce(Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }))
      .resolves({ ReportId: REPORT });

    // Act
    const reportId = await usage().createUsageReport(IMAGE);

    // Assess
    expect(reportId).toBe(REPORT);
    const tokens = ec2Mock
      .commandCalls(CreateImageUsageReportCommand)
      .map((call) => (call.args[0].input as CreateImageUsageReportCommandInput).ClientToken);
    expect(tokens).toHaveLength(2);
    expect(tokens[1]).toBe(tokens[0]);
  });

  it('uses a new ClientToken for each report asked for', async () => {
    // Prepare
    ec2Mock.on(CreateImageUsageReportCommand).resolves({ ReportId: REPORT });
    const port = usage();

    // Act
    await port.createUsageReport(IMAGE);
    await port.createUsageReport(IMAGE);

    // Assess
    const tokens = ec2Mock
      .commandCalls(CreateImageUsageReportCommand)
      .map((call) => (call.args[0].input as CreateImageUsageReportCommandInput).ClientToken);
    expect(new Set(tokens).size).toBe(2);
  });

  it('reports an endpoint without the action (an HTML 500 without an AWS code) as unsupported, asked once', async () => {
    // Prepare
    ec2Mock.on(CreateImageUsageReportCommand).rejects(unparseableServerError());

    // Act
    const created = usage().createUsageReport(IMAGE);

    // Assess
    await expect(created).rejects.toSatisfy(
      (error) =>
        error instanceof UnsupportedApiError &&
        error.operation === 'CreateImageUsageReport' &&
        (error.cause as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 500,
    );
    expect(ec2Mock).toHaveReceivedCommandTimes(CreateImageUsageReportCommand, 1);
  });

  it.each(['InvalidAction', 'UnsupportedOperation'])('reports %s as unsupported', async (code) => {
    // Prepare
    ec2Mock.on(CreateImageUsageReportCommand).rejects(awsError(code));

    // Act
    const created = usage().createUsageReport(IMAGE);

    // Assess
    await expect(created).rejects.toBeInstanceOf(UnsupportedApiError);
  });

  it('lets a 500 with an AWS code through as itself once retries are spent, not as unsupported', async () => {
    // Prepare
    ec2Mock.on(CreateImageUsageReportCommand).rejects(awsError('InternalError', 500));

    // Act
    const created = usage().createUsageReport(IMAGE);

    // Assess
    await expect(created).rejects.toMatchObject({ name: 'InternalError' });
    expect(ec2Mock).toHaveReceivedCommandTimes(CreateImageUsageReportCommand, 4);
  });
});

describe('usageReport', () => {
  it('returns a complete report with every page of its entries', async () => {
    // Prepare
    ec2Mock.on(DescribeImageUsageReportsCommand).resolves({
      ImageUsageReports: [{ ImageId: IMAGE, ReportId: REPORT, State: 'available', CreationTime: CREATED }],
    });
    ec2Mock
      .on(DescribeImageUsageReportEntriesCommand)
      .resolvesOnce({
        ImageUsageReportEntries: [
          {
            ReportId: REPORT,
            ImageId: IMAGE,
            AccountId: '111122223333',
            ResourceType: 'ec2:Instance',
            UsageCount: 3,
          },
        ],
        NextToken: 'entries-2',
      })
      .resolvesOnce({
        ImageUsageReportEntries: [
          {
            ReportId: REPORT,
            ImageId: IMAGE,
            AccountId: '444455556666',
            ResourceType: 'ec2:LaunchTemplate',
            UsageCount: 1,
          },
        ],
      });

    // Act
    const report = await usage().usageReport(IMAGE, REPORT);

    // Assess
    expect(ec2Mock).toHaveReceivedCommandExactlyOnceWith(DescribeImageUsageReportsCommand, {
      ImageIds: [IMAGE],
      ReportIds: [REPORT],
    });
    expect(ec2Mock).toHaveReceivedNthCommandWith(DescribeImageUsageReportEntriesCommand, 2, {
      ImageIds: [IMAGE],
      ReportIds: [REPORT],
      NextToken: 'entries-2',
    });
    expect(report).toEqual({
      reportId: REPORT,
      imageId: IMAGE,
      state: 'available',
      createdAt: CREATED,
      entries: [
        { accountId: '111122223333', resourceType: 'ec2:Instance', usageCount: 3 },
        { accountId: '444455556666', resourceType: 'ec2:LaunchTemplate', usageCount: 1 },
      ],
    });
  });

  it('returns a complete report nothing uses with no entries', async () => {
    // Prepare
    ec2Mock.on(DescribeImageUsageReportsCommand).resolves({
      ImageUsageReports: [{ ImageId: IMAGE, ReportId: REPORT, State: 'available', CreationTime: CREATED }],
    });
    ec2Mock.on(DescribeImageUsageReportEntriesCommand).resolves({ ImageUsageReportEntries: [] });

    // Act
    const report = await usage().usageReport(IMAGE, REPORT);

    // Assess
    expect(report?.state).toBe('available');
    expect(report?.entries).toEqual([]);
  });

  it('returns a pending report without asking for its entries', async () => {
    // Prepare
    ec2Mock.on(DescribeImageUsageReportsCommand).resolves({
      ImageUsageReports: [{ ImageId: IMAGE, ReportId: REPORT, State: 'pending', CreationTime: CREATED }],
    });

    // Act
    const report = await usage().usageReport(IMAGE, REPORT);

    // Assess
    expect(report).toEqual({
      reportId: REPORT,
      imageId: IMAGE,
      state: 'pending',
      createdAt: CREATED,
      entries: [],
    });
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeImageUsageReportEntriesCommand, 0);
  });

  it("returns a report EC2 could not make as failed, with EC2's reason", async () => {
    // Prepare
    ec2Mock.on(DescribeImageUsageReportsCommand).resolves({
      ImageUsageReports: [
        {
          ImageId: IMAGE,
          ReportId: REPORT,
          State: 'error',
          StateReason: 'An internal error occurred',
          CreationTime: CREATED,
        },
      ],
    });

    // Act
    const report = await usage().usageReport(IMAGE, REPORT);

    // Assess
    expect(report).toEqual({
      reportId: REPORT,
      imageId: IMAGE,
      state: 'failed',
      stateReason: 'An internal error occurred',
      createdAt: CREATED,
      entries: [],
    });
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeImageUsageReportEntriesCommand, 0);
  });

  it('returns undefined for a report that no longer exists: an empty answer or a NotFound code', async () => {
    // Prepare
    ec2Mock
      .on(DescribeImageUsageReportsCommand)
      .resolvesOnce({ ImageUsageReports: [] })
      .rejectsOnce(awsError('InvalidImageUsageReportId.NotFound'))
      .resolvesOnce({
        ImageUsageReports: [
          { ImageId: IMAGE, ReportId: 'amiur-0ffffffffffffffff', State: 'available', CreationTime: CREATED },
        ],
      });
    const port = usage();

    // Act
    const empty = await port.usageReport(IMAGE, REPORT);
    const notFound = await port.usageReport(IMAGE, REPORT);
    const another = await port.usageReport(IMAGE, REPORT);

    // Assess
    expect([empty, notFound, another]).toEqual([undefined, undefined, undefined]);
  });

  it('returns undefined when the report expires between reading it and reading its entries', async () => {
    // Prepare
    ec2Mock.on(DescribeImageUsageReportsCommand).resolves({
      ImageUsageReports: [{ ImageId: IMAGE, ReportId: REPORT, State: 'available', CreationTime: CREATED }],
    });
    ec2Mock
      .on(DescribeImageUsageReportEntriesCommand)
      .rejects(awsError('InvalidImageUsageReportId.NotFound'));

    // Act
    const report = await usage().usageReport(IMAGE, REPORT);

    // Assess
    expect(report).toBeUndefined();
  });

  it('refuses a report without a creation time, which could pass for an old one', async () => {
    // Prepare
    ec2Mock.on(DescribeImageUsageReportsCommand).resolves({
      ImageUsageReports: [{ ImageId: IMAGE, ReportId: REPORT, State: 'available' }],
    });

    // Act
    const read = usage().usageReport(IMAGE, REPORT);

    // Assess
    await expect(read).rejects.toMatchObject({
      name: 'InventoryError',
      message: expect.stringMatching(/CreationTime/),
    });
  });

  it('refuses an entry that does not say how often the image is used, rather than count it as none', async () => {
    // Prepare
    ec2Mock.on(DescribeImageUsageReportsCommand).resolves({
      ImageUsageReports: [{ ImageId: IMAGE, ReportId: REPORT, State: 'available', CreationTime: CREATED }],
    });
    ec2Mock.on(DescribeImageUsageReportEntriesCommand).resolves({
      ImageUsageReportEntries: [
        { ReportId: REPORT, AccountId: '111122223333', ResourceType: 'ec2:Instance' },
      ],
    });

    // Act
    const read = usage().usageReport(IMAGE, REPORT);

    // Assess
    await expect(read).rejects.toMatchObject({
      name: 'InventoryError',
      message: expect.stringMatching(/UsageCount/),
    });
  });

  it('reports an endpoint without usage reports as unsupported, for the report and for its entries', async () => {
    // Prepare
    ec2Mock
      .on(DescribeImageUsageReportsCommand)
      .rejectsOnce(unparseableServerError())
      .resolves({
        ImageUsageReports: [{ ImageId: IMAGE, ReportId: REPORT, State: 'available', CreationTime: CREATED }],
      });
    ec2Mock.on(DescribeImageUsageReportEntriesCommand).rejects(awsError('InvalidAction'));
    const port = usage();

    // Act
    const report = port.usageReport(IMAGE, REPORT);
    await expect(report).rejects.toSatisfy(
      (error) => error instanceof UnsupportedApiError && error.operation === 'DescribeImageUsageReports',
    );
    const entries = port.usageReport(IMAGE, REPORT);

    // Assess
    await expect(entries).rejects.toSatisfy(
      (error) =>
        error instanceof UnsupportedApiError && error.operation === 'DescribeImageUsageReportEntries',
    );
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeImageUsageReportsCommand, 2);
  });

  it('retries a throttled read and lets AccessDenied through unchanged', async () => {
    // Prepare
    ec2Mock
      .on(DescribeImageUsageReportsCommand)
      .rejectsOnce(awsError('RequestLimitExceeded', 503))
      .rejectsOnce(awsError('UnauthorizedOperation', 403));

    // Act
    const read = usage().usageReport(IMAGE, REPORT);

    // Assess
    await expect(read).rejects.toMatchObject({ name: 'UnauthorizedOperation' });
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeImageUsageReportsCommand, 2);
    expect(sleeper.delays).toEqual([100]);
  });
});
