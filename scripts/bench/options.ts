import { parseArgs } from 'node:util';
import { REFERENCE_COUNTS } from './account.ts';
import {
  type AssociatedSnapshots,
  type ClockMode,
  DEFAULT_BACKGROUND,
  DEFAULT_LATENCY,
  type Latency,
} from './simulator.ts';

/**
 * The bench's command line: every option, checked before anything heavy is loaded, so `--help`
 * and a usage error (exit 64) answer at once whatever state the sweep's code is in.
 */

/** The organisation the fan-out figure sweeps. */
export interface OrganizationShape {
  accounts: number;
  regions: number;
  imagesPerTarget: number;
  concurrency: number;
  /** Targets actually swept; the others take their times in turn. */
  samples: number;
}

export const DEFAULT_ORGANIZATION: OrganizationShape = {
  accounts: 50,
  regions: 2,
  imagesPerTarget: 2000,
  concurrency: 10,
  samples: 3,
};

export const USAGE = `Usage: npm run bench -- [options]

Runs the whole job of sweeping a simulated account (every 900 s invocation until it is done) behind
token-bucket EC2, and prints its figures and targets.

Options:
  --images <n>               Images in the simulated account (default 10000, or 50000 with --invocations;
                             snapshots and the rest scale with it)
  --invocations              The whole job only: no plan, no fan-out, no cold imports (the sweep handler is
                             still bundled for its memory)
  --associated-snapshots <r> Whether DeregisterImage's DeleteAssociatedSnapshots draws on the DeleteSnapshot
                             bucket, which AWS does not document: free, metered or both (the headline under
                             each; default both, or free with --invocations, which then prints the metered
                             reading's bound only; the targets use the first)
  --background <0..1>        Share of each bucket other tools draw, in bursts (default ${DEFAULT_BACKGROUND.share}; 0 for none)
  --latency-page <ms>        Simulated answer time of an inventory page (default ${DEFAULT_LATENCY.pageMs})
  --latency-call <ms>        Simulated answer time of any other call (default ${DEFAULT_LATENCY.callMs})
  --headroom <0..1>          The limiter's share of each bucket (default the limiter's own, 0.8)
  --scale <n>                Simulated seconds per real second (default 50)
  --clock idle|elapsed       How simulated time advances (default idle)
  --seed <n>                 Seed of the generated account (default 1)
  --organization             Only the organisation fan-out: ${DEFAULT_ORGANIZATION.accounts} accounts × ${DEFAULT_ORGANIZATION.regions} Regions × ${DEFAULT_ORGANIZATION.imagesPerTarget} images, Map concurrency ${DEFAULT_ORGANIZATION.concurrency}
  --org-samples <n>          Targets of the fan-out actually swept; the rest take their times in turn (default ${DEFAULT_ORGANIZATION.samples})
  --skip-organization        Leave the fan-out out of the default run
  --skip-bundle              Do not bundle and time the handlers
  --skip-memory              Do not measure memory
  -h, --help                 This help`;

export interface BenchOptions {
  images: number;
  invocations: boolean;
  /** The readings of DeleteAssociatedSnapshots to run; the first is the one the targets use. */
  readings: AssociatedSnapshots[];
  backgroundShare: number;
  latency: Latency;
  headroom?: number;
  scale: number;
  clock: ClockMode;
  seed: number;
  organization: boolean;
  orgSamples: number;
  skipOrganization: boolean;
  skipBundle: boolean;
  skipMemory: boolean;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

/** The options of `argv`, or 'help'; a UsageError names what is wrong. */
export function parseBenchOptions(argv: readonly string[]): BenchOptions | 'help' {
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse(argv).values;
  } catch (error) {
    throw new UsageError((error as Error).message, { cause: error });
  }
  if (values.help) return 'help';
  const number = (name: string, value: string | undefined, allowed: (n: number) => boolean) => {
    if (value === undefined) return undefined;
    const parsed = Number(value);
    if (value.trim() === '' || !Number.isFinite(parsed) || !allowed(parsed)) {
      throw new UsageError(`--${name} got '${value}', which is not allowed (see the options below)`);
    }
    return parsed;
  };
  if (values.clock !== 'idle' && values.clock !== 'elapsed') {
    throw new UsageError('--clock must be idle or elapsed');
  }
  // Both readings double a job's run; on the large account that is many minutes more.
  const reading = values['associated-snapshots'] ?? (values.invocations ? 'free' : 'both');
  if (reading !== 'free' && reading !== 'metered' && reading !== 'both') {
    throw new UsageError('--associated-snapshots must be free, metered or both');
  }
  const headroom = number('headroom', values.headroom, (n) => n > 0 && n <= 1);
  return {
    images:
      number('images', values.images, (n) => Number.isInteger(n) && n >= 10) ??
      (values.invocations ? 50_000 : REFERENCE_COUNTS.images),
    invocations: values.invocations === true,
    readings: reading === 'both' ? ['free', 'metered'] : [reading],
    backgroundShare:
      number('background', values.background, (n) => n >= 0 && n < 1) ?? DEFAULT_BACKGROUND.share,
    latency: {
      pageMs: number('latency-page', values['latency-page'], (n) => n >= 0) ?? DEFAULT_LATENCY.pageMs,
      callMs: number('latency-call', values['latency-call'], (n) => n >= 0) ?? DEFAULT_LATENCY.callMs,
    },
    ...(headroom === undefined ? {} : { headroom }),
    scale: number('scale', values.scale, (n) => n >= 1) ?? 50,
    clock: values.clock,
    seed: number('seed', values.seed, Number.isInteger) ?? 1,
    organization: values.organization === true,
    orgSamples:
      number('org-samples', values['org-samples'], (n) => Number.isInteger(n) && n >= 1) ??
      DEFAULT_ORGANIZATION.samples,
    skipOrganization: values['skip-organization'] === true,
    skipBundle: values['skip-bundle'] === true,
    skipMemory: values['skip-memory'] === true,
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    options: {
      help: { type: 'boolean', short: 'h', default: false },
      scale: { type: 'string', default: '50' },
      images: { type: 'string' },
      clock: { type: 'string', default: 'idle' },
      headroom: { type: 'string' },
      seed: { type: 'string', default: '1' },
      invocations: { type: 'boolean', default: false },
      'associated-snapshots': { type: 'string' },
      background: { type: 'string' },
      'latency-page': { type: 'string' },
      'latency-call': { type: 'string' },
      organization: { type: 'boolean', default: false },
      'org-samples': { type: 'string' },
      'skip-organization': { type: 'boolean', default: false },
      'skip-bundle': { type: 'boolean', default: false },
      'skip-memory': { type: 'boolean', default: false },
    },
  });
}
