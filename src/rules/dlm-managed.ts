import type { Rule } from './types.ts';

const DLM_TAG_PREFIX = 'aws:dlm:';

export const dlmManaged: Rule = {
  id: 'dlm-managed',
  stage: 'guard',
  schema: {},
  evaluate(image) {
    const tag = Object.keys(image.tags).find((key) => key.startsWith(DLM_TAG_PREFIX));
    if (!tag) return [];
    return [
      { kind: 'keep', reason: `managed by Data Lifecycle Manager (tag ${tag}); its policy owns retention` },
    ];
  },
};
