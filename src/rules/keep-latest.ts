import * as z from 'zod';
import { tagKeys } from './schema-parts.ts';
import type { Rule } from './types.ts';

/** Far more releases of one family than anyone keeps on purpose. */
export const MAX_KEEP_LATEST = 1000;

export const keepLatestSchema = {
  keepLatest: z
    .strictObject({
      count: z.number().int().min(0).max(MAX_KEEP_LATEST, `at most ${MAX_KEEP_LATEST}`).default(2),
      familyTags: tagKeys.default([]),
    })
    .prefault({}),
};

export const keepLatest: Rule = {
  id: 'keep-latest',
  stage: 'retain',
  schema: keepLatestSchema,
  evaluate(_image, facts, policy) {
    const { count } = policy.keepLatest;
    if (facts.familyRank > count) return [];
    return [
      {
        kind: 'keep',
        reason: `newest ${facts.familyRank} of ${facts.familySize} in family ${facts.family} (keeps the latest ${count})`,
      },
    ];
  },
};
