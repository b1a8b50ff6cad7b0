import { randomUUID } from 'node:crypto';
import type {
  ImageUsageReport as Ec2ImageUsageReport,
  ImageUsageReportEntry,
  ImageUsageResourceTypeRequest,
} from '@aws-sdk/client-ec2';
import {
  CreateImageUsageReportCommand,
  DescribeImageAttributeCommand,
  DescribeImageUsageReportEntriesCommand,
  DescribeImageUsageReportsCommand,
} from '@aws-sdk/client-ec2';
import type { ImageUsagePort } from '../core/ports.ts';
import { errorCode, InventoryError, UnsupportedApiError } from '../errors.ts';
import type { ImageUsageReport } from '../model.ts';
import { awsClients } from './clients.ts';
import { type AdapterDeps, type Call, makeCall, paginate } from './common.ts';
import { isUnsupportedAction } from './retry.ts';
import { toPermissions } from './sharing.ts';

export interface ImageUsageDeps extends AdapterDeps {
  /**
   * How many of a launch template's newest versions the report checks (EC2 takes 1 to 10,000);
   * EC2's own default, 20, when absent.
   */
  launchTemplateVersions?: number;
}

/**
 * What a report's request may name, as the installed SDK's model lists it: instances and launch
 * templates. Image Builder recipes are not among its valid values, so asking for them would be
 * refused as a whole.
 */
export function usageReportResourceTypes(launchTemplateVersions?: number): ImageUsageResourceTypeRequest[] {
  return [
    { ResourceType: 'ec2:Instance' },
    {
      ResourceType: 'ec2:LaunchTemplate',
      ...(launchTemplateVersions === undefined
        ? {}
        : {
            ResourceTypeOptions: [
              { OptionName: 'version-depth', OptionValues: [String(launchTemplateVersions)] },
            ],
          }),
    },
  ];
}

/**
 * What DescribeImageUsageReports answers for a report id it no longer has: reports expire 30 days
 * after they are made. EC2 does not document the code; these are the names its id errors follow.
 */
const GONE_REPORT_CODES = new Set(['InvalidImageUsageReportId.NotFound', 'InvalidImageUsageReport.NotFound']);

/** A report EC2 has finished: only then are its entries the whole answer. */
const COMPLETE_STATE = 'available';

/** EC2 calls a report it could not make `error`; the model, and the rules reading it, call it `failed`. */
const STATES: Readonly<Record<string, string>> = { error: 'failed' };

/**
 * Whether the endpoint lacks the call: older partitions answer InvalidAction, emulators an HTML
 * 500. Either way the usage is unknown, so the caller is told so rather than handed an empty answer.
 */
function unsupportedAware(call: Call): Call {
  return async (operation, send) => {
    try {
      return await call(operation, send);
    } catch (error) {
      if (isUnsupportedAction(error)) throw new UnsupportedApiError(operation, { cause: error });
      throw error;
    }
  };
}

function toEntry(raw: ImageUsageReportEntry, reportId: string): ImageUsageReport['entries'][number] {
  // An entry exists because something uses the image: one that does not say who or how often
  // cannot be counted as less, so the report is not trusted at all.
  if (!raw.AccountId || raw.UsageCount === undefined) {
    throw new InventoryError(
      `usage report ${reportId} has an entry without ${raw.AccountId ? 'a UsageCount' : 'an AccountId'}`,
    );
  }
  return {
    accountId: raw.AccountId,
    resourceType: raw.ResourceType ?? 'unknown',
    usageCount: raw.UsageCount,
  };
}

/** The report as far as EC2 has got; the entries are filled in by the caller once it is complete. */
export function toUsageReport(raw: Ec2ImageUsageReport, imageId: string, reportId: string): ImageUsageReport {
  // A report of unknown age must not pass for an old one: its entries may predate recent use.
  if (!raw.CreationTime) throw new InventoryError(`usage report ${reportId} has no CreationTime`);
  return {
    reportId,
    imageId: raw.ImageId ?? imageId,
    // A missing state is not `available`, so the report is never read as complete.
    state: raw.State === undefined ? 'unknown' : (STATES[raw.State] ?? raw.State),
    ...(raw.StateReason ? { stateReason: raw.StateReason } : {}),
    createdAt: new Date(raw.CreationTime),
    entries: [],
  };
}

export function createImageUsage(deps: ImageUsageDeps = {}): ImageUsagePort {
  const ec2 = deps.ec2 ?? awsClients.ec2;
  const call = unsupportedAware(makeCall(deps));
  const resourceTypes = usageReportResourceTypes(deps.launchTemplateVersions);

  async function reportEntries(imageId: string, reportId: string): Promise<ImageUsageReport['entries']> {
    const entries: ImageUsageReport['entries'] = [];
    await paginate(
      'DescribeImageUsageReportEntries',
      (NextToken) =>
        call('DescribeImageUsageReportEntries', (options) =>
          // No MaxResults: EC2 documents no upper bound for it, so its own page size is the safe one.
          ec2.send(
            new DescribeImageUsageReportEntriesCommand({
              ImageIds: [imageId],
              ReportIds: [reportId],
              NextToken,
            }),
            options,
          ),
        ),
      (page) => {
        for (const raw of page.ImageUsageReportEntries ?? []) {
          if (raw.ReportId !== undefined && raw.ReportId !== reportId) continue;
          entries.push(toEntry(raw, reportId));
        }
      },
    );
    return entries;
  }

  async function describeReport(imageId: string, reportId: string): Promise<Ec2ImageUsageReport | undefined> {
    const reports: Ec2ImageUsageReport[] = [];
    await paginate(
      'DescribeImageUsageReports',
      (NextToken) =>
        call('DescribeImageUsageReports', (options) =>
          ec2.send(
            new DescribeImageUsageReportsCommand({ ImageIds: [imageId], ReportIds: [reportId], NextToken }),
            options,
          ),
        ),
      (page) => reports.push(...(page.ImageUsageReports ?? [])),
    );
    return reports.find(
      (report) =>
        report.ReportId === reportId && (report.ImageId === undefined || report.ImageId === imageId),
    );
  }

  return {
    async launchPermissions(imageId) {
      const output = await call('DescribeImageAttribute', (options) =>
        ec2.send(
          new DescribeImageAttributeCommand({ ImageId: imageId, Attribute: 'launchPermission' }),
          options,
        ),
      );
      return toPermissions(output.LaunchPermissions ?? []);
    },

    async createUsageReport(imageId) {
      // Made once, before the first attempt: every resend carries it, so EC2 starts one report.
      const clientToken = randomUUID();
      const output = await call('CreateImageUsageReport', (options) =>
        ec2.send(
          new CreateImageUsageReportCommand({
            ImageId: imageId,
            ResourceTypes: resourceTypes,
            ClientToken: clientToken,
          }),
          options,
        ),
      );
      if (!output.ReportId)
        throw new InventoryError(`CreateImageUsageReport for ${imageId} returned no ReportId`);
      return output.ReportId;
    },

    async usageReport(imageId, reportId) {
      try {
        const raw = await describeReport(imageId, reportId);
        if (!raw) return undefined;
        const report = toUsageReport(raw, imageId, reportId);
        if (report.state === COMPLETE_STATE) report.entries = await reportEntries(imageId, reportId);
        return report;
      } catch (error) {
        // Expired between the two calls, or before the first: gone either way.
        if (GONE_REPORT_CODES.has(errorCode(error))) return undefined;
        throw error;
      }
    },
  };
}
