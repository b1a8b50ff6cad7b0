import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import { EC2Client, type EC2ClientConfig } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { STSClient } from '@aws-sdk/client-sts';
import { clientTimeouts } from './http.ts';

/**
 * AWS SDK clients, created once per process so a warm Lambda reuses their connections.
 * Region and endpoint come from the SDK's own resolution (AWS_REGION, AWS_ENDPOINT_URL, ...).
 */

export interface AwsClients {
  ec2: EC2Client;
  autoScaling: AutoScalingClient;
  ssm: SSMClient;
  sts: STSClient;
  cloudTrail: CloudTrailClient;
}

export interface AwsClientsConfig {
  /** Overrides the SDK's region resolution, e.g. for the CLI's `--region`. */
  region?: string;
  /**
   * Overrides the SDK's credential chain, e.g. with a member account's role session. A provider
   * function that returns an `expiration` is asked again before that time, so a session can be
   * renewed under a client that lives longer than it.
   */
  credentials?: EC2ClientConfig['credentials'];
}

/** What every SDK client in src/adapters is built with. */
export function clientConfig(config: AwsClientsConfig = {}) {
  return {
    // withRetry (retry.ts) owns retries; SDK retries on top would multiply the attempts and hide the backoff.
    maxAttempts: 1,
    // No SDK default bounds a request at all; an endpoint that never answers would hold the run forever.
    ...clientTimeouts(),
    ...(config.region ? { region: config.region } : {}),
    ...(config.credentials ? { credentials: config.credentials } : {}),
  };
}

/**
 * Each client is built on first use and kept: a warm Lambda reuses its connections, and a cold
 * one pays only for the services it calls (the event handler never builds CloudTrail's, say).
 */
export function createAwsClients(config: AwsClientsConfig = {}): AwsClients {
  const common = clientConfig(config);
  let ec2: EC2Client | undefined;
  let autoScaling: AutoScalingClient | undefined;
  let ssm: SSMClient | undefined;
  let sts: STSClient | undefined;
  let cloudTrail: CloudTrailClient | undefined;
  return {
    get ec2() {
      ec2 ??= new EC2Client(common);
      return ec2;
    },
    get autoScaling() {
      autoScaling ??= new AutoScalingClient(common);
      return autoScaling;
    },
    get ssm() {
      ssm ??= new SSMClient(common);
      return ssm;
    },
    get sts() {
      sts ??= new STSClient(common);
      return sts;
    },
    get cloudTrail() {
      cloudTrail ??= new CloudTrailClient(common);
      return cloudTrail;
    },
  };
}

export const awsClients: AwsClients = createAwsClients();
