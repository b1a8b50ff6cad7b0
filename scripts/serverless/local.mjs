// npm run deploy:local / remove:local / info:local: `serverless deploy`, `remove` or `info` on the
// emulator at AWS_ENDPOINT_URL (see emulator.cjs), never on AWS: without an emulator endpoint it
// refuses before osls starts. Further arguments go to serverless
// (npm run deploy:local -- --param="schedule=rate(2 days)"). Without --region, the stack goes to
// AWS_REGION, where the CLI and the SDK look for it, instead of osls's default (us-east-1).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { emulatorEndpoint } = require('./emulator.cjs');

const COMMANDS = ['deploy', 'remove', 'info'];
const [command, ...args] = process.argv.slice(2);
if (!COMMANDS.includes(command)) {
  process.stderr.write(
    `usage: node scripts/serverless/local.mjs ${COMMANDS.join('|')} [serverless options]\n`,
  );
  process.exit(64);
}

let endpoint;
try {
  endpoint = emulatorEndpoint(process.env);
} catch (error) {
  process.stderr.write(`${error.message}\n`);
  process.exit(64);
}
if (!endpoint) {
  process.stderr.write(
    `npm run ${command}:local needs AWS_ENDPOINT_URL set to an emulator (e.g. http://localhost:5000 for moto_server); ` +
      'it never touches AWS. For AWS itself: npx serverless ' +
      `${command}\n`,
  );
  process.exit(64);
}

const region = process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION;
const named = args.some((arg) => arg === '--region' || arg === '-r' || arg.startsWith('--region='));
const regionArgs = region && !named ? ['--region', region] : [];
const serverless = require.resolve('osls/bin/serverless.js');
const child = spawnSync(process.execPath, [serverless, command, ...regionArgs, ...args], {
  stdio: 'inherit',
});
if (child.error) throw child.error;
process.exit(child.status ?? 1);
