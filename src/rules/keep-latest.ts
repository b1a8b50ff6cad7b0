import * as z from 'zod';
import { tagKey } from './schema-parts.ts';
import type { Rule } from './types.ts';

export const keepLatestSchema = {
  keepLatest: z
    .strictObject({
      count: z.number().int().min(0).default(2),
      familyTags: z.array(tagKey).default([]),
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
