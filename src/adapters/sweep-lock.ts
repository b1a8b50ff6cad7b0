import { randomUUID } from 'node:crypto';
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { Log } from '../core/ports.ts';
import type { LockRecord, SweepLockPort } from '../core/sweep-lock.ts';
import { errorCode } from '../errors.ts';
import { clientConfig } from './clients.ts';
import { withRetry } from './retry.ts';

/**
 * The sweep lock as one DynamoDB item per account-Region, taken by a conditional write: the item
 * is absent, expired, or this run's own. DynamoDB evaluates the condition and the write as one,
 * so of two sweeps starting together exactly one gets the lock. The table's TTL attribute lets
 * DynamoDB delete expired items; the condition never relies on it, as that deletion may lag.
 */

export interface DynamoSweepLockDeps {
  tableName: string;
  dynamodb?: DynamoDBClient;
  signal?: AbortSignal;
  log?: Log;
}

/** The key attribute and the TTL attribute, as serverless.yml declares the table. */
export const LOCK_KEY_ATTRIBUTE = 'lockKey';
export const LOCK_TTL_ATTRIBUTE = 'expiresAtEpoch';

let sharedClient: DynamoDBClient | undefined;

export function createDynamoSweepLock(deps: DynamoSweepLockDeps): SweepLockPort {
  const client = () => {
    if (deps.dynamodb) return deps.dynamodb;
    sharedClient ??= new DynamoDBClient(clientConfig());
    return sharedClient;
  };
  const sendOptions = deps.signal ? { abortSignal: deps.signal } : {};
  const retry = (operation: string) => ({
    operation,
    ...(deps.signal ? { signal: deps.signal } : {}),
    ...(deps.log ? { log: deps.log } : {}),
  });
  const key = (lockKey: string) => ({ [LOCK_KEY_ATTRIBUTE]: { S: lockKey } });

  async function read(lockKey: string): Promise<LockRecord | undefined> {
    const output = await withRetry(
      () =>
        client().send(
          new GetItemCommand({ TableName: deps.tableName, Key: key(lockKey), ConsistentRead: true }),
          sendOptions,
        ),
      retry('GetItem'),
    );
    return output.Item ? recordOf(output.Item) : undefined;
  }

  return {
    async acquire(claim) {
      const token = randomUUID();
      try {
        await withRetry(
          () =>
            client().send(
              new PutItemCommand({
                TableName: deps.tableName,
                Item: {
                  ...key(claim.key),
                  token: { S: token },
                  runId: { S: claim.runId },
                  holder: { S: claim.holder },
                  acquiredAt: { S: claim.acquiredAt.toISOString() },
                  expiresAt: { S: claim.expiresAt.toISOString() },
                  expiresAtMs: { N: String(claim.expiresAt.getTime()) },
                  [LOCK_TTL_ATTRIBUTE]: { N: String(Math.ceil(claim.expiresAt.getTime() / 1000)) },
                },
                // mayTake in src/core/sweep-lock.ts, as one atomic condition.
                ConditionExpression: 'attribute_not_exists(#key) OR #runId = :runId OR #expiresAtMs < :now',
                ExpressionAttributeNames: {
                  '#key': LOCK_KEY_ATTRIBUTE,
                  '#runId': 'runId',
                  '#expiresAtMs': 'expiresAtMs',
                },
                ExpressionAttributeValues: {
                  ':runId': { S: claim.runId },
                  ':now': { N: String(claim.acquiredAt.getTime()) },
                },
              }),
              sendOptions,
            ),
          retry('PutItem'),
        );
      } catch (error) {
        if (!isConditionFailed(error)) throw error;
        return { acquired: false, current: await read(claim.key) };
      }
      return {
        acquired: true,
        // Only while it is still ours: past its expiry another run may have taken it over.
        release: async () => {
          try {
            await withRetry(
              () =>
                client().send(
                  new DeleteItemCommand({
                    TableName: deps.tableName,
                    Key: key(claim.key),
                    ConditionExpression: '#token = :token',
                    ExpressionAttributeNames: { '#token': 'token' },
                    ExpressionAttributeValues: { ':token': { S: token } },
                  }),
                  sendOptions,
                ),
              retry('DeleteItem'),
            );
          } catch (error) {
            if (!isConditionFailed(error)) throw error;
          }
        },
      };
    },
  };
}

function isConditionFailed(error: unknown): boolean {
  return (
    error instanceof ConditionalCheckFailedException || errorCode(error) === 'ConditionalCheckFailedException'
  );
}

function recordOf(item: Record<string, AttributeValue>): LockRecord {
  const text = (name: string) => item[name]?.S ?? '';
  return {
    key: text(LOCK_KEY_ATTRIBUTE),
    runId: text('runId'),
    holder: text('holder'),
    acquiredAt: text('acquiredAt'),
    expiresAt: text('expiresAt'),
  };
}
