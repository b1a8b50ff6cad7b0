import { createServer, type Server, type Socket } from 'node:net';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { clientConfig, createAwsClients } from '../../src/adapters/clients.ts';
import {
  CONNECTION_TIMEOUT_MS,
  clientTimeouts,
  REQUEST_TIMEOUT_MS,
  requestHandlerOptions,
  SOCKET_TIMEOUT_MS,
} from '../../src/adapters/http.ts';

/** Every configuration an SDK client in this process was constructed with, by client name. */
const built = vi.hoisted(() => [] as { client: string; config: unknown }[]);

// biome-ignore lint/suspicious/noExplicitAny: TypeScript requires mixin constructors to take any[].
type ClientClass = new (...args: any[]) => object;

/** Wraps a client class so its construction is recorded; everything else is the real SDK. */
function recording<C extends ClientClass>(name: string, Original: C): C {
  return class extends Original {
    // biome-ignore lint/suspicious/noExplicitAny: TypeScript requires mixin constructors to take any[].
    constructor(...args: any[]) {
      super(...args);
      built.push({ client: name, config: args[0] });
    }
  };
}

vi.mock('@aws-sdk/client-ec2', async (importOriginal) => {
  const sdk = await importOriginal<typeof import('@aws-sdk/client-ec2')>();
  return { ...sdk, EC2Client: recording('EC2', sdk.EC2Client) };
});
vi.mock('@aws-sdk/client-auto-scaling', async (importOriginal) => {
  const sdk = await importOriginal<typeof import('@aws-sdk/client-auto-scaling')>();
  return { ...sdk, AutoScalingClient: recording('AutoScaling', sdk.AutoScalingClient) };
});
vi.mock('@aws-sdk/client-ssm', async (importOriginal) => {
  const sdk = await importOriginal<typeof import('@aws-sdk/client-ssm')>();
  return { ...sdk, SSMClient: recording('SSM', sdk.SSMClient) };
});
vi.mock('@aws-sdk/client-sts', async (importOriginal) => {
  const sdk = await importOriginal<typeof import('@aws-sdk/client-sts')>();
  return { ...sdk, STSClient: recording('STS', sdk.STSClient) };
});
vi.mock('@aws-sdk/client-cloudtrail', async (importOriginal) => {
  const sdk = await importOriginal<typeof import('@aws-sdk/client-cloudtrail')>();
  return { ...sdk, CloudTrailClient: recording('CloudTrail', sdk.CloudTrailClient) };
});

const EXPECTED_HANDLER = {
  connectionTimeout: CONNECTION_TIMEOUT_MS,
  requestTimeout: REQUEST_TIMEOUT_MS,
  throwOnRequestTimeout: true,
  socketTimeout: SOCKET_TIMEOUT_MS,
};

describe('client timeouts', () => {
  it('builds every client in src/adapters with connection, request and socket timeouts that throw', async () => {
    // Prepare
    built.length = 0;
    const clients = createAwsClients({ region: 'eu-west-1' });

    // Act
    for (const client of [clients.ec2, clients.autoScaling, clients.ssm, clients.sts, clients.cloudTrail]) {
      expect(client).toBeDefined();
    }

    // Assess
    expect(built.map((entry) => entry.client).sort()).toEqual([
      'AutoScaling',
      'CloudTrail',
      'EC2',
      'SSM',
      'STS',
    ]);
    for (const { client, config } of built) {
      expect(config, client).toMatchObject({ maxAttempts: 1, requestHandler: EXPECTED_HANDLER });
    }
  });

  it('hands each client its own copy of the options, and keeps the region', () => {
    // Act
    const first = clientConfig({ region: 'us-east-1' });
    const second = clientTimeouts();

    // Assess
    expect(first).toMatchObject({ region: 'us-east-1', requestHandler: EXPECTED_HANDLER });
    expect(second.requestHandler).toEqual(requestHandlerOptions());
    expect(second.requestHandler).not.toBe(first.requestHandler);
  });

  it('keeps a large DescribeImages page (a few seconds) well inside the request timeout', () => {
    expect(REQUEST_TIMEOUT_MS).toBeGreaterThanOrEqual(10_000);
    expect(CONNECTION_TIMEOUT_MS).toBeLessThan(REQUEST_TIMEOUT_MS);
  });
});

describe('against a server that accepts and never answers', () => {
  let server: Server;
  const sockets = new Set<Socket>();
  let endpoint = '';

  beforeEach(async () => {
    server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((ready) => server.listen(0, '127.0.0.1', () => ready()));
    const address = server.address();
    endpoint = address !== null && typeof address === 'object' ? `http://127.0.0.1:${address.port}` : '';
  });

  afterEach(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((done) => server.close(() => done()));
  });

  it('fails the request with a TimeoutError once the request timeout passes, instead of waiting', async () => {
    // Prepare: the shipped options, with a request timeout short enough for a unit test.
    const sts = new STSClient({
      endpoint,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      maxAttempts: 1,
      requestHandler: { ...requestHandlerOptions(), requestTimeout: 200 },
    });
    const started = performance.now();

    // Act
    const outcome = sts.send(new GetCallerIdentityCommand({}));

    // Assess
    await expect(outcome).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(performance.now() - started).toBeLessThan(3_000);
    sts.destroy();
  });
});
