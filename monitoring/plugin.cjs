// Adds the alarms and the dashboard (monitoring/resources.cjs) to the template once everything
// else is in it, the resources section included, and before it is validated and saved: `serverless
// package` and `serverless deploy` both pass here, so what is packaged is what is deployed.
const { monitoringResources } = require('./resources.cjs');

/** The topic every alarm is sent to: serverless.yml declares it, with its subscriptions. */
const ALARM_TOPIC = 'AlarmTopic';

class MonitoringPlugin {
  constructor(serverless) {
    this.serverless = serverless;
    this.hooks = {
      'before:aws:package:finalize:saveServiceState': () => this.addMonitoring(),
    };
  }

  addMonitoring() {
    const { service } = this.serverless;
    const template = service.provider.compiledCloudFormationTemplate;
    const schedules = Object.values(template.Resources)
      .filter((resource) => resource.Type === 'AWS::Events::Rule' && resource.Properties?.ScheduleExpression)
      .map((resource) => resource.Properties.ScheduleExpression);
    if (schedules.length !== 1) {
      throw new this.serverless.classes.Error(
        `the heartbeat alarm needs exactly one schedule rule in the template, found ${schedules.length}`,
      );
    }
    const resources = monitoringResources(template, {
      service: service.service,
      stage: this.serverless.getProvider('aws').getStage(),
      schedule: schedules[0],
      heartbeatHours: service.custom?.heartbeatHours,
      topic: ALARM_TOPIC,
    });
    for (const [id, resource] of Object.entries(resources)) {
      if (template.Resources[id]) {
        throw new this.serverless.classes.Error(`monitoring: ${id} is already in the template`);
      }
      template.Resources[id] = resource;
    }
  }
}

module.exports = MonitoringPlugin;
