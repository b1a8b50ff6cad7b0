import type { Rule } from './types.ts';

export const deregistrationProtection: Rule = {
  id: 'protected',
  stage: 'guard',
  schema: {},
  evaluate(image) {
    const setting = image.deregistrationProtection;
    // `disabled-until-<date>` (cooldown after switching it off) still blocks DeregisterImage.
    if (!setting || setting === 'disabled') return [];
    return [{ kind: 'keep', reason: `deregistration protection is ${setting}` }];
  },
};
