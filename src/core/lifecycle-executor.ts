import { MARKED_AT_TAG, type Policy } from '../config/policy.ts';
import { errorCode, errorMessage } from '../errors.ts';
import type { OutcomeStatus } from '../model.ts';
import { forEachConcurrent } from './concurrency.ts';
import type { Deadline, Log } from './ports.ts';

/**
 * The one executor of the lifecycle, for every kind, with the safety rails in one place: dry run;
 * unmarks first (giving back what someone needs comes before anything else); a fresh re-check of
 * every resource right before it advances, where anything that now protects it wins; tolerant
 * error codes; the time budget, past which nothing new starts and the rest is reported as not
 * reached; and one failure never stopping the others. Marks and unmarks are tagged in batches
 * (1,000 ids per call) alongside the advances, which draw on other API buckets.
 */

export interface ExecuteOptions {
  dryRun: boolean;
  now: Date;
  accountId: string;
  policy: Pick<Policy, 'exemptTag' | 'graceDays'>;
  deadline: Deadline;
  /** Stop starting new actions when less than this much time is left. */
  reserveMs: number;
  log: Log;
}

export type Phase = 'unmark' | 'mark' | 'advance';

/** What a kind of resource (image, snapshot) contributes to the executor. */
export interface KindExecution<A, O, R> {
  /** The resource an action is about. */
  id(action: A): string;
  phase(action: A): Phase;
  /** The structured log line: its message and the key the resource id goes under. */
  log: { message: string; key: 'imageId' | 'snapshotId'; fields(outcome: O): Record<string, unknown> };
  outcome(
    action: A,
    status: OutcomeStatus,
    detail?: string,
    extra?: { errorCode?: string; warnings?: string[] },
  ): O;
  dryRun(action: A): O;
  /** Error codes that mean the resource no longer exists. */
  gone: ReadonlySet<string>;
  /** How outcomes read, in the kind's own words. */
  say: {
    marked(action: A): string;
    unmarked: string;
    gone: string;
    /** Found gone by the re-check right before advancing. */
    vanished: string;
    /** Prefix of an advance's detail when the re-check itself failed. */
    recheckFailed: string;
    /** The log line when the re-check failed. */
    recheckFailedLog: string;
  };
  /** Tag keys removed by an unmark, and tags written by a mark. */
  unmarkKeys(action: A): string[];
  tagResources(ids: readonly string[], tags: Record<string, string>): Promise<Map<string, unknown>>;
  untagResources(ids: readonly string[], keys: readonly string[]): Promise<Map<string, unknown>>;
  /**
   * Work before an unmark's tag goes (cancel a deprecation, enable an image). Warnings go with
   * the outcome; an error fails the unmark and keeps the tags, which tell a later run to retry.
   */
  beforeUnmark?(action: A): Promise<{ warnings: string[]; error?: unknown }>;
  /** Work after a mark's tag is written (deprecate, request a usage report): warnings, never failures. */
  afterMark?(action: A): Promise<string[]>;
  /** The current state of the resources about to advance; absent ids no longer exist. */
  describe(ids: readonly string[]): Promise<R[]>;
  /** Further facts read once, alongside the re-check, before any advance (an image's snapshots). */
  prepare?(advances: readonly A[]): Promise<void>;
  resourceId(resource: R): string;
  /** Why the resource, as it is now, must not advance; undefined when it may. */
  veto(resource: R, action: A): string | undefined;
  /** Carries the advance out on a resource the re-check found and allowed. */
  advance(action: A, resource: R, context: AdvanceContext<R>): Promise<O>;
}

export interface AdvanceContext<R> {
  /**
   * After a write that got no answer: the resource as it is now (undefined when gone), read again
   * rather than written again, since a second DeregisterImage or DeleteSnapshot would answer
   * NotFound and hide that the first one worked.
   */
  reread(id: string): Promise<R | undefined | 'unknown'>;
}

/** Calls in flight per phase; the API limiter, not this number, sets the pace. */
const ACTION_CONCURRENCY = 4;
/** CreateTags and DeleteTags take up to 1,000 resource ids per call. */
const TAG_BATCH = 1000;
const PHASE_ORDER: Record<Phase, number> = { unmark: 0, advance: 1, mark: 2 };

export async function runLifecycle<A, O, R>(
  planned: readonly A[],
  kind: KindExecution<A, O, R>,
  options: ExecuteOptions,
): Promise<O[]> {
  const actions = [...planned].sort((a, b) => PHASE_ORDER[kind.phase(a)] - PHASE_ORDER[kind.phase(b)]);
  if (options.dryRun) return actions.map((action) => kind.dryRun(action));

  const results = new Map<A, O>();
  const record = (action: A, result: O) => {
    options.log.info(kind.log.message, { [kind.log.key]: kind.id(action), ...kind.log.fields(result) });
    results.set(action, result);
  };
  const ofPhase = (phase: Phase) => actions.filter((action) => kind.phase(action) === phase);
  const hasTime = () => options.deadline.remainingMs() >= options.reserveMs;
  const failed = (action: A, error: unknown, warnings: string[] = []) =>
    kind.outcome(action, 'failed', errorMessage(error), { errorCode: errorCode(error), warnings });

  /** Tags in batches; a call that throws outright (throttled past every retry) fails its batch. */
  async function tagInBatches(
    batchActions: readonly A[],
    tag: (ids: string[]) => Promise<Map<string, unknown>>,
    settle: (action: A, error: unknown) => void,
  ): Promise<void> {
    for (let start = 0; start < batchActions.length; start += TAG_BATCH) {
      if (!hasTime()) return;
      const batch = batchActions.slice(start, start + TAG_BATCH);
      let failures: Map<string, unknown>;
      try {
        failures = await tag(batch.map((action) => kind.id(action)));
      } catch (error) {
        failures = new Map(batch.map((action) => [kind.id(action), error]));
      }
      for (const action of batch) settle(action, failures.get(kind.id(action)));
    }
  }

  async function unmarkAll(unmarks: readonly A[]): Promise<void> {
    const warnings = new Map<A, string[]>();
    const ready = new Set<A>();
    // Undo the side effects before dropping the tag: the tag is what tells a later run to retry.
    const undo = kind.beforeUnmark?.bind(kind);
    await forEachConcurrent(unmarks, ACTION_CONCURRENCY, async (action) => {
      if (!undo) {
        ready.add(action);
        return;
      }
      if (!hasTime()) return;
      const undone = await undo(action);
      warnings.set(action, undone.warnings);
      if (undone.error === undefined) ready.add(action);
      else record(action, failed(action, undone.error, undone.warnings));
    });
    const byKeys = new Map<string, A[]>();
    for (const action of unmarks.filter((candidate) => ready.has(candidate))) {
      const keys = JSON.stringify(kind.unmarkKeys(action));
      byKeys.set(keys, [...(byKeys.get(keys) ?? []), action]);
    }
    for (const [keys, group] of byKeys) {
      await tagInBatches(
        group,
        (ids) => kind.untagResources(ids, JSON.parse(keys) as string[]),
        (action, error) => {
          const extra = warnings.get(action) ?? [];
          if (error === undefined)
            record(action, kind.outcome(action, 'done', kind.say.unmarked, { warnings: extra }));
          else if (kind.gone.has(errorCode(error)))
            record(action, kind.outcome(action, 'already-gone', kind.say.gone));
          else record(action, failed(action, error, extra));
        },
      );
    }
  }

  async function markAll(marks: readonly A[]): Promise<void> {
    const tagged: A[] = [];
    await tagInBatches(
      marks,
      (ids) => kind.tagResources(ids, { [MARKED_AT_TAG]: options.now.toISOString() }),
      (action, error) => {
        if (error === undefined) tagged.push(action);
        else if (kind.gone.has(errorCode(error)))
          record(action, kind.outcome(action, 'already-gone', kind.say.gone));
        else record(action, failed(action, error));
      },
    );
    const done = (action: A, warnings: string[]) =>
      kind.outcome(action, 'done', kind.say.marked(action), { warnings });
    const after = kind.afterMark?.bind(kind);
    await forEachConcurrent(tagged, ACTION_CONCURRENCY, async (action) => {
      // Tagged but out of time before its side effects: the mark holds, they wait for the next run.
      record(action, done(action, after && hasTime() ? await after(action) : []));
    });
  }

  async function advanceAll(advances: readonly A[]): Promise<void> {
    if (advances.length === 0) return;
    const [current] = await Promise.all([
      kind.describe(advances.map((action) => kind.id(action))).then(
        (found): Map<string, R> | { error: unknown } =>
          new Map(found.map((resource) => [kind.resourceId(resource), resource])),
        (error: unknown) => {
          options.log.error(kind.say.recheckFailedLog, { error });
          return { error };
        },
      ),
      kind.prepare?.(advances),
    ]);
    const context: AdvanceContext<R> = {
      reread: async (id) => {
        try {
          const [resource] = await kind.describe([id]);
          return resource;
        } catch {
          return 'unknown';
        }
      },
    };
    await forEachConcurrent(advances, ACTION_CONCURRENCY, async (action) => {
      if (!hasTime()) return;
      if (!(current instanceof Map)) {
        record(
          action,
          kind.outcome(action, 'failed', `${kind.say.recheckFailed}: ${errorMessage(current.error)}`, {
            errorCode: errorCode(current.error),
          }),
        );
        return;
      }
      const resource = current.get(kind.id(action));
      if (resource === undefined) {
        // Someone else removed it; what they did with what it held is theirs to decide.
        record(action, kind.outcome(action, 'already-gone', kind.say.vanished));
        return;
      }
      const veto = kind.veto(resource, action);
      if (veto) {
        record(action, kind.outcome(action, 'skipped', veto));
        return;
      }
      record(action, await kind.advance(action, resource, context));
    });
  }

  await unmarkAll(ofPhase('unmark'));
  await Promise.all([advanceAll(ofPhase('advance')), markAll(ofPhase('mark'))]);
  return actions.map(
    (action) =>
      results.get(action) ??
      kind.outcome(action, 'not-reached', 'time budget exhausted before this action started'),
  );
}
