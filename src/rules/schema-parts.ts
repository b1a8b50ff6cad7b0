import * as z from 'zod';

/** Building blocks for rule schemas, so every rule validates days and tag keys the same way. */
export const dayCount = z.number().int().min(0);
export const tagKey = z.string().min(1).max(128);
