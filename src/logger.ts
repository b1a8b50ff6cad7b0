import { Logger } from '@aws-lambda-powertools/logger';

/** The one logger of the process. Level comes from POWERTOOLS_LOG_LEVEL (default INFO). */
export const logger = new Logger({ serviceName: 'ami-janitor' });
