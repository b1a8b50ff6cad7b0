import * as z from 'zod';
import { PolicyError } from '../errors.ts';
import { ageSchema } from '../rules/age.ts';
import { exemptTagSchema } from '../rules/exempt-tag.ts';
import { expiryTagSchema } from '../rules/expiry-tag.ts';
import { keepLatestSchema } from '../rules/keep-latest.ts';
import { requiredTagsSchema } from '../rules/required-tags.ts';
import { dayCount, MAX_DAYS, perRunCap } from '../rules/schema-parts.ts';
import { sharingSchema } from '../rules/sharing.ts';
import { snapshotSchema } from '../rules/snapshot-orphan.ts';
import { oneLine } from '../text.ts';

/**
 * Marking deprecates an image at now + graceDays, and EC2 refuses a deprecation more than 10 years
 * ahead: past this every mark would carry a warning instead of a deprecation.
 */
export const MAX_GRACE_DAYS = 3650;

/**
 * The whole policy: the planner's own keys plus the keys each rule declares. Every object is
 * strict, so a typo is an error rather than a silently ignored setting; every key has a default,
 * so an empty document is a valid, conservative policy.
 */
export const policySchema = z.strictObject({
  dryRun: z.boolean().default(true),
  ...ageSchema,
  ...keepLatestSchema,
  ...exemptTagSchema,
  ...expiryTagSchema,
  ...requiredTagsSchema,
  ...sharingSchema,
  ...snapshotSchema,
  graceDays: z
    .number()
    .int()
    .min(0)
    .max(MAX_GRACE_DAYS, `at most ${MAX_GRACE_DAYS} days (EC2 deprecates an image at most 10 years ahead)`)
    .default(7),
  /** The steps between marking and deregistering an image. */
  removal: z
    .strictObject({
      /**
       * Deprecate a marked image at its removal date. Deprecation hides it from other accounts'
       * DescribeImages, which tools that pick images by filter notice; false stages by tag alone.
       */
      deprecate: z.boolean().default(true),
      /**
       * Disable an image (DisableImage: no launch anywhere; EnableImage undoes it, though not the
       * launch permissions DisableImage drops) once its grace period is
       * over, and deregister it this many days later if it is still eligible; null skips the step.
       */
      disableDays: dayCount.nullable().default(null),
    })
    .prefault({}),
  /**
   * An image shared with other accounts, an organisation or an OU may be used there. `check-usage`
   * removes it only once an AMI usage report shows no use anywhere; `keep` never removes it.
   */
  sharedImages: z.enum(['check-usage', 'keep']).default('check-usage'),
  /**
   * Usage reports lag (instance activity by up to a day, launch templates by a few): a report
   * clears an image only when it is at least this old, and younger than the image's mark.
   */
  usageReportMinAgeDays: z.number().int().min(0).max(30).default(2),
  maxRemovalsPerRun: perRunCap.default(100),
  maxRemovalsPercent: z.number().gt(0).max(100).nullable().default(null),
  deleteSnapshots: z.boolean().default(true),
  /** The Slack digest after a scheduled sweep: only when something changed, after every sweep, or never. */
  digest: z.enum(['changes', 'always', 'never']).default('changes'),
  /** New images get `ami-janitor:expires-at` = creation + this many days, unless already tagged. */
  defaultTtlDays: z
    .number()
    .int()
    .min(1)
    .max(MAX_DAYS, `at most ${MAX_DAYS} days (100 years)`)
    .nullable()
    .default(null),
  attribution: z
    .strictObject({
      /** CloudTrail LookupEvents calls per sweep to find who created untagged images; 0 turns it off. */
      maxLookupsPerRun: z.number().int().min(0).max(1000).default(50),
    })
    .prefault({}),
  inUse: z
    .strictObject({
      launchTemplateVersions: z.number().int().min(1).max(115).default(5),
    })
    .prefault({}),
});

export type Policy = z.infer<typeof policySchema>;

// Zod compiles a fast path for object schemas on first use; a Lambda parses a handful of documents
// per cold start, so compiling costs more start-up time than it ever saves.
z.config({ jitless: true });

export const MARKED_AT_TAG = 'ami-janitor:marked-at';

/**
 * The deployment's roles may write only tag keys under this prefix (IAM `aws:TagKeys` is
 * `ami-janitor:*`, compared case-sensitively), and never the exempt tag below.
 */
export const WRITABLE_TAG_PREFIX = 'ami-janitor:';
/** Denied to every janitor role (compared ignoring case), so that only people exempt a resource. */
export const IAM_PROTECTED_TAG = 'ami-janitor:keep';
/**
 * Tags the janitor keeps its own state in. They mirror the constants of the image audit, which a
 * test holds them to; an expiry tag under one of these keys would read the janitor's bookkeeping
 * as an expiry date.
 */
/** When this janitor disabled the image (the disable step), so only it re-enables it. */
export const DISABLED_AT_TAG = 'ami-janitor:disabled-at';
/** When this janitor archived the orphan (the archive step). */
export const ARCHIVED_AT_TAG = 'ami-janitor:archived-at';
/** The AMI usage report requested for a shared image, as `<report id> <created at>`. */
export const USAGE_REPORT_TAG = 'ami-janitor:usage-report';

export const JANITOR_STATE_TAGS: readonly string[] = [
  MARKED_AT_TAG,
  DISABLED_AT_TAG,
  ARCHIVED_AT_TAG,
  USAGE_REPORT_TAG,
  'ami-janitor:created-by',
  'ami-janitor:created-by-session',
  'ami-janitor:created-at',
  'ami-janitor:alerted-exposure',
];

/** A PolicyError lists this many problems; a document with thousands of typos gets the count. */
export const MAX_LISTED_PROBLEMS = 20;
/** How much of a key from the document a message shows; a key may be a megabyte long. */
const KEY_DISPLAY_CHARS = 120;

export function defaultPolicy(): Policy {
  return policySchema.parse({});
}

/** Validates a parsed policy document. Throws PolicyError naming every bad path. */
export function parsePolicy(document: unknown): Policy {
  const result = policySchema.safeParse(document ?? {});
  const problems = result.success ? tagKeyProblems(result.data) : result.error.issues.flatMap(describeIssue);
  if (result.success && problems.length === 0) return result.data;
  const listed =
    problems.length > MAX_LISTED_PROBLEMS
      ? [
          ...problems.slice(0, MAX_LISTED_PROBLEMS),
          `…and ${problems.length - MAX_LISTED_PROBLEMS} more problems`,
        ]
      : problems;
  throw new PolicyError(listed, result.success ? {} : { cause: result.error });
}

/**
 * Tag keys that are valid on their own but that the deployment cannot honour. The exempt tag,
 * required tags and family tags are only ever read, so they may be any key; the expiry tag is
 * written on every new image once `defaultTtlDays` is set, in the same CreateTags call as the
 * creator tags, so a key the roles may not write would make EC2 refuse all of them.
 */
function tagKeyProblems(policy: Policy): string[] {
  const key = policy.expiryTag.key;
  const shown = quoteKey(key);
  if (JANITOR_STATE_TAGS.includes(key)) {
    return [
      `expiryTag.key: ${shown} is where the janitor keeps its own state, so its value would be read as an expiry date; choose another key, e.g. ami-janitor:expires-at`,
    ];
  }
  if (key.toLowerCase() === policy.exemptTag.key.toLowerCase()) {
    return [
      `expiryTag.key: ${shown} is also exemptTag.key; one tag cannot both exempt an image and expire it, so choose another key`,
    ];
  }
  if (policy.defaultTtlDays === null) return [];
  if (key.toLowerCase() === IAM_PROTECTED_TAG) {
    return [
      `expiryTag.key: ${shown} is the tag no janitor role may write, and defaultTtlDays writes the expiry tag on every new image; choose another key under ${WRITABLE_TAG_PREFIX}, e.g. ami-janitor:expires-at`,
    ];
  }
  if (!key.startsWith(WRITABLE_TAG_PREFIX)) {
    return [
      `expiryTag.key: ${shown} would be written on every new image (defaultTtlDays is set), but the deployment may write only tag keys starting with ${WRITABLE_TAG_PREFIX}, and EC2 would refuse the whole tagging call, creator tags included; use a key such as ami-janitor:expires-at, or set defaultTtlDays: null to only read ${shown}`,
    ];
  }
  return [];
}

function quoteKey(key: string): string {
  return JSON.stringify(oneLine(key, KEY_DISPLAY_CHARS));
}

function describeIssue(issue: z.core.$ZodIssue): string[] {
  if (issue.code === 'unrecognized_keys') {
    const valid = validKeysAt(issue.path);
    return issue.keys.map(
      (key) => `${formatPath([...issue.path, key])}: unknown key; valid keys are ${valid.join(', ')}`,
    );
  }
  return [`${formatPath(issue.path)}: ${oneLine(issue.message, 500)}`];
}

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(policy)';
  return path
    .map((part, index) => {
      if (typeof part === 'number') return `[${part}]`;
      // Keys come from the document: shown on one line, and only the head of a long one.
      const key = oneLine(String(part), KEY_DISPLAY_CHARS);
      return index === 0 ? key : `.${key}`;
    })
    .join('');
}

function validKeysAt(path: readonly PropertyKey[]): string[] {
  let schema: z.core.$ZodType = policySchema;
  for (const part of path) {
    const object = unwrapObject(schema);
    const next = object?.shape[String(part)];
    if (!next) return [];
    schema = next;
  }
  return Object.keys(unwrapObject(schema)?.shape ?? {});
}

function unwrapObject(schema: z.core.$ZodType): z.ZodObject | undefined {
  let current: z.core.$ZodType = schema;
  for (let depth = 0; depth < 5; depth++) {
    if (current instanceof z.ZodObject) return current;
    const inner = (current._zod.def as { innerType?: z.core.$ZodType }).innerType;
    if (!inner) return undefined;
    current = inner;
  }
  return undefined;
}
