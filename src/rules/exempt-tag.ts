import { z } from 'zod';
import { tagKey } from './schema-parts.ts';
import type { Rule } from './types.ts';

export const exemptTagSchema = {
  exemptTag: z
    .strictObject({
      key: tagKey.default('ami-janitor:keep'),
      value: z.string().max(256).default('true'),
    })
    .prefault({}),
};

export const exemptTag: Rule = {
  id: 'exempt-tag',
  stage: 'guard',
  schema: exemptTagSchema,
  evaluate(image, _facts, policy) {
    const { key, value } = policy.exemptTag;
    // Case and surrounding blanks are forgiven: a hand-typed `True` must still protect the image.
    const actual = image.tags[key];
    if (actual === undefined || actual.trim().toLowerCase() !== value.trim().toLowerCase()) return [];
    return [{ kind: 'keep', reason: `exempt: tagged ${key}=${value}` }];
  },
};
