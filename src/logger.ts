import { Console } from 'node:console';
import { Logger } from '@aws-lambda-powertools/logger';
import { truncateText } from './text.ts';

/** The longest string a log line carries in one value or key; the rest is counted, not printed. */
export const LOG_VALUE_MAX_CHARS = 1024;
/**
 * Longer limits for values whose length the code bounds itself. A stack starts with the error's
 * message, and the frames after it are what make it worth keeping. A digest Slack did not take is
 * logged as its plain text, the one copy left: built from values already clipped to Slack's
 * limits, and kept whole up to well inside the 256 KB CloudWatch allows one log event.
 */
export const LOG_LONG_VALUE_MAX_CHARS: Readonly<Record<string, number>> = {
  stack: 4096,
  digest: 200_000,
};

/**
 * Caps every string of a log line. Powertools calls it for every key and value as it serialises a
 * line, nested objects, arrays and the fields of a formatted error included, so no caller has to
 * remember that an error code, a tag or an unknown policy key may be a megabyte long.
 */
export function capLogValue(key: string, value: unknown): unknown {
  if (typeof value === 'string') {
    return truncateText(value, LOG_LONG_VALUE_MAX_CHARS[key] ?? LOG_VALUE_MAX_CHARS);
  }
  // Keys are printed too, and a document's keys come from outside like its values.
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Error)) {
    const keys = Object.keys(value);
    if (keys.some((candidate) => candidate.length > LOG_VALUE_MAX_CHARS)) {
      return Object.fromEntries(
        keys.map((candidate) => [
          truncateText(candidate, LOG_VALUE_MAX_CHARS),
          (value as Record<string, unknown>)[candidate],
        ]),
      );
    }
  }
  return value;
}

/** The one logger of the process. Level comes from POWERTOOLS_LOG_LEVEL (default INFO). */
export const logger = new Logger({ serviceName: 'ami-janitor', jsonReplacerFn: capLogValue });

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
