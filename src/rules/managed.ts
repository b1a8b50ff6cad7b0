import type { Rule } from './types.ts';

/** A guard for images another AWS service manages: that service's own policy owns their lifetime. */
export function managedByTagPrefix(id: string, prefix: string, owner: string): Rule {
  return {
    id,
    stage: 'guard',
    schema: {},
    evaluate(image) {
      const tag = Object.keys(image.tags).find((key) => key.startsWith(prefix));
      if (!tag) return [];
      return [{ kind: 'keep', reason: `managed by ${owner} (tag ${tag}); its own policy owns retention` }];
    },
  };
}
