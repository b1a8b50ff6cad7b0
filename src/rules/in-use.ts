import type { Reference } from '../model.ts';
import type { Rule } from './types.ts';

const LISTED = 3;

export function describeReferences(references: readonly Reference[]): string {
  const listed = references.slice(0, LISTED).map((ref) => {
    const detail = ref.detail ? ` (${ref.detail})` : '';
    return `${ref.resourceType} ${ref.resource}${detail}`;
  });
  const more = references.length > LISTED ? ` and ${references.length - LISTED} more` : '';
  return `${listed.join(', ')}${more}`;
}

export const inUse: Rule = {
  id: 'in-use',
  stage: 'guard',
  schema: {},
  evaluate(_image, facts) {
    if (facts.references.length === 0) return [];
    const count = facts.references.length;
    return [
      {
        kind: 'keep',
        reason: `in use by ${count} resource${count === 1 ? '' : 's'}: ${describeReferences(facts.references)}`,
      },
    ];
  },
};
