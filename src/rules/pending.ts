import type { Rule } from './types.ts';

const UNSETTLED = new Set(['pending', 'transient']);

export const pending: Rule = {
  id: 'pending',
  stage: 'guard',
  schema: {},
  evaluate(image) {
    if (!UNSETTLED.has(image.state)) return [];
    return [
      {
        kind: 'keep',
        reason: `image is still ${image.state}; it may be in the middle of being created or copied`,
      },
    ];
  },
};
