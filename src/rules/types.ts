import type { z } from 'zod';
import type { Policy } from '../config/policy.ts';
import type { Image, ImageFacts, Verdict } from '../model.ts';

/**
 * `guard`: a keep here overrides everything (in use, protected, exempt, ...).
 * `explicit`: an expire here is a person's stated intent for this one image and beats `retain`.
 * `retain`: a keep here overrides age-style eligibility (keep-latest).
 * `eligibility`: an expire here makes the image a removal candidate; a keep is only an explanation.
 * `audit`: findings only; never changes the verdict.
 * Any stage may add `flag` verdicts, which become findings whatever the outcome.
 */
export type Stage = 'guard' | 'explicit' | 'retain' | 'eligibility' | 'audit';

export interface Rule {
  readonly id: string;
  readonly stage: Stage;
  /** The policy keys this rule owns; composed into the one policy schema. */
  readonly schema: Readonly<Record<string, z.ZodType>>;
  evaluate(image: Image, facts: ImageFacts, policy: Policy, now: Date): readonly Verdict[];
}

export const DAY_MS = 86_400_000;

export function daysBetween(earlier: Date, later: Date): number {
  return Math.floor((later.getTime() - earlier.getTime()) / DAY_MS);
}

export function isoDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}
