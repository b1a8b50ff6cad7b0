// The stack's alarms and dashboard, made from the packaged template itself (monitoring/plugin.cjs
// adds them at package time): every function gets an errors and a throttles alarm, every queue
// (each one is a dead-letter queue) a messages alarm, every state machine a failed-executions
// alarm, so a function or queue added later is watched without anyone remembering to. Plain data
// in, plain data out, so the tests call it on a template of their own.

/** The namespace and default dimensions src/metrics.ts publishes under. */
const METRICS_NAMESPACE = 'ami-janitor';
const SERVICE = 'ami-janitor';
const HOUR_S = 3_600;
const DAY_S = 86_400;
/** CloudWatch evaluates an alarm over at most 7 days (for periods of an hour or more). */
const MAX_WINDOW_S = 7 * DAY_S;
const UNITS_S = { minute: 60, minutes: 60, hour: HOUR_S, hours: HOUR_S, day: DAY_S, days: DAY_S };

class MonitoringConfigError extends Error {
  name = 'MonitoringConfigError';
}

/** Seconds between two runs of an EventBridge `rate(...)` expression, or undefined for a cron. */
function rateSeconds(expression) {
  const match = /^rate\((\d+) (minutes?|hours?|days?)\)$/.exec(String(expression).trim());
  if (!match) return undefined;
  return Number(match[1]) * UNITS_S[match[2]];
}

/**
 * The heartbeat's period and periods: the alarm fires when no sweep completed within the window
 * (twice the schedule's interval, or `heartbeatHours`). A window past a day is counted in whole
 * periods of an hour or a day, as CloudWatch requires for windows that long.
 */
function heartbeatWindow(schedule, heartbeatHours) {
  const hours = String(heartbeatHours ?? '').trim();
  let windowS;
  if (hours !== '') {
    const number = Number(hours);
    if (!Number.isInteger(number) || number < 1 || number > MAX_WINDOW_S / HOUR_S) {
      throw new MonitoringConfigError(
        `param heartbeatHours must be a whole number of hours from 1 to ${MAX_WINDOW_S / HOUR_S}, not ${JSON.stringify(heartbeatHours)}`,
      );
    }
    windowS = number * HOUR_S;
  } else {
    const interval = rateSeconds(schedule);
    if (interval === undefined) {
      throw new MonitoringConfigError(
        `the schedule ${JSON.stringify(schedule)} is not a rate(...): set param heartbeatHours, the hours after which a sweep that has not completed raises the heartbeat alarm`,
      );
    }
    windowS = 2 * interval;
    if (windowS > MAX_WINDOW_S) {
      throw new MonitoringConfigError(
        `twice the schedule ${schedule} is past CloudWatch's 7-day alarm window: set param heartbeatHours (at most ${MAX_WINDOW_S / HOUR_S})`,
      );
    }
  }
  if (windowS <= DAY_S) return { Period: Math.ceil(windowS / 60) * 60, EvaluationPeriods: 1 };
  const period = windowS % DAY_S === 0 ? DAY_S : HOUR_S;
  return { Period: period, EvaluationPeriods: Math.ceil(windowS / period) };
}

/** Fires on any occurrence within five minutes, and is quiet while nothing happens. */
const ANY_IN_FIVE_MINUTES = {
  Period: 300,
  EvaluationPeriods: 1,
  Threshold: 0,
  ComparisonOperator: 'GreaterThanThreshold',
  TreatMissingData: 'notBreaching',
};

function alarm(properties, topic) {
  return {
    Type: 'AWS::CloudWatch::Alarm',
    Properties: {
      ActionsEnabled: true,
      AlarmActions: [{ Ref: topic }],
      // The channel hears when it is over, too.
      OKActions: [{ Ref: topic }],
      ...properties,
    },
  };
}

function shortName(logicalId, suffix) {
  const name = logicalId.endsWith(suffix) ? logicalId.slice(0, -suffix.length) : logicalId;
  return name.charAt(0).toLowerCase() + name.slice(1);
}

/**
 * @param {{ Resources: Record<string, { Type: string, Properties?: any }> }} template
 * @param {{ service: string, stage: string, schedule: string, heartbeatHours?: string, topic: string }} options
 * @returns {Record<string, unknown>} the alarms and the dashboard, by logical id
 */
function monitoringResources(template, options) {
  const { service, stage, topic } = options;
  if (!template.Resources[topic]) {
    throw new MonitoringConfigError(`the alarm topic ${topic} is not in the template`);
  }
  const prefix = `${service}-${stage}`;
  const resources = {};
  const alarmIds = [];
  const add = (id, properties) => {
    resources[id] = alarm(properties, topic);
    alarmIds.push(id);
  };
  const entries = Object.entries(template.Resources);

  const functions = entries.filter(([, r]) => r.Type === 'AWS::Lambda::Function');
  for (const [id, fn] of functions) {
    const name = shortName(id, 'LambdaFunction');
    const dimensions = [{ Name: 'FunctionName', Value: { Ref: id } }];
    add(`${id}ErrorsAlarm`, {
      AlarmName: `${prefix} ${name} errors`,
      AlarmDescription: `${name} failed (an error, a timeout or running out of memory). Its log group /aws/lambda/${fn.Properties?.FunctionName ?? name} says why; a failed asynchronous invocation is in its dead-letter queue.`,
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Dimensions: dimensions,
      Statistic: 'Sum',
      ...ANY_IN_FIVE_MINUTES,
    });
    add(`${id}ThrottlesAlarm`, {
      AlarmName: `${prefix} ${name} throttles`,
      AlarmDescription: `Lambda throttled ${name}: the account's concurrency is used up elsewhere, or a reserved concurrency is too low. A throttled asynchronous invocation is retried by Lambda, then sent to the dead-letter queue.`,
      Namespace: 'AWS/Lambda',
      MetricName: 'Throttles',
      Dimensions: dimensions,
      Statistic: 'Sum',
      ...ANY_IN_FIVE_MINUTES,
    });
  }

  const queues = entries.filter(([, r]) => r.Type === 'AWS::SQS::Queue');
  for (const [id, queue] of queues) {
    const name = queue.Properties?.QueueName ?? id;
    add(`${id}MessagesAlarm`, {
      AlarmName: `${prefix} ${shortName(id, 'Queue')} has messages`,
      AlarmDescription: `The dead-letter queue ${name} holds an event or invocation that was never handled. Read it (aws sqs receive-message), fix the cause, and send it again or delete it; it is kept 14 days.`,
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [id, 'QueueName'] } }],
      Statistic: 'Maximum',
      ...ANY_IN_FIVE_MINUTES,
    });
  }

  const machines = entries.filter(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine');
  for (const [id] of machines) {
    const metric = (metricId, metricName) => ({
      Id: metricId,
      ReturnData: false,
      MetricStat: {
        Metric: {
          Namespace: 'AWS/States',
          MetricName: metricName,
          Dimensions: [{ Name: 'StateMachineArn', Value: { Ref: id } }],
        },
        Period: 300,
        Stat: 'Sum',
      },
    });
    add(`${id}FailedAlarm`, {
      AlarmName: `${prefix} ${shortName(id, 'StateMachine')} executions failed`,
      AlarmDescription:
        'A run of the sweep state machine failed, timed out or was aborted: its execution history in the Step Functions console shows the step.',
      Metrics: [
        metric('failed', 'ExecutionsFailed'),
        metric('timedOut', 'ExecutionsTimedOut'),
        metric('aborted', 'ExecutionsAborted'),
        {
          Id: 'unsuccessful',
          Label: 'Executions failed, timed out or aborted',
          Expression: 'FILL(failed, 0) + FILL(timedOut, 0) + FILL(aborted, 0)',
          ReturnData: true,
        },
      ],
      EvaluationPeriods: 1,
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
    });
  }

  const ownDimensions = [
    { Name: 'service', Value: SERVICE },
    { Name: 'stage', Value: stage },
  ];
  const window = heartbeatWindow(options.schedule, options.heartbeatHours);
  add('SweepHeartbeatAlarm', {
    AlarmName: `${prefix} no sweep completed`,
    AlarmDescription: `No sweep completed in ${(window.Period * window.EvaluationPeriods) / HOUR_S} hours, twice the schedule: the schedule may be disabled, the starter failing, or every sweep failing before its end. The other alarms and the logs say which.`,
    Namespace: METRICS_NAMESPACE,
    MetricName: 'SweepCompleted',
    Dimensions: ownDimensions,
    Statistic: 'Sum',
    ...window,
    DatapointsToAlarm: window.EvaluationPeriods,
    Threshold: 1,
    ComparisonOperator: 'LessThanThreshold',
    // No data is exactly what a janitor that stopped running looks like.
    TreatMissingData: 'breaching',
  });
  add('TargetsFailedAlarm', {
    AlarmName: `${prefix} targets failed`,
    AlarmDescription:
      'A target account-Region could not be swept after its retries (its member role, its API, or a bug): the organisation digest and the sweep-target log name it and the error.',
    Namespace: METRICS_NAMESPACE,
    MetricName: 'TargetsFailed',
    Dimensions: ownDimensions,
    Statistic: 'Sum',
    ...ANY_IN_FIVE_MINUTES,
  });

  // By name rather than GetAtt: the dashboard needs no alarm to exist first, and an emulator that
  // does not create alarms can still create it.
  const alarmArns = alarmIds.map(
    (id) =>
      `arn:\${AWS::Partition}:cloudwatch:\${AWS::Region}:\${AWS::AccountId}:alarm:${resources[id].Properties.AlarmName}`,
  );
  resources.Dashboard = dashboard({ prefix, stage, functions, queues, alarmArns });
  return resources;
}

/** `${Name}` placeholders of Fn::Sub, for what only CloudFormation knows: the Region and the ARNs. */
function dashboard({ prefix, stage, functions, queues, alarmArns }) {
  const own = (name, extra = {}) => [METRICS_NAMESPACE, name, 'service', SERVICE, 'stage', stage, extra];
  const search = (name, dimension, stat) => ({
    expression: `SEARCH('{${METRICS_NAMESPACE},service,stage,${dimension}} MetricName="${name}" stage="${stage}"', '${stat}', 86400)`,
    id: `${name.toLowerCase()}By${dimension}`,
  });
  const metricWidget = (title, metrics, extra = {}) => ({
    type: 'metric',
    width: 8,
    height: 6,
    properties: {
      title,
      region: '${AWS::Region}',
      view: 'timeSeries',
      stacked: false,
      period: 86400,
      stat: 'Sum',
      metrics,
      ...extra,
    },
  });
  const widgets = [
    {
      type: 'text',
      width: 24,
      height: 2,
      properties: {
        markdown: `## ${prefix}\nWhat each day's sweeps reclaimed and scheduled, what they found, and what went wrong. The run report in the sweep-target log has every decision.`,
      },
    },
    metricWidget('Reclaimed per day (GiB) and the estimated saving (USD a month)', [
      own('ReclaimedGiB', { label: 'Reclaimed GiB' }),
      own('EstimatedMonthlySavingUsd', { label: 'Saving USD/month', yAxis: 'right' }),
    ]),
    metricWidget('Removed', [
      own('ImagesDeregistered', { label: 'Images deregistered' }),
      own('SnapshotsDeleted', { label: 'Snapshots deleted' }),
      own('SnapshotsArchived', { label: 'Snapshots archived' }),
      own('ImagesDisabled', { label: 'Images disabled' }),
    ]),
    metricWidget('Scheduled: marked, and due later', [
      own('ImagesMarked', { label: 'Images marked' }),
      own('SnapshotsMarked', { label: 'Snapshots marked' }),
      own('ImagesScheduled', { label: 'Images scheduled' }),
      own('SnapshotsScheduled', { label: 'Snapshots scheduled' }),
      own('ActionsPending', { label: 'Pending (the cap)' }),
    ]),
    metricWidget('Findings by severity', [[search('Findings', 'severity', 'Sum')]]),
    metricWidget('Failures by error code', [
      [search('Failures', 'errorCode', 'Sum')],
      own('ActionsNotReached', { label: 'Not reached' }),
    ]),
    metricWidget('Throttled AWS calls, and throttled functions', [
      own('ThrottledCalls', { label: 'Throttled AWS calls' }),
      ...functions.map(([id]) => [
        'AWS/Lambda',
        'Throttles',
        'FunctionName',
        `\${${id}}`,
        { label: `${id} throttles`, yAxis: 'right' },
      ]),
    ]),
    metricWidget(
      'Sweep duration (ms)',
      [
        own('SweepDuration', { stat: 'Maximum', label: 'Longest' }),
        own('SweepDuration', { stat: 'Average', label: 'Average' }),
      ],
      { stat: 'Maximum' },
    ),
    metricWidget('Targets swept', [
      own('TargetsDone', { label: 'Done' }),
      own('TargetsStopped', { label: 'Unfinished' }),
      own('TargetsFailed', { label: 'Failed' }),
    ]),
    metricWidget(
      'Images and snapshots seen',
      [own('Images', { label: 'Images' }), own('Snapshots', { label: 'Snapshots' })],
      {
        stat: 'Maximum',
      },
    ),
    metricWidget(
      'Function errors',
      functions.map(([id]) => ['AWS/Lambda', 'Errors', 'FunctionName', `\${${id}}`, { label: id }]),
      { period: 300 },
    ),
    metricWidget(
      'Dead-letter queues: messages waiting',
      queues.map(([id, queue]) => [
        'AWS/SQS',
        'ApproximateNumberOfMessagesVisible',
        'QueueName',
        queue.Properties?.QueueName ?? id,
        { label: id },
      ]),
      { period: 300, stat: 'Maximum' },
    ),
    {
      type: 'alarm',
      width: 24,
      height: 6,
      properties: { title: 'Alarms', alarms: alarmArns },
    },
  ];
  // Eight wide, three to a row, in order.
  let x = 0;
  let y = 0;
  for (const widget of widgets) {
    if (x + widget.width > 24) {
      x = 0;
      y += 6;
    }
    widget.x = x;
    widget.y = y;
    x += widget.width;
    if (x >= 24) {
      x = 0;
      y += widget.height;
    }
  }
  return {
    Type: 'AWS::CloudWatch::Dashboard',
    Properties: {
      DashboardName: prefix,
      DashboardBody: { 'Fn::Sub': JSON.stringify({ widgets }) },
    },
  };
}

module.exports = {
  monitoringResources,
  heartbeatWindow,
  rateSeconds,
  MonitoringConfigError,
  METRICS_NAMESPACE,
};
