/**
 * `npm run bench`: the whole job of sweeping a simulated 10,000-AMI account (every 900 s invocation
 * until it is done) behind an EC2 that meters AWS's documented token buckets, answers after a delay
 * and shares its buckets with other tools, with no AWS; then its figures and one
 * `target …: PASS|FAIL` line per target (main.ts). The options are read first, so `--help` and a
 * usage error (exit 64) never wait for, or depend on, the sweep's code.
 *
 *   node scripts/bench/run.ts [options]            (--help lists them)
 *   node scripts/bench/run.ts --invocations --images 50000
 */
import { type BenchOptions, parseBenchOptions, USAGE, UsageError } from './options.ts';

let options: BenchOptions | 'help';
try {
  options = parseBenchOptions(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  process.stderr.write(`bench: ${error.message}\n\n${USAGE}\n`);
  process.exit(64);
}
if (options === 'help') {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const { runBench } = await import('./main.ts');
await runBench(options);
