import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for hooks.slack.com: a real HTTP server on 127.0.0.1 that answers every POST with
 * Slack's `200 ok` and records what arrived, so a test can count and read the alerts.
 *
 * The path looks like a real webhook's (`/services/T…/B…/secret`) so the product's redaction of
 * the webhook path is exercised as it would be in production.
 */

export const SLACK_WEBHOOK_PATH = '/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX';

export interface ReceivedPost {
  method: string | undefined;
  path: string | undefined;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface LocalSlack {
  /** `http://127.0.0.1:<port>/services/…`: what the SSM parameter holds. */
  readonly url: string;
  /** Every request, in arrival order. */
  readonly received: readonly ReceivedPost[];
  /** The bodies parsed as JSON. */
  messages(): unknown[];
  close(): Promise<void>;
}

export async function startLocalSlack(): Promise<LocalSlack> {
  const received: ReceivedPost[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({
        method: request.method,
        path: request.url,
        headers: request.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.end('ok');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${SLACK_WEBHOOK_PATH}`,
    received,
    messages: () => received.map((post) => JSON.parse(post.body) as unknown),
    async close() {
      // Keep-alive sockets from the product's fetch would otherwise hold close() open.
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
