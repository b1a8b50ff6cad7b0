import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { NormalizedSchema } from '@smithy/core/schema';
import { build, type Plugin } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The build plugin stops the JSON-protocol clients from registering their modelled errors. These
 * tests hold it to changing no answer: every modelled error of every such client, sent as the
 * service sends it, is thrown with the same name, message, $fault, $metadata and fields by a client
 * bundled with the plugin as by one bundled without it (with only the schema-key rewrite, as
 * before).
 */

const require = createRequire(import.meta.url);
const { withoutErrorRegistrations, sdkSchemas, JSON_PROTOCOL_CLIENTS, KEPT_ERRORS } =
  require('../../scripts/build/sdk-schemas.cjs') as {
    withoutErrorRegistrations: (
      source: string,
      keep?: ReadonlySet<string>,
    ) => { contents: string; removed: number };
    sdkSchemas: Plugin;
    JSON_PROTOCOL_CLIENTS: ReadonlySet<string>;
    KEPT_ERRORS: ReadonlyMap<string, ReadonlySet<string>>;
  };
const { sdkSchemaKeys } = require('../../scripts/build/sdk-schema-keys.cjs') as { sdkSchemaKeys: Plugin };

/** Per client: its classes and a read that any error answer can come back to. */
const CLIENTS: Record<string, { client: string; base: string; command: string; input: object }> = {
  '@aws-sdk/client-cloudtrail': {
    client: 'CloudTrailClient',
    base: 'CloudTrailServiceException',
    command: 'LookupEventsCommand',
    input: {},
  },
  '@aws-sdk/client-dynamodb': {
    client: 'DynamoDBClient',
    base: 'DynamoDBServiceException',
    command: 'GetItemCommand',
    input: { TableName: 'ami-janitor-locks', Key: { lockKey: { S: '111122223333/eu-west-1' } } },
  },
  '@aws-sdk/client-organizations': {
    client: 'OrganizationsClient',
    base: 'OrganizationsServiceException',
    command: 'ListAccountsCommand',
    input: {},
  },
  '@aws-sdk/client-sfn': {
    client: 'SFNClient',
    base: 'SFNServiceException',
    command: 'ListExecutionsCommand',
    input: { stateMachineArn: 'arn:aws:states:eu-west-1:111122223333:stateMachine:ami-janitor' },
  },
  '@aws-sdk/client-ssm': {
    client: 'SSMClient',
    base: 'SSMServiceException',
    command: 'GetParameterCommand',
    input: { Name: '/ami-janitor/state' },
  },
};
const PACKAGES = Object.keys(CLIENTS);

function clientDirectory(name: string): string {
  return join(dirname(require.resolve(name)), '..', 'dist-es');
}

/** An error schema: `[-3, namespace, name, traits, memberNames, memberSchemas, ...]`. */
type ErrorSchema = [number, string, string, { error?: string; httpError?: number }, string[]?];

interface Bundled {
  bytes: number;
  exports: Record<string, unknown>;
}

const directory = mkdtempSync(join(tmpdir(), 'ami-janitor-sdk-schemas-'));

/** Every client above, with its schema module's registries, bundled as the handlers are. */
async function bundleClients(name: string, plugins: Plugin[]): Promise<Bundled> {
  const entry = PACKAGES.map((pkg, index) => {
    const { client, base, command } = CLIENTS[pkg] ?? { client: '', base: '', command: '' };
    const schemas = join(clientDirectory(pkg), 'schemas', 'schemas_0.js');
    return [
      `export { ${client} as Client${index}, ${command} as Command${index}, ${base} as Base${index} } from '${pkg}';`,
      `export { errorTypeRegistries as Registries${index} } from ${JSON.stringify(schemas)};`,
    ].join('\n');
  }).join('\n');
  const result = await build({
    stdin: { contents: entry, resolveDir: process.cwd(), loader: 'js' },
    bundle: true,
    minify: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    mainFields: ['module', 'main'],
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
    plugins,
    write: false,
    logLevel: 'silent',
  });
  const file = join(directory, `${name}.mjs`);
  writeFileSync(file, result.outputFiles[0]?.text ?? '');
  return {
    bytes: result.outputFiles[0]?.contents.byteLength ?? 0,
    exports: (await import(pathToFileURL(file).href)) as Record<string, unknown>,
  };
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** The client's configuration, with an HTTP handler that gives `answer` to every request. */
function answering(answer: Answer) {
  return {
    region: 'eu-west-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
    requestHandler: {
      handle: async () => ({
        response: {
          statusCode: answer.status,
          headers: {
            'content-type': 'application/x-amz-json-1.1',
            'x-amzn-requestid': 'a1b2c3d4-5678-90ab-cdef-EXAMPLE11111',
          },
          body: Readable.from([Buffer.from(JSON.stringify(answer.body))]),
        },
      }),
    },
  };
}

/**
 * What a caller can see of a thrown error: its name and message, whether it is an Error and an
 * instance of the service's base exception, and every field it carries.
 */
function observed(error: unknown, base: unknown): string {
  if (!(error instanceof Error)) return `not an Error: ${String(error)}`;
  const fields = Object.fromEntries(
    Object.keys(error)
      .sort()
      .map((key) => [key, (error as unknown as Record<string, unknown>)[key]])
      .filter(([, value]) => value !== undefined),
  );
  return JSON.stringify({
    name: error.name,
    message: error.message,
    isBase: error instanceof (base as new () => unknown),
    ...fields,
  });
}

async function thrownBy(bundle: Bundled, index: number, input: object, answer: Answer): Promise<string> {
  const Client = bundle.exports[`Client${index}`] as new (
    config: object,
  ) => { send: (command: unknown) => Promise<unknown> };
  const Command = bundle.exports[`Command${index}`] as new (input: object) => unknown;
  try {
    await new Client(answering(answer)).send(new Command(input));
    return 'no error';
  } catch (error) {
    return observed(error, bundle.exports[`Base${index}`]);
  }
}

describe('withoutErrorRegistrations', () => {
  it('removes the registration of each modelled error, but not the base exception’s or those kept', () => {
    // Prepare
    const source = [
      'const _s_registry = TypeRegistry.for(_s);',
      '_s_registry.registerError(SSMServiceException$, SSMServiceException);',
      'const n0_registry = TypeRegistry.for(n0);',
      'export var ParameterNotFound$ = [-3, n0, _PNF, { [_e]: _c }, [_m], [0]];',
      'n0_registry.registerError(ParameterNotFound$, ParameterNotFound);',
      'n0_registry.registerError(Conflict$, Conflict);',
      'export const errorTypeRegistries = [_s_registry, n0_registry];',
      '',
    ].join('\n');

    // Act
    const { contents, removed } = withoutErrorRegistrations(source, new Set(['Conflict']));

    // Assess
    expect(removed).toBe(1);
    expect(contents.split('\n')).toEqual([
      'const _s_registry = TypeRegistry.for(_s);',
      '_s_registry.registerError(SSMServiceException$, SSMServiceException);',
      'const n0_registry = TypeRegistry.for(n0);',
      'export var ParameterNotFound$ = [-3, n0, _PNF, { [_e]: _c }, [_m], [0]];',
      'n0_registry.registerError(Conflict$, Conflict);',
      'export const errorTypeRegistries = [_s_registry, n0_registry];',
      '',
    ]);
  });

  it.each(PACKAGES)('keeps every error of %s whose class marks it retryable', (pkg) => {
    // Prepare: withRetry reads `$retryable`, which only the class sets.
    const errors = readFileSync(join(clientDirectory(pkg), 'models', 'errors.js'), 'utf8');
    const retryable = [...errors.matchAll(/^export class (\w+) extends[\s\S]*?^}/gm)]
      .filter(([body]) => body.includes('$retryable'))
      .map(([, name]) => name);

    // Act
    const kept = [...(KEPT_ERRORS.get(pkg) ?? [])];

    // Assess
    expect(kept.sort()).toEqual(retryable.sort());
  });
});

describe('clients bundled with and without the plugin', () => {
  let before: Bundled;
  let after: Bundled;

  beforeAll(async () => {
    before = await bundleClients('before', [sdkSchemaKeys]);
    after = await bundleClients('after', [sdkSchemas]);
  }, 60_000);

  afterAll(() => {
    rmSync(directory, { recursive: true, force: true });
  });

  it('proves every client the plugin rewrites', () => {
    expect(PACKAGES).toEqual([...JSON_PROTOCOL_CLIENTS].sort());
  });

  it('is smaller by the error classes', () => {
    expect(after.bytes).toBeLessThan(before.bytes - 100_000);
  });

  it.each(PACKAGES)('%s throws every modelled error as it did', async (pkg) => {
    // Prepare: each error as the service sends it, half with a namespaced __type and `message`,
    // half with a bare one and `Message`; then codes no model names.
    const index = PACKAGES.indexOf(pkg);
    const registries = before.exports[`Registries${index}`] as { schemas: Map<string, unknown> }[];
    const modelled = registries
      .flatMap((registry) => [...registry.schemas.values()])
      .filter((schema): schema is ErrorSchema => Array.isArray(schema) && schema[0] === -3)
      .filter((schema) => !schema[2].endsWith('ServiceException'));
    const answers: Answer[] = modelled.map(([, namespace, name, traits], position) => ({
      status: traits.httpError ?? (traits.error === 'server' ? 500 : 400),
      body:
        position % 2 === 0
          ? { __type: `${namespace}#${name}`, message: `${name}: as sent` }
          : { __type: name, Message: `${name}: as sent` },
    }));
    answers.push(
      { status: 400, body: { __type: 'ThrottlingException', message: 'Rate exceeded' } },
      {
        status: 400,
        body: { __type: 'com.amazon.coral.availability#ThrottlingException', message: 'Rate exceeded' },
      },
      { status: 400, body: { __type: 'com.amazon.coral.service#AccessDeniedException', Message: 'denied' } },
      { status: 400, body: { __type: 'com.amazon.coral.validate#ValidationException', message: 'invalid' } },
      { status: 403, body: { __type: 'UnrecognizedClientException', message: 'bad token' } },
      { status: 500, body: { __type: 'InternalFailure' } },
      { status: 503, body: { __type: 'ServiceUnavailable', message: 'try later' } },
    );
    const { input } = CLIENTS[pkg] ?? { input: {} };

    // Act
    const differences = (
      await Promise.all(
        answers.map(async (answer) => {
          const withClasses = await thrownBy(before, index, input, answer);
          const withoutClasses = await thrownBy(after, index, input, answer);
          return withoutClasses === withClasses
            ? []
            : [`${JSON.stringify(answer)}\n  before: ${withClasses}\n  after:  ${withoutClasses}`];
        }),
      )
    ).flat();

    // Assess
    expect(modelled.length).toBeGreaterThan(10);
    expect(differences).toEqual([]);
  });

  it('throws the lock’s ConditionalCheckFailedException with the item it returned, as it did', async () => {
    // Prepare: PutItem's answer when another run holds the lock (ReturnValuesOnConditionCheckFailure).
    const answer: Answer = {
      status: 400,
      body: {
        __type: 'com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException',
        message: 'The conditional request failed',
        Item: { lockKey: { S: '111122223333/eu-west-1' }, expiresAtMs: { N: '1743508800000' } },
      },
    };
    const index = PACKAGES.indexOf('@aws-sdk/client-dynamodb');
    const { input } = CLIENTS['@aws-sdk/client-dynamodb'] ?? { input: {} };

    // Act
    const withClasses = await thrownBy(before, index, input, answer);
    const withoutClasses = await thrownBy(after, index, input, answer);

    // Assess
    expect(withoutClasses).toBe(withClasses);
    expect(JSON.parse(withoutClasses)).toMatchObject({
      name: 'ConditionalCheckFailedException',
      message: 'The conditional request failed',
      isBase: true,
      $fault: 'client',
      $metadata: { httpStatusCode: 400, requestId: 'a1b2c3d4-5678-90ab-cdef-EXAMPLE11111' },
      Item: { lockKey: { S: '111122223333/eu-west-1' } },
    });
  });
});

describe('the event-stream serde, left out of the bundles (esbuild.config.cjs)', () => {
  /** `[client, command]` for every SDK command the sources construct, e.g. `['client-ssm', 'GetParameter']`. */
  function sentCommands(): [string, string][] {
    const sent = new Map<string, [string, string]>();
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.name.endsWith('.ts')) {
          const text = readFileSync(path, 'utf8');
          for (const [, names, client] of text.matchAll(
            /import \{([^}]*)\} from '@aws-sdk\/(client-[a-z0-9-]+)'/g,
          )) {
            for (const [, command] of (names ?? '').matchAll(/\b([A-Z][A-Za-z0-9]+)Command\b/g)) {
              if (client && command && text.includes(`new ${command}Command(`)) {
                sent.set(`${client}:${command}`, [client, command]);
              }
            }
          }
        }
      }
    };
    walk(resolve(import.meta.dirname, '../../src'));
    return [...sent.values()];
  }

  it('is needed by no command the sources send: none streams events either way', async () => {
    // Prepare
    const commands = sentCommands();

    // Act: an operation schema is `[9, namespace, name, traits, input, output]`.
    const streaming: string[] = [];
    for (const [client, command] of commands) {
      const module = (await import(`@aws-sdk/${client}`)) as Record<string, unknown>;
      const operation = module[`${command}$`] as unknown[] | undefined;
      if (!operation) {
        streaming.push(`${client} ${command}: no operation schema`);
        continue;
      }
      for (const schema of [operation[4], operation[5]]) {
        const member = NormalizedSchema.of(
          schema as Parameters<typeof NormalizedSchema.of>[0],
        ).getEventStreamMember();
        if (member) streaming.push(`${client} ${command}: ${member}`);
      }
    }

    // Assess
    expect(commands.length).toBeGreaterThan(30);
    expect(streaming).toEqual([]);
  });
});
