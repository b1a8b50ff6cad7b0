import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { STSClient } from '@aws-sdk/client-sts';

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
}

export function createAwsClients(config: AwsClientsConfig = {}): AwsClients {
  // withRetry (retry.ts) owns retries; SDK retries on top would multiply the attempts and hide the backoff.
  const common = { maxAttempts: 1, ...(config.region ? { region: config.region } : {}) };
  return {
    ec2: new EC2Client(common),
    autoScaling: new AutoScalingClient(common),
    ssm: new SSMClient(common),
    sts: new STSClient(common),
    cloudTrail: new CloudTrailClient(common),
  };
}

export const awsClients: AwsClients = createAwsClients();
