import { build } from 'esbuild';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ThrottleCounter } from '../../src/adapters/retry.ts';
import { parsePolicy } from '../../src/config/policy.ts';
import { unboundedDeadline } from '../../src/core/ports.ts';
import type { RunReport } from '../../src/core/report.ts';
import { type MetricPoint, sweepMetrics } from '../../src/core/run-metrics.ts';
import { runSweep } from '../../src/core/sweep.ts';
import { demoAccount, demoPolicyDocument } from '../../src/demo/demo-account.ts';
import { MemoryAccount } from '../../src/demo/memory-account.ts';
import { PolicyError } from '../../src/errors.ts';
import { createLambdaMetrics, readMetricsEnvironment } from '../../src/metrics.ts';
import { recordingLog } from './factories.ts';

/** One EMF line as Powertools writes it. */
interface EmfBlob {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: {
      Namespace: string;
      Dimensions: string[][];
      Metrics: { Name: string; Unit: string }[];
    }[];
  };
  [key: string]: unknown;
}

/** Every EMF line written to stdout while it runs; anything else written there is kept apart. */
function captureStdout() {
  const chunks: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation(((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  }) as typeof process.stdout.write);
  return () =>
    chunks
      .join('')
      .split('\n')
      .filter((line) => line.startsWith('{"_aws"'))
      .map((line) => JSON.parse(line) as EmfBlob);
}

/** The points the lines carry, read back as CloudWatch would: each metric under each dimension set. */
function pointsOf(blobs: readonly EmfBlob[]) {
  return blobs.flatMap((blob) =>
    blob._aws.CloudWatchMetrics.flatMap((directive) =>
      directive.Metrics.flatMap((metric) =>
        directive.Dimensions.map((set) => ({
          namespace: directive.Namespace,
          name: metric.Name,
          unit: metric.Unit,
          value: blob[metric.Name],
          dimensions: Object.fromEntries(set.map((key) => [key, blob[key]])),
        })),
      ),
    ),
  );
}

async function demoReport(): Promise<RunReport> {
  const now = new Date('2026-11-22T06:00:00.000Z');
  const account = new MemoryAccount(structuredClone(demoAccount(now)));
  return runSweep(
    {
      inventory: account,
      actions: account,
      log: recordingLog(),
      snapshots: { inventory: account, sharing: account, actions: account },
      recycleBin: account,
    },
    {
      policy: parsePolicy(demoPolicyDocument),
      region: 'eu-west-1',
      now,
      mode: 'apply',
      dryRun: false,
      deadline: unboundedDeadline,
    },
  );
}

const MEASURES = { invocation: 1, durationMs: 5000, throttledCalls: 2 };

beforeEach(() => {
  // Powertools reads these when an instance is built; each test builds its own.
  vi.stubEnv('POWERTOOLS_METRICS_DISABLED', undefined);
  vi.stubEnv('POWERTOOLS_DEV', undefined);
  vi.stubEnv('POWERTOOLS_METRICS_NAMESPACE', undefined);
  vi.stubEnv('POWERTOOLS_SERVICE_NAME', undefined);
  vi.stubEnv('AMI_JANITOR_STAGE', undefined);
  vi.stubEnv('AWS_LAMBDA_MAX_CONCURRENCY', undefined);
});

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

describe('createLambdaMetrics: the EMF it writes', () => {
  it('writes the heartbeat and the run counters in one line, under service and stage only', async () => {
    // Prepare
    const report = await demoReport();
    const points = sweepMetrics(report, MEASURES);
    const metrics = createLambdaMetrics({ log: recordingLog() });
    const written = captureStdout();

    // Act
    metrics.publish(points, { accountId: report.accountId, region: report.region, runId: 'run-1' });

    // Assess
    const blobs = written();
    const heartbeats = blobs.filter((blob) => 'SweepCompleted' in blob);
    expect(heartbeats).toHaveLength(1);
    const [main] = heartbeats;
    expect(main?._aws.CloudWatchMetrics).toEqual([
      {
        Namespace: 'ami-janitor',
        Dimensions: [['service', 'stage']],
        Metrics: points
          .filter((point) => Object.keys(point.dimensions).length === 0)
          .map((point) => ({ Name: point.name, Unit: point.unit })),
      },
    ]);
    expect(main).toMatchObject({
      service: 'ami-janitor',
      stage: 'local',
      SweepCompleted: 1,
      SweepDuration: 5000,
      ThrottledCalls: 2,
      ImagesMarked: report.totals.marked,
      ReclaimedGiB: report.cost.reclaimedGiB,
      // Metadata: searchable in the log, never a dimension.
      accountId: report.accountId,
      region: report.region,
      runId: 'run-1',
    });
    expect(main?._aws.CloudWatchMetrics[0]?.Metrics).toContainEqual({
      Name: 'SweepCompleted',
      Unit: 'Count',
    });
    expect(main?._aws.CloudWatchMetrics[0]?.Metrics).toContainEqual({
      Name: 'SweepDuration',
      Unit: 'Milliseconds',
    });
    expect(main?._aws.CloudWatchMetrics[0]?.Metrics).toContainEqual({
      Name: 'ReclaimedGiB',
      Unit: 'Gigabytes',
    });
    expect(typeof main?._aws.Timestamp).toBe('number');
  });

  it('writes each point with dimensions in a line of its own, and every point arrives as it was', async () => {
    // Prepare
    const report = await demoReport();
    const points = sweepMetrics(report, MEASURES);
    const metrics = createLambdaMetrics({ log: recordingLog() });
    const written = captureStdout();

    // Act
    metrics.publish(points, { accountId: report.accountId });

    // Assess
    const blobs = written();
    const dimensioned = points.filter((point) => Object.keys(point.dimensions).length > 0);
    expect(blobs).toHaveLength(1 + dimensioned.length);
    for (const blob of blobs) {
      expect(blob._aws.CloudWatchMetrics).toHaveLength(1);
      expect(blob._aws.CloudWatchMetrics[0]?.Dimensions).toHaveLength(1);
      expect(blob.accountId).toBe(report.accountId);
    }
    const expected = points.map((point) => ({
      namespace: 'ami-janitor',
      name: point.name,
      unit: point.unit,
      value: point.value,
      dimensions: { service: 'ami-janitor', stage: 'local', ...point.dimensions },
    }));
    expect(pointsOf(blobs)).toEqual(expect.arrayContaining(expected));
    expect(pointsOf(blobs)).toHaveLength(expected.length);
    const critical = pointsOf(blobs).find(
      (point) =>
        point.name === 'Findings' && point.dimensions.severity === 'critical' && !point.dimensions.rule,
    );
    expect(critical?.dimensions).toEqual({ service: 'ami-janitor', stage: 'local', severity: 'critical' });
  });

  it('takes the namespace, service and stage from the environment', () => {
    // Prepare
    vi.stubEnv('POWERTOOLS_METRICS_NAMESPACE', 'Janitors/AMI');
    vi.stubEnv('POWERTOOLS_SERVICE_NAME', 'ami-janitor-eu');
    vi.stubEnv('AMI_JANITOR_STAGE', 'prod');
    const metrics = createLambdaMetrics({ log: recordingLog() });
    const written = captureStdout();

    // Act
    metrics.publish([
      { name: 'SweepCompleted', unit: 'Count', value: 1, dimensions: {} },
      { name: 'Failures', unit: 'Count', value: 2, dimensions: { errorCode: 'RequestLimitExceeded' } },
    ]);

    // Assess
    expect(pointsOf(written())).toEqual([
      {
        namespace: 'Janitors/AMI',
        name: 'SweepCompleted',
        unit: 'Count',
        value: 1,
        dimensions: { service: 'ami-janitor-eu', stage: 'prod' },
      },
      {
        namespace: 'Janitors/AMI',
        name: 'Failures',
        unit: 'Count',
        value: 2,
        dimensions: { service: 'ami-janitor-eu', stage: 'prod', errorCode: 'RequestLimitExceeded' },
      },
    ]);
  });

  it('keeps metadata out of the way of metrics and dimensions, on one line and short', () => {
    // Prepare
    const metrics = createLambdaMetrics({ log: recordingLog() });
    const written = captureStdout();

    // Act
    metrics.publish(
      [
        { name: 'SweepCompleted', unit: 'Count', value: 1, dimensions: {} },
        { name: 'Failures', unit: 'Count', value: 1, dimensions: { errorCode: 'Throttling' } },
      ],
      {
        SweepCompleted: 'not a metric',
        errorCode: 'not the dimension',
        stage: 'not the stage',
        runId: `run\u001b[2J${'x'.repeat(400)}`,
        invocation: 3,
      },
    );

    // Assess
    const [main, failures] = written();
    expect(main).toMatchObject({ SweepCompleted: 1, stage: 'local', invocation: '3' });
    expect(failures).toMatchObject({ Failures: 1, errorCode: 'Throttling', stage: 'local', invocation: '3' });
    expect(main?.runId).toMatch(/^run\uFFFD\[2Jx+…\[truncated, 407 chars\]$/);
    expect(String(main?.runId).length).toBeLessThan(300);
  });
});

describe('createLambdaMetrics: failures are logged, never thrown', () => {
  it('publishes every good point, logs the refused ones once, and keeps none for the next flush', () => {
    // Prepare
    const log = recordingLog();
    const metrics = createLambdaMetrics({ log });
    const written = captureStdout();
    const points = [
      { name: 'SweepCompleted', unit: 'Count', value: 1, dimensions: {} },
      { name: 'SweepDuration', unit: 'Milliseconds', value: Number.NaN, dimensions: {} },
      { name: 'ThrottledCalls', unit: 'Count', value: Number.POSITIVE_INFINITY, dimensions: {} },
      { name: 'Failures', unit: 'Parsecs', value: 1, dimensions: { errorCode: 'InternalError' } },
      { name: 'Failures', unit: 'Count', value: 4, dimensions: { errorCode: 'Throttling' } },
    ] as MetricPoint[];

    // Act
    const publish = () => metrics.publish(points);

    // Assess: the heartbeat and the good dimensioned point are written, the rest logged once.
    expect(publish).not.toThrow();
    const lines = written();
    expect(pointsOf(lines).map((point) => [point.name, point.value])).toEqual([
      ['SweepCompleted', 1],
      ['Failures', 4],
    ]);
    const warnings = log.entries.filter((entry) => entry.message === 'metrics not published');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.extra[0]).toMatchObject({
      failed: 3,
      of: 5,
      metric: 'SweepDuration',
      error: expect.objectContaining({ message: 'SweepDuration is not a finite number: NaN' }),
    });

    // Act: the next invocation's flush carries only its own points.
    metrics.publish([{ name: 'SweepCompleted', unit: 'Count', value: 1, dimensions: {} }]);

    // Assess
    const next = written().slice(lines.length);
    expect(next).toHaveLength(1);
    expect(next[0]?._aws.CloudWatchMetrics[0]?.Metrics).toEqual([{ Name: 'SweepCompleted', Unit: 'Count' }]);
  });

  it('writes nothing and warns of nothing when there is nothing to publish', () => {
    // Prepare
    const log = recordingLog();
    const metrics = createLambdaMetrics({ log });
    const written = captureStdout();

    // Act
    metrics.publish([]);

    // Assess
    expect(written()).toEqual([]);
    expect(log.entries).toEqual([]);
  });
});

describe("createLambdaMetrics: Powertools' switches", () => {
  const heartbeat: MetricPoint[] = [
    { name: 'SweepCompleted', unit: 'Count', value: 1, dimensions: {} },
    { name: 'Findings', unit: 'Count', value: 1, dimensions: { severity: 'high' } },
  ];

  it.each([
    { case: 'POWERTOOLS_METRICS_DISABLED=true', env: { POWERTOOLS_METRICS_DISABLED: 'true' } },
    { case: 'POWERTOOLS_DEV=true', env: { POWERTOOLS_DEV: 'true' } },
  ])('writes nothing with $case', ({ env }) => {
    // Prepare
    for (const [key, value] of Object.entries(env)) vi.stubEnv(key, value);
    const metrics = createLambdaMetrics({ log: recordingLog() });
    const written = captureStdout();
    const consoleLog = vi.spyOn(console, 'log').mockImplementation(() => undefined);

    // Act
    metrics.publish(heartbeat);

    // Assess
    expect(written()).toEqual([]);
    expect(consoleLog).not.toHaveBeenCalled();
  });

  it('writes through the global console with POWERTOOLS_DEV=true and POWERTOOLS_METRICS_DISABLED=false', () => {
    // Prepare
    vi.stubEnv('POWERTOOLS_DEV', 'true');
    vi.stubEnv('POWERTOOLS_METRICS_DISABLED', 'false');
    const metrics = createLambdaMetrics({ log: recordingLog() });
    const consoleLog = vi.spyOn(console, 'log').mockImplementation(() => undefined);

    // Act
    metrics.publish(heartbeat);

    // Assess
    const blobs = consoleLog.mock.calls.map(([line]) => JSON.parse(String(line)) as EmfBlob);
    expect(pointsOf(blobs).map((point) => point.name)).toEqual(['SweepCompleted', 'Findings']);
  });
});

describe('createLambdaMetrics: the throttle count', () => {
  it('reads the throttled calls since the invocation started', () => {
    // Prepare
    const throttles = new ThrottleCounter();
    const metrics = createLambdaMetrics({ throttles, log: recordingLog() });
    throttles.record('DescribeImages');

    // Act
    metrics.startInvocation();
    throttles.record('DescribeImages');
    throttles.record('DeleteSnapshot');

    // Assess
    expect(metrics.throttledCalls()).toBe(2);
    metrics.startInvocation();
    expect(metrics.throttledCalls()).toBe(0);
  });
});

describe('readMetricsEnvironment', () => {
  it('defaults to the ami-janitor namespace and service, stage local', () => {
    expect(readMetricsEnvironment({})).toEqual({
      namespace: 'ami-janitor',
      service: 'ami-janitor',
      stage: 'local',
    });
    expect(
      readMetricsEnvironment({
        POWERTOOLS_METRICS_NAMESPACE: ' ',
        POWERTOOLS_SERVICE_NAME: '',
        AMI_JANITOR_STAGE: '',
      }),
    ).toEqual({ namespace: 'ami-janitor', service: 'ami-janitor', stage: 'local' });
  });

  it('fails the cold start on a value CloudWatch would refuse, naming each', () => {
    // Act
    const read = () =>
      readMetricsEnvironment({
        POWERTOOLS_METRICS_NAMESPACE: 'AWS/EC2',
        POWERTOOLS_SERVICE_NAME: 'ami janitor',
        AMI_JANITOR_STAGE: 'prod\n',
      });

    // Assess
    expect(read).toThrow(PolicyError);
    expect(read).toThrow(/POWERTOOLS_METRICS_NAMESPACE is not a CloudWatch namespace: "AWS\/EC2"/);
    expect(read).toThrow(/POWERTOOLS_SERVICE_NAME is not a dimension value: "ami janitor"/);
    expect(() => readMetricsEnvironment({ AMI_JANITOR_STAGE: 'a b' })).toThrow(/AMI_JANITOR_STAGE/);
  });
});

describe('who publishes', () => {
  it('leaves the CLI without the metrics module or Powertools Metrics', async () => {
    // Act
    const result = await build({
      entryPoints: ['bin/ami-janitor.js'],
      bundle: true,
      platform: 'node',
      format: 'esm',
      packages: 'external',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });

    // Assess
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs).toContain('src/cli/main.ts');
    expect(inputs).not.toContain('src/metrics.ts');
    const imported = Object.values(result.metafile.inputs).flatMap((input) =>
      input.imports.map((entry) => entry.path),
    );
    expect(imported.some((path) => path.startsWith('@aws-lambda-powertools/metrics'))).toBe(false);
  });
});
