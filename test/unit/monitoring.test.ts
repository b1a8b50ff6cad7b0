import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { METRICS } from '../../src/core/run-metrics.ts';

const require = createRequire(import.meta.url);
const ROOT = resolve(import.meta.dirname, '../..');
const { monitoringResources, heartbeatWindow, METRICS_NAMESPACE } =
  require('../../monitoring/resources.cjs') as {
    monitoringResources: (template: unknown, options: Record<string, unknown>) => Record<string, Resource>;
    heartbeatWindow: (schedule: string, hours?: string) => { Period: number; EvaluationPeriods: number };
    METRICS_NAMESPACE: string;
  };

interface Resource {
  Type: string;
  Properties: Record<string, unknown> & {
    AlarmActions?: unknown[];
    OKActions?: unknown[];
    Dimensions?: { Name: string; Value: unknown }[];
    MetricName?: string;
    Namespace?: string;
    TreatMissingData?: string;
    DashboardBody?: { 'Fn::Sub': string };
  };
}

/** A template shaped like the packaged one: what the plugin sees before it adds its resources. */
const TEMPLATE = {
  Resources: {
    SweepTargetLambdaFunction: {
      Type: 'AWS::Lambda::Function',
      Properties: { FunctionName: 'ami-janitor-dev-sweepTarget' },
    },
    OnImageEventLambdaFunction: {
      Type: 'AWS::Lambda::Function',
      Properties: { FunctionName: 'ami-janitor-dev-onImageEvent' },
    },
    SweepDlq: { Type: 'AWS::SQS::Queue', Properties: { QueueName: 'ami-janitor-dev-sweep-dlq' } },
    SweepStateMachine: { Type: 'AWS::StepFunctions::StateMachine', Properties: {} },
    AlarmTopic: { Type: 'AWS::SNS::Topic', Properties: {} },
  },
};

const OPTIONS = { service: 'ami-janitor', stage: 'dev', schedule: 'rate(1 day)', topic: 'AlarmTopic' };

describe('the alarms made from the template', () => {
  const resources = monitoringResources(TEMPLATE, OPTIONS);
  const alarms = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::CloudWatch::Alarm');

  it('watches every function, queue and state machine, and sends every alarm and recovery to the topic', () => {
    expect(Object.keys(resources).sort()).toEqual(
      [
        'Dashboard',
        'OnImageEventLambdaFunctionErrorsAlarm',
        'OnImageEventLambdaFunctionThrottlesAlarm',
        'SweepDlqMessagesAlarm',
        'SweepHeartbeatAlarm',
        'SweepStateMachineFailedAlarm',
        'SweepTargetLambdaFunctionErrorsAlarm',
        'SweepTargetLambdaFunctionThrottlesAlarm',
        'TargetsFailedAlarm',
      ].sort(),
    );
    for (const [, alarm] of alarms) {
      expect(alarm.Properties.AlarmActions).toEqual([{ Ref: 'AlarmTopic' }]);
      expect(alarm.Properties.OKActions).toEqual([{ Ref: 'AlarmTopic' }]);
      expect(alarm.Properties.AlarmDescription).toEqual(expect.any(String));
    }
    expect(resources.SweepTargetLambdaFunctionErrorsAlarm?.Properties).toMatchObject({
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: 'SweepTargetLambdaFunction' } }],
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
    });
    expect(resources.SweepDlqMessagesAlarm?.Properties).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['SweepDlq', 'QueueName'] } }],
    });
    expect(JSON.stringify(resources.SweepStateMachineFailedAlarm?.Properties)).toContain('ExecutionsFailed');
  });

  it('raises the heartbeat when no sweep completed within twice the schedule, missing data counting as none', () => {
    expect(resources.SweepHeartbeatAlarm?.Properties).toMatchObject({
      Namespace: METRICS_NAMESPACE,
      MetricName: 'SweepCompleted',
      Dimensions: [
        { Name: 'service', Value: 'ami-janitor' },
        { Name: 'stage', Value: 'dev' },
      ],
      Statistic: 'Sum',
      Period: 86_400,
      EvaluationPeriods: 2,
      DatapointsToAlarm: 2,
      Threshold: 1,
      ComparisonOperator: 'LessThanThreshold',
      TreatMissingData: 'breaching',
    });
    // The metrics the alarms name are ones the code emits.
    for (const name of ['SweepCompleted', 'TargetsFailed']) expect(METRICS).toHaveProperty(name);
  });

  it('fits the heartbeat window into periods CloudWatch accepts, and refuses one it cannot watch', () => {
    expect(heartbeatWindow('rate(1 hour)')).toEqual({ Period: 7_200, EvaluationPeriods: 1 });
    expect(heartbeatWindow('rate(30 minutes)')).toEqual({ Period: 3_600, EvaluationPeriods: 1 });
    expect(heartbeatWindow('rate(12 hours)')).toEqual({ Period: 86_400, EvaluationPeriods: 1 });
    expect(heartbeatWindow('rate(18 hours)')).toEqual({ Period: 3_600, EvaluationPeriods: 36 });
    expect(heartbeatWindow('rate(3 days)')).toEqual({ Period: 86_400, EvaluationPeriods: 6 });
    expect(heartbeatWindow('cron(0 6 * * ? *)', '48')).toEqual({ Period: 86_400, EvaluationPeriods: 2 });
    expect(heartbeatWindow('cron(0 6 * * ? *)', '30')).toEqual({ Period: 3_600, EvaluationPeriods: 30 });
    expect(() => heartbeatWindow('cron(0 6 * * ? *)')).toThrow(/set param heartbeatHours/);
    expect(() => heartbeatWindow('rate(4 days)')).toThrow(/7-day alarm window/);
    expect(() => heartbeatWindow('rate(1 day)', '0')).toThrow(/from 1 to 168/);
    expect(() => heartbeatWindow('rate(1 day)', 'soon')).toThrow(/not "soon"/);
  });

  it('needs the topic to be in the template', () => {
    expect(() => monitoringResources({ Resources: {} }, OPTIONS)).toThrow(
      /AlarmTopic is not in the template/,
    );
  });
});

describe('the dashboard', () => {
  const resources = monitoringResources(TEMPLATE, OPTIONS);
  const body = resources.Dashboard?.Properties.DashboardBody?.['Fn::Sub'] ?? '';
  const dashboard = JSON.parse(body) as {
    widgets: {
      type: string;
      x: number;
      y: number;
      width: number;
      height: number;
      properties: Record<string, unknown>;
    }[];
  };

  it('charts what was reclaimed and scheduled, findings, failures and throttles, beside the alarms', () => {
    const titles = dashboard.widgets.map((widget) => widget.properties.title).filter(Boolean);
    expect(titles).toEqual(
      expect.arrayContaining([
        'Reclaimed per day (GiB) and the estimated saving (USD a month)',
        'Scheduled: marked, and due later',
        'Findings by severity',
        'Failures by error code',
        'Throttled AWS calls, and throttled functions',
        'Alarms',
      ]),
    );
    const alarmWidget = dashboard.widgets.find((widget) => widget.type === 'alarm');
    const alarmNames = Object.entries(resources)
      .filter(([id]) => id.endsWith('Alarm'))
      .map(([, alarm]) => alarm.Properties.AlarmName);
    expect(alarmWidget?.properties.alarms).toEqual(
      alarmNames.map(
        (name) => `arn:\${AWS::Partition}:cloudwatch:\${AWS::Region}:\${AWS::AccountId}:alarm:${name}`,
      ),
    );
  });

  it('names only metrics the code emits, and only placeholders CloudFormation can fill', () => {
    const own = [...body.matchAll(/\["ami-janitor","(\w+)"/g)].map((match) => match[1]);
    const searched = [...body.matchAll(/MetricName=\\"(\w+)\\"/g)].map((match) => match[1]);
    expect(own.length + searched.length).toBeGreaterThan(10);
    for (const name of [...own, ...searched]) expect(METRICS).toHaveProperty(name ?? '');
    const placeholders = new Set([...body.matchAll(/\$\{([^}]+)\}/g)].map((match) => match[1]));
    for (const placeholder of placeholders) {
      const [id] = (placeholder ?? '').split('.');
      expect(
        ['AWS::Region', 'AWS::Partition', 'AWS::AccountId'].includes(id ?? '') ||
          (id ?? '') in TEMPLATE.Resources ||
          (id ?? '') in resources,
      ).toBe(true);
    }
  });

  it('lays its widgets out on the 24-column grid without overlaps', () => {
    const cells = new Set<string>();
    for (const widget of dashboard.widgets) {
      expect(widget.x + widget.width).toBeLessThanOrEqual(24);
      for (let x = widget.x; x < widget.x + widget.width; x += 1) {
        for (let y = widget.y; y < widget.y + widget.height; y += 1) {
          const cell = `${x},${y}`;
          expect(cells.has(cell), cell).toBe(false);
          cells.add(cell);
        }
      }
    }
  });
});

describe('serverless.yml', () => {
  const config = parse(readFileSync(resolve(ROOT, 'serverless.yml'), 'utf8'), {
    customTags: [
      { tag: '!Ref', resolve: (value: string) => ({ Ref: value }) },
      { tag: '!GetAtt', resolve: (value: string) => ({ 'Fn::GetAtt': value.split('.') }) },
      { tag: '!Sub', resolve: (value: string) => ({ 'Fn::Sub': value }) },
    ],
  }) as {
    plugins: string[];
    functions: Record<string, { events?: Record<string, Record<string, unknown>>[] }>;
    resources: { Resources: Record<string, Resource> };
  };

  it('loads the monitoring plugin and declares the topic it sends the alarms to', () => {
    expect(config.plugins).toContain('./monitoring/plugin.cjs');
    expect(config.resources.Resources.AlarmTopic?.Type).toBe('AWS::SNS::Topic');
    expect(config.functions.onAlarm?.events).toEqual([
      { sns: { arn: { Ref: 'AlarmTopic' }, topicName: `\${self:service}-\${sls:stage}-alarms` } },
    ]);
  });

  it('gives every EventBridge target a retry policy and a dead-letter queue', () => {
    const rules = Object.values(config.functions).flatMap((fn) =>
      (fn.events ?? []).flatMap((event) => ('schedule' in event ? [event.schedule] : [])),
    );
    expect(rules).toEqual([]);
    const bridged = Object.values(config.functions).flatMap((fn) =>
      (fn.events ?? []).flatMap((event) => (event.eventBridge ? [event.eventBridge] : [])),
    );
    expect(bridged.length).toBe(3);
    for (const rule of bridged) {
      expect(rule.retryPolicy).toEqual({ maximumEventAge: 3600, maximumRetryAttempts: 20 });
      expect(rule.deadLetterQueueArn).toEqual({ 'Fn::GetAtt': ['EventTargetDlq', 'Arn'] });
    }
  });
});
