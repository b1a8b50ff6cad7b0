import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { temporaryDirectory } from '../../scripts/bench/bundle.ts';

/**
 * The build plugin rewrites the AWS SDK's generated schema modules. These tests hold it to
 * changing no value: every export of every client's schema module, followed through its lazy
 * references, is the same before and after; and a client bundled with the plugin sends the same
 * request and parses a response to the same result as the client run from source.
 */

const require = createRequire(import.meta.url);
const { inlineSchemaKeys, sdkSchemaKeys } = require('../../scripts/build/sdk-schema-keys.cjs') as {
  inlineSchemaKeys: (source: string) => { contents: string; inlined: number };
  sdkSchemaKeys: import('esbuild').Plugin;
};

/** Every client the handlers bundle. */
const CLIENTS = ['ec2', 'ssm', 'cloudtrail', 'auto-scaling', 'sqs', 'sts'];

function schemaModulePath(client: string): string {
  const entry = require.resolve(`@aws-sdk/client-${client}`);
  return join(dirname(entry), '..', 'dist-es', 'schemas', 'schemas_0.js');
}

/** The module's imports made absolute, so a copy of it loads from anywhere. */
function relocatable(source: string, from: string): string {
  const local = createRequire(from);
  return source.replace(/from "([^"]+)";/g, (_statement, specifier: string) => {
    const target = specifier.startsWith('.')
      ? pathToFileURL(`${join(dirname(from), specifier)}.js`).href
      : pathToFileURL(local.resolve(specifier)).href;
    return `from ${JSON.stringify(target)};`;
  });
}

/**
 * Structural equality of two schema graphs. A schema refers to another lazily, through a function
 * of no arguments, so those are called and their results compared; pairs already under comparison
 * are taken as equal, which ends the walk on recursive shapes.
 */
function sameSchema(
  left: unknown,
  right: unknown,
  path: string,
  seen: Map<unknown, unknown>,
): string | undefined {
  if (typeof left === 'function' && typeof right === 'function') {
    if (left.length !== 0 || right.length !== 0)
      return left === right ? undefined : `${path}: different functions`;
    return sameSchema((left as () => unknown)(), (right as () => unknown)(), `${path}()`, seen);
  }
  if (typeof left !== 'object' || left === null || typeof right !== 'object' || right === null) {
    return Object.is(left, right) ? undefined : `${path}: ${String(left)} ≠ ${String(right)}`;
  }
  if (seen.get(left) === right) return undefined;
  seen.set(left, right);
  if (Array.isArray(left) !== Array.isArray(right)) return `${path}: array and object`;
  if (!Array.isArray(left) && Object.getPrototypeOf(left) !== Object.prototype) {
    // Registries and error classes come from the same shared module on both sides.
    return left === right ? undefined : `${path}: different ${left.constructor.name} instances`;
  }
  const leftKeys = Object.keys(left);
  const rightKeys = Object.keys(right);
  if (leftKeys.join() !== rightKeys.join()) return `${path}: keys [${leftKeys}] ≠ [${rightKeys}]`;
  for (const key of leftKeys) {
    const difference = sameSchema(
      (left as Record<string, unknown>)[key],
      (right as Record<string, unknown>)[key],
      `${path}.${key}`,
      seen,
    );
    if (difference) return difference;
  }
  return undefined;
}

describe('inlineSchemaKeys', () => {
  it('writes computed keys that name string constants as those strings, and leaves others alone', () => {
    // Prepare
    const source = [
      'const _xN = "xmlName";',
      'const _q = "say \\"hi\\"";',
      'var A$ = [3, n0, _A, 0, [_B], [[() => B$, { [_xN]: _C, [_q]: 1, [other]: 2 }]]];',
    ].join('\n');

    // Act
    const { contents, inlined } = inlineSchemaKeys(source);

    // Assess
    expect(inlined).toBe(2);
    expect(contents.split('\n')[2]).toBe(
      'var A$ = [3, n0, _A, 0, [_B], [[() => B$, { "xmlName": _C, "say \\"hi\\"": 1, [other]: 2 }]]];',
    );
  });

  describe.each(CLIENTS)('@aws-sdk/client-%s', (client) => {
    it('exports the same schemas after the rewrite', async () => {
      // Prepare
      const original = schemaModulePath(client);
      const source = readFileSync(original, 'utf8');
      const { contents, inlined } = inlineSchemaKeys(source);
      const directory = temporaryDirectory();
      const copy = join(directory.path, 'schemas_0.mjs');
      writeFileSync(copy, relocatable(contents, original));

      try {
        // Act
        const before = (await import(pathToFileURL(original).href)) as Record<string, unknown>;
        const after = (await import(pathToFileURL(copy).href)) as Record<string, unknown>;

        // Assess
        expect(inlined).toBeGreaterThan(0);
        expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort());
        const seen = new Map<unknown, unknown>();
        const differences = Object.keys(before)
          .map((name) => sameSchema(before[name], after[name], name, seen))
          .filter((difference) => difference !== undefined);
        expect(differences).toEqual([]);
      } finally {
        directory.remove();
      }
    });
  });
});

const DESCRIBE_IMAGES_RESPONSE = `<?xml version="1.0" encoding="UTF-8"?>
<DescribeImagesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>req-1</requestId>
  <imagesSet>
    <item>
      <imageId>ami-0a1b2c3d4e5f60001</imageId>
      <imageLocation>111122223333/web-2025-01-10</imageLocation>
      <imageState>available</imageState>
      <imageOwnerId>111122223333</imageOwnerId>
      <creationDate>2025-01-10T08:15:42.000Z</creationDate>
      <isPublic>false</isPublic>
      <architecture>x86_64</architecture>
      <imageType>machine</imageType>
      <name>web-2025-01-10</name>
      <rootDeviceType>ebs</rootDeviceType>
      <rootDeviceName>/dev/xvda</rootDeviceName>
      <blockDeviceMapping>
        <item>
          <deviceName>/dev/xvda</deviceName>
          <ebs>
            <snapshotId>snap-0a1b2c3d4e5f60001</snapshotId>
            <volumeSize>8</volumeSize>
            <deleteOnTermination>true</deleteOnTermination>
            <volumeType>gp3</volumeType>
            <encrypted>false</encrypted>
          </ebs>
        </item>
        <item>
          <deviceName>/dev/sdb</deviceName>
          <virtualName>ephemeral0</virtualName>
        </item>
      </blockDeviceMapping>
      <tagSet>
        <item><key>team</key><value>web</value></item>
        <item><key>ami-janitor:keep</key><value>true</value></item>
      </tagSet>
      <deprecationTime>2026-01-10T08:15:42.000Z</deprecationTime>
      <lastLaunchedTime>2025-06-01T00:00:00.000Z</lastLaunchedTime>
      <sourceImageId>ami-0ffffffffffffffff</sourceImageId>
    </item>
  </imagesSet>
  <nextToken>page-2</nextToken>
</DescribeImagesResponse>`;

describe('a client bundled with the plugin', () => {
  let server: Server;
  let endpoint: string;
  const requests: string[] = [];
  const directory = temporaryDirectory();

  beforeAll(async () => {
    server = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      request.on('end', () => {
        requests.push(body);
        response.writeHead(200, { 'content-type': 'text/xml' }).end(DESCRIBE_IMAGES_RESPONSE);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    directory.remove();
  });

  it('is smaller, sends the same request and parses the same result as the client from source', async () => {
    // Prepare
    const entry = [
      "import { DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';",
      'export { DescribeImagesCommand, EC2Client };',
    ].join('\n');
    const bundle = async (plugins: import('esbuild').Plugin[]) =>
      build({
        stdin: { contents: entry, resolveDir: process.cwd(), loader: 'js' },
        bundle: true,
        minify: true,
        platform: 'node',
        format: 'esm',
        mainFields: ['module', 'main'],
        banner: {
          js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
        },
        plugins,
        write: false,
        logLevel: 'silent',
      });
    const plain = await bundle([]);
    const rewritten = await bundle([sdkSchemaKeys]);
    const file = join(directory.path, 'describe-images.mjs');
    writeFileSync(file, rewritten.outputFiles[0]?.text ?? '');
    const bundled = (await import(pathToFileURL(file).href)) as {
      EC2Client: typeof EC2Client;
      DescribeImagesCommand: typeof DescribeImagesCommand;
    };
    const config = {
      endpoint,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
      maxAttempts: 1,
    };
    const input = {
      Owners: ['self'],
      Filters: [{ Name: 'tag:team', Values: ['web', 'data'] }],
      IncludeDeprecated: true,
      MaxResults: 1000,
      NextToken: 'page-1',
    };

    // Act
    const fromSource = await new EC2Client(config).send(new DescribeImagesCommand(input));
    const fromBundle = await new bundled.EC2Client(config).send(new bundled.DescribeImagesCommand(input));

    // Assess
    const size = (result: typeof plain) => result.outputFiles[0]?.contents.byteLength ?? 0;
    expect(size(rewritten)).toBeLessThan(size(plain) / 2);
    expect(requests).toHaveLength(2);
    expect(requests[1]).toBe(requests[0]);
    expect(requests[0]).toContain('Filter.1.Value.2=data');
    const { $metadata: _sourceMetadata, ...sourceResult } = fromSource;
    const { $metadata: _bundleMetadata, ...bundleResult } = fromBundle;
    expect(bundleResult).toEqual(sourceResult);
    expect(sourceResult.Images?.[0]?.Tags).toEqual([
      { Key: 'team', Value: 'web' },
      { Key: 'ami-janitor:keep', Value: 'true' },
    ]);
    expect(sourceResult.Images?.[0]?.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId).toBe(
      'snap-0a1b2c3d4e5f60001',
    );
    expect(sourceResult.NextToken).toBe('page-2');
  });
});
