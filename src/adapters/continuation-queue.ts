import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { Continuation } from '../core/continuation.ts';
import { clientConfig } from './clients.ts';
import { makeCall } from './common.ts';

let sqs: SQSClient | undefined;

/** Sends the hand-over to the sweep's own queue, which invokes the sweep again with it. */
export function createContinuationQueue(queueUrl: string, client?: SQSClient) {
  const call = makeCall({});
  return async (next: Continuation): Promise<void> => {
    sqs ??= new SQSClient(clientConfig());
    const sender = client ?? sqs;
    await call('SendMessage', (options) =>
      sender.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(next) }), options),
    );
  };
}
