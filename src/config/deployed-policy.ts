import { type Policy, parsePolicy } from './policy.ts';
import { loadPolicyFile } from './policy-file.ts';

/**
 * The deployed policy: compiled into the bundle at package time (see esbuild.config.cjs), or read
 * from a file where the code runs from source (tests, `serverless invoke local`).
 */
export async function loadDeployedPolicy(file: string): Promise<Policy> {
  const bundled = process.env.AMI_JANITOR_BUNDLED_POLICY;
  if (bundled) return parsePolicy(JSON.parse(bundled));
  return loadPolicyFile(file);
}
