import { dayCount } from './schema-parts.ts';
import { daysBetween, type Rule } from './types.ts';

export const ageSchema = {
  maxAgeDays: dayCount.default(90),
  unusedDays: dayCount.default(30),
};

export const age: Rule = {
  id: 'age',
  stage: 'eligibility',
  schema: ageSchema,
  evaluate(image, _facts, policy, now) {
    const { maxAgeDays, unusedDays } = policy;
    const ageDays = daysBetween(image.creationDate, now);
    const lastUse = image.lastLaunchedTime;
    const idleDays = daysBetween(lastUse ?? image.creationDate, now);
    const usage = lastUse ? `last launched ${idleDays} days ago` : 'never launched';
    if (ageDays <= maxAgeDays) {
      return [{ kind: 'keep', reason: `created ${ageDays} days ago (limit ${maxAgeDays})` }];
    }
    if (idleDays <= unusedDays) {
      return [{ kind: 'keep', reason: `created ${ageDays} days ago but ${usage} (limit ${unusedDays})` }];
    }
    return [
      {
        kind: 'expire',
        reason: `created ${ageDays} days ago (limit ${maxAgeDays}) and ${usage} (limit ${unusedDays})`,
      },
    ];
  },
};
