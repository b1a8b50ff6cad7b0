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
    if (hasExemptTag(image.tags, policy.exemptTag)) {
      return [{ kind: 'keep', reason: `exempt: tagged ${policy.exemptTag.key}=${policy.exemptTag.value}` }];
    }
    // Not an exemption, but plainly meant as one: kept until a person fixes the value.
    const nearMiss = exemptTagNearMiss(image.tags, policy.exemptTag);
    if (!nearMiss) return [];
    return [
      { kind: 'keep', reason: `kept: ${nearMiss}` },
      { kind: 'flag', severity: 'medium', reason: nearMiss },
    ];
  },
};

/**
 * One rule for the code and for the deployment's IAM deny (`StringEqualsIgnoreCase`): the value
 * must equal the configured one, ignoring case. Blanks are not forgiven, because IAM cannot
 * forgive them, and an exemption that only the code honours would fail in the one place it is
 * meant as the last line of defence.
 */
export function hasExemptTag(
  tags: Readonly<Record<string, string>>,
  exempt: { key: string; value: string },
): boolean {
  const actual = tags[exempt.key];
  return actual !== undefined && actual.toLowerCase() === exempt.value.toLowerCase();
}

/**
 * A value that differs from the exempt one only by blanks. Someone meant to exempt the resource,
 * so the janitor keeps it too and says how to fix the tag; the IAM deny does not cover it.
 */
export function exemptTagNearMiss(
  tags: Readonly<Record<string, string>>,
  exempt: { key: string; value: string },
): string | undefined {
  const actual = tags[exempt.key];
  if (actual === undefined || hasExemptTag(tags, exempt)) return undefined;
  if (actual.trim().toLowerCase() !== exempt.value.trim().toLowerCase()) return undefined;
  return `tag ${exempt.key}=${JSON.stringify(actual)} looks meant as an exemption, but only the value ${JSON.stringify(exempt.value)} (any case, no blanks) is one; fix the value`;
}
