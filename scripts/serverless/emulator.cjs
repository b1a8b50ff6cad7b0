'use strict';

// `serverless deploy`, `info` and `remove` against an AWS emulator (moto_server, LocalStack) at
// AWS_ENDPOINT_URL. Inert unless that variable names a host outside AWS: without it, or with a
// real AWS endpoint in it, this plugin changes nothing, and a deploy goes to AWS as usual.
//
// The handlers and the CLI use the AWS SDK v3, which honours AWS_ENDPOINT_URL by itself. osls 3.x
// makes its own calls (CloudFormation, S3, STS, ...) through the AWS SDK v2, which ignores it, so
// a deploy would go to AWS while everything else talks to the emulator. Here:
// - osls's v2 SDK is pointed at the endpoint, with path-style S3 addressing (an emulator serves
//   buckets under its one host, not as <bucket>.s3.amazonaws.com);
// - CloudFormation's ValidateTemplate is skipped. moto answers it by running cfn-lint and fails on
//   any finding, warnings included. This template has two kinds that AWS's ValidateTemplate
//   accepts, both from params left empty by default: a conditional resource's empty ARN (E3510)
//   and conditions comparing literals once the params are filled in (W8003). The stack operations
//   themselves still refuse a template the emulator cannot deploy.
// - The template URL osls hands CloudFormation (https://s3.amazonaws.com/<bucket>/<key>) is
//   rewritten to the same object on the endpoint. moto reads such a path-style URL only when it
//   contains `localhost` (else it takes the host's first label for the bucket), so a loopback
//   address is written as localhost there; the emulator looks the object up, it fetches nothing.
//
// serverless-localstack was tried first: it works only with a `localhost` URL, and then hangs.

/** Hosts of AWS's own endpoints, for which this plugin stays inert. */
const AWS_HOST = /(^|\.)amazonaws\.com(\.cn)?$|(^|\.)(c2s\.ic|sc2s\.sgov)\.gov$/;

/** The emulator's endpoint, or undefined when the environment names none (or a real AWS one). */
function emulatorEndpoint(env = process.env) {
  const value = env.AWS_ENDPOINT_URL?.trim();
  if (!value) return undefined;
  let url;
  try {
    url = new URL(value);
  } catch (error) {
    throw new Error(`AWS_ENDPOINT_URL is not a URL: ${JSON.stringify(value)}`, { cause: error });
  }
  if (AWS_HOST.test(url.hostname)) return undefined;
  return url.href.replace(/\/+$/, '');
}

/** `https://<s3 host>/<bucket>/<key>` as the same object on the emulator. */
function templateUrlOn(endpoint, templateUrl) {
  const url = new URL(endpoint);
  if (['127.0.0.1', '[::1]'].includes(url.hostname)) url.hostname = 'localhost';
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}${new URL(templateUrl).pathname}`;
}

class EmulatorPlugin {
  constructor(serverless, _options, { log }) {
    this.hooks = {};
    const endpoint = emulatorEndpoint();
    if (!endpoint) return;

    // The very SDK instance osls's requests use (lib/aws/sdk-v2.js), resolved from osls itself.
    const sdk = require(require.resolve('aws-sdk', { paths: [serverless.config.serverlessPath] }));
    // Before any request: osls memoizes its service clients, each built from this global config.
    sdk.config.update({ endpoint, s3ForcePathStyle: true });

    const provider = serverless.getProvider('aws');
    const request = provider.request.bind(provider);
    provider.request = async (service, method, params, options) => {
      if (service === 'CloudFormation' && method === 'validateTemplate') {
        log.info('Emulator: ValidateTemplate skipped (moto lints the template and fails on warnings)');
        return {};
      }
      if (service === 'CloudFormation' && typeof params?.TemplateURL === 'string') {
        return request(
          service,
          method,
          { ...params, TemplateURL: templateUrlOn(endpoint, params.TemplateURL) },
          options,
        );
      }
      return request(service, method, params, options);
    };

    this.hooks = {
      initialize: () => log.notice(`Emulator: AWS calls go to ${endpoint} (AWS_ENDPOINT_URL), not to AWS`),
    };
  }
}

module.exports = EmulatorPlugin;
module.exports.emulatorEndpoint = emulatorEndpoint;
