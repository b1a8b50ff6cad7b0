import * as z from 'zod';
import { PolicyError } from '../errors.ts';
import { ageSchema } from '../rules/age.ts';
import { exemptTagSchema } from '../rules/exempt-tag.ts';
import { expiryTagSchema } from '../rules/expiry-tag.ts';
import { keepLatestSchema } from '../rules/keep-latest.ts';
import { requiredTagsSchema } from '../rules/required-tags.ts';
import { dayCount } from '../rules/schema-parts.ts';
import { sharingSchema } from '../rules/sharing.ts';
import { snapshotSchema } from '../rules/snapshot-orphan.ts';

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
  graceDays: dayCount.default(7),
  maxRemovalsPerRun: z.number().int().min(0).default(100),
  maxRemovalsPercent: z.number().gt(0).max(100).nullable().default(null),
  deleteSnapshots: z.boolean().default(true),
  /** The Slack digest after a scheduled sweep: only when something changed, after every sweep, or never. */
  digest: z.enum(['changes', 'always', 'never']).default('changes'),
  /** New images get `ami-janitor:expires-at` = creation + this many days, unless already tagged. */
  defaultTtlDays: z.number().int().min(1).nullable().default(null),
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

export function defaultPolicy(): Policy {
  return policySchema.parse({});
}

/** Validates a parsed policy document. Throws PolicyError naming every bad path. */
export function parsePolicy(document: unknown): Policy {
  const result = policySchema.safeParse(document ?? {});
  if (result.success) return result.data;
  throw new PolicyError(result.error.issues.map(describeIssue), { cause: result.error });
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    const valid = validKeysAt(issue.path);
    return issue.keys
      .map((key) => `${formatPath([...issue.path, key])}: unknown key; valid keys are ${valid.join(', ')}`)
      .join('\n  - ');
  }
  return `${formatPath(issue.path)}: ${issue.message}`;
}

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(policy)';
  return path
    .map((part, index) =>
      typeof part === 'number' ? `[${part}]` : index === 0 ? String(part) : `.${String(part)}`,
    )
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
