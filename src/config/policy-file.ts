import { constants, type Stats } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { errorCode, PolicyError } from '../errors.ts';
import { oneLine } from '../text.ts';
import { type Policy, parsePolicy } from './policy.ts';

/** Far more than a policy needs (the shipped one, every key documented, is about 5 KB). */
export const MAX_POLICY_FILE_BYTES = 1024 * 1024;

/**
 * Reads a YAML or JSON policy file (JSON is valid YAML) and validates it. The YAML parser is
 * loaded only here, so the Lambda bundles, whose policy is compiled in, leave it out.
 *
 * A file with no settings at all (empty, blank or only comments) is refused rather than taken as
 * every default: it is far more often the wrong file, or one cut short, than a choice; `{}` says
 * "every default" on purpose.
 */
export async function loadPolicyFile(path: string): Promise<Policy> {
  const shown = oneLine(path, 300);
  const text = await readPolicyText(path, shown);
  const { parse: parseYaml } = await import('yaml');
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    // The parser's message quotes the offending line; its first line says where, which is enough.
    const where = oneLine((error as Error).message.split('\n')[0] ?? '', 300);
    throw new PolicyError([`${shown} is not valid YAML or JSON: ${where}`], { cause: error });
  }
  if (document === null || document === undefined) {
    throw new PolicyError([
      `${shown} is empty: it holds no settings (only blanks, comments or null); write {} in it to use every default on purpose`,
    ]);
  }
  return parsePolicy(document);
}

/**
 * At most MAX_POLICY_FILE_BYTES from a regular file. The type is checked on the opened
 * descriptor, so what is read is what was checked; O_NONBLOCK lets a named pipe with no writer be
 * opened and refused instead of waiting forever. A device such as /dev/zero never ends, so the
 * read stops one byte past the limit whatever fstat said.
 */
async function readPolicyText(path: string, shown: string): Promise<string> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0));
  } catch (error) {
    throw new PolicyError([`cannot read policy file ${shown} (${errorCode(error)})`], { cause: error });
  }
  try {
    let stats: Stats;
    try {
      stats = await handle.stat();
    } catch (error) {
      throw new PolicyError([`cannot read policy file ${shown} (${errorCode(error)})`], { cause: error });
    }
    if (!stats.isFile()) {
      throw new PolicyError([
        `${shown} is not a regular file (${fileKind(stats)}); give the path of a policy file`,
      ]);
    }
    const tooLarge = () =>
      new PolicyError([
        `${shown} is larger than 1 MiB (${MAX_POLICY_FILE_BYTES} bytes); a policy is a few KB`,
      ]);
    if (stats.size > MAX_POLICY_FILE_BYTES) throw tooLarge();
    const buffer = Buffer.alloc(MAX_POLICY_FILE_BYTES + 1);
    let length = 0;
    try {
      while (length < buffer.length) {
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
        if (bytesRead === 0) break;
        length += bytesRead;
      }
    } catch (error) {
      throw new PolicyError([`cannot read policy file ${shown} (${errorCode(error)})`], { cause: error });
    }
    // The file may have grown since fstat.
    if (length > MAX_POLICY_FILE_BYTES) throw tooLarge();
    return buffer.toString('utf8', 0, length);
  } finally {
    await handle.close();
  }
}

function fileKind(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isFIFO()) return 'a named pipe';
  if (stats.isSocket()) return 'a socket';
  return 'not a file';
}
