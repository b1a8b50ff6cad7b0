// The state machine's definition for serverless.yml (`Definition: ${file(./statemachine/definition.cjs)}`):
// sweep.asl.json as it is, which the tests load and run too, with the Map's MaxConcurrency taken
// from the deploy param. The Lambda ARNs stay `${...}` placeholders that CloudFormation fills in
// from DefinitionSubstitutions.
//
// The target params are checked here as well, with the same parser list-targets uses at cold
// start, so that a typo in an account id or a Region fails the package instead of every run.
const { spawnSync } = require('node:child_process');
const { readFileSync } = require('node:fs');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

const ASL_FILE = join(__dirname, 'sweep.asl.json');
const MAP_STATE = 'SweepTargets';
/** Step Functions' own bound for an inline Map is higher; past this the member accounts' APIs would notice. */
const MAX_CONCURRENCY = 100;

function maxConcurrency(value) {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1 || number > MAX_CONCURRENCY) {
    throw new Error(
      `param maxConcurrency must be a whole number from 1 to ${MAX_CONCURRENCY}, not ${JSON.stringify(value)}`,
    );
  }
  return number;
}

/** parseTargetSpec in a child Node, since it is TypeScript in an ES module. */
function checkTargets(params) {
  const parser = pathToFileURL(join(__dirname, '..', 'src', 'core', 'targets.ts')).href;
  const script = `const { parseTargetSpec } = await import(${JSON.stringify(parser)});
try { parseTargetSpec(${JSON.stringify(params)}); }
catch (error) { process.stderr.write(error.message); process.exit(78); }`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  if (child.status !== 0) {
    throw new Error(`the target params cannot be deployed: ${child.stderr.trim() || `exit ${child.status}`}`);
  }
}

module.exports = async ({ resolveVariable }) => {
  const param = async (name) => {
    const value = await resolveVariable(`param:${name}`);
    return value === null || value === undefined ? '' : String(value);
  };
  checkTargets({
    accounts: await param('accounts'),
    organizationalUnits: await param('organizationalUnits'),
    excludeAccounts: await param('excludeAccounts'),
    regions: await param('regions'),
    memberRoleName: await param('memberRoleName'),
    organizationRoleArn: await param('organizationRoleArn'),
    homeRegion: String(await resolveVariable('self:provider.region')),
  });
  const definition = JSON.parse(readFileSync(ASL_FILE, 'utf8'));
  const map = definition.States[MAP_STATE];
  if (map?.Type !== 'Map') throw new Error(`${ASL_FILE} has no Map state ${MAP_STATE}`);
  map.MaxConcurrency = maxConcurrency(await param('maxConcurrency'));
  return definition;
};
