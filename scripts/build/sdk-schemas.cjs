// esbuild plugin for the AWS SDK's generated schema modules (`dist-es/schemas/schemas_0.js` of
// each `@aws-sdk/client-*`). Two rewrites, neither of which changes what a handler observes:
//
// 1. Computed keys written as the strings they are (sdk-schema-keys.cjs), so esbuild can drop the
//    shapes of operations a handler never calls.
// 2. In the JSON-protocol clients, the modelled errors are no longer registered at load. Each such
//    module ends with `n0_registry.registerError(X$, X)` for every error of its service (140 for
//    SSM), which keeps every error class and its schema in the bundle: 51 kB of the sweep's for SSM,
//    34 kB for CloudTrail.
//    The handlers tell errors apart by code (errorCode in src/errors.ts), never by class. When the
//    registry does not know a code, @aws-sdk/core's awsJson protocol builds the service's base
//    exception instead, with `name` set to the code, `$fault` from the status, `$metadata` and the
//    message: the same fields the modelled class would have carried. The service's base exception
//    stays registered, so an error is still a ServiceException.
//
// Only clients whose every modelled error answers the same either way are rewritten; the proof is
// test/unit/sdk-schemas.test.ts, which sends each error through a client bundled both ways. The
// awsQuery clients (STS, Auto Scaling) are left alone: without its class an error's `name` is its
// wire code (`ResourceContention`, not `ResourceContentionFault`) and it loses `RequestId`.
const { readFile } = require('node:fs/promises');
const { inlineSchemaKeys, SCHEMA_MODULE } = require('./sdk-schema-keys.cjs');

/** Clients on awsJson1_0 or awsJson1_1, by package name. */
const JSON_PROTOCOL_CLIENTS = new Set([
  '@aws-sdk/client-cloudtrail',
  '@aws-sdk/client-dynamodb',
  '@aws-sdk/client-organizations',
  '@aws-sdk/client-sfn',
  '@aws-sdk/client-ssm',
]);

/**
 * Errors kept registered, by client: their class adds a field the wire answer lacks.
 * ReplicatedWriteConflictException's class sets `$retryable`, which withRetry reads.
 */
const KEPT_ERRORS = new Map([['@aws-sdk/client-dynamodb', new Set(['ReplicatedWriteConflictException'])]]);

/** `n0_registry.registerError(X$, X);` on a line of its own. `_s` is the synthetic base exception's. */
const ERROR_REGISTRATION = /^(\w+)_registry\.registerError\((\w+)\$, (\w+)\);\n/gm;

/**
 * The module's source without the registration of any modelled error but those in `keep`. The
 * base exception's registration stays. Nothing else changes: the error classes and schemas are
 * left to esbuild, which drops them once nothing refers to them.
 */
function withoutErrorRegistrations(source, keep = new Set()) {
  let removed = 0;
  const contents = source.replace(ERROR_REGISTRATION, (line, registry, schema) => {
    if (registry === '_s' || keep.has(schema)) return line;
    removed++;
    return '';
  });
  return { contents, removed };
}

/** `@aws-sdk/client-ssm` for a path inside that package. */
function clientOf(path) {
  return /[\\/](@aws-sdk[\\/]client-[^\\/]+)[\\/]dist-es[\\/]/.exec(path)?.[1].replace('\\', '/');
}

const sdkSchemas = {
  name: 'ami-janitor-sdk-schemas',
  setup(build) {
    build.onLoad({ filter: SCHEMA_MODULE }, async (args) => {
      let { contents } = inlineSchemaKeys(await readFile(args.path, 'utf8'));
      const client = clientOf(args.path);
      if (client !== undefined && JSON_PROTOCOL_CLIENTS.has(client)) {
        ({ contents } = withoutErrorRegistrations(contents, KEPT_ERRORS.get(client)));
      }
      return { contents, loader: 'js' };
    });
  },
};

module.exports = { sdkSchemas, withoutErrorRegistrations, JSON_PROTOCOL_CLIENTS, KEPT_ERRORS };
