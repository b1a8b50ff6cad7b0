import * as z from 'zod';
import { dayCount, tagKeys } from './schema-parts.ts';
import { daysBetween, type Rule } from './types.ts';

export const requiredTagsSchema = {
  requiredTags: z
    .strictObject({
      keys: tagKeys.default([]),
      severity: z.enum(['critical', 'high', 'medium', 'low']).default('medium'),
      expireAfterDays: dayCount.nullable().default(null),
    })
    .prefault({}),
};

export const requiredTags: Rule = {
  id: 'required-tags',
  stage: 'eligibility',
  schema: requiredTagsSchema,
  evaluate(image, _facts, policy, now) {
    const { keys, severity, expireAfterDays } = policy.requiredTags;
    const missing = keys.filter((key) => !image.tags[key]?.trim());
    if (missing.length === 0) return [];
    const finding = {
      kind: 'flag',
      severity,
      reason: `missing required tags: ${missing.join(', ')}`,
    } as const;
    if (expireAfterDays === null) return [finding];
    const ageDays = daysBetween(image.creationDate, now);
    if (ageDays <= expireAfterDays) return [finding];
    return [
      finding,
      {
        kind: 'expire',
        reason: `missing required tags ${missing.join(', ')} and created ${ageDays} days ago (grace ${expireAfterDays})`,
      },
    ];
  },
};
