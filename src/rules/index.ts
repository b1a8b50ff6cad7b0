import type { Policy } from '../config/policy.ts';
import type { Decision, Finding, Image, ImageFacts } from '../model.ts';
import { age } from './age.ts';
import { backupManaged } from './backup-managed.ts';
import { dlmManaged } from './dlm-managed.ts';
import { exemptTag } from './exempt-tag.ts';
import { expiryTag } from './expiry-tag.ts';
import { inUse } from './in-use.ts';
import { keepLatest } from './keep-latest.ts';
import { notOwned } from './not-owned.ts';
import { pending } from './pending.ts';
import { deregistrationProtection } from './protected.ts';
import { requiredTags } from './required-tags.ts';
import { HOLDING_RULES, sharedImageKept, sharedInUse, sharedUseUnknown } from './shared-image.ts';
import { sharing } from './sharing.ts';
import type { Rule } from './types.ts';

/**
 * Every rule, in evaluation order. An explicit map rather than self-registration, so the bundler
 * can never drop a rule and the order that decides which reason wins is visible in one place.
 */
export const rules = {
  'not-owned': notOwned,
  pending,
  'in-use': inUse,
  protected: deregistrationProtection,
  'backup-managed': backupManaged,
  'dlm-managed': dlmManaged,
  'exempt-tag': exemptTag,
  'shared-image-kept': sharedImageKept,
  'shared-in-use': sharedInUse,
  'shared-use-unknown': sharedUseUnknown,
  'keep-latest': keepLatest,
  'expiry-tag': expiryTag,
  age,
  'required-tags': requiredTags,
  sharing,
} as const satisfies Record<string, Rule>;

export type RuleId = keyof typeof rules;

const ordered: readonly Rule[] = Object.values(rules);

/**
 * Runs every rule and settles one verdict: the first guard keep wins, then an explicit expire
 * (expiry tag), then the first retain keep, then the first eligibility expire. Every rule runs
 * regardless, so findings are never hidden by an early keep.
 *
 * A holding guard (HOLDING_RULES: a removal waiting for a fact, such as a shared image's usage
 * report) is the exception: its keep stands only where the image would otherwise expire. The
 * planner keeps the mark of a held image, so a hold on one that nothing makes eligible any more
 * (launched again, now the newest of its family) would keep a stale mark instead of unmarking it.
 */
export function evaluateImage(image: Image, facts: ImageFacts, policy: Policy, now: Date): Decision {
  const findings: Finding[] = [];
  let guardKeep: { rule: string; reason: string } | undefined;
  let hold: { rule: string; reason: string } | undefined;
  let explicitExpire: { rule: string; reason: string } | undefined;
  let retainKeep: { rule: string; reason: string } | undefined;
  let expire: { rule: string; reason: string } | undefined;
  const notYet: string[] = [];

  for (const rule of ordered) {
    for (const verdict of rule.evaluate(image, facts, policy, now)) {
      if (verdict.kind === 'flag') {
        findings.push({ rule: rule.id, severity: verdict.severity, reason: verdict.reason });
      } else if (verdict.kind === 'keep') {
        if (rule.stage === 'guard') {
          if (HOLDING_RULES.has(rule.id)) hold ??= { rule: rule.id, reason: verdict.reason };
          else guardKeep ??= { rule: rule.id, reason: verdict.reason };
        } else if (rule.stage === 'retain') retainKeep ??= { rule: rule.id, reason: verdict.reason };
        else notYet.push(verdict.reason);
      } else if (rule.stage === 'explicit') {
        explicitExpire ??= { rule: rule.id, reason: verdict.reason };
      } else if (rule.stage === 'eligibility') {
        expire ??= { rule: rule.id, reason: verdict.reason };
      }
    }
  }

  const base = { imageId: image.imageId, name: image.name, findings };
  if (guardKeep) return { ...base, verdict: 'keep', ...guardKeep };
  const removal = explicitExpire ?? (retainKeep ? undefined : expire);
  if (removal && hold) return { ...base, verdict: 'keep', ...hold };
  if (explicitExpire) return { ...base, verdict: 'expire', ...explicitExpire };
  if (retainKeep) return { ...base, verdict: 'keep', ...retainKeep };
  if (expire) return { ...base, verdict: 'expire', ...expire };
  return {
    ...base,
    verdict: 'keep',
    rule: 'not-eligible',
    reason: notYet.join('; ') || 'no rule made it eligible',
  };
}
