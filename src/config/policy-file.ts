import { readFileSync } from 'node:fs';
import { PolicyError } from '../errors.ts';
import { type Policy, parsePolicy } from './policy.ts';

/**
 * Reads a YAML or JSON policy file (JSON is valid YAML) and validates it. The YAML parser is
 * loaded only here, so the Lambda bundles, whose policy is compiled in, leave it out.
 */
export async function loadPolicyFile(path: string): Promise<Policy> {
  const { parse: parseYaml } = await import('yaml');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new PolicyError([`cannot read policy file ${path}`], { cause: error });
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new PolicyError([`${path} is not valid YAML or JSON: ${(error as Error).message}`], {
      cause: error,
    });
  }
  return parsePolicy(document);
}
