import * as z from 'zod';
import { tagKey } from './schema-parts.ts';
import { isoDay, type Rule } from './types.ts';

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;

/** `2026-12-31` means the end of that day (UTC); a full ISO timestamp is taken as written. */
export function parseExpiry(value: string): Date | undefined {
  const trimmed = value.trim();
  const parsed = DATE_ONLY.test(trimmed) ? new Date(`${trimmed}T23:59:59.999Z`) : new Date(trimmed);
  return Number.isNaN(parsed.getTime()) || !/^\d{4}-/.test(trimmed) ? undefined : parsed;
}

export const expiryTagSchema = {
  expiryTag: z.strictObject({ key: tagKey.default('ami-janitor:expires-at') }).prefault({}),
};

export const expiryTag: Rule = {
  id: 'expiry-tag',
  stage: 'explicit',
  schema: expiryTagSchema,
  evaluate(image, _facts, policy, now) {
    const { key } = policy.expiryTag;
    const value = image.tags[key];
    if (value === undefined) return [];
    const expiresAt = parseExpiry(value);
    if (!expiresAt) {
      return [
        {
          kind: 'flag',
          severity: 'low',
          reason: `tag ${key}=${value} is not a date (expected YYYY-MM-DD); ignored`,
        },
      ];
    }
    if (expiresAt.getTime() > now.getTime()) {
      return [{ kind: 'keep', reason: `expiry tag ${key} is ${isoDay(expiresAt)}, not yet reached` }];
    }
    return [{ kind: 'expire', reason: `expiry tag ${key}=${value} has passed` }];
  },
};
