/**
 * `npm run bench`: a full sweep of a simulated 10,000-AMI account under EC2's token buckets, with
 * no AWS. Prints API calls beside the minimum, simulated time beside the bucket lower bound,
 * throttling, failures, memory, evaluation CPU, bundle sizes and cold imports, then one
 * `target …: PASS|FAIL` line per target. It is a report: it exits 0 whatever the targets say.
 *
 *   node scripts/bench/run.ts [--scale 50] [--images 10000] [--clock idle|elapsed] [--headroom 0.8]
 *                             [--seed 1] [--skip-bundle]
 *   node scripts/bench/run.ts --invocations [--images 50000]   a run over several 900 s invocations
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  type Continuation,
  continueReport,
  MAX_INVOCATIONS,
  nextContinuation,
} from '../../src/core/continuation.ts';
import type { RunReport } from '../../src/core/report.ts';
import { countsFor, REFERENCE_COUNTS } from './account.ts';
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
  CHAINS,
  EARLY_TIMEOUT_MS,
  INVOCATION_MS,
  type Invocation,
  lowerBound,
  minimumCalls,
  phaseBounds,
  pipelinedBound,
} from './harness.ts';
import type { MemoryProbe } from './memory-probe.ts';
import {
  boundFormula,
  callRows,
  describeCounts,
  describeIntended,
  describeInvocation,
  evaluateTargets,
  failedActionsOf,
  formatCallTable,
  formatTarget,
  formatWindows,
  int,
  ratio,
  seconds,
  throttlingFailuresOf,
} from './report.ts';
import type { ClockMode } from './simulator.ts';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The executor's reserve: it starts no action with less than this left. */
const RESERVE_MS = 20_000;
/** The memory the peak-RSS target allows a sweep function. */
const LAMBDA_MEMORY_MB = 256;
/** Used when the bundle is not measured (--skip-bundle): roughly Node plus the bundled SDK. */
const ASSUMED_HANDLER_RSS_MB = 100;

const USAGE = `Usage: npm run bench -- [options]

Runs the sweep on a simulated account behind token-bucket EC2 and prints its figures and targets.

Options:
  --images <n>        Images in the simulated account (default 10000; snapshots and the rest scale with it)
  --invocations       Run repeated 900 s invocations until the account is done (continuation)
  --scale <n>         Simulated seconds per real second (default 50)
  --clock idle|elapsed  How simulated time advances (default idle)
  --headroom <0..1>   The limiter's share of each bucket (default the limiter's own, 0.8)
  --seed <n>          Seed of the generated account (default 1)
  --skip-bundle       Do not bundle and time the handlers
  --skip-memory       Do not measure memory
  -h, --help          This help`;

let parsed: ReturnType<typeof parseOptions>;
try {
  parsed = parseOptions();
} catch (error) {
  process.stderr.write(`bench: ${(error as Error).message}\n\n${USAGE}\n`);
  process.exit(64);
}
if (parsed.values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const { values: args } = parsed;

function parseOptions() {
  return parseArgs({
    options: {
      help: { type: 'boolean', short: 'h', default: false },
      scale: { type: 'string', default: '50' },
      images: { type: 'string' },
      clock: { type: 'string', default: 'idle' },
      headroom: { type: 'string' },
      seed: { type: 'string', default: '1' },
      invocations: { type: 'boolean', default: false },
      'skip-bundle': { type: 'boolean', default: false },
      'skip-memory': { type: 'boolean', default: false },
    },
  });
}

function numberArg(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!Number.isFinite(parsed)) throw new RangeError(`--${name} must be a number, got '${value}'`);
  return parsed;
}

const scale = numberArg('scale', args.scale) ?? 50;
const seed = numberArg('seed', args.seed) ?? 1;
const headroom = numberArg('headroom', args.headroom);
if (args.clock !== 'idle' && args.clock !== 'elapsed')
  throw new RangeError('--clock must be idle or elapsed');
const clock: ClockMode = args.clock;

function header(bench: Bench, title: string): void {
  console.log(`ami-janitor bench: ${title}`);
  console.log(`account   ${describeCounts(bench.counts)} (seed ${seed})`);
  console.log(
    `time      ${scale}× (${clock === 'idle' ? `simulated = event-loop idle × ${scale} + busy × 1` : `simulated = real elapsed × ${scale}`}); ` +
      `invocation budget ${seconds(INVOCATION_MS)}, early timeout ${seconds(EARLY_TIMEOUT_MS)} before, executor reserve ${seconds(RESERVE_MS)}`,
  );
  console.log(
    `buckets   Describe* 100/20 s⁻¹; DeregisterImage, DeleteSnapshot, *ImageDeprecation 100/5 s⁻¹; CreateTags, DeleteTags 100/10 s⁻¹; ` +
      `limiter headroom ${bench.limiter.headroom}`,
  );
  for (const line of describeIntended(bench.intended)) console.log(`intended  ${line}`);
  console.log('');
}

async function fullSweep(): Promise<void> {
  const images = numberArg('images', args.images) ?? REFERENCE_COUNTS.images;
  const counts = images === REFERENCE_COUNTS.images ? REFERENCE_COUNTS : countsFor(images);
  // Bundles and cold imports first, before this process builds the simulated account: the memory
  // probe needs the bundled handler's footprint, and the timing of fresh processes must compete
  // neither with the sweep nor with the collector tidying up after the account's generation.
  const {
    bundles,
    imports,
    lines: handlerLines,
  } = args['skip-bundle']
    ? {
        bundles: [],
        imports: new Map<HandlerName, ColdImport>(),
        lines: ['handlers: not measured (--skip-bundle)'],
      }
    : await measureHandlers();
  const bench = new Bench({ counts, seed, scale, clock, ...(headroom === undefined ? {} : { headroom }) });
  header(
    bench,
    'full sweep (plan, then apply with the grace period over and caps high enough for everything)',
  );
  const handlerRssMb = imports.get('sweep')?.rssMb ?? ASSUMED_HANDLER_RSS_MB;

  // The first evaluation in this process: cold, as in a fresh Lambda container. A plan changes
  // nothing, so the same evaluation serves the apply too.
  const reference = bench.reference();
  const evaluationCpuMs = reference.cpuMs.images + reference.cpuMs.snapshots;
  const heapCapMb = Math.ceil(process.memoryUsage().heapUsed / 2 ** 20 + LAMBDA_MEMORY_MB - handlerRssMb);
  const probe = args['skip-memory'] ? undefined : startMemoryProbe(images, heapCapMb);
  const memory = sampleRss();
  const realStart = performance.now();
  const plan = await bench.invoke('plan', reference);
  const apply = await bench.invoke('apply', reference);
  const sweepRealMs = performance.now() - realStart;
  const rss = memory.stop();
  const after = bench.reference();
  bench.close();
  const probed = await probe;
  const runs = [plan, apply];

  console.log('API calls per operation');
  for (const line of formatCallTable(callRows(runs), ['plan', 'apply'])) console.log(line);
  console.log('');

  const full = minimumCalls(apply.reference, undefined, 'apply', bench.policy);
  console.log('Figures (simulated seconds unless marked real)');
  const row = (label: string, ...cells: string[]) =>
    console.log(`${label.padEnd(44)}${cells.map((cell) => cell.padEnd(34)).join('')}`);
  row('', 'plan', 'apply');
  row('simulated wall time', seconds(plan.wallMs), seconds(apply.wallMs));
  row(
    'lower bound, AWS bucket rates',
    `${seconds(plan.boundMs)} (${(plan.wallMs / Math.max(1, plan.boundMs)).toFixed(2)}×)`,
    `${seconds(apply.boundMs)} (${(apply.wallMs / Math.max(1, apply.boundMs)).toFixed(2)}×)`,
  );
  row(
    `lower bound at the limiter's ${bench.limiter.headroom} headroom`,
    seconds(plan.boundAtHeadroomMs),
    seconds(apply.boundAtHeadroomMs),
  );
  row('  bound formula', boundFormula(apply.minimum));
  row('finished', describeInvocation(plan), describeInvocation(apply));
  row(
    'throttled calls',
    `${plan.retries >= totalThrottled(plan) ? 'all retried' : 'NOT all retried'}: ${totalThrottled(plan)}`,
    `${apply.retries >= totalThrottled(apply) ? 'all retried' : 'NOT all retried'}: ${totalThrottled(apply)}`,
  );
  row('retries (withRetry backoffs)', String(plan.retries), String(apply.retries));
  row(
    'failed actions (of them: throttling)',
    `${failedActionsOf(plan)} (${throttlingFailuresOf(plan)})`,
    `${failedActionsOf(apply)} (${throttlingFailuresOf(apply)})`,
  );
  row('warnings logged', String(plan.warnings), String(apply.warnings));
  row('process CPU during the run (real)', seconds(plan.cpuMs), seconds(apply.cpuMs));
  console.log(
    `${'peak RSS of this bench process'.padEnd(44)}${rss.maxRssMb.toFixed(0)} MB (maxRSS); ${rss.beforeMb.toFixed(0)} MB before the sweep ` +
      '(Node, type stripping, the unbundled SDK, sinon, the account in the simulator)',
  );
  console.log(
    `${'RSS growth during plan + apply'.padEnd(44)}${rss.growthMb.toFixed(0)} MB (RSS sampled every 20 ms real: peak ${rss.peakMb.toFixed(0)} MB − ${rss.beforeMb.toFixed(0)} MB)`,
  );
  console.log(
    `${'rule evaluation + planning CPU'.padEnd(44)}${seconds(evaluationCpuMs)} (images ${seconds(reference.cpuMs.images)}, snapshots ${seconds(reference.cpuMs.snapshots)}; cold, first in the process)`,
  );
  console.log(`${'real time of plan + apply'.padEnd(44)}${seconds(sweepRealMs)}`);
  console.log('');

  const report = apply.report;
  if (report) {
    const t = report.totals;
    console.log(
      `apply did: deregistered ${int(t.deregistered)}, marked ${int(t.marked)}, unmarked ${int(t.unmarked)}; ` +
        `orphans deleted ${int(t.orphansDeleted)}, snapshots marked ${int(t.snapshotsMarked)}, unmarked ${int(t.snapshotsUnmarked)}; ` +
        `snapshots deleted in all ${int(t.snapshotsDeleted)}; not reached ${int(t.notReached)}`,
    );
  }
  const left = leftover(after.plan.actions, after.plan.snapshots?.actions ?? []);
  console.log(
    `left in the account: ${int(left.deregister)} images to deregister, ${int(left.delete)} orphans to delete, ` +
      `${int(left.mark + left.unmark)} tags to change${left.deregister + left.delete > 0 ? '' : ' (everything eligible was removed)'}`,
  );
  const chainLines = CHAINS.map((chain) => {
    const part = phaseBounds(full, 1, chain);
    return `${chain}: decide ${seconds(part.decide)} + act ${seconds(part.act)}`;
  });
  const paced = CHAINS.map((chain) => phaseBounds(full, bench.limiter.headroom, chain));
  const actingTime = (part: { decide: number }) => INVOCATION_MS - RESERVE_MS - part.decide;
  const invocationsNeeded = paced.some((part) => actingTime(part) <= 0)
    ? 'never in 900 s invocations: deciding alone takes longer'
    : `≥ ${Math.max(...paced.map((part) => Math.ceil(part.act / actingTime(part))))} invocation(s) of 900 s if each re-decides (at the limiter's pace)`;
  console.log(
    `the whole job at the bucket rates: ${seconds(lowerBound(full))} (${chainLines.join('; ')}; ` +
      `${seconds(pipelinedBound(full))} if deciding and acting fully overlapped): ${invocationsNeeded}`,
  );
  console.log('');
  console.log('busy windows in the apply (first → last request, simulated, from the invocation start)');
  for (const line of formatWindows(apply)) console.log(line);
  if (bench.log.samples.length > 0) {
    console.log('');
    console.log('first warnings and errors logged');
    for (const sample of bench.log.samples) console.log(`  ${sample}`);
  }
  if (bench.simulator.unsupported.size > 0) {
    console.log(
      `commands the simulator does not implement: ${[...bench.simulator.unsupported.keys()].join(', ')}`,
    );
  }
  console.log('');

  for (const line of handlerLines) console.log(line);
  // What a Lambda running the bundle would hold: the bundled handler once imported, plus what the
  // sweep adds on top when V8 has no more heap than such a Lambda would give it.
  let peakRssMb = rss.maxRssMb;
  if (probed === undefined) {
    console.log(
      `${'peak RSS, Lambda estimate'.padEnd(44)}not measured (--skip-memory): the target uses this process's maxRSS`,
    );
  } else if ('failure' in probed) {
    peakRssMb = Number.POSITIVE_INFINITY;
    console.log(
      `${'peak RSS, Lambda estimate'.padEnd(44)}the sweep did NOT fit a ${heapCapMb} MB heap cap: ${probed.failure}`,
    );
  } else {
    const growth = Math.max(0, probed.rssPeakMb - probed.rssBeforeMb);
    peakRssMb = handlerRssMb + growth;
    console.log(
      `${'peak RSS, Lambda estimate'.padEnd(44)}${peakRssMb.toFixed(0)} MB = bundled sweep handler after import ${handlerRssMb.toFixed(0)} MB ` +
        `+ RSS growth during plan + apply ${growth.toFixed(0)} MB, measured in a process whose V8 heap was capped at ${heapCapMb} MB ` +
        `(what the harness holds + ${LAMBDA_MEMORY_MB} MB − the handler; heap ${probed.heapBeforeMb.toFixed(0)} → peak ${probed.heapPeakMb.toFixed(0)} MB)`,
    );
  }

  console.log('');
  const targets = evaluateTargets({
    runs,
    peakRssMb,
    atReferenceSize: images === REFERENCE_COUNTS.images,
    evaluationCpuMs,
    bundles,
    imports,
  });
  for (const target of targets) console.log(formatTarget(target));
  const passed = targets.filter((target) => target.pass).length;
  console.log(`targets: ${passed} passed, ${targets.length - passed} failed`);
}

async function measureHandlers() {
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
      const cold = await coldImport(bundle.file, env, 5);
      imports.set(bundle.handler, cold);
      lines.push(
        `  ${bundle.handler.padEnd(16)} ${int(bundle.bytes).padStart(10)} B minified (+ ${int(bundle.mapBytes)} B map)   ` +
          `import ${cold.medianMs.toFixed(0)} ms median [${cold.samples.map((ms) => ms.toFixed(0)).join(', ')}], ` +
          `whole process ${cold.processMedianMs.toFixed(0)} ms, RSS after import ${cold.rssMb.toFixed(0)} MB`,
        `  ${''.padEnd(16)} heaviest: ${bundle.heaviest.map((entry) => `${entry.name} ${int(entry.bytes / 1000)} kB`).join(', ')}`,
      );
    }
    return { bundles, imports, lines };
  } finally {
    directory.remove();
  }
}

/** Runs memory-probe.ts in its own process under a heap cap, beside the timed sweep. */
function startMemoryProbe(images: number, heapCapMb: number): Promise<MemoryProbe | { failure: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [
        `--max-old-space-size=${heapCapMb}`,
        fileURLToPath(new URL('memory-probe.ts', import.meta.url)),
        String(images),
        String(seed),
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

/** Samples RSS while the sweep runs: maxRSS alone cannot tell the sweep from what came before it. */
function sampleRss() {
  const beforeMb = process.memoryUsage.rss() / 2 ** 20;
  let peakMb = beforeMb;
  const timer = setInterval(() => {
    peakMb = Math.max(peakMb, process.memoryUsage.rss() / 2 ** 20);
  }, 20);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      peakMb = Math.max(peakMb, process.memoryUsage.rss() / 2 ** 20);
      return {
        beforeMb,
        peakMb,
        growthMb: Math.max(0, peakMb - beforeMb),
        maxRssMb: process.resourceUsage().maxRSS / 1024,
      };
    },
  };
}

function totalThrottled(invocation: Invocation): number {
  return Object.values(invocation.calls).reduce((sum, count) => sum + count.throttled, 0);
}

function leftover(
  imageActions: readonly { kind: string }[],
  snapshotActions: readonly { kind: string }[],
): { deregister: number; delete: number; mark: number; unmark: number } {
  const all = [...imageActions, ...snapshotActions];
  return {
    deregister: imageActions.filter((a) => a.kind === 'deregister').length,
    delete: snapshotActions.filter((a) => a.kind === 'delete').length,
    mark: all.filter((a) => a.kind === 'mark').length,
    unmark: all.filter((a) => a.kind === 'unmark').length,
  };
}

/**
 * The run continued over several 900 s invocations with the same clock, as the handler hands it
 * on through SQS, until the report is complete; the combined report comes from src's own
 * continueReport, exactly as the handler builds it.
 */
async function continuedRun(): Promise<void> {
  const images = numberArg('images', args.images) ?? 50_000;
  const counts = images === REFERENCE_COUNTS.images ? REFERENCE_COUNTS : countsFor(images);
  const bench = new Bench({ counts, seed, scale, clock, ...(headroom === undefined ? {} : { headroom }) });
  header(bench, `one apply run continued over 900 s invocations (at most ${MAX_INVOCATIONS})`);
  const first = bench.reference();
  const oneRun = minimumCalls(first, undefined, 'apply', bench.policy);
  const oneRunBound = lowerBound(oneRun);
  const chainLines = CHAINS.map((chain) => {
    const part = phaseBounds(oneRun, 1, chain);
    return `${chain} decide ${seconds(part.decide)} + act ${seconds(part.act)}`;
  });
  console.log(`the whole job at the bucket rates: ${seconds(oneRunBound)} (${chainLines.join('; ')})`);
  const paced = CHAINS.map((chain) => ({ chain, ...phaseBounds(oneRun, bench.limiter.headroom, chain) }));
  for (const part of paced.filter((p) => p.decide > INVOCATION_MS - RESERVE_MS)) {
    console.log(
      `note: deciding all the ${part.chain} takes ≥ ${seconds(part.decide)} at the limiter's ${bench.limiter.headroom} headroom, ` +
        'more than one invocation: each invocation decides only as many as it can act on, and leaves the rest to the next',
    );
  }
  console.log('');
  console.log(
    `${'#'.padStart(3)} ${'wall'.padStart(8)}  ${'dereg'.padStart(6)} ${'orphans'.padStart(7)} ${'marked'.padStart(6)} ` +
      `${'not reached'.padStart(11)} ${'failed'.padStart(6)} ${'warn'.padStart(6)} ${'calls'.padStart(7)} ${'thr'.padStart(5)}  outcome`,
  );
  const runId = 'bench-run';
  let previous: Continuation | undefined;
  let combined: RunReport | undefined;
  let stalled = 0;
  let simulatedMs = 0;
  const started = performance.now();
  for (let index = 1; index <= MAX_INVOCATIONS; index++) {
    const invocation = await bench.invoke('apply', index === 1 ? first : undefined);
    simulatedMs += invocation.wallMs;
    const report = invocation.report;
    const totalCalls = Object.values(invocation.calls).reduce((sum, c) => sum + c.accepted, 0);
    const t = report?.totals;
    const progress = t ? t.deregistered + t.orphansDeleted + t.marked + t.unmarked : 0;
    console.log(
      `${String(index).padStart(3)} ${seconds(invocation.wallMs).padStart(8)}  ${int(t?.deregistered ?? 0).padStart(6)} ` +
        `${int(t?.orphansDeleted ?? 0).padStart(7)} ${int(t?.marked ?? 0).padStart(6)} ` +
        `${int(t?.notReached ?? 0).padStart(11)} ${String(failedActionsOf(invocation)).padStart(6)} ` +
        `${int(report?.warnings.length ?? 0).padStart(6)} ${int(totalCalls).padStart(7)} ` +
        `${String(totalThrottled(invocation)).padStart(5)}  ${describeInvocation(invocation)}`,
    );
    if (report) {
      combined = continueReport(report, previous, runId);
      previous = nextContinuation(combined, true);
      if (!previous) break;
    }
    // A failed invocation leaves its message on the queue: the same continuation is tried again.
    stalled = progress > 0 ? 0 : stalled + 1;
    if (stalled >= 3) {
      console.log('stopped: three invocations in a row made no progress');
      break;
    }
  }
  bench.close();
  console.log('');

  const all = bench.invocations;
  const invocationsUsed = all.length;
  console.log(
    `invocations: ${invocationsUsed}; simulated time ${seconds(simulatedMs)} (bound for one uninterrupted run ${seconds(oneRunBound)}); real ${seconds(performance.now() - started)}`,
  );
  if (combined) {
    const t = combined.totals;
    console.log(
      `combined report (continueReport): complete ${combined.complete}; images ${int(t.images)}, eligible ${int(t.eligible)}, ` +
        `deregistered ${int(t.deregistered)}, marked ${int(t.marked)}, unmarked ${int(t.unmarked)}; snapshots ${int(t.snapshots)}, ` +
        `orphans ${int(t.orphans)}, orphans deleted ${int(t.orphansDeleted)}, snapshots deleted ${int(t.snapshotsDeleted)}, ` +
        `failed ${int(t.failed)}, not reached ${int(t.notReached)}`,
    );
  }
  const redone = all.reduce(
    (sum, inv) =>
      sum + inv.redundancy.removedAgain + inv.redundancy.markedAgain + inv.redundancy.unmarkedAgain,
    0,
  );
  console.log(`actions redone (removed, marked or unmarked twice): ${redone}`);
  const after = bench.reference();
  const left = leftover(after.plan.actions, after.plan.snapshots?.actions ?? []);
  console.log(
    `left in the account: ${int(left.deregister)} images to deregister, ${int(left.delete)} orphans to delete, ${int(left.mark)} to mark`,
  );
  console.log('');
  console.log(
    'API calls over all invocations beside one uninterrupted run’s minimum (re-inventory is the price of continuing)',
  );
  for (const row of oneRun) {
    const calls = all.reduce((sum, inv) => sum + (inv.calls[row.api]?.accepted ?? 0), 0);
    const minimum = row.decide + row.act;
    if (calls === 0 && minimum === 0) continue;
    const r = ratio(calls, minimum);
    console.log(
      `  ${row.api.padEnd(31)} ${int(calls).padStart(8)} ${int(minimum).padStart(8)}  ${Number.isFinite(r) ? `${r.toFixed(2)}×` : '∞'}`,
    );
  }
}

if (args.invocations) await continuedRun();
else await fullSweep();
