import { Metrics } from '@aws-lambda-powertools/metrics';
import { type ThrottleCounter, throttleCounter } from './adapters/retry.ts';
import type { Log } from './core/ports.ts';
import { METRICS, type MetricMetadata, type MetricPoint, type MetricsPort } from './core/run-metrics.ts';
import { PolicyError } from './errors.ts';
import { logger } from './logger.ts';
import { oneLine } from './text.ts';

/**
 * CloudWatch metrics in the embedded metric format (EMF): JSON lines on stdout that CloudWatch
 * Logs turns into metrics, so publishing costs no API call, no wait and no IAM permission. Only the
 * Lambda handlers publish; the CLI never imports this module, and keeps stdout for its report.
 *
 * EMF gives one set of dimensions to every metric of a line. The points without dimensions of
 * their own (the run's counters and the SweepCompleted heartbeat) go out in one line, flushed once
 * per invocation; each point with dimensions (a verdict and rule, a severity, an error code) goes
 * out in a line of its own, as Powertools' singleMetric() writes it.
 *
 * Powertools' switches hold: POWERTOOLS_METRICS_DISABLED=true writes nothing; POWERTOOLS_DEV=true
 * writes nothing either, unless POWERTOOLS_METRICS_DISABLED=false, and then writes through the
 * global console. Both are read when the module loads.
 */

export const DEFAULT_NAMESPACE = 'ami-janitor';
export const DEFAULT_SERVICE = 'ami-janitor';
export const DEFAULT_STAGE = 'local';

/** Where the metrics go and the default dimensions of every one, from the environment. */
export interface MetricsEnvironment {
  /** POWERTOOLS_METRICS_NAMESPACE, default `ami-janitor`. */
  namespace: string;
  /** The `service` dimension: POWERTOOLS_SERVICE_NAME, default `ami-janitor`. */
  service: string;
  /** The `stage` dimension: AMI_JANITOR_STAGE, default `local`. */
  stage: string;
}

/** What CloudWatch accepts in a namespace (and never one of AWS's own). */
const NAMESPACE = /^[A-Za-z0-9 ._\-/#:]{1,255}$/;
/** A dimension value the alarms can spell: printable ASCII without spaces. */
const DIMENSION_VALUE = /^[\x21-\x7e]{1,255}$/;

/** Reads the environment once, at cold start, and fails fast on a value CloudWatch would refuse. */
export function readMetricsEnvironment(env: NodeJS.ProcessEnv = process.env): MetricsEnvironment {
  const config = {
    namespace: env.POWERTOOLS_METRICS_NAMESPACE?.trim() || DEFAULT_NAMESPACE,
    service: env.POWERTOOLS_SERVICE_NAME?.trim() || DEFAULT_SERVICE,
    stage: env.AMI_JANITOR_STAGE?.trim() || DEFAULT_STAGE,
  };
  const problems = [
    ...(NAMESPACE.test(config.namespace) && !config.namespace.startsWith('AWS/')
      ? []
      : [`POWERTOOLS_METRICS_NAMESPACE is not a CloudWatch namespace: ${JSON.stringify(config.namespace)}`]),
    ...(DIMENSION_VALUE.test(config.service)
      ? []
      : [`POWERTOOLS_SERVICE_NAME is not a dimension value: ${JSON.stringify(config.service)}`]),
    ...(DIMENSION_VALUE.test(config.stage)
      ? []
      : [`AMI_JANITOR_STAGE is not a dimension value: ${JSON.stringify(config.stage)}`]),
  ];
  if (problems.length > 0) throw new PolicyError(problems);
  return config;
}

export interface LambdaMetricsOptions {
  /** For the namespace, service and stage; Powertools reads its own switches from process.env. */
  env?: NodeJS.ProcessEnv;
  /** Where withRetry counts throttled attempts; default its process-wide counter. */
  throttles?: ThrottleCounter;
  log?: Log;
}

/** Metadata values are context, not documents: an id or a name, cut short if it is longer. */
const MAX_METADATA_CHARS = 256;
const DEFAULT_DIMENSIONS = new Set(['service', 'stage']);

/**
 * The handlers' MetricsPort over Powertools Metrics. A point Powertools refuses, or any other
 * failure, is logged once per publish and never thrown: a metric is not worth failing a run for.
 */
export function createLambdaMetrics(options: LambdaMetricsOptions = {}): MetricsPort {
  const config = readMetricsEnvironment(options.env);
  const throttles = options.throttles ?? throttleCounter;
  const log = options.log ?? logger;
  // Powertools' own warnings (an invalid dimension, say) go to the structured log, not a bare console.
  const metrics = new Metrics({
    namespace: config.namespace,
    serviceName: config.service,
    defaultDimensions: { stage: config.stage },
    logger: log,
  });

  return {
    startInvocation() {
      throttles.reset();
    },
    throttledCalls() {
      return throttles.total;
    },
    publish(points, metadata = {}) {
      const failures: { metric: string; error: unknown }[] = [];
      const attempt = (metric: string, write: () => void) => {
        try {
          write();
        } catch (error) {
          failures.push({ metric, error });
        }
      };
      try {
        const plain = points.filter((point) => Object.keys(point.dimensions).length === 0);
        if (plain.length > 0) {
          try {
            attempt('metadata', () => addMetadata(metrics, metadata, {}));
            // Point by point, so one refused counter does not take the heartbeat with it.
            for (const point of plain) attempt(point.name, () => addPoint(metrics, point));
            if (metrics.hasStoredMetrics()) attempt('flush', () => metrics.publishStoredMetrics());
          } finally {
            // Whatever was not written must not wait in the buffer for the next invocation's flush.
            metrics.clearMetrics();
            metrics.clearDimensions();
            metrics.clearMetadata();
          }
        }
        for (const point of points) {
          if (Object.keys(point.dimensions).length === 0) continue;
          attempt(point.name, () => {
            const single = metrics.singleMetric();
            addMetadata(single, metadata, point.dimensions);
            single.addDimensions({ ...point.dimensions });
            // A single metric is written as soon as it is added.
            addPoint(single, point);
          });
        }
      } catch (error) {
        // Only clearing a buffer could get here; nothing of it may reach the handler.
        failures.push({ metric: 'buffer', error });
      }
      const [first] = failures;
      if (first) {
        log.warn('metrics not published', {
          failed: failures.length,
          of: points.length,
          metric: first.metric,
          error: first.error,
        });
      }
    },
  };
}

/** Powertools takes NaN and Infinity for numbers, which JSON would write as null. */
function addPoint(target: Metrics, point: MetricPoint): void {
  if (!Number.isFinite(point.value))
    throw new RangeError(`${point.name} is not a finite number: ${point.value}`);
  target.addMetric(point.name, point.unit, point.value);
}

/**
 * Metadata goes in each line as a plain field, left out where its key is a metric's name (which
 * Powertools refuses) or a dimension's (whose value must stay the dimension's).
 */
function addMetadata(
  target: Metrics,
  metadata: MetricMetadata,
  dimensions: Readonly<Record<string, string>>,
): void {
  for (const [key, value] of Object.entries(metadata)) {
    if (key in METRICS || key in dimensions || DEFAULT_DIMENSIONS.has(key)) continue;
    target.addMetadata(key, oneLine(String(value), MAX_METADATA_CHARS));
  }
}

/**
 * The handlers' metrics, built when a handler module loads. Building them writes nothing; only
 * publish does.
 */
export const lambdaMetrics: MetricsPort = createLambdaMetrics();
