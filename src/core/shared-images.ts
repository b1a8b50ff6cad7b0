import { USAGE_REPORT_TAG } from '../config/policy.ts';
import { errorCode, errorMessage, UnsupportedApiError } from '../errors.ts';
import type { Image, ImageFacts, Reference, UsageFact } from '../model.ts';
import { isSharedBeyondAccount } from '../rules/shared-image.ts';
import { forEachConcurrent } from './concurrency.ts';
import type { ConsumerReferences, ImageUsagePort } from './ports.ts';

/** Recorded in the usage-report tag where the endpoint has no usage reports. */
export const UNSUPPORTED_MARK = 'unsupported';

/** Launch permissions are one call per image; a few at a time, the limiter sets the pace. */
const SHARING_CONCURRENCY = 8;

export type SharedFacts = Pick<ImageFacts, 'sharing' | 'usage' | 'usedInTargets'>;

/**
 * Asks each target account an image is shared with what uses it there, one batch per account. A
 * failed read becomes a usage error, which keeps the image: an unknown use is never "unused".
 */
export async function checkInConsumers(
  images: readonly Image[],
  facts: Map<string, SharedFacts>,
  consumers: ConsumerReferences,
): Promise<void> {
  const byAccount = new Map<string, Image[]>();
  for (const image of images) {
    for (const accountId of facts.get(image.imageId)?.sharing?.accounts ?? []) {
      byAccount.set(accountId, [...(byAccount.get(accountId) ?? []), image]);
    }
  }
  await forEachConcurrent([...byAccount], 4, async ([accountId, shared]) => {
    let found: Map<string, Reference[]> | undefined;
    try {
      found = await consumers.referencesIn(accountId, shared);
    } catch (error) {
      for (const image of shared) {
        const current = facts.get(image.imageId);
        facts.set(image.imageId, {
          ...current,
          usage: {
            status: 'error',
            errorCode: errorCode(error),
            detail: `its use in target account ${accountId} could not be read: ${errorMessage(error)}`,
          },
        });
      }
      return;
    }
    if (!found) return;
    for (const image of shared) {
      const current = facts.get(image.imageId) ?? {};
      facts.set(image.imageId, {
        ...current,
        usedInTargets: [
          ...(current.usedInTargets ?? []),
          { accountId, references: found.get(image.imageId) ?? [] },
        ],
      });
    }
  });
}

/**
 * What the shared-image gate needs, for the images the other rules would let go and only those:
 * who each may be launched by and, where that reaches beyond the account, what its AMI usage
 * report says. A fact that cannot be read becomes an `error` usage, which keeps the image: an
 * unknown use is never read as "unused".
 */
export async function gatherSharedFacts(
  images: readonly Image[],
  usage: ImageUsagePort,
  context: {
    accountId: string;
    now: Date;
    consumers?: ConsumerReferences | undefined;
    /** Told after each image's launch permissions (and usage report) are read. */
    onChecked?: ((done: number, total: number) => void) | undefined;
  },
): Promise<Map<string, SharedFacts>> {
  let checked = 0;
  context.onChecked?.(0, images.length);
  const facts = await readSharedFacts(images, usage, {
    ...context,
    onRead: () => {
      checked += 1;
      context.onChecked?.(checked, images.length);
    },
  });
  if (context.consumers) await checkInConsumers(images, facts, context.consumers);
  return facts;
}

/**
 * Each image's launch permissions and, where they reach beyond the account, its usage report: the
 * shared facts but the target accounts' own checks (checkInConsumers), which go by account.
 */
export async function readSharedFacts(
  images: readonly Image[],
  usage: ImageUsagePort,
  context: { accountId: string; now: Date; onRead?: (() => void) | undefined },
): Promise<Map<string, SharedFacts>> {
  const facts = new Map<string, SharedFacts>();
  await forEachConcurrent(images, SHARING_CONCURRENCY, async (image) => {
    await readSharing(image);
    context.onRead?.();
  });
  async function readSharing(image: Image): Promise<void> {
    let sharing: ImageFacts['sharing'];
    try {
      sharing = await usage.launchPermissions(image.imageId);
    } catch (error) {
      facts.set(image.imageId, {
        usage: {
          status: 'error',
          errorCode: errorCode(error),
          detail: `its launch permissions could not be read: ${errorMessage(error)}`,
        },
      });
      return;
    }
    if (!sharing || !isSharedBeyondAccount(sharing, context.accountId)) {
      facts.set(image.imageId, { sharing });
      return;
    }
    facts.set(image.imageId, { sharing, usage: await usageOf(image, usage, context.now) });
  }
  return facts;
}

/** How long an endpoint found without usage reports is taken at its word before asking again. */
const UNSUPPORTED_RECHECK_DAYS = 7;

/**
 * The report recorded on the image (`<report id> <requested at>`, or `unsupported <when>` where the
 * endpoint had no usage reports), as it stands now.
 */
async function usageOf(image: Image, usage: ImageUsagePort, now: Date): Promise<UsageFact> {
  const [recorded, at] = image.tags[USAGE_REPORT_TAG]?.trim().split(/\s+/) ?? [];
  if (!recorded) return { status: 'none', detail: 'no AMI usage report was requested yet' };
  if (recorded === UNSUPPORTED_MARK) {
    const since = at ? new Date(at) : undefined;
    const fresh =
      since &&
      !Number.isNaN(since.getTime()) &&
      now.getTime() - since.getTime() < UNSUPPORTED_RECHECK_DAYS * 86_400_000;
    return fresh
      ? { status: 'unsupported', detail: 'AMI usage reports are not supported by this endpoint' }
      : { status: 'none', detail: 'usage reports were not supported when last asked; asking again' };
  }
  try {
    const report = await usage.usageReport(image.imageId, recorded);
    if (!report) return { status: 'none', detail: `usage report ${recorded} no longer exists` };
    return { status: 'report', report };
  } catch (error) {
    if (error instanceof UnsupportedApiError) {
      return { status: 'unsupported', detail: `${error.operation} is not supported here` };
    }
    return { status: 'error', errorCode: errorCode(error), detail: errorMessage(error) };
  }
}
