import { CreateTableCommand, DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { beforeEach, expect, it } from 'vitest';
import {
  createDynamoSweepLock,
  LOCK_KEY_ATTRIBUTE,
  LOCK_TTL_ATTRIBUTE,
} from '../../src/adapters/sweep-lock.ts';
import { lockClaim } from '../../src/core/sweep-lock.ts';
import { describeWithMoto, MOTO_REGION } from './moto.ts';

/**
 * The sweep lock against a real conditional write: moto's DynamoDB evaluates the same condition
 * expression as DynamoDB, so two sweeps racing for one account-Region get one lock between them.
 */

const TABLE = 'ami-janitor-test-sweep-locks';
const NOW = new Date('2026-12-01T06:00:00.000Z');

function claim(runId: string, now = NOW) {
  return lockClaim({
    accountId: '111122223333',
    region: 'eu-west-1',
    runId,
    holder: `holder of ${runId}`,
    now,
    remainingMs: 600_000,
  });
}

describeWithMoto('the sweep lock on DynamoDB', (moto) => {
  let dynamodb: DynamoDBClient;

  beforeEach(async () => {
    await moto.reset();
    dynamodb = new DynamoDBClient({
      endpoint: moto.endpoint,
      region: MOTO_REGION,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    // As serverless.yml declares it.
    await dynamodb.send(
      new CreateTableCommand({
        TableName: TABLE,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [{ AttributeName: LOCK_KEY_ATTRIBUTE, AttributeType: 'S' }],
        KeySchema: [{ AttributeName: LOCK_KEY_ATTRIBUTE, KeyType: 'HASH' }],
      }),
    );
  });

  it('gives one of eight sweeps starting together the lock, and tells the others who holds it', async () => {
    const lock = createDynamoSweepLock({ tableName: TABLE, dynamodb });
    const outcomes = await Promise.all(
      Array.from({ length: 8 }, (_, index) => lock.acquire(claim(`run-${index}`))),
    );
    const winners = outcomes.flatMap((outcome, index) => (outcome.acquired ? [index] : []));
    expect(winners).toHaveLength(1);
    const winner = `run-${winners[0]}`;
    for (const outcome of outcomes) {
      if (!outcome.acquired) {
        expect(outcome.current).toEqual({
          key: '111122223333/eu-west-1',
          runId: winner,
          holder: `holder of ${winner}`,
          acquiredAt: NOW.toISOString(),
          expiresAt: claim(winner).expiresAt.toISOString(),
        });
      }
    }
    const item = await dynamodb.send(
      new GetItemCommand({
        TableName: TABLE,
        Key: { [LOCK_KEY_ATTRIBUTE]: { S: '111122223333/eu-west-1' } },
      }),
    );
    // DynamoDB's TTL deletes it some time after it expired, in seconds since the epoch.
    expect(item.Item?.[LOCK_TTL_ATTRIBUTE]).toEqual({
      N: String(Math.ceil(claim(winner).expiresAt.getTime() / 1000)),
    });

    // Released, it is free for the next sweep.
    const won = outcomes[winners[0] ?? 0];
    if (won?.acquired) await won.release();
    const next = await lock.acquire(claim('run-next'));
    expect(next.acquired).toBe(true);
  });

  it('lets the same run take its own lock back, and anyone take an expired one', async () => {
    const lock = createDynamoSweepLock({ tableName: TABLE, dynamodb });
    const first = await lock.acquire(claim('run-a'));
    expect(first.acquired).toBe(true);
    expect((await lock.acquire(claim('run-b'))).acquired).toBe(false);
    // The run's continuation, or a retry after an invocation that died holding it.
    const again = await lock.acquire(claim('run-a'));
    expect(again.acquired).toBe(true);

    // Past its expiry another run takes it, and the old holder's release leaves the new lock alone.
    const later = new Date(claim('run-a').expiresAt.getTime() + 1_000);
    const takeover = await lock.acquire(claim('run-b', later));
    expect(takeover.acquired).toBe(true);
    if (again.acquired) await again.release();
    const refused = await lock.acquire(claim('run-c', later));
    expect(refused).toMatchObject({ acquired: false, current: { runId: 'run-b' } });
  });

  it('fails, rather than answering free, when the table does not exist', async () => {
    const lock = createDynamoSweepLock({ tableName: 'no-such-table', dynamodb });
    await expect(lock.acquire(claim('run-a'))).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });
});
