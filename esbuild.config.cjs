// Bundling options for serverless-esbuild (custom.esbuild.config in serverless.yml).
// The policy is read here, at package time, and compiled into each handler as JSON: the policy
// ships with the deployment, and the handlers need no YAML parser (a tenth of their size).
const { readFileSync } = require('node:fs');
const { join } = require('node:path');
const { parse } = require('yaml');
const { sdkSchemaKeys } = require('./scripts/build/sdk-schema-keys.cjs');

module.exports = (serverless) => {
  const policyPath = join(serverless.config.serviceDir, 'policy.yml');
  const policy = parse(readFileSync(policyPath, 'utf8')) ?? {};
  return {
    bundle: true,
    minify: true,
    // Error classes set their own `name`, so minified class names cost nothing in the logs.
    keepNames: false,
    legalComments: 'none',
    charset: 'utf8',
    sourcemap: 'linked',
    // Line mapping is enough for stack traces; embedding the sources would double the zip.
    sourcesContent: false,
    target: 'node24',
    platform: 'node',
    format: 'esm',
    outputFileExtension: '.mjs',
    mainFields: ['module', 'main'],
    // Some bundled CommonJS dependencies call require() for Node built-ins, which ESM lacks.
    banner: {
      js: "import { createRequire as __amiJanitorCreateRequire } from 'node:module'; const require = __amiJanitorCreateRequire(import.meta.url);",
    },
    define: { 'process.env.AMI_JANITOR_BUNDLED_POLICY': JSON.stringify(JSON.stringify(policy)) },
    // Bundle everything, the AWS SDK included: the runtime's SDK version is not guaranteed to match
    // ours. What stays out is never installed and only ever imported lazily, on paths a Lambda
    // never takes: the YAML parser (the policy is compiled in above) and the credential providers
    // for profiles, SSO, web identity and instance or container metadata (Lambda hands the
    // function its credentials in environment variables, which the SDK reads first).
    exclude: [
      'yaml',
      '@aws-sdk/credential-provider-sso',
      '@aws-sdk/credential-provider-ini',
      '@aws-sdk/credential-provider-process',
      '@aws-sdk/credential-provider-web-identity',
      '@aws-sdk/credential-provider-http',
      '@aws-sdk/credential-provider-login',
      '@aws-sdk/nested-clients',
      '@aws-sdk/token-providers',
      '@smithy/credential-provider-imds',
    ],
    external: [],
    // Lets esbuild drop the SDK shapes of operations the handlers never call (sweep 1.11 MB to 0.62 MB).
    plugins: [sdkSchemaKeys],
    packager: 'npm',
  };
};
