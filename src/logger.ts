import { Console } from 'node:console';
import { Logger } from '@aws-lambda-powertools/logger';

/** The one logger of the process. Level comes from POWERTOOLS_LOG_LEVEL (default INFO). */
export const logger = new Logger({ serviceName: 'ami-janitor' });

/**
 * The CLI keeps stdout for the table or the JSON report, so its structured logs go to stderr.
 * Powertools offers no stream option; its `console` field is the one place it writes through.
 */
export function sendLogsToStderr(): void {
  (logger as unknown as { console: Console }).console = new Console({
    stdout: process.stderr,
    stderr: process.stderr,
  });
}
