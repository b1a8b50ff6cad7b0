import type { Rule } from './types.ts';

export const notOwned: Rule = {
  id: 'not-owned',
  stage: 'guard',
  schema: {},
  evaluate(image, facts) {
    if (image.ownerId === facts.accountId) return [];
    return [
      { kind: 'keep', reason: `owned by account ${image.ownerId}, not by this account (${facts.accountId})` },
    ];
  },
};
