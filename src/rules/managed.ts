import type { Rule } from './types.ts';

export const BACKUP_TAG_PREFIX = 'aws:backup:source-resource';
export const DLM_TAG_PREFIX = 'aws:dlm:';

/** The first tag key that shows another AWS service manages the resource's lifetime. */
export function managedTag(tags: Readonly<Record<string, string>>, prefix: string): string | undefined {
  return Object.keys(tags).find((key) => key.startsWith(prefix));
}

/** A guard for images another AWS service manages: that service's own policy owns their lifetime. */
export function managedByTagPrefix(id: string, prefix: string, owner: string): Rule {
  return {
    id,
    stage: 'guard',
    schema: {},
    evaluate(image) {
      const tag = managedTag(image.tags, prefix);
      if (!tag) return [];
      return [{ kind: 'keep', reason: `managed by ${owner} (tag ${tag}); its own policy owns retention` }];
    },
  };
}
