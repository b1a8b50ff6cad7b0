import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EC2Client, ListImagesInRecycleBinCommand } from '@aws-sdk/client-ec2';
import { SignatureV4 } from '@smithy/signature-v4';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { requestHandlerOptions } from '../../src/adapters/http.ts';
import {
  awsJsonErrorCode,
  createRecycleBin,
  type RecycleBinDeps,
  rbinEndpoint,
} from '../../src/adapters/recycle-bin.ts';
import { UnsupportedApiError } from '../../src/errors.ts';
import { awsError, recordingLog, recordingSleep, unparseableServerError } from './aws-fakes.ts';

/**
 * The Recycle Bin port: ListImagesInRecycleBin through the mocked EC2 client, and the rbin REST-JSON
 * calls against a real HTTP server on 127.0.0.1, so what is signed and sent is what arrives.
 */

const ec2Mock = mockClient(EC2Client);

const CREDENTIALS = { accessKeyId: 'AKIDRECYCLEBINTEST', secretAccessKey: 'recycle-bin-test-secret' };
const REGION = 'eu-west-1';

/** Built as clients.ts builds them, with a request timeout short enough for a test to wait out. */
function ec2Client(requestTimeout = 12_000): EC2Client {
  return new EC2Client({
    region: REGION,
    credentials: CREDENTIALS,
    maxAttempts: 1,
    requestHandler: { ...requestHandlerOptions(), requestTimeout },
  });
}

interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
  /** Never answer. */
  hang?: boolean;
}

const servers: Server[] = [];

/** A stand-in for rbin.<region>.amazonaws.com: `route` answers each request. */
async function fakeRbin(route: (request: Received) => Reply) {
  const received: Received[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const entry = {
        method: request.method ?? '',
        path: request.url ?? '',
        headers: request.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      received.push(entry);
      const reply = route(entry);
      if (reply.hang) return;
      const body = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body ?? {});
      response.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
      response.end(body);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { endpoint: `http://127.0.0.1:${port}`, received };
}

/** ListRules answers by resource type and page token, GetRule by identifier. */
function rbinRoutes(options: {
  pages: Record<string, { Rules: { Identifier: string }[]; NextToken?: string }[]>;
  rules: Record<string, Reply>;
}) {
  return (request: Received): Reply => {
    if (request.method === 'POST' && request.path === '/list-rules') {
      const input = JSON.parse(request.body) as { ResourceType: string; NextToken?: string };
      const pages = options.pages[input.ResourceType] ?? [{ Rules: [] }];
      const index = input.NextToken === undefined ? 0 : Number(input.NextToken.replace('page-', ''));
      return { status: 200, body: pages[index] };
    }
    const match = /^\/rules\/([^/]+)$/.exec(request.path);
    if (request.method === 'GET' && match?.[1]) {
      return options.rules[decodeURIComponent(match[1])] ?? notFound(match[1]);
    }
    return { status: 404, body: '' };
  };
}

function notFound(identifier: string): Reply {
  return {
    status: 404,
    headers: { 'x-amzn-errortype': 'ResourceNotFoundException' },
    body: { message: `rule ${identifier} not found`, Reason: 'RULE_NOT_FOUND' },
  };
}

function getRule(fields: Record<string, unknown>): Reply {
  return {
    status: 200,
    body: { RetentionPeriod: { RetentionPeriodValue: 7, RetentionPeriodUnit: 'DAYS' }, ...fields },
  };
}

let sleeper: ReturnType<typeof recordingSleep>;

function recycleBin(overrides: Partial<RecycleBinDeps> = {}) {
  return createRecycleBin({
    ec2: ec2Client(),
    retry: { sleep: sleeper.sleep, maxAttempts: 4, random: () => 0.5 },
    log: recordingLog(),
    env: {},
    ...overrides,
  });
}

beforeEach(() => {
  ec2Mock.reset();
  sleeper = recordingSleep();
});

afterEach(async () => {
  await Promise.all(
    servers.splice(0).map(async (server) => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }),
  );
});

describe('imagesInRecycleBin', () => {
  it('follows every page of ListImagesInRecycleBin and keeps when each image entered and leaves', async () => {
    // Prepare
    ec2Mock
      .on(ListImagesInRecycleBinCommand)
      .resolvesOnce({
        Images: [
          {
            ImageId: 'ami-0a1b2c3d4e5f60001',
            Name: 'web-2024-01',
            RecycleBinEnterTime: new Date('2025-03-01T10:00:00Z'),
            RecycleBinExitTime: new Date('2025-03-08T10:00:00Z'),
          },
        ],
        NextToken: 'page-2',
      })
      .resolvesOnce({ Images: [{ ImageId: 'ami-0a1b2c3d4e5f60002' }, { Name: 'no id, not an image' }] });

    // Act
    const images = await recycleBin().imagesInRecycleBin();

    // Assess
    expect(ec2Mock).toHaveReceivedNthCommandWith(ListImagesInRecycleBinCommand, 1, { MaxResults: 1000 });
    expect(ec2Mock).toHaveReceivedNthCommandWith(ListImagesInRecycleBinCommand, 2, {
      MaxResults: 1000,
      NextToken: 'page-2',
    });
    expect(images).toEqual([
      {
        imageId: 'ami-0a1b2c3d4e5f60001',
        name: 'web-2024-01',
        enteredAt: new Date('2025-03-01T10:00:00Z'),
        leavesAt: new Date('2025-03-08T10:00:00Z'),
      },
      { imageId: 'ami-0a1b2c3d4e5f60002' },
    ]);
  });

  it('reports an endpoint without the action (an HTML 500) as unsupported, asked once', async () => {
    // Prepare
    ec2Mock.on(ListImagesInRecycleBinCommand).rejects(unparseableServerError());

    // Act
    const listing = recycleBin().imagesInRecycleBin();

    // Assess
    await expect(listing).rejects.toSatisfy(
      (error) => error instanceof UnsupportedApiError && error.operation === 'ListImagesInRecycleBin',
    );
    expect(ec2Mock).toHaveReceivedCommandTimes(ListImagesInRecycleBinCommand, 1);
  });

  it('reports InvalidAction as unsupported and lets AccessDenied through unchanged', async () => {
    // Prepare
    ec2Mock
      .on(ListImagesInRecycleBinCommand)
      .rejectsOnce(awsError('InvalidAction'))
      .rejectsOnce(awsError('UnauthorizedOperation', 403));
    const bin = recycleBin();

    // Act
    const first = bin.imagesInRecycleBin();
    await expect(first).rejects.toBeInstanceOf(UnsupportedApiError);
    const second = bin.imagesInRecycleBin();

    // Assess
    await expect(second).rejects.toMatchObject({ name: 'UnauthorizedOperation' });
  });
});

describe('retentionRules', () => {
  it('lists both resource types page by page and reads each rule with its tags, exclusions and status', async () => {
    // Prepare
    const rbin = await fakeRbin(
      rbinRoutes({
        pages: {
          EC2_IMAGE: [
            { Rules: [{ Identifier: 'imgTagRule1' }], NextToken: 'page-1' },
            { Rules: [{ Identifier: 'imgRegion01' }] },
          ],
          EBS_SNAPSHOT: [{ Rules: [{ Identifier: 'snapRule001' }] }],
        },
        rules: {
          imgTagRule1: getRule({
            Identifier: 'imgTagRule1',
            ResourceType: 'EC2_IMAGE',
            RetentionPeriod: { RetentionPeriodValue: 14, RetentionPeriodUnit: 'DAYS' },
            ResourceTags: [
              { ResourceTagKey: 'team', ResourceTagValue: 'web' },
              { ResourceTagKey: 'keep-in-bin' },
            ],
            Status: 'available',
          }),
          imgRegion01: getRule({
            Identifier: 'imgRegion01',
            ResourceType: 'EC2_IMAGE',
            ExcludeResourceTags: [{ ResourceTagKey: 'ephemeral', ResourceTagValue: 'true' }],
            Status: 'pending',
          }),
          snapRule001: getRule({
            Identifier: 'snapRule001',
            ResourceType: 'EBS_SNAPSHOT',
            RetentionPeriod: { RetentionPeriodValue: 30, RetentionPeriodUnit: 'DAYS' },
            Status: 'available',
          }),
        },
      }),
    );

    // Act
    const rules = await recycleBin({ rbinEndpoint: rbin.endpoint }).retentionRules();

    // Assess
    expect(rules).toEqual([
      {
        identifier: 'imgTagRule1',
        resourceType: 'EC2_IMAGE',
        retentionDays: 14,
        resourceTags: [
          { key: 'team', value: 'web' },
          { key: 'keep-in-bin', value: '' },
        ],
        excludeTags: [],
        status: 'available',
      },
      {
        identifier: 'imgRegion01',
        resourceType: 'EC2_IMAGE',
        retentionDays: 7,
        resourceTags: [],
        excludeTags: [{ key: 'ephemeral', value: 'true' }],
        status: 'pending',
      },
      {
        identifier: 'snapRule001',
        resourceType: 'EBS_SNAPSHOT',
        retentionDays: 30,
        resourceTags: [],
        excludeTags: [],
        status: 'available',
      },
    ]);
    const listings = rbin.received.filter((request) => request.path === '/list-rules');
    expect(listings.map((request) => [request.method, JSON.parse(request.body)])).toEqual([
      ['POST', { ResourceType: 'EC2_IMAGE', MaxResults: 1000 }],
      ['POST', { ResourceType: 'EC2_IMAGE', MaxResults: 1000, NextToken: 'page-1' }],
      ['POST', { ResourceType: 'EBS_SNAPSHOT', MaxResults: 1000 }],
    ]);
    expect(listings[0]?.headers['content-type']).toBe('application/json');
    const reads = rbin.received.filter((request) => request.method === 'GET').map((request) => request.path);
    expect(reads.sort()).toEqual(['/rules/imgRegion01', '/rules/imgTagRule1', '/rules/snapRule001']);
  });

  it('signs every request with SigV4 for rbin in the client Region, with the client credentials', async () => {
    // Prepare
    const rbin = await fakeRbin(
      rbinRoutes({
        pages: { EC2_IMAGE: [{ Rules: [{ Identifier: 'imgTagRule1' }] }] },
        rules: { imgTagRule1: getRule({ ResourceType: 'EC2_IMAGE', Status: 'available' }) },
      }),
    );

    // Act
    await recycleBin({ rbinEndpoint: rbin.endpoint }).retentionRules();

    // Assess: each Authorization is the one SigV4 gives for exactly what arrived.
    expect(rbin.received).toHaveLength(3);
    for (const request of rbin.received) {
      const authorization = String(request.headers.authorization);
      expect(authorization).toMatch(
        /^AWS4-HMAC-SHA256 Credential=AKIDRECYCLEBINTEST\/\d{8}\/eu-west-1\/rbin\/aws4_request, SignedHeaders=\S*host\S*, Signature=[0-9a-f]{64}$/,
      );
      const signedNames = /SignedHeaders=([^,]+)/.exec(authorization)?.[1]?.split(';') ?? [];
      const amzDate = String(request.headers['x-amz-date']);
      const signingDate = new Date(
        amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'),
      );
      const resigned = await new SignatureV4({
        credentials: CREDENTIALS,
        region: REGION,
        service: 'rbin',
        sha256: ec2Client().config.sha256,
      }).sign(
        {
          method: request.method,
          protocol: 'http:',
          hostname: '127.0.0.1',
          path: request.path,
          query: {},
          headers: Object.fromEntries(signedNames.map((name) => [name, String(request.headers[name])])),
          ...(request.body ? { body: request.body } : {}),
        },
        { signingDate },
      );
      expect(resigned.headers.authorization).toBe(authorization);
    }
  });

  it('signs with the clock offset the EC2 client learnt from a skew answer', async () => {
    // Prepare
    const rbin = await fakeRbin(rbinRoutes({ pages: {}, rules: {} }));
    const client = ec2Client();
    client.config.systemClockOffset = -3_600_000;

    // Act
    await recycleBin({ ec2: client, rbinEndpoint: rbin.endpoint }).retentionRules();

    // Assess
    const amzDate = String(rbin.received[0]?.headers['x-amz-date']);
    const signedAt = Date.parse(
      amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'),
    );
    expect(Date.now() - signedAt).toBeGreaterThan(3_500_000);
    expect(Date.now() - signedAt).toBeLessThan(3_700_000);
  });

  it('skips a rule deleted between ListRules and GetRule', async () => {
    // Prepare
    const rbin = await fakeRbin(
      rbinRoutes({
        pages: { EC2_IMAGE: [{ Rules: [{ Identifier: 'goneRule001' }, { Identifier: 'imgTagRule1' }] }] },
        rules: { imgTagRule1: getRule({ ResourceType: 'EC2_IMAGE', Status: 'available' }) },
      }),
    );

    // Act
    const rules = await recycleBin({ rbinEndpoint: rbin.endpoint }).retentionRules();

    // Assess
    expect(rules.map((rule) => rule.identifier)).toEqual(['imgTagRule1']);
    expect(rbin.received.filter((request) => request.path === '/rules/goneRule001')).toHaveLength(1);
  });

  it('retries a throttled ListRules after a backoff, as any throttled AWS call', async () => {
    // Prepare
    let throttled = false;
    const routes = rbinRoutes({ pages: {}, rules: {} });
    const rbin = await fakeRbin((request) => {
      if (!throttled) {
        throttled = true;
        return {
          status: 400,
          headers: { 'x-amzn-errortype': 'ThrottlingException:http://internal.amazon.com/coral/' },
          body: { message: 'Rate exceeded' },
        };
      }
      return routes(request);
    });

    // Act
    const rules = await recycleBin({ rbinEndpoint: rbin.endpoint }).retentionRules();

    // Assess
    expect(rules).toEqual([]);
    expect(rbin.received.map((request) => JSON.parse(request.body).ResourceType)).toEqual([
      'EC2_IMAGE',
      'EC2_IMAGE',
      'EBS_SNAPSHOT',
    ]);
    expect(sleeper.delays).toEqual([100]);
  });

  it('throws an AWS error as the SDK would: its code as name, its HTTP status, sent once', async () => {
    // Prepare
    const rbin = await fakeRbin(() => ({
      status: 400,
      body: { __type: 'com.amazonaws.rbin#ValidationException', message: 'ResourceType is invalid' },
    }));

    // Act
    const listing = recycleBin({ rbinEndpoint: rbin.endpoint }).retentionRules();

    // Assess
    await expect(listing).rejects.toMatchObject({
      name: 'ValidationException',
      message: 'ResourceType is invalid',
      $metadata: { httpStatusCode: 400 },
    });
    expect(rbin.received).toHaveLength(1);
  });

  it('retries a 500 that carries an AWS code, and gives up with it after the configured attempts', async () => {
    // Prepare
    const rbin = await fakeRbin(() => ({
      status: 500,
      headers: { 'x-amzn-errortype': 'InternalServerException' },
      body: { message: 'internal' },
    }));

    // Act
    const listing = recycleBin({ rbinEndpoint: rbin.endpoint }).retentionRules();

    // Assess
    await expect(listing).rejects.toMatchObject({
      name: 'InternalServerException',
      $metadata: { httpStatusCode: 500 },
    });
    expect(rbin.received).toHaveLength(4);
  });

  it.each<{ case: string; reply: Reply }>([
    {
      case: 'an HTML 500, as moto answers for a service it lacks',
      reply: {
        status: 500,
        headers: { 'content-type': 'text/html' },
        body: '<!doctype html><title>500 Internal Server Error</title>',
      },
    },
    { case: 'a 404 without an AWS error code', reply: { status: 404, body: '' } },
    {
      case: 'a 200 that is not JSON',
      reply: { status: 200, headers: { 'content-type': 'text/html' }, body: '<html>proxy</html>' },
    },
    {
      case: 'an UnknownOperationException',
      reply: { status: 404, headers: { 'x-amzn-errortype': 'UnknownOperationException' }, body: {} },
    },
  ])('reports $case as unsupported, asked once', async ({ reply }) => {
    // Prepare
    const rbin = await fakeRbin(() => reply);

    // Act
    const listing = recycleBin({ rbinEndpoint: rbin.endpoint }).retentionRules();

    // Assess
    await expect(listing).rejects.toSatisfy(
      (error) =>
        error instanceof UnsupportedApiError && error.operation === 'ListRules' && error.cause !== undefined,
    );
    expect(rbin.received).toHaveLength(1);
  });

  it('gives up on a silent endpoint after two timed-out attempts, bounded by the client timeouts', async () => {
    // Prepare
    const rbin = await fakeRbin(() => ({ status: 200, hang: true }));

    // Act
    const listing = recycleBin({ ec2: ec2Client(200), rbinEndpoint: rbin.endpoint }).retentionRules();

    // Assess
    await expect(listing).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(rbin.received).toHaveLength(2);
  });

  it('stops a request in flight when the caller aborts, and does not retry it', async () => {
    // Prepare
    const rbin = await fakeRbin(() => ({ status: 200, hang: true }));
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('out of time')), 100).unref();

    // Act
    const listing = recycleBin({ rbinEndpoint: rbin.endpoint, signal: controller.signal }).retentionRules();

    // Assess
    await expect(listing).rejects.toMatchObject({ name: 'AbortError' });
    expect(rbin.received).toHaveLength(1);
    expect(sleeper.delays).toEqual([]);
  });

  it('refuses a retention period in a unit other than days instead of guessing', async () => {
    // Prepare
    const rbin = await fakeRbin(
      rbinRoutes({
        pages: { EC2_IMAGE: [{ Rules: [{ Identifier: 'weekRule001' }] }] },
        rules: {
          weekRule001: getRule({
            RetentionPeriod: { RetentionPeriodValue: 2, RetentionPeriodUnit: 'WEEKS' },
          }),
        },
      }),
    );

    // Act
    const listing = recycleBin({ rbinEndpoint: rbin.endpoint }).retentionRules();

    // Assess
    await expect(listing).rejects.toMatchObject({
      name: 'InventoryError',
      message: expect.stringMatching(/WEEKS/),
    });
  });

  it('sends to AWS_ENDPOINT_URL_RBIN, then AWS_ENDPOINT_URL, as the SDK resolves a configured endpoint', async () => {
    // Prepare
    const rbin = await fakeRbin(rbinRoutes({ pages: {}, rules: {} }));
    const elsewhere = 'http://127.0.0.1:9';

    // Act
    await recycleBin({
      env: { AWS_ENDPOINT_URL_RBIN: rbin.endpoint, AWS_ENDPOINT_URL: elsewhere },
    }).retentionRules();
    await recycleBin({ env: { AWS_ENDPOINT_URL: `${rbin.endpoint}/` } }).retentionRules();

    // Assess
    expect(rbin.received.map((request) => request.path)).toEqual([
      '/list-rules',
      '/list-rules',
      '/list-rules',
      '/list-rules',
    ]);
  });
});

describe('rbinEndpoint', () => {
  it('is the regional endpoint of the partition unless one is configured or configured ones are ignored', () => {
    expect(rbinEndpoint('eu-west-1', {})).toBe('https://rbin.eu-west-1.amazonaws.com');
    expect(rbinEndpoint('cn-north-1', {})).toBe('https://rbin.cn-north-1.amazonaws.com.cn');
    expect(rbinEndpoint('eu-west-1', { AWS_ENDPOINT_URL: 'http://localhost:5000' })).toBe(
      'http://localhost:5000',
    );
    expect(
      rbinEndpoint('eu-west-1', {
        AWS_ENDPOINT_URL: 'http://localhost:5000',
        AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true',
      }),
    ).toBe('https://rbin.eu-west-1.amazonaws.com');
  });
});

describe('awsJsonErrorCode', () => {
  it('reads the header first, then __type or code, without namespace or URL', () => {
    expect(awsJsonErrorCode({ 'x-amzn-errortype': 'ThrottlingException:http://internal/' }, {})).toBe(
      'ThrottlingException',
    );
    expect(awsJsonErrorCode({}, { __type: 'com.amazonaws.rbin#ConflictException' })).toBe(
      'ConflictException',
    );
    expect(awsJsonErrorCode({}, { code: 'ServiceQuotaExceededException' })).toBe(
      'ServiceQuotaExceededException',
    );
    expect(awsJsonErrorCode({}, { message: 'no code at all' })).toBeUndefined();
    expect(awsJsonErrorCode({}, undefined)).toBeUndefined();
  });
});
