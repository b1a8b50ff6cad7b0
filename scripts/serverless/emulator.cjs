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
//   any finding, warnings included. This template has some that AWS's ValidateTemplate accepts:
//   what the framework generates (a function given its own role also DependsOn that role, W3005),
//   what params left empty by default give (a conditional resource's empty ARN, E3510; conditions
//   comparing literals, W8003), and a Succeed state's OutputPath, which ASL allows (E3601). The
//   stack operations themselves still refuse a template the emulator cannot deploy.
// - The template URL osls hands CloudFormation (https://s3.amazonaws.com/<bucket>/<key>) is
//   rewritten to the same object on the endpoint. moto reads such a path-style URL only when it
//   contains `localhost` (else it takes the host's first label for the bucket), so a loopback
//   address is written as localhost there; the emulator looks the object up, it fetches nothing.
// - What the template reads from a resource moto's CloudFormation does not create is written in
//   as AWS would answer it. moto skips AWS::CloudWatch::Alarm (and AWS::Lambda::EventInvokeConfig,
//   which nothing reads) and lists it with no type; the dashboard's `${<alarm>.Arn}` would then
//   fail the whole stack. This runs last before the template is saved, when emulating only.
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

/**
 * Resource types moto's CloudFormation does not create, with what a template may read from one:
 * `Ref` and each `Fn::GetAtt` attribute, as the text Fn::Sub would put in their place.
 */
const NOT_CREATED = {
  'AWS::CloudWatch::Alarm': {
    Ref: (properties) => properties.AlarmName,
    Arn: (properties) =>
      `arn:\${AWS::Partition}:cloudwatch:\${AWS::Region}:\${AWS::AccountId}:alarm:${properties.AlarmName}`,
  },
};

/** `${Name}` and `${Name.Attribute}` in an Fn::Sub string; `${!Literal}` is left alone. */
const SUB_VARIABLE = /\$\{([A-Za-z0-9]+)(?:\.([A-Za-z0-9.]+))?\}/g;

/**
 * The template with every read of a resource the emulator does not create replaced by its value.
 * A read this cannot answer fails here, naming it, rather than failing the stack on the emulator.
 */
function answerForSkippedResources(template) {
  const resources = template.Resources ?? {};
  const answer = (id, attribute) => {
    const resource = resources[id];
    const answers = resource && NOT_CREATED[resource.Type];
    if (!answers) return undefined;
    const value = answers[attribute]?.(resource.Properties ?? {});
    if (typeof value !== 'string') {
      throw new Error(
        `emulator: cannot stand in for ${attribute === 'Ref' ? 'Ref' : `Fn::GetAtt ${attribute}`} of ${id} (${resource.Type})`,
      );
    }
    return value;
  };
  // The variables an Fn::Sub defines itself hide the resources of the same name.
  const substitute = (text, own = {}) =>
    text.replace(SUB_VARIABLE, (whole, id, attribute) =>
      Object.hasOwn(own, id) ? whole : (answer(id, attribute ?? 'Ref') ?? whole),
    );
  const visit = (node) => {
    if (Array.isArray(node)) return node.map(visit);
    if (node === null || typeof node !== 'object') return node;
    const keys = Object.keys(node);
    if (keys.length === 1 && keys[0] === 'Ref' && typeof node.Ref === 'string') {
      const value = answer(node.Ref, 'Ref');
      return value === undefined ? node : { 'Fn::Sub': value };
    }
    if (keys.length === 1 && keys[0] === 'Fn::GetAtt' && Array.isArray(node['Fn::GetAtt'])) {
      const [id, attribute] = node['Fn::GetAtt'];
      const value = answer(id, attribute);
      return value === undefined ? node : { 'Fn::Sub': value };
    }
    if (keys.length === 1 && keys[0] === 'Fn::Sub') {
      const sub = node['Fn::Sub'];
      if (typeof sub === 'string') return { 'Fn::Sub': substitute(sub) };
      if (Array.isArray(sub) && typeof sub[0] === 'string') {
        return { 'Fn::Sub': [substitute(sub[0], sub[1] ?? {}), visit(sub[1])] };
      }
    }
    return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, visit(value)]));
  };
  return visit(template);
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
      // Listed last in serverless.yml, so this runs after every other plugin's resources are in.
      'before:aws:package:finalize:saveServiceState': () => {
        const template = serverless.service.provider.compiledCloudFormationTemplate;
        Object.assign(template, answerForSkippedResources(template));
      },
    };
  }
}

module.exports = EmulatorPlugin;
module.exports.emulatorEndpoint = emulatorEndpoint;
module.exports.answerForSkippedResources = answerForSkippedResources;
