import type { Policy } from '../config/policy.ts';
import type { Decision, Image, ImageFacts, Reference } from '../model.ts';
import { buildFacts } from '../rules/family.ts';
import { evaluateImage } from '../rules/index.ts';
import { HOLDING_RULES } from '../rules/shared-image.ts';

/**
 * Images are decided in two steps, so that removal can start before every reference is known.
 * The in-use guard can only turn "expire" into "keep": an image another rule keeps stays kept
 * whatever uses it. So every image is first decided as if nothing used it; the references of the
 * images that would then be removed (`candidates`) settle the plan, and those of the others are
 * read afterwards, only so that a kept image's reason says what uses it.
 */
export interface FirstDecisions {
  facts: Map<string, ImageFacts>;
  decisions: Decision[];
  /** Images whose verdict is "expire" unless something uses them. */
  candidates: Image[];
  /** Every other image: kept, whatever uses it. */
  others: Image[];
}

export function decideBeforeReferences(
  images: readonly Image[],
  accountId: string,
  policy: Policy,
  now: Date,
): FirstDecisions {
  const facts = buildFacts(images, new Map(), accountId, policy.keepLatest.familyTags);
  const first: FirstDecisions = { facts, decisions: [], candidates: [], others: [] };
  for (const image of images) {
    const imageFacts = facts.get(image.imageId);
    if (!imageFacts) continue;
    const decision = evaluateImage(image, imageFacts, policy, now);
    first.decisions.push(decision);
    // A held removal (a shared image waiting on its use elsewhere) is still on its way out.
    const going = decision.verdict === 'expire' || HOLDING_RULES.has(decision.rule);
    (going ? first.candidates : first.others).push(image);
  }
  return first;
}

/** `decisions` with every image that something uses decided again, knowing what uses it. */
export function withReferences(
  decisions: readonly Decision[],
  images: ReadonlyMap<string, Image>,
  first: Pick<FirstDecisions, 'facts'>,
  references: ReadonlyMap<string, readonly Reference[]>,
  policy: Policy,
  now: Date,
): Decision[] {
  return decisions.map((decision) => {
    const used = references.get(decision.imageId);
    const image = images.get(decision.imageId);
    const facts = first.facts.get(decision.imageId);
    if (!used?.length || !image || !facts) return decision;
    return evaluateImage(image, { ...facts, references: used }, policy, now);
  });
}
