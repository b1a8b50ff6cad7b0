import * as z from 'zod';

/**
 * Building blocks for rule schemas, so every rule validates days, caps and tag keys the same way.
 * Every number has an upper bound: an unbounded one ran date arithmetic past the last date a
 * JavaScript Date can hold, which threw instead of planning.
 */

/** A hundred years: longer than any image is kept, and far inside what a Date can hold. */
export const MAX_DAYS = 36_500;
export const dayCount = z.number().int().min(0).max(MAX_DAYS, `at most ${MAX_DAYS} days (100 years)`);

/** More than any Region holds (the default quotas are 50,000 images and 100,000 snapshots). */
export const MAX_PER_RUN = 1_000_000;
export const perRunCap = z
  .number()
  .int()
  .min(0)
  .max(MAX_PER_RUN, `at most ${MAX_PER_RUN} per run (more than any Region holds)`);

export const tagKey = z.string().min(1).max(128);

/** EBS bills an archived snapshot for 90 days at least, however soon it is deleted. */
export const ARCHIVE_MINIMUM_DAYS = 90;

/** An EC2 resource carries at most 50 tags, so a longer list of keys could never all be present. */
export const MAX_TAG_KEYS = 50;
export const tagKeys = z
  .array(tagKey)
  .max(MAX_TAG_KEYS, `at most ${MAX_TAG_KEYS} tag keys (an EC2 resource carries at most 50 tags)`);
