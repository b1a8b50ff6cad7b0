import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type BuildOptions, build } from 'esbuild';
import { parse as parseYaml } from 'yaml';

/**
 * The handlers as Lambda gets them: bundled by esbuild with serverless.yml's `custom.esbuild`
 * options (read from the file, so the bench measures what `serverless package` ships), then
 * imported cold by fresh Node processes.
 */

export const HANDLERS = ['sweep', 'on-image-event'] as const;
export type HandlerName = (typeof HANDLERS)[number];

export interface BundleResult {
  handler: HandlerName;
  file: string;
  /** Minified bytes of the .mjs, the source map excluded. */
  bytes: number;
  mapBytes: number;
  /** The packages that weigh most in the bundle, by bytes of output. */
  heaviest: { name: string; bytes: number }[];
}

/** esbuild's own options; everything else under custom.esbuild belongs to the serverless plugin. */
const ESBUILD_KEYS = new Set([
  'bundle',
  'minify',
  'minifyWhitespace',
  'minifyIdentifiers',
  'minifySyntax',
  'keepNames',
  'sourcemap',
  'sourcesContent',
  'target',
  'platform',
  'format',
  'mainFields',
  'conditions',
  'banner',
  'footer',
  'define',
  'external',
  'plugins',
  'loader',
  'treeShaking',
  'legalComments',
  'charset',
  'inject',
  'alias',
  'drop',
  'dropLabels',
  'pure',
  'tsconfig',
  'resolveExtensions',
  'supported',
  'ignoreAnnotations',
]);

export interface PackagingOptions {
  esbuild: BuildOptions;
  extension: string;
  /** Where the options came from, and the plugin-only keys that esbuild itself does not take. */
  source: string;
  pluginOnly: string[];
}

/**
 * serverless.yml's `custom.esbuild`, as serverless-esbuild would hand it to esbuild: inline
 * options, or a `config` file (a module exporting options or a function of the serverless
 * instance). The plugin's `exclude` list is external to esbuild too.
 */
export function packagingOptions(repoRoot: string): PackagingOptions {
  // CloudFormation tags (!Sub, !GetAtt) are not ours to resolve; only custom.esbuild is read.
  const document = parseYaml(readFileSync(join(repoRoot, 'serverless.yml'), 'utf8'), {
    logLevel: 'error',
  }) as {
    custom?: { esbuild?: Record<string, unknown> };
  };
  const { config, ...inline } = document.custom?.esbuild ?? {};
  let options: Record<string, unknown> = inline;
  let source = 'serverless.yml custom.esbuild';
  if (typeof config === 'string') {
    const file = resolve(repoRoot, config);
    const loaded: unknown = createRequire(import.meta.url)(file);
    const serverless = { config: { serviceDir: repoRoot, servicePath: repoRoot } };
    const fromFile =
      typeof loaded === 'function' ? (loaded as (sls: unknown) => unknown)(serverless) : loaded;
    options = { ...inline, ...(fromFile as Record<string, unknown>) };
    source = `serverless.yml custom.esbuild.config (${config})`;
  }
  const esbuild: Record<string, unknown> = {};
  const pluginOnly: string[] = [];
  for (const [key, value] of Object.entries(options)) {
    if (ESBUILD_KEYS.has(key)) esbuild[key] = value;
    else pluginOnly.push(key);
  }
  const exclude = Array.isArray(options.exclude) ? (options.exclude as string[]) : [];
  const external = Array.isArray(options.external) ? (options.external as string[]) : [];
  esbuild.external = [...external, ...exclude];
  const extension = typeof options.outputFileExtension === 'string' ? options.outputFileExtension : '.js';
  return { esbuild: esbuild as BuildOptions, extension, source, pluginOnly };
}

export async function bundleHandlers(
  repoRoot: string,
  outDir: string,
  packaging = packagingOptions(repoRoot),
): Promise<BundleResult[]> {
  const results: BundleResult[] = [];
  for (const handler of HANDLERS) {
    const file = join(outDir, `${handler}${packaging.extension}`);
    const buildOptions: BuildOptions = {
      ...packaging.esbuild,
      entryPoints: [join(repoRoot, 'src', 'handlers', `${handler}.ts`)],
      outfile: file,
      metafile: true,
      write: true,
      logLevel: 'silent',
      absWorkingDir: repoRoot,
    };
    const result = await build(buildOptions);
    const output = Object.entries(result.metafile?.outputs ?? {}).find(([path]) => !path.endsWith('.map'));
    const byPackage = new Map<string, number>();
    for (const [path, input] of Object.entries(output?.[1].inputs ?? {})) {
      const name = packageOf(path);
      byPackage.set(name, (byPackage.get(name) ?? 0) + input.bytesInOutput);
    }
    results.push({
      handler,
      file,
      bytes: statSync(file).size,
      mapBytes: safeSize(`${file}.map`),
      heaviest: [...byPackage]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 5)
        .map(([name, bytes]) => ({ name, bytes })),
    });
  }
  return results;
}

/** `node_modules/@aws-sdk/client-ec2/dist-es/...` → `@aws-sdk/client-ec2`; our own code → `src`. */
function packageOf(path: string): string {
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  return match?.[1] ?? (path.startsWith('src/') ? 'src (ami-janitor)' : path);
}

function safeSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

export function temporaryDirectory(): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), 'ami-janitor-bench-'));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export interface ColdImport {
  /** Milliseconds from `import()` to the module being evaluated, one per fresh process. */
  samples: number[];
  medianMs: number;
  /** RSS of the process once the handler is imported, median, in MiB. */
  rssMb: number;
  /** Whole process, spawn to exit, median: Node's own start-up included. */
  processMedianMs: number;
}

/**
 * Imports `file` in `runs` fresh Node processes, one after another, with the environment the
 * handler reads at import (Region, policy file, credentials). The clock runs inside the child
 * around the dynamic import, so Node's own start-up is not counted.
 */
export async function coldImport(file: string, env: NodeJS.ProcessEnv, runs = 5): Promise<ColdImport> {
  const script = [
    'const start = performance.now();',
    `await import(${JSON.stringify(pathToFileURL(file).href)});`,
    'const ms = performance.now() - start;',
    "process.stdout.write(ms + ' ' + process.memoryUsage.rss());",
    // Clients and timers the handler creates must not keep the process waiting.
    'process.exit(0);',
  ].join('\n');
  const samples: number[] = [];
  const processTimes: number[] = [];
  const rss: number[] = [];
  for (let run = 0; run < runs; run++) {
    const started = performance.now();
    const output = await runNode(['--input-type=module', '-e', script], env);
    processTimes.push(performance.now() - started);
    const [ms, bytes] = output.trim().split(' ').map(Number);
    if (ms === undefined || bytes === undefined || !Number.isFinite(ms) || !Number.isFinite(bytes)) {
      throw new Error(`cold import of ${file} printed ${JSON.stringify(output)}`);
    }
    samples.push(ms);
    rss.push(bytes / 2 ** 20);
  }
  return { samples, medianMs: median(samples), processMedianMs: median(processTimes), rssMb: median(rss) };
}

function runNode(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`node exited with ${code}: ${stderr.slice(-1500)}`));
    });
  });
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const upper = sorted[middle] ?? 0;
  return sorted.length % 2 === 1 ? upper : ((sorted[middle - 1] ?? upper) + upper) / 2;
}
