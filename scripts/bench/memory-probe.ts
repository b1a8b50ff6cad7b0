/**
 * Peak memory of a sweep, measured the way a Lambda would see it: run in its own process with the
 * V8 heap capped (`--max-old-space-size`, set by the caller) at what this harness holds anyway plus
 * what a 256 MB function has left once the bundled handler is loaded. Under that cap V8 collects as
 * it would in Lambda; without it, on a large host, it lets garbage pile up and RSS says little.
 * A sweep that does not fit dies of heap exhaustion, which the caller reports as such.
 *
 *   node --max-old-space-size=N scripts/bench/memory-probe.ts <images> <seed>
 *
 * Prints one JSON line: RSS and heap before the sweep and their peaks during it. The sweep is one
 * apply of the whole job with no deadline, which holds at once every decision and outcome that any
 * invocation of the continued job holds; time plays no part, so it runs with no latency and no
 * background load, at a high scale.
 */
import { countsFor, REFERENCE_COUNTS } from './account.ts';
import { Bench } from './harness.ts';
import { NO_LATENCY } from './simulator.ts';

export interface MemoryProbe {
  rssBeforeMb: number;
  rssPeakMb: number;
  heapBeforeMb: number;
  heapPeakMb: number;
}

const mb = (bytes: number) => bytes / 2 ** 20;

async function probe(images: number, seed: number): Promise<MemoryProbe> {
  const counts = images === REFERENCE_COUNTS.images ? REFERENCE_COUNTS : countsFor(images);
  // Time is irrelevant here: a high scale and no deadline make it quick and complete.
  const bench = new Bench({
    counts,
    seed,
    scale: 1000,
    invocationMs: Number.POSITIVE_INFINITY,
    latency: NO_LATENCY,
    background: { share: 0 },
  });
  const reference = bench.reference();
  const before = process.memoryUsage();
  let rssPeak = before.rss;
  let heapPeak = before.heapUsed;
  const timer = setInterval(() => {
    const now = process.memoryUsage();
    rssPeak = Math.max(rssPeak, now.rss);
    heapPeak = Math.max(heapPeak, now.heapUsed);
  }, 10);
  await bench.invoke('apply', reference);
  clearInterval(timer);
  bench.close();
  return {
    rssBeforeMb: mb(before.rss),
    rssPeakMb: mb(Math.max(rssPeak, process.memoryUsage.rss())),
    heapBeforeMb: mb(before.heapUsed),
    heapPeakMb: mb(heapPeak),
  };
}

const [images = String(REFERENCE_COUNTS.images), seed = '1'] = process.argv.slice(2);
process.stdout.write(`${JSON.stringify(await probe(Number(images), Number(seed)))}\n`);
