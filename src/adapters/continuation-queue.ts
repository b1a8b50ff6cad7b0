import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { Continuation } from '../core/continuation.ts';
import { makeCall } from './common.ts';

const sqs = new SQSClient({ maxAttempts: 1 });

/** Sends the hand-over to the sweep's own queue, which invokes the sweep again with it. */
export function createContinuationQueue(queueUrl: string, client: SQSClient = sqs) {
  const call = makeCall({});
  return async (next: Continuation): Promise<void> => {
    await call('SendMessage', (options) =>
      client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(next) }), options),
    );
  };
}
