import * as z from 'zod';
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
    if (!hasExemptTag(image.tags, policy.exemptTag)) return [];
    return [{ kind: 'keep', reason: `exempt: tagged ${policy.exemptTag.key}=${policy.exemptTag.value}` }];
  },
};

/** Case and surrounding blanks are forgiven: a hand-typed `True` must still protect the image. */
export function hasExemptTag(
  tags: Readonly<Record<string, string>>,
  exempt: { key: string; value: string },
): boolean {
  const actual = tags[exempt.key];
  return actual !== undefined && actual.trim().toLowerCase() === exempt.value.trim().toLowerCase();
}
