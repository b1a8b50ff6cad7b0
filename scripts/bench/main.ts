/**
 * What `npm run bench` runs once its options are read (run.ts): the whole job of sweeping a simulated 10,000-AMI account, every 900 s invocation
 * until the account is done, behind an EC2 that meters AWS's documented token buckets, answers after
 * a delay and shares its buckets with other tools; with no AWS. The headline is the job's simulated
 * time against the pipelined bound, printed under each reading of what AWS does not document; then
 * calls against the minimum the account's composition needs, the buckets over time, one plan
 * invocation, the organisation fan-out, bundles, cold imports and memory, and one
 * `target …: PASS|FAIL` line per target. It is a report: it exits 0 whatever the targets say.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { rateLimitFor } from '../../src/adapters/limiter.ts';
import { MAX_INVOCATIONS } from '../../src/core/continuation.ts';
import { type AccountCounts, countsFor, REFERENCE_COUNTS } from './account.ts';
import { awsBucket } from './aws-rates.ts';
import {
  bundleHandlers,
  type ColdImport,
  coldImport,
  type HandlerName,
  packagingOptions,
  temporaryDirectory,
} from './bundle.ts';
import {
  Bench,
  type BenchConfig,
  bucketDemand,
  EARLY_TIMEOUT_MS,
  INVOCATION_MS,
  type Invocation,
  type Job,
  lowerBound,
  type MinimumRow,
  minimumCalls,
  notReachedOf,
  pipelinedBoundOf,
} from './harness.ts';
import type { MemoryProbe } from './memory-probe.ts';
import { type BenchOptions, DEFAULT_ORGANIZATION } from './options.ts';
import { type OrganizationResult, runOrganization } from './organization.ts';
import {
  boundFormula,
  describeCounts,
  describeIdle,
  describeIntended,
  describeInvocation,
  failedActionsOf,
  formatBuckets,
  formatCallTable,
  formatTarget,
  formatWindows,
  handlerTargets,
  int,
  invocationTargets,
  jobTargets,
  seconds,
  sizeLabel,
  sumCalls,
  type TargetLine,
  target,
} from './report.ts';
import { type AssociatedSnapshots, BACKGROUND_RETRY_MS } from './simulator.ts';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The executor's reserve: it starts no action with less than this left. */
const RESERVE_MS = 20_000;
/** The memory the peak-RSS target allows a sweep function. */
const LAMBDA_MEMORY_MB = 256;
/** Used when the bundle is not measured (--skip-bundle): roughly Node plus the bundled SDK. */
const ASSUMED_HANDLER_RSS_MB = 100;

/** The run's options, set once by runBench. */
let options: BenchOptions;
let counts: AccountCounts;

const benchConfig = (reading: AssociatedSnapshots): BenchConfig => ({
  counts,
  seed: options.seed,
  scale: options.scale,
  clock: options.clock,
  latency: options.latency,
  background: { share: options.backgroundShare, seed: options.seed },
  associatedSnapshots: reading,
  ...(options.headroom === undefined ? {} : { headroom: options.headroom }),
});

const READING_NAMES: Record<AssociatedSnapshots, string> = {
  free: 'DeleteAssociatedSnapshots free (draws no DeleteSnapshot token)',
  metered: 'DeleteAssociatedSnapshots metered (one DeleteSnapshot token per snapshot it deletes)',
};

/** What the simulator assumes where AWS documents nothing; printed with every run and in the README. */
function assumptions(): string[] {
  return [
    `latency: AWS publishes none. An inventory page answers after ${options.latency.pageMs} ms, any other call (a refusal too) after ${options.latency.callMs} ms; ` +
      'a request is metered and takes effect when it arrives, and its answer comes back after the delay',
    'refill: AWS says tokens are added "every second"; here they are added continuously, pro rata. A bucket is full when first used, ' +
      'and a refused request takes no token',
    `background: other tools take ${Math.round(options.backgroundShare * 100)}% of each bucket's refill, in bursts of ${Math.round(options.backgroundShare * 100)}% of its size ` +
      `arriving at random (on average every size ÷ refill seconds); what a burst cannot get it asks for again ${BACKGROUND_RETRY_MS / 1000} s later`,
    'unfiltered and unpaginated requests (DescribeSnapshots, DescribeInstances, DescribeVolumes, ...) draw on a smaller bucket of their own (50/10), ' +
      'beside the standard one; a request naming ids counts as filtered. The sweep always filters or pages, so it never draws on those',
    'actions the table does not name go by its categories: EnableImageDeprecation and DisableImageDeprecation are mutating (50/5); ' +
      'DescribeImageReferences, DescribeSnapshotAttribute and DescribeLockedSnapshots are non-mutating (100/20)',
    'STS, Auto Scaling and SSM are not EC2 and are not metered: the sweep sends them a handful of calls',
    'DeleteAssociatedSnapshots: AWS does not say whether the snapshots DeregisterImage deletes draw on the DeleteSnapshot bucket. ' +
      'The headline is printed for both readings (metered: a request whose snapshots the bucket cannot cover is refused as a whole); the targets use free',
    'continuation: the next invocation starts the moment the last one ends (the state machine hands over in no simulated time), ' +
      'in the same warm container, so the limiter remembers the buckets',
    'fan-out: each target (an account in a Region) has buckets of its own, as AWS meters per account and Region; a Map slot takes the next ' +
      'target as soon as one finishes, and cold starts and state transitions cost nothing',
  ];
}

function header(title: string, bench: Bench): void {
  console.log(`ami-janitor bench: ${title}`);
  console.log(`account   ${describeCounts(bench.counts)} (seed ${options.seed})`);
  console.log(
    `time      ${options.scale}× (${options.clock === 'idle' ? `simulated = event-loop idle × ${options.scale} + busy × 1` : `simulated = real elapsed × ${options.scale}`}); ` +
      `invocation budget ${seconds(INVOCATION_MS)}, early timeout ${seconds(EARLY_TIMEOUT_MS)} before, executor reserve ${seconds(RESERVE_MS)}`,
  );
  console.log(
    `EC2       answers after ${options.latency.pageMs} ms (inventory page) or ${options.latency.callMs} ms (other calls); ` +
      (options.backgroundShare > 0
        ? `other tools draw ${Math.round(options.backgroundShare * 100)}% of every bucket, in bursts`
        : 'no other tools draw on the buckets'),
  );
  console.log(
    `buckets   AWS's documented rates per account and Region (size/refill per second): ${bucketSummary()}`,
  );
  console.log(`limiter   headroom ${bench.limiter.headroom}; ${limiterMismatches()}`);
  for (const line of describeIntended(bench.intended)) console.log(`intended  ${line}`);
  console.log('assumptions (what AWS does not document):');
  for (const [index, line] of assumptions().entries()) console.log(`  A${index + 1}. ${line}`);
  console.log('');
}

/** APIs a sweep meters, for the header and the limiter comparison. */
const SWEEP_APIS = [
  'DescribeImages',
  'DescribeImageReferences',
  'DescribeLaunchTemplates',
  'DescribeLaunchTemplateVersions',
  'DescribeSnapshots',
  'DescribeLockedSnapshots',
  'DescribeSnapshotAttribute',
  'CreateTags',
  'DeleteTags',
  'EnableImageDeprecation',
  'DisableImageDeprecation',
  'DeregisterImage',
  'DeleteSnapshot',
];

function bucketSummary(): string {
  const groups = new Map<string, string[]>();
  for (const api of SWEEP_APIS) {
    const bucket = awsBucket(api);
    if (!bucket) continue;
    const key = `${bucket.bucket}/${bucket.refillPerSecond}`;
    groups.set(key, [...(groups.get(key) ?? []), api]);
  }
  return [...groups].map(([rate, apis]) => `${apis.join(', ')} ${rate}`).join('; ');
}

/** Where the limiter's configuration (src) differs from AWS's table: it shows up as throttling. */
function limiterMismatches(): string {
  const differences = SWEEP_APIS.flatMap((api) => {
    const aws = awsBucket(api);
    const ours = rateLimitFor(api);
    if (!aws || !ours) return [];
    if (aws.bucket === ours.bucket && aws.refillPerSecond === ours.refillPerSecond) return [];
    return [
      `${api} limiter ${ours.bucket}/${ours.refillPerSecond}, AWS ${aws.bucket}/${aws.refillPerSecond}`,
    ];
  });
  return differences.length === 0
    ? "its table agrees with AWS's for every API a sweep calls"
    : `its table differs from AWS's: ${differences.join('; ')}`;
}

interface JobResult {
  reading: AssociatedSnapshots;
  job: Job;
  bench: Bench;
  minimum: MinimumRow[];
  bound: { full: ReturnType<typeof pipelinedBoundOf>; paced: ReturnType<typeof pipelinedBoundOf> };
  failed: number;
  /** Images still to deregister and orphans still to delete once the job is over. */
  left: number;
}

/** One whole job on a fresh account, printed invocation by invocation. */
async function wholeJob(reading: AssociatedSnapshots, onBench?: (bench: Bench) => void): Promise<JobResult> {
  const bench = new Bench(benchConfig(reading));
  onBench?.(bench);
  const reference = bench.reference();
  const minimum = minimumCalls(reference, 'apply', bench.policy);
  const demand = bucketDemand(minimum, reference, reading);
  const bound = {
    full: pipelinedBoundOf(demand, 1),
    paced: pipelinedBoundOf(demand, bench.limiter.headroom),
  };
  console.log(`--- the whole job, ${READING_NAMES[reading]}`);
  console.log(
    `${'#'.padStart(3)} ${'wall'.padStart(8)}  ${'dereg'.padStart(6)} ${'orphans'.padStart(7)} ${'marked'.padStart(6)} ` +
      `${'not reached'.padStart(11)} ${'unread'.padStart(6)} ${'failed'.padStart(6)} ${'warn'.padStart(5)} ${'calls'.padStart(7)} ${'thr'.padStart(6)}  outcome`,
  );
  const job = await bench.runJob({
    reference,
    onInvocation: (invocation) => {
      const t = invocation.report?.totals;
      const left = notReachedOf(invocation.report);
      const calls = Object.values(invocation.calls).reduce((sum, c) => sum + c.accepted, 0);
      const refused = Object.values(invocation.calls).reduce((sum, c) => sum + c.throttled, 0);
      console.log(
        `${String(invocation.index).padStart(3)} ${seconds(invocation.wallMs).padStart(8)}  ${int(t?.deregistered ?? 0).padStart(6)} ` +
          `${int(t?.orphansDeleted ?? 0).padStart(7)} ${int(t?.marked ?? 0).padStart(6)} ${int(left.actions).padStart(11)} ` +
          `${int(left.unread).padStart(6)} ${String(failedActionsOf(invocation)).padStart(6)} ${int(invocation.warnings).padStart(5)} ` +
          `${int(calls).padStart(7)} ${int(refused).padStart(6)}  ${describeInvocation(invocation)}`,
      );
    },
  });
  const failed = job.invocations.reduce((sum, inv) => sum + failedActionsOf(inv), 0);
  const after = bench.reference();
  const rest = leftover(after.plan.actions, after.plan.snapshots?.actions ?? []);
  return { reading, job, bench, minimum, bound, failed, left: rest.deregister + rest.delete };
}

function printJob(result: JobResult): void {
  const { job, bench, minimum, bound } = result;
  const h = bench.limiter.headroom;
  const combined = job.combined;
  console.log(
    `${job.complete ? 'done' : 'NOT done'} after ${job.invocations.length} invocation(s)${job.stopped ? ` (${job.stopped})` : ''}: ` +
      `simulated ${seconds(job.simulatedMs)}, real ${seconds(job.realMs)}`,
  );
  console.log(
    `pipelined bound (busiest bucket ${bound.paced.busiest}, ${int(bound.paced.tokens)} tokens): ${seconds(bound.full.ms)} at 100% of the buckets, ` +
      `${seconds(bound.paced.ms)} at the limiter's ${h} headroom → the job took ${(job.simulatedMs / Math.max(1, bound.paced.ms)).toFixed(2)}× ` +
      `(${(job.simulatedMs / Math.max(1, bound.full.ms)).toFixed(2)}× the 100% bound)`,
  );
  if (combined) {
    const t = combined.totals;
    console.log(
      `combined report (continueReport): complete ${combined.complete}; deregistered ${int(t.deregistered)} of ${int(bench.intended.imagesRemoved)}, ` +
        `orphans deleted ${int(t.orphansDeleted)} of ${int(bench.intended.orphansDeleted)}, snapshots deleted ${int(t.snapshotsDeleted)}, ` +
        `marked ${int(t.marked)}, unmarked ${int(t.unmarked)}; failed ${int(t.failed)} (+ ${int(t.snapshotsFailed)} snapshots); ` +
        `failed actions in all ${result.failed}; not reached at the end ${int(notReachedOf(job.invocations.at(-1)?.report).actions)} actions, ` +
        `${int(notReachedOf(job.invocations.at(-1)?.report).unread)} orphans unread`,
    );
  }
  const redone = job.invocations.reduce(
    (sum, inv) =>
      sum + inv.redundancy.removedAgain + inv.redundancy.markedAgain + inv.redundancy.unmarkedAgain,
    0,
  );
  const after = bench.reference();
  const left = leftover(after.plan.actions, after.plan.snapshots?.actions ?? []);
  console.log(
    `actions redone: ${redone}; left in the account: ${int(left.deregister)} images to deregister, ${int(left.delete)} orphans to delete ` +
      `(and ${int(left.mark)} to mark: snapshots the job itself orphaned, whose grace period starts now)`,
  );
  console.log('');
  console.log(
    "API calls over the whole job beside one uninterrupted run's minimum (from the account's composition)",
  );
  const columns = [
    { label: 'job', calls: sumCalls(job.invocations) },
    ...(job.invocations.length > 1 ? [{ label: '#1', calls: job.invocations[0]?.calls ?? {} }] : []),
  ];
  for (const line of formatCallTable(minimum, columns)) console.log(line);
  console.log('');
  console.log('buckets over the whole job (the sweep’s tokens, the other tools’, its refused requests)');
  const origin = bench.simulator.origin;
  for (const line of formatBuckets(bench.simulator.usage(), {
    fromMs: job.startMs - origin,
    toMs: job.startMs - origin + job.simulatedMs,
    headroom: h,
    starts: job.invocations.map((inv) => inv.startMs - origin),
  })) {
    console.log(`  ${line}`);
  }
  const busiest = bench.simulator.usage().find((usage) => usage.bucket.key === bound.paced.busiest);
  if (busiest) {
    const windows = job.invocations.map((inv) => ({
      index: inv.index,
      fromMs: inv.startMs - origin,
      toMs: inv.startMs - origin + inv.wallMs,
    }));
    console.log(`  what keeps the job from its bound: ${describeIdle(busiest, windows, h)}`);
  }
  const first = job.invocations[0];
  if (first) {
    console.log('');
    console.log('busy windows in invocation 1 (first → last request, simulated, from its start)');
    for (const line of formatWindows(first)) console.log(line);
  }
  if (bench.log.samples.length > 0) {
    console.log('first warnings and errors logged');
    for (const sample of bench.log.samples) console.log(`  ${sample}`);
  }
  if (bench.simulator.unsupported.size > 0) {
    console.log(
      `commands the simulator does not implement: ${[...bench.simulator.unsupported.keys()].join(', ')}`,
    );
  }
  console.log('');
}

function referencesOf(result: JobResult): { calls: number; minimum: number } {
  const row = result.minimum.find((r) => r.api === 'DescribeImageReferences');
  return {
    calls: result.job.invocations.reduce(
      (sum, inv) => sum + (inv.calls.DescribeImageReferences?.accepted ?? 0),
      0,
    ),
    minimum: row ? row.decide + row.act : 0,
  };
}

const READING_LABELS: Record<AssociatedSnapshots, string> = {
  free: 'free: no DeleteSnapshot token',
  metered: 'metered: a DeleteSnapshot token per snapshot',
};

function headlineLines(results: readonly JobResult[]): string[] {
  const h = results[0]?.bench.limiter.headroom ?? 0.8;
  const lines = [
    `HEADLINE the whole job, ${describeCounts(counts)}: every invocation until the account is done, against the pipelined bound`,
    `  ${'DeleteAssociatedSnapshots'.padEnd(44)} ${'invoc.'.padStart(6)} ${'simulated'.padStart(10)} ${'bound 100%'.padStart(11)} ${`bound ${h}`.padStart(10)} ${'ratio'.padStart(6)}  ${'busiest bucket'.padEnd(16)} ${'failed'.padStart(6)} ${'left'.padStart(5)}`,
  ];
  for (const result of results) {
    lines.push(
      `  ${READING_LABELS[result.reading].padEnd(44)} ${String(result.job.invocations.length).padStart(6)} ` +
        `${seconds(result.job.simulatedMs).padStart(10)} ${seconds(result.bound.full.ms).padStart(11)} ${seconds(result.bound.paced.ms).padStart(10)} ` +
        `${`${(result.job.simulatedMs / Math.max(1, result.bound.paced.ms)).toFixed(2)}×`.padStart(6)}  ${result.bound.paced.busiest.padEnd(16)} ` +
        `${String(result.failed).padStart(6)} ${int(result.left).padStart(5)}${result.job.complete && result.left === 0 ? '' : '  NOT DONE: a job that leaves work is not faster'}`,
    );
  }
  const first = results[0];
  for (const reading of ['free', 'metered'] as const) {
    if (!first || results.some((result) => result.reading === reading)) continue;
    const demand = bucketDemand(first.minimum, first.job.reference, reading);
    const full = pipelinedBoundOf(demand, 1);
    const paced = pipelinedBoundOf(demand, h);
    lines.push(
      `  ${READING_LABELS[reading].padEnd(44)} ${'-'.padStart(6)} ${'not run'.padStart(10)} ${seconds(full.ms).padStart(11)} ${seconds(paced.ms).padStart(10)} ` +
        `${'-'.padStart(6)}  ${paced.busiest.padEnd(16)}   (bound only: --associated-snapshots both runs it too, which takes several times as long)`,
    );
  }
  lines.push(
    `  (ratio = simulated ÷ the bound at the limiter's ${h} headroom: the busiest bucket's time once every independent stream overlaps; ` +
      'left = images to deregister and orphans to delete still in the account at the end; the targets use the first row)',
  );
  return lines;
}

export async function runBench(chosen: BenchOptions): Promise<void> {
  options = chosen;
  counts = options.images === REFERENCE_COUNTS.images ? REFERENCE_COUNTS : countsFor(options.images);
  if (options.organization) {
    // The header describes one target's account.
    counts = countsFor(DEFAULT_ORGANIZATION.imagesPerTarget);
    const bench = new Bench(benchConfig('free'));
    header('the organisation fan-out (each target an account like this one)', bench);
    bench.close();
    printOrganization(await organization());
    return;
  }
  const handlers = options.skipBundle
    ? {
        bundles: [],
        imports: new Map<HandlerName, ColdImport>(),
        lines: ['handlers: not measured (--skip-bundle)'],
      }
    : await measureHandlers(options.invocations ? ['sweep'] : undefined);
  const handlerRssMb = handlers.imports.get('sweep')?.rssMb ?? ASSUMED_HANDLER_RSS_MB;

  let probe: Promise<MemoryProbe | { failure: string }> | undefined;
  let heapCapMb = 0;
  let evaluationCpuMs: number | undefined;
  const results: JobResult[] = [];
  for (const [index, reading] of options.readings.entries()) {
    const result = await wholeJob(reading, (bench) => {
      if (index > 0) return;
      header(
        `the whole job (apply invocations of ${seconds(INVOCATION_MS)} until the account is done, at most ${MAX_INVOCATIONS})`,
        bench,
      );
      // The first evaluation in this process: cold, as in a fresh Lambda container.
      const cold = bench.reference();
      evaluationCpuMs = cold.cpuMs.images + cold.cpuMs.snapshots;
      heapCapMb = Math.ceil(process.memoryUsage().heapUsed / 2 ** 20 + LAMBDA_MEMORY_MB - handlerRssMb);
      if (!options.skipMemory) probe = startMemoryProbe(options.images, heapCapMb);
    });
    printJob(result);
    results.push(result);
    result.bench.close();
  }
  for (const line of headlineLines(results)) console.log(line);
  console.log('');

  let plan: { invocation: Invocation; minimum: MinimumRow[] } | undefined;
  let org: OrganizationResult | undefined;
  if (!options.invocations) {
    plan = await planInvocation();
    if (!options.skipOrganization) {
      org = await organization();
      printOrganization(org);
    }
  }

  for (const line of handlers.lines) console.log(line);
  const probed = await probe;
  const peakRssMb = reportMemory(probed, handlerRssMb, heapCapMb);
  console.log('');

  const primary = results[0];
  if (!primary) return;
  for (const line of headlineLines(results)) console.log(line);
  if (org) console.log(`  ${organizationLine(org)}`);
  console.log('');
  const targets: TargetLine[] = [
    ...jobTargets({
      images: options.images,
      simulatedMs: primary.job.simulatedMs,
      boundAtHeadroomMs: primary.bound.paced.ms,
      headroom: primary.bench.limiter.headroom,
      references: referencesOf(primary),
      failedActions: primary.failed,
      complete: primary.job.complete,
      background: options.backgroundShare,
      latency: options.latency,
    }),
  ];
  if (options.invocations) {
    if (!Number.isNaN(peakRssMb)) {
      targets.push(
        target(
          `peak-rss-${sizeLabel(options.images)}`,
          peakRssMb <= LAMBDA_MEMORY_MB,
          Number.isFinite(peakRssMb) ? `${peakRssMb.toFixed(0)} MB` : 'did not fit a 256 MB function',
          `${LAMBDA_MEMORY_MB} MB`,
        ),
      );
    }
  } else {
    targets.push(
      ...handlerTargets(handlers.bundles, handlers.imports),
      ...invocationTargets({
        ...(plan ? { plan: plan.invocation, planMinimum: plan.minimum } : {}),
        job: primary.job.invocations,
        jobMinimum: primary.minimum,
        ...(options.skipMemory ? {} : { peakRssMb }),
        atReferenceSize: options.images === REFERENCE_COUNTS.images,
        ...(evaluationCpuMs === undefined ? {} : { evaluationCpuMs }),
      }),
    );
  }
  for (const line of targets) console.log(formatTarget(line));
  const passed = targets.filter((line) => line.pass).length;
  console.log(`targets: ${passed} passed, ${targets.length - passed} failed`);
}

/** One plan invocation on a fresh account: deciding everything, changing nothing. */
async function planInvocation(): Promise<{ invocation: Invocation; minimum: MinimumRow[] }> {
  const bench = new Bench(benchConfig(options.readings[0] ?? 'free'));
  try {
    const reference = bench.reference();
    const minimum = minimumCalls(reference, 'plan', bench.policy);
    const invocation = await bench.invoke('plan', reference);
    const bound = lowerBound(minimum);
    console.log('--- per invocation: one plan on a fresh account (every read of a sweep, no change)');
    for (const line of formatCallTable(minimum, [{ label: 'plan', calls: invocation.calls }]))
      console.log(line);
    console.log(
      `simulated ${seconds(invocation.wallMs)}; bound ${seconds(bound)} at 100% of the buckets (${(invocation.wallMs / Math.max(1, bound)).toFixed(2)}×), ` +
        `${seconds(lowerBound(minimum, bench.limiter.headroom))} at the limiter's ${bench.limiter.headroom}; ${describeInvocation(invocation)}; ` +
        `retries ${invocation.retries}; process CPU ${seconds(invocation.cpuMs)}`,
    );
    console.log(`  bound formula: ${boundFormula(minimum)}`);
    for (const line of formatWindows(invocation)) console.log(line);
    console.log('');
    return { invocation, minimum };
  } finally {
    bench.close();
  }
}

async function organization(): Promise<OrganizationResult> {
  return runOrganization(
    { ...DEFAULT_ORGANIZATION, samples: options.orgSamples },
    {
      scale: options.scale,
      clock: options.clock,
      latency: options.latency,
      background: { share: options.backgroundShare, seed: options.seed },
      associatedSnapshots: options.readings[0] ?? 'free',
      seed: options.seed,
      ...(options.headroom === undefined ? {} : { headroom: options.headroom }),
    },
  );
}

function printOrganization(org: OrganizationResult): void {
  const { shape } = org;
  console.log(
    `--- organisation fan-out: ${shape.accounts} accounts × ${shape.regions} Regions = ${org.targets} targets of ${int(shape.imagesPerTarget)} images, ` +
      `Map concurrency ${shape.concurrency}`,
  );
  for (const sample of org.sampled) {
    console.log(
      `  target seed ${sample.seed}: whole job ${seconds(sample.jobMs)} in ${sample.invocations} invocation(s)${sample.complete ? '' : ' (NOT complete)'}, ` +
        `bound ${seconds(sample.boundMs)} (${(sample.jobMs / Math.max(1, sample.boundMs)).toFixed(2)}×), failed ${sample.failed}, real ${seconds(sample.realMs)}`,
    );
  }
  console.log(`  ${organizationLine(org)}; real ${seconds(org.realMs)}`);
  console.log('');
}

function organizationLine(org: OrganizationResult): string {
  const { shape } = org;
  return (
    `fan-out of ${org.targets} targets × ${int(shape.imagesPerTarget)} images at Map concurrency ${shape.concurrency}: ${seconds(org.makespanMs)} simulated ` +
    `(makespan of list-scheduling the targets' whole-job times on ${shape.concurrency} slots; ${org.sampled.length} targets swept, the others take their times in turn) ` +
    `vs bound ${seconds(org.boundMs)} (the same schedule of each target's pipelined bound at the headroom) → ${(org.makespanMs / Math.max(1, org.boundMs)).toFixed(2)}×; ` +
    `⌈${org.targets}/${shape.concurrency}⌉ × the slowest target = ${seconds(org.wavesMs)}`
  );
}

async function measureHandlers(only?: readonly HandlerName[]) {
  const directory = temporaryDirectory();
  try {
    const packaging = packagingOptions(REPO_ROOT);
    const bundles = await bundleHandlers(REPO_ROOT, directory.path, packaging);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      AWS_REGION: 'us-east-1',
      AMI_JANITOR_POLICY_FILE: `${REPO_ROOT}policy.yml`,
      AWS_ACCESS_KEY_ID: 'x',
      AWS_SECRET_ACCESS_KEY: 'y',
    };
    const imports = new Map<HandlerName, ColdImport>();
    const lines = [
      `handlers (esbuild with ${packaging.source}; external: ${(packaging.esbuild.external ?? []).join(', ') || 'none'}; ` +
        'cold import = median of 5 fresh node processes, clock around import() inside the child)',
    ];
    for (const bundle of bundles) {
      if (only && !only.includes(bundle.handler)) continue;
      const cold = await coldImport(bundle.file, env, 5);
      imports.set(bundle.handler, cold);
      lines.push(
        `  ${bundle.handler.padEnd(16)} ${int(bundle.bytes).padStart(10)} B minified (+ ${int(bundle.mapBytes)} B map)   ` +
          `import ${cold.medianMs.toFixed(0)} ms median [${cold.samples.map((ms) => ms.toFixed(0)).join(', ')}], ` +
          `whole process ${cold.processMedianMs.toFixed(0)} ms, RSS after import ${cold.rssMb.toFixed(0)} MB`,
        `  ${''.padEnd(16)} heaviest: ${bundle.heaviest.map((entry) => `${entry.name} ${int(entry.bytes / 1000)} kB`).join(', ')}`,
      );
    }
    return { bundles: only ? bundles.filter((b) => only.includes(b.handler)) : bundles, imports, lines };
  } finally {
    directory.remove();
  }
}

/** What a Lambda running the bundle would hold: the bundled handler once imported, plus what the sweep adds. */
function reportMemory(
  probed: MemoryProbe | { failure: string } | undefined,
  handlerRssMb: number,
  heapCapMb: number,
): number {
  const label = `peak RSS, Lambda estimate (${sizeLabel(options.images)})`.padEnd(44);
  if (probed === undefined) {
    console.log(`${label}not measured (--skip-memory)`);
    return Number.NaN;
  }
  if ('failure' in probed) {
    console.log(`${label}the sweep did NOT fit a ${heapCapMb} MB heap cap: ${probed.failure}`);
    return Number.POSITIVE_INFINITY;
  }
  const growth = Math.max(0, probed.rssPeakMb - probed.rssBeforeMb);
  const peak = handlerRssMb + growth;
  console.log(
    `${label}${peak.toFixed(0)} MB = bundled sweep handler after import ${handlerRssMb.toFixed(0)} MB ` +
      `+ RSS growth during one uninterrupted apply of the whole job ${growth.toFixed(0)} MB (which holds at once every decision and ` +
      `outcome any invocation of the job holds), in a process whose V8 heap was capped at ${heapCapMb} MB ` +
      `(what the harness holds + ${LAMBDA_MEMORY_MB} MB − the handler; heap ${probed.heapBeforeMb.toFixed(0)} → peak ${probed.heapPeakMb.toFixed(0)} MB)`,
  );
  return peak;
}

/** Runs memory-probe.ts in its own process under a heap cap, beside the timed sweep. */
function startMemoryProbe(imageCount: number, heapCapMb: number): Promise<MemoryProbe | { failure: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [
        `--max-old-space-size=${heapCapMb}`,
        fileURLToPath(new URL('memory-probe.ts', import.meta.url)),
        String(imageCount),
        String(options.seed),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('close', (code) => {
      if (code === 0) {
        resolve(JSON.parse(stdout) as MemoryProbe);
        return;
      }
      const oom = /heap out of memory|Reached heap limit/i.test(stderr);
      resolve({
        failure: oom
          ? 'JavaScript heap out of memory'
          : `exit ${code}: ${stderr.trim().split('\n').slice(-3).join(' ')}`,
      });
    });
  });
}

function leftover(
  imageActions: readonly { kind: string }[],
  snapshotActions: readonly { kind: string }[],
): { deregister: number; delete: number; mark: number } {
  return {
    deregister: imageActions.filter((a) => a.kind === 'deregister').length,
    delete: snapshotActions.filter((a) => a.kind === 'delete').length,
    mark: [...imageActions, ...snapshotActions].filter((a) => a.kind === 'mark').length,
  };
}
