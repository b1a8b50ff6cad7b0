import { defaultPolicy, type Policy } from '../../src/config/policy.ts';
import type { Log, LogExtra, StateStore } from '../../src/core/ports.ts';
import type { Decision, Image, Plan, PlannedAction } from '../../src/model.ts';

/**
 * Small builders for the core's tests. Every builder starts from a valid, boring default (an old,
 * never-launched, untagged image owned by ACCOUNT_ID; the default policy) so a test only spells
 * out the facts it is about.
 */

export const ACCOUNT_ID = '123456789012';
export const REGION = 'eu-west-1';
/** The injected clock of every table-driven test: never `new Date()`. */
export const NOW = new Date('2026-06-15T12:00:00.000Z');
export const DAY_MS = 86_400_000;

export function daysBefore(date: Date, days: number): Date {
  return new Date(date.getTime() - days * DAY_MS);
}

export function daysAfter(date: Date, days: number): Date {
  return new Date(date.getTime() + days * DAY_MS);
}

let sequence = 0;

/** A fresh image id; stable enough to read in a failure message. */
export function nextImageId(): string {
  sequence += 1;
  return `ami-0fac${sequence.toString(16).padStart(13, '0')}`;
}

/** One snapshot per image by default, named after it, so two images never share one by accident. */
export function image(overrides: Partial<Image> = {}): Image {
  const imageId = overrides.imageId ?? nextImageId();
  return {
    imageId,
    name: `app-${imageId.slice(-4)}`,
    ownerId: ACCOUNT_ID,
    state: 'available',
    creationDate: daysBefore(NOW, 200),
    public: false,
    tags: {},
    snapshotIds: [`snap-${imageId.slice(4)}`],
    ...overrides,
  };
}

export function decision(
  subject: Pick<Image, 'imageId' | 'name'>,
  verdict: Decision['verdict'] = 'expire',
  overrides: Partial<Omit<Decision, 'imageId' | 'name' | 'verdict'>> = {},
): Decision {
  return {
    imageId: subject.imageId,
    name: subject.name,
    verdict,
    rule: verdict === 'expire' ? 'age' : 'keep-latest',
    reason: verdict === 'expire' ? 'created 200 days ago (limit 90)' : 'newest 1 of 1 in family app',
    findings: [],
    ...overrides,
  };
}

/** The default policy with a few keys changed (nested objects are replaced, not merged). */
export function policy(overrides: Partial<Policy> = {}): Policy {
  return { ...defaultPolicy(), ...overrides };
}

export function action(
  kind: PlannedAction['kind'],
  subject: Pick<Image, 'imageId' | 'name'>,
  overrides: Partial<PlannedAction> = {},
): PlannedAction {
  return { kind, imageId: subject.imageId, name: subject.name, rule: 'age', reason: 'test', ...overrides };
}

/** A plan holding exactly the given actions, as the planner would hand it to the executor. */
export function plan(actions: PlannedAction[], overrides: Partial<Plan> = {}): Plan {
  return {
    accountId: ACCOUNT_ID,
    region: REGION,
    asOf: NOW.toISOString(),
    inventorySize: actions.length,
    decisions: [],
    actions,
    deferred: [],
    scheduled: [],
    cap: { limit: 100, eligible: actions.filter((a) => a.kind === 'deregister').length, capped: false },
    ...overrides,
  };
}

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  extra: LogExtra;
}

/** A Log that records every line, so a test can assert what the run said. */
export function recordingLog(): Log & { entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const record =
    (level: LogEntry['level']) =>
    (message: string, ...extra: LogExtra) => {
      entries.push({ level, message, extra });
    };
  return {
    entries,
    debug: record('debug'),
    info: record('info'),
    warn: record('warn'),
    error: record('error'),
  };
}

/** A StateStore in memory, with its values open to assertions. */
export function memoryState(): StateStore & { values: Map<string, string> } {
  const values = new Map<string, string>();
  return {
    values,
    get: async (key) => values.get(key),
    put: async (key, value) => {
      values.set(key, value);
    },
  };
}
