import * as z from 'zod';
import type { Caller } from '../model.ts';

/** The part of CloudTrail's `userIdentity` this product reads. */
export type UserIdentity = z.infer<typeof userIdentitySchema>;

const optionalString = z.string().optional();

/** The schema of `UserIdentity`; every field is optional because CloudTrail omits them freely. */
export const userIdentitySchema = z.looseObject({
  type: optionalString,
  arn: optionalString,
  principalId: optionalString,
  accountId: optionalString,
  invokedBy: optionalString,
  userName: optionalString,
  sessionContext: z
    .looseObject({
      sessionIssuer: z
        .looseObject({ type: optionalString, arn: optionalString, userName: optionalString })
        .optional(),
    })
    .optional(),
});

/**
 * Resolves the principal a human should ask about a change. An assumed-role session ARN names a
 * short-lived session, so the role behind it (the session issuer) is the durable answer, with the
 * session name kept beside it because it is often the person's login.
 */
export function resolveCaller(
  identity: UserIdentity,
  context: { sourceIp?: string | undefined; userAgent?: string | undefined } = {},
): Caller {
  const type = identity.type ?? 'Unknown';
  const extras = {
    ...(identity.accountId ? { accountId: identity.accountId } : {}),
    ...(context.sourceIp ? { sourceIp: context.sourceIp } : {}),
    ...(context.userAgent ? { userAgent: context.userAgent } : {}),
  };
  const issuer = identity.sessionContext?.sessionIssuer?.arn;
  if ((type === 'AssumedRole' || type === 'FederatedUser') && issuer) {
    const sessionName = sessionNameOf(identity.arn);
    return { arn: issuer, type, ...(sessionName ? { sessionName } : {}), ...extras };
  }
  if (type === 'AWSService') {
    return { arn: identity.invokedBy ?? context.sourceIp ?? 'an AWS service', type, ...extras };
  }
  if (type === 'Root' && !identity.arn && identity.accountId) {
    return { arn: `arn:aws:iam::${identity.accountId}:root`, type, ...extras };
  }
  return { arn: identity.arn ?? identity.invokedBy ?? identity.principalId ?? 'unknown', type, ...extras };
}

/** `arn:aws:sts::123:assumed-role/Role/session` → `session`. */
function sessionNameOf(arn: string | undefined): string | undefined {
  if (!arn) return undefined;
  const parts = arn.split('/');
  return parts.length >= 3 ? parts.slice(2).join('/') : undefined;
}

/** How a caller reads in a tag or a message: the principal, plus the session where there is one. */
export function describeCaller(caller: Caller): string {
  return caller.sessionName ? `${caller.arn} (session ${caller.sessionName})` : caller.arn;
}
