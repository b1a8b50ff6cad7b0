// Bundling options for serverless-esbuild (custom.esbuild.config in serverless.yml).
// The policy is read and validated here, at package time, and compiled into each handler as JSON:
// the policy ships with the deployment, and the handlers need no YAML parser (a tenth of their size).
const { spawnSync } = require('node:child_process');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');
const { sdkSchemas } = require('./scripts/build/sdk-schemas.cjs');

/**
 * The policy as the CLI reads it: the same size and file checks, the same strict schema. A bad
 * policy fails the package with the CLI's message, instead of failing every cold start after a
 * deploy. It runs in a child Node because the policy code is TypeScript in ES modules.
 */
function validatedPolicy(serviceDir) {
  const policyPath = join(serviceDir, 'policy.yml');
  const loader = pathToFileURL(join(__dirname, 'src', 'config', 'policy-file.ts')).href;
  const script = `const { loadPolicyFile } = await import(${JSON.stringify(loader)});
try { process.stdout.write(JSON.stringify(await loadPolicyFile(${JSON.stringify(policyPath)}))); }
catch (error) { process.stderr.write(error.message); process.exit(78); }`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  if (child.status !== 0) {
    throw new Error(`policy.yml cannot be deployed: ${child.stderr.trim() || `exit ${child.status}`}`);
  }
  return JSON.parse(child.stdout);
}

module.exports = (serverless) => {
  const policy = validatedPolicy(serverless.config.serviceDir);
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
      // Event-stream serde: the SDK's protocols import it only for an operation that streams events,
      // and none the handlers call does.
      '@smithy/core/event-streams',
    ],
    external: [],
    // Lets esbuild drop the SDK shapes of operations the handlers never call (sweep 1.11 MB to 0.62 MB
    // when it came in), and the error classes of the JSON-protocol clients (sweep 0.70 MB to 0.60 MB).
    plugins: [sdkSchemas],
    packager: 'npm',
  };
};
